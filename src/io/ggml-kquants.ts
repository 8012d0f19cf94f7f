// ggml's K-quants: super-blocks of 256 weights with their own quantized block scales, bit-exact with
// quantize_row_q{4,5,6}_K_ref and dequantize_row_q{4,5,6}_K in ggml-quants.c (see ggml-quants.ts for how
// float32 arithmetic is reproduced: every float32 step is one Math.fround).
//
// Q4_K / Q5_K: 8 blocks of 32, each value = d·sc_j·q − dmin·m_j, q of 4 (5) bits, sc_j and m_j 6-bit
//   integers packed into 12 bytes; the per-block (scale, min) pair comes from make_qkx2_quants, a search
//   over candidate scales that minimises the weighted squared error.
// Q6_K: 16 blocks of 16, value = d·sc_j·(q − 32), q of 6 bits, sc_j an int8; the per-block scale comes from
//   make_qx_quants, a search over 19 candidate scales around max/−32 weighted by x².
import { floatToHalf, halfToFloat } from "./half.js";

const f = Math.fround;

/** Weights per K-quant super-block (QK_K). */
export const QK_K = 256;

/** ggml's nearest_int: round a float32 to the nearest integer, halves to even (|x| < 2^22). */
function nearestInt(x: number): number {
  return f(x + 12582912) - 12582912;
}

/**
 * make_qkx2_quants: levels L[i] ∈ [0, nmax] with x ≈ scale·L − min, choosing scale and min to minimise
 * Σ w·(scale·L − min − x)² over nstep + 1 candidate scales. Returns [scale, min] (min ≥ 0).
 */
function makeQkx2Quants(
  x: Float32Array,
  o: number,
  n: number,
  nmax: number,
  weights: Float32Array,
  L: Uint8Array,
  lo: number,
  laux: Uint8Array,
  rmin: number,
  rdelta: number,
  nstep: number,
): [number, number] {
  let min = x[o]!;
  let max = x[o]!;
  let sumW = weights[0]!;
  let sumX = f(sumW * x[o]!);
  for (let i = 1; i < n; i++) {
    const v = x[o + i]!;
    if (v < min) min = v;
    if (v > max) max = v;
    const w = weights[i]!;
    sumW = f(sumW + w);
    sumX = f(sumX + f(w * v));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, lo, lo + n);
    return [0, -min];
  }
  let iscale = f(nmax / f(max - min));
  let scale = f(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.max(0, Math.min(nmax, nearestInt(f(iscale * f(x[o + i]! - min)))));
    L[lo + i] = l;
    const diff = f(f(f(scale * l) + min) - x[o + i]!);
    bestError = f(bestError + f(weights[i]! * f(diff * diff)));
  }
  for (let is = 0; is <= nstep; is++) {
    // min is the best fit so far: later candidates measure from it, as ggml's loop does.
    iscale = f(f(f(rmin + f(rdelta * is)) + nmax) / f(max - min));
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestInt(f(iscale * f(x[o + i]! - min)))));
      laux[i] = l;
      const wl = f(weights[i]! * l);
      sumL = f(sumL + wl);
      sumL2 = f(sumL2 + f(wl * l));
      sumXL = f(sumXL + f(wl * x[o + i]!));
    }
    const D = f(f(sumW * sumL2) - f(sumL * sumL));
    if (!(D > 0)) continue;
    let thisScale = f(f(f(sumW * sumXL) - f(sumX * sumL)) / D);
    let thisMin = f(f(f(sumL2 * sumX) - f(sumL * sumXL)) / D);
    if (thisMin > 0) {
      thisMin = 0;
      thisScale = f(sumXL / sumL2);
    }
    let error = 0;
    for (let i = 0; i < n; i++) {
      const diff = f(f(f(thisScale * laux[i]!) + thisMin) - x[o + i]!);
      error = f(error + f(weights[i]! * f(diff * diff)));
    }
    if (error < bestError) {
      for (let i = 0; i < n; i++) L[lo + i] = laux[i]!;
      bestError = error;
      scale = thisScale;
      min = thisMin;
    }
  }
  return [scale, -min];
}

/**
 * make_qx_quants with rmse_type 1 and no importance weights: signed levels L[i] + nmax, nmax = 32, with
 * x ≈ scale·(L − nmax); tries 19 scales around −nmax/max and keeps the best x²-weighted fit.
 */
function makeQxQuants(x: Float32Array, o: number, n: number, nmax: number, L: Int8Array, lo: number): number {
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[o + i]!);
    if (ax > amax) {
      amax = ax;
      max = x[o + i]!;
    }
  }
  if (amax < f(1e-15)) {
    L.fill(0, lo, lo + n);
    return 0;
  }
  const level = (iscale: number, v: number) => Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * v))));
  const sums = (iscale: number): [number, number] => {
    let sumlx = 0;
    let suml2 = 0;
    for (let i = 0; i < n; i++) {
      const v = x[o + i]!;
      const l = level(iscale, v);
      const w = f(v * v);
      sumlx = f(sumlx + f(f(w * v) * l));
      suml2 = f(suml2 + f(f(w * l) * l));
    }
    return [sumlx, suml2];
  };
  const assign = (iscale: number) => {
    for (let i = 0; i < n; i++) L[lo + i] = nmax + level(iscale, x[o + i]!);
  };
  let iscale = f(-nmax / max);
  let [sumlx, suml2] = sums(iscale);
  assign(iscale);
  let scale = suml2 ? f(sumlx / suml2) : 0;
  let best = f(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = f(-f(nmax + f(f(0.1) * is)) / max);
    [sumlx, suml2] = sums(iscale);
    if (suml2 > 0 && f(sumlx * sumlx) > f(best * suml2)) {
      assign(iscale);
      scale = f(sumlx / suml2);
      best = f(scale * sumlx);
    }
  }
  return scale;
}

