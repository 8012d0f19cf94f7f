// Direct preference optimisation and its family (losses.ts): the policy learns to raise the chosen
// completion's log-probability over the rejected one's, relative to a frozen reference (the starting
// model). The reference's log-probs never change, so they are computed once, when the run starts, and kept
// in the run folder (reference-logprobs.json): a resumed run reads them instead of loading the reference.
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { chatStopIds } from "../data/index.js";
import { writeFileAtomic } from "../io/safetensors.js";
import type { Model } from "../nn/index.js";
import { noGrad, tidy } from "../tensor/index.js";
import { dropoutSeedFor, type ObjectiveSetup, type Validation } from "../train/index.js";
import { ExampleOrder, type Sequence } from "./batches.js";
import { sampledKl } from "./kl.js";
import { scoreSequences, sequenceBatchLogProbs } from "./logprobs.js";
import { DPO_LOSS_TYPES, dpoLoss } from "./losses.js";
import { type PreferencePair, preferenceData } from "./sources.js";
import { initModel, parseSettings, startingPoint } from "./start.js";

const int = (min: number) => z.number().int().min(min);

export const REFERENCE_FILE = "reference-logprobs.json";
/** Held-out prompts the final evaluation samples KL(π ‖ π_ref) on. */
export const KL_PROMPTS = 64;

/** Tokens before a sequence's first trained one: its prompt. */
function promptLength(s: Sequence): number {
  for (let i = 0; i < s.ids.length; i++) if (s.mask[i]) return i;
  return s.ids.length;
}

export const dpoSettingsSchema = z
  .object({
    loss: z
      .enum(DPO_LOSS_TYPES)
      .default("sigmoid")
      .describe("sigmoid (DPO), ipo, hinge (SLiC) or robust (rDPO)"),
    beta: z.number().positive().default(0.1).describe("β: how far the policy may move from the reference"),
    labelSmoothing: z
      .number()
      .min(0)
      .lt(0.5)
      .default(0)
      .describe("ε: the assumed share of flipped preference labels (sigmoid: cDPO, robust: rDPO)"),
    valData: z.string().min(1).optional().describe("held-out pairs, a JSONL file like the data"),
    valFraction: z
      .number()
      .min(0)
      .lt(1)
      .default(0.05)
      .describe("share of a file's pairs held out without valData"),
    taskCount: int(1)
      .default(2000)
      .describe("task data: preference pairs generated (chosen right, rejected wrong)"),
    taskDifficulty: int(1).optional().describe("task data: the task's difficulty (default: the task's)"),
    taskEvalCount: int(1)
      .default(200)
      .describe("task data: held-out problems scored for accuracy at the end"),
  })
  .strict();
export type DpoSettings = z.output<typeof dpoSettingsSchema>;

interface ReferenceLogProbs {
  average: boolean;
  train: { chosen: number[]; rejected: number[] };
  val: { chosen: number[]; rejected: number[] };
}

