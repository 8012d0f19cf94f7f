// How far a compressed (quantized or distilled) model is from its base, with the statistics
// `llama-perplexity --kl-divergence` reports (llama.cpp tools/perplexity/perplexity.cpp, kl_divergence()),
// computed the same way: per predicted position t with the actual next token y,
//   nll = −log p_model(y), nll_base = −log p_base(y)       → perplexities, their ratio and difference
//   KL(base ‖ model) = Σᵥ p_base(v) (log p_base(v) − log p_model(v))   → mean, percentiles
//   same top: argmax p_model = argmax p_base (first maximum on ties)
//   Δp = p_model(y) − p_base(y) (the change in the actual token's probability) → mean, RMS, percentiles.
// Uncertainties are llama.cpp's: the standard error √((E[x²] − E[x]²)/(n − 1)) (0 for n ≤ 10), propagated to
// exp(), the log-ratio (with the covariance of the two nlls), RMS (0.5/RMS · SE of Δp²) and the binomial
// √(f(1 − f)/(n − 1)) for the same-top share. Percentiles interpolate linearly between sorted values.
// Differences from llama.cpp, on purpose: the positions are afterscale eval's (every token of the validation
// split's non-overlapping windows is predicted once, rather than the second half of each chunk), and the KL
// is exact in float64 (llama.cpp stores the base's log-probs as 16-bit and drops those below −16).
import { evalBatches } from "../data/sampler.js";
import type { TokenArray } from "../data/shards.js";
import type { Tokenizer } from "../data/tokenizer.js";
import { forward, type Model } from "../nn/index.js";
import { noGrad, tidy } from "../tensor/index.js";

export interface ValueWithError {
  value: number;
  /** One standard error, as llama.cpp prints after ±. */
  error: number;
}

export interface Percentiles {
  max: number;
  p99_9: number;
  p99: number;
  p95: number;
  p90: number;
  median: number;
  p10: number;
  p5: number;
  p1: number;
  p0_1: number;
  min: number;
}

export interface KlComparison {
  /** Positions compared (predicted tokens). */
  tokens: number;
  perplexity: {
    model: ValueWithError;
    base: ValueWithError;
    /** Correlation of the two models' per-token nll. */
    correlation: number;
    logRatio: ValueWithError;
    ratio: ValueWithError;
    difference: ValueWithError;
  };
  /** KL(base ‖ model) per position, nats. */
  kl: ValueWithError & Percentiles;
  /** Δp = p_model(actual token) − p_base(actual token). */
  deltaP: { mean: ValueWithError; rms: ValueWithError } & Percentiles & { p75: number; p25: number };
  /** Share of positions whose most likely token is the same. */
  sameTop: ValueWithError;
}

export interface KlOptions {
  /** Windows per forward pass. */
  batchSize: number;
  /** Tokens per window (at most both models' context). */
  context: number;
  maxBatches?: number;
  onBatch?: (done: number) => void;
}

function meanAndError(sum: number, sum2: number, n: number): ValueWithError {
  if (n < 1) return { value: 0, error: 0 };
  const f = sum / n;
  const v = sum2 / n - f * f;
  return { value: f, error: v > 0 && n > 10 ? Math.sqrt(v / (n - 1)) : 0 };
}

function covariance(sa: number, sb: number, sab: number, n: number): number {
  if (n < 10) return 0;
  return (sab / n - (sa / n) * (sb / n)) / (n - 1);
}

/** llama.cpp's percentile: linear interpolation at fraction·(n − 1) of the sorted values. */
function percentile(sorted: Float64Array, fraction: number): number {
  if (fraction <= 0) return sorted[0]!;
  if (fraction >= 1) return sorted[sorted.length - 1]!;
  let p = fraction * (sorted.length - 1);
  const i = Math.floor(p);
  p -= i;
  return (1 - p) * sorted[i]! + p * sorted[Math.min(i + 1, sorted.length - 1)]!;
}

function median(sorted: Float64Array): number {
  const n = sorted.length;
  return n % 2 === 0 ? 0.5 * (sorted[n / 2]! + sorted[n / 2 - 1]!) : sorted[(n - 1) / 2]!;
}

function percentiles(sorted: Float64Array): Percentiles {
  return {
    max: sorted[sorted.length - 1]!,
    p99_9: percentile(sorted, 0.999),
    p99: percentile(sorted, 0.99),
    p95: percentile(sorted, 0.95),
    p90: percentile(sorted, 0.9),
    median: median(sorted),
    p10: percentile(sorted, 0.1),
    p5: percentile(sorted, 0.05),
    p1: percentile(sorted, 0.01),
    p0_1: percentile(sorted, 0.001),
    min: sorted[0]!,
  };
}

