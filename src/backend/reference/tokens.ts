// Kernels indexed by token ids: the embedding lookup, the fused log-softmax + cross-entropy, and the
// per-row gradient of the token log-probabilities (the negated cross-entropy).

import type { FloatArray } from "../backend.js";
import { needCounts, needLength } from "./scratch.js";

function checkId(kernel: string, id: number, vocab: number): void {
  if (!(id >= 0 && id < vocab)) throw new Error(`${kernel}: id ${id} out of range [0, ${vocab})`);
}

// out[i, :] = table[ids[i], :]
export function embedding(table: FloatArray, ids: Int32Array, out: FloatArray, n: number, dim: number): void {
  needCounts("embedding", { n, dim });
  needLength("embedding", "ids", ids, n);
  const vocab = dim === 0 ? 0 : Math.floor(table.length / dim);
  for (let i = 0; i < n; i++) {
    const id = ids[i];
    checkId("embedding", id, vocab);
    const src = id * dim;
    const dst = i * dim;
    for (let d = 0; d < dim; d++) out[dst + d] = table[src + d];
  }
}

// gTable = 0;  gTable[ids[i], :] += gOut[i, :]
export function embeddingBackward(
  gOut: FloatArray,
  ids: Int32Array,
  gTable: FloatArray,
  n: number,
  dim: number,
  vocab: number,
): void {
  needCounts("embeddingBackward", { n, dim, vocab });
  needLength("embeddingBackward", "ids", ids, n);
  needLength("embeddingBackward", "gTable", gTable, vocab * dim);
  for (let i = 0; i < n; i++) checkId("embeddingBackward", ids[i], vocab);
  gTable.fill(0, 0, vocab * dim);
  for (let i = 0; i < n; i++) {
    const dst = ids[i] * dim;
    const src = i * dim;
    for (let d = 0; d < dim; d++) gTable[dst + d] += gOut[src + d];
  }
}

function checkTarget(kernel: string, row: number, target: number, vocab: number): void {
  if (!(target >= 0 && target < vocab)) {
    throw new Error(
      `${kernel}: target ${target} at row ${row} is out of range [0, ${vocab}) and not ignoreIndex`,
    );
  }
}

// lse_r = max + log Σ_j exp(x_rj − max);  loss_r = lse_r − x_r,target (0 for ignored rows)
export function crossEntropy(
  logits: FloatArray,
  targets: Int32Array,
  loss: FloatArray,
  lse: FloatArray,
  rows: number,
  vocab: number,
  ignoreIndex: number,
): void {
  needCounts("crossEntropy", { rows, vocab });
  needLength("crossEntropy", "logits", logits, rows * vocab);
  needLength("crossEntropy", "targets", targets, rows);
  for (let r = 0; r < rows; r++) {
    const target = targets[r];
    const ignored = target === ignoreIndex;
    if (!ignored) checkTarget("crossEntropy", r, target, vocab);
    const row = r * vocab;
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < vocab; j++) if (logits[row + j] > max) max = logits[row + j];
    let total = 0;
    for (let j = 0; j < vocab; j++) total += Math.exp(logits[row + j] - max);
    const l = max + Math.log(total);
    lse[r] = l;
    loss[r] = ignored ? 0 : l - logits[row + target];
  }
}

// gx_r = (softmax(x_r) − onehot(target_r))·gScale = (exp(x_r − lse_r) − onehot)·gScale;  0 for ignored rows
export function crossEntropyBackward(
  logits: FloatArray,
  targets: Int32Array,
  lse: FloatArray,
  gx: FloatArray,
  rows: number,
  vocab: number,
  ignoreIndex: number,
  gScale: number,
): void {
  needCounts("crossEntropyBackward", { rows, vocab });
  needLength("crossEntropyBackward", "logits", logits, rows * vocab);
  needLength("crossEntropyBackward", "targets", targets, rows);
  for (let r = 0; r < rows; r++) {
    const target = targets[r];
    const row = r * vocab;
    if (target === ignoreIndex) {
      gx.fill(0, row, row + vocab);
      continue;
    }
    checkTarget("crossEntropyBackward", r, target, vocab);
    const l = lse[r];
    for (let j = 0; j < vocab; j++) gx[row + j] = Math.exp(logits[row + j] - l) * gScale;
    gx[row + target] -= gScale;
  }
}

// gx_r = (onehot(target_r) − exp(x_r − lse_r))·gOut_r;  0 for ignored rows
export function tokenLogProbsBackward(
  logits: FloatArray,
  targets: Int32Array,
  lse: FloatArray,
  gOut: FloatArray,
  gx: FloatArray,
  rows: number,
  vocab: number,
  ignoreIndex: number,
): void {
  needCounts("tokenLogProbsBackward", { rows, vocab });
  needLength("tokenLogProbsBackward", "logits", logits, rows * vocab);
  needLength("tokenLogProbsBackward", "targets", targets, rows);
  needLength("tokenLogProbsBackward", "gOut", gOut, rows);
  for (let r = 0; r < rows; r++) {
    const target = targets[r];
    const row = r * vocab;
    if (target === ignoreIndex) {
      gx.fill(0, row, row + vocab);
      continue;
    }
    checkTarget("tokenLogProbsBackward", r, target, vocab);
    const l = lse[r];
    const g = gOut[r];
    for (let j = 0; j < vocab; j++) gx[row + j] = -Math.exp(logits[row + j] - l) * g;
    gx[row + target] += g;
  }
}
