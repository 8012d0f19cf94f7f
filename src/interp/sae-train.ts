// Training a sparse autoencoder on a model's activations at one hook, and measuring it on held-out ones.
// Activations stream from the model over the training split: windows drawn as pretraining draws them
// (batchAt with the SAE's seed) fill a buffer, the buffer is shuffled and served in SAE batches, and refilled
// with fresh windows when it runs low, so every activation is used once. The model is never trained.
import { type Batch, batchAt, evalBatches, type TokenArray } from "../data/index.js";
import type { Model } from "../nn/index.js";
import { AdamW } from "../optim/index.js";
import { crossEntropy, noGrad, Rng, type Tensor, tensor, tidy } from "../tensor/index.js";
import { hookNames, runWithCache, runWithHooks } from "./run.js";
import {
  createSae,
  geometricMedian,
  normalizeDecoder,
  projectDecoderGrad,
  type Sae,
  type SaeActivation,
  saeApply,
  saeLoss,
  saeParams,
} from "./sae.js";

/** Rows of each model batch used to collect activations (windows of the model's context). */
const MODEL_ROWS = 16;

/**
 * Windows of the held-out split from its start (each token predicted once), at most `maxTokens` tokens in
 * all: whole windows of `context`, in batches of up to 16 rows.
 */
export function heldOutBatches(tokens: readonly TokenArray[], context: number, maxTokens: number): Batch[] {
  const windows = Math.max(1, Math.floor(maxTokens / context));
  const rows = Math.min(MODEL_ROWS, windows);
  return [...evalBatches(tokens, rows, context, Math.max(1, Math.floor(windows / rows)))];
}

/** Refuses a hook the model lacks, or one whose activation is not one vector per token. */
export function checkSaeHook(model: Model, hook: string): void {
  const names = hookNames(model);
  if (!names.includes(hook)) {
    const resid = names.filter((n) => n.endsWith("hook_resid_post"));
    throw new Error(`sae: no hook point ${hook} in this model (e.g. ${resid.slice(0, 3).join(", ")})`);
  }
  if (/hook_attn_scores|hook_pattern/.test(hook))
    throw new Error(
      `sae: ${hook} is per pair of positions, not one vector per token; pick e.g. a resid hook`,
    );
}

/** The hook's activations for token rows [rows·time], as [rows·time, d]. */
export function hookActivations(
  model: Model,
  hook: string,
  ids: Int32Array,
  rows: number,
): { acts: Float32Array; d: number } {
  const { logits, cache } = runWithCache(model, { ids, batch: rows }, { names: [hook] });
  const t = cache.get(hook);
  const d = t.shape[t.shape.length - 1]!;
  const acts = Float32Array.from(t.data);
  logits.dispose();
  cache.dispose();
  return { acts, d };
}

/** Shuffled activations from fresh training windows, served in batches; deterministic by seed. */
export class ActivationStream {
  private buffer = new Float32Array(0);
  private order = new Int32Array(0);
  private pos = 0;
  private nextWindowBatch = 0;
  private refills = 0;
  d = 0;

  constructor(
    private readonly model: Model,
    private readonly hook: string,
    private readonly tokens: readonly TokenArray[],
    private readonly seed: number,
    private readonly bufferTokens: number,
    private readonly context = model.config.context,
  ) {}

  /** Activations modelled so far (the model's forward passes). */
  get tokensRead(): number {
    return this.nextWindowBatch * MODEL_ROWS * this.context;
  }

