// The built-in tasks: examples are a pure function of (seed, split, index, difficulty), the train and test
// splits never pose the same problem, every answer is right (checked here from the prompt alone), wrong
// answers are plausible and never score, and the Wilson interval gives published values.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  getTask,
  preferenceRecord,
  problemSplit,
  scoreExact,
  sftRecord,
  TASKS,
  type TaskExample,
  TEST_FRACTION,
  taskExamples,
  wilsonInterval,
  wrongAnswer,
} from "../src/feedback/index.js";
import { CAPITALS, ELEMENTS, WORDS } from "../src/feedback/task-data.js";
import { Rng } from "../src/tensor/index.js";

const prompt = (e: TaskExample) => e.messages[0]!.content;

test("the same seed gives the same examples; another seed, split or difficulty gives others", () => {
  for (const task of TASKS) {
    const a = taskExamples(task, { split: "train", count: 50, seed: 7 });
    assert.deepEqual(taskExamples(task.name, { split: "train", count: 50, seed: 7 }), a);
    // Any example can be regenerated alone, in any order.
    for (const i of [49, 0, 23]) assert.deepEqual(task.example(7, "train", i), a[i]);
    const prompts = new Set(a.map(prompt));
    const other = taskExamples(task, { split: "train", count: 50, seed: 8 }).map(prompt);
    assert.ok(other.filter((p) => prompts.has(p)).length < 25, `${task.name}: seed 8 repeats seed 7`);
    const harder = task.example(7, "train", 0, task.difficulty.default + 1);
    assert.equal(harder.difficulty, task.difficulty.default + 1);
    assert.ok(
      a.every((e) => e.task === task.name && e.split === "train" && e.difficulty === task.difficulty.default),
    );
    assert.ok(a.every((e) => e.messages.length === 1 && e.messages[0]!.role === "user"));
  }
});

test("train and test never share a problem, over thousands of examples per task and difficulty", () => {
  for (const task of TASKS) {
    for (const difficulty of [task.difficulty.min, task.difficulty.default]) {
      const train = taskExamples(task, { split: "train", count: 3000, seed: 1, difficulty });
      const test = taskExamples(task, { split: "test", count: 3000, seed: 2, difficulty });
      const trainProblems = new Set(train.map((e) => e.problem));
      const trainPrompts = new Set(train.map(prompt));
      for (const e of test) {
        assert.ok(!trainProblems.has(e.problem), `${task.name} ${difficulty}: ${e.problem} in both splits`);
        assert.ok(!trainPrompts.has(prompt(e)), `${task.name} ${difficulty}: "${prompt(e)}" in both splits`);
      }
      for (const e of train) assert.equal(problemSplit(task.name, e.problem), "train");
      for (const e of test) assert.equal(problemSplit(task.name, e.problem), "test");
    }
  }
  // Problems that differ only in order are one problem: a+b in test means b+a is not in train.
  const swapped = (p: string) => p.replace(/^(\d+)\+(\d+)=$/, "$2+$1=");
  const train = new Set(taskExamples("addition", { split: "train", count: 3000, difficulty: 2 }).map(prompt));
  for (const e of taskExamples("addition", { split: "test", count: 3000, difficulty: 2 }))
    assert.ok(!train.has(swapped(prompt(e))), `${prompt(e)} is in test and its swap in train`);
  const sortedTrain = new Set(
    taskExamples("sort-words", { split: "train", count: 3000, difficulty: 2 }).map((e) => e.answer),
  );
  for (const e of taskExamples("sort-words", { split: "test", count: 3000, difficulty: 2 }))
    assert.ok(!sortedTrain.has(e.answer), `the words of "${prompt(e)}" are in train in another order`);
});

test("about TEST_FRACTION of the problems are held out", () => {
  let test = 0;
  const n = 20000;
  for (let i = 0; i < n; i++) if (problemSplit("addition", `${i}+${i + 1}`) === "test") test++;
  assert.ok(Math.abs(test / n - TEST_FRACTION) < 0.015, `${test / n}`);
});