/** Log-sum-exp and first argmax of row `r` (the first `vocab` of `stride` values). */
function rowStats(x: Float32Array | Float64Array, o: number, vocab: number): { lse: number; top: number } {
  let max = x[o]!;
  let top = 0;
  for (let j = 1; j < vocab; j++) {
    if (x[o + j]! > max) {
      max = x[o + j]!;
      top = j;
    }
  }
  let sum = 0;
  for (let j = 0; j < vocab; j++) sum += Math.exp(x[o + j]! - max);
  return { lse: max + Math.log(sum), top };
}

/** Compares `model` with `base` on the evaluation windows of `tokens` (e.g. a validation split). */
export function compareWithBase(
  model: Model,
  base: Model,
  tokens: TokenArray | readonly TokenArray[],
  tokenizer: Tokenizer,
  opts: KlOptions,
): KlComparison {
  const vocab = tokenizer.vocabSize;
  for (const [name, m] of [
    ["model", model],
    ["base", base],
  ] as const) {
    if (m.config.vocab < vocab)
      throw new Error(
        `kl: the ${name} has ${m.config.vocab} outputs, fewer than the tokenizer's ${vocab} tokens`,
      );
    if (opts.context > m.config.context)
      throw new Error(`kl: context ${opts.context} exceeds the ${name}'s context ${m.config.context}`);
  }
  let sumNll = 0;
  let sumNll2 = 0;
  let sumNllBase = 0;
  let sumNllBase2 = 0;
  let sumNllNllBase = 0;
  let sumKl = 0;
  let sumKl2 = 0;
  let sumDp = 0;
  let sumDp2 = 0;
  let sumDp4 = 0;
  let sameTop = 0;
  const kls: number[] = [];
  const dps: number[] = [];
  let batches = 0;
  for (const b of evalBatches(tokens, opts.batchSize, opts.context, opts.maxBatches)) {
    noGrad(() =>
      tidy(() => {
        const lm = forward(model, b.inputs, b.rows, b.context).data;
        const lb = forward(base, b.inputs, b.rows, b.context).data;
        const sm = model.config.vocab;
        const sb = base.config.vocab;
        for (let i = 0; i < b.rows * b.context; i++) {
          const y = b.targets[i]!;
          const om = i * sm;
          const ob = i * sb;
          const m = rowStats(lm, om, vocab);
          const q = rowStats(lb, ob, vocab);
          const nll = m.lse - lm[om + y]!;
          const nllBase = q.lse - lb[ob + y]!;
          sumNll += nll;
          sumNll2 += nll * nll;
          sumNllBase += nllBase;
          sumNllBase2 += nllBase * nllBase;
          sumNllNllBase += nll * nllBase;
          let kl = 0;
          for (let j = 0; j < vocab; j++) {
            const logPb = lb[ob + j]! - q.lse;
            kl += Math.exp(logPb) * (logPb - (lm[om + j]! - m.lse));
          }
          sumKl += kl;
          sumKl2 += kl * kl;
          kls.push(kl);
          if (m.top === q.top) sameTop++;
          const dp = Math.exp(-nll) - Math.exp(-nllBase);
          sumDp += dp;
          sumDp2 += dp * dp;
          sumDp4 += dp * dp * dp * dp;
          dps.push(dp);
        }
      }),
    );
    opts.onBatch?.(++batches);
  }
  const n = kls.length;
  if (n === 0) throw new Error(`kl: the evaluation data is too short for context ${opts.context}`);
  const logPpl = meanAndError(sumNll, sumNll2, n);
  const logPplBase = meanAndError(sumNllBase, sumNllBase2, n);
  const cov = covariance(sumNll, sumNllBase, sumNllNllBase, n);
  const ppl = Math.exp(logPpl.value);
  const pplBase = Math.exp(logPplBase.value);
  const pplErr = ppl * logPpl.error;
  const pplBaseErr = pplBase * logPplBase.error;
  const logRatio = logPpl.value - logPplBase.value;
  const logRatioErr = Math.sqrt(Math.max(0, logPpl.error ** 2 + logPplBase.error ** 2 - 2 * cov));
  const dpMse = meanAndError(sumDp2, sumDp4, n);
  const rms = Math.sqrt(dpMse.value);
  const top = sameTop / n;
  const sortedKl = Float64Array.from(kls).sort();
  const sortedDp = Float64Array.from(dps).sort();
  return {
    tokens: n,
    perplexity: {
      model: { value: ppl, error: pplErr },
      base: { value: pplBase, error: pplBaseErr },
      correlation:
        logPpl.error > 0 && logPplBase.error > 0 ? cov / (logPpl.error * logPplBase.error) : Number.NaN,
      logRatio: { value: logRatio, error: logRatioErr },
      ratio: { value: Math.exp(logRatio), error: Math.exp(logRatio) * logRatioErr },
      difference: {
        value: ppl - pplBase,
        error: Math.sqrt(Math.max(0, pplErr ** 2 + pplBaseErr ** 2 - 2 * ppl * pplBase * cov)),
      },
    },
    kl: { ...meanAndError(sumKl, sumKl2, n), ...percentiles(sortedKl) },
    deltaP: {
      mean: meanAndError(sumDp, sumDp2, n),
      rms: { value: rms, error: rms > 0 ? (0.5 / rms) * dpMse.error : 0 },
      ...percentiles(sortedDp),
      p75: percentile(sortedDp, 0.75),
      p25: percentile(sortedDp, 0.25),
    },
    sameTop: { value: top, error: n > 1 ? Math.sqrt((top * (1 - top)) / (n - 1)) : 0 },
  };
}

