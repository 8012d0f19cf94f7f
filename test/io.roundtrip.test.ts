// Export → import round trips for both formats and both families: identical weights and logits at F32,
// bounded error at F16/Q8_0; a foreign HF Llama checkpoint (BF16, inv_freq buffers, untied head, shards)
// imports; the rotary permutation inverts; the quantisation report states its size and loss cost.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { Tokenizer } from "../src/data/tokenizer.js";
import { quantizeBlocks } from "../src/io/ggml-quants.js";
import { decodeGguf, decodeTensorData, encodeGguf, type GgufValue } from "../src/io/gguf.js";
import { ggufToModel, modelToGguf, permuteRotary } from "../src/io/gguf-model.js";
import { floatToHalf, halfToFloat } from "../src/io/half.js";
import { hfTensors } from "../src/io/hf.js";
import { exportModel, importModel, quantizationReport } from "../src/io/index.js";
import { encodeSafetensors, type TensorToWrite } from "../src/io/safetensors.js";
import { blockParts, forward, type Model, type ModelConfig, mlpHidden } from "../src/nn/index.js";
import { noGrad, tidy } from "../src/tensor/index.js";
import { ioModel, ioTokenizer } from "./helpers/io-models.js";

const dir = mkdtempSync(join(tmpdir(), "afterscale-io-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const tokenizer = ioTokenizer();
const ids = Int32Array.from(tokenizer.encode("The quick brown fox jumps over the lazy dog."));

function logits(model: Model): Float32Array {
  return noGrad(() => tidy(() => Float32Array.from(forward(model, ids, 1, ids.length).data)));
}

/**
 * A config as the model it describes: every part resolved, the MLP width exact (mlpRatio is not stored),
 * and without zeroInit, which only says how training started.
 */
function resolved(c: ModelConfig): Record<string, unknown> {
  const { mlpRatio: _, zeroInit: _z, ...rest } = c;
  const { zeroInit: _i, ...parts } = blockParts(c);
  return { ...rest, ...parts, mlpHidden: mlpHidden(c) };
}

function assertSameModel(a: Model, b: Model, what: string): void {
  assert.deepEqual(resolved(b.config), resolved(a.config), `${what}: config`);
  assert.deepEqual([...b.params.keys()], [...a.params.keys()], `${what}: parameter names`);
  for (const [name, t] of a.params) assert.deepEqual(b.params.get(name)!.data, t.data, `${what}: ${name}`);
  assert.deepEqual(logits(b), logits(a), `${what}: logits`);
}

function assertSameTokenizer(a: Tokenizer | null, b: Tokenizer, what: string): void {
  assert.ok(a, `${what}: tokenizer missing`);
  assert.equal(a.hash, b.hash, `${what}: tokenizer differs`);
}

const cases: { family: "llama" | "gpt2"; tie: boolean; levers?: Partial<ModelConfig> }[] = [
  { family: "llama", tie: false },
  { family: "llama", tie: true },
  { family: "gpt2", tie: true },
  { family: "gpt2", tie: false },
  // Qwen3 (QK-norm), Llama with biases, and an MLP width that is no multiple of 32, with zero-init.
  { family: "llama", tie: false, levers: { qkNorm: true } },
  { family: "llama", tie: true, levers: { qkNorm: true, mlpHidden: 100 } },
  { family: "llama", tie: false, levers: { bias: true, mlpHidden: 100, zeroInit: true } },
  { family: "gpt2", tie: true, levers: { mlpHidden: 100 } },
];

for (const { family, tie, levers = {} } of cases) {
  const label = `${family}${Object.keys(levers).length ? ` ${JSON.stringify(levers)}` : ""}, ${tie ? "tied" : "untied"}`;
  const slug = `${family}-${tie}-${Object.keys(levers).join("-")}`;
  test(`GGUF F32 round trip: ${label}`, () => {
    const model = ioModel(family, tokenizer.vocabSize, tie, 5, levers);
    const out = join(dir, `${slug}.gguf`);
    exportModel(model, tokenizer, { format: "gguf", dtype: "f32", out });
    const back = importModel(out);
    assert.equal(back.format, "gguf");
    assertSameModel(model, back.model, "gguf");
    assertSameTokenizer(back.tokenizer, tokenizer, "gguf");
  });

  test(`Hugging Face round trip: ${label}`, () => {
    const model = ioModel(family, tokenizer.vocabSize, tie, 5, levers);
    const out = join(dir, `hf-${slug}`);
    const res = exportModel(model, tokenizer, { format: "hf", out });
    assert.ok(res.files.some((f) => f.endsWith("generation_config.json")));
    const back = importModel(out);
    assert.equal(back.format, "hf");
    assertSameModel(model, back.model, "hf");
    assertSameTokenizer(back.tokenizer, tokenizer, "hf");
    const cfg = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    assert.equal(cfg.tie_word_embeddings, tie);
    assert.equal(cfg.torch_dtype, "float32");
    const names = [...hfTensors(model).keys()];
    assert.equal(names.includes("lm_head.weight"), !tie, "lm_head is written only when untied");
    if (family === "gpt2") assert.ok(names.includes("transformer.h.0.attn.c_attn.weight"));
    else assert.ok(names.includes("model.layers.1.self_attn.k_proj.weight"));
    assert.equal(
      cfg.architectures[0],
      levers.qkNorm ? "Qwen3ForCausalLM" : family === "gpt2" ? "GPT2LMHeadModel" : "LlamaForCausalLM",
    );
    assert.equal(names.includes("model.layers.1.self_attn.q_norm.weight"), levers.qkNorm === true);
    assert.equal(cfg.intermediate_size ?? cfg.n_inner, mlpHidden(model.config), "the MLP width, exactly");
  });
}

test("an imported model reports its true MLP width, not a rounded ratio", () => {
  const model = ioModel("llama", tokenizer.vocabSize, false, 5, { mlpHidden: 100 });
  const out = join(dir, "hf-width");
  exportModel(model, tokenizer, { format: "hf", out });
  for (const path of [out, join(dir, "width.gguf")]) {
    if (path.endsWith(".gguf")) exportModel(model, tokenizer, { format: "gguf", out: path });
    const back = importModel(path).model.config;
    assert.equal(back.mlpHidden, 100);
    assert.equal(back.mlpRatio, 100 / 64);
  }
});

test("export refuses, naming the lever, what no target architecture expresses; nothing is written", () => {
  const refusals: [string, "llama" | "gpt2", Partial<ModelConfig>, RegExp][] = [
    ["softcap", "llama", { softcap: 30 }, /lever softcap 30/],
    ["softcap", "gpt2", { softcap: 30 }, /lever softcap 30/],
    ["relu2 MLP", "llama", { mlp: "relu2" }, /lever mlp relu2.*SwiGLU/],
    ["gelu MLP in llama", "llama", { mlp: "gelu" }, /lever mlp gelu/],
    ["swiglu MLP in gpt2", "gpt2", { mlp: "swiglu" }, /lever mlp swiglu.*GELU/],
    ["layernorm in llama", "llama", { norm: "layernorm" }, /lever norm layernorm/],
    ["learned positions in llama", "llama", { positions: "learned" }, /lever positions learned/],
    ["rope in gpt2", "gpt2", { positions: "rope" }, /lever positions rope/],
    ["qkNorm in gpt2", "gpt2", { qkNorm: true }, /lever qkNorm/],
    ["no biases in gpt2", "gpt2", { bias: false }, /lever bias false/],
    ["biases with qkNorm", "llama", { bias: true, qkNorm: true }, /lever bias with qkNorm/],
  ];
  for (const [what, family, levers, re] of refusals) {
    const model = ioModel(family, tokenizer.vocabSize, false, 5, levers);
    for (const format of ["hf", "gguf"] as const) {
      const out = join(dir, `refused-${format}-${what.replace(/ /g, "-")}`);
      assert.throws(() => exportModel(model, tokenizer, { format, out }), re, `${what} (${format})`);
      assert.throws(() => readFileSync(out), /ENOENT/, `${what} (${format}): nothing written`);
    }
  }
});

test("GGUF F16 and Q8_0: weights within the format's rounding, logits close", () => {
  const model = ioModel("llama", tokenizer.vocabSize, false);
  for (const dtype of ["f16", "q8_0"] as const) {
    const back = ggufToModel(modelToGguf(model, tokenizer, { dtype })).model;
    for (const [name, t] of model.params) {
      const b = back.params.get(name)!.data;
      let amax = 0;
      for (const x of t.data) amax = Math.max(amax, Math.abs(x));
      // F16: 2^-11 relative; Q8_0: half a step of a block's scale, at most amax/254 (plus the f16 scale's rounding).
      const bound = dtype === "f16" ? amax * 2 ** -10 : amax / 254 + amax * 2 ** -10;
      for (let i = 0; i < b.length; i++)
        assert.ok(Math.abs(b[i]! - t.data[i]!) <= bound, `${dtype} ${name}[${i}]: ${b[i]} vs ${t.data[i]}`);
    }
    const a = logits(model);
    const c = logits(back);
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - c[i]!));
    for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(a[i]!));
    // Relative to the largest logit (≈17 here): this deliberately sharp random model amplifies weight error.
    assert.ok(
      worst < (dtype === "f16" ? 0.005 : 0.05) * scale,
      `${dtype}: logits differ by ${worst} (max |logit| ${scale})`,
    );
  }
});

