// Group relative policy optimisation (DeepSeekMath; TRL's GRPOTrainer) with verifiable rewards. Each
// micro-batch samples `groupSize` completions of each of its prompts from the current policy, scores them
// with the reward (a built-in task's checker, or a user's module), turns rewards into group-normalised
// advantages, and takes the clipped policy-gradient loss (losses.ts), with an optional KL penalty β to the
// frozen starting model. One update per generation batch, as TRL's default, so the ratio is 1 at the
// update and its gradient is the advantage-weighted log-probability gradient.
//
// Determinism: completion k of micro-batch `index` is sampled with the seed (seed, index, k), so a resumed
// run samples exactly the completions an uninterrupted one samples.
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { chatStopIds } from "../data/index.js";
import { decodeBatch } from "../infer/index.js";
import { forward, type Model } from "../nn/index.js";
import { noGrad, reshape, tidy } from "../tensor/index.js";
import { tokenLogProbs } from "../tensor/ops.js";
import { dropoutSeedFor, type ObjectiveSetup, type Validation } from "../train/index.js";
import { ExampleOrder, padBatch, type Sequence } from "./batches.js";
import { KL_PROMPTS } from "./dpo.js";
import { sampledKl } from "./kl.js";
import { GRPO_LOSS_TYPES, groupAdvantages, grpoLoss } from "./losses.js";
import { promptData, type RlPrompt } from "./sources.js";
import { initModel, parseSettings, startingPoint } from "./start.js";

const int = (min: number) => z.number().int().min(min);

export const grpoSettingsSchema = z
  .object({
    groupSize: int(2)
      .default(8)
      .describe("completions sampled per prompt (G); advantages are normalised in each group"),
    epsilon: z
      .number()
      .min(0)
      .lt(1)
      .default(0.2)
      .describe("ε: the probability ratio is clipped to [1 − ε, 1 + ε]"),
    beta: z
      .number()
      .min(0)
      .default(0)
      .describe("β: weight of the per-token KL penalty to the starting model (0, TRL's default: none)"),
    lossType: z
      .enum(GRPO_LOSS_TYPES)
      .default("grpo")
      .describe("how token losses are averaged (TRL's loss_type)"),
    maxNewTokens: int(1).default(16).describe("most tokens per sampled completion"),
    temperature: z.number().positive().default(1).describe("sampling temperature of the completions"),
    reward: z
      .string()
      .min(1)
      .optional()
      .describe("an ES module whose default (or `reward`) export is (prompt, completion, record) => number"),
    valData: z.string().min(1).optional().describe("held-out prompts, a JSONL file like the data"),
    valFraction: z
      .number()
      .min(0)
      .lt(1)
      .default(0.05)
      .describe("share of a file's prompts held out without valData"),
    taskCount: int(1).default(5000).describe("task data: training prompts generated from the task"),
    taskDifficulty: int(1).optional().describe("task data: the task's difficulty (default: the task's)"),
    taskEvalCount: int(1)
      .default(200)
      .describe("task data: held-out problems scored for accuracy at the end"),
  })
  .strict();
export type GrpoSettings = z.output<typeof grpoSettingsSchema>;

export type RewardFunction = (
  prompt: string | RlPrompt["prompt"],
  completion: string,
  record: Record<string, unknown>,
) => number;

/** Imports a user's reward module; its default export (or `reward`) must be a function. */
export async function loadReward(path: string): Promise<RewardFunction> {
  const url = pathToFileURL(isAbsolute(path) ? path : resolve(path)).href;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`--reward ${path}: cannot import it (${(e as Error).message})`);
  }
  const fn = (typeof mod.default === "function" ? mod.default : mod.reward) as unknown;
  if (typeof fn !== "function")
    throw new Error(
      `--reward ${path}: export a function (prompt, completion) => number as default or as \`reward\``,
    );
  return fn as RewardFunction;
}

/** A reward as a checked number: the module's bugs are named, not trained on. */
function checkedReward(fn: RewardFunction, what: string): RewardFunction {
  return (prompt, completion, record) => {
    const r: unknown = fn(prompt, completion, record);
    if (typeof r !== "number" || !Number.isFinite(r)) {
      const got = r instanceof Promise ? "a Promise (the reward must be synchronous)" : String(r);
      throw new Error(
        `${what} returned ${got} for completion ${JSON.stringify(completion)}; it must return a finite number`,
      );
    }
    return r;
  };
}

/** A seed for completion k of micro-batch `index`. */
function completionSeed(seed: number, index: number, k: number): number {
  return (dropoutSeedFor(seed ^ 0x3c6ef372, index) ^ Math.imul(k + 1, 0x9e3779b1)) >>> 0;
}

/** Per-token log-probs [rows, time] of a padded batch, and its targets. */
function tokenLogProbsOf(model: Model, seqs: readonly Sequence[], padId: number, dropoutSeed: number | null) {
  const b = padBatch(seqs, model.config.context, padId);
  const logits = forward(model, b.inputs, b.rows, b.time, { dropoutSeed });
  const flat = reshape(logits, [b.rows * b.time, model.config.vocab]);
  return { logProbs: reshape(tokenLogProbs(flat, b.targets), [b.rows, b.time]), batch: b };
}

