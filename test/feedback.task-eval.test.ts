// Task evaluation and its commands on a tiny random model whose tokenizer has the chat tokens: batched
// greedy decoding gives the completions one-by-one generation gives, the result's fields agree with each
// other, and `eval --task`, `tasks list` and `tasks export` print what they promise. An untrained model
// scores about 0; scoring itself is tested with hand-written completions in feedback.tasks.test.ts.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { CHAT_TOKENS, encodeChat, IM_END } from "../src/data/chat.js";
import { evaluateTask, getTask, TASKS, taskExamples, wilsonInterval } from "../src/feedback/index.js";
import { generate } from "../src/infer/index.js";
import { exportModel } from "../src/io/index.js";
import { ioModel, ioTokenizer } from "./helpers/io-models.js";

const tokenizer = ioTokenizer().withAddedTokens(CHAT_TOKENS);
const model = ioModel("llama", tokenizer.vocabSize, false);
const dir = mkdtempSync(join(tmpdir(), "afterscale-task-eval-"));
const hf = join(dir, "tiny-chat");
exportModel(model, tokenizer, { format: "hf", out: hf });
after(() => rmSync(dir, { recursive: true, force: true }));

const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
function afterscale(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("batched greedy decoding gives the completions of one-by-one generation", () => {
  for (const task of ["addition", "sort-words"]) {
    const batched = evaluateTask(model, tokenizer, task, { count: 9, batchSize: 4, maxTokens: 10 });
    const alone = evaluateTask(model, tokenizer, task, { count: 9, batchSize: 1, maxTokens: 10 });
    assert.deepEqual(batched, alone);
    const examples = taskExamples(task, { split: "test", count: 9 });
    batched.examples.forEach((r, i) => {
      const prompt = Int32Array.from(
        encodeChat(tokenizer, examples[i]!.messages, { addGenerationPrompt: true }).ids,
      );
      const g = generate(model, tokenizer, prompt, { maxTokens: 10, temperature: 0, stop: [IM_END] });
      assert.equal(r.completion, g.text, `${task} example ${i}`);
      assert.equal(r.prompt, examples[i]!.messages[0]!.content);
      assert.equal(r.answer, examples[i]!.answer);
    });
    // The random model writes something, so the comparison is not of empty strings.
    assert.ok(batched.examples.some((r) => r.completion.length > 0));
  }
});

test("the result's counts, accuracy and interval agree with its examples", () => {
  const r = evaluateTask(model, tokenizer, getTask("count-letters"), { count: 12, seed: 3, difficulty: 4 });
  assert.equal(r.task, "count-letters");
  assert.equal(r.split, "test");
  assert.equal(r.difficulty, 4);
  assert.equal(r.seed, 3);
  assert.equal(r.count, 12);
  assert.equal(r.examples.length, 12);
  for (const e of r.examples) assert.equal(e.correct, e.completion.trim() === e.answer);
  assert.equal(r.correct, r.examples.filter((e) => e.correct).length);
  assert.equal(r.accuracy, r.correct / 12);
  assert.deepEqual(r.interval, wilsonInterval(r.correct, 12));
  // Default budget: the longest answer's tokens + 8.
  const longest = Math.max(...r.examples.map((e) => tokenizer.encode(e.answer).length));
  assert.equal(r.maxTokens, longest + 8);
});

test("a tokenizer without chat tokens, or a prompt longer than the context, is a clear error", () => {
  const plain = ioTokenizer();
  assert.throws(
    () => evaluateTask(ioModel("llama", plain.vocabSize, false), plain, "addition", { count: 1 }),
    /no chat tokens.*afterscale sft/,
  );
  assert.throws(
    () => evaluateTask(model, tokenizer, "sort-words", { count: 1, difficulty: 10 }),
    /sort-words at difficulty 10: the prompt of example 0 is \d+ tokens, longer than the model's context of 64/,
  );
  assert.throws(() => evaluateTask(model, tokenizer, "addition", { count: 0 }), /count must be/);
});

test("afterscale eval --task prints accuracy with its interval, and JSON with every field", () => {
  const args = [
    "eval",
    "--model",
    hf,
    "--task",
    "addition",
    "--count",
    "6",
    "--difficulty",
    "2",
    "--seed",
    "5",
  ];
  const json = afterscale(...args, "--json");
  assert.equal(json.status, 0, json.stderr);
  const r = JSON.parse(json.stdout);
  assert.equal(r.model, "tiny-chat");
  for (const k of [
    "task",
    "split",
    "difficulty",
    "seed",
    "accuracy",
    "correct",
    "count",
    "interval",
    "examples",
  ])
    assert.ok(k in r, `no ${k}`);
  assert.equal(r.task, "addition");
  assert.equal(r.split, "test");
  assert.equal(r.difficulty, 2);
  assert.equal(r.count, 6);
  assert.equal(r.interval.length, 2);
  assert.deepEqual(
    r.examples.map((e: { prompt: string }) => e.prompt),
    taskExamples("addition", { split: "test", count: 6, seed: 5, difficulty: 2 }).map(
      (e) => e.messages[0]!.content,
    ),
  );
  for (const e of r.examples)
    assert.deepEqual(Object.keys(e).sort(), ["answer", "completion", "correct", "prompt"]);
  const human = afterscale(...args);
  assert.equal(human.status, 0, human.stderr);
  assert.ok(human.stdout.includes(`(${r.correct}/6)`), "the human form tells the JSON's result");
  assert.match(
    human.stdout,
    /^tiny-chat on addition \(test split, difficulty 2, seed 5\): accuracy \d+\.\d% \(\d\/6\), 95% interval \[\d+\.\d%, \d+\.\d%\]\n/,
  );
  assert.equal(human.stdout.trim().split("\n").length, 6, "the accuracy line and five examples");
  const train = JSON.parse(afterscale(...args, "--split", "train", "--json").stdout);
  assert.equal(train.split, "train");
});

test("eval options of the other mode, and unknown tasks, are errors", () => {
  const noTask = afterscale("eval", "--model", hf, "--count", "5");
  assert.equal(noTask.status, 1);
  assert.match(noTask.stderr, /--count is only used with --task/);
  const withData = afterscale("eval", "--model", hf, "--task", "addition", "--data", dir);
  assert.equal(withData.status, 1);
  assert.match(withData.stderr, /--data is for validation loss, not with --task/);
  const unknown = afterscale("eval", "--model", hf, "--task", "poetry");
  assert.equal(unknown.status, 1);
  assert.match(unknown.stderr, /no task named "poetry"/);
  const badSplit = afterscale("eval", "--model", hf, "--task", "addition", "--split", "val");
  assert.notEqual(badSplit.status, 0);
  assert.match(badSplit.stderr, /expected one of train, test/);
});

test("afterscale tasks list names every task with its difficulty range", () => {
  const r = afterscale("tasks", "list", "--json");
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(
    JSON.parse(r.stdout),
    TASKS.map((t) => ({ name: t.name, description: t.description, difficulty: t.difficulty })),
  );
  const human = afterscale("tasks", "list").stdout;
  for (const t of TASKS) {
    assert.match(human, new RegExp(`^${t.name} `, "m"));
    assert.ok(
      human.includes(
        `${t.difficulty.min}–${t.difficulty.max} ${t.difficulty.unit} (default ${t.difficulty.default})`,
      ),
    );
  }
});

test("afterscale tasks export writes TRL-layout JSONL (sft and prefs) and keeps an existing file", () => {
  const sft = afterscale("tasks", "export", "sort-words", "--count", "5", "--difficulty", "3", "--seed", "2");
  assert.equal(sft.status, 0, sft.stderr);
  const expected = taskExamples("sort-words", { split: "train", count: 5, seed: 2, difficulty: 3 });
  const rows = sft.stdout
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    rows,
    expected.map((e) => ({ messages: [...e.messages, { role: "assistant", content: e.answer }] })),
  );

  const out = join(dir, "prefs.jsonl");
  const args = [
    "tasks",
    "export",
    "addition",
    "--split",
    "test",
    "--count",
    "20",
    "--format",
    "prefs",
    "--out",
    out,
  ];
  const r = afterscale(...args, "--json");
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), {
    out,
    count: 20,
    task: "addition",
    split: "test",
    difficulty: 3,
    seed: 0,
    format: "prefs",
  });
  const text = readFileSync(out, "utf8");
  const prefs = text
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l));
  const tests = taskExamples("addition", { split: "test", count: 20 });
  prefs.forEach((p, i) => {
    assert.deepEqual(Object.keys(p), ["prompt", "chosen", "rejected"]);
    assert.deepEqual(p.prompt, tests[i]!.messages);
    assert.deepEqual(p.chosen, [{ role: "assistant", content: tests[i]!.answer }]);
    assert.equal(p.rejected[0].role, "assistant");
    assert.notEqual(p.rejected[0].content, tests[i]!.answer);
  });
  // An existing file is kept unless --force; the same arguments write the same bytes.
  writeFileSync(out, "keep me\n");
  const kept = afterscale(...args);
  assert.equal(kept.status, 1);
  assert.match(kept.stderr, /exists; pass --force/);
  assert.equal(readFileSync(out, "utf8"), "keep me\n");
  assert.equal(afterscale(...args, "--force").status, 0);
  assert.equal(readFileSync(out, "utf8"), text);

  const bad = afterscale("tasks", "export", "addition", "--count", "2", "--difficulty", "99");
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /difficulty \(digits per operand\) must be an integer in \[1, 12\], got 99/);
});
