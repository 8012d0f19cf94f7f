// Distillation as an objective of the one training loop: a student (a preset or config, trained from its
// seed-initialised weights like `train`) learns from a frozen teacher on the same token batches as
// pretraining, with the loss of losses.ts. Everything the trainer does for `train` (checkpoints, resume,
// the registry, progress, --json) holds; validation is the student's held-out next-token loss, scored like
// pretraining's so the two are directly comparable.
//
// Per micro-batch `index` (all of it a pure function of the seed, the index and the weights):
//   - data: batchAt(train, seed, index), or with the top-k cache batch index mod epochBatches (epochs repeat);
//   - on-policy (GKD): with probability onPolicy (drawn from (seed, index)) the micro-batch's rows keep their
//     first onPolicyPrompt tokens and the student samples the rest (temperature 1, a seed per row); the
//     divergence covers every position, the hard loss only the data's own next tokens;
//   - the teacher: its logits on the same inputs, or its top-k (cached on disk with teacherCache "topk").
import { z } from "zod";
import { batchAt, type TokenArray } from "../data/index.js";
import { decodeBatch } from "../infer/index.js";
import { createModel, forward, type Model } from "../nn/index.js";
import { noGrad, type TeacherTarget, tidy } from "../tensor/index.js";
import {
  dropoutSeedFor,
  loadModel,
  modelConfigFor,
  modelFromCheckpoint,
  type ObjectiveSetup,
  openTrainingData,
  runTraining,
  splitValidation,
  type TrainConfigInput,
  type TrainOptions,
  type TrainResult,
  tokensPerStep,
} from "../train/index.js";
import { betaOf, DIVERGENCES, distillationLoss } from "./losses.js";
import { TopKCache, topKLogProbs } from "./teacher-cache.js";

const int = (min: number) => z.number().int().min(min);

/** distill's own settings (the run config's objectiveConfig); every other field is train's. */
export const distillSettingsSchema = z
  .object({
    teacher: z
      .string()
      .min(1)
      .describe("the teacher: a run name or folder, Hugging Face folder or GGUF file"),
    alpha: z
      .number()
      .min(0)
      .max(1)
      .default(0.5)
      .describe("weight of the hard-label cross-entropy; the divergence gets 1 − alpha (times T²)"),
    temperature: z
      .number()
      .positive()
      .default(1)
      .describe("softmax temperature of teacher and student in the divergence"),
    divergence: z
      .enum(DIVERGENCES)
      .default("forward-kl")
      .describe(
        "forward-kl KL(teacher‖student), reverse-kl KL(student‖teacher), or jsd: GKD's generalised JSD(beta)",
      ),
    beta: z
      .number()
      .gt(0)
      .lt(1)
      .default(0.5)
      .describe("jsd: the mixture weight β (→0 forward KL, →1 reverse KL), as TRL's GKDTrainer"),
    onPolicy: z
      .number()
      .min(0)
      .max(1)
      .default(0)
      .describe("share of micro-batches whose continuations the student samples itself (GKD's λ)"),
    onPolicyPrompt: int(1)
      .optional()
      .describe("on-policy: data tokens kept as the prompt of each row (default: half the context)"),
    teacherCache: z
      .enum(["none", "topk"])
      .default("none")
      .describe(
        "none: teacher logits on the fly; topk: the teacher's top-k written to the run folder in the first epoch, read back after",
      ),
    topK: int(1).default(32).describe("topk cache: tokens kept per position"),
    epochBatches: int(1)
      .optional()
      .describe(
        "topk cache: micro-batches per epoch (default: the training split's tokens / tokens per micro-batch)",
      ),
  })
  .strict();
export type DistillSettings = z.output<typeof distillSettingsSchema>;

export function parseDistillSettings(raw: unknown): DistillSettings {
  const r = distillSettingsSchema.safeParse(raw ?? {});
  if (!r.success) throw new Error(`distill: ${z.prettifyError(r.error).replace(/\n/g, "; ")}`);
  return r.data;
}

