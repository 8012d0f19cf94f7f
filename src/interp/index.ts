// Interpretability: a model's activations by TransformerLens hook name, read or replaced, and the standard
// analyses built on them (docs/interpretability.md).
export {
  ablatedRun,
  attentionPatterns,
  type HeadRef,
  headAblationLosses,
  type InductionOptions,
  inductionScores,
} from "./heads.js";
export {
  type Attribution,
  argmax,
  directLogitAttribution,
  type LogitAttribution,
  type LogitLens,
  logitLens,
  topTokens,
} from "./lens.js";
export { type ActivatingContext, type TopContextsOptions, topActivatingContexts } from "./neurons.js";
export { activationPatching, type PatchingResult, type PatchTarget } from "./patching.js";
export {
  ActivationCache,
  type CacheOptions,
  type Hook,
  hookNames,
  runWithCache,
  runWithHooks,
  type Tokens,
} from "./run.js";
export {
  createSae,
  geometricMedian,
  loadSae,
  normalizeDecoder,
  projectDecoderGrad,
  SAE_FILE,
  SAE_WEIGHTS,
  type Sae,
  type SaeActivation,
  type SaeConfig,
  type SaeFile,
  type SaeInfo,
  type SaeLoss,
  saeApply,
  saeForward,
  saeLoss,
  saveSae,
  topkMask,
} from "./sae.js";
export {
  type FeatureContext,
  type FeatureReport,
  type FeatureScan,
  type ScanOptions,
  scanFeatures,
} from "./sae-inspect.js";
export {
  ActivationStream,
  ceRecovered,
  checkSaeHook,
  evaluateSae,
  heldOutBatches,
  hookActivations,
  type SaeEvalOptions,
  type SaeMetrics,
  type SaeStepStats,
  type SaeTrainOptions,
  type Splice,
  trainSae,
} from "./sae-train.js";
