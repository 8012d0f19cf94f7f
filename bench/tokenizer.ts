// A tokenizer of exactly `vocab` ids for the GGUF export (llama.cpp wants a vocabulary in the file). The
// benchmark feeds token ids, so only its size matters: the 256 bytes, then two-byte merges in a fixed
// order, then <|endoftext|> as the last id. A vocabulary of 256 is the bare bytes (no special token).
import { END_OF_TEXT, Tokenizer } from "../src/data/tokenizer.js";

export function benchTokenizer(vocab: number): Tokenizer {
  if (!Number.isInteger(vocab) || vocab < 256 || vocab > 257 + 224 * 256) {
    throw new Error(`benchTokenizer: vocab must be an integer in [256, ${257 + 224 * 256}], got ${vocab}`);
  }
  const tokenBytes: (Uint8Array | null)[] = [];
  for (let b = 0; b < 256; b++) tokenBytes.push(Uint8Array.of(b));
  const merges: [number, number][] = [];
  const pairs = vocab === 256 ? 0 : vocab - 257;
  for (let i = 0; i < pairs; i++) {
    // Printable ASCII first, so the merged tokens read as text in llama.cpp's vocabulary dump.
    const a = 32 + (Math.floor(i / 256) % 224);
    const b = i % 256;
    merges.push([a, b]);
    tokenBytes.push(Uint8Array.of(a, b));
  }
  const specialTokens = vocab === 256 ? [] : [{ content: END_OF_TEXT, id: vocab - 1 }];
  if (vocab > 256) tokenBytes.push(null);
  return new Tokenizer({ tokenBytes, merges, specialTokens });
}
