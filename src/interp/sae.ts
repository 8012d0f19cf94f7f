// A sparse autoencoder on one hook's activations (Bricken et al. 2023, "Towards Monosemanticity"; SAELens):
//   f = ReLU(W_enc·(x − b_dec) + b_enc),  x̂ = W_dec·f + b_dec
// in SAELens's layout (W_enc [d_in, features], W_dec [features, d_in], so a decoder column of the paper is a
// row of W_dec here). Decoder rows are kept at unit norm: the gradient's component along each row is removed
// before a step and the rows are renormalised after it. The loss is ‖x − x̂‖² + λ·Σ f_i·‖W_dec[i]‖ per token,
// averaged over tokens; with top-k only the k largest pre-activations survive (no L1).
// The SAE sees the activation times `inputScale` (chosen at init so the mean norm is √d_in, as SAELens's
// normalize_activations does), so λ means the same thing whatever the hook's scale.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { encodeSafetensors, entryToFloat32, readSafetensors, writeFileAtomic } from "../io/safetensors.js";
import {
  add,
  matmul,
  mul,
  noGrad,
  parameter,
  Rng,
  relu,
  scale,
  square,
  sub,
  sum,
  type Tensor,
  tensor,
  tidy,
} from "../tensor/index.js";

export type SaeActivation = { kind: "relu"; l1: number } | { kind: "topk"; k: number };

export interface SaeConfig {
  hook: string;
  dIn: number;
  features: number;
  activation: SaeActivation;
  /** The activation is multiplied by this before encoding and x̂ divided by it after decoding. */
  inputScale: number;
}

export interface Sae {
  config: SaeConfig;
  /** [dIn, features] */
  W_enc: Tensor;
  /** [features] */
  b_enc: Tensor;
  /** [features, dIn], unit-norm rows */
  W_dec: Tensor;
  /** [dIn] */
  b_dec: Tensor;
}

export const SAE_FILE = "sae.json";
export const SAE_WEIGHTS = "sae.safetensors";

export function saeParams(sae: Sae): Tensor[] {
  return [sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec];
}

/**
 * A fresh SAE: W_dec rows random unit vectors, W_enc = W_decᵀ, b_enc = 0, b_dec = `center` (the geometric
 * median or mean of a sample of scaled activations; zero when not given).
 */
export function createSae(config: SaeConfig, seed: number, center?: Float32Array): Sae {
  checkConfig(config, "createSae");
  const { dIn, features } = config;
  const rng = new Rng(seed);
  const dec = new Float32Array(features * dIn);
  for (let i = 0; i < dec.length; i++) dec[i] = rng.normal();
  normalizeRows(dec, features, dIn);
  const enc = new Float32Array(dIn * features);
  for (let i = 0; i < features; i++) for (let j = 0; j < dIn; j++) enc[j * features + i] = dec[i * dIn + j]!;
  if (center && center.length !== dIn)
    throw new Error(`createSae: center has ${center.length} values, d_in is ${dIn}`);
  return {
    config,
    W_enc: parameter(enc, [dIn, features], "W_enc"),
    b_enc: parameter(new Float32Array(features), [features], "b_enc"),
    W_dec: parameter(dec, [features, dIn], "W_dec"),
    b_dec: parameter(center ? Float32Array.from(center) : new Float32Array(dIn), [dIn], "b_dec"),
  };
}

function checkConfig(c: SaeConfig, where: string): void {
  const bad = (why: string) => new Error(`${where}: ${why}`);
  if (!Number.isInteger(c.dIn) || c.dIn < 1) throw bad(`d_in must be a positive integer, got ${c.dIn}`);
  if (!Number.isInteger(c.features) || c.features < 1)
    throw bad(`features must be a positive integer, got ${c.features}`);
  if (!(c.inputScale > 0) || !Number.isFinite(c.inputScale))
    throw bad(`inputScale must be a positive number, got ${c.inputScale}`);
  const a = c.activation;
  if (a.kind === "relu") {
    if (!(a.l1 >= 0) || !Number.isFinite(a.l1)) throw bad(`l1 must be a non-negative number, got ${a.l1}`);
  } else if (a.kind === "topk") {
    if (!Number.isInteger(a.k) || a.k < 1 || a.k > c.features)
      throw bad(`top-k k must be an integer in [1, ${c.features}], got ${a.k}`);
  } else throw bad(`unknown activation ${JSON.stringify((a as { kind: unknown }).kind)}`);
}