test("Q8_0 blocks: d = max|x|/127 as f16, q = round(x/d), exact for representable blocks", () => {
  const x = new Float32Array(64);
  for (let i = 0; i < 32; i++) x[i] = (i - 16) * 0.25; // amax 4 → d = 4/127
  const q = quantizeBlocks("Q8_0", x);
  assert.equal(q.length, 2 * 34);
  assert.equal(halfToFloat(q[0]! | (q[1]! << 8)), halfToFloat(floatToHalf(4 / 127)));
  const back = decodeTensorData({ name: "x", shape: [64], type: "Q8_0", bytes: q });
  for (let i = 0; i < 32; i++) assert.ok(Math.abs(back[i]! - x[i]!) <= 4 / 254 + 1e-3, `element ${i}`);
  for (let i = 32; i < 64; i++) assert.equal(back[i], 0, "an all-zero block stays zero");
});

test("half precision conversion rounds to nearest even", () => {
  assert.equal(floatToHalf(1), 0x3c00);
  assert.equal(floatToHalf(-2), 0xc000);
  assert.equal(floatToHalf(65504), 0x7bff);
  assert.equal(floatToHalf(65520), 0x7c00); // rounds up to infinity
  assert.equal(floatToHalf(0.1), 0x2e66);
  assert.equal(floatToHalf(2 ** -24), 0x0001); // smallest subnormal
  assert.equal(floatToHalf(2 ** -26), 0x0000);
  assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00); // tie → even
  assert.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02); // tie → even (up)
  assert.ok(Number.isNaN(halfToFloat(floatToHalf(Number.NaN))));
  for (let h = 0; h < 0x7c00; h += 7) assert.equal(floatToHalf(halfToFloat(h)), h, `half ${h}`);
});