  private refill(): void {
    const perBatch = MODEL_ROWS * this.context;
    const batches = Math.max(1, Math.ceil(this.bufferTokens / perBatch));
    const parts: Float32Array[] = [];
    for (let b = 0; b < batches; b++) {
      const w = batchAt(this.tokens, MODEL_ROWS, this.context, this.seed, this.nextWindowBatch++);
      const { acts, d } = hookActivations(this.model, this.hook, w.inputs, MODEL_ROWS);
      this.d = d;
      parts.push(acts);
    }
    this.buffer = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      this.buffer.set(p, o);
      o += p.length;
    }
    const n = this.buffer.length / this.d;
    const rng = new Rng((this.seed ^ Math.imul(++this.refills, 0x9e3779b1)) >>> 0);
    this.order = Int32Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = this.order[i]!;
      this.order[i] = this.order[j]!;
      this.order[j] = t;
    }
    this.pos = 0;
  }

  /** The next n activations [n, d]; a refill drops what is left of the old buffer if fewer than n remain. */
  next(n: number): Float32Array {
    if (this.pos + n > this.order.length) this.refill();
    if (n > this.order.length)
      throw new Error(`sae: a batch of ${n} tokens is larger than the ${this.order.length}-token buffer`);
    const d = this.d;
    const out = new Float32Array(n * d);
    for (let i = 0; i < n; i++) {
      const r = this.order[this.pos++]!;
      out.set(this.buffer.subarray(r * d, (r + 1) * d), i * d);
    }
    return out;
  }
}

export interface SaeTrainOptions {
  hook: string;
  features: number;
  activation: SaeActivation;
  steps: number;
  lr: number;
  /** Activations per SAE step. */
  batchTokens: number;
  seed: number;
  /** b_dec's initial value: the geometric median (default) or the mean of the first buffer. */
  bDecInit?: "median" | "mean";
  /** Activations held and shuffled at a time (default 32768, at least 4 batches). */
  bufferTokens?: number;
  /** λ rises linearly from 0 over this fraction of the steps (default 0.05; SAELens's l1_warm_up_steps). */
  l1WarmupFraction?: number;
  /** The learning rate decays linearly to 0 over this last fraction of the steps (default 0.2). */
  lrDecayFraction?: number;
}

export interface SaeStepStats {
  step: number;
  steps: number;
  loss: number;
  mse: number;
  lr: number;
  l1: number;
  /** L0 and explained variance of this training batch (computed on log steps only; else NaN). */
  l0: number;
  explainedVariance: number;
  tokensPerSecond: number;
}

/** Trains an SAE on the hook's activations over the training tokens. */
export function trainSae(
  model: Model,
  train: readonly TokenArray[],
  o: SaeTrainOptions,
  onStep: (s: SaeStepStats) => void = () => {},
  logEvery = 50,
): Sae {
  checkSaeHook(model, o.hook);
  for (const [k, v] of [
    ["steps", o.steps],
    ["batchTokens", o.batchTokens],
  ] as const)
    if (!Number.isInteger(v) || v < 1) throw new Error(`sae: ${k} must be a positive integer, got ${v}`);
  if (!(o.lr > 0)) throw new Error(`sae: lr must be positive, got ${o.lr}`);
  const bufferTokens = Math.max(o.bufferTokens ?? 32768, 4 * o.batchTokens);
  const stream = new ActivationStream(model, o.hook, train, o.seed, bufferTokens);
  const first = stream.next(Math.min(4096, o.batchTokens * 2));
  const d = stream.d;
  const sampleN = first.length / d;
  // Scale so that the mean activation norm is √d (SAELens's expected_average_only_in).
  let normSum = 0;
  for (let i = 0; i < sampleN; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += first[i * d + j]! ** 2;
    normSum += Math.sqrt(s);
  }
  const inputScale = Math.sqrt(d) / Math.max(normSum / sampleN, 1e-12);
  for (let i = 0; i < first.length; i++) first[i]! *= inputScale;
  const center =
    (o.bDecInit ?? "median") === "median" ? geometricMedian(first, sampleN, d) : meanRow(first, sampleN, d);
  const sae = createSae(
    { hook: o.hook, dIn: d, features: o.features, activation: o.activation, inputScale },
    o.seed,
    center,
  );
  const opt = new AdamW([{ params: saeParams(sae) }], {
    lr: o.lr,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0,
  });
  const warm = Math.max(1, Math.round((o.l1WarmupFraction ?? 0.05) * o.steps));
  const decayStart = Math.round(o.steps * (1 - (o.lrDecayFraction ?? 0.2)));
  const lambda = o.activation.kind === "relu" ? o.activation.l1 : 0;
  const t0 = performance.now();
  for (let step = 0; step < o.steps; step++) {
    const x = stream.next(o.batchTokens);
    for (let i = 0; i < x.length; i++) x[i]! *= inputScale;
    const lr = step < decayStart ? o.lr : (o.lr * (o.steps - step)) / Math.max(1, o.steps - decayStart);
    const l1 = lambda * Math.min(1, (step + 1) / warm);
    const logged = (step + 1) % logEvery === 0 || step === o.steps - 1 || step === 0;
    const stats = tidy(() => {
      const xt = tensor(x, [o.batchTokens, d]);
      const r = saeLoss(sae, xt, l1);
      r.loss.backward();
      return {
        loss: r.loss.item(),
        mse: r.mse.item(),
        ...(logged ? batchStats(x, r.f.data, r.xhat.data, o.batchTokens, d) : { l0: NaN, ev: NaN }),
      };
    });
    projectDecoderGrad(sae);
    opt.update(lr);
    opt.zeroGrad();
    normalizeDecoder(sae);
    const seconds = (performance.now() - t0) / 1000;
    onStep({
      step: step + 1,
      steps: o.steps,
      loss: stats.loss,
      mse: stats.mse,
      lr,
      l1,
      l0: stats.l0,
      explainedVariance: stats.ev,
      tokensPerSecond: ((step + 1) * o.batchTokens) / Math.max(seconds, 1e-9),
    });
  }
  return sae;
}

