// GGUF v3, the file format of llama.cpp (ggml/docs/gguf.md):
//   "GGUF" · u32 version · u64 tensor_count · u64 kv_count
//   kv_count × (string key · u32 value_type · value)          string = u64 length + UTF-8 bytes
//   tensor_count × (string name · u32 n_dims · u64 ne[n_dims] · u32 ggml_type · u64 offset)
//   padding to general.alignment (default 32), then the tensor data, each tensor at an aligned offset.
// ne[0] is the innermost (fastest-varying) dimension, so a row-major [rows, cols] matrix has ne = [cols, rows].
// The reader trusts nothing: every count, length, shape and offset is checked against the bytes that are
// actually there before anything is allocated, so a hostile file gives an Error, not a crash or a hang.

import { bf16ToFloat, floatToBf16 } from "../backend/bf16.js";
import {
  dequantizeBlocks,
  GGML_BLOCK,
  GgmlType,
  type GgmlTypeName,
  ggmlBytes,
  ggmlTypeName,
  quantizeBlocks,
} from "./ggml-quants.js";
import { floatToHalf, halfToFloat } from "./half.js";

export { GgmlType, type GgmlTypeName, ggmlBytes } from "./ggml-quants.js";

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types (gguf_type). */
export const GgufType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufTypeId = (typeof GgufType)[keyof typeof GgufType];

/** A metadata value with its GGUF type; arrays carry their element type. */
export type GgufValue =
  | { type: "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "f64"; value: number }
  | { type: "u64" | "i64"; value: bigint }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "array"; itemType: "string"; value: string[] }
  | { type: "array"; itemType: Exclude<ScalarName, "string" | "u64" | "i64" | "bool">; value: number[] }
  | { type: "array"; itemType: "u64" | "i64"; value: bigint[] }
  | { type: "array"; itemType: "bool"; value: boolean[] };

type ScalarName =
  | "u8"
  | "i8"
  | "u16"
  | "i16"
  | "u32"
  | "i32"
  | "f32"
  | "f64"
  | "u64"
  | "i64"
  | "bool"
  | "string";

const TYPE_ID: Record<ScalarName, number> = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  u64: 10,
  i64: 11,
  f64: 12,
};
const TYPE_NAME = new Map<number, ScalarName>(Object.entries(TYPE_ID).map(([k, v]) => [v, k as ScalarName]));
/** Bytes per scalar (strings: the minimum, an empty string's length field). */
const TYPE_SIZE: Record<ScalarName, number> = {
  u8: 1,
  i8: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  bool: 1,
  string: 8,
  u64: 8,
  i64: 8,
  f64: 8,
};

export interface GgufTensor {
  name: string;
  /** Row-major shape, outermost first (the reverse of GGUF's ne). */
  shape: number[];
  type: GgmlTypeName;
  /** The encoded bytes (F32/F16/BF16 little-endian, or ggml blocks). */
  bytes: Uint8Array;
}

export interface GgufFile {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensor[];
  alignment: number;
}

// ---------------------------------------------------------------- tensor data codecs

/** Encodes float32 values (row-major, innermost dimension `cols`) as the given ggml type. */
export function encodeTensorData(values: Float32Array, cols: number, type: GgmlTypeName): Uint8Array {
  if (type === "F32")
    return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  if (type === "F16") {
    const out = new Uint16Array(values.length);
    for (let i = 0; i < values.length; i++) out[i] = floatToHalf(values[i]!);
    return new Uint8Array(out.buffer);
  }
  if (type === "BF16") {
    const out = new Uint16Array(values.length);
    for (let i = 0; i < values.length; i++) out[i] = floatToBf16(values[i]!);
    return new Uint8Array(out.buffer);
  }
  if (cols % GGML_BLOCK[type].size !== 0)
    throw new Error(`${type} needs rows whose length is a multiple of ${GGML_BLOCK[type].size}, got ${cols}`);
  return quantizeBlocks(type, values);
}

