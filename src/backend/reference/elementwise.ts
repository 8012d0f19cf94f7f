// Elementwise kernels, reductions, dropout and the AdamW update.

import { type AdamWArgs, dropoutKeep, type FloatArray } from "../backend.js";
import { floatToBf16 } from "../bf16.js";
import { needCounts, needLength, scratch, store } from "./scratch.js";

const SUM_ROWS = 0; // column sums [cols]

function needBroadcast(kernel: string, n: number, bn: number): void {
  needCounts(kernel, { n, bn });
  if (n > 0 && (bn === 0 || n % bn !== 0)) {
    throw new Error(`${kernel}: broadcast length bn=${bn} must be positive and divide n=${n}`);
  }
}

// out[i] = a[i] + b[i % bn]
export function add(a: FloatArray, b: FloatArray, out: FloatArray, n: number, bn: number): void {
  needBroadcast("add", n, bn);
  let j = 0;
  for (let i = 0; i < n; i++) {
    out[i] = a[i] + b[j];
    if (++j === bn) j = 0;
  }
}

// out[i] = a[i] · b[i % bn]
export function mul(a: FloatArray, b: FloatArray, out: FloatArray, n: number, bn: number): void {
  needBroadcast("mul", n, bn);
  let j = 0;
  for (let i = 0; i < n; i++) {
    out[i] = a[i] * b[j];
    if (++j === bn) j = 0;
  }
}

// out = a · s
export function scale(a: FloatArray, s: number, out: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) out[i] = a[i] * s;
}

// dst += src
export function addInto(dst: FloatArray, src: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) dst[i] += src[i];
}

export function fill(dst: FloatArray, value: number, n: number): void {
  dst.fill(value, 0, n);
}

export function toBf16(src: Float32Array, dst: Uint16Array, n: number): void {
  needLength("toBf16", "src", src, n);
  needLength("toBf16", "dst", dst, n);
  for (let i = 0; i < n; i++) dst[i] = floatToBf16(src[i]!);
}

// out[c] = Σ_r x[r, c]
export function sumRows(x: FloatArray, out: FloatArray, rows: number, cols: number): void {
  needCounts("sumRows", { rows, cols });
  needLength("sumRows", "x", x, rows * cols);
  const acc = scratch(SUM_ROWS, cols);
  acc.fill(0, 0, cols);
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    for (let c = 0; c < cols; c++) acc[c] += x[row + c];
  }
  store(out, acc, cols);
}

// Σ x
export function sum(x: FloatArray, n: number): number {
  let acc = 0;
  for (let i = 0; i < n; i++) acc += x[i];
  return acc;
}

// Σ x²
export function sumSquares(x: FloatArray, n: number): number {
  let acc = 0;
  for (let i = 0; i < n; i++) acc += x[i] * x[i];
  return acc;
}

function needDropP(kernel: string, p: number): void {
  if (!(p >= 0 && p < 1)) throw new Error(`${kernel}: p must be in [0, 1), got ${p}`);
}

// out = x · keep(i) / (1 − p)
export function dropout(x: FloatArray, out: FloatArray, n: number, p: number, seed: number): void {
  needDropP("dropout", p);
  if (p === 0) {
    for (let i = 0; i < n; i++) out[i] = x[i];
    return;
  }
  const s = 1 / (1 - p);
  for (let i = 0; i < n; i++) out[i] = dropoutKeep(seed, i, p) ? x[i] * s : 0;
}

// gx = gOut · keep(i) / (1 − p): the same mask as the forward pass
export function dropoutBackward(gOut: FloatArray, gx: FloatArray, n: number, p: number, seed: number): void {
  needDropP("dropoutBackward", p);
  dropout(gOut, gx, n, p, seed);
}

// p ← p(1 − lr·wd); m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²; p ← p − (lr/bc1)·m / (√v/√bc2 + eps)
export function adamw(
  param: FloatArray,
  grad: FloatArray,
  m: FloatArray,
  v: FloatArray,
  n: number,
  args: AdamWArgs,
): void {
  const { lr, beta1, beta2, eps, weightDecay, biasCorrection1, biasCorrection2 } = args;
  const decay = 1 - lr * weightDecay;
  const stepSize = lr / biasCorrection1;
  const sqrtBc2 = Math.sqrt(biasCorrection2);
  for (let i = 0; i < n; i++) {
    const g = grad[i];
    const mi = beta1 * m[i] + (1 - beta1) * g;
    const vi = beta2 * v[i] + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * decay - (stepSize * mi) / (Math.sqrt(vi) / sqrtBc2 + eps);
  }
}
