// Byte-level BPE training (GPT-2 style), fast enough for tens of MB of text on one core.
//
// 1. Count pre-tokens (GPT-2 regex) in a Map: text of any size becomes ~10^4–10^6 distinct words.
// 2. Count adjacent symbol pairs over the words, remembering which words hold each pair.
// 3. Repeatedly take the most frequent pair from a max-heap (ties: smaller ids first, so the result
//    depends only on the counts), rewrite only the words that contain it, and update the pair counts
//    by the local changes. A count that goes up is pushed again; one that goes down leaves a stale
//    entry that is an upper bound, refreshed lazily when it reaches the top.

import { GPT2_SPLIT_PATTERN } from "./byte-level.js";
import { END_OF_TEXT, MAX_VOCAB, pairKey, Tokenizer } from "./tokenizer.js";

export interface TrainBpeOptions {
  /** Total vocabulary: 256 bytes + special tokens + merges. */
  vocabSize: number;
  /** Special tokens, given ids right after the 256 bytes. Default ["<|endoftext|>"]. */
  specialTokens?: string[];
  /** Stop early when the best pair occurs fewer times than this (default 2). */
  minFrequency?: number;
  /** Called every `progressEvery` merges (default 256) with the number of merges done and planned. */
  onProgress?: (done: number, total: number) => void;
  progressEvery?: number;
}

const utf8 = new TextEncoder();

/** Count GPT-2 pre-tokens over texts (exposed for callers that want to stream very large inputs). */
export function countWords(
  texts: Iterable<string>,
  counts: Map<string, number> = new Map(),
): Map<string, number> {
  const re = new RegExp(GPT2_SPLIT_PATTERN.source, GPT2_SPLIT_PATTERN.flags);
  for (const text of texts) {
    re.lastIndex = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      const w = m[0];
      counts.set(w, (counts.get(w) ?? 0) + 1);
    }
  }
  return counts;
}