/** Decodes a tensor's bytes to float32 (F16, BF16 and the block types dequantised as ggml does). */
export function decodeTensorData(t: GgufTensor): Float32Array {
  const count = t.shape.reduce((p, d) => p * d, 1);
  if (t.type !== "F32" && t.type !== "F16" && t.type !== "BF16")
    return dequantizeBlocks(t.type, t.bytes, count);
  const dv = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  const out = new Float32Array(count);
  if (t.type === "F32") {
    for (let i = 0; i < count; i++) out[i] = dv.getFloat32(4 * i, true);
  } else if (t.type === "BF16") {
    for (let i = 0; i < count; i++) out[i] = bf16ToFloat(dv.getUint16(2 * i, true));
  } else {
    for (let i = 0; i < count; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
  }
  return out;
}

// ---------------------------------------------------------------- writer

/** Growable little-endian byte sink. */
class Sink {
  private buf = new Uint8Array(1 << 16);
  private dv = new DataView(this.buf.buffer);
  length = 0;
  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }
  u8(v: number) {
    this.room(1);
    this.dv.setUint8(this.length++, v);
  }
  u32(v: number) {
    this.room(4);
    this.dv.setUint32(this.length, v, true);
    this.length += 4;
  }
  u64(v: number | bigint) {
    this.room(8);
    this.dv.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  scalar(type: ScalarName, v: number | bigint | boolean | string) {
    const size = type === "string" ? 0 : TYPE_SIZE[type];
    this.room(size);
    const o = this.length;
    switch (type) {
      case "u8":
        this.dv.setUint8(o, v as number);
        break;
      case "i8":
        this.dv.setInt8(o, v as number);
        break;
      case "u16":
        this.dv.setUint16(o, v as number, true);
        break;
      case "i16":
        this.dv.setInt16(o, v as number, true);
        break;
      case "u32":
        this.dv.setUint32(o, v as number, true);
        break;
      case "i32":
        this.dv.setInt32(o, v as number, true);
        break;
      case "f32":
        this.dv.setFloat32(o, v as number, true);
        break;
      case "f64":
        this.dv.setFloat64(o, v as number, true);
        break;
      case "bool":
        this.dv.setUint8(o, v ? 1 : 0);
        break;
      case "u64":
        this.dv.setBigUint64(o, BigInt(v as bigint), true);
        break;
      case "i64":
        this.dv.setBigInt64(o, BigInt(v as bigint), true);
        break;
      case "string":
        this.string(v as string);
        return;
    }
    this.length += size;
  }
  string(s: string) {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.bytes(b);
  }
  bytes(b: Uint8Array) {
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  padTo(alignment: number) {
    const pad = (alignment - (this.length % alignment)) % alignment;
    this.room(pad);
    this.buf.fill(0, this.length, this.length + pad);
    this.length += pad;
  }
  result(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

/** Serialises a GGUF v3 file. general.alignment, if present in metadata, must be a u32 power of two. */
export function encodeGguf(metadata: Map<string, GgufValue>, tensors: GgufTensor[]): Uint8Array {
  const a = metadata.get("general.alignment");
  const alignment = a ? (a.value as number) : GGUF_DEFAULT_ALIGNMENT;
  if (a && a.type !== "u32") throw new Error("gguf: general.alignment must be a u32");
  if (!Number.isInteger(alignment) || alignment < 1 || (alignment & (alignment - 1)) !== 0)
    throw new Error(`gguf: alignment ${alignment} is not a power of two`);
  const s = new Sink();
  s.u32(GGUF_MAGIC);
  s.u32(GGUF_VERSION);
  s.u64(tensors.length);
  s.u64(metadata.size);
  for (const [key, v] of metadata) {
    s.string(key);
    if (v.type === "array") {
      s.u32(GgufType.ARRAY);
      s.u32(TYPE_ID[v.itemType]);
      s.u64(v.value.length);
      for (const x of v.value) s.scalar(v.itemType, x);
    } else {
      s.u32(TYPE_ID[v.type]);
      s.scalar(v.type, v.value);
    }
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    const count = t.shape.reduce((p, d) => p * d, 1);
    if (t.bytes.length !== ggmlBytes(t.type, count))
      throw new Error(
        `gguf: ${t.name} has ${t.bytes.length} bytes, [${t.shape}] ${t.type} needs ${ggmlBytes(t.type, count)}`,
      );
    s.string(t.name);
    s.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) s.u64(t.shape[i]!);
    s.u32(GgmlType[t.type]);
    s.u64(offset);
    offsets.push(offset);
    offset += Math.ceil(t.bytes.length / alignment) * alignment;
  }
  s.padTo(alignment);
  for (const t of tensors) {
    s.bytes(t.bytes);
    s.padTo(alignment);
  }
  return s.result();
}

// ---------------------------------------------------------------- reader

/** Limits a well-formed model file never comes near; they stop hostile counts before any allocation. */
export const GGUF_LIMITS = {
  maxTensors: 1_000_000,
  maxKeys: 1_000_000,
  maxStringBytes: 1 << 26,
  maxDims: 4,
  maxAlignment: 1 << 16,
};

/** Parses a GGUF v2/v3 file; `where` names the file in errors. Tensor bytes are views into `buf`. */
export function decodeGguf(buf: Uint8Array, where = "gguf"): GgufFile {
  const fail = (why: string): never => {
    throw new Error(`${where}: not a valid GGUF file: ${why}`);
  };
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 0;
  const need = (n: number, what: string) => {
    if (pos + n > buf.length)
      fail(`truncated: ${what} needs ${n} bytes at offset ${pos}, the file has ${buf.length}`);
  };
  const u32 = (what: string) => {
    need(4, what);
    pos += 4;
    return dv.getUint32(pos - 4, true);
  };
  const u64 = (what: string): number => {
    need(8, what);
    const v = dv.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`${what} ${v} is too large`);
    return Number(v);
  };
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  const str = (what: string): string => {
    const n = u64(`${what} length`);
    if (n > GGUF_LIMITS.maxStringBytes)
      fail(`${what} length ${n} exceeds ${GGUF_LIMITS.maxStringBytes} bytes`);
    need(n, what);
    pos += n;
    try {
      return utf8.decode(buf.subarray(pos - n, pos));
    } catch {
      return fail(`${what} is not valid UTF-8`);
    }
  };
  const scalar = (type: ScalarName, what: string): number | bigint | boolean | string => {
    if (type === "string") return str(what);
    need(TYPE_SIZE[type], what);
    const o = pos;
    pos += TYPE_SIZE[type];
    switch (type) {
      case "u8":
        return dv.getUint8(o);
      case "i8":
        return dv.getInt8(o);
      case "u16":
        return dv.getUint16(o, true);
      case "i16":
        return dv.getInt16(o, true);
      case "u32":
        return dv.getUint32(o, true);
      case "i32":
        return dv.getInt32(o, true);
      case "f32":
        return dv.getFloat32(o, true);
      case "f64":
        return dv.getFloat64(o, true);
      case "bool": {
        const b = dv.getUint8(o);
        if (b > 1) fail(`${what}: bool value ${b} is neither 0 nor 1`);
        return b === 1;
      }
      case "u64":
        return dv.getBigUint64(o, true);
      case "i64":
        return dv.getBigInt64(o, true);
    }
  };
  const typeName = (id: number, what: string): ScalarName => {
    const t = TYPE_NAME.get(id);
    if (t === undefined) return fail(`${what} has unknown value type ${id}`);
    return t;
  };

  if (u32("magic") !== GGUF_MAGIC) fail("magic is not GGUF");
  const version = u32("version");
  if (version !== 2 && version !== 3) fail(`version ${version} is not supported (2 or 3)`);
  const tensorCount = u64("tensor count");
  const kvCount = u64("metadata count");
  if (tensorCount > GGUF_LIMITS.maxTensors)
    fail(`tensor count ${tensorCount} exceeds ${GGUF_LIMITS.maxTensors}`);
  if (kvCount > GGUF_LIMITS.maxKeys) fail(`metadata count ${kvCount} exceeds ${GGUF_LIMITS.maxKeys}`);
  // Each key/value takes at least 8 + 4 + 1 bytes and each tensor info at least 8 + 4 + 4 + 8.
  if (kvCount * 13 + tensorCount * 24 > buf.length - pos)
    fail(`${kvCount} metadata entries and ${tensorCount} tensors cannot fit in ${buf.length} bytes`);

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = str(`metadata key ${i}`);
    if (metadata.has(key)) fail(`metadata key ${key} appears twice`);
    const tid = u32(`type of ${key}`);
    if (tid === GgufType.ARRAY) {
      const item = typeName(u32(`array type of ${key}`), key);
      const n = u64(`array length of ${key}`);
      // Bounding the count by the bytes left means the loop below can never outrun the file.
      if (n * TYPE_SIZE[item] > buf.length - pos)
        fail(`${key}: array of ${n} ${item} values runs past the end of the file`);
      const values: unknown[] = new Array(n);
      for (let j = 0; j < n; j++) values[j] = scalar(item, `${key}[${j}]`);
      metadata.set(key, { type: "array", itemType: item, value: values } as GgufValue);
    } else {
      const type = typeName(tid, key);
      metadata.set(key, { type, value: scalar(type, key) } as GgufValue);
    }
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = metadata.get("general.alignment");
  if (al) {
    if (al.type !== "u32") fail("general.alignment must be a u32");
    alignment = al.value as number;
    if (alignment < 1 || alignment > GGUF_LIMITS.maxAlignment || (alignment & (alignment - 1)) !== 0)
      fail(`general.alignment ${alignment} is not a power of two up to ${GGUF_LIMITS.maxAlignment}`);
  }

  const infos: { name: string; shape: number[]; type: GgmlTypeName; offset: number; size: number }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = str(`tensor ${i} name`);
    if (names.has(name)) fail(`tensor ${name} appears twice`);
    names.add(name);
    const nDims = u32(`${name} n_dims`);
    if (nDims < 1 || nDims > GGUF_LIMITS.maxDims)
      fail(`${name}: n_dims ${nDims} is not 1..${GGUF_LIMITS.maxDims}`);
    const ne: number[] = [];
    let count = 1;
    for (let d = 0; d < nDims; d++) {
      const n = u64(`${name} ne[${d}]`);
      ne.push(n);
      count *= n;
      if (count > buf.length * 2) fail(`${name}: shape [${ne}] needs more bytes than the file holds`);
    }
    const typeId = u32(`${name} type`);
    const type = ggmlTypeName(typeId);
    if (type === undefined)
      fail(`${name}: ggml type ${typeId} is not supported (${Object.keys(GgmlType).join(", ")})`);
    if (ne[0]! % GGML_BLOCK[type!].size !== 0)
      fail(
        `${name}: ${type} rows of ${ne[0]} are not a multiple of its block size ${GGML_BLOCK[type!].size}`,
      );
    const offset = u64(`${name} offset`);
    if (offset % alignment !== 0)
      fail(`${name}: offset ${offset} is not a multiple of the alignment ${alignment}`);
    infos.push({ name, shape: ne.slice().reverse(), type: type!, offset, size: ggmlBytes(type!, count) });
  }
  const dataStart = Math.ceil(pos / alignment) * alignment;
  if (dataStart > buf.length && tensorCount > 0) fail("truncated before the tensor data");
  const dataLength = buf.length - dataStart;
  const tensors: GgufTensor[] = [];
  for (const t of infos) {
    if (t.offset + t.size > dataLength)
      fail(
        `${t.name}: [${t.offset}, ${t.offset + t.size}) lies outside the ${Math.max(0, dataLength)}-byte data section`,
      );
    tensors.push({
      name: t.name,
      shape: t.shape,
      type: t.type,
      bytes: buf.subarray(dataStart + t.offset, dataStart + t.offset + t.size),
    });
  }
  const sorted = [...infos].sort((x, y) => x.offset - y.offset);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.offset < sorted[i - 1]!.offset + sorted[i - 1]!.size)
      fail(`tensors ${sorted[i - 1]!.name} and ${sorted[i]!.name} overlap`);
  }
  return { version, metadata, tensors, alignment };
}

/** Typed metadata lookups for readers of a decoded file; errors name the key. */
export function metaNumber(file: GgufFile, key: string, where = "gguf"): number {
  const v = file.metadata.get(key);
  if (!v) throw new Error(`${where}: metadata ${key} is missing`);
  if (v.type === "array" || v.type === "string" || v.type === "bool")
    throw new Error(`${where}: metadata ${key} is a ${v.type}, expected a number`);
  const n = Number(v.value);
  if (!Number.isFinite(n)) throw new Error(`${where}: metadata ${key} is ${n}`);
  return n;
}

export function metaString(file: GgufFile, key: string, where = "gguf"): string {
  const v = file.metadata.get(key);
  if (!v) throw new Error(`${where}: metadata ${key} is missing`);
  if (v.type !== "string") throw new Error(`${where}: metadata ${key} is a ${v.type}, expected a string`);
  return v.value;
}
