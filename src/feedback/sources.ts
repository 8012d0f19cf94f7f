// Where a fine-tune's examples come from: `data` is a JSONL file in TRL's layouts (datasets.ts), or
// `task:<name>`, a built-in task (tasks.ts) whose train split is generated from the run's seed and whose
// held-out split gives validation examples and, after the last step, the task's accuracy.
import { type ChatMessage, encodeChat, type Tokenizer } from "../data/index.js";
import type { Model } from "../nn/index.js";
import { Rng } from "../tensor/random.js";
import type { TrainConfig } from "../train/index.js";
import type { Sequence } from "./batches.js";
import { encodePreference, encodeSft, readPreferenceFile, readPromptFile, readSftFile } from "./datasets.js";
import { evaluateTask } from "./task-eval.js";
import { getTask, type Task, type TaskExample, taskExamples, wrongAnswer } from "./tasks.js";

export const TASK_PREFIX = "task:";

/** A fine-tune's examples of one kind (sequences, preference pairs, prompts). */
export interface FineTuneData<T> {
  train: T[];
  val: T[];
  /** What the data is, for messages and the run's config.json. */
  describe: string;
  /** The task, for task data. */
  task: Task | null;
  /** For task data: the task's accuracy on its held-out split (figures for the final validation). */
  score?: (model: Model, tokenizer: Tokenizer) => Record<string, number>;
}

/** Settings every fine-tune's data takes (the objectives' schemas have these fields). */
export interface DataSettings {
  valData?: string | undefined;
  valFraction: number;
  taskCount: number;
  taskDifficulty?: number | undefined;
  taskEvalCount: number;
}

/** The task named by `data` ("task:addition"), or null for a file. */
export function taskOf(data: string): Task | null {
  return data.startsWith(TASK_PREFIX) ? getTask(data.slice(TASK_PREFIX.length)) : null;
}

/** A task example as a conversation whose assistant turn is `answer`. */
export function taskConversation(e: TaskExample, answer = e.answer): ChatMessage[] {
  return [...e.messages, { role: "assistant", content: answer }];
}

/** Splits off a seeded `fraction` of the examples (at least one when there are two or more). */
export function holdOut<T>(items: readonly T[], fraction: number, seed: number): { train: T[]; val: T[] } {
  if (fraction === 0 || items.length < 2) return { train: [...items], val: [] };
  const order = items.map((_, i) => i);
  const rng = new Rng(seed ^ 0x5f3759df);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const n = Math.min(items.length - 1, Math.max(1, Math.round(items.length * fraction)));
  const val = new Set(order.slice(0, n));
  return { train: items.filter((_, i) => !val.has(i)), val: items.filter((_, i) => val.has(i)) };
}

/** Accuracy on the task's held-out split, as `afterscale eval --task` scores it (greedy, exact match). */
export function taskScorer(task: Task, settings: DataSettings, seed: number) {
  return (model: Model, tokenizer: Tokenizer): Record<string, number> => {
    const r = evaluateTask(model, tokenizer, task, {
      count: settings.taskEvalCount,
      seed,
      ...(settings.taskDifficulty !== undefined ? { difficulty: settings.taskDifficulty } : {}),
    });
    return { accuracy: r.accuracy, accuracyLow: r.interval[0], accuracyHigh: r.interval[1], scored: r.count };
  };
}

/**
 * A fine-tune's examples: for `task:NAME`, `taskCount` from the task's train split and `taskEvalCount`
 * from its held-out split (seeded by the run's seed); for a file, its records, with `valData` or a seeded
 * `valFraction` of them held out.
 */
