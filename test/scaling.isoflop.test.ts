import assert from "node:assert/strict";
import { test } from "node:test";
import { computeOptimal } from "../src/scaling/derived.js";
import { type LawParams, predictLoss } from "../src/scaling/fit.js";
import { groupByBudget, isoflopBootstrap, isoflopFits } from "../src/scaling/isoflop.js";
import type { ScalingPoint } from "../src/scaling/points.js";
import { randomStream } from "../src/tensor/random.js";

const LAW: LawParams = { A: 400, B: 1800, E: 1.7, alpha: 0.33, beta: 0.3 };
// For this law N_opt ∝ C^(β/(α+β)) and D_opt ∝ C^(α/(α+β)).
const TRUE_A = LAW.beta / (LAW.alpha + LAW.beta);
const TRUE_B = LAW.alpha / (LAW.alpha + LAW.beta);

/** An IsoFLOP sweep: per budget, 9 sizes spanning ±1 decade around the optimum, C jittered ±5%. */
function sweep(seed: number, sigma: number, withBudget: boolean): ScalingPoint[] {
  const rng = randomStream(seed);
  const pts: ScalingPoint[] = [];
  for (const budget of [1e18, 3e18, 1e19, 3e19, 1e20, 3e20]) {
    const nStar = computeOptimal(LAW, budget).N;
    for (let k = -4; k <= 4; k++) {
      const N = nStar * 10 ** (k / 4);
      const C = budget * (1 + 0.05 * (2 * rng.next() - 1));
      const D = C / (6 * N);
      const loss = predictLoss(LAW, N, D) * Math.exp(sigma * rng.normal());
      pts.push(withBudget ? { N, D, C, loss, budget } : { N, D, C, loss });
    }
  }
  return pts;
}

test("isoflop: grouping by recorded budget and by clustering C agree", () => {
  const a = groupByBudget(sweep(1, 0, true));
  const b = groupByBudget(sweep(1, 0, false));
  assert.equal(a.length, 6);
  assert.equal(b.length, 6);
  for (let i = 0; i < 6; i++) {
    assert.equal(a[i]!.points.length, 9);
    assert.ok(Math.abs(b[i]!.budget / a[i]!.budget - 1) < 0.05);
  }
});

test("isoflop: parabola minima recover the known exponents a = β/(α+β), b = α/(α+β)", () => {
  const fit = isoflopFits(groupByBudget(sweep(2, 0.002, true)));
  assert.ok(Math.abs(fit.N.exponent - TRUE_A) < 0.02, `a = ${fit.N.exponent} vs ${TRUE_A}`);
  assert.ok(Math.abs(fit.D.exponent - TRUE_B) < 0.02, `b = ${fit.D.exponent} vs ${TRUE_B}`);
  assert.ok(Math.abs(fit.N.exponent + fit.D.exponent - 1) < 1e-9, "C = 6ND ties the exponents");
  for (const m of fit.minima) {
    assert.ok(!m.extrapolated);
    assert.ok(Math.abs(Math.log(m.Nopt / computeOptimal(LAW, m.budget).N)) < 0.15, `N_opt at ${m.budget}`);
  }
});

test("isoflop: bootstrap intervals contain the truth and are seeded", () => {
  const groups = groupByBudget(sweep(3, 0.005, true));
  const boot = isoflopBootstrap(groups, { count: 200, seed: 1 });
  assert.ok(boot.a.lo <= TRUE_A && TRUE_A <= boot.a.hi, `a ${JSON.stringify(boot.a)} vs ${TRUE_A}`);
  assert.ok(boot.b.lo <= TRUE_B && TRUE_B <= boot.b.hi, `b ${JSON.stringify(boot.b)}`);
  assert.ok(boot.a.hi - boot.a.lo < 0.1);
  assert.deepEqual(isoflopBootstrap(groups, { count: 200, seed: 1 }).a, boot.a);
});

test("isoflop: too few budgets or sizes are clear errors", () => {
  const pts = sweep(4, 0, true);
  assert.throws(() => isoflopFits(groupByBudget(pts.slice(0, 9))), /at least 2 compute budgets/);
  const thin = groupByBudget(pts).map((g) => ({ budget: g.budget, points: g.points.slice(0, 2) }));
  assert.throws(() => isoflopFits(thin), /budget 1\.0\d\de\+18 FLOPs has 2 distinct model size\(s\)/);
});
