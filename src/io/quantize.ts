// What a lower-precision GGUF export costs: file size against the F32 export, and the change in validation
// loss when the model runs on the weights as stored (dequantised back to float32, so the difference is the
// quantisation error alone, not a different kernel's arithmetic).
import type { Tokenizer } from "../data/index.js";
import { forward, type Model } from "../nn/index.js";
import { crossEntropy, noGrad, tidy } from "../tensor/index.js";
import { ggufToModel, modelToGguf } from "./gguf-model.js";

export interface QuantizationReport {
  dtype: "f16" | "q8_0";
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

/** Size and validation-loss cost of exporting `model` as F16 or Q8_0 GGUF instead of F32. */
export function quantizationReport(
  model: Model,
  tokenizer: Tokenizer | null,
  validationTokens: ArrayLike<number>,
  dtype: "f16" | "q8_0" = "q8_0",
  maxWindows = 16,
): QuantizationReport {
  const f32 = modelToGguf(model, tokenizer, { dtype: "f32" });
  const quant = modelToGguf(model, tokenizer, { dtype });
  const restored = ggufToModel(quant).model;
  const ctx = model.config.context;
  const base = validationLoss(model, validationTokens, ctx, maxWindows);
  const q = validationLoss(restored, validationTokens, ctx, maxWindows);
  return {
    dtype,
    f32Bytes: f32.length,
    bytes: quant.length,
    sizeRatio: f32.length / quant.length,
    lossF32: base.loss,
    loss: q.loss,
    lossDelta: q.loss - base.loss,
    windows: base.windows,
  };
}
