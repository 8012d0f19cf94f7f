// The tensor layer's public surface.
export { type DivergenceOptions, generalizedJsd, type TeacherTarget } from "./divergence.js";
export * from "./ops.js";
export { type DType, pool } from "./pool.js";
export { currentPrecision, type Precision, precisions, withPrecision } from "./precision.js";
export { type RandomStream, Rng, type RngState, randomStream } from "./random.js";
export {
  backward,
  empty,
  full,
  isGradEnabled,
  keep,
  noGrad,
  packedParameter,
  parameter,
  releaseStorage,
  shapeSize,
  Tensor,
  type TensorOptions,
  tensor,
  tidy,
  zeros,
} from "./tensor.js";