function normalizeRows(w: Float32Array | Float64Array, rows: number, cols: number): void {
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += w[i * cols + j]! ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < cols; j++) w[i * cols + j]! *= inv;
  }
}

/** ‖W_dec[i]‖ for every feature, as a constant (no gradient; see saeLoss). */
function decoderNorms(sae: Sae): Tensor {
  const { features, dIn } = sae.config;
  const w = sae.W_dec.data;
  const n = new Float64Array(features);
  for (let i = 0; i < features; i++) {
    let s = 0;
    for (let j = 0; j < dIn; j++) s += w[i * dIn + j]! ** 2;
    n[i] = Math.sqrt(s);
  }
  return tensor(n, [features], { dtype: sae.W_dec.dtype });
}

/** The k-th largest value of each row of pre [rows, cols] marked 1, the rest 0 (ties: the first k). */
export function topkMask(
  pre: Float32Array | Float64Array,
  rows: number,
  cols: number,
  k: number,
): Float32Array {
  const mask = new Float32Array(rows * cols);
  const idx = new Int32Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let j = 0; j < cols; j++) idx[j] = j;
    // Quickselect: after it, idx[0..k) hold the k largest of the row.
    let lo = 0;
    let hi = cols - 1;
    while (lo < hi) {
      const pivot = pre[o + idx[(lo + hi) >> 1]!]!;
      let i = lo;
      let j = hi;
      while (i <= j) {
        while (pre[o + idx[i]!]! > pivot) i++;
        while (pre[o + idx[j]!]! < pivot) j--;
        if (i <= j) {
          const t = idx[i]!;
          idx[i] = idx[j]!;
          idx[j] = t;
          i++;
          j--;
        }
      }
      if (k - 1 <= j) hi = j;
      else if (k - 1 >= i) lo = i;
      else break;
    }
    for (let j = 0; j < k; j++) mask[o + idx[j]!] = 1;
  }
  return mask;
}

/** Pre-activations W_enc·(x − b_dec) + b_enc for x [n, dIn] already scaled by inputScale. */
function preActivations(sae: Sae, x: Tensor): Tensor {
  return add(matmul(sub(x, sae.b_dec), sae.W_enc), sae.b_enc);
}

/** Feature activations [n, features] and reconstruction [n, dIn] of scaled activations x [n, dIn] (autodiff). */
export function saeForward(sae: Sae, x: Tensor): { f: Tensor; xhat: Tensor } {
  const { dIn, features, activation } = sae.config;
  if (x.shape.length !== 2 || x.shape[1] !== dIn)
    throw new Error(`sae: activations of shape [${x.shape}] do not fit d_in ${dIn} (expected [n, ${dIn}])`);
  const pre = preActivations(sae, x);
  let f = relu(pre);
  if (activation.kind === "topk") {
    const mask = topkMask(pre.data, x.shape[0]!, features, activation.k);
    f = mul(f, tensor(mask, pre.shape, { dtype: pre.dtype }));
  }
  return { f, xhat: add(matmul(f, sae.W_dec), sae.b_dec) };
}

export interface SaeLoss {
  loss: Tensor;
  /** Mean over tokens of ‖x − x̂‖². */
  mse: Tensor;
  /** Mean over tokens of Σ f_i·‖W_dec[i]‖ (zero for top-k). */
  sparsity: Tensor;
  f: Tensor;
  xhat: Tensor;
}

