// Mixed precision, as PyTorch's CPU autocast does it: inside withPrecision("bf16-mixed", fn), float32 matrix
// products round their operands to bf16 and accumulate in float32 (backend.matmulBf16), in the forward pass
// and in the two gradient products of its backward, whenever that runs; attention's products likewise, where
// the native kernels have them. Everything else (norms, softmax, the loss, the optimizer and the weights
// themselves) stays float32, and so do activations other ops read; what only products read is kept as a bf16
// copy once the forward is done with it (releaseStorage). float64 tensors (gradient checks) are never rounded.

export const precisions = ["fp32", "bf16-mixed"] as const;
export type Precision = (typeof precisions)[number];

let current: Precision = "fp32";

/** Runs fn with matrix products in the given precision (restored afterwards, even if fn throws). */
export function withPrecision<T>(precision: Precision, fn: () => T): T {
  const prev = current;
  current = precision;
  try {
    return fn();
  } finally {
    current = prev;
  }
}

/** The precision matrix products created now use. */
export function currentPrecision(): Precision {
  return current;
}
