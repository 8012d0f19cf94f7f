// Checkpoints: one folder per checkpoint, `ckpt-<step>` in the run folder, holding
//   model.safetensors      weights under the Hugging Face names src/nn uses
//   optimizer.safetensors  the optimizer state under PyTorch's names: <param>.exp_avg and <param>.exp_avg_sq
//                          (AdamW moments), <param>.momentum_buffer (Muon); metadata names the optimizer
//   tokenizer.json         so a checkpoint folder alone is enough to sample from
//   state.json             step, optimizer step, data position, train and model config, tokenizer hash,
//                          sha256 and size of every file above, and a checksum of state.json itself
// A checkpoint is written into a temporary folder, every file and the folder are fsynced, and the folder
// is renamed into place, so a crash leaves either the whole checkpoint or none. Loading re-hashes every
// file; a bad checkpoint is reported and the previous good one is used.
import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { loadTokenizer, type Tokenizer } from "../data/index.js";
import { decodeSafetensors, encodeSafetensors, type TensorToWrite } from "../io/safetensors.js";
import { type Model, type ModelConfig, paramSpecs, parseModelConfig } from "../nn/index.js";
import type { Optimizer } from "../optim/index.js";
import { parameter, type Tensor } from "../tensor/index.js";
import type { TrainConfig } from "./config.js";

export const CHECKPOINT_PREFIX = "ckpt-";
const MODEL_FILE = "model.safetensors";
const OPTIMIZER_FILE = "optimizer.safetensors";
const TOKENIZER_FILE = "tokenizer.json";
const STATE_FILE = "state.json";

export interface CheckpointState {
  format: "afterscale-checkpoint";
  version: 1;
  /** Optimizer updates completed. */
  step: number;
  optimizerStep: number;
  /**
   * Where the data loader resumes. Batches are a pure function of (seed, batch index) with batch index
   * step·gradAccum + micro, and dropout seeds of (seed, step), so no RNG state needs saving.
   */
  dataPosition: { nextStep: number; nextBatchIndex: number; seed: number };
  rng: null;
  trainConfig: TrainConfig;
  modelConfig: ModelConfig;
  tokenizerHash: string;
  tokensSeen: number;
  /** Training time so far, across resumes. */
  elapsedSeconds: number;
  /** Latest training loss and validation loss (null before the first evaluation). */
  loss: number | null;
  valLoss: number | null;
  createdAt: string;
  files: Record<string, { sha256: string; bytes: number }>;
  /** sha256 of this JSON without the checksum field. */
  checksum: string;
}

export type CheckpointInfo = Omit<CheckpointState, "format" | "version" | "files" | "checksum" | "createdAt">;

export class CheckpointError extends Error {
  constructor(
    readonly dir: string,
    reason: string,
  ) {
    super(`checkpoint ${dir} is unusable: ${reason}`);
  }
}

const sha256 = (data: Uint8Array | string): string => createHash("sha256").update(data).digest("hex");