test("the rotary permutation is convert_hf_to_gguf.py's and inverts", () => {
  // 2 heads of dim 4, d = 1: rows [h0: a0 a1 b0 b1, h1: ...] → interleaved [a0 b0 a1 b1].
  const w = Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual([...permuteRotary(w, 2, 4, 1)], [0, 2, 1, 3, 4, 6, 5, 7]);
  const big = Float32Array.from({ length: 4 * 8 * 3 }, (_, i) => i);
  assert.deepEqual(permuteRotary(permuteRotary(big, 4, 8, 3), 4, 8, 3, true), big);
});

test("GGUF metadata of every type survives a round trip", () => {
  const meta = new Map<string, GgufValue>([
    ["u8", { type: "u8", value: 200 }],
    ["i8", { type: "i8", value: -100 }],
    ["u16", { type: "u16", value: 60000 }],
    ["i16", { type: "i16", value: -30000 }],
    ["u32", { type: "u32", value: 4e9 }],
    ["i32", { type: "i32", value: -2e9 }],
    ["f32", { type: "f32", value: 0.5 }],
    ["f64", { type: "f64", value: Math.PI }],
    ["u64", { type: "u64", value: 2n ** 60n }],
    ["i64", { type: "i64", value: -(2n ** 60n) }],
    ["bool", { type: "bool", value: true }],
    ["string", { type: "string", value: "héllo ✓" }],
    ["strings", { type: "array", itemType: "string", value: ["a", "", "Ġb"] }],
    ["ints", { type: "array", itemType: "i32", value: [1, -2, 3] }],
    ["general.alignment", { type: "u32", value: 64 }],
  ]);
  const t = {
    name: "w",
    shape: [2, 3],
    type: "F32" as const,
    bytes: new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer),
  };
  const file = decodeGguf(encodeGguf(meta, [t, { ...t, name: "v" }]));
  assert.equal(file.alignment, 64);
  assert.deepEqual(file.metadata, meta);
  assert.deepEqual(
    file.tensors.map((x) => [x.name, x.shape]),
    [
      ["w", [2, 3]],
      ["v", [2, 3]],
    ],
  );
  assert.deepEqual([...decodeTensorData(file.tensors[1]!)], [1, 2, 3, 4, 5, 6]);
  assert.equal(file.tensors[1]!.bytes.byteOffset % 64, 0, "tensor data is aligned");
});

