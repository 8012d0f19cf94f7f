// `afterscale prepare`: text → tokenizer + token shards + validation split, in one folder.
//
// Steps: read documents (files, folders, JSONL or the built-in Brown corpus); choose validation documents
// by a seeded shuffle (both splits keep input order); get the tokenizer (byte-level, a given tokenizer.json,
// or BPE trained on the training split only, so validation text never shapes the vocabulary); encode each
// document followed by <|endoftext|>; write shards, tokenizer.json and dataset.json.

import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Rng } from "../tensor/random.js";
import { trainBpe } from "./bpe-train.js";
import { brownCorpus } from "./brown.js";
import { DATASET_FILE, type DatasetMeta, type SplitMeta, TOKENIZER_FILE } from "./dataset.js";
import { dtypeForVocab, type TokenArray, writeShard } from "./shards.js";
import { SyntheticLanguage, syntheticDocuments } from "./synthetic.js";
import { readDocuments, type SourceDocument } from "./text-files.js";
import { byteTokenizer, END_OF_TEXT, type Tokenizer } from "./tokenizer.js";
import { loadTokenizer, saveTokenizer } from "./tokenizer-json.js";

export const BUILTIN_CORPORA = ["brown", "synthetic"] as const;
export type BuiltinCorpus = (typeof BUILTIN_CORPORA)[number];

/**
 * The built-in `synthetic` corpus: the default SyntheticLanguage (seed 1, 1000 words), 5000 documents of
 * 500 words (2.5M words, ≈ 14 MB of text), so its exact entropy rate is a known floor for the loss.
 */
export const SYNTHETIC_CORPUS = { documents: 5000, wordsPerDocument: 500, sampleSeed: 0 } as const;

function builtinDocuments(corpus: BuiltinCorpus, log: (m: string) => void): SourceDocument[] {
  if (corpus === "synthetic") {
    log("generating the built-in synthetic corpus");
    const language = new SyntheticLanguage();
    const { documents, wordsPerDocument, sampleSeed } = SYNTHETIC_CORPUS;
    return syntheticDocuments(language, documents, wordsPerDocument, sampleSeed).map((text, i) => ({
      source: `synthetic:${i}`,
      text,
    }));
  }
  log("reading the built-in Brown corpus");
  return brownCorpus().map((text, i) => ({ source: `brown:${i}`, text }));
}

export interface PrepareOptions {
  /** Text files, folders (recursive: .txt .text .md .markdown .rst .jsonl .ndjson) or JSONL files. */
  inputs?: string[];
  /** Use a built-in corpus instead of inputs. */
  corpus?: BuiltinCorpus;
  /** Output folder; created if missing. */
  outDir: string;
  /** JSONL field holding the text (default "text"). */
  field?: string;
  /** Train a byte-level BPE with this total vocabulary (≥ 257). Without it and `tokenizer`: byte-level. */
  vocabSize?: number;
  /** An existing tokenizer (or the path of its tokenizer.json) to use instead; must have <|endoftext|>. */
  tokenizer?: string | Tokenizer;
  /** BPE: skip pairs seen fewer times (default 2). */
  minFrequency?: number;
  /** Fraction of documents held out for validation (default 0.05 unless valDocuments is given). */
  valFraction?: number;
  /** Exact number of validation documents (instead of valFraction). */
  valDocuments?: number;
  /** Seed of the validation shuffle (default 1337). */
  seed?: number;
  /** Maximum tokens per shard file (default 100M). */
  shardTokens?: number;
  /** Replace a previous dataset in outDir (only files prepare writes are removed). */
  overwrite?: boolean;
  /** Progress messages ("reading", "training BPE", …). */
  log?: (message: string) => void;
}

const OUR_FILES = /^((train|val)-\d{5}\.bin|dataset\.json|tokenizer\.json)$/;

/** Files of an earlier dataset in outDir; throws unless overwrite allows replacing them. */
function previousDatasetFiles(outDir: string, overwrite: boolean): string[] {
  if (!existsSync(outDir)) return [];
  if (!statSync(outDir).isDirectory()) throw new Error(`${outDir}: exists and is not a folder`);
  const ours = readdirSync(outDir).filter((f) => OUR_FILES.test(f));
  if (ours.length > 0 && !overwrite) {
    throw new Error(`${outDir}: already holds a prepared dataset; pass overwrite (--force) to replace it`);
  }
  return ours;
}

/** Rename the finished private folder to outDir, which must still be absent or an empty folder. */
function publish(workDir: string, outDir: string): void {
  try {
    renameSync(workDir, outDir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "ENOTEMPTY" && code !== "EEXIST") throw e;
    throw new Error(`${outDir}: was created by someone else while preparing; it was left as it is`);
  }
}

