// Recipe studies: recipes load with their levers, the curve fit and its inverse, a tiny study run end to
// end with the real trainer (learning-rate sweep, runs, multiplier with an interval), resumption without
// retraining, and the refusals that keep a study honest (sizes, too few learning rates).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  computeForLoss,
  estimateStudy,
  fitCurve,
  formatStudy,
  mainRuns,
  planStudy,
  runStudy,
  studyRun,
  tuning,
  writeStudyReport,
} from "../src/study/index.js";
import { builtinRecipes, loadRecipe, parseTrainConfig } from "../src/train/index.js";
import { tinyDataset } from "./helpers/train-data.js";

const { root, data } = tinyDataset();
const dir = mkdtempSync(join(tmpdir(), "afterscale-recipes-"));
after(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

const recipeFile = (name: string, body: Record<string, unknown>) => {
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify({ name, description: `test recipe ${name}`, ...body }));
  return path;
};

test("shipped recipes load, and a recipe's fields fill in under explicit ones", () => {
  for (const name of builtinRecipes()) assert.equal(loadRecipe(name).name, name);
  assert.ok(builtinRecipes().includes("gpt2"));
  const c = parseTrainConfig({ recipe: "gpt2", runName: "r" });
  assert.equal(c.family, "gpt2");
  assert.equal(parseTrainConfig({ recipe: "gpt2", family: "llama", runName: "r" }).family, "llama");
});

test("levers: a recipe is its base plus its levers; without(lever) drops exactly one", () => {
  const base = recipeFile("base", { config: { family: "gpt2", lr: 0.001 } });
  const full = recipeFile("full", { base, levers: { wsd: { schedule: "wsd" }, warm: { warmupSteps: 7 } } });
  const r = loadRecipe(full);
  assert.deepEqual(r.fields, { family: "gpt2", lr: 0.001, schedule: "wsd", warmupSteps: 7 });
  assert.deepEqual(r.without("wsd"), { family: "gpt2", lr: 0.001, warmupSteps: 7 });
  assert.throws(() => r.without("nope"), /has no lever nope/);
});

test("bad recipes are refused with the file and the field", () => {
  assert.throws(
    () => loadRecipe(recipeFile("sized", { config: { dModel: 64 } })),
    /sets dModel, which is the run's choice/,
  );
  assert.throws(() => loadRecipe(recipeFile("typo", { confg: {} })), /typo\.json: .*confg/);
  assert.throws(() => loadRecipe("no-such-recipe"), /not a shipped recipe/);
  const loop = join(dir, "loop.json");
  writeFileSync(loop, JSON.stringify({ name: "loop", description: "x", base: loop }));
  assert.throws(() => loadRecipe(loop), /base chain loops/);
  assert.throws(
    () => parseTrainConfig({ recipe: recipeFile("badlr", { config: { lr: -1 } }), runName: "r" }),
    /with the fields of recipe .*lr/,
  );
});

test("fitCurve recovers E + A·(C/C0)^-α, and computeForLoss inverts it", () => {
  const truth = { E: 2, A: 1.5, alpha: 0.4 };
  const C = [1e12, 2e12, 4e12, 8e12];
  const L = C.map((c) => truth.E + truth.A * (c / 1e12) ** -truth.alpha);
  const f = fitCurve(C, L);
  assert.ok(
    Math.abs(f.E - 2) < 1e-3 && Math.abs(f.A - 1.5) < 1e-3 && Math.abs(f.alpha - 0.4) < 1e-3,
    JSON.stringify(f),
  );
  assert.ok(Math.abs(computeForLoss(f, L[2]!) / 4e12 - 1) < 1e-3);
  assert.equal(computeForLoss(f, 1.9), Number.POSITIVE_INFINITY, "below the floor: unbounded");
});

const shared = {
  root,
  data,
  model: "nano",
  dModel: 48,
  layers: 2,
  heads: 4,
  context: 16,
  batchSize: 4,
  logInterval: 1000,
} as const;

test("planStudy refuses a bigger model and too few learning rates", () => {
  const big = recipeFile("big", { config: { family: "gpt2", mlpRatio: 8 } });
  assert.throws(
    () => planStudy({ studyId: "s-size", recipes: ["gpt2", big], budgets: [2e7, 4e7], train: shared }),
    /big has .* non-embedding parameters, .*% off the baseline gpt2/,
  );
  assert.throws(
    () =>
      planStudy({
        studyId: "s-lr",
        recipes: ["gpt2", "llama"],
        budgets: [2e7, 4e7],
        lrFactors: [1, 2],
        train: shared,
      }),
    /at least 3 positive learning-rate factors/,
  );
});

