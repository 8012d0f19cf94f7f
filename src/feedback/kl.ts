// How far a tuned model has moved from its reference: KL(π ‖ π_ref) per completion, estimated by sampling.
// For each prompt, one completion y ~ π (temperature 1, a seed per prompt); then
//   KL ≈ mean over prompts of Σₜ [log π(yₜ | x, y<ₜ) − log π_ref(yₜ | x, y<ₜ)]
// over the completion's tokens (its end token included): an unbiased estimate of the sequence-level KL,
// the quantity DPO's and GRPO's β trade reward against.
import { decodeBatch } from "../infer/index.js";
import type { Model } from "../nn/index.js";
import { noGrad, tidy } from "../tensor/index.js";
import type { Sequence } from "./batches.js";
import { scoreSequences } from "./logprobs.js";

export interface KlOptions {
  maxTokens: number;
  stops: ReadonlySet<number>;
  seed: number;
  padId: number;
  /** Candidates for sampling: the tokenizer's vocabulary. */
  vocab: number;
  batchSize?: number;
}

/** Mean sampled KL(policy ‖ reference) in nats per completion over the prompts. */
export function sampledKl(
  policy: Model,
  reference: Model,
  prompts: readonly Int32Array[],
  opts: KlOptions,
): number {
  if (prompts.length === 0) return Number.NaN;
  const batchSize = opts.batchSize ?? 32;
  const seqs: Sequence[] = [];
  for (let i = 0; i < prompts.length; i += batchSize) {
    const batch = prompts.slice(i, i + batchSize);
    const done = noGrad(() =>
      tidy(() =>
        decodeBatch(policy, batch, {
          maxTokens: opts.maxTokens,
          stops: opts.stops,
          temperature: 1,
          seeds: batch.map((_, k) => (opts.seed + i + k) >>> 0),
          vocab: opts.vocab,
        }),
      ),
    );
    done.forEach((d, k) => {
      const completion = d.stopId === null ? d.ids : [...d.ids, d.stopId];
      const ids = [...batch[k]!, ...completion];
      const mask = new Uint8Array(ids.length).fill(1, batch[k]!.length);
      seqs.push({ ids, mask });
    });
  }
  const p = scoreSequences(policy, seqs, batchSize, opts.padId, false);
  const q = scoreSequences(reference, seqs, batchSize, opts.padId, false);
  return p.reduce((s, x, i) => s + x - q[i]!, 0) / p.length;
}
