// Muon for the hidden matrices and AdamW for the rest (embeddings, output head, gains, biases), stepped
// together as one optimizer, as Keller Jordan's MuonWithAuxAdam. One schedule drives both: update(lr)
// gives AdamW `lr` and Muon lr × (Muon's rate / AdamW's rate), so both follow the schedule in proportion.
import type { Tensor } from "../tensor/index.js";
import type { AdamW } from "./adamw.js";
import type { Muon } from "./muon.js";
import { type Optimizer, type OptimizerBuffer, releaseGrads, savedBuffer } from "./optimizer.js";

export class MuonWithAdamW implements Optimizer {
  readonly name = "muon";

  constructor(
    readonly muon: Muon,
    readonly adamw: AdamW,
  ) {}

  params(): Tensor[] {
    return [...this.muon.params(), ...this.adamw.params()];
  }

  get step(): number {
    return this.adamw.step;
  }

  update(lr = this.adamw.config.lr): void {
    this.adamw.update(lr);
    this.muon.update((lr * this.muon.config.lr) / this.adamw.config.lr);
  }

  zeroGrad(): void {
    releaseGrads(this.params());
  }

  buffers(): OptimizerBuffer[] {
    const { momentum } = this.muon.state();
    return [
      ...this.muon.params().map((param, i) => ({ param, slot: "momentum_buffer", data: momentum[i]! })),
      ...this.adamw.buffers(),
    ];
  }

  restore(step: number, saved: (param: string, slot: string) => Float32Array | undefined): void {
    const momentum = this.muon.params().map((p) => savedBuffer(saved, p, "momentum_buffer"));
    this.adamw.restore(step, saved);
    this.muon.loadState({ step, momentum });
  }
}
