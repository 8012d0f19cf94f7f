// Pointwise activations and softmax, each forward next to its backward.

import type { FloatArray } from "../backend.js";
import { needCounts, needLength } from "./scratch.js";

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

// y = 0.5·x·(1 + tanh(c·(x + a·x³)))
export function gelu(x: FloatArray, out: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) {
    const xi = x[i];
    out[i] = 0.5 * xi * (1 + Math.tanh(GELU_C * (xi + GELU_A * xi * xi * xi)));
  }
}

// dy/dx = 0.5·(1 + tanh u) + 0.5·x·(1 − tanh² u)·c·(1 + 3a·x²),  u = c·(x + a·x³)
export function geluBackward(x: FloatArray, gOut: FloatArray, gx: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) {
    const xi = x[i];
    const t = Math.tanh(GELU_C * (xi + GELU_A * xi * xi * xi));
    const dudx = GELU_C * (1 + 3 * GELU_A * xi * xi);
    gx[i] = gOut[i] * (0.5 * (1 + t) + 0.5 * xi * (1 - t * t) * dudx);
  }
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

// y = x·σ(x)
export function silu(x: FloatArray, out: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) out[i] = x[i] * sigmoid(x[i]);
}

// dy/dx = σ(x)·(1 + x·(1 − σ(x)))
export function siluBackward(x: FloatArray, gOut: FloatArray, gx: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) {
    const s = sigmoid(x[i]);
    gx[i] = gOut[i] * s * (1 + x[i] * (1 - s));
  }
}

// y = max(x, 0)²
export function relu2(x: FloatArray, out: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) out[i] = x[i] > 0 ? x[i] * x[i] : 0;
}

// dy/dx = 2·max(x, 0)
export function relu2Backward(x: FloatArray, gOut: FloatArray, gx: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) gx[i] = x[i] > 0 ? 2 * x[i] * gOut[i] : 0;
}

// y = cap·tanh(x/cap)
export function softcap(x: FloatArray, out: FloatArray, n: number, cap: number): void {
  for (let i = 0; i < n; i++) out[i] = cap * Math.tanh(x[i] / cap);
}

// dy/dx = 1 − tanh²(x/cap)
export function softcapBackward(
  x: FloatArray,
  gOut: FloatArray,
  gx: FloatArray,
  n: number,
  cap: number,
): void {
  for (let i = 0; i < n; i++) {
    const t = Math.tanh(x[i] / cap);
    gx[i] = gOut[i] * (1 - t * t);
  }
}

// y = silu(gate)·up
export function swiglu(gate: FloatArray, up: FloatArray, out: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

// gGate = gOut·up·silu'(gate);  gUp = gOut·silu(gate)
export function swigluBackward(
  gate: FloatArray,
  up: FloatArray,
  gOut: FloatArray,
  gGate: FloatArray,
  gUp: FloatArray,
  n: number,
): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    const u = up[i];
    const go = gOut[i];
    const s = sigmoid(g);
    gGate[i] = go * u * s * (1 + g * (1 - s));
    gUp[i] = go * g * s;
  }
}

// y_j = exp(x_j − max) / Σ_k exp(x_k − max), per row
export function softmax(x: FloatArray, out: FloatArray, rows: number, dim: number): void {
  needCounts("softmax", { rows, dim });
  needLength("softmax", "x", x, rows * dim);
  for (let r = 0; r < rows; r++) {
    const row = r * dim;
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < dim; j++) if (x[row + j] > max) max = x[row + j];
    let total = 0;
    for (let j = 0; j < dim; j++) total += Math.exp(x[row + j] - max);
    const inv = 1 / total;
    for (let j = 0; j < dim; j++) out[row + j] = Math.exp(x[row + j] - max) * inv;
  }
}

// gx_j = y_j·(g_j − Σ_k g_k·y_k), per row
export function softmaxBackward(
  y: FloatArray,
  gOut: FloatArray,
  gx: FloatArray,
  rows: number,
  dim: number,
): void {
  needCounts("softmaxBackward", { rows, dim });
  needLength("softmaxBackward", "y", y, rows * dim);
  for (let r = 0; r < rows; r++) {
    const row = r * dim;
    let dot = 0;
    for (let j = 0; j < dim; j++) dot += gOut[row + j] * y[row + j];
    for (let j = 0; j < dim; j++) gx[row + j] = y[row + j] * (gOut[row + j] - dot);
  }
}
