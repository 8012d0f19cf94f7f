// What a run trains on and for: the part of training that differs between pretraining, supervised
// fine-tuning, preference optimisation, RL and distillation. The trainer (trainer.ts) owns everything else —
// steps, the schedule, clipping, the optimizer, checkpoints, resume, the registry, progress and signals — and
// asks an objective only for the model it starts from, the loss of one micro-batch and validation figures.
//
// Determinism: microBatch(model, index) must be a pure function of the run's seed, the batch index and the
// model's weights (randomness drawn from (seed, index), never from a stream carried between calls), so a run
// resumed from a checkpoint computes exactly what an uninterrupted run computes.
import type { Tokenizer } from "../data/index.js";
import type { Model, ModelConfig } from "../nn/index.js";
import type { Tensor } from "../tensor/index.js";
import type { LoadedCheckpoint } from "./checkpoint.js";
import type { TrainConfig } from "./config.js";

export interface MicroBatchLoss {
  /** Scalar loss of this micro-batch; the trainer divides it by gradAccum and backpropagates it. */
  loss: Tensor;
  /** Tokens the forward pass processed (for throughput and the run's token count). */
  tokens: number;
  /** Objective-specific figures (e.g. reward, accuracy), averaged over the step's micro-batches. */
  metrics?: Record<string, number>;
}

export interface Validation {
  /** Held-out loss (nats per token for language modelling), or null when the objective has none. */
  loss: number | null;
  /** Held-out tokens (or examples) it was computed on. */
  tokens: number;
  /**
   * What `loss` is when it is not a language-modelling loss (e.g. "dpo loss"): then no perplexity is
   * derived from it. Absent: nats per token.
   */
  lossName?: string;
  /** What `tokens` counts when not tokens (e.g. "pairs", "prompts"). */
  unit?: string;
  /** Objective-specific figures, e.g. accuracy on a task's held-out split. */
  metrics?: Record<string, number>;
}

export interface Objective {
  /** The loss of micro-batch `index` = step·gradAccum + micro. */
  microBatch(model: Model, index: number): MicroBatchLoss;
  /** A cheap periodic estimate (every evalInterval steps), or null for none. */
  estimate(model: Model): Validation | null;
  /** The whole held-out evaluation after the last step (`heartbeat` keeps the registry's row alive). */
  final(model: Model, heartbeat: () => void): Validation | null;
  /** One line describing what the run trains on, for the start message. */
  describe: string;
}

/** What an objective's setup hands the trainer. */
export interface TrainingSetup {
  model: Model;
  modelConfig: ModelConfig;
  tokenizer: Tokenizer;
  objective: Objective;
  /** Recorded in the run's config.json as `data`. */
  data: string;
  /** A tokenizer.json to copy into the run folder verbatim (else the tokenizer's own JSON is written). */
  tokenizerFile?: string;
  /** Tokens per optimizer step when it is fixed (pretraining), for the start message; null when it varies. */
  tokensPerStep: number | null;
}

export interface SetupContext {
  config: TrainConfig;
  runDir: string;
  /** The checkpoint a resumed run continues from (its model and tokenizer must be used), or null. */
  checkpoint: LoadedCheckpoint | null;
  /** Progress messages and warnings. */
  say: (message: string) => void;
}

/**
 * Builds a run's model, tokenizer and objective; called once per training session (fresh or resumed).
 * May be async (e.g. to import a user's reward module).
 */
export type ObjectiveSetup = (ctx: SetupContext) => TrainingSetup | Promise<TrainingSetup>;