/** Indices of validation documents: a seeded Fisher–Yates shuffle, first `count`, sorted. */
export function chooseValidation(n: number, count: number, seed: number): Set<number> {
  const order = Array.from({ length: n }, (_, i) => i);
  const rng = new Rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return new Set(order.slice(0, count));
}

/** Cut one document into train head and validation tail at a line break near (1 - fraction) of its length. */
function splitOneDocument(doc: SourceDocument, fraction: number): [SourceDocument, SourceDocument] {
  const text = doc.text;
  let cut = Math.round(text.length * (1 - fraction));
  const newline = text.lastIndexOf("\n", cut);
  if (newline > 0) cut = newline + 1;
  // Never cut a surrogate pair.
  if (cut > 0 && cut < text.length && text.charCodeAt(cut) >= 0xdc00 && text.charCodeAt(cut) <= 0xdfff) cut++;
  const head = text.slice(0, cut);
  const tail = text.slice(cut);
  if (head.trim().length === 0 || tail.trim().length === 0) {
    throw new Error(`${doc.source}: too short to split into training and validation text`);
  }
  return [
    { source: doc.source, text: head },
    { source: `${doc.source} (tail)`, text: tail },
  ];
}

/** Growable uint32 token buffer. */
class TokenBuffer {
  data = new Uint32Array(1 << 16);
  length = 0;
  push(ids: number[]): void {
    if (this.length + ids.length > this.data.length) {
      let cap = this.data.length * 2;
      while (cap < this.length + ids.length) cap *= 2;
      const grown = new Uint32Array(cap);
      grown.set(this.data.subarray(0, this.length));
      this.data = grown;
    }
    this.data.set(ids, this.length);
    this.length += ids.length;
  }
}

function writeSplit(
  split: "train" | "val",
  docs: SourceDocument[],
  tokenizer: Tokenizer,
  outDir: string,
  shardTokens: number,
): SplitMeta {
  const eot = tokenizer.eotId;
  const buf = new TokenBuffer();
  let bytes = 0;
  for (const d of docs) {
    const ids = tokenizer.encode(d.text, { allowSpecial: false }); // separators come from document ends only
    ids.push(eot);
    buf.push(ids);
    bytes += Buffer.byteLength(d.text, "utf8");
  }
  const dtype = dtypeForVocab(tokenizer.vocabSize);
  const shards: SplitMeta["shards"] = [];
  const hash = tokenizer.hash;
  for (let start = 0, shard = 0; start < buf.length || shard === 0; start += shardTokens, shard++) {
    const end = Math.min(buf.length, start + shardTokens);
    const slice = buf.data.subarray(start, end);
    const tokens: TokenArray = dtype === "uint16" ? Uint16Array.from(slice) : slice.slice();
    const file = `${split}-${String(shard).padStart(5, "0")}.bin`;
    writeShard(
      join(outDir, file),
      { split, shard, dtype, count: tokens.length, vocabSize: tokenizer.vocabSize, tokenizerHash: hash },
      tokens,
    );
    shards.push({ file, count: tokens.length });
    if (end >= buf.length) break;
  }
  return { shards, tokens: buf.length, documents: docs.length, bytes };
}

