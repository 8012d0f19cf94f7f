// Quantized GGUF files: llama.cpp's per-tensor type rules, `afterscale quantize` (the same tensors as
// llama.cpp's own llama_model_quantize, and the same bytes as a direct export), import of every type, and
// the errors for inputs quantize must refuse.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { decodeTensorData, GgmlType } from "../src/io/gguf.js";
import {
  allowsQuantization,
  fallbackType,
  QUANT_PRESETS,
  type QuantModel,
  quantTensorType,
} from "../src/io/gguf-quant-rules.js";
import { quantizeGguf } from "../src/io/gguf-quantize.js";
import { decodeGguf, type GgufFile, ggufToModel, modelToGguf, quantizationTable } from "../src/io/index.js";
import { ioModel, ioTokenizer } from "./helpers/io-models.js";
import { QUANT_MODEL_CASES, quantSourceGguf } from "./helpers/quant-models.js";

const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "afterscale-quantize-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const tokenizer = ioTokenizer();

const llama32: QuantModel = { arch: "llama", layers: 32, heads: 32, kvHeads: 8, tied: false };

test("Q4_K_M gives attn_v and ffn_down Q6_K in llama.cpp's layers (use_more_bits), the head Q6_K", () => {
  const more = (name: string) =>
    Array.from({ length: 32 }, (_, i) => i).filter(
      (i) => quantTensorType(`blk.${i}.${name}.weight`, 4096, "q4_k_m", llama32) === "Q6_K",
    );
  // First and last eighth, and every third layer from the first eighth on (llama.cpp's Llama-2-7B mix).
  const want = [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31];
  assert.deepEqual(more("attn_v"), want);
  assert.deepEqual(more("ffn_down"), want);
  for (const name of ["attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"])
    assert.equal(quantTensorType(`blk.0.${name}.weight`, 4096, "q4_k_m", llama32), "Q4_K", name);
  assert.equal(quantTensorType("output.weight", 4096, "q4_k_m", llama32), "Q6_K");
  assert.equal(quantTensorType("token_embd.weight", 4096, "q4_k_m", llama32), "Q4_K");
  // gpt2's fused attn_qkv counts as attn_v; a tied token_embd is the output head.
  const gpt2: QuantModel = { arch: "gpt2", layers: 12, heads: 12, kvHeads: 12, tied: true };
  assert.equal(quantTensorType("blk.0.attn_qkv.weight", 768, "q4_k_m", gpt2), "Q6_K");
  assert.equal(quantTensorType("blk.5.attn_qkv.weight", 768, "q4_k_m", gpt2), "Q4_K");
  assert.equal(quantTensorType("token_embd.weight", 768, "q4_k_m", gpt2), "Q6_K");
  // Llama-2-70B (80 layers, GQA): attn_v not in the use_more_bits layers goes up to Q5_K.
  const llama70: QuantModel = { arch: "llama", layers: 80, heads: 64, kvHeads: 8, tied: false };
  assert.equal(quantTensorType("blk.11.attn_v.weight", 8192, "q4_k_m", llama70), "Q5_K");
  assert.equal(quantTensorType("blk.12.attn_v.weight", 8192, "q4_k_m", llama70), "Q6_K");
});

test("Q4_K_S, pure Q4_K, Q6_K and the 32-block presets follow llama.cpp", () => {
  assert.equal(quantTensorType("blk.3.attn_v.weight", 4096, "q4_k_s", llama32), "Q5_K");
  assert.equal(quantTensorType("blk.4.attn_v.weight", 4096, "q4_k_s", llama32), "Q4_K");
  assert.equal(quantTensorType("blk.3.ffn_down.weight", 11008, "q4_k_s", llama32), "Q5_K");
  assert.equal(quantTensorType("blk.4.ffn_down.weight", 11008, "q4_k_s", llama32), "Q4_K");
  assert.equal(quantTensorType("blk.3.ffn_down.weight", 1376, "q4_k_s", llama32), "Q5_1"); // 1376 % 256 ≠ 0
  assert.equal(quantTensorType("blk.4.ffn_down.weight", 1376, "q4_k_s", llama32), "Q5_0");
  assert.equal(quantTensorType("output.weight", 4096, "q4_k", llama32), "Q4_K", "--pure: no head rule");
  assert.equal(quantTensorType("blk.0.attn_v.weight", 4096, "q4_k", llama32), "Q4_K");
  assert.equal(quantTensorType("output.weight", 4096, "q6_k", llama32), "Q6_K");
  for (const p of ["q4_0", "q4_1", "q5_0"] as const) {
    assert.equal(quantTensorType("output.weight", 4096, p, llama32), "Q6_K", `${p} head`);
    assert.equal(quantTensorType("output.weight", 96, p, llama32), "Q8_0", `${p} head, 96 columns`);
    assert.equal(quantTensorType("blk.0.ffn_down.weight", 11008, p, llama32), p.toUpperCase());
  }
  assert.equal(quantTensorType("output.weight", 4096, "q8_0", llama32), "Q8_0");
});

