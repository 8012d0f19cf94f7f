import assert from "node:assert/strict";
import { test } from "node:test";
import { bootstrapFit, derivedInterval, pairedInterval } from "../src/scaling/bootstrap.js";
import { computeMultiplier, computeOptimal } from "../src/scaling/derived.js";
import { type LawParams, predictLoss, type StartGrid } from "../src/scaling/fit.js";
import type { ScalingPoint } from "../src/scaling/points.js";
import { randomStream } from "../src/tensor/random.js";

const TRUTH: LawParams = { A: 400, B: 1800, E: 1.7, alpha: 0.33, beta: 0.3 };
// A small start grid keeps each trial's full fit cheap; it brackets the truth loosely.
const SMALL_GRID: StartGrid = { a: [0, 5, 10], b: [5, 10], e: [0, 0.5], alpha: [0.5], beta: [0.5] };

function sweep(seed: number, sigma: number): ScalingPoint[] {
  const rng = randomStream(seed);
  const pts: ScalingPoint[] = [];
  for (let i = 0; i < 7; i++) {
    for (let j = 0; j < 7; j++) {
      const N = 1e7 * 10 ** (i * 0.5);
      const D = 1e9 * 10 ** (j * 0.5);
      pts.push({ N, D, C: 6 * N * D, loss: predictLoss(TRUTH, N, D) * Math.exp(sigma * rng.normal()) });
    }
  }
  return pts;
}

// 40 trials × 100 resamples: each trial's coverage indicator is a Bernoulli draw, so with 40 trials
// an interval with true 95% coverage scores below 34/40 = 85% with probability < 2% — strict enough to
// catch a broken bootstrap (e.g. intervals of the wrong width), cheap enough to run in seconds
// (4000 refits of 49 points from the full-data optimum).
const TRIALS = 40;
const RESAMPLES = 100;

test("bootstrap: 95% percentile intervals cover the true parameters in ≥ 85% of seeded trials", () => {
  const names = ["A", "B", "E", "alpha", "beta", "loss@1e22"] as const;
  const covered = Object.fromEntries(names.map((n) => [n, 0])) as Record<(typeof names)[number], number>;
  const truthLoss = computeOptimal(TRUTH, 1e22).loss;
  for (let t = 0; t < TRIALS; t++) {
    const boot = bootstrapFit(sweep(1000 + t, 0.01), {
      count: RESAMPLES,
      seed: t,
      fit: { grid: SMALL_GRID, screenIterations: 0 },
      replicateStarts: "optimum",
    });
    assert.equal(boot.replicates.length + boot.failed, RESAMPLES);
    for (const k of ["A", "B", "E", "alpha", "beta"] as const) {
      const i = boot.params[k];
      if (i.lo <= TRUTH[k] && TRUTH[k] <= i.hi) covered[k]++;
    }
    const li = derivedInterval(boot, (p) => computeOptimal(p, 1e22).loss);
    if (li.lo <= truthLoss && truthLoss <= li.hi) covered["loss@1e22"]++;
  }
  const rates = Object.fromEntries(names.map((n) => [n, covered[n] / TRIALS]));
  for (const n of names) assert.ok(rates[n]! >= 0.85, `coverage ${JSON.stringify(rates)}`);
});

test("bootstrap: seeded and reproducible; SE and interval are consistent", () => {
  const pts = sweep(7, 0.01);
  const opts = { count: 30, seed: 5, fit: { grid: SMALL_GRID, screenIterations: 0 } };
  const a = bootstrapFit(pts, opts);
  const b = bootstrapFit(pts, { ...opts, fullFit: a.fit });
  assert.deepEqual(a.replicates, b.replicates);
  const c = bootstrapFit(pts, { ...opts, seed: 6, fullFit: a.fit });
  assert.notDeepEqual(a.replicates, c.replicates);
  for (const k of ["A", "B", "E", "alpha", "beta"] as const) {
    const i = a.params[k];
    assert.ok(i.se > 0 && i.lo < i.hi, k);
    assert.ok(i.hi - i.lo < 8 * i.se, `${k}: interval width vs SE`);
  }
  // Paired comparison of a fit with itself: multiplier exactly 1 in every replicate.
  const m = pairedInterval(a, b, (pa, pb) => computeMultiplier(pa, pb, 1e21).multiplier);
  assert.ok(Math.abs(m.lo - 1) < 1e-9 && Math.abs(m.hi - 1) < 1e-9);
  assert.throws(() => bootstrapFit(pts, { count: 1 }), /count must be an integer/);
});
