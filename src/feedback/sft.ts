// Supervised fine-tuning: next-token cross-entropy on the trained tokens of each example only (assistant
// turns, or a prompt-completion pair's completion), averaged over the batch's trained tokens as TRL's
// SFTTrainer averages them. Rows are padded per batch (batches.ts); data comes from sources.ts.
import { z } from "zod";
import { forward, type Model } from "../nn/index.js";
import { crossEntropy, noGrad, tidy } from "../tensor/index.js";
import { dropoutSeedFor, type ObjectiveSetup, type Validation } from "../train/index.js";
import { ExampleOrder, padBatch, type Sequence } from "./batches.js";
import { sftData } from "./sources.js";
import { parseSettings, startingPoint } from "./start.js";

const int = (min: number) => z.number().int().min(min);

/** sft's own settings (the run config's objectiveConfig); every other field is train's. */
export const sftSettingsSchema = z
  .object({
    valData: z
      .string()
      .min(1)
      .optional()
      .describe("held-out examples, a JSONL file like the data (default: valFraction of the data)"),
    valFraction: z
      .number()
      .min(0)
      .lt(1)
      .default(0.05)
      .describe("share of a JSONL file's examples held out when no valData is given"),
    taskCount: int(1).default(20_000).describe("task data: training examples generated from the task"),
    taskDifficulty: int(1).optional().describe("task data: the task's difficulty (default: the task's)"),
    taskEvalCount: int(1)
      .default(200)
      .describe("task data: held-out problems scored for accuracy after the last step"),
  })
  .strict();
export type SftSettings = z.output<typeof sftSettingsSchema>;

/** Masked cross-entropy per trained token over `seqs` in batches, without gradients. */
export function maskedLoss(
  model: Model,
  seqs: readonly Sequence[],
  batchSize: number,
  padId: number,
): { loss: number; tokens: number } {
  let total = 0;
  let count = 0;
  noGrad(() => {
    for (let i = 0; i < seqs.length; i += batchSize) {
      tidy(() => {
        const b = padBatch(seqs.slice(i, i + batchSize), model.config.context, padId);
        if (b.trained === 0) return;
        const logits = forward(model, b.inputs, b.rows, b.time);
        total += crossEntropy(logits, b.targets).item() * b.trained;
        count += b.trained;
      });
    }
  });
  return { loss: count === 0 ? Number.NaN : total / count, tokens: count };
}

export const supervisedFineTuning: ObjectiveSetup = (ctx) => {
  const { config: c, say } = ctx;
  const settings = parseSettings(sftSettingsSchema, c.objectiveConfig, "sft");
  const start = startingPoint(ctx, "sft");
  const data = sftData(c, settings, start.tokenizer, say);
  const padId = start.tokenizer.eotId;
  const order = new ExampleOrder(data.train.length, c.batchSize, c.seed);
  const estimateSet = data.val.slice(0, c.batchSize * c.evalBatches);
  const context = start.modelConfig.context;
  let truncatedWarned = false;
  const validate = (model: Model, seqs: readonly Sequence[]): Validation | null =>
    seqs.length === 0 ? null : maskedLoss(model, seqs, c.batchSize, padId);
  return {
    ...start,
    data: data.describe,
    tokensPerStep: null,
    objective: {
      describe: `supervised fine-tuning on ${data.describe} (${data.train.length} examples, ${data.val.length} held out)`,
      microBatch(model, index) {
        const b = padBatch(
          order.batch(index).map((i) => data.train[i]!),
          context,
          padId,
        );
        if (b.truncated > 0 && !truncatedWarned) {
          truncatedWarned = true;
          say(`sft: warning: examples longer than the context (${context} tokens) are cut to it`);
        }
        const dropoutSeed = model.config.dropout > 0 ? dropoutSeedFor(c.seed, index) : null;
        const logits = forward(model, b.inputs, b.rows, b.time, { dropoutSeed });
        return { loss: crossEntropy(logits, b.targets), tokens: b.rows * b.time };
      },
      estimate: (model) => validate(model, estimateSet),
      final(model, heartbeat) {
        const v = validate(model, data.val);
        heartbeat();
        const accuracy = data.score ? data.score(model, start.tokenizer) : null;
        if (!accuracy) return v;
        return { loss: v?.loss ?? null, tokens: v?.tokens ?? 0, metrics: accuracy };
      },
    },
  };
};
