// Public surface of recipe studies (src/study): how much compute a training recipe is worth.
//
//   planStudy(options): StudyPlan           variants × budgets × seeds, sizes checked, nothing trained
//   runStudy(plan, options?)                learning-rate sweeps, then every run (resumable, in the registry)
//   estimateStudy(plan): StudyResult        losses and each variant's compute multiplier over the baseline
//   formatStudy / writeStudyReport          the table, and the HTML report
export {
  computeForLoss,
  DEFAULT_STUDY_BOOTSTRAP,
  estimateStudy,
  fitCurve,
  INTERVAL_MASS,
  type StudyResult,
} from "./estimate.js";
export { formatMultiplier, formatStudy } from "./format.js";
export {
  DEFAULT_LR_FACTORS,
  loadStudyPlan,
  planStudy,
  QUICK_TOKENS,
  SIZE_TOLERANCE,
  STUDY_OWNED_FIELDS,
  type StudyOptions,
  type StudyPlan,
  type StudyRun,
  studyPlanDifference,
  studyPlanPath,
  studyRun,
  validateStudyId,
} from "./plan.js";
export { writeStudyReport } from "./report.js";
export {
  finishedRuns,
  MAX_LR_EXTENSIONS,
  mainRuns,
  pendingTuningRuns,
  runStudy,
  type Tuning,
  tuning,
} from "./run.js";
