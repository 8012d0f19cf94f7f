// The optimizer a training config asks for. adamw: AdamW on everything, weight decay on the specs that
// decay. muon: Muon on the hidden matrices and AdamW on the rest, as Keller Jordan prescribes (Muon is for
// hidden weights; the embeddings, the output head, gains and biases take a standard optimizer).
import { type Model, type ModelConfig, type ParamSpec, paramSpecs } from "../nn/index.js";
import { AdamW, Muon, MuonWithAdamW, NS_STEPS, type Optimizer } from "../optim/index.js";
import type { Tensor } from "../tensor/index.js";
import type { TrainConfig } from "./config.js";

export type OptimizerSettings = Pick<
  TrainConfig,
  | "optimizer"
  | "lr"
  | "beta1"
  | "beta2"
  | "eps"
  | "weightDecay"
  | "muonLr"
  | "muonMomentum"
  | "muonWeightDecay"
  | "muonPrecision"
>;

/**
 * Whether a spec is a hidden matrix, by its properties: 2-D and decaying (so not an embedding, which does
 * not decay) and not the output head, the [vocab, dModel] matrix. A hidden matrix that happens to have
 * exactly vocab rows would be taken for the head and stay with AdamW, which is safe, only not Muon.
 */
export function isHiddenMatrix(spec: ParamSpec, config: ModelConfig): boolean {
  const [rows, cols] = spec.shape;
  const head = rows === config.vocab && cols === config.dModel;
  return spec.shape.length === 2 && spec.decay && !head;
}

export function createOptimizer(model: Model, c: OptimizerSettings): Optimizer {
  const adamw = { lr: c.lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: c.weightDecay };
  const hidden: Tensor[] = [];
  const decay: Tensor[] = [];
  const noDecay: Tensor[] = [];
  for (const s of model.specs) {
    const p = model.params.get(s.name)!;
    if (p.packed)
      throw new Error(
        `${s.name} is kept in ${p.packed.type} (a quantized model): training needs float weights; ` +
          "load the model with its weights dequantized (the commands that train do so)",
      );
    if (c.optimizer === "muon" && isHiddenMatrix(s, model.config)) hidden.push(p);
    else (s.decay ? decay : noDecay).push(p);
  }
  const aux = new AdamW([{ params: decay }, { params: noDecay, weightDecay: 0 }], adamw);
  if (c.optimizer === "adamw") return aux;
  const muon = new Muon(hidden, {
    lr: c.muonLr,
    momentum: c.muonMomentum,
    weightDecay: c.muonWeightDecay,
    precision: c.muonPrecision,
  });
  return new MuonWithAdamW(muon, aux);
}

/**
 * Matmul FLOPs of one optimizer update, which a study counts as compute beside the model's 6·N per token.
 * AdamW: none (elementwise). Muon: per hidden matrix with m = min(rows, cols), n = max, each Newton–Schulz
 * step computes A = X·Xᵀ (2m²n), A·A (2m³) and B·X (2m²n): the dense count, although the kernel computes
 * the symmetric A as its upper triangle (about a fifth less arithmetic). Charging Muon the dense count keeps
 * studies comparable with those measured before, and errs against Muon.
 */
export function optimizerFlopsPerStep(
  config: ModelConfig,
  optimizer: OptimizerSettings["optimizer"],
): number {
  if (optimizer !== "muon") return 0;
  let flops = 0;
  for (const s of paramSpecs(config)) {
    if (!isHiddenMatrix(s, config)) continue;
    const m = Math.min(s.shape[0]!, s.shape[1]!);
    const n = Math.max(s.shape[0]!, s.shape[1]!);
    flops += NS_STEPS * (4 * m * m * n + 2 * m * m * m);
  }
  return flops;
}
