// Picking the next token from a row of logits: greedy, temperature, top-k and top-p (nucleus).
//
// Order of operations (as in Hugging Face's samplers): logits / temperature → keep the k largest →
// keep the smallest prefix (by probability, largest first) whose mass reaches p → renormalise → draw
// one uniform number from the seeded Rng. Candidates are ordered by logit (as float32), ties by lower id,
// so the same logits and the same Rng state always pick the same token.
import { Rng } from "../tensor/random.js";

export interface SamplingOptions {
  /** 0 = greedy (argmax, lowest id on ties); otherwise logits are divided by it. Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens; 0 (default) keeps all. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p, in (0, 1]; default 1 (all). */
  topP?: number;
}

export type ResolvedSampling = Required<SamplingOptions>;

/** Fills in defaults and checks ranges; a bad option is an error that names it and the allowed values. */
export function resolveSampling(opts: SamplingOptions = {}): ResolvedSampling {
  const temperature = opts.temperature ?? 1;
  const topK = opts.topK ?? 0;
  const topP = opts.topP ?? 1;
  if (typeof temperature !== "number" || !Number.isFinite(temperature) || temperature < 0)
    throw new Error(`temperature must be a finite number ≥ 0 (0 = greedy), got ${temperature}`);
  if (typeof topK !== "number" || !Number.isInteger(topK) || topK < 0)
    throw new Error(`topK must be an integer ≥ 0 (0 = no limit), got ${topK}`);
  if (typeof topP !== "number" || !(topP > 0 && topP <= 1))
    throw new Error(`topP must be in (0, 1] (1 = no limit), got ${topP}`);
  return { temperature, topK, topP };
}

/** Index of the largest value, lowest index on ties; NaN or +Infinity is an error. */
export function argmax(logits: ArrayLike<number>): number {
  if (logits.length === 0) throw new Error("sampling: empty logits row");
  let best = 0;
  let bestValue = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (Number.isNaN(v) || v === Number.POSITIVE_INFINITY)
      throw new Error(`sampling: logit ${i} is ${v} (the model produced non-finite values)`);
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  if (bestValue === Number.NEGATIVE_INFINITY) throw new Error("sampling: every logit is -Infinity");
  return best;
}

/** Ids packed below the logit in a sort key: 2^21 (the tokenizer's vocabulary limit) keeps keys < 2^53. */
const ID_SPACE = 2 ** 21;
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * A sampler owns its options, its random stream and its scratch buffers, so drawing a token allocates
 * nothing after the first call. One seed fixes every draw: draw i uses exactly one uniform number
 * (greedy draws none).
 */
export class Sampler {
  readonly options: ResolvedSampling;
  readonly rng: Rng;
  private order = new Int32Array(0);
  private keys = new Float64Array(0);
  private weights = new Float64Array(0);

  constructor(opts: SamplingOptions = {}, rng: Rng | number = 0) {
    this.options = resolveSampling(opts);
    this.rng = typeof rng === "number" ? new Rng(rng) : rng;
  }

  /** True when the choice needs no random number (temperature 0 or top-k 1). */
  get greedy(): boolean {
    return this.options.temperature === 0 || this.options.topK === 1;
  }

