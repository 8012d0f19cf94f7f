// The effective compute multiplier of a recipe over the baseline: the compute the baseline needs to reach
// the recipe's loss, divided by the compute the recipe used (at one model size).
//
// Estimator. The baseline's final validation loss against compute C (its budgets; seeds averaged) is fitted
// with L(C) = E + A·(C/C₀)^(−α), the data-limited curve of a fixed-size model (with two budgets E is fixed
// at 0, a pure power law). For each budget of a recipe, inverting that curve at the recipe's mean loss
// gives the baseline compute C_B, and m = C_B / C_recipe. A recipe's multiplier is the geometric mean of m
// over its budgets. The interval is a percentile bootstrap: each replicate resamples the seeds (paired
// across recipes, which share data order and initial weights per seed), refits the baseline, and
// resamples the budgets that the mean runs over.
//
// Bias. Where the recipe's loss is below every baseline loss, C_B is an extrapolation of the fitted curve
// (flagged per budget); below the fitted floor E it is infinite, and the multiplier is reported as
// unbounded. Three budgets pin the curve exactly, so its extrapolation is only as good as the functional
// form; a fixed-size curve flattens towards E, so extrapolation tends to overstate C_B when the recipe is
// much better, and the budget-to-budget spread in the interval is the honest warning sign.
import { randomStream } from "../tensor/index.js";
import type { StudyPlan, Variant } from "./plan.js";
import { finishedRuns, mainRuns, type Tuning, tuning } from "./run.js";

export const DEFAULT_STUDY_BOOTSTRAP = 2000;
/** The interval reported: 90% (5th to 95th percentile). */
export const INTERVAL_MASS = 0.9;

export interface CurveFit {
  E: number;
  A: number;
  alpha: number;
  /** Reference compute C₀ (the smallest budget), so A is a loss. */
  C0: number;
}

export interface BudgetPoint {
  budget: number;
  /** FLOPs spent by this variant at this budget, and tokens trained. */
  C: number;
  D: number;
  /** Final validation loss per seed (NaN where not finished), and their mean. */
  losses: number[];
  mean: number;
  /** Multiplier over the baseline at this budget; extrapolated when outside the baseline's losses. */
  multiplier: number;
  extrapolated: boolean;
}

export interface VariantResult {
  id: string;
  kind: Variant["kind"];
  description: string;
  nonEmbedding: number;
  totalParams: number;
  flopsPerToken: number;
  lrFactor: number | null;
  points: BudgetPoint[];
  /** Geometric mean over budgets, with its bootstrap interval (INTERVAL_MASS). */
  multiplier: { estimate: number; lo: number; hi: number } | null;
}

export interface StudyResult {
  studyId: string;
  baseline: string;
  fit: CurveFit | null;
  tuning: Tuning[];
  variants: VariantResult[];
  /** Planned runs without a finished record. */
  missing: string[];
  bootstrap: number;
  seeds: number[];
  budgets: number[];
}

/** Least squares of y = E + A·x^(−α) over α (grid, then golden section), E ≥ 0, A > 0. */
export function fitCurve(C: readonly number[], L: readonly number[]): CurveFit {
  if (C.length !== L.length || C.length < 2)
    throw new Error("fitCurve: need at least two (compute, loss) points");
  const C0 = Math.min(...C);
  const x = C.map((c) => c / C0);
  const freeE = C.length >= 3;
  const solve = (alpha: number) => {
    const u = x.map((v) => v ** -alpha);
    const n = u.length;
    const mu = u.reduce((a, b) => a + b, 0) / n;
    const mL = L.reduce((a, b) => a + b, 0) / n;
    let A = 0;
    let E = 0;
    if (freeE) {
      let suu = 0;
      let sul = 0;
      for (let i = 0; i < n; i++) {
        suu += (u[i]! - mu) ** 2;
        sul += (u[i]! - mu) * (L[i]! - mL);
      }
      A = suu > 0 ? sul / suu : 0;
      E = mL - A * mu;
      if (E < 0) E = 0;
    } else {
      E = 0;
    }
    if (!freeE || E === 0) {
      // E fixed at 0: fit log L = log A − α log x, so A·x^(−α) through the points (α is searched outside).
      let s = 0;
      for (let i = 0; i < n; i++) s += Math.log(L[i]!) + alpha * Math.log(x[i]!);
      A = Math.exp(s / n);
    }
    let sse = 0;
    for (let i = 0; i < n; i++) sse += (E + A * u[i]! - L[i]!) ** 2;
    return { E, A, sse };
  };
  const grid: number[] = [];
  for (let i = 0; i <= 240; i++) grid.push(0.005 * 1.035 ** i); // 0.005 … ~19
  let best = grid[0]!;
  for (const a of grid) if (solve(a).sse < solve(best).sse) best = a;
  let lo = best / 1.035;
  let hi = best * 1.035;
  const g = (Math.sqrt(5) - 1) / 2;
  for (let k = 0; k < 60; k++) {
    const m1 = hi - g * (hi - lo);
    const m2 = lo + g * (hi - lo);
    if (solve(m1).sse < solve(m2).sse) hi = m2;
    else lo = m1;
  }
  const alpha = (lo + hi) / 2;
  const s = solve(alpha);
  return { E: s.E, A: s.A, alpha, C0 };
}

