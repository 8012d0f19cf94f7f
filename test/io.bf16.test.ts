// bf16 in both formats. Exporting with --dtype bf16 and importing back gives exactly the model whose weights
// were rounded to bf16 (round to nearest even): the same parameters bit for bit, so the same logits. GGUF
// keeps the 1-D tensors (norms, biases) F32 as convert_hf_to_gguf.py does and records MOSTLY_BF16 (32);
// safetensors stores every tensor BF16 as save_pretrained does. `quantize --type bf16` is llama-quantize's
// BF16, and a truncated BF16 tensor is refused with an error that names it.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { floatToBf16, roundArrayBf16 } from "../src/backend/bf16.js";
import { decodeGguf, decodeTensorData, metaNumber } from "../src/io/gguf.js";
import { ggufToModel, modelToGguf } from "../src/io/gguf-model.js";
import { exportModel, importModel, quantizationReport, quantizeGguf } from "../src/io/index.js";
import { decodeSafetensors, encodeSafetensors } from "../src/io/safetensors.js";
import { forward, type Model, type ModelConfig } from "../src/nn/index.js";
import { noGrad, parameter, tidy } from "../src/tensor/index.js";
import { ioModel, ioTokenizer } from "./helpers/io-models.js";

const dir = mkdtempSync(join(tmpdir(), "afterscale-bf16-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const tokenizer = ioTokenizer();
const ids = Int32Array.from(tokenizer.encode("The quick brown fox jumps over the lazy dog."));

function logits(model: Model): Float32Array {
  return noGrad(() => tidy(() => Float32Array.from(forward(model, ids, 1, ids.length).data)));
}

/** The model with the chosen parameters rounded to bf16 (the others kept float32). */
function rounded(model: Model, round: (name: string, shape: readonly number[]) => boolean): Model {
  const params = new Map(
    [...model.params].map(([name, t]) => {
      const data = round(name, t.shape) ? roundArrayBf16(t.data as Float32Array) : Float32Array.from(t.data);
      return [name, parameter(data, [...t.shape], name)] as const;
    }),
  );
  return { ...model, params };
}

function assertSameWeightsAndLogits(got: Model, want: Model, what: string): void {
  assert.deepEqual([...got.params.keys()], [...want.params.keys()], `${what}: parameter names`);
  for (const [name, t] of want.params)
    assert.deepEqual(got.params.get(name)!.data, t.data, `${what}: ${name}`);
  assert.deepEqual(logits(got), logits(want), `${what}: logits`);
}

const cases: { family: "llama" | "gpt2"; tie: boolean; levers?: Partial<ModelConfig> }[] = [
  { family: "llama", tie: false },
  { family: "llama", tie: true, levers: { qkNorm: true } },
  { family: "llama", tie: false, levers: { bias: true } },
  { family: "gpt2", tie: true },
  { family: "gpt2", tie: false },
];

for (const { family, tie, levers = {} } of cases) {
  const label = `${family}${Object.keys(levers).length ? ` ${JSON.stringify(levers)}` : ""}, ${tie ? "tied" : "untied"}`;
  const slug = `${family}-${tie}-${Object.keys(levers).join("-")}`;

  test(`GGUF BF16 round trip gives the model with its matrices rounded to bf16: ${label}`, () => {
    const model = ioModel(family, tokenizer.vocabSize, tie, 5, levers);
    const out = join(dir, `${slug}.gguf`);
    exportModel(model, tokenizer, { format: "gguf", dtype: "bf16", out });
    const bytes = readFileSync(out);
    const file = decodeGguf(bytes);
    assert.equal(metaNumber(file, "general.file_type", "bf16"), 32, "general.file_type is MOSTLY_BF16");
    assert.ok(!file.metadata.has("general.quantization_version"), "bf16 is not a quantized type");
    for (const t of file.tensors)
      assert.equal(t.type, t.shape.length === 2 ? "BF16" : "F32", `${t.name} [${t.shape}]`);
    assert.ok(
      file.tensors.some((t) => t.shape.length === 1),
      "the model has 1-D tensors kept F32",
    );
    const back = importModel(out);
    assert.equal(back.tokenizer?.hash, tokenizer.hash);
    assert.deepEqual(back.notes, [], "BF16 widens exactly: nothing to note");
    assertSameWeightsAndLogits(
      back.model,
      rounded(model, (_, shape) => shape.length === 2),
      "gguf",
    );
    const f32 = logits(model);
    const ours = logits(back.model);
    assert.notDeepEqual(ours, f32, "rounding to bf16 changes the logits");
  });

  test(`Hugging Face BF16 round trip gives the model with every weight rounded to bf16: ${label}`, () => {
    const model = ioModel(family, tokenizer.vocabSize, tie, 5, levers);
    const out = join(dir, `hf-${slug}`);
    exportModel(model, tokenizer, { format: "hf", dtype: "bf16", out });
    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    assert.equal(config.torch_dtype, "bfloat16");
    const st = decodeSafetensors(readFileSync(join(out, "model.safetensors")));
    for (const [name, e] of st.tensors) assert.equal(e.dtype, "BF16", name);
    const back = importModel(out);
    assert.equal(back.tokenizer?.hash, tokenizer.hash);
    assertSameWeightsAndLogits(
      back.model,
      rounded(model, () => true),
      "hf",
    );
  });
}

test("BF16 stores the high half of each float32 rounded to nearest even", () => {
  // One row of a weight, written through both formats; the bytes are floatToBf16's, and its ties go to even.
  const values = Float32Array.from([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -2.5, 3.3895313892515355e38, 1e-40, 0]);
  const want = Uint16Array.from(values, floatToBf16);
  assert.deepEqual([...want.slice(0, 3)], [0x3f80, 0x3f80, 0x3f82], "ties round to even");
  const model = ioModel("llama", tokenizer.vocabSize, false);
  const w = model.params.get("model.layers.0.self_attn.o_proj.weight")!.data;
  w.set(values, 0);
  const gguf = decodeGguf(modelToGguf(model, tokenizer, { dtype: "bf16" }));
  const t = gguf.tensors.find((x) => x.name === "blk.0.attn_output.weight")!;
  const first = (b: Uint8Array) => new Uint16Array(Uint8Array.from(b.subarray(0, 2 * values.length)).buffer);
  assert.deepEqual(first(t.bytes), want, "GGUF bytes");
  const out = join(dir, "hf-rne");
  exportModel(model, tokenizer, { format: "hf", dtype: "bf16", out });
  const e = decodeSafetensors(readFileSync(join(out, "model.safetensors"))).tensors.get(
    "model.layers.0.self_attn.o_proj.weight",
  )!;
  assert.deepEqual(first(e.bytes), want, "safetensors bytes");
});

test("quantize --type bf16 is llama-quantize's BF16; a BF16 file quantizes further", () => {
  for (const family of ["llama", "gpt2"] as const) {
    const model = ioModel(family, tokenizer.vocabSize, family === "gpt2", 5);
    const f32 = modelToGguf(model, tokenizer, { dtype: "f32" });
    const r = quantizeGguf(f32, "bf16", `${family}.gguf`);
    const file = decodeGguf(r.bytes);
    assert.equal(metaNumber(file, "general.file_type", family), 32);
    assert.equal(metaNumber(file, "general.quantization_version", family), 2);
    for (const t of file.tensors) {
      // llama-quantize leaves norms, 1-D tensors and GPT-2's position embeddings as they are.
      const kept = t.shape.length === 1 || t.name === "position_embd.weight";
      assert.equal(t.type, kept ? "F32" : "BF16", `${family} ${t.name}`);
    }
    assert.ok(r.tensorBytesOut < 0.6 * r.tensorBytesIn, "BF16 halves the matrices");
    // The same matrices as exporting BF16 directly.
    const exported = decodeGguf(modelToGguf(model, tokenizer, { dtype: "bf16" }));
    for (const t of file.tensors.filter((x) => x.type === "BF16"))
      assert.deepEqual(t.bytes, exported.tensors.find((x) => x.name === t.name)!.bytes, t.name);
    // BF16 → Q8_0: the source is read as the bf16 values it holds.
    const q8 = decodeGguf(quantizeGguf(r.bytes, "q8_0", `${family}-bf16.gguf`).bytes);
    const attn = q8.tensors.find((t) => t.name === "blk.0.attn_output.weight")!;
    assert.equal(attn.type, "Q8_0");
    const src = decodeTensorData(file.tensors.find((t) => t.name === "blk.0.attn_output.weight")!);
    const deq = decodeTensorData(attn);
    let amax = 0;
    for (const x of src) amax = Math.max(amax, Math.abs(x));
    for (let i = 0; i < src.length; i++)
      assert.ok(Math.abs(deq[i]! - src[i]!) <= amax / 254 + amax * 2 ** -10, `q8_0 element ${i}`);
  }
});

test("the bf16 export's report states its size and validation-loss cost", () => {
  const model = ioModel("llama", tokenizer.vocabSize, false);
  const val = tokenizer.encode(
    "The quick brown fox jumps over the lazy dog. Small language models are trained. ".repeat(6),
  );
  const r = quantizationReport(model, tokenizer, val, "bf16");
  assert.equal(r.dtype, "bf16");
  assert.ok(r.sizeRatio > 1.6 && r.sizeRatio < 2, `size ratio ${r.sizeRatio}`);
  assert.notEqual(r.loss, r.lossF32);
  assert.ok(Math.abs(r.lossDelta) < 0.01 * r.lossF32, `loss change ${r.lossDelta}`);
});

test("a truncated BF16 tensor is refused, naming the tensor; nothing half-read comes back", () => {
  const model = ioModel("llama", tokenizer.vocabSize, false);
  // GGUF: the file cut short inside the last tensor's data.
  const gguf = modelToGguf(model, tokenizer, { dtype: "bf16" });
  const last = decodeGguf(gguf).tensors.at(-1)!;
  assert.equal(last.type, "BF16");
  assert.throws(
    () => ggufToModel(gguf.subarray(0, gguf.length - 10), "cut.gguf"),
    new RegExp(`cut\\.gguf: .*${last.name.replace(/\./g, "\\.")}: .* lies outside the .*-byte data section`),
  );
  // safetensors: a BF16 entry whose data_offsets cover one value fewer than its shape needs.
  const short = encodeSafetensors(
    new Map([["w", { dtype: "BF16" as const, shape: [3], data: new Uint16Array([1, 2, 3]) }]]),
  );
  const text = Buffer.from(short).toString("latin1").replace('"data_offsets":[0,6]', '"data_offsets":[0,4]');
  assert.throws(
    () => decodeSafetensors(Buffer.from(text, "latin1"), "short.safetensors"),
    /short\.safetensors: .*w: data_offsets cover 4 bytes but shape \[3\] BF16 needs 6/,
  );
  // A checkpoint folder whose model.safetensors was cut short: import names the file and the tensor.
  const out = join(dir, "hf-cut");
  exportModel(model, tokenizer, { format: "hf", dtype: "bf16", out });
  const path = join(out, "model.safetensors");
  const bytes = readFileSync(path);
  writeFileSync(path, bytes.subarray(0, bytes.length - 10));
  assert.throws(() => importModel(out), /model\.safetensors: not a valid safetensors file: .* outside the/);
});
