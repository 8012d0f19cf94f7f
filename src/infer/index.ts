// Public surface of generation and evaluation.
export { type DecodeBatchOptions, type DecodedSequence, decodeBatch } from "./batch.js";
export {
  DEFAULT_EVAL_BATCH_SIZE,
  type EvaluateOptions,
  type EvaluateResult,
  evaluate,
  tokenByteLengths,
} from "./evaluate.js";
export {
  type FinishReason,
  type GenerateOptions,
  type GenerateResult,
  type GenerationStep,
  generate,
  generateStream,
  generation,
} from "./generate.js";
export {
  argmax,
  type ResolvedSampling,
  resolveSampling,
  Sampler,
  type SamplingOptions,
  sampleToken,
} from "./sampling.js";
export { StopTextStream, type TextPush } from "./text-stream.js";
