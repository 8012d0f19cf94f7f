// ggml's tensor types: the table of block layouts, and the 32-element block codecs (Q4_0, Q4_1, Q5_0,
// Q5_1, Q8_0), bit-exact with ggml's reference quantizers (quantize_row_*_ref in ggml-quants.c, which is
// what llama-quantize runs when it has no importance matrix) and its dequantize_row_*. The 256-element
// K-quant super-blocks live in ggml-kquants.ts.
//
// Exactness. ggml computes in float32; JavaScript in float64. Every float32 operation below is written as
// one float64 operation rounded back with Math.fround: for +, -, ×, ÷ and √ of float32 operands that
// double rounding is provably the same as float32 rounding (53 ≥ 2·24 + 2), so each step lands on the bit
// pattern C gets. test/io.quants.test.ts holds this to ggml's own output, byte for byte.

import { GGML_TYPE_IDS } from "../backend/index.js";
import {
  dequantizeQ4_K,
  dequantizeQ5_K,
  dequantizeQ6_K,
  QK_K,
  quantizeQ4_K,
  quantizeQ5_K,
  quantizeQ6_K,
} from "./ggml-kquants.js";
import { floatToHalf, halfToFloat } from "./half.js";

const f = Math.fround;

/** The ggml_type ids of the tensor types afterscale reads and writes (ggml.h): F32 and the packed types. */
export const GgmlType = { F32: 0, ...GGML_TYPE_IDS } as const;
export type GgmlTypeName = keyof typeof GgmlType;
export type QuantTypeName = Exclude<GgmlTypeName, "F32" | "F16" | "BF16">;

/** Elements per block and bytes per block (F32/F16/BF16: one element). */
export const GGML_BLOCK: Record<GgmlTypeName, { size: number; bytes: number }> = {
  F32: { size: 1, bytes: 4 },
  F16: { size: 1, bytes: 2 },
  Q4_0: { size: 32, bytes: 2 + 16 }, // d (f16), 32 × 4-bit q
  Q4_1: { size: 32, bytes: 4 + 16 }, // d, m (f16), 32 × 4-bit q
  Q5_0: { size: 32, bytes: 2 + 4 + 16 }, // d, 32 high bits, 32 × low nibble
  Q5_1: { size: 32, bytes: 4 + 4 + 16 }, // d, m, 32 high bits, 32 × low nibble
  Q8_0: { size: 32, bytes: 2 + 32 }, // d, 32 × int8
  Q4_K: { size: QK_K, bytes: 4 + 12 + 128 }, // d, dmin, 8 × 6-bit (scale, min), 256 × 4-bit q
  Q5_K: { size: QK_K, bytes: 4 + 12 + 32 + 128 }, // as Q4_K plus 256 high bits
  Q6_K: { size: QK_K, bytes: 128 + 64 + 16 + 2 }, // low nibbles, high 2 bits, 16 × int8 scale, d
  BF16: { size: 1, bytes: 2 }, // the top half of a float32, rounded to nearest even
};

const GGML_NAMES = new Map<number, GgmlTypeName>(
  Object.entries(GgmlType).map(([k, v]) => [v, k as GgmlTypeName]),
);

/** The type with this ggml_type id, or undefined if afterscale does not read it. */
export function ggmlTypeName(id: number): GgmlTypeName | undefined {
  return GGML_NAMES.get(id);
}

/** Bits each weight costs in this type, block scales included (Q4_0: 4.5, Q4_K: 4.5, Q6_K: 6.5625). */
export function bitsPerWeight(type: GgmlTypeName): number {
  return (8 * GGML_BLOCK[type].bytes) / GGML_BLOCK[type].size;
}

/** Bytes of a tensor of `count` elements (a whole number of blocks; checked by the callers). */
export function ggmlBytes(type: GgmlTypeName, count: number): number {
  const b = GGML_BLOCK[type];
  return (count / b.size) * b.bytes;
}

