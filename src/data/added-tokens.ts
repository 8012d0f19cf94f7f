// Added tokens (tokenizer.json `added_tokens`, e.g. "<|endoftext|>") are cut out of the input text before
// pre-tokenization and BPE, as Hugging Face's AddedVocabulary does: leftmost-longest matching, first the
// tokens with normalized: false over the whole text, then those with normalized: true over what is left
// (afterscale has no normalizer, so the second pass sees the same characters). The flags follow the Rust
// `tokenizers` library: single_word keeps a match only where no word character (Unicode \w) touches it;
// lstrip / rstrip make the token absorb the whitespace (Unicode White_Space) before / after it.

/** An added token with every Hugging Face flag spelled out. */
export interface AddedToken {
  content: string;
  id: number;
  special: boolean;
  singleWord: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
}

/** A piece of split text: ordinary text (a string) or the id of an added token. */
export type TextPiece = string | number;

const WORD_CHAR = /^[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]$/u;
const WHITESPACE = /^\p{White_Space}$/u;

/** The code point that ends at index `end` of `text` (a surrogate pair counts as one). */
function charBefore(text: string, end: number): string {
  const low = text.charCodeAt(end - 1);
  if (end >= 2 && low >= 0xdc00 && low <= 0xdfff) {
    const high = text.charCodeAt(end - 2);
    if (high >= 0xd800 && high <= 0xdbff) return text.slice(end - 2, end);
  }
  return text.slice(end - 1, end);
}

/** The code point that starts at index `start` of `text`. */
function charAt(text: string, start: number): string {
  return String.fromCodePoint(text.codePointAt(start)!);
}

/** One pass: leftmost-longest matches of a set of tokens. */
class TokenPass {
  private readonly pattern: RegExp;
  private readonly byContent: Map<string, AddedToken>;

  constructor(tokens: AddedToken[]) {
    this.byContent = new Map(tokens.map((t) => [t.content, t]));
    // A regex alternation takes the first alternative that matches at the leftmost position: longest first
    // makes that the longest match, as Hugging Face's leftmost-longest Aho–Corasick automaton does.
    const alternatives = [...this.byContent.keys()]
      .sort((a, b) => b.length - a.length)
      .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    this.pattern = new RegExp(alternatives.join("|"), "gu");
  }

  split(text: string, out: TextPiece[], keepSpecialAsText: boolean): void {
    const pattern = this.pattern;
    pattern.lastIndex = 0;
    let offset = 0; // start of the text not yet emitted
    for (let m = pattern.exec(text); m !== null; m = pattern.exec(text)) {
      let start = m.index;
      let stop = start + m[0].length;
      const token = this.byContent.get(m[0])!;
      // Found and passed over, so no other token matches inside it (as in Hugging Face).
      if (keepSpecialAsText && token.special) continue;
      if (token.singleWord) {
        const wordBefore = start > 0 && WORD_CHAR.test(charBefore(text, start));
        const wordAfter = stop < text.length && WORD_CHAR.test(charAt(text, stop));
        if (wordBefore || wordAfter) continue; // the search goes on after this match, as in Hugging Face
      }
      if (token.lstrip) {
        while (start > offset && WHITESPACE.test(charBefore(text, start)))
          start -= charBefore(text, start).length;
      }
      if (token.rstrip) {
        while (stop < text.length && WHITESPACE.test(charAt(text, stop))) stop += charAt(text, stop).length;
        pattern.lastIndex = stop;
      }
      if (offset < start) out.push(text.slice(offset, start));
      out.push(token.id);
      offset = stop;
    }
    if (offset < text.length) out.push(text.slice(offset));
  }
}

/** Splits text on a fixed set of added tokens. */
export class AddedTokenSplitter {
  private readonly first: TokenPass | null;
  private readonly second: TokenPass | null;

  constructor(tokens: AddedToken[]) {
    const raw = tokens.filter((t) => !t.normalized);
    const normalized = tokens.filter((t) => t.normalized);
    this.first = raw.length > 0 ? new TokenPass(raw) : null;
    this.second = normalized.length > 0 ? new TokenPass(normalized) : null;
  }

  /**
   * Text → ordinary text pieces and added-token ids, in order; empty pieces are left out. With
   * keepSpecialAsText, special tokens stay text (Hugging Face's encode_special_tokens).
   */
  split(text: string, keepSpecialAsText = false): TextPiece[] {
    let pieces: TextPiece[] = [text];
    for (const pass of [this.first, this.second]) {
      if (pass === null) continue;
      const next: TextPiece[] = [];
      for (const p of pieces) {
        if (typeof p === "number") next.push(p);
        else pass.split(p, next, keepSpecialAsText);
      }
      pieces = next;
    }
    return pieces.filter((p) => p !== "");
  }
}