/**
 * The training loss on scaled activations x [n, dIn]: mean ‖x − x̂‖² + λ·mean Σ f_i·‖W_dec[i]‖ (`l1`
 * overrides λ, for its warm-up). The decoder norms enter as constants: their gradient is along each decoder
 * row, exactly the component projectDecoderGrad removes, so the step is the same as with them in the graph.
 */
export function saeLoss(sae: Sae, x: Tensor, l1?: number): SaeLoss {
  const n = x.shape[0]!;
  const { f, xhat } = saeForward(sae, x);
  const mse = scale(sum(square(sub(xhat, x))), 1 / n);
  const lambda = sae.config.activation.kind === "relu" ? (l1 ?? sae.config.activation.l1) : 0;
  const sparsity = scale(sum(mul(f, decoderNorms(sae))), 1 / n);
  const loss = lambda > 0 ? add(mse, scale(sparsity, lambda)) : mse;
  return { loss, mse, sparsity, f, xhat };
}

/** Removes from each decoder row's gradient its component along the row (before the optimizer step). */
export function projectDecoderGrad(sae: Sae): void {
  const g = sae.W_dec.grad?.data;
  if (!g) return;
  const w = sae.W_dec.data;
  const { features, dIn } = sae.config;
  for (let i = 0; i < features; i++) {
    const o = i * dIn;
    let dot = 0;
    let nn = 0;
    for (let j = 0; j < dIn; j++) {
      dot += g[o + j]! * w[o + j]!;
      nn += w[o + j]! ** 2;
    }
    if (nn === 0) continue;
    const c = dot / nn;
    for (let j = 0; j < dIn; j++) g[o + j]! -= c * w[o + j]!;
  }
}

/** Renormalises every decoder row to unit norm (after the optimizer step). */
export function normalizeDecoder(sae: Sae): void {
  normalizeRows(sae.W_dec.data, sae.config.features, sae.config.dIn);
}

/**
 * Encodes raw hook activations [n, dIn] (unscaled): the feature activations [n, features] and the
 * reconstruction in the activation's own scale, both plain arrays. No gradients.
 */
export function saeApply(sae: Sae, acts: Float32Array, n: number): { f: Float32Array; xhat: Float32Array } {
  const s = sae.config.inputScale;
  return noGrad(() =>
    tidy(() => {
      const x = scale(tensor(acts, [n, sae.config.dIn]), s);
      const { f, xhat } = saeForward(sae, x);
      return { f: Float32Array.from(f.data), xhat: Float32Array.from(scale(xhat, 1 / s).data) };
    }),
  );
}

/** The geometric median of rows of x [n, d] (Weiszfeld's iteration from the mean). */
export function geometricMedian(x: Float32Array, n: number, d: number, iterations = 50): Float32Array {
  const m = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) m[j]! += x[i * d + j]! / n;
  const next = new Float64Array(d);
  for (let it = 0; it < iterations; it++) {
    next.fill(0);
    let wsum = 0;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += (x[i * d + j]! - m[j]!) ** 2;
      const w = 1 / Math.max(Math.sqrt(s), 1e-8);
      wsum += w;
      for (let j = 0; j < d; j++) next[j]! += w * x[i * d + j]!;
    }
    let moved = 0;
    for (let j = 0; j < d; j++) {
      const v = next[j]! / wsum;
      moved += (v - m[j]!) ** 2;
      m[j] = v;
    }
    if (moved < 1e-12) break;
  }
  return Float32Array.from(m);
}

// ---------------------------------------------------------------- saving and loading

/** What sae.json holds besides the config: where the SAE came from and how well it does. */
export interface SaeInfo {
  /** The model spec it was trained on, as given, and the folder or file it resolved to. */
  model: string;
  modelSource: string;
  /** The token dataset its activations came from. */
  data: string;
  seed: number;
  steps: number;
  batchTokens: number;
  lr: number;
  bDecInit: "median" | "mean";
  metrics: unknown;
  [key: string]: unknown;
}

