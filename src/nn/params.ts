// Parameter specs and their seeded initialisation. A model is a plain Map from name to tensor.
import { parameter, type Rng, type Tensor } from "../tensor/index.js";

export interface ParamSpec {
  name: string;
  shape: number[];
  init: "normal" | "zeros" | "ones";
  /** Standard deviation for "normal". */
  std?: number;
  /** Whether weight decay applies (not to norms, biases, embeddings). */
  decay: boolean;
}

/** Draws every parameter in spec order from one RNG, so one seed fixes the whole initialisation. */
export function initParams(specs: ParamSpec[], rng: Rng): Map<string, Tensor> {
  const params = new Map<string, Tensor>();
  for (const s of specs) {
    const n = s.shape.reduce((p, d) => p * d, 1);
    const data = new Float32Array(n);
    if (s.init === "ones") data.fill(1);
    else if (s.init === "normal") {
      const std = s.std ?? 0.02;
      for (let i = 0; i < n; i++) data[i] = rng.normal() * std;
    }
    params.set(s.name, parameter(data, s.shape, s.name));
  }
  return params;
}

export function countParams(specs: ParamSpec[], filter: (s: ParamSpec) => boolean = () => true): number {
  return specs.filter(filter).reduce((sum, s) => sum + s.shape.reduce((p, d) => p * d, 1), 0);
}
