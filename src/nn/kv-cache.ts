// Key/value cache for incremental decoding of one sequence: per layer, the (rotated) keys and the values
// of every position seen so far, so each new token costs one row of attention instead of a full pass.
import { attention, keep, rope, Tensor, zeros } from "../tensor/index.js";

export class KVCache {
  /** Positions already in the cache. */
  length = 0;
  readonly capacity: number;
  private readonly k: Tensor[] = [];
  private readonly v: Tensor[] = [];

  constructor(layers: number, capacity: number, kvWidth: number) {
    this.capacity = capacity;
    for (let l = 0; l < layers; l++) {
      this.k.push(keep(zeros([capacity, kvWidth])));
      this.v.push(keep(zeros([capacity, kvWidth])));
    }
  }

  /**
   * Attention of the new positions' q [1, T, H·hd] over the cached prefix plus the new k, v [1, T, Hkv·hd],
   * which are stored (k rotated when rope is given). Call advance(T) once every layer has run.
   */
  attend(
    layer: number,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    opts: { heads: number; kvHeads: number; rope?: { theta: number } },
  ): Tensor {
    const t = q.shape[1]!;
    const width = k.shape[2]!;
    if (q.shape[0] !== 1) throw new Error(`KVCache: decoding takes one sequence, got batch ${q.shape[0]}`);
    const end = this.length + t;
    if (end > this.capacity)
      throw new Error(`KVCache: ${end} positions exceed the context of ${this.capacity}`);
    const ck = this.k[layer]!;
    const cv = this.v[layer]!;
    const qr = opts.rope ? rope(q, opts.heads, opts.rope.theta, this.length) : q;
    const kr = opts.rope ? rope(k, opts.kvHeads, opts.rope.theta, this.length) : k;
    ck.data.set(kr.data, this.length * width);
    cv.data.set(v.data, this.length * width);
    const keys = new Tensor(ck.data.subarray(0, end * width), [1, end, width], false, ck);
    const values = new Tensor(cv.data.subarray(0, end * width), [1, end, width], false, cv);
    return attention(qr, keys, values, { heads: opts.heads, kvHeads: opts.kvHeads, causal: true });
  }

  advance(t: number): void {
    this.length += t;
  }

  /** Drops everything after `length` positions (e.g. to reuse a shared prompt prefix). */
  truncate(length: number): void {
    if (length < 0 || length > this.length)
      throw new Error(`KVCache: cannot truncate ${this.length} positions to ${length}`);
    this.length = length;
  }

  dispose(): void {
    for (const t of [...this.k, ...this.v]) {
      t.kept = false;
      t.dispose();
    }
  }
}
