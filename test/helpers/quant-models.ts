// The models whose quantization afterscale must match llama-quantize's byte for byte
// (test/io.quantize.test.ts against test/fixtures/quant/llama-quantize.json, which
// tools/gen_quant_fixtures.py writes by running llama.cpp's llama_model_quantize on these same files).
import { modelToGguf } from "../../src/io/gguf-model.js";
import { QUANT_PRESETS, type QuantPreset } from "../../src/io/gguf-quant-rules.js";
import type { ModelConfig } from "../../src/nn/index.js";
import { ioModel, ioTokenizer } from "./io-models.js";

export interface QuantModelCase {
  name: string;
  family: ModelConfig["family"];
  tie: boolean;
  levers: Partial<ModelConfig>;
  /** The type of the source file that gets quantized. */
  source: "f32" | "f16";
  presets: readonly QuantPreset[];
}

export const QUANT_MODEL_CASES: QuantModelCase[] = [
  // 256-wide rows: the K-quants apply everywhere; four layers put Q4_K_M's use_more_bits in layers 2 and 3.
  {
    name: "llama-256",
    family: "llama",
    tie: false,
    levers: { dModel: 256, mlpHidden: 256, heads: 2, kvHeads: 1, layers: 4 },
    source: "f32",
    presets: QUANT_PRESETS,
  },
  // 64-wide rows from an F16 file: every K-quant falls back (Q4_K → Q5_0, Q6_K → Q8_0).
  {
    name: "llama-64-f16",
    family: "llama",
    tie: false,
    levers: {},
    source: "f16",
    presets: ["q4_0", "q4_k_m", "q6_k"],
  },
  // Fused attn_qkv, tied embeddings (token_embd takes the head's type), F32 position embeddings.
  {
    name: "gpt2-256",
    family: "gpt2",
    tie: true,
    levers: { dModel: 256, layers: 2 },
    source: "f32",
    presets: ["q4_0", "q4_k_m", "q6_k"],
  },
];

/** The source GGUF file of a case (deterministic: seeded weights, the io tokenizer). */
export function quantSourceGguf(c: QuantModelCase): Uint8Array {
  const tokenizer = ioTokenizer();
  const model = ioModel(c.family, tokenizer.vocabSize, c.tie, 9, c.levers);
  return modelToGguf(model, tokenizer, { dtype: c.source });
}
