import assert from "node:assert/strict";
import { test } from "node:test";
import { fitChinchilla, huberObjective, type LawParams, predictLoss, toLogData } from "../src/scaling/fit.js";
import type { ScalingPoint } from "../src/scaling/points.js";
import { randomStream } from "../src/tensor/random.js";

const TRUTH: LawParams = { A: 400, B: 1800, E: 1.7, alpha: 0.33, beta: 0.3 };

/** Runs on a grid of N and D (like a sweep), loss = L(N, D)·exp(ε), ε ~ N(0, sigma²). */
function synthetic(law: LawParams, seed: number, sigma: number): ScalingPoint[] {
  const rng = randomStream(seed);
  const points: ScalingPoint[] = [];
  for (let i = 0; i < 8; i++) {
    for (let j = 0; j < 8; j++) {
      const N = 1e7 * 10 ** (i * (3 / 7));
      const D = 1e9 * 10 ** (j * (3 / 7));
      const loss = predictLoss(law, N, D) * Math.exp(sigma * rng.normal());
      points.push({ N, D, C: 6 * N * D, loss });
    }
  }
  return points;
}

test("fit: analytic gradient matches central finite differences", () => {
  const data = toLogData(synthetic(TRUTH, 3, 0.02));
  const f = huberObjective(data, 1e-3);
  const theta = Float64Array.from([5.5, 7.8, 0.4, 0.31, 0.29]);
  const g = new Float64Array(5);
  f(theta, g);
  const scratch = new Float64Array(5);
  for (let k = 0; k < 5; k++) {
    const h = 1e-6;
    const tp = Float64Array.from(theta);
    const tm = Float64Array.from(theta);
    tp[k] = tp[k]! + h;
    tm[k] = tm[k]! - h;
    const fd = (f(tp, scratch) - f(tm, scratch)) / (2 * h);
    assert.ok(
      Math.abs(fd - g[k]!) <= 1e-5 * Math.max(1e-3, Math.abs(fd)),
      `component ${k}: ${g[k]} vs ${fd}`,
    );
  }
});

test("fit: recovers the exact law from noiseless points", () => {
  const fit = fitChinchilla(synthetic(TRUTH, 1, 0));
  const p = fit.params;
  assert.ok(fit.objective < 1e-12, `objective ${fit.objective}`);
  for (const k of ["A", "B", "E", "alpha", "beta"] as const) {
    assert.ok(Math.abs(p[k] / TRUTH[k] - 1) < 1e-4, `${k}: ${p[k]} vs ${TRUTH[k]}`);
  }
});

test("fit: recovers known parameters from points with 1% noise", () => {
  const fit = fitChinchilla(synthetic(TRUTH, 2, 0.01));
  const p = fit.params;
  assert.ok(fit.converged);
  assert.ok(Math.abs(p.E / TRUTH.E - 1) < 0.03, `E ${p.E}`);
  assert.ok(Math.abs(p.alpha - TRUTH.alpha) < 0.03, `alpha ${p.alpha}`);
  assert.ok(Math.abs(p.beta - TRUTH.beta) < 0.03, `beta ${p.beta}`);
  // A and B are strongly correlated with α and β; check the predicted losses instead of their raw values.
  for (const [N, D] of [
    [1e8, 1e10],
    [3e9, 1e11],
  ] as const) {
    const rel = predictLoss(p, N, D) / predictLoss(TRUTH, N, D) - 1;
    assert.ok(Math.abs(rel) < 0.01, `loss at N=${N}, D=${D} off by ${rel}`);
  }
});

test("fit: too few points is a clear error", () => {
  const pts = synthetic(TRUTH, 1, 0).slice(0, 4);
  assert.throws(() => fitChinchilla(pts), /at least 5 points/);
});
