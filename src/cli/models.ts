// Where sample / eval / serve / export get a model: a run folder, a checkpoint folder, a run name from the
// registry, a Hugging Face checkpoint folder, or a GGUF file.
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Tokenizer } from "../data/index.js";
import { importModel } from "../io/index.js";
import type { Model } from "../nn/index.js";
import { defaultRoot, getRun, loadModelFrom, type TrainConfig } from "../train/index.js";

export const MODEL_HELP =
  "a run folder, checkpoint folder or run name; or a Hugging Face folder or GGUF file";

export interface ResolvedModel {
  model: Model;
  tokenizer: Tokenizer;
  /** Present for afterscale runs: what the model was trained on. */
  trainConfig?: TrainConfig;
  source: string;
}

export function resolveModel(path: string): ResolvedModel {
  let p = path;
  if (!existsSync(p)) {
    const run = getRun(defaultRoot(), path);
    if (!run)
      throw new Error(`--model ${path}: no such file or folder, and no run of that name in ${defaultRoot()}`);
    p = run.runDir;
  }
  const isHf =
    statSync(p).isDirectory() &&
    existsSync(join(p, "config.json")) &&
    existsSync(join(p, "model.safetensors"));
  if (isHf || statSync(p).isFile()) {
    const imported = importModel(p);
    for (const note of imported.notes) process.stderr.write(`afterscale: ${note}\n`);
    if (!imported.tokenizer)
      throw new Error(`--model ${path}: carries no tokenizer, so text cannot be encoded`);
    return { model: imported.model, tokenizer: imported.tokenizer, source: `${imported.format} ${p}` };
  }
  const loaded = loadModelFrom(p);
  return {
    model: loaded.model,
    tokenizer: loaded.tokenizer,
    trainConfig: loaded.trainConfig,
    source: loaded.checkpointDir,
  };
}