/** A uniform number in [0, 1) from (seed, index, salt). */
function uniformAt(seed: number, index: number, salt: number): number {
  return dropoutSeedFor((seed ^ salt) >>> 0, index) / 2 ** 32;
}

const ON_POLICY_SALT = 0x6f6e706f;
const ROLLOUT_SALT = 0x726f6c6c;

/**
 * The student's continuation of each row's first `prompt` tokens (temperature 1, a seed per row) as the
 * new inputs; targets keep the data's next tokens inside the prompt and are -1 (no hard loss) after it.
 */
function studentRollout(
  model: Model,
  inputs: Int32Array,
  targets: Int32Array,
  rows: number,
  context: number,
  prompt: number,
  seed: number,
  vocab: number,
): { inputs: Int32Array; targets: Int32Array } {
  const prompts = Array.from({ length: rows }, (_, r) => inputs.slice(r * context, r * context + prompt));
  const done = decodeBatch(model, prompts, {
    maxTokens: context - prompt,
    stops: new Set(),
    temperature: 1,
    seeds: prompts.map((_, r) => (seed + r) >>> 0),
    vocab,
  });
  const outInputs = new Int32Array(rows * context);
  const outTargets = new Int32Array(rows * context).fill(-1);
  for (let r = 0; r < rows; r++) {
    const ids = done[r]!.ids;
    if (ids.length !== context - prompt)
      throw new Error(
        `distill: on-policy row ${r} got ${ids.length} sampled tokens, expected ${context - prompt}`,
      );
    outInputs.set(prompts[r]!, r * context);
    outInputs.set(ids, r * context + prompt);
    outTargets.set(targets.subarray(r * context, r * context + prompt - 1), r * context);
  }
  return { inputs: outInputs, targets: outTargets };
}