/** Prepare a dataset folder; returns what it wrote into dataset.json. */
export function prepare(options: PrepareOptions): DatasetMeta {
  const log = options.log ?? (() => {});
  const seed = options.seed ?? 1337;
  const shardTokens = options.shardTokens ?? 100_000_000;
  if (!Number.isInteger(shardTokens) || shardTokens < 1)
    throw new Error(`shardTokens must be a positive integer`);
  if (options.vocabSize !== undefined && options.tokenizer !== undefined) {
    throw new Error(
      "give either vocabSize (train a BPE tokenizer) or tokenizer (use a tokenizer.json), not both",
    );
  }
  if (options.valFraction !== undefined && options.valDocuments !== undefined) {
    throw new Error("give either valFraction or valDocuments, not both");
  }
  const valFraction = options.valDocuments === undefined ? (options.valFraction ?? 0.05) : null;
  if (valFraction !== null && !(valFraction >= 0 && valFraction < 1)) {
    throw new Error(`valFraction must be in [0, 1), got ${valFraction}`);
  }

  const previous = previousDatasetFiles(options.outDir, options.overwrite ?? false); // fail before the work

  // 1. Documents.
  let documents: SourceDocument[];
  let sources: string[];
  let emptyRecords = 0;
  if (options.corpus !== undefined) {
    if (!BUILTIN_CORPORA.includes(options.corpus)) {
      throw new Error(
        `unknown corpus ${JSON.stringify(options.corpus)}; built-in corpora: ${BUILTIN_CORPORA.join(", ")}`,
      );
    }
    if (options.inputs && options.inputs.length > 0)
      throw new Error("give either inputs or a built-in corpus, not both");
    documents = builtinDocuments(options.corpus, log);
    sources = [`builtin:${options.corpus}`];
  } else {
    const read = readDocuments(options.inputs ?? [], options.field ?? "text");
    documents = read.documents;
    sources = options.inputs ?? [];
    emptyRecords = read.emptyRecords;
    log(`read ${documents.length} documents from ${read.files.length} files`);
  }

  // 2. Validation split.
  let train: SourceDocument[];
  let val: SourceDocument[];
  let splitSingleDocument = false;
  const n = documents.length;
  const wantVal = valFraction === null ? options.valDocuments! : valFraction > 0 ? 1 : 0;
  if (valFraction === null && !(Number.isInteger(wantVal) && wantVal >= 0 && wantVal < n)) {
    throw new Error(
      `valDocuments must be an integer from 0 to ${n - 1} (there are ${n} documents), got ${wantVal}`,
    );
  }
  if (n === 1 && wantVal > 0) {
    [train, val] = splitOneDocument(documents[0], valFraction ?? 0.05).map((d) => [d]) as [
      SourceDocument[],
      SourceDocument[],
    ];
    splitSingleDocument = true;
  } else {
    const count =
      valFraction === null
        ? wantVal
        : valFraction > 0
          ? Math.min(n - 1, Math.max(1, Math.round(n * valFraction)))
          : 0;
    const chosen = chooseValidation(n, count, seed);
    train = documents.filter((_, i) => !chosen.has(i));
    val = documents.filter((_, i) => chosen.has(i));
  }
  log(`${train.length} training and ${val.length} validation documents`);

  // 3. Tokenizer.
  let tokenizer: Tokenizer;
  let tokenizerKind: DatasetMeta["tokenizerKind"];
  if (options.vocabSize !== undefined) {
    log(`training a byte-level BPE tokenizer with ${options.vocabSize} tokens`);
    tokenizer = trainBpe(
      train.map((d) => d.text),
      {
        vocabSize: options.vocabSize,
        specialTokens: [END_OF_TEXT],
        minFrequency: options.minFrequency,
        progressEvery: 1024,
        onProgress: (done, total) => log(`BPE: ${done}/${total} merges`),
      },
    );
    if (tokenizer.vocabSize < options.vocabSize) {
      log(`BPE stopped at ${tokenizer.vocabSize} tokens: no pair occurs at least minFrequency times`);
    }
    tokenizerKind = "bpe";
  } else if (options.tokenizer !== undefined) {
    tokenizer = typeof options.tokenizer === "string" ? loadTokenizer(options.tokenizer) : options.tokenizer;
    tokenizerKind = "file";
  } else {
    tokenizer = byteTokenizer();
    tokenizerKind = "byte";
  }
  const eotId = tokenizer.eotId; // throws with a clear message if the tokenizer lacks <|endoftext|>

  // 4. Encode and write. A new folder is built under a private name and renamed when complete, so an
  // interrupted prepare never leaves a half dataset; an existing folder is written in place (files that
  // prepare does not write stay).
  const outDir = resolve(options.outDir);
  const fresh = !existsSync(outDir) || readdirSync(outDir).length === 0;
  const workDir = fresh ? `${outDir}.tmp-${process.pid}` : outDir;
  let meta: DatasetMeta;
  try {
    if (fresh) rmSync(workDir, { recursive: true, force: true });
    for (const f of previous) rmSync(join(outDir, f));
    mkdirSync(workDir, { recursive: true });
    log("encoding and writing shards");
    const trainMeta = writeSplit("train", train, tokenizer, workDir, shardTokens);
    const valMeta = writeSplit("val", val, tokenizer, workDir, shardTokens);
    saveTokenizer(tokenizer, join(workDir, TOKENIZER_FILE));
    meta = {
      format: "afterscale-dataset",
      version: 1,
      tokenizerHash: tokenizer.hash,
      vocabSize: tokenizer.vocabSize,
      dtype: dtypeForVocab(tokenizer.vocabSize),
      eotId,
      tokenizerKind,
      train: trainMeta,
      val: valMeta,
      sources,
      seed,
      valFraction,
      valDocuments: val.length,
      splitSingleDocument,
      emptyRecords,
    };
    const metaPath = join(workDir, DATASET_FILE);
    writeFileSync(`${metaPath}.tmp`, `${JSON.stringify(meta, null, 2)}\n`);
    renameSync(`${metaPath}.tmp`, metaPath);
    if (fresh) publish(workDir, outDir);
  } catch (e) {
    if (fresh) rmSync(workDir, { recursive: true, force: true });
    throw e;
  }
  log(`wrote ${meta.train.tokens} training and ${meta.val.tokens} validation tokens to ${options.outDir}`);
  return meta;
}
