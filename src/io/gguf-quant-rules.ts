// Which ggml type each tensor of a quantized GGUF gets: llama.cpp's rules (src/llama-quant.cpp:
// tensor_allows_quantization, llama_tensor_get_type_impl, tensor_type_fallback), restricted to what they do
// for the architectures afterscale writes (llama, qwen3, gpt2: no experts, not Falcon) and to the presets
// below. docs/interop.md lists the rules in words.
import { GGML_BLOCK, type GgmlTypeName } from "./ggml-quants.js";

/**
 * The presets of `export --dtype` and `afterscale quantize --type`, named as llama-quantize names them
 * (lower case). q4_k is llama-quantize's `--pure Q4_K_S`: every quantizable tensor Q4_K, no mixture.
 */
export const QUANT_PRESETS = ["q4_0", "q4_1", "q5_0", "q8_0", "q4_k", "q4_k_s", "q4_k_m", "q6_k"] as const;
export type QuantPreset = (typeof QUANT_PRESETS)[number];

interface PresetInfo {
  /** The default tensor type (llama_ftype_get_default_type). */
  base: GgmlTypeName;
  /** llama_ftype, recorded as general.file_type. */
  fileType: number;
  /** --pure: no per-tensor mixture, only the shape fallback. */
  pure: boolean;
}

export const PRESETS: Record<QuantPreset, PresetInfo> = {
  q4_0: { base: "Q4_0", fileType: 2, pure: false },
  q4_1: { base: "Q4_1", fileType: 3, pure: false },
  q8_0: { base: "Q8_0", fileType: 7, pure: false },
  q5_0: { base: "Q5_0", fileType: 8, pure: false },
  q4_k: { base: "Q4_K", fileType: 14, pure: true },
  q4_k_s: { base: "Q4_K", fileType: 14, pure: false },
  q4_k_m: { base: "Q4_K", fileType: 15, pure: false },
  q6_k: { base: "Q6_K", fileType: 18, pure: false },
};

/** llama_ftype of the unquantized exports. */
export const FILE_TYPE_F32 = 0;
export const FILE_TYPE_F16 = 1;
/** LLAMA_FTYPE_MOSTLY_BF16: 2-D weights BF16, 1-D tensors F32. */
export const FILE_TYPE_BF16 = 32;
/** GGML_QNT_VERSION, which llama-quantize records as general.quantization_version. */
export const GGML_QNT_VERSION = 2;

/** What the rules need to know about the model being quantized. */
export interface QuantModel {
  arch: string;
  layers: number;
  heads: number;
  kvHeads: number;
  /** True when the file has no output.weight (token_embd doubles as the output head). */
  tied: boolean;
}

/** tensor_allows_quantization for these architectures: 2-D+ weights except norms and position embeddings. */
export function allowsQuantization(name: string, dims: number): boolean {
  return (
    dims >= 2 &&
    name.endsWith("weight") &&
    !name.includes("_norm.weight") &&
    name !== "position_embd.weight" &&
    name !== "token_types.weight"
  );
}

/** use_more_bits: the first and last eighth of the layers, and every third layer between. */
function useMoreBits(layer: number, layers: number): boolean {
  const eighth = Math.trunc(layers / 8);
  return layer < eighth || layer >= Math.trunc((7 * layers) / 8) || (layer - eighth) % 3 === 2;
}

function layerOf(name: string): number {
  const m = /^blk\.(\d+)\./.exec(name);
  if (!m) throw new Error(`gguf quantize: cannot tell the layer of tensor ${name}`);
  return Number(m[1]);
}

/**
 * tensor_type_fallback: a row length the type's block does not divide falls back, K-quants to a 32-block
 * type (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0), and to F16 if 32 does not divide it either. llama-quantize
 * refuses the 32-block types on such rows; afterscale writes F16 there too.
 */
export function fallbackType(type: GgmlTypeName, cols: number): GgmlTypeName {
  if (cols % GGML_BLOCK[type].size === 0) return type;
  const next: Partial<Record<GgmlTypeName, GgmlTypeName>> = { Q4_K: "Q5_0", Q5_K: "Q5_1", Q6_K: "Q8_0" };
  const t = next[type];
  return t && cols % GGML_BLOCK[t].size === 0 ? t : "F16";
}

/**
 * The type llama-quantize gives a quantizable tensor named `name` (GGUF name) whose rows hold `cols`
 * values (ne[0]), for this preset and model.
 */
export function quantTensorType(
  name: string,
  cols: number,
  preset: QuantPreset,
  m: QuantModel,
): GgmlTypeName {
  const { base, pure } = PRESETS[preset];
  let t: GgmlTypeName = base;
  if (!pure) {
    const isOutput = name === "output.weight" || (m.tied && name === "token_embd.weight");
    const isAttnV = name.endsWith("attn_v.weight") || name.endsWith("attn_qkv.weight");
    // LLM_TYPE_70B: llama with 80 layers and grouped-query attention.
    const is70B = m.arch === "llama" && m.layers === 80 && m.heads !== m.kvHeads;
    if (isOutput) {
      // The output head (and a tied embedding) gets Q6_K, or Q8_0 where the base block does not fit.
      if (cols % GGML_BLOCK[base].size !== 0) t = "Q8_0";
      else if (base !== "Q8_0") t = "Q6_K";
    } else if (name === "token_embd.weight") {
      t = base;
    } else if (isAttnV) {
      const layer = layerOf(name);
      if (preset === "q4_k_m" && useMoreBits(layer, m.layers)) t = "Q6_K";
      else if (preset === "q4_k_s" && layer < 4) t = "Q5_K";
      if (is70B && t === "Q4_K") t = "Q5_K";
    } else if (name.includes("ffn_down")) {
      const layer = layerOf(name);
      if (preset === "q4_k_m" && useMoreBits(layer, m.layers)) t = "Q6_K";
      else if (preset === "q4_k_s" && layer < Math.trunc(m.layers / 8)) t = "Q5_K";
    }
  }
  return fallbackType(t, cols);
}
