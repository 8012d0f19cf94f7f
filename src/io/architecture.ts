// Which foreign architecture expresses a model's recipe, for export: Llama (LlamaForCausalLM, llama.cpp
// `llama`), Qwen3 (Llama plus QK-norm: Qwen3ForCausalLM, llama.cpp `qwen3`) or GPT-2 (GPT2LMHeadModel,
// llama.cpp `gpt2`). Parameter names follow the family, so the family picks the candidate architecture and
// every lever it cannot express is refused by name; nothing is written before this check passes.
import { blockParts, type ModelConfig } from "../nn/index.js";

export type Architecture = "llama" | "qwen3" | "gpt2";

export function exportArchitecture(c: ModelConfig, what: "hf export" | "gguf export"): Architecture {
  const r = blockParts(c);
  const refuse = (lever: string, why: string): never => {
    throw new Error(`${what}: the lever ${lever} cannot be expressed (${why})`);
  };
  if (r.softcap > 0)
    refuse(`softcap ${r.softcap}`, "none of the Llama, Qwen3 and GPT-2 architectures soft-caps its logits");
  if (c.family === "llama") {
    const which = r.qkNorm ? "Qwen3" : "Llama";
    if (r.norm !== "rmsnorm") refuse(`norm ${r.norm}`, `${which} uses RMSNorm`);
    if (r.positions !== "rope") refuse(`positions ${r.positions}`, `${which} uses rotary positions`);
    if (r.mlp !== "swiglu") refuse(`mlp ${r.mlp}`, `${which}'s MLP is SwiGLU`);
    if (r.bias && r.qkNorm) refuse("bias with qkNorm", "Qwen3's MLP has no biases");
    return r.qkNorm ? "qwen3" : "llama";
  }
  if (r.norm !== "layernorm") refuse(`norm ${r.norm}`, "GPT-2 uses LayerNorm");
  if (r.positions !== "learned") refuse(`positions ${r.positions}`, "GPT-2 learns absolute positions");
  if (r.mlp !== "gelu") refuse(`mlp ${r.mlp}`, "GPT-2's MLP is GELU");
  if (!r.bias) refuse("bias false", "GPT-2 has biases on every linear layer");
  if (r.qkNorm) refuse("qkNorm", "GPT-2 has no QK-norm; the llama family's qkNorm exports as Qwen3");
  if (c.kvHeads !== c.heads) refuse(`kvHeads ${c.kvHeads}`, "GPT-2 has no grouped-query attention");
  return "gpt2";
}
