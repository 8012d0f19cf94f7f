// The safetensors and GGUF readers against hostile input: hand-made lies (sizes, offsets, counts, shapes,
// string lengths, huge headers), then 300 seeded mutations of a valid file each (byte flips, truncations,
// length-field rewrites). Every outcome must be a successful parse or an Error whose message names the
// file; never a crash, a hang or a giant allocation.
import assert from "node:assert/strict";
import { test } from "node:test";
import { byteTokenizer } from "../src/data/index.js";
import { decodeGguf, encodeGguf, type GgufValue } from "../src/io/gguf.js";
import { ggufToModel, modelToGguf } from "../src/io/gguf-model.js";
import { decodeSafetensors, encodeSafetensors } from "../src/io/safetensors.js";
import { createModel, parseModelConfig } from "../src/nn/index.js";
import { mulberry32 } from "./helpers/random.js";

const WHERE = "fuzzed.bin";

/** Runs `parse`; passes if it returns, or throws an Error whose message starts with the file name. */
function parsesOrNamesTheProblem(parse: () => unknown, what: string): "ok" | "error" {
  try {
    parse();
    return "ok";
  } catch (e) {
    assert.ok(e instanceof Error, `${what}: threw a non-Error ${String(e)}`);
    assert.ok(e.message.startsWith(WHERE), `${what}: unhelpful error "${e.message}"\n${e.stack}`);
    return "error";
  }
}

function validGguf(): Uint8Array {
  const config = parseModelConfig({
    family: "llama",
    vocab: 257,
    dModel: 32,
    layers: 1,
    heads: 2,
    kvHeads: 1,
    context: 16,
    mlpRatio: 2,
    normEps: 1e-5,
    ropeTheta: 10000,
    dropout: 0,
    tie: false,
  });
  return modelToGguf(createModel(config, 3), byteTokenizer(), { dtype: "q8_0" });
}

function validSafetensors(): Uint8Array {
  return encodeSafetensors(
    new Map([
      ["a", { dtype: "F32" as const, shape: [4, 8], data: new Float32Array(32).fill(1.5) }],
      ["b", { dtype: "F16" as const, shape: [3], data: new Uint16Array([0x3c00, 0, 0xc000]) }],
      ["c", { dtype: "I64" as const, shape: [2, 1], data: new BigInt64Array([1n, -1n]) }],
    ]),
    { format: "pt" },
  );
}

/** A mutated copy: flips, truncation, a rewritten 8- or 4-byte little-endian field, or a spliced run. */
function mutate(src: Uint8Array, rnd: () => number, headerBytes: number): Uint8Array {
  const pick = (n: number) => Math.floor(rnd() * n);
  const inHeader = () => (rnd() < 0.8 ? pick(Math.min(headerBytes, src.length)) : pick(src.length));
  const interesting = [
    0n,
    1n,
    7n,
    31n,
    255n,
    2n ** 31n - 1n,
    2n ** 32n,
    2n ** 53n,
    2n ** 63n,
    2n ** 64n - 1n,
  ];
  const kind = pick(5);
  if (kind === 0) return src.slice(0, pick(src.length)); // truncation
  const out = new Uint8Array(src); // a copy (Buffer#slice would share memory)
  const dv = new DataView(out.buffer);
  if (kind === 1) {
    for (let i = 0, n = 1 + pick(8); i < n; i++) out[inHeader()]! ^= 1 << pick(8);
  } else if (kind === 2) {
    const at = Math.min(inHeader(), out.length - 8);
    const v = rnd() < 0.7 ? interesting[pick(interesting.length)]! : BigInt(pick(src.length * 2));
    if (at >= 0) dv.setBigUint64(at, v, true);
  } else if (kind === 3) {
    const at = Math.min(inHeader(), out.length - 4);
    if (at >= 0) dv.setUint32(at, [0, 1, 5, 9, 13, 0xffffffff, pick(1 << 16)][pick(7)]!, true);
  } else {
    const from = pick(out.length);
    const to = inHeader();
    const n = Math.min(1 + pick(64), out.length - Math.max(from, to));
    out.copyWithin(to, from, from + Math.max(0, n));
  }
  return out;
}

test("safetensors: each kind of lie is a clear error", () => {
  const good = validSafetensors();
  const withHeader = (json: string, data = 0) => {
    const h = Buffer.from(json);
    const b = Buffer.alloc(8 + h.length + data);
    b.writeBigUInt64LE(BigInt(h.length));
    h.copy(b, 8);
    return b;
  };
  const cases: [Uint8Array, RegExp][] = [
    [good.subarray(0, 5), /too short/],
    [good.subarray(0, good.length - 1), /outside the .*data section|needs more bytes/],
    [
      (() => {
        const b = Buffer.from(good);
        b.writeBigUInt64LE(2n ** 62n);
        return b;
      })(),
      /exceeds the/,
    ],
    [
      (() => {
        const b = Buffer.from(good);
        b.writeBigUInt64LE(BigInt(good.length));
        return b;
      })(),
      /runs past the end/,
    ],
    [
      withHeader('{"a":{"dtype":"F32","shape":[1e15,1e15],"data_offsets":[0,4]}}', 4),
      /needs more bytes than the file holds/,
    ],
    [withHeader('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', 8), /cover 4 bytes but/],
    [withHeader('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}', 8), /outside/],
    [
      withHeader(
        '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}',
        8,
      ),
      /overlap/,
    ],
    [withHeader('{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}}', 4), /unsupported dtype/],
    [withHeader('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', 4), /invalid dimension/],
    [withHeader("[1,2]"), /not a JSON object/],
    [withHeader('{"a":'), /not UTF-8 JSON/],
  ];
  for (const [bytes, re] of cases) assert.throws(() => decodeSafetensors(bytes, WHERE), re);
});