/** Quantizes `x` (a whole number of blocks) as ggml's reference quantizer for `type` does. */
export function quantizeBlocks(type: QuantTypeName, x: Float32Array): Uint8Array {
  const b = GGML_BLOCK[type];
  if (x.length % b.size !== 0)
    throw new Error(`${type} quantizes blocks of ${b.size} values, got ${x.length} values`);
  const out = new Uint8Array((x.length / b.size) * b.bytes);
  QUANTIZE[type](x, out);
  return out;
}

/** Dequantizes blocks of `type` to float32, as ggml's dequantize_row_* does. */
export function dequantizeBlocks(type: QuantTypeName, bytes: Uint8Array, count: number): Float32Array {
  const b = GGML_BLOCK[type];
  if (count % b.size !== 0 || bytes.length !== (count / b.size) * b.bytes)
    throw new Error(`${type}: ${bytes.length} bytes do not hold ${count} values`);
  const out = new Float32Array(count);
  DEQUANTIZE[type](bytes, out);
  return out;
}

type Quantizer = (x: Float32Array, out: Uint8Array) => void;
type Dequantizer = (q: Uint8Array, y: Float32Array) => void;

/** The value of largest magnitude (the first one on ties), as Q4_0 and Q5_0 scale by it. */
function signedMax(x: Float32Array, o: number, n: number): number {
  let amax = 0;
  let max = 0;
  for (let j = 0; j < n; j++) {
    const v = x[o + j]!;
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  return max;
}

function minMax(x: Float32Array, o: number, n: number): [number, number] {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < n; j++) {
    const v = x[o + j]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return [min, max];
}

/** Q4_0 and Q5_0: d = max / -2^(bits-1), q = min(2^bits - 1, trunc(x/d + 2^(bits-1) + 0.5)). */
function symmetric(bits: 4 | 5): Quantizer {
  const half = 1 << (bits - 1);
  const top = (1 << bits) - 1;
  const bytes = GGML_BLOCK[bits === 4 ? "Q4_0" : "Q5_0"].bytes;
  return (x, out) => {
    const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
    for (let b = 0, o = 0; o < x.length; b += bytes, o += 32) {
      const d = f(signedMax(x, o, 32) / -half);
      const id = d ? f(1 / d) : 0;
      dv.setUint16(b, floatToHalf(d), true);
      const qs = b + (bits === 5 ? 6 : 2);
      let qh = 0;
      for (let j = 0; j < 16; j++) {
        const q0 = Math.min(top, Math.trunc(f(f(x[o + j]! * id) + half + 0.5)));
        const q1 = Math.min(top, Math.trunc(f(f(x[o + 16 + j]! * id) + half + 0.5)));
        out[qs + j] = (q0 & 15) | ((q1 & 15) << 4);
        qh |= ((q0 >> 4) << j) | ((q1 >> 4) << (j + 16));
      }
      if (bits === 5) dv.setUint32(b + 2, qh >>> 0, true);
    }
  };
}

/** Q4_1 and Q5_1: d = (max - min) / (2^bits - 1), m = min, q = trunc((x - min)/d + 0.5). */
function affine(bits: 4 | 5): Quantizer {
  const top = (1 << bits) - 1;
  const bytes = GGML_BLOCK[bits === 4 ? "Q4_1" : "Q5_1"].bytes;
  return (x, out) => {
    const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
    for (let b = 0, o = 0; o < x.length; b += bytes, o += 32) {
      const [min, max] = minMax(x, o, 32);
      const d = f(f(max - min) / top);
      const id = d ? f(1 / d) : 0;
      dv.setUint16(b, floatToHalf(d), true);
      dv.setUint16(b + 2, floatToHalf(min), true);
      const qs = b + (bits === 5 ? 8 : 4);
      let qh = 0;
      for (let j = 0; j < 16; j++) {
        // Q4_1 clamps to 15; Q5_1 (like ggml) relies on (x - min)/d never rounding past 31.
        let q0 = Math.trunc(f(f(f(x[o + j]! - min) * id) + 0.5));
        let q1 = Math.trunc(f(f(f(x[o + 16 + j]! - min) * id) + 0.5));
        if (bits === 4) [q0, q1] = [Math.min(top, q0), Math.min(top, q1)];
        out[qs + j] = (q0 & 15) | ((q1 & 15) << 4);
        qh |= (((q0 >> 4) & 1) << j) | (((q1 >> 4) & 1) << (j + 16));
      }
      if (bits === 5) dv.setUint32(b + 4, qh >>> 0, true);
    }
  };
}

/** Q8_0: d = max|x| / 127, q = round(x/d), halves away from zero (C's roundf). */
const quantizeQ8_0: Quantizer = (x, out) => {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let b = 0, o = 0; o < x.length; b += 34, o += 32) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[o + j]!));
    const d = f(amax / 127);
    const id = d ? f(1 / d) : 0;
    dv.setUint16(b, floatToHalf(d), true);
    for (let j = 0; j < 32; j++) {
      const v = f(x[o + j]! * id);
      dv.setInt8(b + 2 + j, Math.sign(v) * Math.round(Math.abs(v)));
    }
  }
};