const f6 = (x: number) => x.toFixed(6).padStart(10);
const pct = (x: number) => (100 * x).toFixed(3).padStart(6);

/** The report as llama-perplexity --kl-divergence prints it (Q: the model, base: the base). */
export function formatKlComparison(r: KlComparison): string {
  const p = r.perplexity;
  const k = r.kl;
  const d = r.deltaP;
  return [
    `${r.tokens.toLocaleString("en-US")} positions compared`,
    "",
    "====== Perplexity statistics ======",
    `Mean PPL(Q)                   : ${f6(p.model.value)} ± ${f6(p.model.error)}`,
    `Mean PPL(base)                : ${f6(p.base.value)} ± ${f6(p.base.error)}`,
    `Cor(ln(PPL(Q)), ln(PPL(base))): ${(100 * p.correlation).toFixed(2).padStart(6)}%`,
    `Mean ln(PPL(Q)/PPL(base))     : ${f6(p.logRatio.value)} ± ${f6(p.logRatio.error)}`,
    `Mean PPL(Q)/PPL(base)         : ${f6(p.ratio.value)} ± ${f6(p.ratio.error)}`,
    `Mean PPL(Q)-PPL(base)         : ${f6(p.difference.value)} ± ${f6(p.difference.error)}`,
    "",
    "====== KL divergence statistics ======",
    `Mean    KLD: ${f6(k.value)} ± ${f6(k.error)}`,
    `Maximum KLD: ${f6(k.max)}`,
    `99.9%   KLD: ${f6(k.p99_9)}`,
    `99.0%   KLD: ${f6(k.p99)}`,
    `95.0%   KLD: ${f6(k.p95)}`,
    `90.0%   KLD: ${f6(k.p90)}`,
    `Median  KLD: ${f6(k.median)}`,
    `10.0%   KLD: ${f6(k.p10)}`,
    ` 5.0%   KLD: ${f6(k.p5)}`,
    ` 1.0%   KLD: ${f6(k.p1)}`,
    ` 0.1%   KLD: ${f6(k.p0_1)}`,
    `Minimum KLD: ${f6(k.min)}`,
    "",
    "====== Token probability statistics ======",
    `Mean    Δp: ${pct(d.mean.value)} ± ${(100 * d.mean.error).toFixed(3).padStart(5)} %`,
    `Maximum Δp: ${pct(d.max)}%`,
    `99.9%   Δp: ${pct(d.p99_9)}%`,
    `99.0%   Δp: ${pct(d.p99)}%`,
    `95.0%   Δp: ${pct(d.p95)}%`,
    `90.0%   Δp: ${pct(d.p90)}%`,
    `75.0%   Δp: ${pct(d.p75)}%`,
    `Median  Δp: ${pct(d.median)}%`,
    `25.0%   Δp: ${pct(d.p25)}%`,
    `10.0%   Δp: ${pct(d.p10)}%`,
    ` 5.0%   Δp: ${pct(d.p5)}%`,
    ` 1.0%   Δp: ${pct(d.p1)}%`,
    ` 0.1%   Δp: ${pct(d.p0_1)}%`,
    `Minimum Δp: ${pct(d.min)}%`,
    `RMS Δp    : ${pct(d.rms.value)} ± ${(100 * d.rms.error).toFixed(3).padStart(5)} %`,
    `Same top p: ${pct(r.sameTop.value)} ± ${(100 * r.sameTop.error).toFixed(3).padStart(5)} %`,
  ].join("\n");
}
