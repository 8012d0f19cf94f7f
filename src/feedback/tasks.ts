// Built-in tasks with verifiable answers, in chat format, for fine-tuning (sft), preference pairs (dpo),
// rewards (grpo) and held-out evaluation (eval --task).
//
// An example is a pure function of (task, seed, split, index, difficulty): its random stream is seeded from
// a hash of those, so any example can be regenerated alone. Splits never share a problem: a problem's
// split is fixed by a hash of its canonical form (the same for "12+34" and "34+12", for a list of words in
// any order), and generation draws problems until one falls in the requested split. TEST_FRACTION of all
// problems are held out. Within a split, examples are drawn independently (with replacement), so a small
// problem space (1-digit addition) repeats problems; accuracy is then over the split's distribution.
//
// Prompts are short, for models with a context of 128–256 tokens: user "12+34=", assistant "46".
import { createHash } from "node:crypto";
import { type ChatMessage, IM_END } from "../data/chat.js";
import { Rng } from "../tensor/index.js";
import { CAPITALS, ELEMENTS, WORDS } from "./task-data.js";

export type TaskSplit = "train" | "test";
export const TASK_SPLITS: readonly TaskSplit[] = ["train", "test"];

/** Share of each task's problems that belong to the held-out "test" split. */
export const TEST_FRACTION = 0.2;

export interface TaskExample {
  task: string;
  split: TaskSplit;
  index: number;
  difficulty: number;
  /** The problem's canonical form: equal for examples that pose the same problem; it alone fixes the split. */
  problem: string;
  /** The prompt: one user message. */
  messages: ChatMessage[];
  /** The exact completion that scores as correct. */
  answer: string;
}

export interface DifficultyRange {
  min: number;
  max: number;
  default: number;
  /** What the number counts, e.g. "digits per operand". */
  unit: string;
}

export interface Task {
  /** Short kebab-case name, as given to --task. */
  name: string;
  description: string;
  difficulty: DifficultyRange;
  /** Example `index` of a split; difficulty defaults to difficulty.default. */
  example(seed: number, split: TaskSplit, index: number, difficulty?: number): TaskExample;
  /** True when the completion is the answer, up to surrounding whitespace and a trailing <|im_end|>. */
  score(completion: string, answer: string): boolean;
  /** A plausible answer that differs from the correct one (off by one, swapped letters…), for dpo pairs. */
  wrongAnswer(example: TaskExample, rng: Rng): string;
}

/** One problem: what the split hash reads, what the user sees, and the answer. */
interface Problem {
  canonical: string;
  prompt: string;
  answer: string;
}

interface TaskSpec {
  name: string;
  description: string;
  difficulty: DifficultyRange;
  draw(rng: Rng, difficulty: number): Problem;
  wrong(answer: string, rng: Rng): string;
}

/** Most problems drawn for one example before concluding that the split is (nearly) empty. */
const MAX_DRAWS = 10_000;

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/** The split a problem belongs to, from a hash of the task and the problem's canonical form. */
export function problemSplit(task: string, canonical: string): TaskSplit {
  return sha256(`${task}\n${canonical}`).readUInt32BE(0) / 2 ** 32 < TEST_FRACTION ? "test" : "train";
}

/** Exact match after trimming whitespace; a trailing <|im_end|> (if the caller kept it) is ignored. */
export function scoreExact(completion: string, answer: string): boolean {
  let c = completion.trim();
  if (c.endsWith(IM_END)) c = c.slice(0, -IM_END.length).trim();
  return c === answer.trim();
}

function checkInteger(what: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(value) || value < min || value > max)
    throw new Error(`${what} must be an integer in [${min}, ${max}], got ${value}`);
}

function defineTask(spec: TaskSpec): Task {
  const range = spec.difficulty;
  return {
    name: spec.name,
    description: spec.description,
    difficulty: range,
    example(seed, split, index, difficulty = range.default) {
      checkInteger("seed", seed, Number.MIN_SAFE_INTEGER);
      checkInteger("index", index, 0);
      checkInteger(`${spec.name}: difficulty (${range.unit})`, difficulty, range.min, range.max);
      if (!TASK_SPLITS.includes(split))
        throw new Error(`split must be one of ${TASK_SPLITS.join(", ")}, got ${String(split)}`);
      const rng = new Rng(sha256(`${spec.name}\n${seed}\n${split}\n${difficulty}\n${index}`).readUInt32BE(0));
      for (let draw = 0; draw < MAX_DRAWS; draw++) {
        const p = spec.draw(rng, difficulty);
        if (problemSplit(spec.name, p.canonical) !== split) continue;
        return {
          task: spec.name,
          split,
          index,
          difficulty,
          problem: p.canonical,
          messages: [{ role: "user", content: p.prompt }],
          answer: p.answer,
        };
      }
      throw new Error(
        `${spec.name}: no ${split} problem found at difficulty ${difficulty} in ${MAX_DRAWS} draws`,
      );
    },
    score: scoreExact,
    wrongAnswer(example, rng) {
      if (example.task !== spec.name)
        throw new Error(`${spec.name}: wrongAnswer got an example of task ${example.task}`);
      const wrong = spec.wrong(example.answer, rng);
      if (scoreExact(wrong, example.answer)) throw new Error(`${spec.name}: wrong answer equals the answer`);
      return wrong;
    },
  };
}

