// Weights kept in their ggml type: a GGUF tensor's bytes as a PackedMatrix (src/backend/backend.ts) that the
// matmulQuant kernel multiplies directly and that dequantizes rows on demand (row lookups, the reference
// backend) with the same codecs as import.

import { bf16ToFloat } from "../backend/bf16.js";
import type { PackedMatrix, PackedType } from "../backend/index.js";
import { dequantizeBlocks, GGML_BLOCK, type QuantTypeName } from "./ggml-quants.js";
import { halfToFloat } from "./half.js";

const HALF_BYTES: Partial<Record<PackedType, (h: number) => number>> = {
  F16: halfToFloat,
  BF16: bf16ToFloat,
};

/** Bytes of one row of `cols` weights in `type`, or null when the type's block does not divide the row. */
export function packedRowBytes(type: PackedType, cols: number): number | null {
  if (type === "F16" || type === "BF16") return 2 * cols;
  const b = GGML_BLOCK[type];
  return cols % b.size === 0 ? (cols / b.size) * b.bytes : null;
}

/** A [rows, cols] matrix of `type` over `bytes` (GGUF layout); checks that the bytes fit the shape. */
export function packMatrix(type: PackedType, rows: number, cols: number, bytes: Uint8Array): PackedMatrix {
  const rowBytes = packedRowBytes(type, cols);
  if (rowBytes === null)
    throw new Error(`${type}: a row of ${cols} weights is not a whole number of ${type} blocks`);
  if (bytes.length !== rows * rowBytes)
    throw new Error(`${type} [${rows}, ${cols}] needs ${rows * rowBytes} bytes, got ${bytes.length}`);
  const half = HALF_BYTES[type];
  const dequantizeRows = (r0: number, r1: number): Float32Array => {
    if (!(Number.isInteger(r0) && Number.isInteger(r1) && 0 <= r0 && r0 <= r1 && r1 <= rows))
      throw new Error(`${type} [${rows}, ${cols}]: rows ${r0}..${r1} are out of range`);
    const slice = bytes.subarray(r0 * rowBytes, r1 * rowBytes);
    if (!half) return dequantizeBlocks(type as QuantTypeName, slice, (r1 - r0) * cols);
    const out = new Float32Array((r1 - r0) * cols);
    const dv = new DataView(slice.buffer, slice.byteOffset, slice.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = half(dv.getUint16(2 * i, true));
    return out;
  };
  return { type, rows, cols, bytes, dequantizeRows };
}

/** Bytes of a matrix's rows in a different order: row i of the result is row order[i] of `m`. */
export function permutePackedRows(m: PackedMatrix, order: ArrayLike<number>): PackedMatrix {
  const rowBytes = m.bytes.length / m.rows;
  const out = new Uint8Array(m.bytes.length);
  for (let i = 0; i < order.length; i++)
    out.set(m.bytes.subarray(order[i]! * rowBytes, (order[i]! + 1) * rowBytes), i * rowBytes);
  return packMatrix(m.type, m.rows, m.cols, out);
}
