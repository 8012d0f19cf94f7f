// afterscale's ggml block codecs against ggml itself: test/fixtures/quant holds rows quantized by the
// ggml that node-llama-cpp ships (quantize_row_*_ref, the path llama-quantize takes without an importance
// matrix) and dequantized by its dequantize_row_*; tools/gen_quant_fixtures.py wrote them. afterscale must
// produce the same bytes, and decode them to the same float32 bits.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  bitsPerWeight,
  dequantizeBlocks,
  GGML_BLOCK,
  GgmlType,
  type QuantTypeName,
  quantizeBlocks,
} from "../src/io/ggml-quants.js";

const dir = fileURLToPath(new URL("../../test/fixtures/quant/", import.meta.url));
const manifest = JSON.parse(readFileSync(`${dir}manifest.json`, "utf8")) as {
  rows: number;
  cols: number;
  rowNames: string[];
  types: { name: QuantTypeName; ggmlType: number; blockSize: number; blockBytes: number }[];
};
const f32 = (file: string) => {
  const b = readFileSync(dir + file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const input = f32("input.f32");

test("the fixtures cover every block type afterscale writes, with ggml's ids and block layouts", () => {
  assert.deepEqual(
    manifest.types.map((t) => t.name).sort(),
    Object.keys(GGML_BLOCK)
      .filter((t) => t[0] === "Q")
      .sort(),
  );
  for (const t of manifest.types) {
    assert.equal(GgmlType[t.name], t.ggmlType, `${t.name} id`);
    assert.deepEqual(GGML_BLOCK[t.name], { size: t.blockSize, bytes: t.blockBytes }, `${t.name} block`);
  }
  assert.equal(bitsPerWeight("Q4_0"), 4.5);
  assert.equal(bitsPerWeight("Q6_K"), 6.5625);
});

for (const t of manifest.types) {
  test(`${t.name}: quantize gives ggml's bytes and dequantize ggml's floats, row by row`, () => {
    const golden = new Uint8Array(readFileSync(`${dir}${t.name.toLowerCase()}.bin`));
    const goldenBack = f32(`${t.name.toLowerCase()}.f32`);
    const rowBytes = (manifest.cols / t.blockSize) * t.blockBytes;
    for (let r = 0; r < manifest.rows; r++) {
      const x = input.subarray(r * manifest.cols, (r + 1) * manifest.cols);
      const q = quantizeBlocks(t.name, x);
      const want = golden.subarray(r * rowBytes, (r + 1) * rowBytes);
      const at = q.findIndex((b, i) => b !== want[i]);
      assert.equal(
        at,
        -1,
        `${t.name} row "${manifest.rowNames[r]}": byte ${at} is ${q[at]}, ggml wrote ${want[at]}`,
      );
      const back = dequantizeBlocks(t.name, want, manifest.cols);
      const wantBack = goldenBack.subarray(r * manifest.cols, (r + 1) * manifest.cols);
      // Bit patterns, so that -0 and +0 count as different.
      const bits = new Uint32Array(back.buffer);
      const wantBits = new Uint32Array(Float32Array.from(wantBack).buffer);
      const bad = bits.findIndex((b, i) => b !== wantBits[i]);
      assert.equal(
        bad,
        -1,
        `${t.name} row "${manifest.rowNames[r]}": value ${bad} is ${back[bad]}, ggml ${wantBack[bad]}`,
      );
    }
  });
}

test("a block count that does not divide the values is an error naming the type", () => {
  assert.throws(() => quantizeBlocks("Q4_K", new Float32Array(64)), /Q4_K quantizes blocks of 256/);
  assert.throws(() => dequantizeBlocks("Q4_0", new Uint8Array(17), 32), /Q4_0: 17 bytes/);
});
