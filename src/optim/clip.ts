// Global gradient-norm clipping, as torch.nn.utils.clip_grad_norm_.
import { inPhase } from "../backend/index.js";
import type { Tensor } from "../tensor/index.js";

/** The L2 norm of all gradients together (float64 accumulation). */
export function gradNorm(params: Tensor[]): number {
  let sq = 0;
  for (const p of params) if (p.grad) sq += p.kernels.sumSquares(p.grad.data, p.size);
  return Math.sqrt(sq);
}

/** Scales all gradients by maxNorm / (norm + 1e-6) when the norm exceeds maxNorm; returns the norm before clipping. */
export function clipGradNorm(params: Tensor[], maxNorm: number): number {
  return inPhase("optimizer", () => clip(params, maxNorm));
}

function clip(params: Tensor[], maxNorm: number): number {
  const norm = gradNorm(params);
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) {
    for (const p of params) if (p.grad) p.kernels.scale(p.grad.data, coef, p.grad.data, p.size);
  }
  return norm;
}
