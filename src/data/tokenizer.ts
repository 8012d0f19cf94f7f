// One tokenizer class for both of afterscale's tokenizers: byte-level BPE with merges applied by rank,
// and the plain byte tokenizer, which is the same thing with no merges (256 byte tokens + specials).
// Serialises to a Hugging Face tokenizer.json (see toJSON) so other tools load it and get the same ids.

import { createHash } from "node:crypto";
import { type AddedToken, AddedTokenSplitter } from "./added-tokens.js";
import { bytesToTokenString, preTokenize } from "./byte-level.js";

export const END_OF_TEXT = "<|endoftext|>";

/**
 * An added token (tokenizer.json `added_tokens`): its text in the input is cut out before BPE and becomes
 * its id, as in Hugging Face. Flags are Hugging Face's (see added-tokens.ts); all but `special` default to
 * false, and `normalized` to `!special`.
 */
export interface SpecialToken {
  content: string;
  id: number;
  /** Default true. encode({ allowSpecial: false }) keeps special ones as text; decode can skip them. */
  special?: boolean;
  /** Matched only where no letter, digit or underscore touches it. */
  singleWord?: boolean;
  /** Absorbs the whitespace before it. */
  lstrip?: boolean;
  /** Absorbs the whitespace after it. */
  rstrip?: boolean;
  /** Matched in Hugging Face's second (after-normalizer) pass rather than the first. */
  normalized?: boolean;
}

/** Everything that defines a byte-level BPE tokenizer. */
export interface TokenizerSpec {
  /** Bytes of every ordinary token, indexed by id; null at the ids of special tokens. */
  tokenBytes: (Uint8Array | null)[];
  /** Merges in rank order as pairs of token ids; merge i yields the token whose bytes are the two joined. */
  merges: [number, number][];
  specialTokens: SpecialToken[];
  /** Where the tokenizer came from (a file path), for error messages. */
  name?: string;
}

/** Pair keys pack two ids into one number; ids must stay below 2^21. */
const PAIR_BASE = 2 ** 21;
export const MAX_VOCAB = PAIR_BASE;
export const pairKey = (a: number, b: number): number => a * PAIR_BASE + b;

const CACHE_LIMIT = 200_000;
const utf8 = new TextEncoder();

export class Tokenizer {
  readonly vocabSize: number;
  /** Every added token (special or not), with all flags filled in. */
  readonly specialTokens: readonly AddedToken[];
  readonly name: string;
  readonly merges: readonly (readonly [number, number])[];
  private readonly tokenBytes: (Uint8Array | null)[];
  private readonly byteToId = new Int32Array(256).fill(-1);
  private readonly addedById = new Map<number, AddedToken>();
  private readonly specialByContent = new Map<string, number>();
  private readonly mergeRank = new Map<number, number>(); // pairKey → rank
  private readonly mergeResult: Int32Array; // rank → id of the merged token
  private readonly cache = new Map<string, number[]>();
  private readonly splitter: AddedTokenSplitter | null;
  private readonly onlySpecialAdded: boolean;
  private cachedJson: string | null = null;

  constructor(spec: TokenizerSpec) {
    const n = spec.tokenBytes.length;
    if (n > MAX_VOCAB) throw new Error(`vocabulary of ${n} tokens is larger than the maximum ${MAX_VOCAB}`);
    this.vocabSize = n;
    this.tokenBytes = spec.tokenBytes;
    this.name = spec.name ?? "tokenizer";
    const added = spec.specialTokens.map(withDefaults);
    this.specialTokens = added;
    for (const s of added) {
      if (!Number.isInteger(s.id) || s.id < 0 || s.id >= n || spec.tokenBytes[s.id] !== null) {
        throw new Error(`special token ${JSON.stringify(s.content)} has an invalid id ${s.id}`);
      }
      if (s.content.length === 0) throw new Error("a special token cannot be the empty string");
      if (this.specialByContent.has(s.content)) throw new Error(`special token ${s.content} is listed twice`);
      this.addedById.set(s.id, s);
      this.specialByContent.set(s.content, s.id);
    }
    const idOfString = new Map<string, number>();
    for (let id = 0; id < n; id++) {
      const bytes = spec.tokenBytes[id];
      if (bytes === null) {
        if (!this.addedById.has(id)) throw new Error(`token id ${id} has neither bytes nor a special token`);
        continue;
      }
      if (bytes.length === 0) throw new Error(`token id ${id} has no bytes`);
      const s = bytesToTokenString(bytes);
      if (idOfString.has(s))
        throw new Error(`token ${JSON.stringify(s)} appears twice (ids ${idOfString.get(s)}, ${id})`);
      idOfString.set(s, id);
      if (bytes.length === 1) this.byteToId[bytes[0]] = id;
    }
    // A vocabulary may lack some bytes (Hugging Face loads such files too): text that needs one fails in
    // encode, naming the character, rather than every use of the tokenizer failing here.
    this.splitter = added.length > 0 ? new AddedTokenSplitter(added) : null;
    this.onlySpecialAdded = added.every((t) => t.special);
    this.merges = spec.merges.map(([a, b]) => [a, b] as const);
    this.mergeResult = new Int32Array(spec.merges.length);
    spec.merges.forEach(([a, b], rank) => {
      const left = spec.tokenBytes[a];
      const right = spec.tokenBytes[b];
      if (!left || !right) throw new Error(`merge ${rank} refers to a missing or special token (${a}, ${b})`);
      const merged = idOfString.get(bytesToTokenString(left) + bytesToTokenString(right));
      if (merged === undefined)
        throw new Error(`merge ${rank} produces a token that is not in the vocabulary`);
      const key = pairKey(a, b);
      if (this.mergeRank.has(key)) throw new Error(`merge ${rank} repeats an earlier merge`);
      this.mergeRank.set(key, rank);
      this.mergeResult[rank] = merged;
    });
  }

