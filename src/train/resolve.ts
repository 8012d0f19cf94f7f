// One way to find a model, used by every command and by the library: a run name from the registry, a run
// or checkpoint folder, a Hugging Face folder (config.json + model.safetensors) or a GGUF file.
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Tokenizer } from "../data/index.js";
import { importModel } from "../io/index.js";
import type { Model } from "../nn/index.js";
import { loadModelFrom } from "./checkpoint.js";
import type { TrainConfig } from "./config.js";
import { defaultRoot } from "./config.js";
import { getRun } from "./registry.js";

export const MODEL_SPEC_HELP =
  "a run folder, checkpoint folder or run name; or a Hugging Face folder or GGUF file";

export interface ResolvedModel {
  model: Model;
  tokenizer: Tokenizer;
  /** Present for afterscale runs: what the model was trained on. */
  trainConfig?: TrainConfig;
  /** Training step of the loaded checkpoint (null for imported models). */
  step: number | null;
  /** What was loaded: the checkpoint folder, or "<format> <path>" for an import. */
  source: string;
  /** A short name for the model: the run's name, or the file or folder name. */
  name: string;
}

export interface LoadModelOptions {
  /** Where run names are looked up (default: $AFTERSCALE_HOME or ./runs). */
  root?: string;
  /** Where notes and warnings go (default: stderr). */
  warn?: (message: string) => void;
  /**
   * Dequantize a GGUF file's F16/BF16/quantized matrices to float32 (for training from it, export, the
   * interpretability tools). By default they stay in their type and the model runs inference only.
   */
  dequantize?: boolean;
}

/**
 * Loads a model from a run name, run or checkpoint folder, Hugging Face folder or GGUF file. A GGUF file's
 * quantized (and F16/BF16) matrices stay packed in their type unless `dequantize` is set.
 */
export function loadModel(spec: string, options: LoadModelOptions = {}): ResolvedModel {
  const warn = options.warn ?? ((m: string) => process.stderr.write(`afterscale: ${m}\n`));
  let p = spec;
  if (!existsSync(p)) {
    const root = options.root ?? defaultRoot();
    const run = getRun(root, spec);
    if (!run) throw new Error(`model ${spec}: no such file or folder, and no run of that name in ${root}`);
    p = run.runDir;
  }
  p = resolve(p);
  const name = p.split(/[\\/]/).filter(Boolean).pop() ?? spec;
  const isFile = statSync(p).isFile();
  const isHf = !isFile && existsSync(join(p, "config.json")) && existsSync(join(p, "model.safetensors"));
  if (isHf || isFile) {
    const imported = importModel(p, { packed: !options.dequantize });
    for (const note of imported.notes) warn(note);
    if (!imported.tokenizer)
      throw new Error(`model ${spec}: carries no tokenizer, so text cannot be encoded`);
    return {
      model: imported.model,
      tokenizer: imported.tokenizer,
      step: null,
      source: `${imported.format} ${p}`,
      name: isFile ? name.replace(/\.gguf$/i, "") : name,
    };
  }
  const loaded = loadModelFrom(p, warn);
  return {
    model: loaded.model,
    tokenizer: loaded.tokenizer,
    trainConfig: loaded.trainConfig,
    step: loaded.step,
    source: loaded.checkpointDir,
    name: loaded.trainConfig.runName,
  };
}
