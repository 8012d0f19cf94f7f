// Token shards on disk.
//
// A prepared dataset is a folder:
//   dataset.json         summary: tokenizer hash, vocab size, dtype, shards per split, token/document/byte counts
//   tokenizer.json       the Hugging Face tokenizer the tokens were made with
//   train-00000.bin …    token shards
//   val-00000.bin …
// Each .bin starts with a fixed 4096-byte header: UTF-8 JSON padded with spaces and ending in "\n", so
// `head -c 4096 file.bin` shows it. Token ids follow as little-endian uint16 (vocab ≤ 65536) or uint32,
// 4096-byte aligned, so the data part can be memory-mapped or viewed as a typed array in place.

import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { endianness } from "node:os";

export const SHARD_HEADER_BYTES = 4096;
export const SHARD_MAGIC = "afterscale-tokens";

export type TokenDtype = "uint16" | "uint32";
export type TokenArray = Uint16Array | Uint32Array;

export interface ShardHeader {
  magic: typeof SHARD_MAGIC;
  version: 1;
  split: string;
  shard: number;
  dtype: TokenDtype;
  /** Number of tokens in this shard. */
  count: number;
  vocabSize: number;
  tokenizerHash: string;
  /** Byte offset of the token data (always SHARD_HEADER_BYTES). */
  headerBytes: number;
}

/** The smallest dtype that holds every id of a vocabulary. */
export function dtypeForVocab(vocabSize: number): TokenDtype {
  return vocabSize <= 65536 ? "uint16" : "uint32";
}

function assertLittleEndian(): void {
  if (endianness() !== "LE") throw new Error("token shards are little-endian; this machine is big-endian");
}

/** Write one shard atomically (temp file, fsync, rename). */
export function writeShard(
  path: string,
  header: Omit<ShardHeader, "magic" | "version" | "headerBytes">,
  tokens: TokenArray,
): void {
  assertLittleEndian();
  const full: ShardHeader = { magic: SHARD_MAGIC, version: 1, ...header, headerBytes: SHARD_HEADER_BYTES };
  if (full.count !== tokens.length)
    throw new Error(`shard header count ${full.count} ≠ ${tokens.length} tokens`);
  const expected = full.dtype === "uint16" ? Uint16Array : Uint32Array;
  if (!(tokens instanceof expected))
    throw new Error(`shard dtype ${full.dtype} does not match the token array`);
  const json = JSON.stringify(full);
  const head = Buffer.alloc(SHARD_HEADER_BYTES, 0x20);
  if (Buffer.byteLength(json) + 1 > SHARD_HEADER_BYTES)
    throw new Error("shard header does not fit in 4096 bytes");
  head.write(json, 0, "utf8");
  head[SHARD_HEADER_BYTES - 1] = 0x0a;
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w");
  try {
    writeSync(fd, head);
    const data = new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength);
    for (let o = 0; o < data.length; ) o += writeSync(fd, data, o, Math.min(data.length - o, 1 << 26));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** Parse and check the header of a shard file's bytes. */
export function parseShardHeader(bytes: Uint8Array, path: string): ShardHeader {
  if (bytes.length < SHARD_HEADER_BYTES)
    throw new Error(`${path}: too short to be a token shard (${bytes.length} bytes)`);
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, SHARD_HEADER_BYTES).toString("utf8");
  let h: ShardHeader;
  try {
    h = JSON.parse(text) as ShardHeader;
  } catch {
    throw new Error(`${path}: the 4096-byte header is not JSON; not an afterscale token shard`);
  }
  if (h.magic !== SHARD_MAGIC)
    throw new Error(`${path}: not an afterscale token shard (magic ${JSON.stringify(h.magic)})`);
  if (h.version !== 1) throw new Error(`${path}: shard format version ${h.version} is not supported`);
  if (h.dtype !== "uint16" && h.dtype !== "uint32")
    throw new Error(`${path}: unknown dtype ${JSON.stringify(h.dtype)}`);
  const width = h.dtype === "uint16" ? 2 : 4;
  const expected = SHARD_HEADER_BYTES + h.count * width;
  if (bytes.length !== expected) {
    throw new Error(
      `${path}: ${bytes.length} bytes but the header promises ${h.count} ${h.dtype} tokens (${expected} bytes); truncated?`,
    );
  }
  return h;
}

/** Read a shard: its header and a typed-array view of its tokens (no copy). */
export function readShard(path: string): { header: ShardHeader; tokens: TokenArray } {
  assertLittleEndian();
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read shard ${path}: ${(e as Error).message}`);
  }
  const header = parseShardHeader(buf, path);
  let offset = buf.byteOffset + SHARD_HEADER_BYTES;
  let arrayBuffer = buf.buffer;
  if (offset % 4 !== 0) {
    // Typed arrays need aligned offsets; a pooled Buffer might not be. Copy in that rare case.
    arrayBuffer = buf.buffer.slice(offset, offset + buf.length - SHARD_HEADER_BYTES);
    offset = 0;
  }
  const tokens =
    header.dtype === "uint16"
      ? new Uint16Array(arrayBuffer, offset, header.count)
      : new Uint32Array(arrayBuffer, offset, header.count);
  return { header, tokens };
}