  /** Id of a special token such as "<|endoftext|>"; throws if the tokenizer does not have it. */
  specialId(content: string): number {
    const id = this.specialByContent.get(content);
    if (id === undefined) throw new Error(`the tokenizer has no special token ${content}`);
    return id;
  }

  /** Id of <|endoftext|>, the document separator. */
  get eotId(): number {
    return this.specialId(END_OF_TEXT);
  }

  /** Bytes of an ordinary token (null for special tokens). */
  bytesOf(id: number): Uint8Array | null {
    const b = this.tokenBytes[id];
    if (b === undefined) throw new Error(`token id ${id} is outside the vocabulary (size ${this.vocabSize})`);
    return b;
  }

  /**
   * This tokenizer with `contents` appended as special tokens (ids vocabSize, vocabSize+1, …), skipping any
   * it already has: a trained tokenizer gains tokens such as chat markers without retraining, and every
   * existing id keeps its meaning (a model needs only new embedding rows, see nn's resizeVocabulary).
   */
  withAddedTokens(contents: readonly string[]): Tokenizer {
    const missing = [...new Set(contents)].filter((c) => !this.specialByContent.has(c));
    if (missing.length === 0) return this;
    return new Tokenizer({
      tokenBytes: [...this.tokenBytes, ...missing.map(() => null)],
      merges: this.merges.map(([a, b]) => [a, b]),
      specialTokens: [
        ...this.specialTokens,
        ...missing.map((content, i) => ({ content, id: this.vocabSize + i, special: true })),
      ],
      name: this.name,
    });
  }

  /** True when the tokenizer has this added token. */
  hasSpecial(content: string): boolean {
    return this.specialByContent.has(content);
  }

  /** Human-readable token: the GPT-2 printable string, or the special token's content. */
  tokenString(id: number): string {
    const b = this.bytesOf(id);
    return b === null ? this.addedById.get(id)!.content : bytesToTokenString(b);
  }

  /**
   * Text → ids, as Hugging Face encodes: added tokens such as "<|endoftext|>" in `text` become their ids
   * (see added-tokens.ts). With allowSpecial false, special tokens are encoded as ordinary text instead
   * (Hugging Face's encode_special_tokens), for text that must not contain separators; non-special added
   * tokens are still matched.
   */
  encode(text: string, options: { allowSpecial?: boolean } = {}): number[] {
    const out: number[] = [];
    const keepSpecialAsText = !(options.allowSpecial ?? true);
    if (this.splitter === null || (keepSpecialAsText && this.onlySpecialAdded)) {
      this.encodeOrdinary(text, out);
      return out;
    }
    for (const piece of this.splitter.split(text, keepSpecialAsText)) {
      if (typeof piece === "number") out.push(piece);
      else this.encodeOrdinary(piece, out);
    }
    return out;
  }

