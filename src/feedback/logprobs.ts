// Sequence log-probabilities of padded batches: log π(completion | prompt) for every sequence, the masked
// tokens summed (or averaged, as TRL scores IPO). Shared by DPO's policy and reference and by the KL estimate.
import { forward, type Model } from "../nn/index.js";
import { noGrad, type Tensor, tidy } from "../tensor/index.js";
import { padBatch, type Sequence } from "./batches.js";
import { sequenceLogProbs } from "./losses.js";

/** log π(completion | prompt) of each sequence, without gradients, in batches. */
export function scoreSequences(
  model: Model,
  seqs: readonly Sequence[],
  batchSize: number,
  padId: number,
  average: boolean,
) {
  const out: number[] = [];
  noGrad(() => {
    for (let i = 0; i < seqs.length; i += batchSize) {
      tidy(() => {
        const lp = sequenceBatchLogProbs(model, seqs.slice(i, i + batchSize), padId, average, null);
        out.push(...Array.from(lp.data));
      });
    }
  });
  return out;
}

export function sequenceBatchLogProbs(
  model: Model,
  seqs: readonly Sequence[],
  padId: number,
  average: boolean,
  dropoutSeed: number | null,
): Tensor {
  const b = padBatch(seqs, model.config.context, padId);
  const logits = forward(model, b.inputs, b.rows, b.time, { dropoutSeed });
  return sequenceLogProbs(logits, b.targets, { average });
}
