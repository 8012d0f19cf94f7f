// LayerNorm and RMSNorm over the last dimension of x [rows, dim] (llm.c layout: per-row saved statistics).

import type { FloatArray } from "../backend.js";
import { needCounts, needLength, scratch, store } from "./scratch.js";

const GW = 0; // gw accumulator [dim]
const GB = 1; // gb accumulator [dim]

// y = (x − mean)·rstd·w + b,  rstd = 1/√(var + eps), var the biased variance
export function layerNorm(
  x: FloatArray,
  w: FloatArray,
  b: FloatArray,
  out: FloatArray,
  mean: FloatArray,
  rstd: FloatArray,
  rows: number,
  dim: number,
  eps: number,
): void {
  needCounts("layerNorm", { rows, dim });
  needLength("layerNorm", "x", x, rows * dim);
  needLength("layerNorm", "w", w, dim);
  needLength("layerNorm", "b", b, dim);
  for (let r = 0; r < rows; r++) {
    const row = r * dim;
    let total = 0;
    for (let j = 0; j < dim; j++) total += x[row + j];
    const mu = total / dim;
    let sq = 0;
    for (let j = 0; j < dim; j++) {
      const d = x[row + j] - mu;
      sq += d * d;
    }
    const rs = 1 / Math.sqrt(sq / dim + eps);
    for (let j = 0; j < dim; j++) out[row + j] = (x[row + j] - mu) * rs * w[j] + b[j];
    mean[r] = mu;
    rstd[r] = rs;
  }
}

// xhat = (x − mean)·rstd; dn = g·w;  gx = rstd·(dn − mean(dn) − xhat·mean(dn·xhat));  gw = Σ_r g·xhat;  gb = Σ_r g
export function layerNormBackward(
  gOut: FloatArray,
  x: FloatArray,
  w: FloatArray,
  mean: FloatArray,
  rstd: FloatArray,
  gx: FloatArray,
  gw: FloatArray,
  gb: FloatArray,
  rows: number,
  dim: number,
): void {
  needCounts("layerNormBackward", { rows, dim });
  needLength("layerNormBackward", "x", x, rows * dim);
  needLength("layerNormBackward", "gOut", gOut, rows * dim);
  const gwAcc = scratch(GW, dim);
  const gbAcc = scratch(GB, dim);
  gwAcc.fill(0, 0, dim);
  gbAcc.fill(0, 0, dim);
  for (let r = 0; r < rows; r++) {
    const row = r * dim;
    const mu = mean[r];
    const rs = rstd[r];
    let dnMean = 0;
    let dnXhatMean = 0;
    for (let j = 0; j < dim; j++) {
      const xhat = (x[row + j] - mu) * rs;
      const dn = gOut[row + j] * w[j];
      dnMean += dn;
      dnXhatMean += dn * xhat;
    }
    dnMean /= dim;
    dnXhatMean /= dim;
    for (let j = 0; j < dim; j++) {
      const g = gOut[row + j];
      const xhat = (x[row + j] - mu) * rs;
      gwAcc[j] += g * xhat;
      gbAcc[j] += g;
      gx[row + j] = rs * (g * w[j] - dnMean - xhat * dnXhatMean);
    }
  }
  store(gw, gwAcc, dim);
  store(gb, gbAcc, dim);
}

// y = x·rstd·w,  rstd = 1/√(mean(x²) + eps)
export function rmsNorm(
  x: FloatArray,
  w: FloatArray,
  out: FloatArray,
  rstd: FloatArray,
  rows: number,
  dim: number,
  eps: number,
): void {
  needCounts("rmsNorm", { rows, dim });
  needLength("rmsNorm", "x", x, rows * dim);
  needLength("rmsNorm", "w", w, dim);
  for (let r = 0; r < rows; r++) {
    const row = r * dim;
    let sq = 0;
    for (let j = 0; j < dim; j++) sq += x[row + j] * x[row + j];
    const rs = 1 / Math.sqrt(sq / dim + eps);
    for (let j = 0; j < dim; j++) out[row + j] = x[row + j] * rs * w[j];
    rstd[r] = rs;
  }
}

// gx_j = rstd·g_j·w_j − rstd³·x_j·mean(g·w·x);  gw = Σ_r g·x·rstd
export function rmsNormBackward(
  gOut: FloatArray,
  x: FloatArray,
  w: FloatArray,
  rstd: FloatArray,
  gx: FloatArray,
  gw: FloatArray,
  rows: number,
  dim: number,
): void {
  needCounts("rmsNormBackward", { rows, dim });
  needLength("rmsNormBackward", "x", x, rows * dim);
  needLength("rmsNormBackward", "gOut", gOut, rows * dim);
  const gwAcc = scratch(GW, dim);
  gwAcc.fill(0, 0, dim);
  for (let r = 0; r < rows; r++) {
    const row = r * dim;
    const rs = rstd[r];
    let gwxMean = 0;
    for (let j = 0; j < dim; j++) gwxMean += gOut[row + j] * w[j] * x[row + j];
    gwxMean /= dim;
    const rs3 = rs * rs * rs;
    for (let j = 0; j < dim; j++) {
      const g = gOut[row + j];
      const xj = x[row + j];
      gwAcc[j] += g * xj * rs;
      gx[row + j] = rs * g * w[j] - rs3 * xj * gwxMean;
    }
  }
  store(gw, gwAcc, dim);
}
