// Chinchilla approach 2 (IsoFLOP profiles): for each compute budget, fit a parabola of loss against
// log N through that budget's runs; its vertex is N_opt(C). Then fit the power laws N_opt ∝ C^a and
// D_opt ∝ C^b by least squares in log space. (Approach 1, the envelope of training curves, needs
// per-step losses; with one final loss per run the IsoFLOP minima are the same per-budget estimate.)

import { randomStream } from "../tensor/random.js";
import type { ScalingPoint } from "./points.js";
import { type Interval, linearFit, quadraticFit, summarize } from "./stats.js";

export interface IsoflopGroup {
  /** Nominal budget: the recorded `budget` if the runs carry one, else the geometric mean of their C. */
  budget: number;
  points: ScalingPoint[];
}

export interface IsoflopMinimum {
  budget: number;
  /** loss ≈ c0 + c1·u + c2·u², u = ln N. */
  coefficients: [number, number, number];
  Nopt: number;
  Dopt: number;
  lossAtOpt: number;
  /** True when the vertex lies outside the sampled range of N (an extrapolated minimum: less trustworthy). */
  extrapolated: boolean;
  runs: number;
}

export interface PowerLaw {
  /** y = k·C^exponent. */
  k: number;
  exponent: number;
}

export interface IsoflopFit {
  minima: IsoflopMinimum[];
  /** N_opt ∝ C^a. */
  N: PowerLaw;
  /** D_opt ∝ C^b. */
  D: PowerLaw;
}

export interface IsoflopBootstrap extends IsoflopFit {
  a: Interval;
  b: Interval;
  /** Replicates whose parabolas could not be fitted (fewer than 3 distinct N, or not convex). */
  failed: number;
  count: number;
  seed: number;
}

/**
 * Group runs into IsoFLOP budgets: by their `budget` field when every run has one, otherwise by
 * clustering ln C — sorted runs start a new group where consecutive C differ by more than `gapFactor`.
 */
export function groupByBudget(points: readonly ScalingPoint[], gapFactor = 1.5): IsoflopGroup[] {
  if (points.length === 0) throw new Error("isoflop: no points");
  if (points.every((p) => p.budget !== undefined)) {
    const byBudget = new Map<number, ScalingPoint[]>();
    for (const p of points) {
      const list = byBudget.get(p.budget!) ?? [];
      list.push(p);
      byBudget.set(p.budget!, list);
    }
    return [...byBudget.entries()]
      .sort((x, y) => x[0] - y[0])
      .map(([budget, pts]) => ({ budget, points: pts }));
  }
  const sorted = points.slice().sort((x, y) => x.C - y.C);
  const groups: ScalingPoint[][] = [[sorted[0]!]];
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.C / sorted[i - 1]!.C > gapFactor) groups.push([]);
    groups[groups.length - 1]!.push(sorted[i]!);
  }
  return groups.map((pts) => ({
    budget: Math.exp(pts.reduce((s, p) => s + Math.log(p.C), 0) / pts.length),
    points: pts,
  }));
}

export function isoflopMinimum(group: IsoflopGroup): IsoflopMinimum {
  const u = group.points.map((p) => Math.log(p.N));
  const L = group.points.map((p) => p.loss);
  const distinct = new Set(u).size;
  if (distinct < 3) {
    throw new Error(
      `isoflop: budget ${group.budget.toExponential(3)} FLOPs has ${distinct} distinct model size(s); ` +
        "a parabola needs at least 3 (is this an IsoFLOP sweep?)",
    );
  }
  const c = quadraticFit(u, L);
  if (!(c[2] > 0)) {
    throw new Error(
      `isoflop: the loss-vs-log N parabola at budget ${group.budget.toExponential(3)} is not convex`,
    );
  }
  const uOpt = -c[1] / (2 * c[2]);
  const Nopt = Math.exp(uOpt);
  return {
    budget: group.budget,
    coefficients: c,
    Nopt,
    Dopt: group.budget / (6 * Nopt),
    lossAtOpt: c[0] + c[1] * uOpt + c[2] * uOpt * uOpt,
    extrapolated: uOpt < Math.min(...u) || uOpt > Math.max(...u),
    runs: group.points.length,
  };
}

function powerLaw(C: number[], y: number[]): PowerLaw {
  const f = linearFit(
    C.map((c) => Math.log(c)),
    y.map((v) => Math.log(v)),
  );
  return { k: Math.exp(f.intercept), exponent: f.slope };
}

/** Per-budget minima and the power laws through them. Needs ≥ 2 budgets with ≥ 3 distinct N each. */
export function isoflopFits(groups: readonly IsoflopGroup[]): IsoflopFit {
  if (groups.length < 2) throw new Error(`isoflop: need at least 2 compute budgets, got ${groups.length}`);
  const minima = groups.map(isoflopMinimum);
  const C = minima.map((m) => m.budget);
  return {
    minima,
    N: powerLaw(
      C,
      minima.map((m) => m.Nopt),
    ),
    D: powerLaw(
      C,
      minima.map((m) => m.Dopt),
    ),
  };
}

/** isoflopFits plus a bootstrap that resamples runs within each budget. */
export function isoflopBootstrap(
  groups: readonly IsoflopGroup[],
  options: { count?: number; seed?: number } = {},
): IsoflopBootstrap {
  const count = options.count ?? 200;
  const seed = options.seed ?? 0;
  const fit = isoflopFits(groups);
  const rng = randomStream(seed);
  const as: number[] = [];
  const bs: number[] = [];
  let failed = 0;
  for (let r = 0; r < count; r++) {
    const resampled = groups.map((g) => ({
      budget: g.budget,
      points: g.points.map(() => g.points[rng.int(g.points.length)]!),
    }));
    try {
      const f = isoflopFits(resampled);
      as.push(f.N.exponent);
      bs.push(f.D.exponent);
    } catch {
      failed++;
    }
  }
  return { ...fit, a: summarize(fit.N.exponent, as), b: summarize(fit.D.exponent, bs), failed, count, seed };
}
