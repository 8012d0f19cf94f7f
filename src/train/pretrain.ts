// Pretraining: next-token cross-entropy on a prepared token dataset. Batch `index` is batchAt(train, seed,
// index), dropout masks are seeded by (seed, index). Validation: every evalInterval steps an estimate on
// the first evalBatches batches of the validation split; after the last step the whole split, scored by
// infer's evaluate() exactly as `afterscale eval` scores it, so the two agree on the final checkpoint.
import { join } from "node:path";
import { type Batch, batchAt, evalBatches, type OpenDataset } from "../data/index.js";
import { DEFAULT_EVAL_BATCH_SIZE, evaluate } from "../infer/evaluate.js";
import { createModel, forward, type Model } from "../nn/index.js";
import { crossEntropy, noGrad, tidy } from "../tensor/index.js";
import { modelFromCheckpoint } from "./checkpoint.js";
import { modelConfigFor, type TrainConfig, tokensPerStep } from "./config.js";
import { openTrainingData } from "./data.js";
import type { Objective, ObjectiveSetup } from "./objective.js";

function mix32(x: number): number {
  let z = x >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** The dropout seed of one micro-batch: a pure function of (seed, batch index). */
export function dropoutSeedFor(seed: number, batchIndex: number): number {
  return mix32(mix32(seed ^ 0x5bd1e995) ^ mix32(batchIndex + 0x68e31da4) ^ Math.floor(batchIndex / 2 ** 32));
}

/** Mean loss over fixed validation batches (each token predicted once), without gradients. */
export function evaluateLoss(model: Model, batches: Batch[]): number {
  let total = 0;
  let count = 0;
  noGrad(() => {
    for (const b of batches) {
      tidy(() => {
        const logits = forward(model, b.inputs, b.rows, b.context);
        const n = b.rows * b.context;
        total += crossEntropy(logits, b.targets).item() * n;
        count += n;
      });
    }
  });
  return count === 0 ? Number.NaN : total / count;
}

/**
 * Validation on a prepared dataset's validation split, for every objective that trains on one: an estimate
 * on its first evalBatches batches, and after the last step the whole split, scored as `afterscale eval` does.
 */
export function splitValidation(
  c: TrainConfig,
  data: OpenDataset,
  say: (m: string) => void,
): Pick<Objective, "estimate" | "final"> {
  const evalSet = [...evalBatches(data.val, c.batchSize, c.context, c.evalBatches)];
  if (evalSet.length === 0) {
    say(`afterscale: warning: the validation split is too short for context ${c.context}; no evaluation`);
  }
  const estimateTokens = evalSet.reduce((n, b) => n + b.rows * b.context, 0);
  return {
    estimate: (m) =>
      evalSet.length === 0 ? null : { loss: evaluateLoss(m, evalSet), tokens: estimateTokens },
    final(m, heartbeat) {
      if (evalSet.length === 0) return null;
      const r = evaluate(m, data.val, data.tokenizer, {
        batchSize: DEFAULT_EVAL_BATCH_SIZE,
        context: m.config.context,
        onBatch: () => heartbeat(),
      });
      return { loss: r.loss, tokens: r.tokens, metrics: { bitsPerByte: r.bitsPerByte } };
    },
  };
}

export const pretraining: ObjectiveSetup = ({ config: c, checkpoint: ckpt, say }) => {
  const data = openTrainingData(c, say);
  const modelConfig = ckpt ? ckpt.state.modelConfig : modelConfigFor(c, data.meta.vocabSize);
  const model = ckpt ? modelFromCheckpoint(ckpt) : createModel(modelConfig, c.seed);
  const validation = splitValidation(c, data, say);
  return {
    model,
    modelConfig,
    tokenizer: data.tokenizer,
    data: data.dir,
    tokenizerFile: join(data.dir, "tokenizer.json"),
    tokensPerStep: tokensPerStep(c),
    objective: {
      describe: `next-token prediction on ${data.dir}`,
      microBatch(m, index) {
        const b = batchAt(data.train, c.batchSize, c.context, c.seed, index);
        const dropoutSeed = m.config.dropout > 0 ? dropoutSeedFor(c.seed, index) : null;
        const logits = forward(m, b.inputs, c.batchSize, c.context, { dropoutSeed });
        return { loss: crossEntropy(logits, b.targets), tokens: c.batchSize * c.context };
      },
      ...validation,
    },
  };
};