function referenceLogProbs(
  path: string,
  pairs: { train: PreferencePair[]; val: PreferencePair[] },
  compute: () => ReferenceLogProbs,
  say: (m: string) => void,
): ReferenceLogProbs {
  if (existsSync(path)) {
    const saved = JSON.parse(readFileSync(path, "utf8")) as ReferenceLogProbs;
    if (saved.train.chosen.length !== pairs.train.length || saved.val.chosen.length !== pairs.val.length) {
      throw new Error(
        `${path} holds reference log-probs of ${saved.train.chosen.length} + ${saved.val.chosen.length} pairs, the data has ${pairs.train.length} + ${pairs.val.length}: the data changed since the run started`,
      );
    }
    return saved;
  }
  const t0 = performance.now();
  const r = compute();
  writeFileAtomic(path, `${JSON.stringify(r)}\n`);
  say(
    `dpo: reference log-probs of ${pairs.train.length + pairs.val.length} pairs computed once (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
  return r;
}

export const directPreferenceOptimisation: ObjectiveSetup = (ctx) => {
  const { config: c, runDir, say } = ctx;
  const settings = parseSettings(dpoSettingsSchema, c.objectiveConfig, "dpo");
  const start = startingPoint(ctx, "dpo");
  const padId = start.tokenizer.eotId;
  const data = preferenceData(c, settings, start.tokenizer, say);
  const average = settings.loss === "ipo"; // TRL scores IPO on length-averaged log-probs
  mkdirSync(runDir, { recursive: true });
  const ref = referenceLogProbs(
    join(runDir, REFERENCE_FILE),
    data,
    () => {
      // A resumed run reads the file; only a fresh run gets here, and its starting model is the reference.
      const reference = ctx.checkpoint ? initModel(ctx, "dpo").model : start.model;
      const score = (pairs: PreferencePair[]) => ({
        chosen: scoreSequences(
          reference,
          pairs.map((p) => p.chosen),
          c.batchSize,
          padId,
          average,
        ),
        rejected: scoreSequences(
          reference,
          pairs.map((p) => p.rejected),
          c.batchSize,
          padId,
          average,
        ),
      });
      return { average, train: score(data.train), val: score(data.val) };
    },
    say,
  );
  const options = { type: settings.loss, beta: settings.beta, labelSmoothing: settings.labelSmoothing };
  const order = new ExampleOrder(data.train.length, c.batchSize, c.seed);

  /** log π of one side (chosen or rejected) of each pair, [pairs]. */
  const sideLogProbs = (
    model: Model,
    pairs: PreferencePair[],
    side: "chosen" | "rejected",
    seed: number | null,
  ) =>
    sequenceBatchLogProbs(
      model,
      pairs.map((p) => p[side]),
      padId,
      average,
      seed,
    );

  /** DPO loss and metrics over held-out pairs, batch by batch, weighted by pairs. */
  const validate = (model: Model, count: number): Validation | null => {
    const n = Math.min(count, data.val.length);
    if (n === 0) return null;
    const sums: Record<string, number> = {};
    let loss = 0;
    noGrad(() => {
      for (let i = 0; i < n; i += c.batchSize) {
        tidy(() => {
          const pairs = data.val.slice(i, Math.min(n, i + c.batchSize));
          const r = dpoLoss(
            sideLogProbs(model, pairs, "chosen", null),
            sideLogProbs(model, pairs, "rejected", null),
            ref.val.chosen.slice(i, i + pairs.length),
            ref.val.rejected.slice(i, i + pairs.length),
            options,
          );
          loss += r.loss.item() * pairs.length;
          for (const [k, x] of Object.entries(r.metrics)) sums[k] = (sums[k] ?? 0) + x * pairs.length;
        });
      }
    });
    const metrics = Object.fromEntries(Object.entries(sums).map(([k, x]) => [k, x / n]));
    return { loss: loss / n, tokens: n, lossName: `${settings.loss} loss`, unit: "pairs", metrics };
  };

  /** KL(π ‖ π_ref) per completion, sampled on up to KL_PROMPTS held-out prompts. */
  const heldOutKl = (model: Model): Record<string, number> => {
    const pairs = data.val.slice(0, KL_PROMPTS);
    if (pairs.length === 0) return {};
    const prompts = pairs.map((p) => Int32Array.from(p.chosen.ids.slice(0, promptLength(p.chosen))));
    const longest = Math.max(...pairs.map((p) => p.chosen.ids.length - promptLength(p.chosen)));
    const reference = initModel(ctx, "dpo").model;
    const stops = chatStopIds(start.tokenizer);
    const kl = sampledKl(model, reference, prompts, {
      maxTokens: longest + 8,
      stops,
      seed: c.seed,
      padId,
      vocab: start.tokenizer.vocabSize,
    });
    return { klToReference: kl };
  };

  return {
    ...start,
    data: data.describe,
    tokensPerStep: null,
    objective: {
      describe: `${settings.loss} preference optimisation (β ${settings.beta}) on ${data.describe} (${data.train.length} pairs, ${data.val.length} held out)`,
      microBatch(model, index) {
        const which = order.batch(index);
        const pairs = which.map((i) => data.train[i]!);
        const seed = model.config.dropout > 0 ? dropoutSeedFor(c.seed, index) : null;
        const r = dpoLoss(
          sideLogProbs(model, pairs, "chosen", seed),
          sideLogProbs(model, pairs, "rejected", seed),
          which.map((i) => ref.train.chosen[i]!),
          which.map((i) => ref.train.rejected[i]!),
          options,
        );
        const tokens = pairs.reduce((n, p) => n + p.chosen.ids.length + p.rejected.ids.length, 0);
        return { loss: r.loss, tokens, metrics: { ...r.metrics } };
      },
      estimate: (model) => validate(model, c.batchSize * c.evalBatches),
      final(model, heartbeat) {
        const v = validate(model, data.val.length);
        heartbeat();
        const accuracy = data.score ? data.score(model, start.tokenizer) : {};
        heartbeat();
        const kl = heldOutKl(model);
        return v === null && !data.score
          ? null
          : {
              ...v,
              loss: v?.loss ?? null,
              tokens: v?.tokens ?? 0,
              metrics: { ...v?.metrics, ...accuracy, ...kl },
            };
      },
    },
  };
};