function meanRow(x: Float32Array, n: number, d: number): Float32Array {
  const m = new Float32Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) m[j]! += x[i * d + j]! / n;
  return m;
}

function batchStats(
  x: Float32Array,
  f: ArrayLike<number>,
  xhat: ArrayLike<number>,
  n: number,
  d: number,
): { l0: number; ev: number } {
  let active = 0;
  for (let i = 0; i < f.length; i++) if (f[i]! > 0) active++;
  const mean = meanRow(x, n, d);
  let sse = 0;
  let sst = 0;
  for (let i = 0; i < n * d; i++) {
    sse += (x[i]! - xhat[i]!) ** 2;
    sst += (x[i]! - mean[i % d]!) ** 2;
  }
  return { l0: active / n, ev: 1 - sse / sst };
}

// ---------------------------------------------------------------- held-out metrics

export interface SaeMetrics {
  /** Held-out activations measured (the validation split's first windows). */
  tokens: number;
  /** Mean number of active features per token. */
  l0: number;
  /** 1 − Σ‖x − x̂‖² / Σ‖x − mean x‖² over the held-out activations. */
  explainedVariance: number;
  /** Mean ‖x − x̂‖² per token, in the activation's own scale. */
  mse: number;
  /** Features that never fired on any of the `tokens` held-out activations. */
  deadFeatures: number;
  /** Fraction of tokens each feature fires on. */
  density: number[];
  ce: {
    /** Next-token cross-entropy (nats) of the model as it is, with the SAE's x̂ spliced in, and ablated. */
    clean: number;
    withSae: number;
    ablated: number;
    /** What the hook's activation is replaced by for `ablated`: zeros (as SAELens does) or its mean. */
    ablation: "zero" | "mean";
    /** (ablated − withSae) / (ablated − clean). */
    recovered: number;
  };
}

export interface SaeEvalOptions {
  /** At most this many held-out tokens (default 65536). */
  maxTokens?: number;
  ablation?: "zero" | "mean";
  context?: number;
}

/** A replacement for an activation, computed from the activation itself. */
export type Splice = (act: Float32Array, n: number) => Float32Array;

/**
 * CE recovered for any replacement of the hook's activation: cross-entropy with `splice`, without it,
 * and with the activation zeroed (or set to `meanAct`), over the same held-out windows.
 */
