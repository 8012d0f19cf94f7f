// sft, dpo and grpo through the one training loop: the SFT loss covers only the trained tokens, and each
// objective resumes bit-exactly (stopped after a checkpoint, resumed, same weights as an uninterrupted run).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { CHAT_TOKENS, encodeChat } from "../src/data/index.js";
import {
  directPreferenceOptimisation,
  groupRelativePolicyOptimisation,
  padBatch,
  REFERENCE_FILE,
  supervisedFineTuning,
} from "../src/feedback/index.js";
import { createModel, forward, parseModelConfig } from "../src/nn/index.js";
import { crossEntropy } from "../src/tensor/index.js";
import { listRuns, loadModel, type ObjectiveSetup, runTraining, train } from "../src/train/index.js";
import { tinyDataset, tinyModel } from "./helpers/train-data.js";

const { root, data } = tinyDataset();
after(() => rmSync(root, { recursive: true, force: true }));

const base = await train(
  { ...tinyModel, context: 64, data, root, runName: "base", steps: 4, evalInterval: 0 },
  { quiet: true },
);

test("padBatch trains only masked tokens: targets are -1 on prompt and padding", () => {
  const seqs = [
    { ids: [5, 6, 7, 8], mask: [0, 0, 1, 1] },
    { ids: [9, 10], mask: [0, 1] },
  ];
  const b = padBatch(seqs, 16, 0);
  assert.equal(b.time, 3);
  assert.deepEqual(Array.from(b.inputs), [5, 6, 7, 9, 0, 0]);
  assert.deepEqual(Array.from(b.targets), [-1, 7, 8, 10, -1, -1]);
  assert.equal(b.trained, 3);
  const cut = padBatch([{ ids: [1, 2, 3, 4, 5], mask: [1, 1, 1, 1, 1] }], 2, 0);
  assert.equal(cut.truncated, 1);
  assert.deepEqual(Array.from(cut.targets), [2, 3]);
});

test("the SFT loss of a batch is the cross-entropy of its assistant tokens alone", async () => {
  const loaded = loadModel(base.runDir, { warn: () => {} });
  const tokenizer = loaded.tokenizer.withAddedTokens(CHAT_TOKENS);
  const chat = encodeChat(tokenizer, [
    { role: "user", content: "1+2=" },
    { role: "assistant", content: "3" },
  ]);
  const trained = chat.ids.filter((_, i) => chat.assistantMask[i] === 1);
  assert.equal(tokenizer.decode(trained), "3<|im_end|>");
  // By hand: logits of the whole sequence, cross-entropy at the positions that predict trained tokens.
  const model = createModel(parseModelConfig({ ...loaded.model.config, vocab: tokenizer.vocabSize }), 7);
  const n = chat.ids.length - 1;
  const logits = forward(model, Int32Array.from(chat.ids.slice(0, n)), 1, n);
  const targets = Int32Array.from({ length: n }, (_, t) =>
    chat.assistantMask[t + 1] ? chat.ids[t + 1]! : -1,
  );
  const byHand = crossEntropy(logits, targets).item();
  const b = padBatch([{ ids: chat.ids, mask: chat.assistantMask }], 64, tokenizer.eotId);
  const viaBatch = crossEntropy(forward(model, b.inputs, b.rows, b.time), b.targets).item();
  assert.ok(Math.abs(byHand - viaBatch) < 1e-6, `${byHand} vs ${viaBatch}`);
  assert.equal(b.trained, 2);
});

const sha = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

const objectives: [string, ObjectiveSetup, Record<string, unknown>][] = [
  ["sft", supervisedFineTuning, { taskCount: 40, taskEvalCount: 8, taskDifficulty: 1 }],
  ["dpo", directPreferenceOptimisation, { taskCount: 40, taskEvalCount: 8, taskDifficulty: 1 }],
  [
    "grpo",
    groupRelativePolicyOptimisation,
    { taskCount: 40, taskEvalCount: 8, taskDifficulty: 1, groupSize: 3, maxNewTokens: 4 },
  ],
];

