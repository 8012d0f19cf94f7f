// The plain-TypeScript reference backend: the oracle for tests and the path for browsers. Every kernel is
// single-threaded, straightforward code that works on Float32Array and Float64Array alike, doing its
// intermediate math in float64 (JS numbers and Float64Array scratch). The kernels live in ./reference/.

import type { Backend } from "./backend.js";
import {
  gelu,
  geluBackward,
  relu2,
  relu2Backward,
  silu,
  siluBackward,
  softcap,
  softcapBackward,
  softmax,
  softmaxBackward,
  swiglu,
  swigluBackward,
} from "./reference/activations.js";
import { attention, attentionBackward, attentionCached, rope } from "./reference/attention.js";
import {
  adamw,
  add,
  addInto,
  dropout,
  dropoutBackward,
  fill,
  mul,
  scale,
  sum,
  sumRows,
  sumSquares,
} from "./reference/elementwise.js";
import { matmul } from "./reference/matmul.js";
import { layerNorm, layerNormBackward, rmsNorm, rmsNormBackward } from "./reference/norm.js";
import { crossEntropy, crossEntropyBackward, embedding, embeddingBackward } from "./reference/tokens.js";

export const reference: Backend = {
  name: "reference",
  threads: () => 1,
  matmul,
  add,
  mul,
  scale,
  addInto,
  fill,
  sumRows,
  sum,
  sumSquares,
  embedding,
  embeddingBackward,
  layerNorm,
  layerNormBackward,
  rmsNorm,
  rmsNormBackward,
  gelu,
  geluBackward,
  silu,
  siluBackward,
  relu2,
  relu2Backward,
  softcap,
  softcapBackward,
  swiglu,
  swigluBackward,
  softmax,
  softmaxBackward,
  rope,
  attention,
  attentionBackward,
  attentionCached,
  crossEntropy,
  crossEntropyBackward,
  dropout,
  dropoutBackward,
  adamw,
};
