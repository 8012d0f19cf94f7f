import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  formatRunsJson,
  formatRunsTable,
  getRun,
  latestGoodCheckpoint,
  listRuns,
  loadModelFrom,
  readCheckpoint,
  train,
} from "../src/train/index.js";
import { tinyDataset, tinyModel } from "./helpers/train-data.js";

const { root, data } = tinyDataset();
after(() => rmSync(root, { recursive: true, force: true }));

const quiet = { quiet: true, handleSignals: false, log: () => {} };

test("a run writes metrics, keeps the last K checkpoints, records itself, and loads back", async () => {
  const evals: [number, boolean][] = [];
  const messages: string[] = [];
  const r = await train(
    {
      ...tinyModel,
      data,
      root,
      runName: "keep",
      steps: 12,
      evalInterval: 4,
      checkpointInterval: 3,
      keepCheckpoints: 2,
    },
    {
      quiet: false,
      handleSignals: false,
      log: (m) => messages.push(m),
      onEval: (e) => evals.push([e.step, e.estimate]),
    },
  );
  assert.equal(r.step, 12);
  assert.equal(r.interrupted, false);
  assert.deepEqual(evals, [
    [4, true],
    [8, true],
    [12, false],
  ]);
  assert.equal(r.valEstimate, false, "the final figure is the whole split");
  // The estimates say so and on how many tokens (evalBatches 2 × batchSize 4 × context 16).
  assert.ok(messages.some((m) => /^step 4: val loss estimate \d+\.\d{4} \(128 tokens\)/.test(m)));
  assert.ok(
    messages.some((m) => /^step 12: val loss \d+\.\d{4} \(whole validation split, [\d,]+ tokens\)/.test(m)),
  );
  const dir = join(root, "keep");
  assert.deepEqual(
    readdirSync(dir)
      .filter((f) => f.startsWith("ckpt-"))
      .sort(),
    ["ckpt-12", "ckpt-9"],
    "only the newest two checkpoints remain",
  );
  assert.ok(existsSync(join(dir, "tokenizer.json")) && existsSync(join(dir, "config.json")));
  const lines = readFileSync(join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map((l) => l.step),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
  );
  for (const l of lines) {
    for (const k of ["loss", "lr", "gradNorm", "tokensPerSecond", "elapsed"])
      assert.equal(typeof l[k], "number", k);
  }
  assert.equal(typeof lines[3].valLossEstimate, "number");
  assert.equal(lines[3].valEstimateTokens, 128);
  assert.equal(lines[3].valLoss, undefined, "an estimate is not labelled as the validation loss");
  assert.equal(lines[2].valLossEstimate, undefined);
  assert.equal(lines[11].valLoss, r.valLoss, "the last line holds the whole-split loss");
  assert.equal(lines[11].valTokens, r.valTokens);
  assert.equal(lines[11].valLossEstimate, undefined);
  assert.ok(lines[11].loss < lines[0].loss, "the loss went down");

  const loaded = loadModelFrom(dir);
  assert.equal(loaded.step, 12);
  assert.equal(loaded.checkpointDir, join(dir, "ckpt-12"));
  assert.equal(loaded.model.config.dModel, 32);
  assert.equal(loaded.tokenizer.vocabSize, loaded.model.config.vocab);
  assert.equal(loadModelFrom(join(dir, "ckpt-9")).step, 9);

  const row = getRun(root, "keep")!;
  assert.equal(row.status, "finished");
  assert.equal(row.runDir, dir);
  assert.equal(row.config.steps, 12);
  assert.equal(row.metrics!.step, 12);
  assert.equal(row.metrics!.valLoss, r.valLoss);
  assert.equal(row.metrics!.valEstimate, false);
  assert.equal(row.machine.node, process.version);
  assert.ok(row.machine.cores >= 1 && ["native", "reference"].includes(row.machine.backend));
  assert.equal(getRun(root, row.id)!.name, "keep");
  assert.equal(getRun(root, "nope"), null);
  assert.deepEqual(listRuns(join(root, "no-such-root")), []);
  assert.equal(existsSync(join(root, "no-such-root")), false, "listing does not create a registry");
  const table = formatRunsTable(listRuns(root));
  assert.match(table, /^id\s+name\s+status/);
  assert.match(table, /keep\s+finished\s+nano\/llama\s+12\/12/);
  assert.equal(JSON.parse(formatRunsJson(listRuns(root)))[0].name, "keep");
});

