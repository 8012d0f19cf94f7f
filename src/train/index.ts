// Public surface of training (src/train). The CLI wires these; every command loads models through loadModel.
//
//   parseTrainConfig(input): TrainConfig              validate flags / a JSON config (errors name the field)
//   trainConfigSchema, trainDefaults                  the zod schema and its defaults, for mapping CLI flags
//   trainConfigFields()                               every field: type, allowed values, default, description
//   train(config, options?): Promise<TrainResult>     train or resume (options.resume) a run
//   loadModelFrom(runOrCheckpointDir): LoadedModel    {model, tokenizer, step, …} from the newest good checkpoint
//   loadModel(spec): ResolvedModel                    the one resolver: run name, run/checkpoint folder, HF folder, GGUF
//   Registry / listRuns / getRun / formatRunsTable / formatRunsJson   the SQLite run registry (afterscale runs)
//   lrAt(step, config)                                the learning-rate schedules
export {
  CHECKPOINT_PREFIX,
  CheckpointError,
  type CheckpointInfo,
  type CheckpointState,
  checkpointDir,
  type LoadedCheckpoint,
  type LoadedModel,
  latestGoodCheckpoint,
  listCheckpoints,
  loadModelFrom,
  modelFromCheckpoint,
  readCheckpoint,
} from "./checkpoint.js";
export {
  DEFAULT_STEPS,
  defaultRoot,
  familyNames,
  modelConfigFor,
  OBJECTIVE_FIELDS,
  optimizerNames,
  parseTrainConfig,
  runDirOf,
  scheduleNames,
  schemaFields,
  type TrainConfig,
  type TrainConfigInput,
  type TrainField,
  tokensPerStep,
  trainConfigFields,
  trainConfigSchema,
  trainDefaults,
} from "./config.js";
export { builtinCacheDir, openTrainingData, resolveDataDir } from "./data.js";
export type {
  MicroBatchLoss,
  Objective,
  ObjectiveSetup,
  SetupContext,
  TrainingSetup,
  Validation,
} from "./objective.js";
export {
  createOptimizer,
  isHiddenMatrix,
  type OptimizerSettings,
  optimizerFlopsPerStep,
} from "./optimizer.js";
export { dropoutSeedFor, evaluateLoss, pretraining, splitValidation } from "./pretrain.js";
export { formatSeconds } from "./progress.js";
export {
  applyRecipe,
  builtinRecipes,
  loadRecipe,
  NON_RECIPE_FIELDS,
  type Recipe,
} from "./recipes.js";
export {
  formatRunsJson,
  formatRunsTable,
  getRun,
  gitRevision,
  listRuns,
  type MachineInfo,
  machineInfo,
  REGISTRY_FILE,
  Registry,
  type RunRecord,
  type RunStatus,
  runStatuses,
  STALE_HEARTBEAT_SECONDS,
  withRegistry,
} from "./registry.js";
export { type LoadModelOptions, loadModel, MODEL_SPEC_HELP, type ResolvedModel } from "./resolve.js";
export { lrAt, type ScheduleConfig } from "./schedule.js";
export {
  CONFIG_FILE,
  type EvalMetrics,
  HEARTBEAT_SECONDS,
  METRICS_FILE,
  RESUMABLE_CHANGES,
  runTraining,
  type StepMetrics,
  type TrainOptions,
  type TrainResult,
  train,
} from "./trainer.js";