export const distillation: ObjectiveSetup = ({ config: c, runDir, checkpoint: ckpt, say }) => {
  const s = parseDistillSettings(c.objectiveConfig);
  const data = openTrainingData(c, say);
  const teacher = loadModel(s.teacher, { root: c.root, warn: say });
  if (teacher.tokenizer.hash !== data.tokenizer.hash) {
    const theirs = teacher.trainConfig
      ? ` (it was trained on ${teacher.trainConfig.data}, vocab ${teacher.trainConfig.vocab})`
      : "";
    throw new Error(
      `distill: the teacher ${s.teacher} and the data ${data.dir} use different tokenizers ` +
        `(${teacher.tokenizer.hash.slice(0, 12)} with ${teacher.tokenizer.vocabSize} tokens vs ${data.tokenizer.hash.slice(0, 12)} with ${data.tokenizer.vocabSize}); ` +
        `teacher and student must share one: give --data the teacher's dataset${theirs}`,
    );
  }
  const vocab = data.tokenizer.vocabSize;
  const tv = teacher.model.config;
  if (tv.vocab < vocab)
    throw new Error(
      `distill: the teacher's output has ${tv.vocab} tokens, fewer than its tokenizer's ${vocab}`,
    );
  if (tv.context < c.context)
    throw new Error(
      `distill: the teacher's context is ${tv.context} tokens, shorter than the run's ${c.context}`,
    );
  const prompt = s.onPolicyPrompt ?? Math.floor(c.context / 2);
  if (s.onPolicy > 0 && prompt >= c.context)
    throw new Error(`distill: onPolicyPrompt (${prompt}) must be shorter than the context (${c.context})`);
  const modelConfig = ckpt ? ckpt.state.modelConfig : modelConfigFor(c, vocab);
  const model = ckpt ? modelFromCheckpoint(ckpt) : createModel(modelConfig, c.seed);
  const student = modelConfig.vocab;

  const trainTokens = (data.train as TokenArray[]).reduce((n, t) => n + t.length, 0);
  const epochBatches = s.epochBatches ?? Math.max(1, Math.floor(trainTokens / (c.batchSize * c.context)));
  const cache =
    s.teacherCache === "topk"
      ? new TopKCache(runDir, {
          teacher: s.teacher,
          tokenizerHash: data.tokenizer.hash,
          k: s.topK,
          rows: c.batchSize * c.context,
          context: c.context,
          seed: c.seed,
          epochBatches,
        })
      : null;
  if (cache && s.topK > student)
    throw new Error(`distill: topK (${s.topK}) exceeds the vocabulary (${student})`);
  const beta = betaOf(s.divergence, s.beta);

  const validation = splitValidation(c, data, say);

  /** The teacher's logits on inputs [rows × context] (no gradient). */
  const teacherLogits = (inputs: Int32Array) =>
    noGrad(() => forward(teacher.model, inputs, c.batchSize, c.context));
  const topKOf = (inputs: Int32Array) =>
    tidy(() => topKLogProbs(teacherLogits(inputs).data, c.batchSize * c.context, tv.vocab, student, s.topK));

  const what = s.divergence === "jsd" ? `jsd(β=${s.beta})` : s.divergence;
  return {
    model,
    modelConfig,
    tokenizer: data.tokenizer,
    data: data.dir,
    tokenizerFile: `${data.dir}/tokenizer.json`,
    tokensPerStep: tokensPerStep(c),
    objective: {
      describe:
        `distilling ${s.teacher} into the student on ${data.dir}: α ${s.alpha}, ${what}, T ${s.temperature}` +
        `${s.onPolicy > 0 ? `, on-policy ${s.onPolicy}` : ""}${cache ? `, teacher top-${s.topK} cached in ${cache.dir} (epoch ${epochBatches} micro-batches)` : ""}`,
      microBatch(m, index) {
        const dataIndex = cache ? index % epochBatches : index;
        const b = batchAt(data.train, c.batchSize, c.context, c.seed, dataIndex);
        const onPolicy = s.onPolicy > 0 && uniformAt(c.seed, index, ON_POLICY_SALT) < s.onPolicy;
        const { inputs, targets } = onPolicy
          ? studentRollout(
              m,
              b.inputs,
              b.targets,
              c.batchSize,
              c.context,
              prompt,
              dropoutSeedFor((c.seed ^ ROLLOUT_SALT) >>> 0, index),
              student,
            )
          : b;
        let target: TeacherTarget;
        if (cache) {
          // Rollouts are new sequences each time: their top-k is computed, never cached.
          let t = onPolicy ? null : cache.get(dataIndex);
          if (t === null) {
            t = topKOf(inputs);
            if (!onPolicy) cache.put(dataIndex, t);
          }
          target = { kind: "topk", ids: t.ids, logProbs: t.logProbs, k: t.k };
        } else {
          target = { kind: "logits", logits: teacherLogits(inputs).data, stride: tv.vocab };
        }
        const dropoutSeed = m.config.dropout > 0 ? dropoutSeedFor(c.seed, index) : null;
        const logits = forward(m, inputs, c.batchSize, c.context, { dropoutSeed });
        const r = distillationLoss(logits, targets, target, {
          alpha: s.alpha,
          beta,
          temperature: s.temperature,
        });
        return {
          loss: r.loss,
          tokens: c.batchSize * c.context,
          metrics: { hardLoss: r.hard, divergence: r.divergence, onPolicy: onPolicy ? 1 : 0 },
        };
      },
      ...validation,
    },
  };
};

/**
 * Trains (or with options.resume, continues) a distillation run: `objectiveConfig` holds the settings
 * (teacher, alpha, temperature, divergence, …); the student's shape and the data are train's fields.
 */
export function distill(input: TrainConfigInput, options: TrainOptions = {}): Promise<TrainResult> {
  return runTraining("distill", distillation, input, options);
}
