// Pointwise primitives the preference and RL losses are composed from: exp, log-sigmoid, clamp, minimum.

import type { FloatArray } from "../backend.js";

// y = e^x
export function exp(x: FloatArray, out: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) out[i] = Math.exp(x[i]);
}

// y = log σ(x) = min(x, 0) − log(1 + e^−|x|): no overflow and no log(0) in either tail
export function logSigmoid(x: FloatArray, out: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) {
    const xi = x[i];
    out[i] = Math.min(xi, 0) - Math.log1p(Math.exp(-Math.abs(xi)));
  }
}

// dy/dx = σ(−x) = 1 − σ(x)
export function logSigmoidBackward(x: FloatArray, gOut: FloatArray, gx: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) gx[i] = gOut[i] / (1 + Math.exp(x[i]));
}

function needBounds(kernel: string, lo: number, hi: number): void {
  if (!(lo <= hi)) throw new Error(`${kernel}: lower bound ${lo} must be <= upper bound ${hi}`);
}

// y = min(max(x, lo), hi)
export function clamp(x: FloatArray, out: FloatArray, n: number, lo: number, hi: number): void {
  needBounds("clamp", lo, hi);
  for (let i = 0; i < n; i++) out[i] = Math.min(Math.max(x[i], lo), hi);
}

// dy/dx = 1 on [lo, hi] (bounds included, as in PyTorch), else 0
export function clampBackward(
  x: FloatArray,
  gOut: FloatArray,
  gx: FloatArray,
  n: number,
  lo: number,
  hi: number,
): void {
  needBounds("clampBackward", lo, hi);
  for (let i = 0; i < n; i++) gx[i] = x[i] >= lo && x[i] <= hi ? gOut[i] : 0;
}

// y = min(a, b)
export function minimum(a: FloatArray, b: FloatArray, out: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) out[i] = Math.min(a[i], b[i]);
}

// the gradient goes to the smaller input; a tie splits it evenly (torch.minimum)
export function minimumBackward(
  a: FloatArray,
  b: FloatArray,
  gOut: FloatArray,
  ga: FloatArray,
  gb: FloatArray,
  n: number,
): void {
  for (let i = 0; i < n; i++) {
    const g = gOut[i];
    const ai = a[i];
    const bi = b[i];
    ga[i] = ai < bi ? g : ai === bi ? g / 2 : 0;
    gb[i] = bi < ai ? g : ai === bi ? g / 2 : 0;
  }
}
