// AdamW with decoupled weight decay (Loshchilov & Hutter), PyTorch's update rule, one fused kernel
// call per parameter. Moments live in float32 arrays allocated once.
import { inPhase } from "../backend/index.js";
import type { Tensor } from "../tensor/index.js";
import { type Optimizer, type OptimizerBuffer, releaseGrads, savedBuffer } from "./optimizer.js";

export interface AdamWConfig {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const adamwDefaults: AdamWConfig = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

export interface ParamGroup {
  params: Tensor[];
  /** Overrides the optimizer's weight decay for this group (0 for norms, biases, embeddings). */
  weightDecay?: number;
}

export interface AdamWState {
  step: number;
  m: Float32Array[];
  v: Float32Array[];
}

export class AdamW implements Optimizer {
  readonly name = "adamw";
  readonly config: AdamWConfig;
  readonly groups: ParamGroup[];
  private t = 0;
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];

  constructor(groups: ParamGroup[], config: Partial<AdamWConfig> = {}) {
    this.config = { ...adamwDefaults, ...config };
    this.groups = groups;
    const params = this.params();
    for (const p of params) {
      if (p.dtype !== "float32") throw new Error(`AdamW: parameter ${p} must be float32`);
    }
    this.m = params.map((p) => new Float32Array(p.size));
    this.v = params.map((p) => new Float32Array(p.size));
  }

  params(): Tensor[] {
    return this.groups.flatMap((g) => g.params);
  }

  get step(): number {
    return this.t;
  }

  /** One update of every parameter that has a gradient; `lr` overrides the configured rate (schedules). */
  update(lr = this.config.lr): void {
    inPhase("optimizer", () => this.applyUpdate(lr));
  }

  private applyUpdate(lr: number): void {
    this.t++;
    const { beta1, beta2, eps } = this.config;
    const biasCorrection1 = 1 - beta1 ** this.t;
    const biasCorrection2 = 1 - beta2 ** this.t;
    let i = 0;
    for (const group of this.groups) {
      const weightDecay = group.weightDecay ?? this.config.weightDecay;
      for (const p of group.params) {
        const idx = i++;
        if (!p.grad) continue;
        p.kernels.adamw(p.data, p.grad.data, this.m[idx]!, this.v[idx]!, p.size, {
          lr,
          beta1,
          beta2,
          eps,
          weightDecay,
          biasCorrection1,
          biasCorrection2,
        });
      }
    }
  }

  /** Gives every gradient buffer back to the pool. */
  zeroGrad(): void {
    releaseGrads(this.params());
  }

  /** The moments under PyTorch's names, exp_avg and exp_avg_sq. */
  buffers(): OptimizerBuffer[] {
    return this.params().flatMap((param, i) => [
      { param, slot: "exp_avg", data: this.m[i]! },
      { param, slot: "exp_avg_sq", data: this.v[i]! },
    ]);
  }

  restore(step: number, saved: (param: string, slot: string) => Float32Array | undefined): void {
    const params = this.params();
    this.loadState({
      step,
      m: params.map((p) => savedBuffer(saved, p, "exp_avg")),
      v: params.map((p) => savedBuffer(saved, p, "exp_avg_sq")),
    });
  }

  state(): AdamWState {
    return { step: this.t, m: this.m, v: this.v };
  }

  loadState(state: AdamWState): void {
    if (state.m.length !== this.m.length || state.v.length !== this.v.length) {
      throw new Error(
        `AdamW.loadState: state has ${state.m.length} moments, optimizer has ${this.m.length} parameters`,
      );
    }
    for (let i = 0; i < this.m.length; i++) {
      if (state.m[i]!.length !== this.m[i]!.length || state.v[i]!.length !== this.v[i]!.length) {
        throw new Error(
          `AdamW.loadState: moment ${i} has ${state.m[i]!.length} values, expected ${this.m[i]!.length}`,
        );
      }
      this.m[i]!.set(state.m[i]!);
      this.v[i]!.set(state.v[i]!);
    }
    this.t = state.step;
  }
}