  /** The next token id for one row of logits (length = vocabulary). */
  sample(logits: ArrayLike<number>): number {
    const best = argmax(logits); // validates the row, and is the answer when greedy
    if (this.greedy) return best;
    const n = logits.length;
    const { temperature, topK, topP } = this.options;
    const max = logits[best]!;
    if (this.weights.length < n) {
      this.weights = new Float64Array(n);
      this.order = new Int32Array(n);
      this.keys = new Float64Array(n);
    }
    const w = this.weights;
    const invT = 1 / temperature;
    // Unnormalised probabilities exp((l − max)/T); the largest is exactly 1, so the sum is ≥ 1.
    for (let i = 0; i < n; i++) w[i] = Math.exp((logits[i]! - max) * invT);

    const k = topK > 0 && topK < n ? topK : n;
    if (k === n && topP === 1) return this.draw(w, null, n);

    let total = 0;
    let minWeight = 0;
    if (k === n) {
      // Without top-k, only tokens that can be in the nucleus need sorting. Token j is outside it when
      // the tokens above it already hold p of the mass; those below hold at most n·w_j, so every token
      // with (n + 1)·w_j < (1 − p)·total is out. Half that bound leaves room for rounding.
      for (let i = 0; i < n; i++) total += w[i]!;
      minWeight = (0.5 * (1 - topP) * total) / (n + 1);
    }
    const order = this.topIds(logits, w, n, k, minWeight);
    if (k < n) for (let r = 0; r < order.length; r++) total += w[order[r]!]!;
    let keep = order.length;
    if (topP < 1) {
      const target = topP * total;
      let mass = 0;
      keep = 0;
      while (keep < order.length) {
        mass += w[order[keep]!]!;
        keep++;
        if (mass >= target) break;
      }
    }
    return this.draw(w, order, keep);
  }

  /**
   * The (at most k) best ids among those with weight ≥ minWeight, by logit descending, lower id first on
   * ties: a total order, so the result is deterministic. Each (logit, id) is packed into one exactly
   * representable number, smaller = better (the logit's float32 bits mapped to an order-preserving
   * unsigned integer, flipped, times 2^21, plus the id), so a max-heap keeps the k best in O(n log k) and
   * a plain numeric sort orders them; a comparator sort is several times slower.
   */
  private topIds(
    logits: ArrayLike<number>,
    w: Float64Array,
    n: number,
    k: number,
    minWeight: number,
  ): Int32Array {
    if (n > ID_SPACE) throw new Error(`sampling: a vocabulary of ${n} is larger than ${ID_SPACE}`);
    const keys = this.keys;
    let m = 0;
    for (let i = 0; i < n; i++) {
      if (w[i]! < minWeight) continue;
      f32[0] = logits[i]! || 0; // -0 sorts with +0
      const bits = u32[0]!;
      const ascending = bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
      const key = (0xffffffff - ascending) * ID_SPACE + i;
      if (m < k) {
        keys[m++] = key;
        if (m === k) for (let j = (k >> 1) - 1; j >= 0; j--) siftDown(keys, j, k);
      } else if (key < keys[0]!) {
        keys[0] = key;
        siftDown(keys, 0, k);
      }
    }
    const best = keys.subarray(0, m).sort();
    const order = this.order.subarray(0, m);
    for (let r = 0; r < m; r++) order[r] = best[r]! % ID_SPACE;
    return order;
  }

  /** Draws among the first `count` candidates (ids order[r], or r itself when order is null). */
  private draw(w: Float64Array, order: Int32Array | null, count: number): number {
    let total = 0;
    for (let r = 0; r < count; r++) total += w[order ? order[r]! : r]!;
    let u = this.rng.uniform() * total;
    let last = -1;
    for (let r = 0; r < count; r++) {
      const id = order ? order[r]! : r;
      const p = w[id]!;
      if (p === 0) continue;
      last = id;
      u -= p;
      if (u < 0) return id;
    }
    return last; // rounding left u ≥ 0 after the last candidate: it takes the remainder
  }
}

/** Restores the max-heap property of heap[0, size) below position i. */
function siftDown(heap: Float64Array, i: number, size: number): void {
  const x = heap[i]!;
  for (;;) {
    let c = 2 * i + 1;
    if (c >= size) break;
    if (c + 1 < size && heap[c + 1]! > heap[c]!) c++;
    if (heap[c]! <= x) break;
    heap[i] = heap[c]!;
    i = c;
  }
  heap[i] = x;
}

/** One-off draw (builds a Sampler); prefer a Sampler in a loop. */
export function sampleToken(logits: ArrayLike<number>, opts: SamplingOptions, rng: Rng): number {
  return new Sampler(opts, rng).sample(logits);
}