/** Max-heap of (count, pair key): larger count first, then smaller key (smaller left id, then right id). */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.counts.length;
  }

  private above(i: number, j: number): boolean {
    const c = this.counts;
    return c[i] > c[j] || (c[i] === c[j] && this.keys[i] < this.keys[j]);
  }

  private swap(i: number, j: number): void {
    const c = this.counts;
    const k = this.keys;
    [c[i], c[j]] = [c[j], c[i]];
    [k[i], k[j]] = [k[j], k[i]];
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** Remove the top; returns [count, key]. */
  pop(): [number, number] {
    const top: [number, number] = [this.counts[0], this.keys[0]];
    const lastCount = this.counts.pop()!;
    const lastKey = this.keys.pop()!;
    const n = this.counts.length;
    if (n > 0) {
      this.counts[0] = lastCount;
      this.keys[0] = lastKey;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < n && this.above(l, best)) best = l;
        if (r < n && this.above(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }
}

/**
 * Train a byte-level BPE tokenizer on texts. Token ids: 0..255 are the bytes, then the special tokens,
 * then one token per merge in the order learned. Deterministic: the same word counts give the same merges.
 */
export function trainBpe(texts: Iterable<string>, options: TrainBpeOptions): Tokenizer {
  return trainBpeFromCounts(countWords(texts), options);
}

/** Train from pre-token counts (see countWords). */
export function trainBpeFromCounts(wordCounts: Map<string, number>, options: TrainBpeOptions): Tokenizer {
  const specials = options.specialTokens ?? [END_OF_TEXT];
  const minFrequency = options.minFrequency ?? 2;
  const base = 256 + specials.length;
  const { vocabSize } = options;
  if (!Number.isInteger(vocabSize) || vocabSize < base || vocabSize > MAX_VOCAB) {
    throw new Error(
      `vocabSize must be an integer from ${base} (256 bytes + ${specials.length} special) to ${MAX_VOCAB}`,
    );
  }
  if (!(minFrequency >= 1)) throw new Error(`minFrequency must be at least 1, got ${minFrequency}`);

  // Words as arrays of symbol ids (initially byte values); single-symbol words have no pairs to merge.
  const words: number[][] = [];
  const freqs: number[] = [];
  for (const [w, f] of wordCounts) {
    const bytes = utf8.encode(w);
    if (bytes.length < 2) continue;
    words.push(Array.from(bytes));
    freqs.push(f);
  }

  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, number[]>();
  const notePair = (key: number, wordIndex: number): void => {
    let list = pairWords.get(key);
    if (list === undefined) pairWords.set(key, (list = []));
    if (list[list.length - 1] !== wordIndex) list.push(wordIndex);
  };
  for (let w = 0; w < words.length; w++) {
    const s = words[w];
    for (let i = 0; i + 1 < s.length; i++) {
      const k = pairKey(s[i], s[i + 1]);
      pairCount.set(k, (pairCount.get(k) ?? 0) + freqs[w]);
      notePair(k, w);
    }
  }
  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push(c, k);

  const tokenBytes: (Uint8Array | null)[] = [];
  for (let b = 0; b < 256; b++) tokenBytes.push(Uint8Array.of(b));
  for (let i = 0; i < specials.length; i++) tokenBytes.push(null);
  // Byte strings as latin1 strings, to find tokens by content.
  const tokenKey: string[] = tokenBytes.map((t) => (t === null ? "" : String.fromCharCode(t[0])));
  const idOfKey = new Map<string, number>();
  for (let b = 0; b < 256; b++) idOfKey.set(tokenKey[b], b);
  const merges: [number, number][] = [];
  const total = vocabSize - base;
  const every = options.progressEvery ?? 256;

  while (tokenBytes.length < vocabSize && heap.size > 0) {
    const [stored, key] = heap.pop();
    const current = pairCount.get(key) ?? 0;
    if (current === 0) continue;
    if (stored !== current) {
      heap.push(current, key); // stale entry: re-queue with the true (smaller) count
      continue;
    }
    if (current < minFrequency) break;

    const a = Math.floor(key / 2 ** 21);
    const b = key - a * 2 ** 21;
    // Rarely two different merges spell the same bytes (e.g. "a"+"bc" and "ab"+"c"); like Hugging Face's
    // trainer, the later merge then reuses the existing token instead of adding a duplicate.
    const abKey = tokenKey[a] + tokenKey[b];
    let c = idOfKey.get(abKey);
    if (c === undefined) {
      c = tokenBytes.length;
      const ab = new Uint8Array(tokenBytes[a]!.length + tokenBytes[b]!.length);
      ab.set(tokenBytes[a]!, 0);
      ab.set(tokenBytes[b]!, tokenBytes[a]!.length);
      tokenBytes.push(ab);
      tokenKey.push(abKey);
      idOfKey.set(abKey, c);
    }
    merges.push([a, b]);

    const delta = new Map<number, number>();
    const add = (k: number, d: number): void => {
      delta.set(k, (delta.get(k) ?? 0) + d);
    };
    for (const w of pairWords.get(key) ?? []) {
      const s = words[w];
      const f = freqs[w];
      const n = s.length;
      let out = 0;
      let r = 0;
      while (r < n) {
        if (r + 1 < n && s[r] === a && s[r + 1] === b) {
          // Pairs around this occurrence: (prev, a) → (prev, c) and (b, next) → (c, next).
          // prev is the already-rewritten symbol, so back-to-back occurrences cancel out correctly.
          if (out > 0) {
            const p = s[out - 1];
            add(pairKey(p, a), -f);
            const pk = pairKey(p, c);
            add(pk, f);
            notePair(pk, w);
          }
          if (r + 2 < n) {
            const q = s[r + 2];
            add(pairKey(b, q), -f);
            const qk = pairKey(c, q);
            add(qk, f);
            notePair(qk, w);
          }
          s[out++] = c;
          r += 2;
        } else {
          s[out++] = s[r++];
        }
      }
      s.length = out;
    }
    pairCount.delete(key);
    pairWords.delete(key);
    for (const [k, d] of delta) {
      if (d === 0 || k === key) continue;
      const next = (pairCount.get(k) ?? 0) + d;
      if (next > 0) pairCount.set(k, next);
      else {
        pairCount.delete(k);
        pairWords.delete(k);
      }
      if (d > 0) heap.push(next, k); // every increase is queued, so each pair's best entry stays an upper bound
    }
    if (options.onProgress && merges.length % every === 0) options.onProgress(merges.length, total);
  }
  options.onProgress?.(merges.length, total);

  return new Tokenizer({
    tokenBytes,
    merges,
    specialTokens: specials.map((content, i) => ({ content, id: 256 + i })),
  });
}
