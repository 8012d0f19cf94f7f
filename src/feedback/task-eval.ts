// Exact-match accuracy of a chat model on a built-in task's held-out split, with a 95% Wilson interval.
//
// Each prompt is the task's chat rendered with the generation prompt (encodeChat), decoded greedily until
// the model ends its turn with the <|im_end|> token (or <|endoftext|>, maxTokens, or the context). Prompts
// are decoded in batches (infer's decodeBatch: one forward pass per step over every unfinished sequence,
// each with its own KV cache), so the completions are those of one-by-one greedy generation.
import { chatStopIds, encodeChat, hasChatTokens } from "../data/chat.js";
import type { Tokenizer } from "../data/tokenizer.js";
import { decodeBatch } from "../infer/index.js";
import type { Model } from "../nn/index.js";
import { getTask, type Task, type TaskSplit, taskExamples } from "./tasks.js";

/** z for a two-sided 95% interval. */
const Z95 = 1.959963984540054;

/** Wilson score interval for `correct` successes in `count` trials (95% unless z is given). */
export function wilsonInterval(correct: number, count: number, z = Z95): [number, number] {
  if (!Number.isInteger(count) || count < 1) throw new Error(`count must be an integer ≥ 1, got ${count}`);
  if (!Number.isInteger(correct) || correct < 0 || correct > count)
    throw new Error(`correct must be an integer in [0, ${count}], got ${correct}`);
  const p = correct / count;
  const z2 = z * z;
  const denominator = 1 + z2 / count;
  const centre = (p + z2 / (2 * count)) / denominator;
  const half = (z / denominator) * Math.sqrt((p * (1 - p)) / count + z2 / (4 * count * count));
  // The exact ends at 0 and n successes, free of rounding.
  return [correct === 0 ? 0 : Math.max(0, centre - half), correct === count ? 1 : Math.min(1, centre + half)];
}

export interface EvaluateTaskOptions {
  /** Default "test" (the held-out split). */
  split?: TaskSplit;
  /** Examples to score; default 200. */
  count?: number;
  /** Default 0. */
  seed?: number;
  /** Default: the task's default difficulty. */
  difficulty?: number;
  /** Most tokens per completion; default the longest answer's token count + 8. */
  maxTokens?: number;
  /** Sequences decoded together; default 16. */
  batchSize?: number;
}

export interface TaskCompletion {
  /** The user message. */
  prompt: string;
  answer: string;
  /** What the model wrote before ending its turn (without <|im_end|>). */
  completion: string;
  correct: boolean;
}

export interface EvaluateTaskResult {
  task: string;
  split: TaskSplit;
  difficulty: number;
  seed: number;
  maxTokens: number;
  accuracy: number;
  correct: number;
  count: number;
  /** 95% Wilson score interval of the accuracy. */
  interval: [number, number];
  examples: TaskCompletion[];
}

export const DEFAULT_TASK_EVAL_COUNT = 200;
export const DEFAULT_TASK_EVAL_BATCH = 16;

export function evaluateTask(
  model: Model,
  tokenizer: Tokenizer,
  task: Task | string,
  options: EvaluateTaskOptions = {},
): EvaluateTaskResult {
  const t = typeof task === "string" ? getTask(task) : task;
  if (!hasChatTokens(tokenizer))
    throw new Error(
      `the model's tokenizer has no chat tokens (<|im_start|>, <|im_end|>), so it cannot be prompted in chat; fine-tune it with \`afterscale sft\` first`,
    );
  if (tokenizer.vocabSize > model.config.vocab)
    throw new Error(
      `the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${model.config.vocab}`,
    );
  const split = options.split ?? "test";
  const count = options.count ?? DEFAULT_TASK_EVAL_COUNT;
  const seed = options.seed ?? 0;
  const difficulty = options.difficulty ?? t.difficulty.default;
  const batchSize = options.batchSize ?? DEFAULT_TASK_EVAL_BATCH;
  if (!Number.isInteger(count) || count < 1) throw new Error(`count must be an integer ≥ 1, got ${count}`);
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new Error(`batchSize must be an integer ≥ 1, got ${batchSize}`);
  const examples = taskExamples(t, { split, count, seed, difficulty });
  const maxTokens =
    options.maxTokens ?? Math.max(...examples.map((e) => tokenizer.encode(e.answer).length)) + 8;
  if (!Number.isInteger(maxTokens) || maxTokens < 1)
    throw new Error(`maxTokens must be an integer ≥ 1, got ${maxTokens}`);

  const context = model.config.context;
  const prompts = examples.map((e, i) => {
    const ids = Int32Array.from(encodeChat(tokenizer, e.messages, { addGenerationPrompt: true }).ids);
    if (ids.length > context)
      throw new Error(
        `${t.name} at difficulty ${difficulty}: the prompt of example ${i} is ${ids.length} tokens, longer than the model's context of ${context}; lower the difficulty`,
      );
    return ids;
  });
  const stops = chatStopIds(tokenizer);

  const completions: string[] = [];
  for (let at = 0; at < prompts.length; at += batchSize) {
    const batch = prompts.slice(at, at + batchSize);
    for (const d of decodeBatch(model, batch, {
      maxTokens,
      stops,
      temperature: 0,
      vocab: tokenizer.vocabSize,
    }))
      completions.push(tokenizer.decode(d.ids));
  }
  const scored = examples.map((e, i) => ({
    prompt: e.messages.map((m) => m.content).join("\n"),
    answer: e.answer,
    completion: completions[i]!,
    correct: t.score(completions[i]!, e.answer),
  }));
  const correct = scored.filter((s) => s.correct).length;
  return {
    task: t.name,
    split,
    difficulty,
    seed,
    maxTokens,
    accuracy: correct / count,
    correct,
    count,
    interval: wilsonInterval(correct, count),
    examples: scored,
  };
}
