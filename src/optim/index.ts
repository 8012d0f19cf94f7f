export { AdamW, type AdamWConfig, type AdamWState, adamwDefaults, type ParamGroup } from "./adamw.js";
export { clipGradNorm, gradNorm } from "./clip.js";
export {
  Muon,
  type MuonConfig,
  type MuonState,
  muonDefaults,
  NewtonSchulzWork,
  NS_COEFFICIENTS,
  NS_STEPS,
  newtonSchulz,
} from "./muon.js";
export { MuonWithAdamW } from "./muon-adamw.js";
export type { Optimizer, OptimizerBuffer } from "./optimizer.js";
