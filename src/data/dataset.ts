// A prepared dataset folder (see shards.ts for the layout): its dataset.json and opening it for training.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { readShard, type TokenArray, type TokenDtype } from "./shards.js";
import type { Tokenizer } from "./tokenizer.js";
import { loadTokenizer } from "./tokenizer-json.js";

export const DATASET_FILE = "dataset.json";
export const TOKENIZER_FILE = "tokenizer.json";

export interface SplitMeta {
  /** Shard files, relative to the dataset folder, with their token counts. */
  shards: { file: string; count: number }[];
  tokens: number;
  documents: number;
  /** UTF-8 bytes of the split's text (without separators), for bits-per-byte. */
  bytes: number;
}

export interface DatasetMeta {
  format: "afterscale-dataset";
  version: 1;
  tokenizerHash: string;
  vocabSize: number;
  dtype: TokenDtype;
  /** Id of <|endoftext|>, which follows every document. */
  eotId: number;
  /** "byte", "bpe" (trained by prepare) or "file" (given tokenizer.json). */
  tokenizerKind: "byte" | "bpe" | "file";
  train: SplitMeta;
  val: SplitMeta;
  /** Where the text came from: input paths or "builtin:brown". */
  sources: string[];
  seed: number;
  valFraction: number | null;
  valDocuments: number;
  /** True when the input was one document and validation is its tail (cut at a line break). */
  splitSingleDocument: boolean;
  /** JSONL records whose text was the empty string (not included). */
  emptyRecords: number;
}

export interface OpenDataset {
  dir: string;
  meta: DatasetMeta;
  tokenizer: Tokenizer;
  train: TokenArray[];
  val: TokenArray[];
}

/** Read dataset.json of a prepared folder. */
export function readDatasetMeta(dir: string): DatasetMeta {
  const path = join(dir, DATASET_FILE);
  if (!existsSync(path))
    throw new Error(`${dir}: no ${DATASET_FILE}; prepare the data first (afterscale prepare)`);
  let meta: DatasetMeta;
  try {
    meta = JSON.parse(readFileSync(path, "utf8")) as DatasetMeta;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (meta.format !== "afterscale-dataset" || meta.version !== 1) {
    throw new Error(`${path}: not an afterscale dataset (format ${meta.format}, version ${meta.version})`);
  }
  return meta;
}

/**
 * Open a prepared dataset: check that the tokenizer and every shard header agree with dataset.json
 * (hash, dtype, counts) and return typed-array views of the train and val tokens.
 */
export function openShards(dir: string): OpenDataset {
  const meta = readDatasetMeta(dir);
  const tokenizer = loadTokenizer(join(dir, TOKENIZER_FILE));
  if (tokenizer.hash !== meta.tokenizerHash) {
    throw new Error(
      `${dir}: tokenizer.json (hash ${tokenizer.hash.slice(0, 12)}) is not the one the shards were made with (${meta.tokenizerHash.slice(0, 12)})`,
    );
  }
  const open = (split: "train" | "val"): TokenArray[] =>
    meta[split].shards.map(({ file, count }) => {
      const path = join(dir, file);
      const { header, tokens } = readShard(path);
      if (header.tokenizerHash !== meta.tokenizerHash)
        throw new Error(`${path}: made with a different tokenizer`);
      if (header.dtype !== meta.dtype)
        throw new Error(`${path}: dtype ${header.dtype}, dataset says ${meta.dtype}`);
      if (header.count !== count)
        throw new Error(`${path}: ${header.count} tokens, dataset.json says ${count}`);
      if (header.split !== split) throw new Error(`${path}: a ${header.split} shard listed under ${split}`);
      return tokens;
    });
  return { dir, meta, tokenizer, train: open("train"), val: open("val") };
}
