// One tokenizer class for both of afterscale's tokenizers: byte-level BPE with merges applied by rank,
// and the plain byte tokenizer, which is the same thing with no merges (256 byte tokens + specials).
// Serialises to a Hugging Face tokenizer.json (see toJSON) so other tools load it and get the same ids.

import { createHash } from "node:crypto";
import { bytesToTokenString, preTokenize } from "./byte-level.js";

export const END_OF_TEXT = "<|endoftext|>";

export interface SpecialToken {
  content: string;
  id: number;
}

/** Everything that defines a byte-level BPE tokenizer. */
export interface TokenizerSpec {
  /** Bytes of every ordinary token, indexed by id; null at the ids of special tokens. */
  tokenBytes: (Uint8Array | null)[];
  /** Merges in rank order as pairs of token ids; merge i yields the token whose bytes are the two joined. */
  merges: [number, number][];
  specialTokens: SpecialToken[];
}

/** Pair keys pack two ids into one number; ids must stay below 2^21. */
const PAIR_BASE = 2 ** 21;
export const MAX_VOCAB = PAIR_BASE;
export const pairKey = (a: number, b: number): number => a * PAIR_BASE + b;

const CACHE_LIMIT = 200_000;
const utf8 = new TextEncoder();

export class Tokenizer {
  readonly vocabSize: number;
  readonly specialTokens: readonly SpecialToken[];
  readonly merges: readonly (readonly [number, number])[];
  private readonly tokenBytes: (Uint8Array | null)[];
  private readonly byteToId = new Int32Array(256).fill(-1);
  private readonly specialById = new Map<number, string>();
  private readonly specialByContent = new Map<string, number>();
  private readonly mergeRank = new Map<number, number>(); // pairKey → rank
  private readonly mergeResult: Int32Array; // rank → id of the merged token
  private readonly cache = new Map<string, number[]>();
  private specialSplitter: RegExp | null = null;
  private cachedJson: string | null = null;

  constructor(spec: TokenizerSpec) {
    const n = spec.tokenBytes.length;
    if (n > MAX_VOCAB) throw new Error(`vocabulary of ${n} tokens is larger than the maximum ${MAX_VOCAB}`);
    this.vocabSize = n;
    this.tokenBytes = spec.tokenBytes;
    this.specialTokens = spec.specialTokens.map((s) => ({ ...s }));
    for (const s of spec.specialTokens) {
      if (!Number.isInteger(s.id) || s.id < 0 || s.id >= n || spec.tokenBytes[s.id] !== null) {
        throw new Error(`special token ${JSON.stringify(s.content)} has an invalid id ${s.id}`);
      }
      if (s.content.length === 0) throw new Error("a special token cannot be the empty string");
      if (this.specialByContent.has(s.content)) throw new Error(`special token ${s.content} is listed twice`);
      this.specialById.set(s.id, s.content);
      this.specialByContent.set(s.content, s.id);
    }
    const idOfString = new Map<string, number>();
    for (let id = 0; id < n; id++) {
      const bytes = spec.tokenBytes[id];
      if (bytes === null) {
        if (!this.specialById.has(id))
          throw new Error(`token id ${id} has neither bytes nor a special token`);
        continue;
      }
      if (bytes.length === 0) throw new Error(`token id ${id} has no bytes`);
      const s = bytesToTokenString(bytes);
      if (idOfString.has(s))
        throw new Error(`token ${JSON.stringify(s)} appears twice (ids ${idOfString.get(s)}, ${id})`);
      idOfString.set(s, id);
      if (bytes.length === 1) this.byteToId[bytes[0]] = id;
    }
    for (let b = 0; b < 256; b++) {
      if (this.byteToId[b] < 0) throw new Error(`the vocabulary has no token for byte ${b}`);
    }
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

  /** Human-readable token: the GPT-2 printable string, or the special token's content. */
  tokenString(id: number): string {
    const b = this.bytesOf(id);
    return b === null ? this.specialById.get(id)! : bytesToTokenString(b);
  }

  /**
   * Text → ids. By default special-token text such as "<|endoftext|>" inside `text` is encoded as ordinary
   * text (safe for untrusted data); with allowSpecial it becomes the special id, as Hugging Face does.
   */
  encode(text: string, options: { allowSpecial?: boolean } = {}): number[] {
    const out: number[] = [];
    if (options.allowSpecial && this.specialTokens.length > 0) {
      for (const piece of text.split(this.splitter())) {
        if (piece.length === 0) continue;
        const id = this.specialByContent.get(piece);
        if (id !== undefined) out.push(id);
        else this.encodeOrdinary(piece, out);
      }
    } else {
      this.encodeOrdinary(text, out);
    }
    return out;
  }

  private splitter(): RegExp {
    if (this.specialSplitter === null) {
      // Longest first so that a special token that is a prefix of another does not win.
      const escaped = [...this.specialByContent.keys()]
        .sort((a, b) => b.length - a.length)
        .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
      this.specialSplitter = new RegExp(`(${escaped.join("|")})`, "u");
    }
    return this.specialSplitter;
  }

  private encodeOrdinary(text: string, out: number[]): void {
    for (const word of preTokenize(text)) {
      let ids = this.cache.get(word);
      if (ids === undefined) {
        ids = this.bpe(utf8.encode(word));
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(word, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  /** Apply merges to one pre-token: repeatedly merge every occurrence of the lowest-ranked pair. */
  private bpe(bytes: Uint8Array): number[] {
    let syms: number[] = Array.from(bytes, (b) => this.byteToId[b]);
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

  /** Ids → bytes; special tokens contribute the UTF-8 of their content. */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.bytesOf(ids[i]) ?? utf8.encode(this.specialById.get(ids[i])!);
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

  /** Ids → text. Invalid UTF-8 (e.g. a sequence cut mid-character) decodes to U+FFFD, as in Hugging Face. */
  decode(ids: ArrayLike<number>): string {
    return new TextDecoder("utf-8", { fatal: false, ignoreBOM: true }).decode(this.decodeBytes(ids));
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
          single_word: false,
          lstrip: false,
          rstrip: false,
          normalized: false,
          special: true,
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