export const groupRelativePolicyOptimisation: ObjectiveSetup = async (ctx) => {
  const { config: c, say } = ctx;
  const settings = parseSettings(grpoSettingsSchema, c.objectiveConfig, "grpo");
  const start = startingPoint(ctx, "grpo");
  const { tokenizer } = start;
  const data = promptData(c, settings, tokenizer, say);
  let reward: RewardFunction;
  if (settings.reward)
    reward = checkedReward(await loadReward(settings.reward), `--reward ${settings.reward}`);
  else if (data.task) {
    const task = data.task;
    reward = (_p, completion, record) => (task.score(completion, String(record.answer)) ? 1 : 0);
  } else throw new Error(`grpo: ${c.data} is not a task; give the reward with --reward ./reward.js`);
  // The frozen reference, for the KL penalty and the KL reported: the starting model, loaded on its own.
  const reference = initModel(ctx, "grpo").model;
  const stops = chatStopIds(tokenizer);
  const padId = tokenizer.eotId;
  const context = start.modelConfig.context;
  const G = settings.groupSize;
  const order = new ExampleOrder(data.train.length, c.batchSize, c.seed);
  for (const p of [...data.train, ...data.val]) {
    if (p.ids.length >= context)
      throw new Error(`grpo: a prompt of ${p.ids.length} tokens leaves no room in the context of ${context}`);
  }
  const scorer = data.score ?? null;

  /** Mean reward of greedy completions of held-out prompts (a task reports its accuracy instead). */
  const validate = (model: Model, count: number): Validation | null => {
    const n = Math.min(count, data.val.length);
    if (n === 0) return null;
    if (scorer && count >= data.val.length)
      return { loss: null, tokens: n, unit: "prompts", metrics: scorer(model, tokenizer) };
    const prompts = data.val.slice(0, n);
    const done = decodeBatch(
      model,
      prompts.map((p) => p.ids),
      {
        maxTokens: settings.maxNewTokens,
        stops,
        temperature: 0,
        vocab: tokenizer.vocabSize,
      },
    );
    let total = 0;
    done.forEach((d, i) => {
      total += reward(prompts[i]!.prompt, tokenizer.decode(d.ids), prompts[i]!.record);
    });
    return {
      loss: null,
      tokens: n,
      unit: "prompts",
      metrics: { [data.task ? "accuracy" : "reward"]: total / n },
    };
  };

  return {
    ...start,
    data: data.describe,
    tokensPerStep: null,
    objective: {
      describe: `GRPO on ${data.describe} (${data.train.length} prompts × ${G} completions, β ${settings.beta}, ε ${settings.epsilon})`,
      microBatch(model, index) {
        const prompts = order.batch(index).flatMap((i) => Array<RlPrompt>(G).fill(data.train[i]!));
        const done = decodeBatch(
          model,
          prompts.map((p) => p.ids),
          {
            maxTokens: settings.maxNewTokens,
            stops,
            temperature: settings.temperature,
            seeds: prompts.map((_, k) => completionSeed(c.seed, index, k)),
            vocab: tokenizer.vocabSize,
          },
        );
        const rewards = done.map((d, k) =>
          reward(prompts[k]!.prompt, tokenizer.decode(d.ids), prompts[k]!.record),
        );
        const advantages = groupAdvantages(rewards, G);
        // The completion, with the stop token that ended it, is what the policy is trained on.
        const seqs = done.map((d, k): Sequence => {
          const completion = d.stopId === null ? d.ids : [...d.ids, d.stopId];
          const ids = [...prompts[k]!.ids, ...completion];
          const mask = new Uint8Array(ids.length);
          mask.fill(1, prompts[k]!.ids.length);
          return { ids, mask };
        });
        const seed = model.config.dropout > 0 ? dropoutSeedFor(c.seed, index) : null;
        const { logProbs, batch } = tokenLogProbsOf(model, seqs, padId, seed);
        const mask = Float64Array.from(batch.targets, (t) => (t === -1 ? 0 : 1));
        const refLogProbs = noGrad(() =>
          tidy(() => Float64Array.from(tokenLogProbsOf(reference, seqs, padId, null).logProbs.data)),
        );
        const r = grpoLoss(
          { logProbs, advantages, mask, refLogProbs },
          {
            epsilon: settings.epsilon,
            beta: settings.beta,
            lossType: settings.lossType,
            maxCompletionLength: settings.maxNewTokens,
          },
        );
        const mean = (xs: ArrayLike<number>) => Array.from(xs).reduce((a, b) => a + b, 0) / xs.length;
        return {
          loss: r.loss,
          tokens: batch.rows * batch.time,
          metrics: {
            reward: mean(rewards),
            ...(data.task ? { accuracy: mean(rewards) } : {}),
            ...(r.metrics.kl !== null ? { kl: r.metrics.kl } : {}),
            completionLength: mean(done.map((d) => d.ids.length)),
            clipFraction: r.metrics.clipFraction,
          },
        };
      },
      estimate: (model) => validate(model, Math.min(64, c.batchSize * c.evalBatches)),
      final(model, heartbeat) {
        const v = validate(model, data.val.length);
        heartbeat();
        const kl = sampledKl(
          model,
          reference,
          data.val.slice(0, KL_PROMPTS).map((p) => p.ids),
          {
            maxTokens: settings.maxNewTokens,
            stops,
            seed: c.seed,
            padId,
            vocab: tokenizer.vocabSize,
          },
        );
        return v === null ? null : { ...v, metrics: { ...v.metrics, klToReference: kl } };
      },
    },
  };
};
