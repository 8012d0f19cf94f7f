// What a fitted law L(N, D) = E + A/N^α + B/D^β says about spending compute, with C = 6·N·D:
// the compute-optimal allocation, the returns-to-scale table, the inference-aware optimum
// (Sardana et al. 2023, "Beyond Chinchilla-Optimal") and the effective compute multiplier of
// one law over another.

import type { LawParams } from "./fit.js";
import { predictLoss } from "./fit.js";

export interface Allocation {
  /** Training FLOPs, 6·N·D. */
  C: number;
  N: number;
  D: number;
  tokensPerParam: number;
  loss: number;
}

function checkLaw(p: LawParams): void {
  for (const [k, v] of Object.entries(p)) {
    // E may underflow to exactly 0 when a fit drives log E to −∞: no irreducible loss.
    if (!(Number.isFinite(v) && (k === "E" ? v >= 0 : v > 0)))
      throw new Error(
        `scaling law: ${k} must be ${k === "E" ? "non-negative" : "positive"} and finite, got ${v}`,
      );
  }
}

function checkPositive(name: string, v: number): void {
  if (!(Number.isFinite(v) && v > 0)) throw new Error(`${name} must be a positive finite number, got ${v}`);
}

/**
 * Minimiser of L(N, C/(6N)): N* = G·(C/6)^(β/(α+β)), D* = G⁻¹·(C/6)^(α/(α+β)), G = (αA/(βB))^(1/(α+β)).
 */
export function computeOptimal(p: LawParams, C: number): Allocation {
  checkLaw(p);
  checkPositive("compute C", C);
  const s = p.alpha + p.beta;
  const G = ((p.alpha * p.A) / (p.beta * p.B)) ** (1 / s);
  const N = G * (C / 6) ** (p.beta / s);
  const D = (C / 6) ** (p.alpha / s) / G;
  return { C, N, D, tokensPerParam: D / N, loss: predictLoss(p, N, D) };
}

/** The same optimum found numerically (golden-section search over log N); used to check the closed form. */
export function computeOptimalNumeric(p: LawParams, C: number): Allocation {
  checkLaw(p);
  checkPositive("compute C", C);
  const lossAt = (u: number) => predictLoss(p, Math.exp(u), C / (6 * Math.exp(u)));
  const u = minimize1d(lossAt, 0, Math.log(C / 6));
  const N = Math.exp(u);
  const D = C / (6 * N);
  return { C, N, D, tokensPerParam: D / N, loss: predictLoss(p, N, D) };
}

/**
 * At the compute-optimal allocation the reducible loss is itself a power law in compute:
 * L*(C) − E = K·(C/6)^(−γ), γ = αβ/(α+β), K = A·G^(−α) + B·G^β.
 */
export function optimalLossLaw(p: LawParams): { K: number; gamma: number } {
  checkLaw(p);
  const s = p.alpha + p.beta;
  const G = ((p.alpha * p.A) / (p.beta * p.B)) ** (1 / s);
  return { K: p.A * G ** -p.alpha + p.B * G ** p.beta, gamma: (p.alpha * p.beta) / s };
}

/** Smallest compute whose compute-optimal loss reaches `targetLoss`; Infinity when target ≤ E. */
export function computeForLoss(p: LawParams, targetLoss: number): number {
  checkPositive("target loss", targetLoss);
  const { K, gamma } = optimalLossLaw(p);
  const excess = targetLoss - p.E;
  if (!(excess > 0)) return Number.POSITIVE_INFINITY;
  return 6 * (excess / K) ** (-1 / gamma);
}

export interface ReturnsRow extends Allocation {
  /** C / base. */
  multiple: number;
  /** Loss drop bought by this 10× over the previous row (NaN on the first row). */
  gain: number;
  /** loss − E: what is left to gain at all. */
  reducible: number;
}

/** Predicted compute-optimal loss at base·10^k, k = 0..decades, and the gain each further 10× buys. */
export function returnsToScale(p: LawParams, baseCompute: number, decades = 6): ReturnsRow[] {
  checkPositive("base compute", baseCompute);
  if (!(Number.isInteger(decades) && decades >= 1))
    throw new Error(`decades must be a positive integer, got ${decades}`);
  const rows: ReturnsRow[] = [];
  for (let k = 0; k <= decades; k++) {
    const multiple = 10 ** k;
    const a = computeOptimal(p, baseCompute * multiple);
    const prev = rows[k - 1];
    rows.push({ ...a, multiple, gain: prev ? prev.loss - a.loss : Number.NaN, reducible: a.loss - p.E });
  }
  return rows;
}

export interface InferenceAwareResult {
  targetLoss: number;
  inferenceTokens: number;
  /** The allocation minimising 6·N·D_train + 2·N·D_inference at the target loss. */
  N: number;
  D: number;
  tokensPerParam: number;
  trainFlops: number;
  inferenceFlops: number;
  totalFlops: number;
  /** The Chinchilla-optimal model for the same target loss, costed with the same inference demand. */
  chinchilla: { N: number; D: number; trainFlops: number; inferenceFlops: number; totalFlops: number };
  /** 1 − total/chinchilla.total: the share of lifetime FLOPs saved by training smaller for longer. */
  savings: number;
}