test("a Hugging Face Llama checkpoint written elsewhere imports (BF16, inv_freq, untied, sharded)", () => {
  const model = ioModel("llama", tokenizer.vocabSize, false);
  const ckpt = join(dir, "foreign");
  exportModel(model, null, { format: "hf", out: ckpt });
  rmSync(join(ckpt, "model.safetensors"));
  // Two shards, bfloat16 (truncated float32), plus the rotary buffers older transformers versions saved.
  const shards: Map<string, TensorToWrite>[] = [new Map(), new Map()];
  const weightMap: Record<string, string> = {};
  const bf16 = new Map<string, Float32Array>();
  let i = 0;
  for (const [name, t] of hfTensors(model)) {
    const u = new Uint32Array(Float32Array.from(t.values).buffer);
    const data = Uint16Array.from(u, (x) => x >>> 16);
    bf16.set(name, new Float32Array(Uint32Array.from(data, (x) => x << 16).buffer));
    const s = i++ % 2;
    shards[s]!.set(name, { dtype: "BF16", shape: t.shape, data });
    weightMap[name] = `model-0000${s + 1}-of-00002.safetensors`;
  }
  shards[0]!.set("model.layers.0.self_attn.rotary_emb.inv_freq", {
    dtype: "F32",
    shape: [8],
    data: new Float32Array(8),
  });
  weightMap["model.layers.0.self_attn.rotary_emb.inv_freq"] = "model-00001-of-00002.safetensors";
  for (const [k, s] of shards.entries()) {
    writeFileSync(join(ckpt, `model-0000${k + 1}-of-00002.safetensors`), encodeSafetensors(s));
  }
  writeFileSync(
    join(ckpt, "model.safetensors.index.json"),
    JSON.stringify({ metadata: {}, weight_map: weightMap }),
  );
  const back = importModel(ckpt);
  assert.equal(back.tokenizer, null);
  assert.ok(
    back.notes.some((n) => n.includes("inv_freq")),
    back.notes.join("; "),
  );
  assert.ok(back.notes.some((n) => n.includes("tokenizer")));
  for (const [name, v] of bf16) assert.deepEqual(back.model.params.get(name)!.data, v, name);
  assert.equal(back.model.config.tie, false);
});

test("import rejects what it cannot run, naming it", () => {
  const model = ioModel("llama", tokenizer.vocabSize, true);
  const ckpt = join(dir, "bad");
  exportModel(model, tokenizer, { format: "hf", out: ckpt });
  const cfgPath = join(ckpt, "config.json");
  const cfg = JSON.parse(readFileSync(cfgPath, "utf8"));
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, rope_scaling: { type: "linear", factor: 2 } }));
  assert.throws(() => importModel(ckpt), /rope_scaling is not supported/);
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, model_type: "mistral" }));
  assert.throws(() => importModel(ckpt), /model_type "mistral" is not supported/);
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, num_hidden_layers: 3 }));
  assert.throws(() => importModel(ckpt), /model\.layers\.2\.input_layernorm\.weight is missing/);
  assert.throws(() => exportModel(model, tokenizer, { format: "hf", dtype: "q8_0", out: ckpt }), /no Q8_0/);
  writeFileSync(join(dir, "junk.bin"), "not a model");
  assert.throws(() => importModel(join(dir, "junk.bin")), /neither a GGUF file nor/);
});

test("the Q8_0 report states the size reduction and the validation-loss change", () => {
  const model = ioModel("llama", tokenizer.vocabSize, false);
  const val = tokenizer.encode(
    "The quick brown fox jumps over the lazy dog. Small language models are trained. ".repeat(6),
  );
  const r = quantizationReport(model, tokenizer, val, "q8_0");
  assert.ok(r.sizeRatio > 2.5 && r.sizeRatio < 4, `size ratio ${r.sizeRatio}`);
  assert.equal(r.sizeRatio, r.f32Bytes / r.bytes);
  assert.ok(Number.isFinite(r.lossF32) && Number.isFinite(r.loss));
  assert.notEqual(r.loss, r.lossF32, "quantisation changes the loss a little");
  assert.ok(Math.abs(r.lossDelta) < 0.1 * r.lossF32, `loss change ${r.lossDelta}`);
  console.log(
    `Q8_0: ${r.f32Bytes} → ${r.bytes} bytes (×${r.sizeRatio.toFixed(2)} smaller), validation loss ${r.lossF32.toFixed(4)} → ${r.loss.toFixed(4)} (Δ ${r.lossDelta >= 0 ? "+" : ""}${r.lossDelta.toFixed(4)}) over ${r.windows} windows`,
  );
});
