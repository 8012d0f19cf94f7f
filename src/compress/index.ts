// Compression: distillation into a smaller student (an objective of the one training loop) and the
// comparison of a compressed model with its base (`afterscale eval --kl-base`). See docs/compression.md.
export {
  type DistillSettings,
  distill,
  distillation,
  distillSettingsSchema,
  parseDistillSettings,
} from "./distill.js";
export {
  compareWithBase,
  formatKlComparison,
  type KlComparison,
  type KlOptions,
  type Percentiles,
  type ValueWithError,
} from "./kl-stats.js";
export { betaOf, DIVERGENCES, type DistillLoss, type Divergence, distillationLoss } from "./losses.js";
export { type CacheMeta, type TopK, TopKCache, topKLogProbs } from "./teacher-cache.js";
