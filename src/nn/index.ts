export {
  type BlockParts,
  blockParts,
  type Family,
  familyNames,
  familyParts,
  headDim,
  isGated,
  type MlpKind,
  type ModelConfig,
  mlpHidden,
  mlpKinds,
  modelConfigSchema,
  normKinds,
  type PresetName,
  parseModelConfig,
  positionKinds,
  preset,
  presetNames,
} from "./config.js";
export { type BlockWeights, blockWeights, decoderBlock, finalNorm, partNames, unembed } from "./decoder.js";
export { type ForwardHook, HOOK_POINTS, type HookPoint, hookName } from "./hooks.js";
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
export { resizeVocabulary } from "./resize.js";
