import assert from "node:assert/strict";
import { test } from "node:test";
import { bootstrapFit } from "../src/scaling/bootstrap.js";
import { type LawParams, predictLoss, type StartGrid } from "../src/scaling/fit.js";
import {
  compareAndFormat,
  fitAndFormat,
  fmt,
  formatComparison,
  formatFitReport,
  formatTable,
} from "../src/scaling/format.js";
import { groupByBudget, isoflopBootstrap } from "../src/scaling/isoflop.js";
import type { ScalingPoint } from "../src/scaling/points.js";
import { randomStream } from "../src/tensor/random.js";

const LAW: LawParams = { A: 400, B: 1800, E: 1.7, alpha: 0.33, beta: 0.3 };
const GRID: StartGrid = { a: [0, 5, 10], b: [5, 10], e: [0, 0.5], alpha: [0.5], beta: [0.5] };

function isoflopSweep(law: LawParams, seed: number): ScalingPoint[] {
  const rng = randomStream(seed);
  const pts: ScalingPoint[] = [];
  for (const budget of [1e17, 1e18, 1e19, 1e20]) {
    for (let k = 0; k < 7; k++) {
      const N = 1e6 * 10 ** (k / 2) * (budget / 1e17) ** 0.5;
      const D = budget / (6 * N);
      pts.push({ N, D, C: budget, budget, loss: predictLoss(law, N, D) * Math.exp(0.005 * rng.normal()) });
    }
  }
  return pts;
}

test("format: numbers and tables", () => {
  assert.equal(fmt(1234.5678), "1235");
  assert.equal(fmt(0.34731), "0.3473");
  assert.equal(fmt(1.296e22), "1.296e22");
  assert.equal(fmt(Number.NaN), "-");
  assert.equal(formatTable(["a", "bb"], [["x", "1"]]), "a  bb\n-  --\nx   1");
});

test("format: the fit report shows parameters with intervals, the allocation and returns to scale", () => {
  const pts = isoflopSweep(LAW, 1);
  const boot = bootstrapFit(pts, { count: 20, seed: 0, fit: { grid: GRID, screenIterations: 0 } });
  const iso = isoflopBootstrap(groupByBudget(pts), { count: 50, seed: 0 });
  const text = formatFitReport({
    fit: boot.fit,
    boot,
    baseCompute: 1e20,
    inferenceTokens: 1e11,
    isoflop: iso,
  });
  assert.match(text, /^alpha\s+0\.3\d+\s+\S+\s+\[0\.\d+, 0\.\d+\]$/m);
  assert.match(text, /^tokens\/param\s+\S+/m);
  assert.match(text, /^10\^6x\s+1e26\s/m);
  assert.match(text, /Inference-aware optimum/);
  assert.match(text, /N_opt ∝ C\^0\.\d+ \[/);
  assert.equal(text.split("\n").filter((l) => /^10\^\dx/.test(l)).length, 6);
});

test("format: comparison reports the compute multiplier with a paired interval", () => {
  const k = 4;
  const gamma = (LAW.alpha * LAW.beta) / (LAW.alpha + LAW.beta);
  const better: LawParams = { ...LAW, A: LAW.A * k ** -gamma, B: LAW.B * k ** -gamma };
  const opts = { count: 20, seed: 0, fit: { grid: GRID, screenIterations: 0 } };
  const a = bootstrapFit(isoflopSweep(LAW, 2), opts);
  const b = bootstrapFit(isoflopSweep(better, 3), opts);
  const text = formatComparison(a, b, 1e20, ["gpt2", "llama"]);
  const m =
    /effective compute multiplier of llama over gpt2: ([\d.]+)x \(95% interval \[([\d.]+), ([\d.]+)\]/.exec(
      text,
    );
  assert.ok(m, text);
  assert.ok(Math.abs(Number(m[1]) / k - 1) < 0.3, `multiplier ${m[1]} vs ${k}`);
});

test("format: fitAndFormat / compareAndFormat — the CLI entry points", () => {
  const pts = isoflopSweep(LAW, 4);
  const r = fitAndFormat(pts, { bootstrap: 10, isoflop: true, fit: { grid: GRID, screenIterations: 0 } });
  assert.ok(r.boot && r.isoflop);
  assert.match(r.text, /C = 1e20 FLOPs/, "base budget defaults to the largest C");
  // Runs that are not an IsoFLOP grid: the profiles are skipped with the reason, the fit still prints.
  const scattered = pts.map((p, i) => ({ ...p, budget: undefined, C: p.C * 1.7 ** i }));
  const s = fitAndFormat(scattered, {
    bootstrap: 0,
    isoflop: true,
    fit: { grid: GRID, screenIterations: 0 },
  });
  assert.match(s.text, /IsoFLOP profiles skipped: isoflop: /);
  const c = compareAndFormat(pts, pts, { bootstrap: 10, fit: { grid: GRID, screenIterations: 0 } });
  assert.match(c, /effective compute multiplier of B over A: 1x/);
});
