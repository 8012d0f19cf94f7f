// Training batches from token arrays.
//
// A batch is B windows of T+1 consecutive tokens at uniformly random offsets: inputs are the first T,
// targets the last T (the next token at every position). The random stream for step s is derived from
// (seed, step) alone, so the sampler has no hidden state: resuming at step s draws exactly the batches
// an uninterrupted run would have drawn.

import { Rng } from "../tensor/random.js";
import type { TokenArray } from "./shards.js";

/** Anything that can draw a uniform integer in [0, n): the engine's Rng satisfies it. */
export interface IntRng {
  int(n: number): number;
}

export interface Batch {
  /** [rows × context] token ids, row-major. */
  inputs: Int32Array;
  /** [rows × context] next-token ids. */
  targets: Int32Array;
  rows: number;
  context: number;
}

function mix32(x: number): number {
  let z = x >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** The random stream for one training step: a pure function of (seed, step). */
export function batchRng(seed: number, step: number): Rng {
  if (!Number.isSafeInteger(step) || step < 0)
    throw new Error(`step must be a non-negative integer, got ${step}`);
  const lo = step >>> 0;
  const hi = Math.floor(step / 2 ** 32) >>> 0;
  const s = seed >>> 0;
  return new Rng([
    mix32(s ^ 0x9e3779b9),
    mix32(lo ^ 0x7f4a7c15),
    mix32((s + Math.imul(lo, 0x85ebca6b)) ^ 0x27d4eb2f),
    mix32(hi ^ mix32(lo) ^ 0x165667b1) | 1,
  ]);
}

function asShards(tokens: TokenArray | readonly TokenArray[]): readonly TokenArray[] {
  return Array.isArray(tokens) ? tokens : [tokens as TokenArray];
}

/**
 * Draw `batchSize` random windows of `context + 1` tokens (uniform over every window of every shard).
 * Throws when no shard is longer than the context.
 */
export function sampleBatch(
  tokens: TokenArray | readonly TokenArray[],
  batchSize: number,
  context: number,
  rng: IntRng,
): Batch {
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new Error(`batchSize must be ≥ 1, got ${batchSize}`);
  if (!Number.isInteger(context) || context < 1) throw new Error(`context must be ≥ 1, got ${context}`);
  const shards = asShards(tokens);
  // Window starts per shard: a shard of n tokens has n - context windows of length context + 1.
  const cumulative: number[] = [];
  let total = 0;
  for (const s of shards) {
    total += Math.max(0, s.length - context);
    cumulative.push(total);
  }
  if (total === 0) {
    const longest = Math.max(0, ...shards.map((s) => s.length));
    throw new Error(`the data (${longest} tokens in the longest shard) is too short for context ${context}`);
  }
  const inputs = new Int32Array(batchSize * context);
  const targets = new Int32Array(batchSize * context);
  for (let row = 0; row < batchSize; row++) {
    let r = rng.int(total);
    let k = 0;
    while (r >= cumulative[k]) k++;
    if (k > 0) r -= cumulative[k - 1];
    const src = shards[k];
    const o = row * context;
    for (let t = 0; t < context; t++) {
      inputs[o + t] = src[r + t];
      targets[o + t] = src[r + t + 1];
    }
  }
  return { inputs, targets, rows: batchSize, context };
}

/** The training batch for a step: sampleBatch with batchRng(seed, step). */
export function batchAt(
  tokens: TokenArray | readonly TokenArray[],
  batchSize: number,
  context: number,
  seed: number,
  step: number,
): Batch {
  return sampleBatch(tokens, batchSize, context, batchRng(seed, step));
}

/**
 * Evaluation batches: consecutive non-overlapping windows from the start of each shard (deterministic,
 * each token predicted once). The last batch may have fewer rows. Stops after maxBatches if given.
 */
export function* evalBatches(
  tokens: TokenArray | readonly TokenArray[],
  batchSize: number,
  context: number,
  maxBatches = Infinity,
): Generator<Batch> {
  const starts: [TokenArray, number][] = [];
  for (const s of asShards(tokens)) {
    for (let o = 0; o + context + 1 <= s.length; o += context) starts.push([s, o]);
  }
  for (let b = 0; b * batchSize < starts.length && b < maxBatches; b++) {
    const rows = Math.min(batchSize, starts.length - b * batchSize);
    const inputs = new Int32Array(rows * context);
    const targets = new Int32Array(rows * context);
    for (let row = 0; row < rows; row++) {
      const [src, start] = starts[b * batchSize + row];
      for (let t = 0; t < context; t++) {
        inputs[row * context + t] = src[start + t];
        targets[row * context + t] = src[start + t + 1];
      }
    }
    yield { inputs, targets, rows, context };
  }
}