test("rows the block does not divide fall back as llama.cpp does; norms and 1-D tensors are not quantized", () => {
  assert.equal(fallbackType("Q4_K", 64), "Q5_0");
  assert.equal(fallbackType("Q5_K", 64), "Q5_1");
  assert.equal(fallbackType("Q6_K", 64), "Q8_0");
  assert.equal(fallbackType("Q4_K", 48), "F16");
  assert.equal(fallbackType("Q8_0", 48), "F16");
  assert.equal(fallbackType("Q4_K", 512), "Q4_K");
  assert.equal(quantTensorType("output.weight", 48, "q4_k_m", llama32), "F16");
  assert.ok(allowsQuantization("blk.0.attn_q.weight", 2));
  assert.ok(!allowsQuantization("blk.0.attn_norm.weight", 2));
  assert.ok(!allowsQuantization("blk.0.attn_q.bias", 1));
  assert.ok(!allowsQuantization("blk.0.attn_q.weight", 1));
  assert.ok(!allowsQuantization("position_embd.weight", 2));
});

const meta = (f: GgufFile, key: string) => f.metadata.get(key)?.value;

test("quantize of an F32 export writes the same bytes as the quantized export itself", () => {
  for (const [family, tie, preset] of [
    ["llama", false, "q4_k_m"],
    ["llama", false, "q6_k"],
    ["gpt2", true, "q4_0"],
  ] as const) {
    const model = ioModel(family, tokenizer.vocabSize, tie, 3, { dModel: 256, mlpHidden: 256, layers: 1 });
    const f32 = modelToGguf(model, tokenizer, { dtype: "f32" });
    const direct = modelToGguf(model, tokenizer, { dtype: preset });
    const r = quantizeGguf(f32, preset);
    assert.ok(Buffer.from(r.bytes).equals(Buffer.from(direct)), `${family} ${preset}: bytes differ`);
    const file = decodeGguf(direct);
    assert.equal(meta(file, "general.file_type"), { q4_k_m: 15, q6_k: 18, q4_0: 2 }[preset]);
    assert.equal(meta(file, "general.quantization_version"), 2);
    // Norms, biases and GPT-2's position embeddings stay F32.
    for (const t of file.tensors)
      if (t.shape.length === 1 || t.name.includes("_norm") || t.name === "position_embd.weight")
        assert.equal(t.type, "F32", t.name);
    assert.ok(r.tensorBytesOut < r.tensorBytesIn / 3, `${preset}: ${r.tensorBytesIn} → ${r.tensorBytesOut}`);
  }
});

test("quantize reads F16 files, and refuses a quantized input or an unknown architecture", () => {
  const model = ioModel("llama", tokenizer.vocabSize, false, 3);
  const f16 = modelToGguf(model, tokenizer, { dtype: "f16" });
  const q = decodeGguf(quantizeGguf(f16, "q8_0").bytes);
  const src = decodeGguf(f16);
  const wq = q.tensors.find((t) => t.name === "blk.0.attn_q.weight")!;
  assert.equal(wq.type, "Q8_0");
  // The F16 values, quantized: within half a Q8_0 step of them (plus the scale's own f16 rounding, ≤ 127·2^-12 steps).
  const before = decodeTensorData(src.tensors.find((t) => t.name === "blk.0.attn_q.weight")!);
  const afterQ = decodeTensorData(wq);
  for (let b = 0; b < before.length; b += 32) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(before[b + j]!));
    for (let j = 0; j < 32; j++) assert.ok(Math.abs(afterQ[b + j]! - before[b + j]!) <= (amax / 127) * 0.6);
  }
  assert.throws(
    () => quantizeGguf(modelToGguf(model, tokenizer, { dtype: "q4_0" }), "q8_0", "m.gguf"),
    /m\.gguf: tensor token_embd\.weight is already Q4_0; quantize reads F32, F16 or BF16 files/,
  );
  const bytes = modelToGguf(model, tokenizer, { dtype: "f32" });
  const renamed = Buffer.from(bytes);
  const at = renamed.indexOf("llama", renamed.indexOf("general.architecture"));
  renamed.write("lla_a", at, "latin1");
  assert.throws(
    () => quantizeGguf(renamed, "q4_0", "x.gguf"),
    /x\.gguf: architecture lla_a is not supported/,
  );
});