/** Compute at which the fitted curve reaches loss L (Infinity at or below its floor E). */
export function computeForLoss(f: CurveFit, L: number): number {
  if (!(L > f.E) || !(f.A > 0)) return Number.POSITIVE_INFINITY;
  return f.C0 * ((L - f.E) / f.A) ** (-1 / f.alpha);
}

/** Nearest-rank percentile: well defined when some samples are infinite (an unbounded multiplier). */
function percentile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const geomean = (v: readonly number[]) => Math.exp(v.reduce((s, x) => s + Math.log(x), 0) / v.length);
const mean = (v: readonly number[]) => v.reduce((a, b) => a + b, 0) / v.length;

/** Reads a study's finished runs and estimates every variant's multiplier over the baseline. */
export function estimateStudy(
  plan: StudyPlan,
  options: { bootstrap?: number; seed?: number } = {},
): StudyResult {
  const done = finishedRuns(plan);
  const tuned = tuning(plan, done);
  const runs = mainRuns(plan, tuned) ?? [];
  const bootstrap = options.bootstrap ?? DEFAULT_STUDY_BOOTSTRAP;
  const missing = [
    ...plan.recipes.flatMap((r) =>
      tuned
        .find((t) => t.recipe === r)!
        .losses.filter((l) => !Number.isFinite(l.loss))
        .map((l) => `${r} lr×${l.lrFactor}`),
    ),
    ...runs.filter((r) => !done.has(r.name)).map((r) => r.name),
  ];
  const S = plan.seeds.length;
  // losses[variant][budget][seed]
  const table = plan.variants.map((v) =>
    plan.budgets.map((b) =>
      plan.seeds.map((s) => {
        const run = runs.find((r) => r.variant === v.id && r.budget === b && r.seed === s);
        return run ? (done.get(run.name)?.loss ?? Number.NaN) : Number.NaN;
      }),
    ),
  );
  const flops = plan.variants.map((v) =>
    plan.budgets.map((b) => runs.find((r) => r.variant === v.id && r.budget === b)),
  );
  const complete = (vi: number) => table[vi]!.every((row) => row.every(Number.isFinite));
  const multipliersWith = (seedIdx: readonly number[]) => {
    const means = table.map((rows) => rows.map((row) => mean(seedIdx.map((i) => row[i]!))));
    if (!complete(0)) return null;
    const fit = fitCurve(
      plan.budgets.map((_, bi) => flops[0]![bi]!.C),
      means[0]!,
    );
    const per = plan.variants.map((_, vi) =>
      complete(vi) ? means[vi]!.map((L, bi) => computeForLoss(fit, L) / flops[vi]![bi]!.C) : null,
    );
    return { fit, means, per };
  };
  const all = multipliersWith(plan.seeds.map((_, i) => i));
  const baseLosses = all ? all.means[0]! : [];
  // Bootstrap replicates: the multiplier's geometric mean over resampled budgets, per variant.
  const samples: number[][] = plan.variants.map(() => []);
  if (all && bootstrap > 0) {
    const rng = randomStream(options.seed ?? 1);
    const B = plan.budgets.length;
    for (let k = 0; k < bootstrap; k++) {
      const seedIdx = Array.from({ length: S }, () => rng.int(S));
      const rep = multipliersWith(seedIdx)!;
      const budgetIdx = Array.from({ length: B }, () => rng.int(B));
      for (const [vi, per] of rep.per.entries())
        if (per) samples[vi]!.push(geomean(budgetIdx.map((i) => per[i]!)));
    }
  }
  const tail = (1 - INTERVAL_MASS) / 2;
  const best = new Map(tuned.map((t) => [t.recipe, t.best]));
  const variants: VariantResult[] = plan.variants.map((v, vi) => {
    const per = all?.per[vi] ?? null;
    const points: BudgetPoint[] = plan.budgets.map((b, bi) => {
      const L = all?.means[vi]?.[bi] ?? Number.NaN;
      return {
        budget: b,
        C: flops[vi]![bi]?.C ?? Number.NaN,
        D: flops[vi]![bi]?.D ?? Number.NaN,
        losses: table[vi]![bi]!,
        mean: L,
        multiplier: per ? per[bi]! : Number.NaN,
        extrapolated: baseLosses.length > 0 && (L < Math.min(...baseLosses) || L > Math.max(...baseLosses)),
      };
    });
    const sorted = [...samples[vi]!].sort((a, b) => a - b);
    return {
      id: v.id,
      kind: v.kind,
      description: v.description,
      nonEmbedding: v.nonEmbedding,
      totalParams: v.totalParams,
      flopsPerToken: v.flopsPerToken,
      lrFactor: best.get(v.tuneFrom) ?? null,
      points,
      multiplier: per
        ? {
            estimate: geomean(per),
            lo: sorted.length ? percentile(sorted, tail) : Number.NaN,
            hi: sorted.length ? percentile(sorted, 1 - tail) : Number.NaN,
          }
        : null,
    };
  });
  return {
    studyId: plan.studyId,
    baseline: plan.recipes[0]!,
    fit: all?.fit ?? null,
    tuning: tuned,
    variants,
    missing,
    bootstrap,
    seeds: plan.seeds,
    budgets: plan.budgets,
  };
}