// --- helpers for drawing -------------------------------------------------------------------------------

const LETTERS = "abcdefghijklmnopqrstuvwxyz";

const pick = <T>(rng: Rng, items: readonly T[]): T => items[rng.int(items.length)]!;

/** A uniform number with exactly `digits` digits (0–9 for one digit). */
function number(rng: Rng, digits: number): number {
  if (digits === 1) return rng.int(10);
  const low = 10 ** (digits - 1);
  return low + rng.int(9 * low);
}

function letters(rng: Rng, length: number): string {
  let s = "";
  for (let i = 0; i < length; i++) s += LETTERS[rng.int(26)];
  return s;
}

/** `k` distinct items, in draw order. */
function distinct<T>(rng: Rng, items: readonly T[], k: number): T[] {
  const pool = [...items];
  const out: T[] = [];
  for (let i = 0; i < k; i++) out.push(pool.splice(rng.int(pool.length), 1)[0]!);
  return out;
}

const codeOrder = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

// --- wrong answers -------------------------------------------------------------------------------------

/** A number off by one in a single digit (no new leading zero) or, half the time, off by one overall. */
function wrongNumber(answer: string, rng: Rng): string {
  const n = Number(answer);
  if (!/^-?\d+$/.test(answer)) return `${answer}0`;
  if (rng.int(2) === 0) return String(n === 0 || rng.int(2) === 0 ? n + 1 : n - 1);
  const start = answer.startsWith("-") ? 1 : 0;
  const at = start + rng.int(answer.length - start);
  const d = Number(answer[at]);
  const lowest = at === start && answer.length - start > 1 ? 1 : 0;
  const up = d === 9 ? false : d === lowest ? true : rng.int(2) === 0;
  return answer.slice(0, at) + String(up ? d + 1 : d - 1) + answer.slice(at + 1);
}

/** Two adjacent differing letters swapped; a letter changed when they are all the same. */
function wrongLetters(answer: string, rng: Rng): string {
  const spots: number[] = [];
  for (let i = 0; i + 1 < answer.length; i++) if (answer[i] !== answer[i + 1]) spots.push(i);
  if (spots.length === 0) {
    const at = rng.int(answer.length);
    const next = LETTERS[(LETTERS.indexOf(answer[at]!) + 1) % 26]!;
    return answer.slice(0, at) + next + answer.slice(at + 1);
  }
  const i = pick(rng, spots);
  return answer.slice(0, i) + answer[i + 1] + answer[i] + answer.slice(i + 2);
}

// --- the tasks -----------------------------------------------------------------------------------------

function arithmetic(op: "+" | "-"): TaskSpec {
  const add = op === "+";
  return {
    name: add ? "addition" : "subtraction",
    description: add
      ? "Add two numbers: user 123+456= / assistant 579"
      : "Subtract a smaller number from a larger one: user 456-123= / assistant 333",
    difficulty: { min: 1, max: 12, default: 3, unit: "digits per operand" },
    draw(rng, digits) {
      let a = number(rng, digits);
      let b = number(rng, digits);
      if (!add && a < b) [a, b] = [b, a];
      // a+b and b+a are one problem, so they share a split.
      const canonical = add ? `${Math.min(a, b)}+${Math.max(a, b)}` : `${a}-${b}`;
      return { canonical, prompt: `${a}${op}${b}=`, answer: String(add ? a + b : a - b) };
    },
    wrong: wrongNumber,
  };
}

const countLetters: TaskSpec = {
  name: "count-letters",
  description: "Count a letter in a random string of letters: user How many r in qrbrx? / assistant 2",
  difficulty: { min: 3, max: 24, default: 8, unit: "letters in the string" },
  draw(rng, length) {
    const word = letters(rng, length);
    // Mostly a letter the string has (3 in 4), so counts of 1, 2, 3… are common and 0 is not the rule.
    const letter = rng.int(4) === 0 ? LETTERS[rng.int(26)]! : word[rng.int(length)]!;
    const count = [...word].filter((c) => c === letter).length;
    return {
      canonical: `${letter}:${word}`,
      prompt: `How many ${letter} in ${word}?`,
      answer: String(count),
    };
  },
  wrong: (answer, rng) => {
    const n = Number(answer);
    return String(n === 0 || rng.int(2) === 0 ? n + 1 : n - 1);
  },
};

const reverseWord: TaskSpec = {
  name: "reverse-word",
  description: "Reverse a random string of letters: user Reverse: abcd / assistant dcba",
  difficulty: { min: 2, max: 24, default: 5, unit: "letters in the string" },
  draw(rng, length) {
    const word = letters(rng, length);
    return { canonical: word, prompt: `Reverse: ${word}`, answer: [...word].reverse().join("") };
  },
  // Half the time the string unreversed (a model that copies), else two adjacent letters swapped.
  wrong: (answer, rng) => {
    const unreversed = [...answer].reverse().join("");
    return unreversed !== answer && rng.int(2) === 0 ? unreversed : wrongLetters(answer, rng);
  },
};