  private encodeOrdinary(text: string, out: number[]): void {
    for (const word of preTokenize(text)) {
      let ids = this.cache.get(word);
      if (ids === undefined) {
        ids = this.bpe(utf8.encode(word), word);
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(word, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  /** Apply merges to one pre-token: repeatedly merge every occurrence of the lowest-ranked pair. */
  private bpe(bytes: Uint8Array, word: string): number[] {
    let syms: number[] = Array.from(bytes, (b) => this.byteToId[b]);
    if (syms.includes(-1)) this.throwMissingByte(word);
    while (syms.length > 1) {
      let best = Infinity;
      for (let i = 0; i + 1 < syms.length; i++) {
        const r = this.mergeRank.get(pairKey(syms[i], syms[i + 1]));
        if (r !== undefined && r < best) best = r;
      }
      if (best === Infinity) break;
      const [a, b] = this.merges[best];
      const c = this.mergeResult[best];
      const next: number[] = [];
      for (let i = 0; i < syms.length; i++) {
        if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) {
          next.push(c);
          i++;
        } else {
          next.push(syms[i]);
        }
      }
      syms = next;
    }
    return syms;
  }

  private throwMissingByte(word: string): never {
    for (const ch of word) {
      const missing = [...utf8.encode(ch)].find((b) => this.byteToId[b] < 0);
      if (missing === undefined) continue;
      const code = `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
      const hex = `0x${missing.toString(16).padStart(2, "0")}`;
      throw new Error(
        `${this.name}: cannot encode ${JSON.stringify(ch)} (${code}): the vocabulary has no token for byte ${hex}`,
      );
    }
    throw new Error(`${this.name}: cannot encode ${JSON.stringify(word)}: a byte has no token`);
  }

  /**
   * Ids → bytes; added tokens contribute the UTF-8 of their content, or nothing for special ones when
   * skipSpecial is set (Hugging Face's skip_special_tokens).
   */
  decodeBytes(ids: ArrayLike<number>, options: { skipSpecial?: boolean } = {}): Uint8Array {
    const skip = options.skipSpecial ?? false;
    const parts: Uint8Array[] = [];
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      let b = this.bytesOf(ids[i]);
      if (b === null) {
        const token = this.addedById.get(ids[i])!;
        if (skip && token.special) continue;
        b = utf8.encode(token.content);
      }
      parts.push(b);
      total += b.length;
    }
    const out = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  /**
   * Ids → text. Invalid UTF-8 (e.g. a sequence cut mid-character) decodes to U+FFFD, as in Hugging Face.
   * Special tokens appear as their text unless skipSpecial is set; that default is the one of
   * `@huggingface/tokenizers` and of transformers' decode (the Python `tokenizers` default is to skip).
   */
  decode(ids: ArrayLike<number>, options: { skipSpecial?: boolean } = {}): string {
    return new TextDecoder("utf-8", { fatal: false, ignoreBOM: true }).decode(this.decodeBytes(ids, options));
  }

  /** The Hugging Face tokenizer.json object; key order and contents are canonical for a given tokenizer. */
  toJSON(): object {
    const vocab: Record<string, number> = Object.create(null); // a token may be spelled "__proto__"
    for (let id = 0; id < this.vocabSize; id++) vocab[this.tokenString(id)] = id;
    const merges = this.merges.map(([a, b]) => `${this.tokenString(a)} ${this.tokenString(b)}`);
    const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
    return {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: [...this.specialTokens]
        .sort((x, y) => x.id - y.id)
        .map((s) => ({
          id: s.id,
          content: s.content,
          single_word: s.singleWord,
          lstrip: s.lstrip,
          rstrip: s.rstrip,
          normalized: s.normalized,
          special: s.special,
        })),
      normalizer: null,
      pre_tokenizer: byteLevel,
      post_processor: null,
      decoder: byteLevel,
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges,
      },
    };
  }

  /** Canonical tokenizer.json text (2-space indented, trailing newline). */
  toJsonText(): string {
    if (this.cachedJson === null) this.cachedJson = `${JSON.stringify(this.toJSON(), null, 2)}\n`;
    return this.cachedJson;
  }

  /** sha256 (hex) of the canonical tokenizer.json: equal hashes mean identical tokenization. */
  get hash(): string {
    return createHash("sha256").update(this.toJsonText()).digest("hex");
  }
}

function withDefaults(t: SpecialToken): AddedToken {
  const special = t.special ?? true;
  return {
    content: t.content,
    id: t.id,
    special,
    singleWord: t.singleWord ?? false,
    lstrip: t.lstrip ?? false,
    rstrip: t.rstrip ?? false,
    normalized: t.normalized ?? !special,
  };
}

/**
 * The byte tokenizer: id b is byte b (0..255), then the special tokens (default just <|endoftext|> = 256).
 */
export function byteTokenizer(specialTokens: string[] = [END_OF_TEXT]): Tokenizer {
  const tokenBytes: (Uint8Array | null)[] = [];
  for (let b = 0; b < 256; b++) tokenBytes.push(Uint8Array.of(b));
  const specials = specialTokens.map((content, i) => ({ content, id: 256 + i }));
  for (let i = 0; i < specials.length; i++) tokenBytes.push(null);
  return new Tokenizer({ tokenBytes, merges: [], specialTokens: specials });
}
