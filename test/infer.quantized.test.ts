// A quantized GGUF loaded through the model resolver keeps its matrices in their ggml type and runs on the
// matmulQuant kernel: no float32 copy, the same greedy tokens and nearly the same loss as the model run on
// its dequantized weights (the difference is the kernel's 8-bit activations, see native.quant.test.ts),
// native and reference backends agree, and training refuses it with a clear error.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { setBackend } from "../src/backend/index.js";
import { evaluate } from "../src/infer/evaluate.js";
import { generate } from "../src/infer/index.js";
import { ggufToModel, modelToGguf } from "../src/io/gguf-model.js";
import { forward, type Model, newKVCache } from "../src/nn/index.js";
import { linear, noGrad, Tensor, tidy } from "../src/tensor/index.js";
import { createOptimizer, loadModel, parseTrainConfig } from "../src/train/index.js";
import { IO_TEXTS, ioModel, ioTokenizer } from "./helpers/io-models.js";

const dir = mkdtempSync(join(tmpdir(), "afterscale-qinfer-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const tokenizer = ioTokenizer();
// 256-wide rows, so the K-quants apply without fallback. io-models.ts's weights are deliberately sharp
// (logits up to ~30), which magnifies the kernel's 8-bit activations into logit changes of up to 4; a
// quarter of that scale on the matrices gives logits of a few units, like a trained small model's.
const base = ioModel("llama", tokenizer.vocabSize, false, 9, {
  dModel: 256,
  mlpHidden: 256,
  heads: 2,
  kvHeads: 1,
  layers: 2,
});
for (const spec of base.specs)
  if (spec.shape.length === 2 && !spec.name.includes("embed")) {
    const d = base.params.get(spec.name)!.data;
    for (let i = 0; i < d.length; i++) d[i]! *= 0.25;
  }
const fileOf = (dtype: "q8_0" | "q4_0" | "q4_k_m" | "f16" | "bf16") => {
  const path = join(dir, `m.${dtype}.gguf`);
  writeFileSync(path, modelToGguf(base, tokenizer, { dtype }));
  return path;
};
const quiet = { warn: () => {} };
const text = IO_TEXTS.join(" ");

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

const logitsOf = (model: Model, ids: Int32Array) =>
  noGrad(() => tidy(() => Float64Array.from(forward(model, ids, 1, ids.length).data)));

test("loadModel keeps a GGUF's quantized matrices packed, with no float32 copy", () => {
  const packed = loadModel(fileOf("q4_k_m"), quiet).model;
  const types = new Map<string, string>();
  for (const [name, p] of packed.params) {
    if (p.shape.length === 2) {
      assert.ok(p.packed, `${name} is packed`);
      assert.equal(p.data.length, 0, `${name} holds no float32 values`);
      types.set(name, p.packed.type);
    } else assert.equal(p.packed, null);
  }
  assert.deepEqual(new Set(types.values()), new Set(["Q4_K", "Q6_K"]));
  const floats = loadModel(fileOf("q4_k_m"), { ...quiet, dequantize: true }).model;
  for (const p of floats.params.values()) assert.equal(p.packed, null);
});

/** Argmax and top-2 gap of each row of [rows, vocab] logits. */
function top(logits: Float64Array, vocab: number): { best: number; gap: number }[] {
  const out = [];
  for (let r = 0; r < logits.length / vocab; r++) {
    const row = logits.subarray(r * vocab, (r + 1) * vocab);
    let best = 0;
    for (let i = 1; i < vocab; i++) if (row[i]! > row[best]!) best = i;
    let second = -Infinity;
    for (let i = 0; i < vocab; i++) if (i !== best) second = Math.max(second, row[i]!);
    out.push({ best, gap: row[best]! - second });
  }
  return out;
}

/** Logits of each position fed one token at a time through the KV cache (decode: 1-row products). */
function decodeLogits(model: Model, ids: Int32Array): Float64Array {
  const cache = newKVCache(model, ids.length);
  const out = new Float64Array(ids.length * model.config.vocab);
  for (let t = 0; t < ids.length; t++)
    noGrad(() =>
      tidy(() =>
        out.set(forward(model, ids.subarray(t, t + 1), 1, 1, { cache }).data, t * model.config.vocab),
      ),
    );
  return out;
}

// bf16: the weights of sample/eval/serve in bf16 (a BF16 GGUF, e.g. exported from a bf16-mixed run).
for (const dtype of ["q8_0", "q4_0", "q4_k_m", "f16", "bf16"] as const) {
  test(`${dtype}: greedy tokens and loss on packed weights match the dequantized model`, () => {
    const path = fileOf(dtype);
    const packed = loadModel(path, quiet).model;
    const floats = loadModel(path, { ...quiet, dequantize: true }).model;
    const vocab = floats.config.vocab;
    // F16 and BF16 files hold every matrix in that type, and so does the packed model.
    if (dtype === "f16" || dtype === "bf16")
      for (const [name, p] of packed.params)
        if (p.shape.length === 2) assert.equal(p.packed?.type, dtype.toUpperCase(), name);
    // Decode: the dequantized model's greedy continuation, fed one token at a time to both. The packed
    // model picks the same token wherever the choice is not a near-tie (top-2 gap > 0.1 logit), and its
    // logits stay within 0.15 of the dequantized model's (8-bit activations; F16: float32 rounding only).
    const opts = { maxTokens: 48, temperature: 0, stopAtEndOfText: false };
    const greedy = generate(floats, tokenizer, "The quick brown fox", opts);
    const ids = Int32Array.from([...tokenizer.encode("The quick brown fox"), ...greedy.ids]);
    const lp = decodeLogits(packed, ids);
    const lf = decodeLogits(floats, ids);
    const [tp, tf] = [top(lp, vocab), top(lf, vocab)];
    let decided = 0;
    for (let t = 0; t < ids.length; t++)
      if (tf[t]!.gap > 0.1) {
        decided++;
        assert.equal(tp[t]!.best, tf[t]!.best, `${dtype} position ${t}: top-2 gap ${tf[t]!.gap}`);
      }
    assert.ok(
      decided >= 0.8 * ids.length,
      `${dtype}: only ${decided} of ${ids.length} positions are decided`,
    );
    assert.ok(
      maxAbsDiff(lp, lf) < (dtype === "f16" || dtype === "bf16" ? 1e-4 : 0.15),
      `${dtype}: max |Δlogit| ${maxAbsDiff(lp, lf)}`,
    );
    if (dtype === "q8_0" || dtype === "f16" || dtype === "bf16") {
      const again = generate(packed, tokenizer, "The quick brown fox", opts);
      assert.deepEqual(Array.from(again.ids), Array.from(greedy.ids)); // the same greedy tokens end to end
    }
    // Eval: windows of 32 tokens take the fp32 tile path (x not quantised): the same loss to float rounding.
    const tokens = Uint32Array.from(tokenizer.encode(text));
    const ev = { batchSize: 2, context: 32 };
    const la = evaluate(packed, tokens, tokenizer, ev).loss;
    const lb = evaluate(floats, tokens, tokenizer, ev).loss;
    assert.ok(Math.abs(la - lb) < 1e-5 * Math.max(1, lb), `${dtype}: loss ${la} vs ${lb}`);
  });
}

test("packed weights: native and reference backends agree", () => {
  const packed = loadModel(fileOf("q4_0"), quiet).model;
  const ids = Int32Array.from(tokenizer.encode(text).slice(0, 24));
  try {
    setBackend("reference");
    const ref = logitsOf(packed, ids);
    setBackend("native");
    const nat = logitsOf(packed, ids); // 24 rows: the fp32 tile path, no activation quantisation
    const scale = Math.max(...ref.map(Math.abs));
    assert.ok(maxAbsDiff(ref, nat) < 1e-4 * scale, `max |Δ| ${maxAbsDiff(ref, nat)} of ${scale}`);
  } finally {
    setBackend("native");
  }
});

test("a packed model refuses training and gradients with a clear error", () => {
  const packed = loadModel(fileOf("q8_0"), quiet).model;
  assert.throws(
    () => createOptimizer(packed, parseTrainConfig({})),
    /Q8_0 \(a quantized model\): training needs float weights/,
  );
  const w = packed.params.get("model.layers.0.self_attn.q_proj.weight")!;
  const x = new Tensor(new Float32Array(256), [1, 256], true);
  assert.throws(() => linear(x, w), /kept in Q8_0 .*gradients through quantized weights are not supported/);
});

test("gpt2 (a fused qkv split by rows, a tied Q8_0 head) and rotated llama rows: prefill equals the dequantized model", () => {
  for (const family of ["gpt2", "llama"] as const) {
    const model = ioModel(family, tokenizer.vocabSize, true, 4);
    const bytes = modelToGguf(model, tokenizer, { dtype: "q4_0" });
    const packed = ggufToModel(bytes, "q4_0", { packed: true }).model;
    const floats = ggufToModel(bytes, "q4_0").model;
    const ids = Int32Array.from(tokenizer.encode(text).slice(0, 24));
    // 24 rows: fp32 tiles of the very values the dequantized model holds, multiplied by the same kernel.
    assert.deepEqual(logitsOf(packed, ids), logitsOf(floats, ids), family);
  }
});
