import assert from "node:assert/strict";
import { test } from "node:test";
import { lbfgs, type Objective } from "../src/scaling/lbfgs.js";

const rosenbrock: Objective = (x, g) => {
  // Σ 100(x_{i+1} − x_i²)² + (1 − x_i)², minimum 0 at (1, …, 1).
  g.fill(0);
  let f = 0;
  for (let i = 0; i + 1 < x.length; i++) {
    const a = x[i + 1]! - x[i]! * x[i]!;
    const b = 1 - x[i]!;
    f += 100 * a * a + b * b;
    g[i] = g[i]! - 400 * a * x[i]! - 2 * b;
    g[i + 1] = g[i + 1]! + 200 * a;
  }
  return f;
};

test("L-BFGS: 2-D Rosenbrock from (-1.2, 1) reaches (1, 1)", () => {
  const r = lbfgs(rosenbrock, [-1.2, 1], { gradTol: 1e-10 });
  assert.ok(r.converged, r.reason);
  assert.ok(Math.abs(r.x[0]! - 1) < 1e-7 && Math.abs(r.x[1]! - 1) < 1e-7, `x = ${Array.from(r.x)}`);
  assert.ok(r.f < 1e-14, `f = ${r.f}`);
  assert.ok(r.iterations < 100, `iterations = ${r.iterations}`);
});

test("L-BFGS: 20-D Rosenbrock reaches the all-ones minimum", () => {
  const x0 = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? -1.2 : 1));
  const r = lbfgs(rosenbrock, x0, { gradTol: 1e-10, maxIterations: 2000 });
  assert.ok(r.converged, r.reason);
  for (const v of r.x) assert.ok(Math.abs(v - 1) < 1e-6, `x = ${Array.from(r.x)}`);
});

test("L-BFGS: ill-conditioned quadratic (condition number 1e4) hits the exact minimiser", () => {
  const n = 30;
  const diag = Array.from({ length: n }, (_, i) => 10 ** ((4 * i) / (n - 1)));
  const target = Array.from({ length: n }, (_, i) => Math.sin(i + 1));
  const quad: Objective = (x, g) => {
    let f = 0;
    for (let i = 0; i < n; i++) {
      const d = x[i]! - target[i]!;
      f += 0.5 * diag[i]! * d * d;
      g[i] = diag[i]! * d;
    }
    return f;
  };
  const r = lbfgs(quad, new Float64Array(n), { gradTol: 1e-9 });
  assert.ok(r.converged, r.reason);
  for (let i = 0; i < n; i++) assert.ok(Math.abs(r.x[i]! - target[i]!) < 1e-8, `x[${i}] = ${r.x[i]}`);
});

test("L-BFGS: Beale from (1, 1) reaches (3, 0.5)", () => {
  const beale: Objective = (x, g) => {
    const [a, b] = [x[0]!, x[1]!];
    const t1 = 1.5 - a + a * b;
    const t2 = 2.25 - a + a * b * b;
    const t3 = 2.625 - a + a * b * b * b;
    g[0] = 2 * t1 * (b - 1) + 2 * t2 * (b * b - 1) + 2 * t3 * (b * b * b - 1);
    g[1] = 2 * t1 * a + 2 * t2 * 2 * a * b + 2 * t3 * 3 * a * b * b;
    return t1 * t1 + t2 * t2 + t3 * t3;
  };
  const r = lbfgs(beale, [1, 1], { gradTol: 1e-10 });
  assert.ok(r.converged, r.reason);
  assert.ok(Math.abs(r.x[0]! - 3) < 1e-7 && Math.abs(r.x[1]! - 0.5) < 1e-7, `x = ${Array.from(r.x)}`);
});

test("L-BFGS: backs off from steps that leave the objective's domain", () => {
  // f = x − ln x is defined for x > 0 only (NaN beyond), minimum at x = 1. From x = 30 the secant
  // steps overshoot into x ≤ 0; the line search must treat that as "too far" and shrink.
  let outside = 0;
  const f: Objective = (x, g) => {
    if (x[0]! <= 0) outside++;
    g[0] = 1 - 1 / x[0]!;
    return x[0]! - Math.log(x[0]!);
  };
  const r = lbfgs(f, [30], { gradTol: 1e-12 });
  assert.ok(r.converged, r.reason);
  assert.ok(Math.abs(r.x[0]! - 1) < 1e-8, `x = ${r.x[0]}`);
  assert.ok(outside > 0, "the test should exercise out-of-domain trial steps");
});

test("L-BFGS: a non-finite starting value is an error", () => {
  assert.throws(() => lbfgs((_x, _g) => Number.NaN, [0]), /not finite at the starting point/);
});
