// afterscale as a library: `import { loadModel, generate, train, … } from "afterscale"`. This is the stable
// public surface (docs/api.md shows every use, and test/api.docs.test.ts runs those examples); deeper modules
// may change. Importing it has no side effects: nothing is printed, no signal handler is installed, and the
// native addon loads on the first tensor operation.

// Backends: the native addon (default) or the plain-TypeScript reference.
export { nativeBackend, setBackend } from "./backend/index.js";
// Compression: distillation into a smaller student; a compressed model against its base (eval --kl-base).
export {
  compareWithBase,
  type DistillSettings,
  distill,
  formatKlComparison,
  type KlComparison,
  type KlOptions,
} from "./compress/index.js";
// Data: tokenizers and prepared (tokenized, sharded) datasets.
// Feedback: chat fine-tuning, preference optimisation and RL on the one training loop; tasks; chat format.
export {
  BUILTIN_CORPORA,
  type BuiltinCorpus,
  byteTokenizer,
  CHATML_JINJA,
  type ChatMessage,
  type DatasetMeta,
  encodeChat,
  loadTokenizer,
  type OpenDataset,
  openShards,
  type PrepareOptions,
  prepare,
  renderChatML,
  saveTokenizer,
  Tokenizer,
} from "./data/index.js";
export {
  dpo,
  type EvaluateTaskOptions,
  type EvaluateTaskResult,
  evaluateTask,
  getTask,
  grpo,
  readPreferenceFile,
  readSftFile,
  sft,
  TASKS,
  type Task,
  taskExamples,
} from "./feedback/index.js";
// Inference: generation (whole, streamed through onText, or as an async iterator) and evaluation.
export {
  type EvaluateOptions,
  type EvaluateResult,
  evaluate,
  type FinishReason,
  type GenerateOptions,
  type GenerateResult,
  generate,
  generateStream,
  type SamplingOptions,
} from "./infer/index.js";
// Interpretability: activations by TransformerLens hook name, and the analyses built on them.
export {
  ActivationCache,
  ablatedRun,
  activationPatching,
  attentionPatterns,
  directLogitAttribution,
  evaluateSae,
  headAblationLosses,
  hookNames,
  inductionScores,
  loadSae,
  logitLens,
  runWithCache,
  runWithHooks,
  saveSae,
  scanFeatures,
  topActivatingContexts,
  trainSae,
} from "./interp/index.js";
// Interop: Hugging Face folders and GGUF files.
export {
  type ExportOptions,
  type ExportResult,
  exportModel,
  type ImportResult,
  importModel,
  QUANT_PRESETS,
  QUANTIZE_TYPES,
  type QuantizationReport,
  type QuantizeType,
  type QuantPreset,
  quantizationReport,
  quantizationTable,
  quantizeGguf,
} from "./io/index.js";
// Models: architectures, presets, parameter counts.
export {
  createModel,
  type Model,
  type ModelConfig,
  type PresetName,
  parameterCounts,
  parseModelConfig,
  preset,
  presetNames,
  resizeVocabulary,
} from "./nn/index.js";
// Scaling laws: points, fits with bootstrap intervals, compute-optimal allocation, sweeps, reports.
export {
  type BootstrapFit,
  type BootstrapOptions,
  bootstrapFit,
  type ChinchillaFit,
  type ComputeMultiplier,
  computeMultiplier,
  computeOptimal,
  type FitOptions,
  fitChinchilla,
  type LawParams,
  type LoadOptions as LoadPointsOptions,
  loadPoints,
  predictLoss,
  type ScalingPoint,
} from "./scaling/index.js";
export { type ReportOptions, type ReportWritten, writeReport } from "./scaling/report.js";
export {
  formatPlan,
  type LoadedSource,
  loadSource,
  type PlannedRun,
  type PlanOptions,
  planSweep,
  type RunSweepOptions,
  runSweep,
  type SweepPlan,
  type SweepRunSummary,
} from "./scaling/sweep.js";
// Serving: the OpenAI-compatible server and chat page of `afterscale serve`.
export { type RunningServer, type ServeOptions, startServer } from "./serve/index.js";
// Recipe studies: how much compute a recipe (or one lever) is worth at one model size.
export {
  estimateStudy,
  formatStudy,
  planStudy,
  runStudy,
  type StudyOptions,
  type StudyPlan,
  type StudyResult,
  writeStudyReport,
} from "./study/index.js";
// Training: configs, runs with crash-exact checkpoints, the run registry, the one model resolver.
export {
  builtinRecipes,
  defaultRoot,
  type LoadModelOptions,
  listRuns,
  loadModel,
  loadRecipe,
  parseTrainConfig,
  type Recipe,
  type ResolvedModel,
  type RunRecord,
  resolveDataDir,
  type StepMetrics,
  type TrainConfig,
  type TrainConfigInput,
  type TrainOptions,
  type TrainResult,
  train,
  trainDefaults,
} from "./train/index.js";
