// What a lower-precision GGUF export costs: file size against the F32 export, and the change in validation
// loss when the model runs on the weights as stored (dequantised back to float32, so the difference is the
// quantisation error alone, not a different kernel's arithmetic).
import type { Tokenizer } from "../data/index.js";
import { forward, type Model } from "../nn/index.js";
import { crossEntropy, noGrad, tidy } from "../tensor/index.js";
import { ggufToModel, modelToGguf } from "./gguf-model.js";
import type { QuantPreset } from "./gguf-quant-rules.js";

/** The GGUF exports a quantization report can cost against F32. */
export type LowerPrecision = "f16" | "bf16" | QuantPreset;

export interface QuantizationReport {
  dtype: LowerPrecision;
  /** Bits per weight of the whole file against its parameter count (F32: 32 plus metadata). */
  bitsPerWeight: number;
  f32Bytes: number;
  bytes: number;
  /** f32Bytes / bytes. */
  sizeRatio: number;
  /** Mean next-token cross-entropy (nats) over the validation windows. */
  lossF32: number;
  loss: number;
  lossDelta: number;
  windows: number;
}

/** Mean cross-entropy over non-overlapping windows of `context` tokens (at most maxWindows of them). */
export function validationLoss(
  model: Model,
  tokens: ArrayLike<number>,
  context: number,
  maxWindows = 16,
): { loss: number; windows: number } {
  const t = Math.min(context, model.config.context);
  const windows = Math.min(maxWindows, Math.floor((tokens.length - 1) / t));
  if (windows < 1)
    throw new Error(`validation loss: ${tokens.length} tokens are fewer than one window of ${t + 1}`);
  let sum = 0;
  noGrad(() => {
    for (let w = 0; w < windows; w++) {
      const ids = Int32Array.from({ length: t }, (_, i) => tokens[w * t + i]!);
      const targets = Int32Array.from({ length: t }, (_, i) => tokens[w * t + i + 1]!);
      sum += tidy(() => crossEntropy(forward(model, ids, 1, t), targets).item());
    }
  });
  return { loss: sum / windows, windows };
}

/** Size and validation-loss cost of exporting `model` as an F16, BF16 or quantized GGUF instead of F32. */
export function quantizationReport(
  model: Model,
  tokenizer: Tokenizer | null,
  validationTokens: ArrayLike<number>,
  dtype: LowerPrecision = "q8_0",
  maxWindows = 16,
): QuantizationReport {
  return quantizationTable(model, tokenizer, validationTokens, [dtype], maxWindows)[0]!;
}

/** One quantizationReport row per type, the F32 export and its loss computed once. */
export function quantizationTable(
  model: Model,
  tokenizer: Tokenizer | null,
  validationTokens: ArrayLike<number>,
  dtypes: readonly LowerPrecision[],
  maxWindows = 16,
): QuantizationReport[] {
  const f32 = modelToGguf(model, tokenizer, { dtype: "f32" }).length;
  const ctx = model.config.context;
  const base = validationLoss(model, validationTokens, ctx, maxWindows);
  let params = 0;
  for (const t of model.params.values()) params += t.data.length;
  return dtypes.map((dtype) => {
    const quant = modelToGguf(model, tokenizer, { dtype });
    const q = validationLoss(ggufToModel(quant).model, validationTokens, ctx, maxWindows);
    return {
      dtype,
      bitsPerWeight: (8 * quant.length) / params,
      f32Bytes: f32,
      bytes: quant.length,
      sizeRatio: f32 / quant.length,
      lossF32: base.loss,
      loss: q.loss,
      lossDelta: q.loss - base.loss,
      windows: base.windows,
    };
  });
}
