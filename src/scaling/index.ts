// Public API of the scaling lab: load runs, fit L(N, D) (Chinchilla approach 3, Epoch protocol),
// bootstrap it, fit IsoFLOP profiles (approach 2), and read off what the law says about compute.

export type { BootstrapFit, BootstrapOptions } from "./bootstrap.js";
export {
  bootstrapFit,
  DEFAULT_BOOTSTRAP_COUNT,
  derivedInterval,
  PARAM_NAMES,
  pairedInterval,
} from "./bootstrap.js";
export type {
  Allocation,
  ComputeMultiplier,
  InferenceAwareResult,
  InferenceTarget,
  ReturnsRow,
} from "./derived.js";
export {
  computeForLoss,
  computeMultiplier,
  computeOptimal,
  computeOptimalNumeric,
  inferenceAwareOptimum,
  optimalLossLaw,
  returnsToScale,
} from "./derived.js";
export type { ChinchillaFit, FitOptions, LawParams, StartGrid, Theta } from "./fit.js";
export { EPOCH_GRID, fitChinchilla, HUBER_DELTA, predictLoss } from "./fit.js";
export type { FitCommandOptions, FitReportInput } from "./format.js";
export {
  compareAndFormat,
  fitAndFormat,
  fmt,
  formatComparison,
  formatFitReport,
  formatTable,
} from "./format.js";
export type { IsoflopBootstrap, IsoflopFit, IsoflopGroup, IsoflopMinimum, PowerLaw } from "./isoflop.js";
export { groupByBudget, isoflopBootstrap, isoflopFits } from "./isoflop.js";
export type { LbfgsOptions, LbfgsResult, Objective } from "./lbfgs.js";
export { lbfgs } from "./lbfgs.js";
export type { LoadOptions, RunRecord, ScalingPoint } from "./points.js";
export { BUILTIN_DATASETS, excludeTopLoss, loadPoints, pointsFromCsv, pointsFromRuns } from "./points.js";
export type { Interval } from "./stats.js";

/** Epoch AI's published approach-3 estimates on the same data (Besiroglu et al. 2024, arXiv:2404.10102). */
export const EPOCH_ESTIMATES = { A: 482.01, B: 2085.43, E: 1.8172, alpha: 0.3478, beta: 0.3658 } as const;
