// GPT-2's byte-level pre-tokenisation, shared by the byte tokenizer and BPE.
//
// Text is first cut into "pre-tokens" by the GPT-2 regex (contractions, optional-space + letters,
// optional-space + digits, optional-space + other symbols, whitespace runs), then each pre-token's UTF-8
// bytes are what BPE merges work on. tokenizer.json stores byte strings through GPT-2's bytes→unicode
// table, which maps every byte to a printable character (space → "Ġ", newline → "Ċ").

/**
 * The GPT-2 split pattern, exactly as the Hugging Face ByteLevel pre-tokenizer (use_regex: true) applies it
 * in JavaScript. Keeping the same RegExp is what makes our ids agree with `@huggingface/tokenizers`.
 */
export const GPT2_SPLIT_PATTERN =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Split text into GPT-2 pre-tokens (strings; their concatenation is the input). */
export function preTokenize(text: string): string[] {
  return text.match(GPT2_SPLIT_PATTERN) ?? [];
}

/** byte value → printable unicode character, as in GPT-2's `bytes_to_unicode()`. */
export const BYTE_TO_UNICODE: readonly string[] = (() => {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b); // "!".."~"
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b); // "¡".."¬"
  for (let b = 0xae; b <= 0xff; b++) printable.push(b); // "®".."ÿ"
  const table: string[] = new Array(256);
  for (const b of printable) table[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (table[b] === undefined) table[b] = String.fromCharCode(256 + n++);
  }
  return table;
})();

/** printable unicode character → byte value (inverse of BYTE_TO_UNICODE). */
export const UNICODE_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_UNICODE.map((c, b) => [c, b]));

/** Bytes → the GPT-2 printable string used in tokenizer.json. */
export function bytesToTokenString(bytes: ArrayLike<number>): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_UNICODE[bytes[i]];
  return s;
}

/** The GPT-2 printable string of a token back to its bytes; throws on characters outside the table. */
export function tokenStringToBytes(token: string): Uint8Array {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const b = UNICODE_TO_BYTE.get(token[i]);
    if (b === undefined) throw new Error(`token ${JSON.stringify(token)} is not a byte-level token string`);
    out[i] = b;
  }
  return out;
}
