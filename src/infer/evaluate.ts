// Held-out evaluation: mean loss (nats per token), perplexity and bits per byte over deterministic,
// non-overlapping windows (evalBatches: every target token is predicted exactly once).
//
// Bits per byte makes models with different tokenizers comparable: the total loss in bits divided by
// the UTF-8 bytes the predicted tokens stand for, bpb = Σ nats / (ln 2 · Σ bytes(target)). Special tokens
// (<|endoftext|>) have no bytes of text: their loss counts, their bytes are 0, matching the split's byte
// count in dataset.json (text without separators).
import { evalBatches } from "../data/sampler.js";
import type { TokenArray } from "../data/shards.js";
import type { Tokenizer } from "../data/tokenizer.js";
import { forward, type Model } from "../nn/index.js";
import { crossEntropy, noGrad, tidy } from "../tensor/index.js";

/** Windows per forward pass of `afterscale eval`, and of the trainer's final evaluation (same figures). */
export const DEFAULT_EVAL_BATCH_SIZE = 8;

export interface EvaluateOptions {
  /** Windows per forward pass (integer ≥ 1). */
  batchSize: number;
  /** Tokens per window (1 … the model's context). */
  context: number;
  /** Evaluate only the first this many batches (default: all). */
  maxBatches?: number;
  /** Called after each batch with (batches done, batches in total). */
  onBatch?: (done: number, total: number) => void;
}

export interface EvaluateResult {
  /** Mean cross-entropy in nats per predicted token. */
  loss: number;
  /** exp(loss). */
  perplexity: number;
  /** Σ nats / (ln 2 · Σ bytes); NaN if the predicted tokens have no bytes at all. */
  bitsPerByte: number;
  /** Predicted (target) tokens. */
  tokens: number;
  /** UTF-8 bytes of the predicted tokens. */
  bytes: number;
  batches: number;
}

/** UTF-8 byte length of every token id (0 for special tokens). */
export function tokenByteLengths(tokenizer: Tokenizer): Int32Array {
  const lengths = new Int32Array(tokenizer.vocabSize);
  for (let id = 0; id < lengths.length; id++) lengths[id] = tokenizer.bytesOf(id)?.length ?? 0;
  return lengths;
}

/** Number of evaluation windows evalBatches makes from these token arrays. */
function countWindows(shards: readonly TokenArray[], context: number): number {
  let n = 0;
  for (const s of shards) if (s.length >= context + 1) n += Math.floor((s.length - 1) / context);
  return n;
}

export function evaluate(
  model: Model,
  tokens: TokenArray | readonly TokenArray[],
  tokenizer: Tokenizer,
  opts: EvaluateOptions,
): EvaluateResult {
  const { batchSize, context } = opts;
  const maxBatches = opts.maxBatches ?? Infinity;
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new Error(`batchSize must be an integer ≥ 1, got ${batchSize}`);
  if (!Number.isInteger(context) || context < 1 || context > model.config.context)
    throw new Error(
      `context must be an integer in [1, ${model.config.context}] (the model's), got ${context}`,
    );
  if (maxBatches !== Infinity && (!Number.isInteger(maxBatches) || maxBatches < 1))
    throw new Error(`maxBatches must be an integer ≥ 1, got ${maxBatches}`);
  if (tokenizer.vocabSize > model.config.vocab)
    throw new Error(
      `the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${model.config.vocab}`,
    );
  const shards: readonly TokenArray[] = Array.isArray(tokens) ? tokens : [tokens as TokenArray];
  const windows = countWindows(shards, context);
  if (windows === 0) {
    const longest = Math.max(0, ...shards.map((s) => s.length));
    throw new Error(
      `the evaluation data (${longest} tokens at most per shard) is too short for context ${context}`,
    );
  }
  const total = Math.min(Math.ceil(windows / batchSize), maxBatches);
  const byteLengths = tokenByteLengths(tokenizer);

  let nats = 0;
  let count = 0;
  let bytes = 0;
  let batches = 0;
  for (const batch of evalBatches(shards, batchSize, context, maxBatches)) {
    const n = batch.rows * context;
    for (let i = 0; i < n; i++) {
      const t = batch.targets[i]!;
      if (t >= byteLengths.length)
        throw new Error(`token id ${t} in the evaluation data is outside the tokenizer's vocabulary`);
      bytes += byteLengths[t]!;
    }
    // crossEntropy is the mean over the batch's tokens; times n gives this batch's total nats.
    const mean = noGrad(() =>
      tidy(() => crossEntropy(forward(model, batch.inputs, batch.rows, context), batch.targets).item()),
    );
    nats += mean * n;
    count += n;
    batches++;
    opts.onBatch?.(batches, total);
  }
  const loss = nats / count;
  return {
    loss,
    perplexity: Math.exp(loss),
    bitsPerByte: bytes > 0 ? nats / (Math.LN2 * bytes) : Number.NaN,
    tokens: count,
    bytes,
    batches,
  };
}