const sortWords: TaskSpec = {
  name: "sort-words",
  description:
    "Sort distinct English words alphabetically: user Sort: pear apple fig / assistant apple fig pear",
  difficulty: { min: 2, max: 10, default: 4, unit: "words in the list" },
  draw(rng, count) {
    const words = distinct(rng, WORDS, count);
    const sorted = [...words].sort(codeOrder).join(" ");
    // The same words in any order are one problem.
    return { canonical: sorted, prompt: `Sort: ${words.join(" ")}`, answer: sorted };
  },
  wrong: (answer, rng) => {
    const words = answer.split(" ");
    const i = rng.int(words.length - 1);
    [words[i], words[i + 1]] = [words[i + 1]!, words[i]!];
    return words.join(" ");
  },
};

interface Relation {
  name: string;
  question: string;
  pairs: readonly (readonly [string, string])[];
}

const RELATIONS: readonly Relation[] = [
  { name: "capital", question: "Capital of", pairs: CAPITALS.map(([c, k]) => [c, k] as const) },
  { name: "country", question: "Country with capital", pairs: CAPITALS.map(([c, k]) => [k, c] as const) },
  { name: "symbol", question: "Symbol of", pairs: ELEMENTS.map(([, s, n]) => [n, s] as const) },
  { name: "element", question: "Element with symbol", pairs: ELEMENTS.map(([, s, n]) => [s, n] as const) },
  {
    name: "number",
    question: "Atomic number of",
    pairs: ELEMENTS.map(([z, , n]) => [n, String(z)] as const),
  },
];

/** Every value a relation can answer, keyed by value: a wrong fact is another value of the same kind. */
const ANSWER_POOLS = new Map<string, readonly string[]>();
for (const r of RELATIONS) {
  const values = r.pairs.map(([, v]) => v);
  for (const v of values) ANSWER_POOLS.set(v, values);
}

const facts: TaskSpec = {
  name: "facts",
  description:
    "Capitals, countries, element symbols and atomic numbers from a built-in table: user Capital of: France / assistant Paris",
  difficulty: { min: 1, max: 4, default: 1, unit: "facts asked in one question" },
  draw(rng, count) {
    const relation = pick(rng, RELATIONS);
    const asked = distinct(rng, relation.pairs, count);
    const subjects = asked.map(([s]) => s);
    return {
      canonical: `${relation.name}:${[...subjects].sort(codeOrder).join(",")}`,
      prompt: `${relation.question}: ${subjects.join(", ")}`,
      answer: asked.map(([, v]) => v).join(", "),
    };
  },
  // One of the answers replaced by another value of the same kind (another capital, symbol, number).
  wrong: (answer, rng) => {
    const items = answer.split(", ");
    const i = rng.int(items.length);
    const pool = ANSWER_POOLS.get(items[i]!);
    if (!pool) return `${answer}?`;
    const others = pool.filter((v) => !items.includes(v));
    items[i] = pick(rng, others);
    return items.join(", ");
  },
};

/** The built-in tasks, in the order `afterscale tasks list` shows them. */
export const TASKS: readonly Task[] = [
  arithmetic("+"),
  arithmetic("-"),
  countLetters,
  reverseWord,
  sortWords,
  facts,
].map(defineTask);

/** The task of this name; the error lists the names there are. */
export function getTask(name: string): Task {
  const task = TASKS.find((t) => t.name === name);
  if (!task) throw new Error(`no task named "${name}"; the tasks are ${TASKS.map((t) => t.name).join(", ")}`);
  return task;
}

export interface TaskExamplesOptions {
  split?: TaskSplit;
  count: number;
  seed?: number;
  difficulty?: number;
}

/** Examples 0 … count−1 of a split (default "train", seed 0, the task's default difficulty). */
export function taskExamples(task: Task | string, options: TaskExamplesOptions): TaskExample[] {
  const t = typeof task === "string" ? getTask(task) : task;
  checkInteger("count", options.count, 0);
  const out: TaskExample[] = [];
  for (let i = 0; i < options.count; i++)
    out.push(t.example(options.seed ?? 0, options.split ?? "train", i, options.difficulty));
  return out;
}

/** A plausible wrong answer to the example (it never scores as correct). */
export function wrongAnswer(example: TaskExample, rng: Rng): string {
  return getTask(example.task).wrongAnswer(example, rng);
}

/** The example as an SFT record in TRL's layout: {"messages": [user…, assistant answer]}. */
export function sftRecord(example: TaskExample): { messages: ChatMessage[] } {
  return { messages: [...example.messages, { role: "assistant", content: example.answer }] };
}

/** The example as a TRL preference record: the answer chosen, a plausible wrong answer rejected. */
export function preferenceRecord(
  example: TaskExample,
  rng: Rng,
): { prompt: ChatMessage[]; chosen: ChatMessage[]; rejected: ChatMessage[] } {
  return {
    prompt: example.messages,
    chosen: [{ role: "assistant", content: example.answer }],
    rejected: [{ role: "assistant", content: wrongAnswer(example, rng) }],
  };
}
