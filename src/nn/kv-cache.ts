// Key/value cache for incremental decoding of one sequence: per layer, the (rotated) keys and the values
// of every position seen so far, so each new token costs one row of attention instead of a full pass.
import { attention, empty, keep, rope, Tensor, zeros } from "../tensor/index.js";

export interface CachedAttentionOptions {
  heads: number;
  kvHeads: number;
  rope?: { theta: number };
}

/**
 * Attention for a batch of independent sequences, row b of q/k/v [B, T, ·] against caches[b] (inference only).
 * Sequences may sit at different positions, which is what lets a server batch requests as they come.
 */
export function attendCached(
  caches: readonly KVCache[],
  layer: number,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: CachedAttentionOptions,
): Tensor {
  const batch = q.shape[0]!;
  if (caches.length !== batch)
    throw new Error(`attendCached: ${caches.length} caches for a batch of ${batch}`);
  if (batch === 1) return caches[0]!.attend(layer, q, k, v, opts);
  const row = (t: Tensor, b: number) => {
    const n = t.size / batch;
    return new Tensor(t.data.subarray(b * n, (b + 1) * n), [1, t.shape[1]!, t.shape[2]!], false, t);
  };
  const out = empty(q.shape, q.dtype);
  const n = q.size / batch;
  for (let b = 0; b < batch; b++) {
    const o = caches[b]!.attend(layer, row(q, b), row(k, b), row(v, b), opts);
    out.data.set(o.data, b * n);
  }
  return out;
}

/** Throws unless there is one cache per batch row and every row's new positions fit the context. */
export function checkCaches(
  family: string,
  c: { context: number },
  caches: readonly KVCache[] | null,
  batch: number,
  time: number,
): void {
  if (!caches) {
    if (time > c.context) throw new Error(`${family}: ${time} positions exceed the context of ${c.context}`);
    return;
  }
  if (caches.length !== batch)
    throw new Error(`${family}: ${caches.length} KV caches for a batch of ${batch}`);
  for (const cache of caches) {
    if (cache.length + time > Math.min(c.context, cache.capacity)) {
      throw new Error(
        `${family}: positions up to ${cache.length + time} exceed the context of ${Math.min(c.context, cache.capacity)}`,
      );
    }
  }
}

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
