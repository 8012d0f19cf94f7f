// The `synthetic` corpus: a seeded, procedurally generated "language" whose true entropy rate is
// known exactly, so that the irreducible loss E of a scaling fit can be checked against the truth.
//
// The source is a random walk on a weighted undirected graph over a vocabulary of words: a symmetric
// weight matrix W (with self-loops) gives transitions P_ij = W_ij / w_i, w_i = Σ_j W_ij. For such a
// reversible chain the stationary distribution is known in closed form, π_i = w_i / Σ_k w_k, so the
// entropy rate per word is exact (no simulation, no power iteration):
//   H_word = −Σ_i π_i Σ_j P_ij ln P_ij   (nats per word).
// The text renders each word followed by one space. Words are non-empty lowercase ASCII without
// spaces, so word sequences map one-to-one onto byte strings, and the byte stream's entropy rate is
//   H_byte = H_word / E_π[len(word) + 1]  (nats per byte),
// exact as a rate (a long-run limit; a finite sample's per-byte NLL converges to it). A model that
// predicts whole words as tokens should approach H_word; a byte-level model (context ≥ two words)
// should approach H_byte. With any other tokenizer, convert through bytes: per-token loss ×
// (tokens / bytes) is comparable with H_byte.
// The chain is started from π, so the stream is stationary from its first word.

import { type RandomStream, randomStream } from "../tensor/random.js";

export interface SyntheticOptions {
  /** Seed of the language itself (vocabulary and transition structure). */
  seed?: number;
  /** Number of distinct words. */
  vocabSize?: number;
  /** Random neighbours drawn per word (each edge is added in both directions). */
  neighbours?: number;
}

export class SyntheticLanguage {
  readonly seed: number;
  readonly words: string[];
  /** next[i]: the words that can follow word i; prob[i]: their probabilities (summing to 1). */
  readonly next: Int32Array[];
  readonly prob: Float64Array[];
  private readonly cumulative: Float64Array[];
  private readonly cumulativeStationary: Float64Array;
  readonly stationary: Float64Array;
  /** Exact entropy rate in nats per word token. */
  readonly entropyPerWord: number;
  /** E_π[bytes per word], counting the trailing space. */
  readonly bytesPerWord: number;
  /** Exact entropy rate in nats per byte of the rendered text. */
  readonly entropyPerByte: number;

  constructor(options: SyntheticOptions = {}) {
    const seed = options.seed ?? 1;
    const V = options.vocabSize ?? 1000;
    const k = options.neighbours ?? 12;
    if (!(Number.isInteger(V) && V >= 2))
      throw new Error(`synthetic: vocabSize must be an integer ≥ 2, got ${V}`);
    if (!(Number.isInteger(k) && k >= 1))
      throw new Error(`synthetic: neighbours must be an integer ≥ 1, got ${k}`);
    this.seed = seed;
    const rng = randomStream(seed);
    this.words = makeWords(V, rng);

    // Symmetric weights. Node strength s_i = 1/(i+1)^0.8 makes frequent words frequent (Zipf-like):
    // W_ij = s_i·s_j·u_ij with u_ij ~ Exp(1) random affinities.
    const strength = Array.from({ length: V }, (_, i) => 1 / (i + 1) ** 0.8);
    const adj: Map<number, number>[] = Array.from({ length: V }, () => new Map());
    const addEdge = (i: number, j: number, w: number) => {
      adj[i]!.set(j, (adj[i]!.get(j) ?? 0) + w);
      if (i !== j) adj[j]!.set(i, (adj[j]!.get(i) ?? 0) + w);
    };
    for (let i = 0; i < V; i++) {
      // A ring keeps the graph connected; the self-loop on word 0 makes the chain aperiodic.
      addEdge(i, (i + 1) % V, 0.05 * strength[i]! * strength[(i + 1) % V]!);
      for (let n = 0; n < k; n++) {
        // Prefer frequent partners: draw j with probability ∝ strength (inverse-CDF on a Zipf-ish table
        // would be exact; a rejection step is simpler and only shapes the graph, not the entropy formula).
        let j: number;
        do j = rng.int(V);
        while (rng.next() > strength[j]! / strength[0]!);
        addEdge(i, j, strength[i]! * strength[j]! * -Math.log(1 - rng.next()));
      }
    }
    addEdge(0, 0, strength[0]! * strength[0]!);

    this.next = [];
    this.prob = [];
    this.cumulative = [];
    const rowSum = new Float64Array(V);
    let total = 0;
    for (let i = 0; i < V; i++) {
      const entries = [...adj[i]!.entries()].sort((a, b) => a[0] - b[0]);
      let w = 0;
      for (const [, x] of entries) w += x;
      rowSum[i] = w;
      total += w;
      this.next.push(Int32Array.from(entries, (e) => e[0]));
      const p = Float64Array.from(entries, (e) => e[1] / w);
      this.prob.push(p);
      const c = new Float64Array(p.length);
      let acc = 0;
      for (let j = 0; j < p.length; j++) c[j] = acc += p[j]!;
      c[p.length - 1] = 1;
      this.cumulative.push(c);
    }
    this.stationary = Float64Array.from(rowSum, (w) => w / total);
    this.cumulativeStationary = new Float64Array(V);
    let acc = 0;
    for (let i = 0; i < V; i++) this.cumulativeStationary[i] = acc += this.stationary[i]!;
    this.cumulativeStationary[V - 1] = 1;

    let H = 0;
    let bytes = 0;
    for (let i = 0; i < V; i++) {
      let h = 0;
      for (const p of this.prob[i]!) if (p > 0) h -= p * Math.log(p);
      H += this.stationary[i]! * h;
      bytes += this.stationary[i]! * (this.words[i]!.length + 1);
    }
    this.entropyPerWord = H;
    this.bytesPerWord = bytes;
    this.entropyPerByte = H / bytes;
  }

