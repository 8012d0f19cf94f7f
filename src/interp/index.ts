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
