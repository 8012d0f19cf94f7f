// The training data of a config: a prepared dataset folder, or a built-in corpus that is prepared once
// into <root>/data/<corpus>-bpe<vocab> and reused by every later run.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { BUILTIN_CORPORA, type BuiltinCorpus, type OpenDataset, openShards, prepare } from "../data/index.js";
import type { TrainConfig } from "./config.js";

export function builtinCacheDir(root: string, corpus: string, vocab: number): string {
  return join(root, "data", `${corpus}-bpe${vocab}`);
}

/** Folder of the dataset a config trains on (a built-in corpus is prepared there if missing). */
export function resolveDataDir(
  c: Pick<TrainConfig, "data" | "vocab" | "root">,
  log: (m: string) => void = () => {},
): string {
  const builtin = (BUILTIN_CORPORA as readonly string[]).includes(c.data);
  if (builtin && !existsSync(c.data)) {
    const dir = builtinCacheDir(c.root, c.data, c.vocab);
    if (!existsSync(join(dir, "dataset.json"))) {
      log(`preparing the built-in corpus ${c.data} with a ${c.vocab}-token BPE into ${dir} (once)`);
      // prepare builds a new folder under a private name and renames it when complete, so an interrupted
      // prepare never leaves a half dataset; losing a race to another process is fine.
      try {
        prepare({ corpus: c.data as BuiltinCorpus, outDir: dir, vocabSize: c.vocab, log });
      } catch (e) {
        if (!existsSync(join(dir, "dataset.json"))) throw e; // else another process prepared it first
      }
    }
    return dir;
  }
  const dir = resolve(c.data);
  if (!existsSync(join(dir, "dataset.json"))) {
    throw new Error(
      `data: ${c.data} is neither a prepared dataset folder (no dataset.json; run afterscale prepare) nor a built-in corpus (${BUILTIN_CORPORA.join(", ")})`,
    );
  }
  return dir;
}

export function openTrainingData(c: TrainConfig, log: (m: string) => void = () => {}): OpenDataset {
  return openShards(resolveDataDir(c, log));
}