function writeAndSync(path: string, data: Uint8Array): void {
  const fd = openSync(path, "w");
  try {
    for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function f32view(t: Tensor): Float32Array {
  if (!(t.data instanceof Float32Array)) throw new Error(`checkpoint: ${t} is not float32`);
  return t.data;
}

/** The model's weights as safetensors bytes (spec order). */
export function encodeModel(model: Model, metadata: Record<string, string> = {}): Buffer {
  const tensors = new Map<string, TensorToWrite>();
  for (const s of model.specs) {
    const t = model.params.get(s.name)!;
    tensors.set(s.name, { dtype: "F32", shape: t.shape, data: f32view(t) });
  }
  return encodeSafetensors(tensors, metadata);
}

function encodeOptimizer(optimizer: Optimizer): Buffer {
  const tensors = new Map<string, TensorToWrite>();
  for (const { param, slot, data } of optimizer.buffers()) {
    if (!param.name) throw new Error("checkpoint: optimizer parameter without a name");
    tensors.set(`${param.name}.${slot}`, { dtype: "F32", shape: param.shape, data });
  }
  return encodeSafetensors(tensors, { optimizer: optimizer.name, step: String(optimizer.step) });
}

/** The state slots each parameter has, per optimizer (a Muon checkpoint's parameters have one or the other). */
const OPTIMIZER_SLOTS: Record<string, string[][]> = {
  adamw: [["exp_avg", "exp_avg_sq"]],
  muon: [["momentum_buffer"], ["exp_avg", "exp_avg_sq"]],
};

export function checkpointDir(runDir: string, step: number): string {
  return join(runDir, `${CHECKPOINT_PREFIX}${step}`);
}

/** Finished checkpoint folders of a run, oldest first (temporary folders are not listed). */
export function listCheckpoints(runDir: string): { step: number; dir: string }[] {
  if (!existsSync(runDir)) return [];
  const out: { step: number; dir: string }[] = [];
  for (const name of readdirSync(runDir)) {
    const m = /^ckpt-(\d+)$/.exec(name);
    if (m) out.push({ step: Number(m[1]), dir: join(runDir, name) });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** Removes temporary checkpoint folders a crash left behind. */
export function removeStaleTemporaries(runDir: string): void {
  if (!existsSync(runDir)) return;
  for (const name of readdirSync(runDir)) {
    if (name.startsWith(`.${CHECKPOINT_PREFIX}`))
      rmSync(join(runDir, name), { recursive: true, force: true });
  }
}

/**
 * Writes ckpt-<step> atomically and then deletes all but the newest `keep` checkpoints.
 * Returns the checkpoint folder.
 */
export function saveCheckpoint(
  runDir: string,
  model: Model,
  optimizer: Optimizer,
  tokenizerJson: string,
  info: CheckpointInfo,
  keep: number,
): string {
  const final = checkpointDir(runDir, info.step);
  const tmp = join(runDir, `.${CHECKPOINT_PREFIX}${info.step}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const payload: [string, Uint8Array][] = [
    [MODEL_FILE, encodeModel(model, { format: "pt", step: String(info.step) })],
    [OPTIMIZER_FILE, encodeOptimizer(optimizer)],
    [TOKENIZER_FILE, Buffer.from(tokenizerJson, "utf8")],
  ];
  const files: CheckpointState["files"] = {};
  for (const [name, data] of payload) {
    writeAndSync(join(tmp, name), data);
    files[name] = { sha256: sha256(data), bytes: data.length };
  }
  const body = {
    format: "afterscale-checkpoint" as const,
    version: 1 as const,
    ...info,
    createdAt: new Date().toISOString(),
    files,
  };
  const state: CheckpointState = { ...body, checksum: sha256(JSON.stringify(body)) };
  writeAndSync(join(tmp, STATE_FILE), Buffer.from(`${JSON.stringify(state, null, 2)}\n`, "utf8"));
  fsyncDir(tmp);
  // Re-saving a step (a resumed run reaching a step it had saved before the crash) replaces the old folder.
  if (existsSync(final)) {
    const old = `${tmp}.old`;
    renameSync(final, old);
    renameSync(tmp, final);
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(tmp, final);
  }
  fsyncDir(runDir);
  // Only now that the new checkpoint is complete, prune the oldest.
  const all = listCheckpoints(runDir);
  for (const c of all.slice(0, Math.max(0, all.length - keep)))
    rmSync(c.dir, { recursive: true, force: true });
  return final;
}

export interface LoadedCheckpoint {
  dir: string;
  state: CheckpointState;
  /** Weights by parameter name. */
  weights: Map<string, { shape: number[]; data: Float32Array }>;
  tokenizerJson: string;
  /**
   * The optimizer state by `<param>.<slot>` (exp_avg, exp_avg_sq, momentum_buffer), and the optimizer's
   * name (files written before Muon name AdamW); empty and null when read with { optimizer: false }.
   */
  optimizer: Map<string, Float32Array>;
  optimizerName: string | null;
}

function readVerified(dir: string, name: string, state: CheckpointState): Buffer {
  const path = join(dir, name);
  const expected = state.files[name];
  if (!expected) throw new CheckpointError(dir, `state.json lists no ${name}`);
  if (!existsSync(path)) throw new CheckpointError(dir, `${name} is missing`);
  const data = readFileSync(path);
  if (data.length !== expected.bytes) {
    throw new CheckpointError(
      dir,
      `${name} has ${data.length} bytes, expected ${expected.bytes} (truncated?)`,
    );
  }
  const got = sha256(data);
  if (got !== expected.sha256) {
    throw new CheckpointError(
      dir,
      `${name} checksum mismatch (sha256 ${got.slice(0, 12)}…, expected ${expected.sha256.slice(0, 12)}…)`,
    );
  }
  return data;
}

function readState(dir: string): CheckpointState {
  const path = join(dir, STATE_FILE);
  if (!existsSync(path)) throw new CheckpointError(dir, `${STATE_FILE} is missing`);
  let state: CheckpointState;
  try {
    state = JSON.parse(readFileSync(path, "utf8")) as CheckpointState;
  } catch (e) {
    throw new CheckpointError(dir, `${STATE_FILE} is not valid JSON (${(e as Error).message})`);
  }
  if (
    !state ||
    typeof state !== "object" ||
    state.format !== "afterscale-checkpoint" ||
    state.version !== 1
  ) {
    throw new CheckpointError(dir, `${STATE_FILE} is not an afterscale checkpoint (version 1) state`);
  }
  const { checksum, ...body } = state;
  if (sha256(JSON.stringify(body)) !== checksum)
    throw new CheckpointError(dir, `${STATE_FILE} checksum mismatch`);
  return state;
}

function floats(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

export interface ReadOptions {
  /** Read and verify optimizer.safetensors too (default true; inference needs only the weights). */
  optimizer?: boolean;
}

/** Reads and verifies one checkpoint folder; throws CheckpointError naming what is wrong. */
export function readCheckpoint(dir: string, opts: ReadOptions = {}): LoadedCheckpoint {
  dir = resolve(dir);
  const state = readState(dir);
  let modelConfig: ModelConfig;
  try {
    modelConfig = parseModelConfig(state.modelConfig);
  } catch (e) {
    throw new CheckpointError(dir, (e as Error).message);
  }
  const decode = (name: string) => {
    try {
      return decodeSafetensors(readVerified(dir, name, state), join(dir, name));
    } catch (e) {
      if (e instanceof CheckpointError) throw e;
      throw new CheckpointError(dir, (e as Error).message);
    }
  };
  const modelFile = decode(MODEL_FILE);
  const weights = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const s of paramSpecs(modelConfig)) {
    const e = modelFile.tensors.get(s.name);
    if (!e) throw new CheckpointError(dir, `${MODEL_FILE} has no tensor ${s.name}`);
    if (e.dtype !== "F32" || e.shape.join(",") !== s.shape.join(",")) {
      throw new CheckpointError(dir, `${s.name} is ${e.dtype} [${e.shape}], expected F32 [${s.shape}]`);
    }
    weights.set(s.name, { shape: s.shape, data: floats(e.bytes) });
  }
  const optimizer = new Map<string, Float32Array>();
  let optimizerName: string | null = null;
  if (opts.optimizer !== false) {
    const optFile = decode(OPTIMIZER_FILE);
    optimizerName = optFile.metadata.optimizer ?? "adamw";
    const layouts = OPTIMIZER_SLOTS[optimizerName];
    if (!layouts) {
      throw new CheckpointError(
        dir,
        `${OPTIMIZER_FILE} is the state of an unknown optimizer ${JSON.stringify(optimizerName)} (known: ${Object.keys(OPTIMIZER_SLOTS).join(", ")})`,
      );
    }
    for (const s of paramSpecs(modelConfig)) {
      const slots = layouts.find((l) => l.every((slot) => optFile.tensors.has(`${s.name}.${slot}`)));
      if (!slots)
        throw new CheckpointError(dir, `${OPTIMIZER_FILE} lacks the ${optimizerName} state of ${s.name}`);
      const n = s.shape.reduce((a, b) => a * b, 1);
      for (const slot of slots) {
        const e = optFile.tensors.get(`${s.name}.${slot}`)!;
        if (e.dtype !== "F32" || e.bytes.length !== 4 * n) {
          throw new CheckpointError(dir, `${OPTIMIZER_FILE}: ${s.name}.${slot} is not F32 [${s.shape}]`);
        }
        optimizer.set(`${s.name}.${slot}`, floats(e.bytes));
      }
    }
  }
  const tokenizerJson = readVerified(dir, TOKENIZER_FILE, state).toString("utf8");
  return { dir, state: { ...state, modelConfig }, weights, tokenizerJson, optimizer, optimizerName };
}

/** A model whose parameters are the checkpoint's weights. */
export function modelFromCheckpoint(ckpt: LoadedCheckpoint): Model {
  const config = ckpt.state.modelConfig;
  const specs = paramSpecs(config);
  const params = new Map<string, Tensor>();
  for (const s of specs) {
    const w = ckpt.weights.get(s.name)!;
    params.set(s.name, parameter(w.data, s.shape, s.name));
  }
  return { config, specs, params };
}

/** Loads the checkpoint's optimizer state and step into an optimizer built over the same model. */
export function restoreOptimizer(optimizer: Optimizer, ckpt: LoadedCheckpoint): void {
  if (ckpt.optimizerName !== optimizer.name) {
    throw new CheckpointError(
      ckpt.dir,
      `its optimizer state is ${ckpt.optimizerName ?? "not loaded"}, the run's optimizer is ${optimizer.name}`,
    );
  }
  try {
    optimizer.restore(ckpt.state.optimizerStep, (param, slot) => ckpt.optimizer.get(`${param}.${slot}`));
  } catch (e) {
    throw new CheckpointError(ckpt.dir, (e as Error).message);
  }
}

/**
 * The newest checkpoint of a run that verifies. Bad ones are reported through `warn` (default: stderr)
 * and skipped, falling back to the previous one. Null when the run has no good checkpoint.
 */
export function latestGoodCheckpoint(
  runDir: string,
  warn: (message: string) => void = (m) => process.stderr.write(`${m}\n`),
  opts: ReadOptions = {},
): LoadedCheckpoint | null {
  const all = listCheckpoints(runDir).reverse();
  for (let i = 0; i < all.length; i++) {
    try {
      return readCheckpoint(all[i]!.dir, opts);
    } catch (e) {
      const next = all[i + 1];
      warn(
        `afterscale: warning: ${(e as Error).message}; ${next ? `falling back to ${basename(next.dir)}` : "no earlier checkpoint to fall back to"}`,
      );
    }
  }
  return null;
}

export interface LoadedModel {
  model: Model;
  tokenizer: Tokenizer;
  /** Optimizer updates the weights have had. */
  step: number;
  /** The checkpoint folder the weights came from, and the run folder it belongs to. */
  checkpointDir: string;
  runDir: string;
  trainConfig: TrainConfig;
  state: CheckpointState;
}

/**
 * For sample / eval / serve: a run folder (its newest good checkpoint) or a checkpoint folder → the model,
 * its tokenizer and the step. Verifies the weights, tokenizer and state (not the optimizer state, which
 * inference does not need). Throws a clear error when there is nothing usable.
 */
export function loadModelFrom(
  path: string,
  warn: (message: string) => void = (m) => process.stderr.write(`${m}\n`),
): LoadedModel {
  const p = resolve(path);
  if (!existsSync(p) || !statSync(p).isDirectory()) {
    throw new Error(`${path}: not a run folder or checkpoint folder (it does not exist or is not a folder)`);
  }
  let ckpt: LoadedCheckpoint | null;
  if (existsSync(join(p, STATE_FILE))) {
    ckpt = readCheckpoint(p, { optimizer: false });
  } else {
    if (listCheckpoints(p).length === 0) {
      throw new Error(`${path}: no checkpoints (ckpt-<step> folders) found; is this a run folder?`);
    }
    ckpt = latestGoodCheckpoint(p, warn, { optimizer: false });
    if (!ckpt) throw new Error(`${path}: every checkpoint is corrupt or incomplete`);
  }
  const tokenizerPath = join(ckpt.dir, TOKENIZER_FILE);
  const tokenizer = loadTokenizer(tokenizerPath);
  if (tokenizer.hash !== ckpt.state.tokenizerHash) {
    throw new CheckpointError(ckpt.dir, `tokenizer.json does not match the tokenizer hash in state.json`);
  }
  return {
    model: modelFromCheckpoint(ckpt),
    tokenizer,
    step: ckpt.state.step,
    checkpointDir: ckpt.dir,
    runDir: dirname(ckpt.dir),
    trainConfig: ckpt.state.trainConfig,
    state: ckpt.state,
  };
}