/** The 6-bit scale and min of block j, unpacked from the 12 scale bytes at q[o] (get_scale_min_k4). */
function scaleMinK4(j: number, q: Uint8Array, o: number): [number, number] {
  if (j < 4) return [q[o + j]! & 63, q[o + j + 4]! & 63];
  return [
    (q[o + j + 4]! & 0xf) | ((q[o + j - 4]! >> 6) << 4),
    (q[o + j + 4]! >> 4) | ((q[o + j]! >> 6) << 4),
  ];
}

/** Q4_K (bits 4) and Q5_K (bits 5): one super-block quantizer for both. */
function quantizeQxK(bits: 4 | 5) {
  const nmax = (1 << bits) - 1;
  const [rmin, rdelta, nstep] = bits === 4 ? [-1, f(0.1), 20] : [-0.5, f(0.1), 15];
  const blockBytes = bits === 4 ? 144 : 176;
  return (x: Float32Array, out: Uint8Array): void => {
    const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
    const L = new Uint8Array(QK_K);
    const laux = new Uint8Array(32);
    const weights = new Float32Array(32);
    const scales = new Float32Array(8);
    const mins = new Float32Array(8);
    for (let b = 0, o = 0; o < x.length; b += blockBytes, o += QK_K) {
      let maxScale = 0;
      let maxMin = 0;
      for (let j = 0; j < 8; j++) {
        const xo = o + 32 * j;
        let sumX2 = 0;
        for (let l = 0; l < 32; l++) sumX2 = f(sumX2 + f(x[xo + l]! * x[xo + l]!));
        const avX = f(Math.sqrt(f(sumX2 / 32)));
        for (let l = 0; l < 32; l++) weights[l] = f(avX + Math.abs(x[xo + l]!));
        const [s, m] = makeQkx2Quants(x, xo, 32, nmax, weights, L, 32 * j, laux, rmin, rdelta, nstep);
        scales[j] = s;
        mins[j] = m;
        if (scales[j]! > maxScale) maxScale = scales[j]!;
        if (mins[j]! > maxMin) maxMin = mins[j]!;
      }
      const invScale = maxScale > 0 ? f(63 / maxScale) : 0;
      const invMin = maxMin > 0 ? f(63 / maxMin) : 0;
      const sc = b + 4; // the 12 packed scale bytes
      for (let j = 0; j < 8; j++) {
        // uint8_t truncation, then at most 63
        const ls = Math.min(63, nearestInt(f(invScale * scales[j]!)) & 0xff);
        const lm = Math.min(63, nearestInt(f(invMin * mins[j]!)) & 0xff);
        if (j < 4) {
          out[sc + j] = ls;
          out[sc + j + 4] = lm;
        } else {
          out[sc + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
          out[sc + j - 4]! |= (ls >> 4) << 6;
          out[sc + j]! |= (lm >> 4) << 6;
        }
      }
      dv.setUint16(b, floatToHalf(f(maxScale / 63)), true);
      dv.setUint16(b + 2, floatToHalf(f(maxMin / 63)), true);
      const d = halfToFloat(dv.getUint16(b, true));
      const dmin = halfToFloat(dv.getUint16(b + 2, true));
      // Requantize against the rounded scales the file will actually hold.
      for (let j = 0; j < 8; j++) {
        const [s, m] = scaleMinK4(j, out, sc);
        const dj = f(d * s);
        if (!dj) continue;
        const dm = f(dmin * m);
        for (let i = 0; i < 32; i++) {
          const l = nearestInt(f(f(x[o + 32 * j + i]! + dm) / dj));
          L[32 * j + i] = Math.max(0, Math.min(nmax, l));
        }
      }
      // Pairs of blocks share 32 bytes: block 2k in the low nibbles, block 2k+1 in the high nibbles.
      const qh = b + 16;
      const qs = bits === 4 ? b + 16 : b + 48;
      if (bits === 5) out.fill(0, qh, qh + 32);
      for (let p = 0; p < 4; p++) {
        for (let l = 0; l < 32; l++) {
          const l1 = L[64 * p + l]!;
          const l2 = L[64 * p + 32 + l]!;
          out[qs + 32 * p + l] = (l1 & 15) | ((l2 & 15) << 4);
          if (bits === 5) out[qh + l]! |= ((l1 >> 4) << (2 * p)) | ((l2 >> 4) << (2 * p + 1));
        }
      }
    }
  };
}

export const quantizeQ4_K = quantizeQxK(4);
export const quantizeQ5_K = quantizeQxK(5);

function dequantizeQxK(bits: 4 | 5) {
  const blockBytes = bits === 4 ? 144 : 176;
  return (q: Uint8Array, y: Float32Array): void => {
    const dv = new DataView(q.buffer, q.byteOffset, q.byteLength);
    for (let b = 0, o = 0; o < y.length; b += blockBytes, o += QK_K) {
      const d = halfToFloat(dv.getUint16(b, true));
      const dmin = halfToFloat(dv.getUint16(b + 2, true));
      const qh = b + 16;
      const qs = bits === 4 ? b + 16 : b + 48;
      for (let p = 0; p < 4; p++) {
        const [s1, m1] = scaleMinK4(2 * p, q, b + 4);
        const [s2, m2] = scaleMinK4(2 * p + 1, q, b + 4);
        const [d1, min1, d2, min2] = [f(d * s1), f(dmin * m1), f(d * s2), f(dmin * m2)];
        for (let l = 0; l < 32; l++) {
          const byte = q[qs + 32 * p + l]!;
          const h = bits === 5 ? q[qh + l]! >> (2 * p) : 0;
          y[o + 64 * p + l] = f(f(d1 * ((byte & 15) | ((h & 1) << 4))) - min1);
          y[o + 64 * p + 32 + l] = f(f(d2 * ((byte >> 4) | ((h & 2) << 3))) - min2);
        }
      }
    }
  };
}

export const dequantizeQ4_K = dequantizeQxK(4);
export const dequantizeQ5_K = dequantizeQxK(5);

// Q6_K block: ql[128] (low nibbles), qh[64] (high 2 bits), scales[16] (int8), d (f16) at byte 208.
export function quantizeQ6_K(x: Float32Array, out: Uint8Array): void {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const L = new Int8Array(QK_K);
  const scales = new Float32Array(16);
  for (let b = 0, o = 0; o < x.length; b += 210, o += QK_K) {
    let maxScale = 0;
    let maxAbsScale = 0;
    for (let j = 0; j < 16; j++) {
      scales[j] = makeQxQuants(x, o + 16 * j, 16, 32, L, 16 * j);
      if (Math.abs(scales[j]!) > maxAbsScale) {
        maxAbsScale = Math.abs(scales[j]!);
        maxScale = scales[j]!;
      }
    }
    if (maxAbsScale < f(1e-15)) {
      out.fill(0, b, b + 210);
      continue;
    }
    const iscale = f(-128 / maxScale);
    dv.setUint16(b + 208, floatToHalf(f(1 / iscale)), true);
    for (let j = 0; j < 16; j++) dv.setInt8(b + 192 + j, Math.min(127, nearestInt(f(iscale * scales[j]!))));
    const d = halfToFloat(dv.getUint16(b + 208, true));
    for (let j = 0; j < 16; j++) {
      const dj = f(d * dv.getInt8(b + 192 + j));
      if (!dj) continue;
      for (let i = 0; i < 16; i++) {
        const l = nearestInt(f(x[o + 16 * j + i]! / dj));
        L[16 * j + i] = Math.max(-32, Math.min(31, l)) + 32;
      }
    }
    // Each half (128 weights) packs four rows of 32: low nibbles of rows 0|2 and 1|3 share ql bytes,
    // the high two bits of all four share one qh byte.
    for (let h = 0; h < 2; h++) {
      const ql = b + 64 * h;
      const qh = b + 128 + 32 * h;
      for (let l = 0; l < 32; l++) {
        const [q1, q2, q3, q4] = [0, 32, 64, 96].map((r) => L[128 * h + r + l]!);
        out[ql + l] = (q1! & 15) | ((q3! & 15) << 4);
        out[ql + 32 + l] = (q2! & 15) | ((q4! & 15) << 4);
        out[qh + l] = (q1! >> 4) | ((q2! >> 4) << 2) | ((q3! >> 4) << 4) | ((q4! >> 4) << 6);
      }
    }
  }
}

export function dequantizeQ6_K(q: Uint8Array, y: Float32Array): void {
  const dv = new DataView(q.buffer, q.byteOffset, q.byteLength);
  for (let b = 0, o = 0; o < y.length; b += 210, o += QK_K) {
    const d = halfToFloat(dv.getUint16(b + 208, true));
    for (let h = 0; h < 2; h++) {
      const ql = b + 64 * h;
      const qh = b + 128 + 32 * h;
      const sc = b + 192 + 8 * h;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const hb = q[qh + l]!;
        const v = [
          (q[ql + l]! & 15) | ((hb & 3) << 4),
          (q[ql + 32 + l]! & 15) | (((hb >> 2) & 3) << 4),
          (q[ql + l]! >> 4) | (((hb >> 4) & 3) << 4),
          (q[ql + 32 + l]! >> 4) | (((hb >> 6) & 3) << 4),
        ];
        for (let r = 0; r < 4; r++)
          y[o + 128 * h + 32 * r + l] = f(f(d * dv.getInt8(sc + is + 2 * r)) * (v[r]! - 32));
      }
    }
  }
}