for (const [name, setup, objectiveConfig] of objectives) {
  test(`${name}: a run stopped after a checkpoint and resumed ends with the uninterrupted run's weights`, async () => {
    const config = (runName: string) => ({
      init: base.runDir,
      data: "task:addition",
      objectiveConfig,
      root,
      runName,
      steps: 6,
      batchSize: 3,
      lr: 1e-3,
      warmupSteps: 2,
      evalInterval: 3,
      evalBatches: 1,
      checkpointInterval: 2,
    });
    const whole = await runTraining(name, setup, config(`${name}-whole`), { quiet: true });
    assert.equal(whole.step, 6);
    assert.ok(whole.valMetrics && "accuracy" in whole.valMetrics, "the task's accuracy is reported");

    const controller = new AbortController();
    const part = await runTraining(name, setup, config(`${name}-part`), {
      quiet: true,
      signal: controller.signal,
      onStep: (m) => {
        if (m.step === 3) controller.abort();
      },
    });
    assert.equal(part.interrupted, true);
    const listed = listRuns(root).find((r) => r.runDir === part.runDir);
    assert.equal(listed?.resumeCommand, `npx afterscale ${name} --resume ${part.runDir}`);
    const resumed = await runTraining(name, setup, {}, { quiet: true, resume: part.runDir });
    assert.equal(resumed.resumedFrom, 3);
    assert.equal(resumed.step, 6);
    assert.equal(
      sha(join(resumed.checkpoint, "model.safetensors")),
      sha(join(whole.checkpoint, "model.safetensors")),
    );
    assert.equal(resumed.loss, whole.loss);
    if (name === "dpo") {
      assert.equal(sha(join(part.runDir, REFERENCE_FILE)), sha(join(whole.runDir, REFERENCE_FILE)));
    }
    // The run is resumed only by the command that started it.
    await assert.rejects(
      train({}, { quiet: true, resume: part.runDir }),
      new RegExp(`${name} run; resume it with \`afterscale ${name}\``),
    );
  });
}

test("grpo takes prompts from a JSONL file and rewards from a user's module; a bad reward is named", async () => {
  const prompts = join(root, "prompts.jsonl");
  writeFileSync(
    prompts,
    `${Array.from({ length: 12 }, (_, i) => JSON.stringify({ prompt: [{ role: "user", content: `${i}+1=` }], answer: String(i + 1) })).join("\n")}\n`,
  );
  const good = join(root, "reward.mjs");
  writeFileSync(
    good,
    "export default (prompt, completion, record) => (completion.trim() === record.answer ? 1 : completion.length / 100);\n",
  );
  const config = (runName: string, reward: string) => ({
    init: base.runDir,
    data: prompts,
    objectiveConfig: { reward, groupSize: 3, maxNewTokens: 4, valFraction: 0.25 },
    root,
    runName,
    steps: 2,
    batchSize: 2,
    evalInterval: 0,
  });
  const r = await runTraining("grpo", groupRelativePolicyOptimisation, config("grpo-file", good), {
    quiet: true,
  });
  assert.equal(r.step, 2);
  assert.ok(r.valMetrics && typeof r.valMetrics.reward === "number", "held-out mean reward");
  const lines = readFileSync(join(r.runDir, "metrics.jsonl"), "utf8").trim().split("\n");
  const first = JSON.parse(lines[0]!) as Record<string, number>;
  for (const k of ["reward", "kl", "completionLength", "clipFraction"])
    assert.equal(typeof first[k], "number", k);

  const bad = join(root, "bad-reward.mjs");
  writeFileSync(bad, "export default async () => 1;\n");
  await assert.rejects(
    runTraining("grpo", groupRelativePolicyOptimisation, config("grpo-bad", bad), { quiet: true }),
    /bad-reward\.mjs returned a Promise/,
  );
  const none = join(root, "no-reward.mjs");
  writeFileSync(none, "export const x = 1;\n");
  await assert.rejects(
    runTraining("grpo", groupRelativePolicyOptimisation, config("grpo-none", none), { quiet: true }),
    /export a function/,
  );
  await assert.rejects(
    runTraining("grpo", groupRelativePolicyOptimisation, config("grpo-task-less", ""), { quiet: true }),
    /^Error: grpo: .*reward/,
  );
});
