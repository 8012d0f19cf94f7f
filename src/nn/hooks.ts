// The named activation points of the decoder's forward pass (TransformerLens names), in one place, so an
// interpretability tool can read or replace any of them by name. `{l}` stands for the layer index.
import type { Tensor } from "../tensor/index.js";

export const HOOK_POINTS = [
  "hook_embed", // token embeddings [B, T, d]
  "hook_pos_embed", // learned position embeddings [B, T, d] (absent with rotary positions)
  "blocks.{l}.hook_resid_pre", // the residual stream entering block l
  "blocks.{l}.attn.hook_q", // queries [B, T, heads·headDim], after QK-norm, before rotary
  "blocks.{l}.attn.hook_k", // keys [B, T, kvHeads·headDim], after QK-norm, before rotary
  "blocks.{l}.attn.hook_v", // values [B, T, kvHeads·headDim]
  "blocks.{l}.attn.hook_attn_scores", // q·kᵀ/√hd after rotary, −∞ above the diagonal [B, heads, T, T]
  "blocks.{l}.attn.hook_pattern", // softmax of the scores [B, heads, T, T]
  "blocks.{l}.attn.hook_z", // attention's weighted values, heads side by side, before o_proj
  "blocks.{l}.hook_attn_out", // o_proj's output (before residual dropout)
  "blocks.{l}.hook_resid_mid", // the residual stream after attention (MLP points: absent with mlp none)
  "blocks.{l}.mlp.hook_pre", // the activation's input (the gate, for SwiGLU)
  "blocks.{l}.mlp.hook_pre_linear", // SwiGLU's up projection (gated MLPs only)
  "blocks.{l}.mlp.hook_post", // the activation's output, down_proj's input
  "blocks.{l}.hook_mlp_out", // down_proj's output (before residual dropout)
  "blocks.{l}.hook_resid_post", // the residual stream leaving block l
  "ln_final.hook_normalized", // the final norm's output, the head's input
] as const;

export type HookPoint = (typeof HOOK_POINTS)[number];

/**
 * Called at every hook point (the scores and pattern only in a forward pass without a KV cache: the
 * decoder then runs attention op by op instead of the fused kernel) with its name (layer filled in) and activation; returning a tensor of the
 * same shape replaces the activation, returning undefined leaves it. Without a hook the forward pass
 * only tests for one at each point.
 */
export type ForwardHook = (name: string, activation: Tensor) => Tensor | undefined;

/** The name of a hook point at a layer: hookName("blocks.{l}.hook_resid_pre", 3) = "blocks.3.hook_resid_pre". */
export function hookName(point: HookPoint, layer = 0): string {
  return point.startsWith("blocks.") ? point.replace("{l}", String(layer)) : point;
}