test("a tiny study: tuned learning rates, every run, a multiplier with an interval; a rerun trains nothing", async () => {
  const options = {
    studyId: "tiny",
    recipes: ["gpt2", "llama"],
    budgets: [3e7, 6e7, 1.2e8],
    seeds: [1, 2],
    train: shared,
    log: () => {},
  };
  const plan = planStudy(options);
  // Each recipe counts its own FLOPs per token: the same budget buys each its own number of tokens.
  for (const v of plan.variants) assert.ok(v.flopsPerToken > 0);
  const first = await runStudy(plan, { quiet: true });
  assert.equal(first.interrupted, null);
  // The learning-rate sweeps at the smallest budget (first seed; 3 factors, more where the best was at an
  // edge), plus 3 budgets × 2 seeds per recipe minus the tuning run each reuses.
  const tried = tuning(plan).reduce((n, t) => n + t.losses.length, 0);
  assert.equal(first.completed.length, tried + 2 * (3 * 2 - 1));
  const r = estimateStudy(plan, { bootstrap: 200 });
  assert.deepEqual(r.missing, []);
  assert.ok(r.fit);
  for (const t of r.tuning) assert.ok(t.best !== null && t.losses.some((l) => l.lrFactor === t.best));
  const llama = r.variants.find((v) => v.id === "llama")!;
  assert.ok(llama.multiplier && llama.multiplier.estimate > 0);
  assert.ok(
    llama.multiplier.lo <= llama.multiplier.estimate && llama.multiplier.estimate <= llama.multiplier.hi,
  );
  for (const p of llama.points) assert.equal(p.losses.length, 2);
  const text = formatStudy(plan, r);
  assert.match(text, /llama/);
  assert.match(text, /90% bootstrap interval/);
  const written = await writeStudyReport(plan, r, join(root, "study.html"));
  assert.equal(written.svgs.length, 1);

  const again = await runStudy(planStudy(options), { quiet: true });
  assert.equal(again.completed.length, 0, "finished runs are not trained again");
  assert.equal(
    again.skipped.length,
    mainRuns(plan, tuning(plan))!.length,
    "every main run was found finished",
  );
});

test("compute counts Muon's Newton–Schulz: at one budget a Muon recipe trains fewer steps", () => {
  const muon = recipeFile("gpt2-muon", { base: "gpt2", levers: { muon: { optimizer: "muon" } } });
  const plan = planStudy({ studyId: "s-muon", recipes: ["gpt2", muon], budgets: [1e8, 2e8], train: shared });
  const [adamw, withMuon] = plan.variants;
  assert.equal(adamw!.optimizerFlopsPerStep, 0);
  assert.ok(withMuon!.optimizerFlopsPerStep > 0);
  const a = studyRun(plan, adamw!, 2e8, 1, 1);
  const m = studyRun(plan, withMuon!, 2e8, 1, 1);
  assert.ok(m.steps < a.steps, `${m.steps} vs ${a.steps}`);
  assert.equal(m.C, m.D * withMuon!.flopsPerToken + m.steps * withMuon!.optimizerFlopsPerStep);
});

test("afterscale study --dry-run --json prints the plan; a bad recipe is an error that names it", () => {
  const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
  const args = ["study", "--recipes", "gpt2,llama", "--budgets", "3e7,6e7", "--data", data, "--root", root];
  const sizes = ["--d-model", "48", "--layers", "2", "--heads", "4", "--context", "16", "--batch-size", "4"];
  const ok = spawnSync(process.execPath, [cli, ...args, ...sizes, "--dry-run", "--json"], {
    encoding: "utf8",
  });
  assert.equal(ok.status, 0, ok.stderr);
  const plan = JSON.parse(ok.stdout) as { recipes: string[]; budgets: number[]; lrFactors: number[] };
  assert.deepEqual(plan.recipes, ["gpt2", "llama"]);
  assert.deepEqual(plan.budgets, [3e7, 6e7]);
  assert.deepEqual(plan.lrFactors, [0.5, 1, 2]);
  const bad = spawnSync(
    process.execPath,
    [cli, ...args.slice(0, 1), "--recipes", "gpt2,nonesuch", "--data", data, "--dry-run"],
    {
      encoding: "utf8",
    },
  );
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /recipe "nonesuch": not a shipped recipe/);
});

test("a learning-rate sweep whose best factor is at an edge is extended that way, at most twice", () => {
  const plan = planStudy({
    studyId: "s-edge",
    recipes: ["gpt2", "llama"],
    budgets: [2e7, 4e7],
    train: shared,
  });
  const [gpt2, llama] = plan.variants;
  const run = (v: typeof gpt2, f: number) => studyRun(plan, v!, 2e7, plan.seeds[0]!, f).name;
  const done = new Map<string, { loss: number; record: never }>();
  const set = (v: typeof gpt2, f: number, loss: number) =>
    done.set(run(v, f), { loss, record: undefined as never });
  // gpt2: the largest factor is best; llama: the middle one is.
  for (const [f, l] of [
    [0.5, 3],
    [1, 2.5],
    [2, 2],
  ] as const)
    set(gpt2, f, l);
  for (const [f, l] of [
    [0.5, 3],
    [1, 2],
    [2, 2.5],
  ] as const)
    set(llama, f, l);
  let t = tuning(plan, done as never);
  assert.equal(t[0]!.best, null, "gpt2 needs ×4 first");
  assert.deepEqual(
    t[0]!.losses.map((l) => l.lrFactor),
    [0.5, 1, 2, 4],
  );
  assert.deepEqual([t[1]!.best, t[1]!.atEdge], [1, false]);
  set(gpt2, 4, 1.5);
  t = tuning(plan, done as never);
  assert.deepEqual(
    t[0]!.losses.map((l) => l.lrFactor),
    [0.5, 1, 2, 4, 8],
  );
  set(gpt2, 8, 1.4);
  t = tuning(plan, done as never);
  // Two extensions are the limit: ×8 is best and still flagged as at the edge.
  assert.deepEqual([t[0]!.best, t[0]!.atEdge], [8, true]);
});