test("a corrupt or truncated checkpoint is detected and the previous good one is used", async () => {
  await train(
    {
      ...tinyModel,
      data,
      root,
      runName: "corrupt",
      steps: 6,
      evalInterval: 0,
      checkpointInterval: 2,
      keepCheckpoints: 3,
    },
    quiet,
  );
  const dir = join(root, "corrupt");
  // Flip one byte in the newest checkpoint's weights.
  const weights = join(dir, "ckpt-6", "model.safetensors");
  const bytes = readFileSync(weights);
  bytes[bytes.length - 5] ^= 0x40;
  writeFileSync(weights, bytes);
  assert.throws(
    () => readCheckpoint(join(dir, "ckpt-6")),
    /ckpt-6 is unusable: model\.safetensors checksum mismatch/,
  );
  // Truncate the optimizer state of the one before.
  const opt = join(dir, "ckpt-4", "optimizer.safetensors");
  truncateSync(opt, 100);
  assert.throws(
    () => readCheckpoint(join(dir, "ckpt-4")),
    /optimizer\.safetensors has 100 bytes, expected \d+ \(truncated\?\)/,
  );
  const warnings: string[] = [];
  const good = latestGoodCheckpoint(dir, (m) => warnings.push(m));
  assert.equal(good!.state.step, 2);
  assert.equal(warnings.length, 2);
  assert.match(warnings[0]!, /ckpt-6 is unusable.*falling back to ckpt-4/);
  assert.match(warnings[1]!, /ckpt-4 is unusable.*falling back to ckpt-2/);
  // Inference needs only the weights: ckpt-4's broken optimizer state does not stop sampling from it.
  assert.equal(loadModelFrom(dir, () => {}).step, 4);
  // A tampered state.json is caught by its own checksum.
  for (const step of [2, 4]) {
    const state = join(dir, `ckpt-${step}`, "state.json");
    writeFileSync(state, readFileSync(state, "utf8").replace(`"step": ${step}`, `"step": ${step + 1}`));
  }
  assert.throws(() => readCheckpoint(join(dir, "ckpt-2")), /state\.json checksum mismatch/);
  assert.throws(() => loadModelFrom(dir, () => {}), /every checkpoint is corrupt/);
  assert.throws(() => loadModelFrom(join(root, "missing")), /not a run folder or checkpoint folder/);
});

test("resume continues from the fallback checkpoint, and resuming may not change the model", async () => {
  const warnings: string[] = [];
  // Every checkpoint of the corrupt run is bad now: resuming restarts it from step 0 with its saved config.json.
  const r = await train(
    { steps: 8 },
    { ...quiet, resume: join(root, "corrupt"), log: (m) => warnings.push(m) },
  );
  assert.equal(r.resumedFrom, 0);
  assert.equal(r.step, 8);
  assert.ok(warnings.some((w) => /ckpt-6 is unusable/.test(w)));
  await assert.rejects(
    train({ layers: 3 }, { ...quiet, resume: join(root, "corrupt") }),
    /cannot change layers \(run has .*, given 3\) when resuming/,
  );
  await assert.rejects(
    train({ ...tinyModel, data, root, runName: "keep" }, quiet),
    /already exists; resume it/,
  );
  const again = await train({ steps: 14 }, { ...quiet, resume: join(root, "keep") });
  assert.equal(again.resumedFrom, 12);
  assert.equal(again.step, 14);
  assert.equal(getRun(root, "keep")!.status, "finished");
});

test("an aborted run checkpoints, stops and is recorded as interrupted", async () => {
  const ac = new AbortController();
  const r = await train(
    { ...tinyModel, data, root, runName: "abort", steps: 50, checkpointInterval: 0, evalInterval: 0 },
    { ...quiet, signal: ac.signal, onStep: (m) => m.step === 3 && ac.abort() },
  );
  assert.equal(r.interrupted, true);
  assert.equal(r.step, 3);
  assert.equal(readCheckpoint(join(root, "abort", "ckpt-3")).state.step, 3);
  assert.equal(getRun(root, "abort")!.status, "interrupted");
});
