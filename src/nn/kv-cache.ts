// Key/value caches for incremental decoding: per sequence and layer, the (rotated) keys and the values of
// every position seen so far, so each new token costs one row of attention instead of a full pass.
// A cached step runs several sequences at once, each at its own position and with its own number of new
// tokens (a serving batch mixes decoding rows with fresh prompts): their tokens are packed one sequence
// after another, so the projections see one tall matrix, and only rope and attention need to know where
// each sequence starts.
import type { FloatArray } from "../backend/backend.js";
import {
  attentionCached,
  type CachedAttentionOptions,
  embedding,
  keep,
  reshape,
  rope,
  type Tensor,
  zeros,
} from "../tensor/index.js";

/** attentionCached's options, plus the rotary embedding given to q and k before k is cached. */
export interface AttendCachedOptions extends CachedAttentionOptions {
  kvHeads: number;
  rope?: { theta: number };
}

/** The sequences of one incremental forward pass. */
export interface CachedStep {
  caches: readonly KVCache[];
  /** New tokens of each sequence; their ids are packed sequence after sequence. */
  counts: Int32Array;
  /** Position of every new token, packed like the ids. */
  positions: Int32Array;
  /** Keys of each sequence once this step's tokens are in: caches[s].length + counts[s]. */
  lengths: Int32Array;
  /** Compute logits only for each sequence's last new token (all a sampler needs). */
  lastOnly: boolean;
}

/** The step for these sequences, after checking that each one's new tokens fit its cache and the context. */
export function cachedStep(
  family: string,
  c: { context: number },
  caches: readonly KVCache[],
  counts: readonly number[],
  lastOnly = false,
): CachedStep {
  if (caches.length !== counts.length)
    throw new Error(`${family}: ${caches.length} KV caches for ${counts.length} sequences`);
  if (caches.length === 0) throw new Error(`${family}: a cached step needs at least one sequence`);
  if (new Set(caches).size !== caches.length)
    throw new Error(`${family}: the same KV cache is given for two sequences`);
  const lengths = new Int32Array(caches.length);
  let total = 0;
  for (let s = 0; s < caches.length; s++) {
    const [cache, n] = [caches[s]!, counts[s]!];
    if (!Number.isInteger(n) || n < 1)
      throw new Error(`${family}: sequence ${s} feeds ${n} tokens; it must feed at least one`);
    const limit = Math.min(c.context, cache.capacity);
    if (cache.length + n > limit)
      throw new Error(`${family}: positions up to ${cache.length + n} exceed the context of ${limit}`);
    lengths[s] = cache.length + n;
    total += n;
  }
  const positions = new Int32Array(total);
  for (let s = 0, r = 0; s < caches.length; s++)
    for (let i = 0; i < counts[s]!; i++) positions[r++] = caches[s]!.length + i;
  return { caches, counts: Int32Array.from(counts), positions, lengths, lastOnly };
}

/**
 * One layer's attention in a cached step: q [B, T, H·hd] and k, v [B, T, Hkv·hd] hold the new tokens of
 * every sequence, packed (B·T = Σ counts). Rotates q and k when rope is given, appends k and v to each
 * sequence's cache, and attends every new token over its own sequence's cache (inference only).
 */
export function attendCached(
  step: CachedStep,
  layer: number,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttendCachedOptions,
): Tensor {
  const qr = opts.rope ? rope(q, opts.heads, opts.rope.theta, step.positions) : q;
  const kr = opts.rope ? rope(k, opts.kvHeads, opts.rope.theta, step.positions) : k;
  for (let s = 0, row = 0; s < step.caches.length; s++) {
    step.caches[s]!.store(layer, kr.data, v.data, row, step.counts[s]!);
    row += step.counts[s]!;
  }
  return attentionCached(
    qr,
    step.caches.map((c) => c.keys(layer)),
    step.caches.map((c) => c.values(layer)),
    step.counts,
    step.lengths,
    opts,
  );
}

/** x [B, T, d] (packed like the step), or with step.lastOnly its rows at each sequence's last token, [S, 1, d]. */
export function stepOutput(x: Tensor, step: CachedStep | null): Tensor {
  if (!step?.lastOnly) return x;
  const d = x.shape[x.shape.length - 1]!;
  const last = new Int32Array(step.counts.length);
  for (let s = 0, end = 0; s < last.length; s++) {
    end += step.counts[s]!;
    last[s] = end - 1;
  }
  return embedding(reshape(x, [x.size / d, d]), last, [last.length, 1]);
}

/** Every position's keys and values for one sequence, layer by layer, up to `capacity` positions. */
export class KVCache {
  /** Positions already in the cache. */
  length = 0;
  readonly capacity: number;
  private readonly k: Tensor[] = [];
  private readonly v: Tensor[] = [];

  constructor(
    layers: number,
    capacity: number,
    private readonly kvWidth: number,
  ) {
    this.capacity = capacity;
    for (let l = 0; l < layers; l++) {
      this.k.push(keep(zeros([capacity, kvWidth])));
      this.v.push(keep(zeros([capacity, kvWidth])));
    }
  }

  /** Keys [capacity, kvWidth] of a layer; the first `length` rows (plus a step's stored rows) are valid. */
  keys(layer: number): Tensor {
    return this.k[layer]!;
  }

  values(layer: number): Tensor {
    return this.v[layer]!;
  }

  /**
   * Writes rows [row, row + count) of k and v ([rows, kvWidth] each) as this layer's positions
   * length .. length + count − 1. Call advance(count) once every layer has stored them.
   */
  store(layer: number, k: FloatArray, v: FloatArray, row: number, count: number): void {
    if (this.length + count > this.capacity)
      throw new Error(`KVCache: ${this.length + count} positions exceed the context of ${this.capacity}`);
    const w = this.kvWidth;
    this.k[layer]!.data.set(k.subarray(row * w, (row + count) * w), this.length * w);
    this.v[layer]!.data.set(v.subarray(row * w, (row + count) * w), this.length * w);
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
