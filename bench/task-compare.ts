// Held-out task accuracy of several models on the same problems, with paired differences against the
// first: per problem d = correct(model) − correct(first), mean ± 1.96·sd/√n (docs/feedback.md).
//
//   node dist/bench/task-compare.js --task addition --difficulty 5 --count 1000 [--seed 0] runs/sft runs/grpo …
// Prints one JSON object on stdout.
import { evaluateTask } from "../src/feedback/index.js";
import { parameterCounts } from "../src/nn/index.js";
import { loadModel } from "../src/train/index.js";

/** Paired difference of two correctness vectors over the same problems: mean and 95% interval. */
export function pairedDifference(
  a: readonly boolean[],
  b: readonly boolean[],
): { mean: number; interval: [number, number] } {
  if (a.length !== b.length || a.length < 2)
    throw new Error("pairedDifference: two equal vectors of ≥ 2 needed");
  const d = a.map((x, i) => Number(b[i]) - Number(x));
  const mean = d.reduce((s, x) => s + x, 0) / d.length;
  const sd = Math.sqrt(d.reduce((s, x) => s + (x - mean) ** 2, 0) / (d.length - 1));
  const half = (1.959963984540054 * sd) / Math.sqrt(d.length);
  return { mean, interval: [mean - half, mean + half] };
}

export interface TaskScore {
  model: string;
  accuracy: number;
  interval: [number, number];
  parameters: number;
  correct: boolean[];
}

/** Greedy held-out accuracy of each model on the task's first `count` test problems of `seed`. */
export function scoreModels(
  models: readonly string[],
  task: string,
  difficulty: number,
  count: number,
  seed = 0,
): TaskScore[] {
  return models.map((spec) => {
    const { model, tokenizer } = loadModel(spec, { warn: () => {} });
    const r = evaluateTask(model, tokenizer, task, { count, difficulty, seed });
    return {
      model: spec,
      accuracy: r.accuracy,
      interval: r.interval,
      parameters: parameterCounts(model.config).total,
      correct: r.examples.map((e) => e.correct),
    };
  });
}

function main(argv: string[]): void {
  let task = "addition";
  let difficulty = 3;
  let count = 1000;
  let seed = 0;
  const models: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--task") task = argv[++i] ?? "";
    else if (a === "--difficulty") difficulty = Number(argv[++i]);
    else if (a === "--count") count = Number(argv[++i]);
    else if (a === "--seed") seed = Number(argv[++i]);
    else if (a.startsWith("--"))
      throw new Error(`unknown argument ${a} (--task, --difficulty, --count, --seed, then models)`);
    else models.push(a);
  }
  if (models.length < 1) throw new Error("give at least one model (a run name or folder)");
  const scores = scoreModels(models, task, difficulty, count, seed);
  const first = scores[0]!;
  const out = {
    task,
    difficulty,
    count,
    seed,
    models: scores.map(({ correct, ...s }, i) => ({
      ...s,
      ...(i > 0 ? { overFirst: pairedDifference(first.correct, correct) } : {}),
    })),
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}

if (process.argv[1]?.endsWith("task-compare.js")) main(process.argv.slice(2));