/** The answer worked out from the prompt alone. */
function solve(task: string, p: string): string {
  const [, body = ""] = p.split(": ");
  switch (task) {
    case "addition": {
      const [, a, b] = /^(\d+)\+(\d+)=$/.exec(p)!;
      return String(BigInt(a!) + BigInt(b!));
    }
    case "subtraction": {
      const [, a, b] = /^(\d+)-(\d+)=$/.exec(p)!;
      return String(BigInt(a!) - BigInt(b!));
    }
    case "count-letters": {
      const [, letter, word] = /^How many ([a-z]) in ([a-z]+)\?$/.exec(p)!;
      return String(word!.split(letter!).length - 1);
    }
    case "reverse-word":
      return body.split("").reverse().join("");
    case "sort-words":
      return body.split(" ").sort().join(" ");
    case "facts": {
      const table: Record<string, Map<string, string>> = {
        "Capital of": new Map(CAPITALS.map(([c, k]) => [c, k])),
        "Country with capital": new Map(CAPITALS.map(([c, k]) => [k, c])),
        "Symbol of": new Map(ELEMENTS.map(([, s, n]) => [n, s])),
        "Element with symbol": new Map(ELEMENTS.map(([, s, n]) => [s, n])),
        "Atomic number of": new Map(ELEMENTS.map(([z, , n]) => [n, String(z)])),
      };
      const [question, subjects] = p.split(": ");
      return subjects!
        .split(", ")
        .map((s) => table[question!]!.get(s)!)
        .join(", ");
    }
  }
  throw new Error(task);
}

test("every answer is right, at every difficulty in the range", () => {
  for (const task of TASKS) {
    for (let d = task.difficulty.min; d <= task.difficulty.max; d++) {
      for (const e of taskExamples(task, {
        split: d % 2 ? "train" : "test",
        count: 40,
        seed: d,
        difficulty: d,
      })) {
        assert.equal(e.answer, solve(task.name, prompt(e)), `${task.name} ${d}: ${prompt(e)}`);
        assert.ok(task.score(e.answer, e.answer));
      }
    }
  }
  // The difficulty is what the table says it is.
  const add = taskExamples("addition", { count: 20, difficulty: 5 });
  assert.ok(add.every((e) => /^\d{5}\+\d{5}=$/.test(prompt(e))));
  const count = taskExamples("count-letters", { count: 20, difficulty: 11 });
  assert.ok(count.every((e) => /^How many [a-z] in [a-z]{11}\?$/.test(prompt(e))));
  const sort = taskExamples("sort-words", { count: 20, difficulty: 6 });
  assert.ok(sort.every((e) => prompt(e).split(" ").length === 7 && new Set(e.answer.split(" ")).size === 6));
  const facts = taskExamples("facts", { count: 20, difficulty: 3 });
  assert.ok(facts.every((e) => e.answer.split(", ").length === 3));
  // Counts are not mostly zero.
  assert.ok(taskExamples("count-letters", { count: 200 }).filter((e) => e.answer !== "0").length > 120);
});

test("the built-in data is unambiguous", () => {
  assert.equal(new Set(WORDS).size, WORDS.length, "a word is listed twice");
  assert.ok(WORDS.every((w) => /^[a-z]+$/.test(w)));
  const names = [
    ...CAPITALS.flat(),
    ...ELEMENTS.map(([, s]) => s),
    ...ELEMENTS.map(([, , n]) => n),
    ...ELEMENTS.map(([z]) => String(z)),
  ];
  assert.equal(new Set(names).size, names.length, "a name has two roles or is listed twice");
  assert.ok(names.every((n) => !n.includes(",")));
});

test("scoring is exact match up to surrounding whitespace and a trailing <|im_end|>", () => {
  assert.equal(scoreExact("46", "46"), true);
  assert.equal(scoreExact(" 46\n", "46"), true);
  assert.equal(scoreExact("46<|im_end|>", "46"), true);
  assert.equal(scoreExact("apple fig", "apple fig"), true);
  assert.equal(scoreExact("046", "46"), false);
  assert.equal(scoreExact("4 6", "46"), false);
  assert.equal(scoreExact("46.", "46"), false);
  assert.equal(scoreExact("46 and more", "46"), false);
  assert.equal(scoreExact("", "46"), false);
  assert.equal(scoreExact("Paris", "paris"), false);
  const task = getTask("addition");
  const e = task.example(0, "test", 0);
  assert.equal(task.score(`${e.answer}\n`, e.answer), true);
  assert.equal(task.score(`${e.answer}0`, e.answer), false);
});

