export {
  headDim,
  type ModelConfig,
  mlpHidden,
  modelConfigSchema,
  type PresetName,
  parseModelConfig,
  preset,
  presetNames,
} from "./config.js";
export { KVCache } from "./kv-cache.js";
export {
  createModel,
  decayGroups,
  type ForwardOptions,
  forward,
  forwardStep,
  type Model,
  newKVCache,
  parameterCounts,
  paramSpecs,
  trainingFlopsPerToken,
} from "./model.js";
export type { ParamSpec } from "./params.js";
