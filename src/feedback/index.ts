// Public surface of human-feedback fine-tuning (src/feedback): the sft, dpo and grpo objectives that plug
// into the one training loop (src/train), their data, built-in tasks and losses.
export { ExampleOrder, type PaddedBatch, padBatch, type Sequence } from "./batches.js";
export {
  type EncodedPreference,
  type EncodedSft,
  encodeCompletion,
  encodePreference,
  encodePrompt,
  encodeSft,
  encodeUnpaired,
  type PreferenceRecord,
  type PromptRecord,
  readPreferenceFile,
  readPromptFile,
  readSftFile,
  readUnpairedFile,
  type SftRecord,
  type UnpairedRecord,
} from "./datasets.js";
export {
  type DpoSettings,
  directPreferenceOptimisation,
  dpoSettingsSchema,
  KL_PROMPTS,
  REFERENCE_FILE,
} from "./dpo.js";
export { dpo, FINE_TUNES, type FineTuneSpec, fineTune, fineTuneSpec, grpo, sft } from "./fine-tune.js";
export {
  type GrpoSettings,
  groupRelativePolicyOptimisation,
  grpoSettingsSchema,
  loadReward,
  type RewardFunction,
} from "./grpo.js";
export { type KlOptions, sampledKl } from "./kl.js";
export { scoreSequences, sequenceBatchLogProbs } from "./logprobs.js";
export * from "./losses.js";
export * from "./prefs.js";
export * from "./prefs-export.js";
export { type SftSettings, sftSettingsSchema, supervisedFineTuning } from "./sft.js";
export { type FineTuneData, holdOut, TASK_PREFIX, taskOf } from "./sources.js";
export { initModel, parseSettings, type StartingPoint, startingPoint } from "./start.js";
export {
  DEFAULT_TASK_EVAL_BATCH,
  DEFAULT_TASK_EVAL_COUNT,
  type EvaluateTaskOptions,
  type EvaluateTaskResult,
  evaluateTask,
  type TaskCompletion,
  wilsonInterval,
} from "./task-eval.js";
export {
  type DifficultyRange,
  getTask,
  preferenceRecord,
  problemSplit,
  scoreExact,
  sftRecord,
  TASK_SPLITS,
  TASKS,
  type Task,
  type TaskExample,
  type TaskExamplesOptions,
  type TaskSplit,
  TEST_FRACTION,
  taskExamples,
  wrongAnswer,
} from "./tasks.js";
