// `afterscale tasks list | export`, and the task half of `afterscale eval` (eval --task).
import { existsSync } from "node:fs";
import { type Command, Option } from "commander";
import {
  DEFAULT_TASK_EVAL_COUNT,
  type EvaluateTaskResult,
  evaluateTask,
  getTask,
  preferenceRecord,
  sftRecord,
  TASK_SPLITS,
  TASKS,
  type Task,
  type TaskSplit,
  taskExamples,
} from "../feedback/index.js";
import { writeFileAtomic } from "../io/index.js";
import { Rng } from "../tensor/index.js";
import { loadModel } from "../train/index.js";
import { int, oneOf, output } from "./options.js";

const difficultyText = (t: Task) =>
  `${t.difficulty.min}–${t.difficulty.max} ${t.difficulty.unit} (default ${t.difficulty.default})`;

export function registerTasksCommands(program: Command): void {
  const tasks = program
    .command("tasks")
    .description("Built-in tasks with verifiable answers: list them, export them as chat JSONL");

  tasks
    .command("list")
    .description("Names, descriptions and difficulty ranges of the built-in tasks")
    .option("--json", "print the tasks as JSON", false)
    .action((o) => {
      const rows = TASKS.map((t) => ({ name: t.name, description: t.description, difficulty: t.difficulty }));
      output(o.json, rows, () => {
        const width = Math.max(...TASKS.map((t) => t.name.length));
        return TASKS.map(
          (t) =>
            `${t.name.padEnd(width)}  ${t.description}\n${" ".repeat(width)}  difficulty: ${difficultyText(t)}`,
        ).join("\n");
      });
    });

  tasks
    .command("export")
    .description(
      "Write a task's examples as TRL-layout JSONL: sft (messages) or prefs (prompt, chosen, rejected)",
    )
    .argument("<name>", `the task: ${TASKS.map((t) => t.name).join(", ")}`)
    .addOption(new Option("--split <split>", "which split").argParser(oneOf(TASK_SPLITS)).default("train"))
    .requiredOption("--count <n>", "examples to write", int(1, 10_000_000))
    .option("--difficulty <d>", "the task's difficulty (see `afterscale tasks list`)", int())
    .option("--seed <n>", "seed of the examples (and of the wrong answers)", int(), 0)
    .addOption(
      new Option("--format <format>", "sft: {messages}; prefs: {prompt, chosen, rejected}")
        .argParser(oneOf(["sft", "prefs"] as const))
        .default("sft"),
    )
    .option("--out <file>", "write here instead of stdout (an existing file is kept unless --force)")
    .option("--force", "overwrite an existing --out file", false)
    .option("--json", "with --out: print a summary as JSON", false)
    .action((name: string, o) => {
      const task = getTask(name);
      if (o.out && existsSync(o.out) && !o.force)
        throw new Error(`tasks export: ${o.out} exists; pass --force to overwrite it`);
      const examples = taskExamples(task, {
        split: o.split,
        count: o.count,
        seed: o.seed,
        ...(o.difficulty !== undefined ? { difficulty: o.difficulty } : {}),
      });
      const rng = new Rng(o.seed);
      const lines = examples.map((e) =>
        JSON.stringify(o.format === "sft" ? sftRecord(e) : preferenceRecord(e, rng)),
      );
      const text = `${lines.join("\n")}\n`;
      if (!o.out) {
        process.stdout.write(text);
        return;
      }
      writeFileAtomic(o.out, text);
      const difficulty = examples[0]!.difficulty;
      const summary = { task: task.name, split: o.split, difficulty, seed: o.seed, format: o.format };
      output(o.json, { out: o.out, count: lines.length, ...summary }, () => {
        return `wrote ${lines.length} ${o.format} examples of ${task.name} (${o.split} split, difficulty ${difficulty}, seed ${o.seed}) to ${o.out}`;
      });
    });
}

/** Options `eval` gains for tasks (it registers them next to its own). */
export function addTaskEvalOptions(cmd: Command): Command {
  return cmd
    .option("--task <name>", `exact-match accuracy on a built-in task instead of validation loss`)
    .addOption(
      new Option("--split <split>", "with --task: which split (default: test)").argParser(oneOf(TASK_SPLITS)),
    )
    .option("--count <n>", `with --task: examples to score (default: ${DEFAULT_TASK_EVAL_COUNT})`, int(1))
    .option("--difficulty <d>", "with --task: the task's difficulty (see `afterscale tasks list`)", int())
    .option("--seed <n>", "with --task: seed of the examples (default: 0)", int())
    .option(
      "--max-tokens <n>",
      "with --task: most tokens per completion (default: longest answer + 8)",
      int(1),
    );
}

const TASK_ONLY = ["split", "count", "difficulty", "seed", "maxTokens"] as const;

/** Errors for options given to the wrong half of eval. */
export function checkEvalOptions(o: Record<string, unknown>): void {
  if (o.task !== undefined) {
    for (const k of ["data", "maxBatches", "klBase"] as const)
      if (o[k] !== undefined) throw new Error(`eval: --${kebab(k)} is for validation loss, not with --task`);
  } else {
    for (const k of TASK_ONLY)
      if (o[k] !== undefined) throw new Error(`eval: --${kebab(k)} is only used with --task`);
  }
}

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Examples shown under the accuracy line. */
const SHOWN = 5;

/** `eval --model X --task NAME`. */
export function evalTaskCommand(o: {
  model: string;
  task: string;
  split?: TaskSplit;
  count?: number;
  difficulty?: number;
  seed?: number;
  maxTokens?: number;
  batchSize?: number;
  json: boolean;
}): void {
  const task = getTask(o.task);
  const loaded = loadModel(o.model);
  const r = evaluateTask(loaded.model, loaded.tokenizer, task, {
    ...(o.split !== undefined ? { split: o.split } : {}),
    ...(o.count !== undefined ? { count: o.count } : {}),
    ...(o.difficulty !== undefined ? { difficulty: o.difficulty } : {}),
    ...(o.seed !== undefined ? { seed: o.seed } : {}),
    ...(o.maxTokens !== undefined ? { maxTokens: o.maxTokens } : {}),
    ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
  });
  output(o.json, { model: loaded.name, source: loaded.source, ...r }, () => formatTaskEval(loaded.name, r));
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

function formatTaskEval(model: string, r: EvaluateTaskResult): string {
  const lines = [
    `${model} on ${r.task} (${r.split} split, difficulty ${r.difficulty}, seed ${r.seed}): accuracy ${pct(r.accuracy)} (${r.correct}/${r.count}), 95% interval [${pct(r.interval[0])}, ${pct(r.interval[1])}]`,
  ];
  for (const e of r.examples.slice(0, SHOWN))
    lines.push(
      `  ${e.correct ? "right" : "wrong"}  ${JSON.stringify(e.prompt)} → ${JSON.stringify(e.completion)}${e.correct ? "" : ` (answer ${JSON.stringify(e.answer)})`}`,
    );
  return lines.join("\n");
}