test("GGUF: each kind of lie is a clear error", () => {
  const meta = new Map<string, GgufValue>([["general.architecture", { type: "string", value: "llama" }]]);
  const t = { name: "w", shape: [2, 32], type: "F32" as const, bytes: new Uint8Array(256) };
  const good = encodeGguf(meta, [t]);
  const edit = (f: (dv: DataView) => void) => {
    const b = good.slice();
    f(new DataView(b.buffer));
    return b;
  };
  // Layout: magic 0, version 4, tensor count 8, kv count 16, first key length 24, key 32..52, type 52, value length 56.
  const keyLen = "general.architecture".length;
  const valueLenAt = 32 + keyLen + 4;
  const tensorInfoAt = valueLenAt + 8 + "llama".length;
  const cases: [Uint8Array, RegExp][] = [
    [good.subarray(0, 3), /truncated/],
    [edit((dv) => dv.setUint32(0, 0x12345678, true)), /magic/],
    [edit((dv) => dv.setUint32(4, 7, true)), /version 7/],
    [edit((dv) => dv.setBigUint64(8, 2n ** 40n, true)), /tensor count/],
    [edit((dv) => dv.setBigUint64(16, 999_999n, true)), /cannot fit/],
    [edit((dv) => dv.setBigUint64(24, 2n ** 63n, true)), /too large/],
    [edit((dv) => dv.setBigUint64(24, 2n ** 30n, true)), /exceeds/],
    [edit((dv) => dv.setBigUint64(valueLenAt, 1000n, true)), /truncated/],
    [edit((dv) => dv.setUint32(32 + keyLen, 42, true)), /unknown value type 42/],
    [edit((dv) => dv.setUint32(tensorInfoAt + 8 + 1, 9, true)), /n_dims 9/],
    [edit((dv) => dv.setBigUint64(tensorInfoAt + 8 + 1 + 4, 2n ** 50n, true)), /needs more bytes|too large/],
    [edit((dv) => dv.setUint32(tensorInfoAt + 8 + 1 + 4 + 16, 10, true)), /ggml type 10 is not supported/], // Q2_K
    [
      edit((dv) => dv.setUint32(tensorInfoAt + 8 + 1 + 4 + 16, 12, true)), // Q4_K, on rows of 32
      /Q4_K rows of 32 are not a multiple of its block size 256/,
    ],
    [
      edit((dv) => dv.setBigUint64(tensorInfoAt + 8 + 1 + 4 + 16 + 4, 7n, true)),
      /not a multiple of the alignment/,
    ],
    [edit((dv) => dv.setBigUint64(tensorInfoAt + 8 + 1 + 4 + 16 + 4, 4096n, true)), /outside the/],
    [good.subarray(0, good.length - 1), /outside the/],
  ];
  for (const [bytes, re] of cases) assert.throws(() => decodeGguf(bytes, WHERE), re);
  // An array that claims more elements than there are bytes is refused before anything is allocated.
  const arr = encodeGguf(new Map([["x", { type: "array", itemType: "u32", value: [1, 2] }]]), []);
  const dv = new DataView(arr.buffer);
  dv.setBigUint64(24 + 8 + 1 + 4 + 4, 2n ** 50n, true);
  assert.throws(() => decodeGguf(arr, WHERE), /runs past the end/);
});

test("safetensors: 300 seeded mutations parse or fail with a named error", { timeout: 60_000 }, () => {
  const good = validSafetensors();
  const headerBytes = 8 + Number(new DataView(good.buffer).getBigUint64(0, true));
  const rnd = mulberry32(2024);
  const counts = { ok: 0, error: 0 };
  for (let i = 0; i < 300; i++) {
    const bytes = mutate(good, rnd, headerBytes);
    counts[parsesOrNamesTheProblem(() => decodeSafetensors(bytes, WHERE), `mutation ${i}`)]++;
  }
  console.log(`outcomes of 300 mutations: ${JSON.stringify(counts)}`);
  assert.ok(counts.error > 100 && counts.ok > 5, `outcomes ${JSON.stringify(counts)}`);
});

test("GGUF: 300 seeded mutations parse (and import) or fail with a named error", { timeout: 60_000 }, () => {
  const good = validGguf();
  const file = decodeGguf(good);
  const headerBytes = file.tensors[0]!.bytes.byteOffset;
  const rnd = mulberry32(7);
  const counts = { ok: 0, error: 0 };
  for (let i = 0; i < 300; i++) {
    const bytes = mutate(good, rnd, headerBytes);
    counts[parsesOrNamesTheProblem(() => ggufToModel(bytes, WHERE), `mutation ${i}`)]++;
  }
  console.log(`outcomes of 300 mutations: ${JSON.stringify(counts)}`);
  assert.ok(counts.error > 100 && counts.ok > 5, `outcomes ${JSON.stringify(counts)}`);
});