/** Q4_0 / Q5_0 / Q4_1 / Q5_1: value = d·q (minus the offset 2^(bits-1)) or d·q + m. */
function dequantizeLegacy(bits: 4 | 5, withMin: boolean): Dequantizer {
  const bytes = GGML_BLOCK[bits === 4 ? (withMin ? "Q4_1" : "Q4_0") : withMin ? "Q5_1" : "Q5_0"].bytes;
  const offset = withMin ? 0 : 1 << (bits - 1);
  const head = withMin ? 4 : 2;
  return (q, y) => {
    const dv = new DataView(q.buffer, q.byteOffset, q.byteLength);
    for (let b = 0, o = 0; o < y.length; b += bytes, o += 32) {
      const d = halfToFloat(dv.getUint16(b, true));
      const m = withMin ? halfToFloat(dv.getUint16(b + 2, true)) : 0;
      const qh = bits === 5 ? dv.getUint32(b + head, true) : 0;
      const qs = b + head + (bits === 5 ? 4 : 0);
      for (let j = 0; j < 16; j++) {
        const q0 = (q[qs + j]! & 15) | (((qh >>> j) & 1) << 4);
        const q1 = (q[qs + j]! >> 4) | (((qh >>> (j + 16)) & 1) << 4);
        // Without a min there is nothing to add (adding 0 would turn ggml's -0 into +0).
        y[o + j] = withMin ? f(f(q0 * d) + m) : f((q0 - offset) * d);
        y[o + 16 + j] = withMin ? f(f(q1 * d) + m) : f((q1 - offset) * d);
      }
    }
  };
}

const dequantizeQ8_0: Dequantizer = (q, y) => {
  const dv = new DataView(q.buffer, q.byteOffset, q.byteLength);
  for (let b = 0, o = 0; o < y.length; b += 34, o += 32) {
    const d = halfToFloat(dv.getUint16(b, true));
    for (let j = 0; j < 32; j++) y[o + j] = f(dv.getInt8(b + 2 + j) * d);
  }
};

const QUANTIZE: Record<QuantTypeName, Quantizer> = {
  Q4_0: symmetric(4),
  Q4_1: affine(4),
  Q5_0: symmetric(5),
  Q5_1: affine(5),
  Q8_0: quantizeQ8_0,
  Q4_K: quantizeQ4_K,
  Q5_K: quantizeQ5_K,
  Q6_K: quantizeQ6_K,
};

const DEQUANTIZE: Record<QuantTypeName, Dequantizer> = {
  Q4_0: dequantizeLegacy(4, false),
  Q4_1: dequantizeLegacy(4, true),
  Q5_0: dequantizeLegacy(5, false),
  Q5_1: dequantizeLegacy(5, true),
  Q8_0: dequantizeQ8_0,
  Q4_K: dequantizeQ4_K,
  Q5_K: dequantizeQ5_K,
  Q6_K: dequantizeQ6_K,
};