export interface SaeFile extends SaeConfig {
  format: "afterscale-sae";
  version: 1;
  info: SaeInfo;
}

/**
 * Writes an SAE folder (sae.json and sae.safetensors) that must not exist yet: it is built under a private
 * name and renamed into place, so a half-written SAE is never left behind and nothing is overwritten.
 */
export function saveSae(dir: string, sae: Sae, info: SaeInfo): void {
  if (existsSync(dir)) throw new Error(`sae: ${dir} already exists; choose another output folder (-o)`);
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const file: SaeFile = { format: "afterscale-sae", version: 1, ...sae.config, info };
  const weights = new Map(
    saeParams(sae).map((p) => [
      p.name!,
      { dtype: "F32" as const, shape: p.shape, data: Float32Array.from(p.data) },
    ]),
  );
  writeFileAtomic(join(tmp, SAE_WEIGHTS), encodeSafetensors(weights, { format: "afterscale-sae" }));
  writeFileAtomic(join(tmp, SAE_FILE), `${JSON.stringify(file, null, 2)}\n`);
  if (existsSync(dir)) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(`sae: ${dir} appeared while saving; the new SAE was not written`);
  }
  renameSync(tmp, dir);
}

/** Reads an SAE folder, checking sae.json's fields and every tensor's shape against it. */
export function loadSae(dir: string): { sae: Sae; file: SaeFile } {
  if (!existsSync(dir)) throw new Error(`sae: no such folder ${dir}`);
  const jsonPath = join(dir, SAE_FILE);
  if (!existsSync(jsonPath)) throw new Error(`sae: ${dir} holds no ${SAE_FILE}; not an SAE folder`);
  let file: SaeFile;
  try {
    file = JSON.parse(readFileSync(jsonPath, "utf8")) as SaeFile;
  } catch (e) {
    throw new Error(`sae: ${jsonPath} is not valid JSON (${(e as Error).message})`);
  }
  if (file?.format !== "afterscale-sae" || file.version !== 1)
    throw new Error(
      `sae: ${jsonPath} is not an afterscale SAE file (format ${file?.format}, version ${file?.version})`,
    );
  if (typeof file.hook !== "string" || !file.hook) throw new Error(`sae: ${jsonPath} names no hook`);
  if (!file.activation || typeof file.activation !== "object")
    throw new Error(`sae: ${jsonPath} has no activation (relu with l1, or topk with k)`);
  const config: SaeConfig = {
    hook: file.hook,
    dIn: file.dIn,
    features: file.features,
    activation: file.activation,
    inputScale: file.inputScale,
  };
  checkConfig(config, jsonPath);
  const weightsPath = join(dir, SAE_WEIGHTS);
  if (!existsSync(weightsPath)) throw new Error(`sae: ${dir} holds no ${SAE_WEIGHTS}`);
  const st = readSafetensors(weightsPath);
  const { dIn, features } = config;
  const expected: Record<string, number[]> = {
    W_enc: [dIn, features],
    b_enc: [features],
    W_dec: [features, dIn],
    b_dec: [dIn],
  };
  const params: Record<string, Tensor> = {};
  for (const [name, shape] of Object.entries(expected)) {
    const e = st.tensors.get(name);
    if (!e) throw new Error(`sae: ${weightsPath} has no tensor ${name}`);
    if (e.shape.length !== shape.length || e.shape.some((d, i) => d !== shape[i]))
      throw new Error(`sae: ${weightsPath}: ${name} is [${e.shape}], ${SAE_FILE} implies [${shape}]`);
    const values = entryToFloat32(e, `${weightsPath}: ${name}`);
    if (!values.every(Number.isFinite))
      throw new Error(`sae: ${weightsPath}: ${name} holds non-finite values`);
    params[name] = parameter(values, shape, name);
  }
  return {
    sae: { config, W_enc: params.W_enc!, b_enc: params.b_enc!, W_dec: params.W_dec!, b_dec: params.b_dec! },
    file,
  };
}
