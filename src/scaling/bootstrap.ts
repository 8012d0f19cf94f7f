// Bootstrap over runs: resample the points with replacement, refit, and read standard errors and
// 95% percentile intervals off the replicates — for the parameters and for anything derived from them.

import { randomStream } from "../tensor/random.js";
import type { ChinchillaFit, FitOptions, LawParams, LogData, Theta } from "./fit.js";
import { fitChinchilla, fitLogData, toLogData } from "./fit.js";
import type { ScalingPoint } from "./points.js";
import { type Interval, summarize } from "./stats.js";

export interface BootstrapOptions {
  /** Number of resamples (default 200). */
  count?: number;
  seed?: number;
  /** Options of the full-data fit (grid etc.). */
  fit?: FitOptions;
  /** A full-data fit already computed with `fit`, to skip refitting it. */
  fullFit?: ChinchillaFit;
  /**
   * Starts of each replicate's refit: "local-grid" (default) = the full-data optimum plus four nearby
   * starts (see replicateStarts); "optimum" = the full-data optimum only (5x cheaper; fine when the
   * objective has a single basin near the optimum, as with well-spread sweeps).
   */
  replicateStarts?: "local-grid" | "optimum";
}

export const DEFAULT_BOOTSTRAP_COUNT = 200;

export interface BootstrapFit {
  fit: ChinchillaFit;
  /** One fitted law per successful resample. */
  replicates: LawParams[];
  /** Resamples whose refit failed (non-finite objective); they are left out of the summaries. */
  failed: number;
  count: number;
  seed: number;
  params: Record<keyof LawParams, Interval>;
}

export const PARAM_NAMES: readonly (keyof LawParams)[] = ["A", "B", "E", "alpha", "beta"];

/**
 * Starts for a replicate: the full-data optimum plus four starts with α, β moved by ±30%, with a and b
 * shifted so that A/N^α and B/D^β are unchanged at the median N and D (so each start still fits the
 * bulk of the data and L-BFGS only has to find the local tilt).
 */
export function replicateStarts(theta: Theta, data: LogData): Theta[] {
  const median = (v: Float64Array) => {
    const s = Array.from(v).sort((x, y) => x - y);
    return s[Math.floor(s.length / 2)]!;
  };
  const mN = median(data.logN);
  const mD = median(data.logD);
  const [a, b, e, alpha, beta] = theta;
  const starts: Theta[] = [theta];
  for (const fa of [0.7, 1.3]) {
    for (const fb of [0.7, 1.3]) {
      const al = alpha * fa;
      const be = beta * fb;
      starts.push([a + (al - alpha) * mN, b + (be - beta) * mD, e, al, be]);
    }
  }
  return starts;
}

/** Resample indices 0..n-1 with replacement. */
export function resampleIndices(n: number, next: () => number): Int32Array {
  const idx = new Int32Array(n);
  for (let i = 0; i < n; i++) idx[i] = Math.floor(next() * n);
  return idx;
}

function subset(data: LogData, idx: Int32Array): LogData {
  return {
    logN: Float64Array.from(idx, (i) => data.logN[i]!),
    logD: Float64Array.from(idx, (i) => data.logD[i]!),
    logL: Float64Array.from(idx, (i) => data.logL[i]!),
  };
}

export function bootstrapFit(points: readonly ScalingPoint[], options: BootstrapOptions = {}): BootstrapFit {
  const count = options.count ?? DEFAULT_BOOTSTRAP_COUNT;
  const seed = options.seed ?? 0;
  if (!(Number.isInteger(count) && count >= 2))
    throw new Error(`bootstrap: count must be an integer ≥ 2, got ${count}`);
  const fit = options.fullFit ?? fitChinchilla(points, options.fit);
  const data = toLogData(points);
  const starts = options.replicateStarts === "optimum" ? [fit.theta] : replicateStarts(fit.theta, data);
  const rng = randomStream(seed);
  const replicates: LawParams[] = [];
  let failed = 0;
  for (let r = 0; r < count; r++) {
    const sample = subset(data, resampleIndices(points.length, rng.next));
    try {
      const refit = fitLogData(sample, { ...options.fit, starts, screenIterations: 0 });
      // A resample can push a coefficient to infinity (e.g. too few sizes in it); that is a failed refit.
      const q = refit.params;
      if (
        ![q.A, q.B, q.alpha, q.beta].every((v) => Number.isFinite(v) && v > 0) ||
        !(q.E >= 0 && Number.isFinite(q.E))
      ) {
        failed++;
        continue;
      }
      replicates.push(q);
    } catch {
      failed++;
    }
  }
  return { fit, replicates, failed, count, seed, params: summarizeParams(fit.params, replicates) };
}

function summarizeParams(
  estimate: LawParams,
  replicates: readonly LawParams[],
): Record<keyof LawParams, Interval> {
  const out = {} as Record<keyof LawParams, Interval>;
  for (const k of PARAM_NAMES) {
    out[k] = summarize(
      estimate[k],
      replicates.map((p) => p[k]),
    );
  }
  return out;
}

/** Interval of any quantity derived from the law: f at the estimate, SE and percentiles over replicates. */
export function derivedInterval(boot: BootstrapFit, f: (p: LawParams) => number): Interval {
  return summarize(f(boot.fit.params), boot.replicates.map(f));
}

/**
 * Interval of a quantity comparing two independently bootstrapped fits (e.g. the compute multiplier):
 * replicate i of A is paired with replicate i of B.
 */
export function pairedInterval(
  a: BootstrapFit,
  b: BootstrapFit,
  f: (pa: LawParams, pb: LawParams) => number,
): Interval {
  const n = Math.min(a.replicates.length, b.replicates.length);
  const samples: number[] = [];
  for (let i = 0; i < n; i++) samples.push(f(a.replicates[i]!, b.replicates[i]!));
  return summarize(f(a.fit.params, b.fit.params), samples);
}
