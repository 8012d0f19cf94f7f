// Peak memory of one training step, as a function of the config — what the buffer pool will hold at
// the top of the backward pass. Derived from what each op keeps alive until the step's tidy() ends
// (its output) plus what it saves for backward; checked against the pool in test/nn.memory.test.ts.
import { blockParts, headDim, isGated, type ModelConfig, mlpHidden } from "./config.js";
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
  const r = blockParts(c);
  const ln = r.norm === "layernorm";
  const b = r.bias ? 2 : 1; // a biased linear keeps both the product and the sum
  const stats = ln ? 2 : 1; // LayerNorm keeps mean and rstd per row, RMSNorm rstd
  const rope = r.positions === "rope";
  // d each: x, attention norm, attention out, residual, MLP norm; q, o_proj, down_proj (×b); with rope the
  // rotated q, with QK-norm the normed q. Attention-only blocks (mlp none) lack the MLP norm, residual and
  // down_proj.
  const mlp = r.mlp !== "none";
  const dTerms = (mlp ? 5 : 3) * d + (mlp ? 3 : 2) * b * d + (rope ? d : 0) + (r.qkNorm ? d : 0);
  // kv each: k, v (×b); rotated k; normed k.
  const kvTerms = 2 * b * kv + (rope ? kv : 0) + (r.qkNorm ? kv : 0);
  // f each: gate and up (×b) and swiglu, or up (×b) and the activation.
  const fTerms = isGated(r.mlp) ? 2 * b * f + f : b * f + f;
  // two norms' statistics, the attention's lse per head, QK-norm's rstd per query and key head.
  const rowTerms = (mlp ? 2 : 1) * stats + H + (r.qkNorm ? H + c.kvHeads : 0);
  const perLayer = N * (dTerms + kvTerms + fTerms + rowTerms);
  // the token embedding is layer 0's x (with learned positions: the two lookups, and their sum is layer
  // 0's x); the last residual, the final norm and its statistics, the logits (and the soft-capped logits),
  // the loss's lse.
  const outside =
    N * ((r.positions === "learned" ? 2 * d : 0) + 2 * d + stats + c.vocab * (r.softcap > 0 ? 2 : 1) + 1);
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