test("import reads every quantized type back: the model holds the file's dequantized weights", () => {
  const model = ioModel("llama", tokenizer.vocabSize, false, 3, { dModel: 256, mlpHidden: 256, layers: 1 });
  const ref = model.params.get("model.layers.0.mlp.down_proj.weight")!.data;
  for (const preset of QUANT_PRESETS) {
    const bytes = modelToGguf(model, tokenizer, { dtype: preset });
    const file = decodeGguf(bytes);
    const imported = ggufToModel(bytes);
    const back = imported.model;
    assert.match(imported.notes.join("\n"), /tensors are dequantized to float32/);
    const t = file.tensors.find((x) => x.name === "blk.0.ffn_down.weight")!;
    const got = back.params.get("model.layers.0.mlp.down_proj.weight")!.data;
    assert.deepEqual(Array.from(got), Array.from(decodeTensorData(t)), `${preset} (${t.type})`);
    let err = 0;
    let scale = 0;
    for (let i = 0; i < ref.length; i++) {
      err = Math.max(err, Math.abs(got[i]! - ref[i]!));
      scale = Math.max(scale, Math.abs(ref[i]!));
    }
    assert.ok(err < 0.25 * scale, `${preset}: max error ${err} against max |w| ${scale}`);
  }
});

test("quantizationTable reports size and validation loss per type", () => {
  const model = ioModel("llama", tokenizer.vocabSize, false, 3, { dModel: 256, mlpHidden: 256, layers: 1 });
  const val = tokenizer.encode("The quick brown fox jumps over the lazy dog. ".repeat(8));
  const rows = quantizationTable(model, tokenizer, val, ["q8_0", "q4_k_m", "q4_0"], 2);
  const [q8, q4km, q40] = rows;
  assert.ok(q8!.bytes > q4km!.bytes && q4km!.bytes > q40!.bytes, "sizes order with bits");
  assert.ok(q8!.bitsPerWeight > 8 && q8!.bitsPerWeight < 9.5, `Q8_0 ${q8!.bitsPerWeight} bits per weight`);
  for (const r of rows) {
    assert.equal(r.lossF32, q8!.lossF32);
    assert.equal(r.lossDelta, r.loss - r.lossF32);
  }
  assert.ok(Math.abs(q8!.lossDelta) < Math.abs(q40!.lossDelta), "Q8_0 moves the loss less than Q4_0");
});

test("afterscale quantize writes the file and refuses to overwrite its input", () => {
  const model = ioModel("llama", tokenizer.vocabSize, false, 3);
  const input = join(dir, "m.f32.gguf");
  writeFileSync(input, modelToGguf(model, tokenizer, { dtype: "f32" }));
  const out = join(dir, "m.q4_k_m.gguf");
  const summary = JSON.parse(
    execFileSync(process.execPath, [cli, "quantize", input, out, "--type", "q4_k_m", "--json"], {
      encoding: "utf8",
    }),
  );
  assert.equal(summary.type, "q4_k_m");
  assert.ok(
    Buffer.from(readFileSync(out)).equals(Buffer.from(modelToGguf(model, tokenizer, { dtype: "q4_k_m" }))),
  );
  // 64-wide rows: every Q4_K tensor falls back to Q5_0, the Q6_K ones to Q8_0.
  assert.deepEqual(Object.keys(summary.tensorTypes).sort(), ["F32", "Q5_0", "Q8_0"]);
  const same = spawnSync(process.execPath, [cli, "quantize", input, input, "--type", "q4_0"], {
    encoding: "utf8",
  });
  assert.notEqual(same.status, 0);
  assert.match(same.stderr, /is the input file/);
  const bad = spawnSync(process.execPath, [cli, "quantize", input, out, "--type", "q3_k"], {
    encoding: "utf8",
  });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /expected one of q4_0/);
});

test("afterscale quantize writes the tensors llama.cpp's llama_model_quantize writes, byte for byte", () => {
  const fixture = JSON.parse(
    readFileSync(
      fileURLToPath(new URL("../../test/fixtures/quant/llama-quantize.json", import.meta.url)),
      "utf8",
    ),
  ) as {
    models: {
      name: string;
      sourceSha256: string;
      presets: Record<string, { name: string; ggmlType: number; sha256: string }[]>;
    }[];
  };
  const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
  assert.deepEqual(
    fixture.models.map((m) => m.name),
    QUANT_MODEL_CASES.map((c) => c.name),
  );
  for (const c of QUANT_MODEL_CASES) {
    const want = fixture.models.find((m) => m.name === c.name)!;
    const source = quantSourceGguf(c);
    assert.equal(
      sha(source),
      want.sourceSha256,
      `${c.name}: the source file changed; rerun tools/gen_quant_fixtures.py`,
    );
    for (const preset of c.presets) {
      const ours = decodeGguf(quantizeGguf(source, preset).bytes);
      const theirs = want.presets[preset]!;
      assert.deepEqual(ours.tensors.map((t) => t.name).sort(), theirs.map((t) => t.name).sort());
      for (const t of theirs) {
        const mine = ours.tensors.find((x) => x.name === t.name)!;
        assert.equal(GgmlType[mine.type], t.ggmlType, `${c.name} ${preset} ${t.name}: type ${mine.type}`);
        assert.equal(sha(mine.bytes), t.sha256, `${c.name} ${preset} ${t.name} (${mine.type}): bytes differ`);
      }
    }
  }
});
