// safetensors (Hugging Face): 8-byte little-endian header length N, N bytes of JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then the raw
// little-endian tensor bytes. The reader trusts nothing in the file: sizes, offsets, shapes and the
// header length are all checked against the file before anything is allocated.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { halfToFloat } from "./half.js";

export { floatToHalf, halfToFloat } from "./half.js";

export type SafetensorsDtype = "F32" | "F16" | "BF16" | "F64" | "I32" | "I64" | "U8" | "I8" | "U16" | "I16";

const DTYPE_BYTES: Record<SafetensorsDtype, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F64: 8,
  I32: 4,
  I64: 8,
  U8: 1,
  I8: 1,
  U16: 2,
  I16: 2,
};

/** Header limit: real headers are kilobytes; 100 MB is the reference implementation's own cap. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  /** The tensor's bytes (a view into the file buffer). */
  bytes: Uint8Array;
}

export interface SafetensorsFile {
  tensors: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
}

export interface TensorToWrite {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  data: ArrayBufferView;
}

/** Serialises tensors (in the given order) with 8-byte alignment of the data section, as the reference writer does. */
export function encodeSafetensors(
  tensors: Map<string, TensorToWrite>,
  metadata: Record<string, string> = {},
): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    const n = t.shape.reduce((p, d) => p * d, 1);
    const bytes = n * DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== bytes) {
      throw new Error(
        `safetensors: ${name} has ${t.data.byteLength} bytes, shape [${t.shape}] ${t.dtype} needs ${bytes}`,
      );
    }
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, "utf8");
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let pos = 8 + headerBytes.length;
  for (const t of tensors.values()) {
    const src = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    out.set(src, pos);
    pos += src.length;
  }
  return out;
}

/** Parses a safetensors buffer; `where` names the file in errors. */
export function decodeSafetensors(buf: Uint8Array, where = "safetensors"): SafetensorsFile {
  const fail = (why: string): never => {
    throw new Error(`${where}: not a valid safetensors file: ${why}`);
  };
  if (buf.length < 8) fail(`${buf.length} bytes is too short for the 8-byte header length`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const n = Number(n64);
  if (8 + n > buf.length) fail(`header length ${n} runs past the end of the ${buf.length}-byte file`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(8, 8 + n)));
  } catch (e) {
    fail(`header is not UTF-8 JSON (${(e as Error).message})`);
  }
  if (!header || typeof header !== "object" || Array.isArray(header)) fail("header is not a JSON object");
  const dataStart = 8 + n;
  const dataLength = buf.length - dataStart;
  const tensors = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  const ranges: [number, number, string][] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (!raw || typeof raw !== "object" || Array.isArray(raw)) fail("__metadata__ is not an object");
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") fail(`__metadata__.${k} is not a string`);
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!e || typeof e !== "object") fail(`entry ${name} is not an object`);
    if (typeof e.dtype !== "string" || !(e.dtype in DTYPE_BYTES))
      fail(`${name}: unsupported dtype ${String(e.dtype)}`);
    const dtype = e.dtype as SafetensorsDtype;
    if (!Array.isArray(e.shape) || e.shape.length > 8)
      fail(`${name}: shape must be an array of at most 8 dimensions`);
    let count = 1;
    for (const d of e.shape as unknown[]) {
      if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0)
        fail(`${name}: invalid dimension ${String(d)}`);
      count *= d as number;
      if (count > dataLength) fail(`${name}: shape [${e.shape}] needs more bytes than the file holds`);
    }
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(`${name}: data_offsets must be two non-negative integers`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end || end > dataLength)
      fail(`${name}: data_offsets [${begin}, ${end}] outside the ${dataLength}-byte data section`);
    if (end - begin !== count * DTYPE_BYTES[dtype]) {
      fail(
        `${name}: data_offsets cover ${end - begin} bytes but shape [${e.shape}] ${dtype} needs ${count * DTYPE_BYTES[dtype]}`,
      );
    }
    ranges.push([begin, end, name]);
    tensors.set(name, {
      dtype,
      shape: e.shape as number[],
      bytes: buf.subarray(dataStart + begin, dataStart + end),
    });
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i]![0] < ranges[i - 1]![1]) fail(`tensors ${ranges[i - 1]![2]} and ${ranges[i]![2]} overlap`);
  }
  return { tensors, metadata };
}

/** float32 values of an entry (F32, F16, BF16 or F64 converted); copies so the result is aligned. */
export function entryToFloat32(e: SafetensorsEntry, name = "tensor"): Float32Array {
  const n = e.shape.reduce((p, d) => p * d, 1);
  const copy = new Uint8Array(e.bytes);
  const dv = new DataView(copy.buffer);
  const out = new Float32Array(n);
  switch (e.dtype) {
    case "F32":
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
      return out;
    case "F64":
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
      return out;
    case "F16":
      for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
      return out;
    case "BF16": {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = dv.getUint16(2 * i, true) << 16;
      return out;
    }
    default:
      throw new Error(`${name}: dtype ${e.dtype} is not a floating-point type`);
  }
}

export function readSafetensors(path: string): SafetensorsFile {
  return decodeSafetensors(readFileSync(path), path);
}

/** Writes a file atomically: a temporary file in the same directory, fsync, then rename over the target. */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w");
  try {
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
