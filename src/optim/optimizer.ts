// What the trainer and the checkpoint need of an optimizer, whichever it is: AdamW alone, or Muon for the
// hidden matrices with AdamW for everything else.
import type { Tensor } from "../tensor/index.js";

/** One state buffer of one parameter, under PyTorch's slot name (exp_avg, exp_avg_sq, momentum_buffer). */
export interface OptimizerBuffer {
  param: Tensor;
  slot: string;
  data: Float32Array;
}

export interface Optimizer {
  readonly name: "adamw" | "muon";
  params(): Tensor[];
  /** Updates completed. */
  readonly step: number;
  /** One update of every parameter; `lr` is the schedule's rate of the AdamW group (default: its configured rate). */
  update(lr?: number): void;
  zeroGrad(): void;
  /** Every state buffer (the live arrays, not copies). */
  buffers(): OptimizerBuffer[];
  /** Restores the step and every buffer; `saved(param, slot)` gives the saved values (undefined: missing). */
  restore(step: number, saved: (param: string, slot: string) => Float32Array | undefined): void;
}

/** Gives every gradient buffer back to the pool. */
export function releaseGrads(params: readonly Tensor[]): void {
  for (const p of params) {
    if (p.grad) {
      p.grad.kept = false;
      p.grad.dispose();
      p.grad = null;
    }
  }
}

/** The saved buffer of one parameter's slot; throws naming both when it is missing. */
export function savedBuffer(
  saved: (param: string, slot: string) => Float32Array | undefined,
  param: Tensor,
  slot: string,
): Float32Array {
  const data = saved(param.name ?? "", slot);
  if (!data) throw new Error(`no saved optimizer state ${slot} for ${param.name ?? String(param)}`);
  return data;
}