  /** ln P(next | prev) under the true model (−Infinity for an impossible transition). */
  transitionLogProb(prev: number, next: number): number {
    const ids = this.next[prev]!;
    let lo = 0;
    let hi = ids.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (ids[mid] === next) return Math.log(this.prob[prev]![mid]!);
      if (ids[mid]! < next) lo = mid + 1;
      else hi = mid - 1;
    }
    return Number.NEGATIVE_INFINITY;
  }

  /** ln π(word): the probability of the first word of a stream. */
  initialLogProb(word: number): number {
    return Math.log(this.stationary[word]!);
  }

  /** An unlimited stream of word ids; `seed` picks the sample (the language is fixed by the constructor). */
  *wordIds(seed = 0): Generator<number, never, undefined> {
    const rng = randomStream(seed ^ 0x5bd1e995);
    let w = pick(this.cumulativeStationary, rng.next());
    for (;;) {
      yield w;
      w = this.next[w]![pick(this.cumulative[w]!, rng.next())]!;
    }
  }

  /** An unlimited stream of text chunks of `wordsPerChunk` words, each word followed by a space. */
  *text(seed = 0, wordsPerChunk = 256): Generator<string, never, undefined> {
    const ids = this.wordIds(seed);
    for (;;) {
      let chunk = "";
      for (let i = 0; i < wordsPerChunk; i++) chunk += `${this.words[ids.next().value]!} `;
      yield chunk;
    }
  }

  /** The first `bytes` bytes of sample `seed` (the stream's prefix, so samples nest). */
  sampleText(bytes: number, seed = 0): string {
    if (!(Number.isInteger(bytes) && bytes >= 0))
      throw new Error(`sampleText: bytes must be a non-negative integer`);
    let out = "";
    for (const chunk of this.text(seed)) {
      out += chunk;
      if (out.length >= bytes) break;
    }
    return out.slice(0, bytes);
  }
}

/** Index of the first cumulative value above u (binary search). */
function pick(cumulative: Float64Array, u: number): number {
  let lo = 0;
  let hi = cumulative.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cumulative[mid]! > u) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

const CONSONANTS = "bdfgklmnprstvz";
const VOWELS = "aeiou";

/** V distinct pronounceable words; frequent (low-index) words are shorter, as in natural language. */
function makeWords(V: number, rng: RandomStream): string[] {
  const seen = new Set<string>();
  const words: string[] = [];
  for (let i = 0; i < V; i++) {
    const syllables = 1 + Math.floor(Math.log10(i + 1)) + rng.int(2);
    for (let attempt = 0; ; attempt++) {
      let w = "";
      for (let s = 0; s < syllables + Math.floor(attempt / 20); s++) {
        w += CONSONANTS[rng.int(CONSONANTS.length)]! + VOWELS[rng.int(VOWELS.length)]!;
      }
      if (!seen.has(w)) {
        seen.add(w);
        words.push(w);
        break;
      }
    }
  }
  return words;
}

/** The built-in `synthetic` corpus with its default settings. */
export function syntheticCorpus(options: SyntheticOptions = {}): SyntheticLanguage {
  return new SyntheticLanguage(options);
}

/**
 * `count` documents of `wordsPerDocument` words, consecutive slices of sample `seed` (for `prepare`).
 * Each document starts mid-stream, so a model that sees only the document pays at most the first
 * word's extra cost (≤ ln V nats) per document: per-word loss ≥ H_word + O(1/wordsPerDocument).
 */
export function syntheticDocuments(
  language: SyntheticLanguage,
  count: number,
  wordsPerDocument: number,
  seed = 0,
): string[] {
  if (!(Number.isInteger(count) && count >= 1))
    throw new Error(`syntheticDocuments: count must be ≥ 1, got ${count}`);
  if (!(Number.isInteger(wordsPerDocument) && wordsPerDocument >= 1)) {
    throw new Error(`syntheticDocuments: wordsPerDocument must be ≥ 1, got ${wordsPerDocument}`);
  }
  const chunks = language.text(seed, wordsPerDocument);
  return Array.from({ length: count }, () => chunks.next().value);
}
