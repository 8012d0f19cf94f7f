// Peak memory of one training step, as a function of the config — what the buffer pool will hold at
// the top of the backward pass. Derived from what each op keeps alive until the step's tidy() ends
// (its output) plus what it saves for backward; checked against the pool in test/nn.memory.test.ts.
import { headDim, type ModelConfig, mlpHidden } from "./config.js";
import { parameterCounts } from "./model.js";

export interface StepMemory {
  /** Float32 activations alive at the end of the forward pass. */
  activationBytes: number;
  /** The gradient of the logits, the largest transient of the backward pass (freed before most parameter gradients exist). */
  logitGradBytes: number;
  /** Parameter gradients (all parameters). */
  gradBytes: number;
  /** Weights plus AdamW's two moments (outside the pool). */
  weightAndOptimizerBytes: number;
  /** An upper bound of the step's peak: everything above at once. */
  total: number;
}

/** N = batch·context tokens per micro-batch. */
export function trainingStepMemory(c: ModelConfig, batch: number, context = c.context): StepMemory {
  const N = batch * context;
  const d = c.dModel;
  const f = mlpHidden(c);
  const H = c.heads;
  const kv = c.kvHeads * headDim(c);
  let perLayer: number;
  let outside: number;
  if (c.family === "llama") {
    // x, norm, q, rotated q, attention out, o_proj, residual, norm, down_proj (d each); k, v, rotated k
    // (kv each); gate, up, swiglu (f each); two rstd rows and the lse of H heads.
    perLayer = N * (9 * d + 3 * kv + 3 * f + 2 + H);
    // embedding output is layer 0's x; the last residual, final norm (+rstd), logits, the loss's lse.
    outside = N * (d + d + 1 + c.vocab + 1);
  } else {
    // Biased linears keep both the product and the sum: q, k, v, c_proj, mlp c_proj (2·d each), c_fc (2·f);
    // x, ln_1, attention out, residual, ln_2 (d each); gelu (f); mean+rstd of two LayerNorms; lse.
    perLayer = N * (15 * d + 3 * f + 4 + H);
    outside = N * (2 * d + d + d + 2 + c.vocab + 1);
  }
  const activationBytes = 4 * (c.layers * perLayer + outside);
  const P = parameterCounts(c).total;
  const logitGradBytes = 4 * N * c.vocab;
  const gradBytes = 4 * P;
  const weightAndOptimizerBytes = 12 * P;
  return {
    activationBytes,
    logitGradBytes,
    gradBytes,
    weightAndOptimizerBytes,
    total: activationBytes + logitGradBytes + gradBytes + weightAndOptimizerBytes,
  };
}