test("wrong answers differ from the answer, never score, and stay plausible", () => {
  const rng = new Rng(3);
  const capitals = new Set(CAPITALS.map(([, k]) => k));
  for (const task of TASKS) {
    for (const e of taskExamples(task, { count: 300, seed: 4, difficulty: task.difficulty.min })) {
      const wrong = wrongAnswer(e, rng);
      assert.notEqual(wrong, e.answer);
      assert.equal(task.score(wrong, e.answer), false, `${task.name}: ${wrong} scores for ${e.answer}`);
      const sorted = (s: string, sep: string) => s.split(sep).sort().join(sep);
      switch (task.name) {
        case "addition":
        case "subtraction":
        case "count-letters": {
          assert.match(wrong, /^(0|[1-9]\d*)$/);
          const diff = [...wrong.padStart(20, "0")].filter((c, i) => c !== e.answer.padStart(20, "0")[i]);
          assert.ok(
            Math.abs(Number(wrong) - Number(e.answer)) === 1 || diff.length === 1,
            `${e.answer} → ${wrong}`,
          );
          break;
        }
        case "reverse-word":
          assert.equal(wrong.length, e.answer.length);
          if (e.answer.length > 1 && new Set(e.answer).size > 1)
            assert.equal(sorted(wrong, ""), sorted(e.answer, ""));
          break;
        case "sort-words":
          assert.equal(sorted(wrong, " "), e.answer);
          break;
        case "facts":
          if (prompt(e).startsWith("Capital of")) assert.ok(capitals.has(wrong), wrong);
          break;
      }
    }
  }
  assert.throws(() => getTask("addition").wrongAnswer(getTask("facts").example(0, "train", 0), rng), /facts/);
});

test("sft and preference records are TRL's layouts", () => {
  const e = getTask("addition").example(0, "train", 0);
  assert.deepEqual(sftRecord(e), {
    messages: [
      { role: "user", content: prompt(e) },
      { role: "assistant", content: e.answer },
    ],
  });
  const r = preferenceRecord(e, new Rng(1));
  assert.deepEqual(r.prompt, [{ role: "user", content: prompt(e) }]);
  assert.deepEqual(r.chosen, [{ role: "assistant", content: e.answer }]);
  assert.equal(r.rejected.length, 1);
  assert.equal(r.rejected[0]!.role, "assistant");
  assert.notEqual(r.rejected[0]!.content, e.answer);
});

test("bad arguments are errors that say what is wrong", () => {
  assert.throws(() => getTask("multiplication"), /no task named "multiplication"; the tasks are addition, /);
  const add = getTask("addition");
  assert.throws(
    () => add.example(0, "train", 0, 13),
    /addition: difficulty \(digits per operand\) must be an integer in \[1, 12\], got 13/,
  );
  assert.throws(() => add.example(0, "train", -1), /index must be an integer/);
  assert.throws(() => add.example(0.5, "train", 0), /seed must be an integer/);
  assert.throws(() => add.example(0, "validation" as "test", 0), /split must be one of train, test/);
  assert.throws(() => taskExamples(add, { count: -1 }), /count must be/);
});

test("Wilson intervals match published values (Newcombe 1998, method 3)", () => {
  const cases: [number, number, number, number][] = [
    [81, 263, 0.2553, 0.3662],
    [15, 148, 0.0624, 0.1605],
    [0, 20, 0, 0.1611],
    [1, 29, 0.0061, 0.1718],
    [8, 10, 0.4902, 0.9433],
  ];
  for (const [x, n, lo, hi] of cases) {
    const [l, h] = wilsonInterval(x, n);
    assert.ok(Math.abs(l - lo) < 5e-5 && Math.abs(h - hi) < 5e-5, `${x}/${n}: [${l}, ${h}]`);
  }
  assert.deepEqual(
    wilsonInterval(10, 10).map((v) => Number(v.toFixed(4))),
    [0.7225, 1],
  );
  assert.throws(() => wilsonInterval(1, 0), /count must be/);
  assert.throws(() => wilsonInterval(5, 4), /correct must be/);
});
