// Reading user text for `prepare`: files, folders (recursive) and JSONL, as a list of documents.
// Bad input is an error that names the file (and line), never a silent skip: non-UTF-8 bytes,
// empty files, folders without text files, JSONL lines that are not objects or lack the text field.

import { readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join } from "node:path";

export interface SourceDocument {
  /** Where it came from: a path, or "path:line" for JSONL records. */
  source: string;
  text: string;
}

/** Extensions read when walking a folder (files named explicitly are read whatever their extension). */
export const TEXT_EXTENSIONS = [".txt", ".text", ".md", ".markdown", ".rst"];
export const JSONL_EXTENSIONS = [".jsonl", ".ndjson"];

/** Byte offset of the first invalid UTF-8 sequence, or -1 if the bytes are valid UTF-8. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    let need: number;
    let min: number;
    if (b < 0x80) {
      i++;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) {
      need = 1;
      min = 0x80;
    } else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      min = 0x800;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      min = 0x10000;
    } else {
      return i;
    }
    if (i + need >= bytes.length) return i; // truncated sequence at the end
    let cp = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if ((c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

/** Decode bytes as strict UTF-8; the error names `where` and the byte offset of the first bad sequence. */
export function decodeUtf8Strict(bytes: Uint8Array, where: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    throw new Error(`${where}: not valid UTF-8 (first bad byte at offset ${at}); convert it to UTF-8 first`);
  }
}

function readText(path: string): string {
  return decodeUtf8Strict(readFileSync(path), path);
}

/** All readable files under a folder, sorted, skipping hidden entries (names starting with "."). */
function walk(dir: string, out: string[]): void {
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith(".")) continue;
    const path = join(dir, name);
    const st = statSync(path);
    if (st.isDirectory()) walk(path, out);
    else if (st.isFile()) {
      const ext = extname(name).toLowerCase();
      if (TEXT_EXTENSIONS.includes(ext) || JSONL_EXTENSIONS.includes(ext)) out.push(path);
    }
  }
}

/** Documents of one JSONL file: one per line, the string at `field`. Empty strings are counted, not kept. */
export function readJsonl(
  path: string,
  field: string,
): { documents: SourceDocument[]; emptyRecords: number } {
  const text = readText(path);
  const documents: SourceDocument[] = [];
  let emptyRecords = 0;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line.length === 0) continue;
    const where = `${path}:${i + 1}`;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (e) {
      throw new Error(`${where}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof record !== "object" || record === null || Array.isArray(record)) {
      throw new Error(`${where}: expected a JSON object with a "${field}" field`);
    }
    const value = (record as Record<string, unknown>)[field];
    if (value === undefined) {
      const keys = Object.keys(record).slice(0, 10).join(", ");
      throw new Error(`${where}: no field "${field}" (fields: ${keys || "none"}); choose one with --field`);
    }
    if (typeof value !== "string")
      throw new Error(`${where}: field "${field}" is ${typeof value}, not a string`);
    if (value.length === 0) emptyRecords++;
    else documents.push({ source: where, text: value });
  }
  if (documents.length === 0) throw new Error(`${path}: no non-empty "${field}" values (the file is empty)`);
  return { documents, emptyRecords };
}

/**
 * Read inputs (files or folders) into documents: a text file is one document, a JSONL line is one document.
 * Files are visited in the order given, folders in sorted path order.
 */
export function readDocuments(
  inputs: string[],
  field = "text",
): { documents: SourceDocument[]; files: string[]; emptyRecords: number } {
  if (inputs.length === 0) throw new Error("no inputs given: pass text files, folders or JSONL files");
  const files: string[] = [];
  for (const input of inputs) {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(input);
    } catch {
      throw new Error(`${input}: no such file or folder`);
    }
    if (st.isDirectory()) {
      const found: string[] = [];
      walk(input, found);
      if (found.length === 0) {
        throw new Error(
          `${input}: folder has no text files (${[...TEXT_EXTENSIONS, ...JSONL_EXTENSIONS].join(" ")})`,
        );
      }
      files.push(...found);
    } else {
      files.push(input);
    }
  }
  const documents: SourceDocument[] = [];
  let emptyRecords = 0;
  for (const file of files) {
    if (JSONL_EXTENSIONS.includes(extname(file).toLowerCase())) {
      const r = readJsonl(file, field);
      documents.push(...r.documents);
      emptyRecords += r.emptyRecords;
    } else {
      const text = readText(file);
      if (text.trim().length === 0) throw new Error(`${file}: file is empty`);
      documents.push({ source: file, text });
    }
  }
  return { documents, files, emptyRecords };
}