export function ceRecovered(
  model: Model,
  hook: string,
  tokens: readonly TokenArray[],
  splice: Splice,
  o: {
    maxTokens?: number;
    ablation?: "zero" | "mean";
    /** The mean activation for a mean ablation; called after the splice pass (which may measure it). */
    meanAct?: () => Float32Array;
    context?: number;
  } = {},
): SaeMetrics["ce"] & { tokens: number } {
  checkSaeHook(model, hook);
  const context = o.context ?? model.config.context;
  const batches = heldOutBatches(tokens, context, o.maxTokens ?? 65536);
  if (batches.length === 0)
    throw new Error(`sae: the held-out split is too short for one window of ${context} tokens`);
  const ablation = o.ablation ?? "zero";
  if (ablation === "mean" && !o.meanAct) throw new Error("sae: mean ablation needs the mean activation");
  const run = (replace: Splice | null): number => {
    let total = 0;
    let count = 0;
    for (const b of batches) {
      const hooks = replace
        ? {
            [hook]: (act: Tensor) => {
              const d = act.shape[act.shape.length - 1]!;
              const out = replace(act.data as Float32Array, act.size / d);
              return tensor(out, act.shape);
            },
          }
        : {};
      const logits = runWithHooks(model, { ids: b.inputs, batch: b.rows }, hooks);
      const n = b.rows * b.context;
      total += noGrad(() => tidy(() => crossEntropy(logits, b.targets).item())) * n;
      count += n;
      logits.dispose();
    }
    return total / count;
  };
  const withSae = run(splice);
  const clean = run(null);
  const m = ablation === "mean" ? o.meanAct!() : null;
  const ablated = run((act, n) => {
    const out = new Float32Array(act.length);
    if (!m) return out;
    for (let i = 0; i < n; i++) out.set(m, i * m.length);
    return out;
  });
  const tokensSeen = batches.reduce((s, b) => s + b.rows * b.context, 0);
  return {
    clean,
    withSae,
    ablated,
    ablation,
    recovered: (ablated - withSae) / (ablated - clean),
    tokens: tokensSeen,
  };
}

/** L0, explained variance, dead features and CE recovered on held-out activations. */
export function evaluateSae(
  model: Model,
  sae: Sae,
  val: readonly TokenArray[],
  o: SaeEvalOptions = {},
): SaeMetrics {
  const { features, dIn, hook } = sae.config;
  const fires = new Float64Array(features);
  const sumX = new Float64Array(dIn);
  let sumSq = 0;
  let sse = 0;
  let active = 0;
  let n = 0;
  const splice: Splice = (act, rows) => {
    if (act.length !== rows * dIn)
      throw new Error(`sae: ${hook} has width ${act.length / rows}, the SAE's d_in is ${dIn}`);
    const { f, xhat } = saeApply(sae, act, rows);
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < features; j++)
        if (f[i * features + j]! > 0) {
          fires[j]!++;
          active++;
        }
    for (let i = 0; i < act.length; i++) {
      const v = act[i]!;
      sumX[i % dIn]! += v;
      sumSq += v * v;
      sse += (v - xhat[i]!) ** 2;
    }
    n += rows;
    return xhat;
  };
  // The SAE pass runs first, so a mean ablation can use the mean it measured.
  const ce = ceRecovered(model, hook, val, splice, {
    ...o,
    meanAct: () => Float32Array.from(sumX, (v) => v / n),
  });
  let meanSq = 0;
  for (let j = 0; j < dIn; j++) meanSq += (sumX[j]! / n) ** 2;
  const sst = sumSq - n * meanSq;
  const { tokens, ...ceOnly } = ce;
  return {
    tokens: n,
    l0: active / n,
    explainedVariance: 1 - sse / sst,
    mse: sse / n,
    deadFeatures: fires.reduce((c, v) => c + (v === 0 ? 1 : 0), 0),
    density: Array.from(fires, (v) => v / n),
    ce: ceOnly,
  };
}
