// Reproduction of Epoch AI's approach-3 fit of the Chinchilla data (Besiroglu et al. 2024,
// arXiv:2404.10102): A = 482.01, B = 2085.43, E = 1.8172, α = 0.3478, β = 0.3658.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { fitChinchilla, huberObjective, paramsToTheta, toLogData } from "../src/scaling/fit.js";
import { EPOCH_ESTIMATES } from "../src/scaling/index.js";
import { lbfgs } from "../src/scaling/lbfgs.js";
import { loadPoints, pointsFromCsv } from "../src/scaling/points.js";

// The repository root (nearest package.json above this compiled test); ../shared sits next to it.
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    if (dirname(dir) === dir) throw new Error("no package.json above the test");
    dir = dirname(dir);
  }
  return dir;
}

const points = loadPoints({ dataset: "chinchilla", excludeTopLoss: 5 });
const fit = fitChinchilla(points);

test("chinchilla: the shipped dataset is Epoch's 245 points, unchanged", () => {
  const shipped = loadPoints({ dataset: "chinchilla" });
  assert.equal(shipped.length, 245);
  // Tests may read ../shared; product code never does.
  const original = pointsFromCsv(
    readFileSync(
      join(repoRoot(), "..", "shared", "data", "scaling", "chinchilla_fig4_epoch_extracted.csv"),
      "utf8",
    ),
  );
  assert.deepEqual(shipped, original);
  const p = shipped[0]!;
  assert.equal(p.N, 6795600349.289497);
  assert.ok(Math.abs(p.D - 9.993852799709755e18 / (6 * 6795600349.289497)) < 1e-3);
});

test("chinchilla: Epoch protocol (top-5 loss excluded, 4500-start grid) reproduces Epoch's estimates", () => {
  assert.equal(points.length, 240);
  assert.ok(Math.max(...points.map((p) => p.loss)) < 3.41);
  const p = fit.params;
  assert.equal(fit.starts, 4500);
  assert.ok(fit.converged);
  const rel = (k: keyof typeof EPOCH_ESTIMATES) => Math.abs(p[k] / EPOCH_ESTIMATES[k] - 1);
  // Measured: E 1.81722, α 0.34731, β 0.36717, A 477.83, B 2143.4 (relative gaps 0.001%, 0.14%,
  // 0.38%, 0.87%, 2.8%). A and B move together with α and β along a flat valley of the objective,
  // so they differ most; our point has the lower objective (next test).
  assert.ok(rel("E") < 0.001, `E ${p.E}`);
  assert.ok(rel("alpha") < 0.005, `alpha ${p.alpha}`);
  assert.ok(rel("beta") < 0.01, `beta ${p.beta}`);
  assert.ok(rel("A") < 0.02, `A ${p.A}`);
  assert.ok(rel("B") < 0.05, `B ${p.B}`);
});

test("chinchilla: our optimum is a true minimum, below the objective at Epoch's published values", () => {
  const f = huberObjective(toLogData(points), 1e-3);
  const g = new Float64Array(5);
  const atEpoch = f(Float64Array.from(paramsToTheta(EPOCH_ESTIMATES)), g);
  assert.ok(fit.objective < atEpoch, `${fit.objective} vs ${atEpoch}`);
  // Polishing from Epoch's published point lands on the same optimum.
  const r = lbfgs(f, paramsToTheta(EPOCH_ESTIMATES), { gradTol: 1e-12, relTol: 1e-15, maxIterations: 2000 });
  assert.ok(Math.abs(r.f - fit.objective) <= 1e-12 * fit.objective + 1e-18, `${r.f} vs ${fit.objective}`);
  for (let k = 0; k < 5; k++) assert.ok(Math.abs(r.x[k]! - fit.theta[k]!) < 1e-4, `theta[${k}]`);
});
