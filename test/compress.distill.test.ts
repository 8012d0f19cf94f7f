// Distillation runs end to end on a tiny dataset: a run stopped after a checkpoint and resumed ends with the
// uninterrupted run's weights (teacher logits on the fly with on-policy micro-batches; and the top-k cache
// across epochs), the cache holds one file per batch of the first epoch, the registry and `runs` show the
// run as a distill run, a teacher with another tokenizer is refused by name, and the CLI works with --json.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { distill } from "../src/compress/index.js";
import { prepare } from "../src/data/index.js";
import { exportModel } from "../src/io/index.js";
import { listRuns, loadModel, type TrainResult, train } from "../src/train/index.js";
import { tinyDataset, tinyModel } from "./helpers/train-data.js";

const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const { root, data } = tinyDataset();
after(() => rmSync(root, { recursive: true, force: true }));
let teacher: TrainResult;

before(async () => {
  teacher = await train(
    { ...tinyModel, data, root, runName: "teacher", steps: 12, evalInterval: 0 },
    { quiet: true },
  );
});

const sha = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

/** A student half the teacher's width, one layer. */
const student = { ...tinyModel, dModel: 16, layers: 1, heads: 2, kvHeads: 1 };

const variants: [string, Record<string, unknown>][] = [
  ["on the fly, forward KL, on-policy 0.6", { alpha: 0.3, temperature: 2, onPolicy: 0.6, onPolicyPrompt: 6 }],
  ["top-k cache, jsd", { divergence: "jsd", beta: 0.4, teacherCache: "topk", topK: 5, epochBatches: 2 }],
];

for (const [what, settings] of variants) {
  test(`distill (${what}): stopped and resumed, it ends with the uninterrupted run's weights`, async () => {
    const tag = what.replace(/[^a-z0-9]+/gi, "-");
    const config = (runName: string) => ({
      ...student,
      data,
      root,
      runName,
      steps: 6,
      evalInterval: 3,
      checkpointInterval: 2,
      objectiveConfig: { teacher: teacher.runDir, ...settings },
    });
    const onPolicySteps: number[] = [];
    const whole = await distill(config(`${tag}-whole`), {
      quiet: true,
      onStep: (m) => {
        if (m.metrics?.onPolicy) onPolicySteps.push(m.step);
      },
    });
    assert.equal(whole.step, 6);
    assert.ok(whole.valLoss !== null && Number.isFinite(whole.valLoss));
    if (settings.onPolicy) {
      assert.ok(onPolicySteps.length > 0 && onPolicySteps.length < 6, `on-policy steps ${onPolicySteps}`);
    }

    const controller = new AbortController();
    const part = await distill(config(`${tag}-part`), {
      quiet: true,
      signal: controller.signal,
      onStep: (m) => {
        if (m.step === 3) controller.abort();
      },
    });
    assert.equal(part.interrupted, true);
    const listed = listRuns(root).find((r) => r.runDir === part.runDir);
    assert.equal(listed?.resumeCommand, `npx afterscale distill --resume ${part.runDir}`);
    const resumed = await distill({}, { quiet: true, resume: part.runDir });
    assert.equal(resumed.resumedFrom, 3);
    assert.equal(
      sha(join(resumed.checkpoint, "model.safetensors")),
      sha(join(whole.checkpoint, "model.safetensors")),
    );
    assert.equal(resumed.loss, whole.loss);
    assert.equal(resumed.valLoss, whole.valLoss);
    if (settings.teacherCache === "topk") {
      // Two batches per epoch: written in the first, read back in the two after.
      const files = readdirSync(join(whole.runDir, "teacher-topk")).sort();
      assert.deepEqual(files, ["batch-0.bin", "batch-1.bin", "meta.json"]);
      const rows = student.batchSize * student.context;
      assert.equal(readFileSync(join(whole.runDir, "teacher-topk", "batch-0.bin")).length, 12 + rows * 5 * 8);
    }
    await assert.rejects(
      train({}, { quiet: true, resume: part.runDir }),
      /distill run; resume it with `afterscale distill`/,
    );
  });
}