function fineTuneData<T>(
  c: TrainConfig,
  settings: DataSettings,
  what: string,
  say: (m: string) => void,
  fromTask: (e: TaskExample) => T,
  fromFile: (path: string) => T[],
): FineTuneData<T> {
  const task = taskOf(c.data);
  if (task) {
    const difficulty = settings.taskDifficulty;
    const make = (split: "train" | "test", count: number): T[] =>
      taskExamples(task, {
        split,
        count,
        seed: c.seed,
        ...(difficulty !== undefined ? { difficulty } : {}),
      }).map(fromTask);
    return {
      train: make("train", settings.taskCount),
      val: make("test", settings.taskEvalCount),
      describe: c.data,
      task,
      score: taskScorer(task, settings, c.seed),
    };
  }
  const all = fromFile(c.data);
  if (settings.valData) return { train: all, val: fromFile(settings.valData), describe: c.data, task: null };
  const { train, val } = holdOut(all, settings.valFraction, c.seed);
  if (val.length === 0) say(`${c.objective}: ${c.data} has too few ${what} to hold any out; no validation`);
  return { train, val, describe: c.data, task: null };
}

const chatSequence = (e: { ids: number[]; assistantMask: Uint8Array }): Sequence => ({
  ids: e.ids,
  mask: e.assistantMask,
});

/** SFT examples: conversations (or prompt-completion pairs) with their trained-token masks. */
export function sftData(
  c: TrainConfig,
  settings: DataSettings,
  tokenizer: Tokenizer,
  say: (m: string) => void,
): FineTuneData<Sequence> {
  return fineTuneData(
    c,
    settings,
    "examples",
    say,
    (e) => chatSequence(encodeChat(tokenizer, taskConversation(e))),
    (path) => readSftFile(path).map((r) => encodeSft(tokenizer, r)),
  );
}

export interface PreferencePair {
  /** Prompt + chosen completion, the completion masked in. */
  chosen: Sequence;
  rejected: Sequence;
}

/** Preference pairs: from a JSONL file, or from a task (chosen: the right answer; rejected: a wrong one). */
export function preferenceData(
  c: TrainConfig,
  settings: DataSettings,
  tokenizer: Tokenizer,
  say: (m: string) => void,
): FineTuneData<PreferencePair> {
  const rng = new Rng((c.seed ^ 0x2545f491) >>> 0);
  return fineTuneData(
    c,
    settings,
    "pairs",
    say,
    (e) => ({
      chosen: chatSequence(encodeChat(tokenizer, taskConversation(e))),
      rejected: chatSequence(encodeChat(tokenizer, taskConversation(e, wrongAnswer(e, rng)))),
    }),
    (path) =>
      readPreferenceFile(path).map((r) => {
        const { prompt, chosen, rejected } = encodePreference(tokenizer, r);
        const seq = (completion: number[]): Sequence => ({
          ids: [...prompt, ...completion],
          mask: Uint8Array.from([...prompt.map(() => 0), ...completion.map(() => 1)]),
        });
        return { chosen: seq(chosen), rejected: seq(rejected) };
      }),
  );
}

/** A prompt for RL: its token ids (ending with the generation prompt in chat), and what the reward sees. */
export interface RlPrompt {
  ids: Int32Array;
  /** The prompt as the data gives it: text, or a list of messages. */
  prompt: string | ChatMessage[];
  /** The whole data record (a task example's answer is in `answer`). */
  record: Record<string, unknown>;
}

/** RL prompts: a task's splits, or a JSONL file of {"prompt": text | messages, …} lines. */
export function promptData(
  c: TrainConfig,
  settings: DataSettings,
  tokenizer: Tokenizer,
  say: (m: string) => void,
): FineTuneData<RlPrompt> {
  const encode = (prompt: string | ChatMessage[]) =>
    Int32Array.from(
      typeof prompt === "string"
        ? tokenizer.encode(prompt, { allowSpecial: false })
        : encodeChat(tokenizer, prompt, { addGenerationPrompt: true }).ids,
    );
  return fineTuneData<RlPrompt>(
    c,
    settings,
    "prompts",
    say,
    (e) => ({ ids: encode(e.messages), prompt: e.messages, record: { answer: e.answer } }),
    (path) => readPromptFile(path).map((r) => ({ ids: encode(r.prompt), prompt: r.prompt, record: r })),
  );
}
