// IsoFLOP sweeps: the plan's arithmetic, running a tiny grid with the real trainer, stopping it mid-run,
// resuming without redoing finished runs, and reading the runs back as scaling points.
import assert from "node:assert/strict";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { Command } from "commander";
import { registerSweepCommands } from "../src/cli/sweep.js";
import { parameterCounts, trainingFlopsPerToken } from "../src/nn/index.js";
import { buildReport } from "../src/scaling/report.js";
import {
  computeParams,
  loadSource,
  loadSweepPlan,
  type PlannedRun,
  planDifference,
  planSweep,
  pointsFromSweep,
  runSweep,
  saveSweepPlan,
  shapeConfig,
  shapeLadder,
  sweepPlanPath,
  sweepStatus,
} from "../src/scaling/sweep.js";
import { listRuns, tokensPerStep } from "../src/train/index.js";
import { tinyDataset } from "./helpers/train-data.js";

const { root, data } = tinyDataset();
after(() => rmSync(root, { recursive: true, force: true }));

// A 2 budgets × 2 sizes grid of one- and two-layer models; each run is a few dozen millisecond steps.
const shared = { root, data, batchSize: 4, context: 16, lr: 1e-2, evalBatches: 2, logInterval: 1000 };
const budgets = [5e7, 1e8];
const plan = (sweepId: string, extra: Record<string, unknown> = {}, sizesPerBudget = 2) =>
  planSweep({ sweepId, budgets, sizesPerBudget, spread: 3, train: { ...shared, ...extra } });

test("the shape ladder: valid configs, sorted widths, aspect ratios in [16, 64]", () => {
  const ladder = shapeLadder();
  assert.ok(ladder.length > 100);
  for (const s of ladder) {
    const aspect = s.dModel / s.layers;
    assert.ok(aspect >= 16 && aspect <= 64, `aspect ${aspect}`);
    for (const family of ["gpt2", "llama"] as const) shapeConfig(s, { family, context: 16 }, 257); // throws if invalid
  }
});

test("N is the parameters in the matmuls: (FLOPs per token − attention) / 6", () => {
  const c = shapeConfig(
    { dModel: 32, layers: 2, heads: 2, kvHeads: 2 },
    { family: "llama", context: 16 },
    300,
  );
  const N = computeParams(c);
  const counts = parameterCounts(c);
  // llama is untied: N = every parameter but the input embedding and the norms' vectors.
  assert.ok(N < counts.total && N > counts.nonEmbedding, `${N} vs ${JSON.stringify(counts)}`);
  assert.equal(trainingFlopsPerToken(c), 6 * N + 6 * 2 * 16 * 32);
});

test("planSweep: every run spends its budget, sizes are distinct within a budget, configs are complete", () => {
  const p = plan("plan-check");
  assert.equal(p.runs.length, 4);
  assert.deepEqual(p.budgets, budgets);
  const perStep = 4 * 16;
  for (const r of p.runs) {
    assert.equal(r.D, r.steps * perStep);
    assert.equal(r.C, r.flopsPerToken * r.D);
    // Rounding to whole steps moves C by at most half a step's FLOPs.
    assert.ok(
      Math.abs(r.C - r.budget) <= 0.5 * r.flopsPerToken * perStep + 1,
      `${r.name}: C ${r.C} vs ${r.budget}`,
    );
    assert.equal(r.config.runName, r.name);
    assert.equal(r.config.steps, r.steps);
    assert.ok(r.name.startsWith("plan-check-C5e7-") || r.name.startsWith("plan-check-C1e8-"), r.name);
  }
  for (const C of budgets) {
    const Ns = p.runs.filter((r) => r.budget === C).map((r) => r.N);
    assert.equal(new Set(Ns).size, Ns.length);
    assert.ok(Ns[0]! < Ns[1]!, "sizes ascend within a budget");
  }
  assert.equal(existsSync(sweepPlanPath(root, "plan-check")), false, "planning writes nothing");
});

test("planSweep rejects bad input with a message naming it", () => {
  assert.throws(() => plan("bad", { dModel: 64 }), /dModel is chosen by the sweep/);
  assert.throws(() => plan("bad", { family: "gpt2" }), /family is chosen by the sweep/);
  assert.throws(() => planSweep({ sweepId: "x", budgets: [-1], train: shared }), /budgets must be positive/);
  assert.throws(() => planSweep({ sweepId: "x", budgets: [], train: shared }), /at least one compute budget/);
  assert.throws(() => planSweep({ sweepId: "../x", budgets, train: shared }), /sweep id/);
  assert.throws(() => plan("x", { lr: -1 }), /lr/);
});

test("planDifference notices a changed grid or changed trainer settings", () => {
  const a = plan("diff");
  assert.equal(planDifference(a, plan("diff")), null);
  assert.match(planDifference(a, plan("diff", { lr: 2e-2 })) ?? "", /trainer settings/);
  const b = planSweep({ sweepId: "diff", budgets: [5e7, 2e8], sizesPerBudget: 2, spread: 3, train: shared });
  assert.match(planDifference(a, b) ?? "", /runs/);
});

