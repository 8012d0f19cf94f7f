// Peak memory of one training step, as a function of the config — what the buffer pool will hold at
// the top of the backward pass. Derived from what the forward pass keeps: what a backward reads (the decoder
// gives back the rest as it goes, releaseStorage), in bf16 where backward reads it only rounded to bf16;
// checked against the pool in test/nn.memory.test.ts.
import type { Precision } from "../tensor/index.js";
import { blockParts, headDim, isGated, type ModelConfig, mlpHidden } from "./config.js";
import { parameterCounts } from "./model.js";

export interface StepMemory {
  /** Activations alive at the end of the forward pass (float32, and bf16 copies under bf16-mixed). */
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
export function trainingStepMemory(
  c: ModelConfig,
  batch: number,
  context = c.context,
  precision: Precision = "fp32",
): StepMemory {
  const N = batch * context;
  const d = c.dModel;
  const f = mlpHidden(c);
  const H = c.heads;
  const kv = c.kvHeads * headDim(c);
  const r = blockParts(c);
  const stats = r.norm === "layernorm" ? 2 : 1; // LayerNorm keeps mean and rstd per row, RMSNorm rstd
  const mlp = r.mlp !== "none";
  const qk = r.qkNorm ? 2 : 1;
  // Kept in float32, per layer: the block input x (its norm reads it), the attention's q and k (its
  // rotated copies with rope; with QK-norm also the unnormed ones, which the head norm reads) and v, the
  // attention output (its backward reads it), the mid-block residual, the MLP's gate and up (or its
  // input), two norms' statistics, the attention's lse per head, QK-norm's rstd per query and key head.
  // Attention-only blocks (mlp none) lack the MLP and its norm; their residual is the next block's x.
  const full =
    (mlp ? 3 : 2) * d +
    qk * (d + kv) +
    kv +
    (mlp ? (isGated(r.mlp) ? 2 * f : f) : 0) +
    (mlp ? 2 : 1) * stats +
    H +
    (r.qkNorm ? H + c.kvHeads : 0);
  // Read only by products: the two norms' outputs and the MLP's activation; bf16 copies under bf16-mixed.
  // (The o_proj and down_proj outputs, the unrotated q and k, biased products before their bias and
  // learned positions' two lookups are read by no backward: given back during the forward.)
  const product = (mlp ? 2 * d + f : d) * c.layers + d; // … and the final norm's output
  // Outside the layers: the last residual, the final norm's statistics, the logits (and the soft-capped
  // logits), the loss's lse.
  const outside = d + stats + c.vocab * (r.softcap > 0 ? 2 : 1) + 1;
  const activationBytes =
    N * (4 * (c.layers * full + outside) + (precision === "bf16-mixed" ? 2 : 4) * product);
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