export type InferenceTarget = { targetLoss: number } | { trainingCompute: number };

/**
 * Sardana et al. (2023): the cheapest model over its lifetime. For a target loss ℓ, any N above
 * N_min = (A/(ℓ − E))^(1/α) reaches ℓ after D(N) = (B/(ℓ − E − A/N^α))^(1/β) tokens; minimise
 * 6·N·D(N) + 2·N·D_inf over N (one-dimensional, solved numerically on log N).
 * `trainingCompute` C means: the loss a compute-optimal model reaches with C training FLOPs.
 */
export function inferenceAwareOptimum(
  p: LawParams,
  target: InferenceTarget,
  inferenceTokens: number,
): InferenceAwareResult {
  checkLaw(p);
  if (!(Number.isFinite(inferenceTokens) && inferenceTokens >= 0)) {
    throw new Error(`inference tokens must be a non-negative finite number, got ${inferenceTokens}`);
  }
  let targetLoss: number;
  if ("targetLoss" in target) {
    targetLoss = target.targetLoss;
    checkPositive("target loss", targetLoss);
  } else {
    checkPositive("training compute", target.trainingCompute);
    targetLoss = computeOptimal(p, target.trainingCompute).loss;
  }
  if (!(targetLoss > p.E)) {
    throw new Error(`target loss ${targetLoss} is not above the irreducible loss E = ${p.E}: unreachable`);
  }
  const excess = targetLoss - p.E;
  const uMin = Math.log(p.A / excess) / p.alpha; // log N_min
  const tokensFor = (N: number) => (p.B / (excess - p.A / N ** p.alpha)) ** (1 / p.beta);
  const total = (u: number) => {
    const N = Math.exp(u);
    const D = tokensFor(N);
    const t = 6 * N * D + 2 * N * inferenceTokens;
    return Number.isFinite(t) && D > 0 ? t : Number.POSITIVE_INFINITY;
  };
  // The total cost blows up as N → N_min (D → ∞) and as N → ∞; search a wide bracket above N_min.
  const u = minimize1d(total, uMin + 1e-9, uMin + 40, (v) => Math.log(v));
  const N = Math.exp(u);
  const D = tokensFor(N);
  const chinchillaC = computeForLoss(p, targetLoss);
  const chin = computeOptimal(p, chinchillaC);
  const chinInference = 2 * chin.N * inferenceTokens;
  const trainFlops = 6 * N * D;
  const inferenceFlops = 2 * N * inferenceTokens;
  const totalFlops = trainFlops + inferenceFlops;
  const chinTotal = chinchillaC + chinInference;
  return {
    targetLoss,
    inferenceTokens,
    N,
    D,
    tokensPerParam: D / N,
    trainFlops,
    inferenceFlops,
    totalFlops,
    chinchilla: {
      N: chin.N,
      D: chin.D,
      trainFlops: chinchillaC,
      inferenceFlops: chinInference,
      totalFlops: chinTotal,
    },
    savings: 1 - totalFlops / chinTotal,
  };
}

export interface ComputeMultiplier {
  /** A's compute-optimal loss at C. */
  lossA: number;
  /** Compute B needs (at its own optimum) to reach lossA. */
  computeB: number;
  /** C / computeB: >1 means B is that many times more compute-efficient. Infinity/0 at the extremes. */
  multiplier: number;
}

/** Effective compute multiplier of law B over law A at A's budget C: solve L*_B(C') = L*_A(C). */
export function computeMultiplier(a: LawParams, b: LawParams, C: number): ComputeMultiplier {
  const lossA = computeOptimal(a, C).loss;
  const computeB = computeForLoss(b, lossA);
  return { lossA, computeB, multiplier: C / computeB };
}

/**
 * Minimise a function of one variable on [lo, hi]: a coarse scan (guards against the flat
 * or infinite edges) followed by golden-section refinement around the best scan point.
 * `scale` maps f to the value compared (e.g. log for costs spanning many decades).
 */
export function minimize1d(
  f: (u: number) => number,
  lo: number,
  hi: number,
  scale = (v: number) => v,
): number {
  const steps = 400;
  const h = (hi - lo) / steps;
  let bestI = 0;
  let bestV = Number.POSITIVE_INFINITY;
  for (let i = 0; i <= steps; i++) {
    const v = scale(f(lo + i * h));
    if (v < bestV) {
      bestV = v;
      bestI = i;
    }
  }
  if (!Number.isFinite(bestV))
    throw new Error("minimize1d: the function is not finite anywhere on the interval");
  let a = lo + Math.max(0, bestI - 1) * h;
  let b = lo + Math.min(steps, bestI + 1) * h;
  const phi = (Math.sqrt(5) - 1) / 2;
  let c = b - phi * (b - a);
  let d = a + phi * (b - a);
  let fc = scale(f(c));
  let fd = scale(f(d));
  for (let k = 0; k < 200 && b - a > 1e-13 * Math.max(1, Math.abs(a)); k++) {
    if (fc < fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - phi * (b - a);
      fc = scale(f(c));
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + phi * (b - a);
      fd = scale(f(d));
    }
  }
  return 0.5 * (a + b);
}