test("a sweep stopped mid-run resumes: finished runs are skipped, the stopped run continues from its checkpoint", async () => {
  const p = plan("grid", {}, 3);
  const second = p.runs[1]!;
  const controller = new AbortController();
  const first = await runSweep(p, {
    quiet: true,
    log: () => {},
    signal: controller.signal,
    // Stop the second run after its second evaluation (a checkpoint has been written by then).
    onEval: (run, m) => {
      if (run.name === second.name && m.step >= Math.ceil(second.steps / 2)) controller.abort();
    },
  });
  assert.deepEqual(first.completed, [p.runs[0]!.name]);
  assert.equal(first.interrupted, second.name);
  const status = sweepStatus(p);
  assert.equal(status.get(p.runs[0]!.name), "finished");
  assert.match(status.get(second.name) ?? "", /^interrupted, step \d+/);
  assert.equal(status.get(p.runs[2]!.name), undefined, "later runs never started");
  assert.throws(() => pointsFromSweep(root, "nope"), /no sweep "nope"/);
  assert.equal(pointsFromSweep(root, "grid").points.length, 1, "only finished runs are points");

  // Resume from the saved plan, as `afterscale sweep --resume grid` does.
  const saved = loadSweepPlan(root, "grid");
  const resumed: { run: PlannedRun; from: number }[] = [];
  const again = await runSweep(saved, {
    quiet: true,
    log: () => {},
    onRunFinished: (run, result) => resumed.push({ run, from: result.resumedFrom }),
  });
  assert.deepEqual(again.skipped, [p.runs[0]!.name]);
  assert.deepEqual(
    again.completed,
    p.runs.slice(1).map((r) => r.name),
  );
  assert.ok(resumed[0]!.from > 0, `the stopped run resumed from step ${resumed[0]!.from}`);
  assert.equal(resumed[1]!.from, 0);

  // Every run is recorded once, under the sweep id, with N, D, C, budget and the per-eval losses.
  const runs = listRuns(root, { sweepId: "grid" });
  assert.equal(runs.length, 6);
  for (const r of runs) {
    assert.equal(r.status, "finished");
    const planned = p.runs.find((x) => x.name === r.name)!;
    const sweep = r.metrics?.sweep as { N: number; D: number; C: number; budget: number };
    assert.deepEqual(
      [sweep.N, sweep.D, sweep.C, sweep.budget],
      [planned.N, planned.D, planned.C, planned.budget],
    );
    const evals = r.metrics?.evals as { step: number; valLoss: number }[];
    assert.ok(evals.length >= 2, `${r.name}: ${evals.length} evaluations recorded`);
    assert.equal(evals[evals.length - 1]!.step, planned.steps);
    assert.equal(evals[evals.length - 1]!.valLoss, r.metrics?.valLoss);
  }

  // A third pass trains nothing.
  const third = await runSweep(saved, { quiet: true, log: () => {} });
  assert.equal(third.completed.length, 0);
  assert.equal(third.skipped.length, 6);

  // The runs as fit input, directly and through loadSource (what fit / compare / report use).
  const { points, missing } = pointsFromSweep(root, "grid");
  assert.deepEqual(missing, []);
  assert.equal(points.length, 6);
  for (const [i, pt] of points.entries()) {
    assert.equal(pt.N, p.runs[i]!.N);
    assert.equal(pt.budget, p.runs[i]!.budget);
    assert.ok(Number.isFinite(pt.loss) && pt.loss > 0 && pt.loss < Math.log(257) + 1, `loss ${pt.loss}`);
  }
  const source = loadSource("grid", { root });
  assert.equal(source.kind, "sweep");
  assert.equal(source.points.length, 6);
  assert.equal(loadSource("grid", { root, excludeTopLoss: 1 }).points.length, 5);

  // A report straight from the sweep id.
  const { html } = buildReport({ sources: ["grid"], root, out: join(root, "r.html"), bootstrap: 0 }, "r-svg");
  assert.match(html, /sweep <code>grid<\/code>: 6 llama runs, 2 budgets × 3 sizes/);
  assert.throws(() => loadSource("no-such-thing", { root }), /not a built-in dataset .* or a sweep under/);
  assert.equal(tokensPerStep({ batchSize: 4, context: 16, gradAccum: 1 }), p.runs[0]!.D / p.runs[0]!.steps);
});

test("a sweep put on a run queue is not trained locally by `sweep --resume` without --queue", async () => {
  saveSweepPlan({ ...plan("queued"), queue: "redis://:***@10.0.0.5:6379" });
  const program = new Command().exitOverride();
  registerSweepCommands(program);
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    await assert.rejects(
      program.parseAsync(["sweep", "--resume", "queued", "--root", root], { from: "user" }),
      /sweep queued was put on the run queue redis:\/\/:\*\*\*@10\.0\.0\.5:6379: collect it with afterscale sweep --resume queued --root .* --queue redis/,
    );
  } finally {
    process.stdout.write = write;
  }
  assert.ok(!listRuns(root).some((r) => r.name.startsWith("queued")), "no run of it was trained here");
});

test("`afterscale sweep --dry-run` prints the plan and trains nothing", async () => {
  const program = new Command().exitOverride();
  registerSweepCommands(program);
  let out = "";
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => {
    out += chunk;
    return true;
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(
      [
        "sweep",
        "--budgets",
        "5e7,1e8",
        "--sizes-per-budget",
        "2",
        "--spread",
        "3",
        "--sweep-id",
        "dry",
        "--dry-run",
      ].concat([
        "--root",
        root,
        "--data",
        data,
        "--batch-size",
        "4",
        "--context",
        "16",
        "--eval-batches",
        "2",
      ]),
      { from: "user" },
    );
  } finally {
    process.stdout.write = write;
  }
  assert.match(out, /sweep dry: 4 runs, 2 budgets × 2 sizes/);
  assert.match(out, /estimated wall time: .* \(measured: /);
  assert.equal(out.split("\n").filter((l) => l.startsWith("dry-C")).length, 4);
  assert.equal(existsSync(sweepPlanPath(root, "dry")), false);
});