test("a corrupt top-k cache file is named, not silently used", async () => {
  const config = {
    ...student,
    data,
    root,
    runName: "corrupt-cache",
    steps: 2,
    evalInterval: 0,
    objectiveConfig: { teacher: teacher.runDir, teacherCache: "topk", topK: 4, epochBatches: 1 },
  };
  const r = await distill(config, { quiet: true });
  writeFileSync(join(r.runDir, "teacher-topk", "batch-0.bin"), "garbage");
  await assert.rejects(
    distill({ steps: 3 }, { quiet: true, resume: r.runDir }),
    /batch-0\.bin: not a top-k cache file for 64 rows of k 4 \(7 bytes/,
  );
});

test("a teacher with another tokenizer is refused with the reason", async () => {
  const other = join(root, "other-src");
  mkdirSync(other, { recursive: true });
  writeFileSync(join(other, "t.txt"), "completely different words ".repeat(400));
  prepare({
    inputs: [join(other, "t.txt")],
    outDir: join(root, "other-ds"),
    valFraction: 0.1,
    vocabSize: 300,
  });
  await assert.rejects(
    distill(
      {
        ...student,
        data: join(root, "other-ds"),
        root,
        runName: "mismatch",
        steps: 1,
        objectiveConfig: { teacher: teacher.runDir },
      },
      { quiet: true },
    ),
    /distill: the teacher .* and the data .* use different tokenizers .*teacher and student must share one/,
  );
  assert.ok(!existsSync(join(root, "mismatch", "ckpt-1")));
});

test("afterscale distill --json, then runs and eval --kl-base (identical model: KL 0, same top 100%)", () => {
  const studentFile = join(root, "student.json");
  writeFileSync(studentFile, JSON.stringify({ model: "nano", dModel: 16, layers: 1, heads: 2, kvHeads: 1 }));
  const run = spawnSync(
    process.execPath,
    [
      cli,
      "distill",
      "--teacher",
      teacher.runDir,
      "--student",
      studentFile,
      "--data",
      data,
      "--root",
      root,
      "--run-name",
      "cli",
      "--steps",
      "2",
      "--context",
      "16",
      "--batch-size",
      "4",
      "--eval-batches",
      "1",
      "--divergence",
      "reverse-kl",
      "--alpha",
      "0",
      "--json",
    ],
    { encoding: "utf8" },
  );
  assert.equal(run.status, 0, run.stderr);
  const result = JSON.parse(run.stdout) as TrainResult;
  assert.equal(result.config.objective, "distill");
  assert.equal(result.modelConfig.dModel, 16);
  assert.deepEqual(result.config.objectiveConfig, {
    divergence: "reverse-kl",
    alpha: 0,
    teacher: teacher.runDir,
  });

  const runs = spawnSync(process.execPath, [cli, "runs", "--root", root, "--json"], { encoding: "utf8" });
  assert.equal(runs.status, 0, runs.stderr);
  const row = (
    JSON.parse(runs.stdout) as { name: string; status: string; config: { objective: string } }[]
  ).find((r) => r.name === "cli");
  assert.equal(row?.status, "finished");

  const same = spawnSync(
    process.execPath,
    [cli, "eval", "--model", teacher.runDir, "--kl-base", teacher.runDir, "--json"],
    {
      encoding: "utf8",
    },
  );
  assert.equal(same.status, 0, same.stderr);
  const k = JSON.parse(same.stdout) as {
    kl: { value: number; max: number };
    sameTop: { value: number };
    perplexity: { ratio: { value: number } };
  };
  assert.equal(k.kl.value, 0);
  assert.equal(k.kl.max, 0);
  assert.equal(k.sameTop.value, 1);
  assert.equal(k.perplexity.ratio.value, 1);

  // A GGUF copy has no training config: the base's dataset is the default.
  const t = loadModel(teacher.runDir, { warn: () => {} });
  const gguf = join(root, "teacher-q8_0.gguf");
  exportModel(t.model, t.tokenizer, { format: "gguf", dtype: "q8_0", out: gguf });
  const quant = spawnSync(
    process.execPath,
    [cli, "eval", "--model", gguf, "--kl-base", teacher.runDir, "--json"],
    {
      encoding: "utf8",
    },
  );
  assert.equal(quant.status, 0, quant.stderr);
  const q = JSON.parse(quant.stdout) as { kl: { value: number }; sameTop: { value: number } };
  assert.ok(q.kl.value > 0 && q.kl.value < 0.01, `Q8_0's KL ${q.kl.value}`);
  assert.ok(q.sameTop.value > 0.9);
  const noData = spawnSync(process.execPath, [cli, "eval", "--model", gguf, "--kl-base", gguf], {
    encoding: "utf8",
  });
  assert.match(noData.stderr, /--data is required .*the base has none either/);

  const text = spawnSync(
    process.execPath,
    [cli, "eval", "--model", result.runDir, "--kl-base", teacher.runDir],
    {
      encoding: "utf8",
    },
  );
  assert.equal(text.status, 0, text.stderr);
  for (const line of ["Mean PPL(Q)/PPL(base)", "Mean    KLD:", "99.9%   KLD:", "RMS Δp    :", "Same top p:"])
    assert.ok(text.stdout.includes(line), `${line} in\n${text.stdout}`);

  const bad = spawnSync(process.execPath, [cli, "distill", "--student", "micro", "--root", root], {
    encoding: "utf8",
  });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--teacher is required/);
});
