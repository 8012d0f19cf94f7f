import assert from "node:assert/strict";
import { test } from "node:test";
import {
  computeForLoss,
  computeMultiplier,
  computeOptimal,
  computeOptimalNumeric,
  inferenceAwareOptimum,
  optimalLossLaw,
  returnsToScale,
} from "../src/scaling/derived.js";
import { type LawParams, predictLoss } from "../src/scaling/fit.js";
import { EPOCH_ESTIMATES } from "../src/scaling/index.js";

const LAW: LawParams = { ...EPOCH_ESTIMATES };
const close = (a: number, b: number, rel: number) => Math.abs(a / b - 1) <= rel;

test("derived: closed-form compute-optimal allocation equals numeric minimisation", () => {
  for (const C of [1e18, 5.76e23, 1e26]) {
    const cf = computeOptimal(LAW, C);
    const num = computeOptimalNumeric(LAW, C);
    assert.ok(close(cf.N, num.N, 1e-6), `N at ${C}: ${cf.N} vs ${num.N}`);
    assert.ok(close(cf.D, num.D, 1e-6), `D at ${C}`);
    assert.ok(close(6 * cf.N * cf.D, C, 1e-12));
    assert.ok(cf.loss <= num.loss + 1e-12);
  }
  // Chinchilla's budget: Epoch's law gives ~26 tokens per parameter, not far from the famous 20.
  const chin = computeOptimal(LAW, 5.76e23);
  assert.ok(chin.tokensPerParam > 15 && chin.tokensPerParam < 40, `${chin.tokensPerParam}`);
});

test("derived: the optimal loss is a power law in compute and computeForLoss inverts it", () => {
  const { K, gamma } = optimalLossLaw(LAW);
  for (const C of [1e19, 1e22, 1e25]) {
    const L = computeOptimal(LAW, C).loss;
    assert.ok(close(L - LAW.E, K * (C / 6) ** -gamma, 1e-12));
    assert.ok(close(computeForLoss(LAW, L), C, 1e-9));
  }
  assert.equal(computeForLoss(LAW, LAW.E), Number.POSITIVE_INFINITY);
});

test("derived: returns-to-scale table — 10x steps, shrinking gains that sum to the total drop", () => {
  const rows = returnsToScale(LAW, 1e21);
  assert.equal(rows.length, 7);
  for (let k = 1; k < rows.length; k++) {
    assert.ok(close(rows[k]!.C, rows[k - 1]!.C * 10, 1e-12));
    assert.ok(close(rows[k]!.gain, rows[k - 1]!.loss - rows[k]!.loss, 1e-12));
    assert.ok(rows[k]!.gain > 0);
    if (k > 1) assert.ok(rows[k]!.gain < rows[k - 1]!.gain, "diminishing returns");
  }
  // Each 10x multiplies the reducible loss by 10^−γ.
  const { gamma } = optimalLossLaw(LAW);
  assert.ok(close(rows[3]!.reducible / rows[2]!.reducible, 10 ** -gamma, 1e-9));
});

test("derived: inference-aware optimum (Sardana et al.) reduces to Chinchilla with no inference", () => {
  const C = 1e22;
  const none = inferenceAwareOptimum(LAW, { trainingCompute: C }, 0);
  const chin = computeOptimal(LAW, C);
  assert.ok(close(none.N, chin.N, 1e-5), `${none.N} vs ${chin.N}`);
  assert.ok(Math.abs(none.savings) < 1e-9);
  assert.ok(close(predictLoss(LAW, none.N, none.D), chin.loss, 1e-12));
});

test("derived: heavy inference demand favours a smaller model trained longer, checked by brute force", () => {
  const target = computeOptimal(LAW, 1e22).loss;
  const Dinf = 2e13;
  const r = inferenceAwareOptimum(LAW, { targetLoss: target }, Dinf);
  assert.ok(r.N < r.chinchilla.N && r.tokensPerParam > r.chinchilla.D / r.chinchilla.N);
  assert.ok(r.savings > 0 && r.savings < 1);
  assert.ok(close(predictLoss(LAW, r.N, r.D), target, 1e-9), "the optimum reaches the target loss");
  // Brute force over a fine log grid of N: nothing is cheaper.
  const excess = target - LAW.E;
  let best = Number.POSITIVE_INFINITY;
  for (let u = Math.log(r.N) - 3; u < Math.log(r.N) + 3; u += 1e-4) {
    const N = Math.exp(u);
    const rest = excess - LAW.A / N ** LAW.alpha;
    if (rest <= 0) continue;
    const D = (LAW.B / rest) ** (1 / LAW.beta);
    best = Math.min(best, 6 * N * D + 2 * N * Dinf);
  }
  assert.ok(r.totalFlops <= best * (1 + 1e-9), `${r.totalFlops} vs brute force ${best}`);
  assert.ok(r.totalFlops >= best * (1 - 1e-6));
});

test("derived: compute multiplier — identical laws give 1, a law shifted by k in compute gives k", () => {
  assert.ok(close(computeMultiplier(LAW, LAW, 1e21).multiplier, 1, 1e-9));
  // Scaling A and B by k^−γ makes L*_B(C) = L*_A(kC): B is worth k times the compute.
  const k = 3.7;
  const { gamma } = optimalLossLaw(LAW);
  const better: LawParams = { ...LAW, A: LAW.A * k ** -gamma, B: LAW.B * k ** -gamma };
  for (const C of [1e19, 1e23]) {
    const m = computeMultiplier(LAW, better, C);
    assert.ok(close(m.multiplier, k, 1e-9), `${m.multiplier}`);
    assert.ok(close(computeOptimal(better, m.computeB).loss, m.lossA, 1e-12));
  }
  // A law with a higher floor than A's loss can never catch up.
  const worse: LawParams = { ...LAW, E: 3 };
  assert.equal(computeMultiplier(LAW, worse, 1e22).multiplier, 0);
});

test("derived: invalid inputs are errors", () => {
  assert.throws(() => computeOptimal(LAW, -1), /compute C must be a positive/);
  assert.throws(() => computeOptimal({ ...LAW, alpha: 0 }, 1e20), /alpha must be positive/);
  assert.throws(
    () => inferenceAwareOptimum(LAW, { targetLoss: 1.5 }, 1e12),
    /not above the irreducible loss/,
  );
});
