// llama.cpp agreement: afterscale's GGUF export, run by llama.cpp (node-llama-cpp, CPU, F32 KV cache) in a
// child process, predicts the same next-token distributions as afterscale itself at every position, and
// greedy decoding produces the same 32 tokens. This is the independent check of the export's tensor names,
// shapes, rotary permutation, norms and tokenizer metadata.
//
// node-llama-cpp comes from the repository's node_modules, or from AFTERSCALE_NODE_LLAMA_CPP (a directory
// whose node_modules holds it) while developing.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { decodeGguf } from "../src/io/gguf.js";
import { ggufToModel, modelToGguf } from "../src/io/gguf-model.js";
import { QUANT_PRESETS, type QuantPreset } from "../src/io/gguf-quant-rules.js";
import { forward, type Model, newKVCache } from "../src/nn/index.js";
import { noGrad, tidy } from "../src/tensor/index.js";
import { IO_TEXTS, ioModel, ioTokenizer } from "./helpers/io-models.js";
import { skip } from "./helpers/node-llama-cpp.js";

const childScript = fileURLToPath(new URL("./helpers/llamacpp-child.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "afterscale-llamacpp-"));
after(() => rmSync(dir, { recursive: true, force: true }));

interface ChildResult {
  /** llama.cpp's next-token log-probabilities at every position. */
  logProbs: number[][];
  greedy: number[];
  tokenized: number[][];
}

function runLlamaCpp(modelPath: string, tokens: number[], prompt: number, generate: number): ChildResult {
  const job = join(dir, "job.json");
  const vocab = tokenizer.vocabSize;
  writeFileSync(job, JSON.stringify({ modelPath, tokens, prompt, generate, texts: IO_TEXTS, vocab }));
  const out = execFileSync(process.execPath, [childScript, job], {
    encoding: "utf8",
    timeout: 120_000,
    maxBuffer: 256 << 20,
    stdio: ["ignore", "pipe", "pipe"],
  });
  return JSON.parse(out) as ChildResult;
}

function softmax64(row: ArrayLike<number>): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]!);
  const p = new Float64Array(row.length);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += p[i] = Math.exp(row[i]! - max);
  for (let i = 0; i < row.length; i++) p[i]! /= sum;
  return p;
}

const argmax = (row: ArrayLike<number>) => {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
};

/** afterscale's logits, one row per position. */
function ourLogits(model: Model, tokens: number[]): Float32Array[] {
  return noGrad(() =>
    tidy(() => {
      const v = model.config.vocab;
      const out = forward(model, Int32Array.from(tokens), 1, tokens.length).data;
      return tokens.map((_, t) => Float32Array.from(out.subarray(t * v, (t + 1) * v)));
    }),
  );
}

/** Greedy decoding with the KV cache, as llama.cpp does it. */
function ourGreedy(model: Model, prompt: number[], n: number): number[] {
  return noGrad(() => {
    const cache = newKVCache(model);
    const v = model.config.vocab;
    const got: number[] = [];
    let input = prompt;
    for (let i = 0; i < n; i++) {
      const next = tidy(() => {
        const logits = forward(model, Int32Array.from(input), 1, input.length, { cache }).data;
        return argmax(logits.subarray((input.length - 1) * v, input.length * v));
      });
      got.push(next);
      input = [next];
    }
    cache.dispose();
    return got;
  });
}

const tokenizer = ioTokenizer();
const tokens = [tokenizer.eotId, ...tokenizer.encode(IO_TEXTS[0]!), ...tokenizer.encode(IO_TEXTS[2]!)].slice(
  0,
  48,
);
const PROMPT = 12;
const GENERATE = 32;

const f32Cases = [
  { tie: false, qkNorm: false },
  { tie: true, qkNorm: false },
  // QK-norm: llama.cpp's qwen3 architecture (attn_q_norm / attn_k_norm, half-split rotary).
  { tie: false, qkNorm: true },
  { tie: true, qkNorm: true },
  { tie: false, qkNorm: false, bias: true },
];
for (const { tie, qkNorm, bias } of f32Cases) {
  const what = `${qkNorm ? "qwen3, " : ""}${bias ? "biases, " : ""}${tie ? "tied" : "untied"}`;
  test(`llama.cpp agrees with afterscale on an F32 GGUF export (${what} head)`, { skip }, () => {
    const model = ioModel("llama", tokenizer.vocabSize, tie, tie ? 11 : 5, {
      qkNorm,
      ...(bias ? { bias } : {}),
    });
    const path = join(dir, `f32-${what}.gguf`);
    writeFileSync(path, modelToGguf(model, tokenizer, { dtype: "f32" }));
    const cpp = runLlamaCpp(path, tokens, PROMPT, GENERATE);
    const ours = ourLogits(model, tokens);
    let worst = 0;
    let entropy = 0;
    for (let t = 0; t < tokens.length; t++) {
      assert.equal(
        cpp.logProbs[t]!.length,
        tokenizer.vocabSize,
        `llama.cpp vocabulary size at position ${t}`,
      );
      const p = softmax64(ours[t]!);
      const q = softmax64(cpp.logProbs[t]!);
      for (let i = 0; i < p.length; i++) worst = Math.max(worst, Math.abs(p[i]! - q[i]!));
      for (let i = 0; i < p.length; i++) if (p[i]! > 0) entropy -= p[i]! * Math.log(p[i]!);
    }
    console.log(
      `llama.cpp F32 (${what}): max |Δp| = ${worst.toExponential(2)} over ${tokens.length} positions; mean entropy ${(entropy / tokens.length).toFixed(2)} nats`,
    );
    assert.ok(worst <= 1e-4, `max abs probability difference ${worst} exceeds 1e-4`);
    const greedy = ourGreedy(model, tokens.slice(0, PROMPT), GENERATE);
    assert.deepEqual(cpp.greedy, greedy, "greedy generations differ");
    for (let i = 0; i < IO_TEXTS.length; i++)
      assert.deepEqual(
        cpp.tokenized[i],
        tokenizer.encode(IO_TEXTS[i]!),
        `tokenization of ${JSON.stringify(IO_TEXTS[i])}`,
      );
  });
}

test("llama.cpp agrees with afterscale on the top-1 token of a Q8_0 GGUF export", { skip }, () => {
  const model = ioModel("llama", tokenizer.vocabSize, false, 5);
  const bytes = modelToGguf(model, tokenizer, { dtype: "q8_0" });
  const path = join(dir, "q8.gguf");
  writeFileSync(path, bytes);
  const cpp = runLlamaCpp(path, tokens, PROMPT, 0);
  const dequantised = ggufToModel(bytes).model;
  const ours = ourLogits(dequantised, tokens);
  const original = ourLogits(model, tokens);
  // On CPU, llama.cpp multiplies Q8_0 weights with activations that it has itself quantised to Q8_0, which
  // afterscale's dequantised float32 model does not do; their logits differ by a few tenths, so exact top-1
  // agreement is required wherever afterscale's top-2 gap exceeds that noise, and everywhere else
  // llama.cpp's choice must be one of afterscale's near-tied leaders.
  let worst = 0;
  let agree = 0;
  let agreeOriginal = 0;
  let decisive = 0;
  for (let t = 0; t < tokens.length; t++) {
    // Both sides as log-probabilities (gaps between tokens are the same as between logits).
    const a = Array.from(softmax64(ours[t]!), Math.log);
    const b = cpp.logProbs[t]!;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    const top = argmax(a);
    const cppTop = argmax(b);
    const gap = a[top]! - Math.max(...a.filter((_, i) => i !== top));
    if (gap > 1) {
      decisive++;
      assert.equal(cppTop, top, `top-1 token at position ${t} (afterscale's top-2 gap ${gap.toFixed(3)})`);
    }
    assert.ok(
      a[top]! - a[cppTop]! < 1,
      `position ${t}: llama.cpp's top-1 ${cppTop} is far below afterscale's ${top}`,
    );
    if (cppTop === top) agree++;
    if (cppTop === argmax(original[t]!)) agreeOriginal++;
  }
  console.log(
    `llama.cpp Q8_0: top-1 agrees with afterscale's dequantised model at ${agree}/${tokens.length} positions ` +
      `(all ${decisive} with a top-2 gap > 1 logit), with the F32 model at ${agreeOriginal}; max |Δ log p| ${worst.toFixed(3)}`,
  );
  assert.ok(worst < 1, `max log-probability difference ${worst}`);
  assert.ok(agree >= 0.85 * tokens.length, `top-1 agreement ${agree}/${tokens.length}`);
  assert.ok(decisive >= tokens.length / 3, "too few decisive positions for the test to mean anything");
});

/** max |Δp| between afterscale and llama.cpp, and the positions whose top-1 tokens agree. */
function compare(ours: Float32Array[], cpp: ChildResult): { worst: number; agree: number } {
  let worst = 0;
  let agree = 0;
  ours.forEach((row, t) => {
    const p = softmax64(row);
    const q = softmax64(cpp.logProbs[t]!);
    for (let i = 0; i < p.length; i++) worst = Math.max(worst, Math.abs(p[i]! - q[i]!));
    if (argmax(row) === argmax(cpp.logProbs[t]!)) agree++;
  });
  return { worst, agree };
}

test("llama.cpp runs afterscale's GPT-2 GGUF export (arch gpt2, fused q/k/v)", { skip }, () => {
  const model = ioModel("gpt2", tokenizer.vocabSize, true);
  const path = join(dir, "gpt2.gguf");
  writeFileSync(path, modelToGguf(model, tokenizer, { dtype: "f32" }));
  const full = compare(ourLogits(model, tokens), runLlamaCpp(path, tokens, 1, 0));
  // ggml's CPU GELU reads a float16 lookup table, so its MLP differs slightly from the exact tanh GELU.
  // With the MLP's output projection zeroed, everything else (embeddings, positions, layer norms, fused
  // attention, biases, head) must agree as tightly as the llama export does.
  for (const [name, t] of model.params) if (/mlp\.c_proj\.weight$/.test(name)) t.data.fill(0);
  writeFileSync(path, modelToGguf(model, tokenizer, { dtype: "f32" }));
  const noMlp = compare(ourLogits(model, tokens), runLlamaCpp(path, tokens, 1, 0));
  console.log(
    `llama.cpp gpt2 F32: max |Δp| ${full.worst.toExponential(2)}, top-1 ${full.agree}/${tokens.length}; ` +
      `MLP output zeroed: max |Δp| ${noMlp.worst.toExponential(2)}`,
  );
  assert.equal(full.agree, tokens.length, "top-1 agreement");
  assert.ok(full.worst <= 5e-3, `max |Δp| ${full.worst}`);
  assert.ok(noMlp.worst <= 1e-4, `max |Δp| without the MLP ${noMlp.worst}`);
});

test("llama.cpp agrees with afterscale on an F16 GGUF export", { skip }, () => {
  const model = ioModel("llama", tokenizer.vocabSize, false, 5);
  const bytes = modelToGguf(model, tokenizer, { dtype: "f16" });
  const path = join(dir, "f16.gguf");
  writeFileSync(path, bytes);
  // llama.cpp rounds activations to float16 for F16 matmuls (relative error up to 2^-11 per element);
  // afterscale runs the stored weights in float32. How far the probabilities move depends on the CPU's
  // ggml kernels: under 2e-3 on the Sapphire Rapids machine this test was written on, 2.3e-3 on Zen 5.
  const r = compare(ourLogits(ggufToModel(bytes).model, tokens), runLlamaCpp(path, tokens, 1, 0));
  console.log(`llama.cpp F16: max |Δp| ${r.worst.toExponential(2)}, top-1 ${r.agree}/${tokens.length}`);
  assert.ok(r.worst <= 4e-3, `max |Δp| ${r.worst}`);
  assert.ok(r.agree >= tokens.length - 2, `top-1 agreement ${r.agree}/${tokens.length}`);
});

/**
 * Mean KL(afterscale ‖ llama.cpp) in nats and max |Δp| over the 48 positions. Measured (AMD EPYC, Zen 4
 * with AVX-512 BF16): llama KL 1.7e-4, max |Δp| 1.4e-2; gpt2 KL 7.6e-5, max |Δp| 9.0e-3; top-1 48/48 for
 * both. The bounds leave about 3× room for other CPUs' kernels.
 */
const BF16_TOLERANCE = { kl: 1e-3, maxDp: 0.04 };

test("llama.cpp agrees with afterscale on a BF16 GGUF export (llama and gpt2)", { skip }, () => {
  // BF16 matrices, F32 norms and biases. ggml's CPU BF16 matmul rounds each activation row to bf16 too
  // (8 significant bits, relative error up to 2^-9), which afterscale's float32 forward on the stored
  // weights does not; that rounding, not the weights, is what separates the two.
  for (const family of ["llama", "gpt2"] as const) {
    const model = ioModel(family, tokenizer.vocabSize, family === "gpt2", 5);
    const bytes = modelToGguf(model, tokenizer, { dtype: "bf16" });
    assert.ok(decodeGguf(bytes).tensors.some((t) => t.type === "BF16"));
    const path = join(dir, `bf16-${family}.gguf`);
    writeFileSync(path, bytes);
    const cpp = runLlamaCpp(path, tokens, 1, 0);
    const r = divergence(ourLogits(ggufToModel(bytes).model, tokens), cpp);
    const vsF32 = divergence(ourLogits(model, tokens), cpp);
    console.log(
      `llama.cpp BF16 ${family}: mean KL ${r.kl.toExponential(2)}, max |Δp| ${r.worst.toExponential(2)}, top-1 ${r.agree}/${tokens.length} ` +
        `(against the F32 model: KL ${vsF32.kl.toExponential(2)}, max |Δp| ${vsF32.worst.toExponential(2)})`,
    );
    assert.ok(r.kl <= BF16_TOLERANCE.kl, `${family}: mean KL ${r.kl}`);
    assert.ok(r.worst <= BF16_TOLERANCE.maxDp, `${family}: max |Δp| ${r.worst}`);
    assert.ok(r.agree >= tokens.length - 2, `${family}: top-1 agreement ${r.agree}/${tokens.length}`);
  }
});

// ---------------------------------------------------------------- quantized exports
//
// Every quantization preset, written by afterscale, loads in llama.cpp, and llama.cpp's next-token
// distributions agree with afterscale's forward pass on the weights the file holds (dequantized to float32).
// They cannot agree exactly: for these weight types ggml's CPU matmul first quantizes each activation row
// itself (to Q8_0 blocks for Q4_0/Q4_1/Q5_0/Q8_0, to Q8_K for the K-quants), an 8-bit rounding afterscale's
// float32 forward does not make. The tolerances below bound that rounding's effect per type, measured on
// these models: mean KL(afterscale ‖ llama.cpp) and max |Δp| over all positions, and top-1 agreement.

/** The types each tensor of a GGUF file holds, by name. */
function tensorTypes(bytes: Uint8Array): Map<string, string> {
  return new Map(decodeGguf(bytes).tensors.map((t) => [t.name, t.type]));
}

function runLlamaCppMany(paths: string[]): ChildResult[] {
  const job = join(dir, "job-many.json");
  const vocab = tokenizer.vocabSize;
  writeFileSync(job, JSON.stringify({ modelPaths: paths, tokens, prompt: 1, generate: 0, texts: [], vocab }));
  const out = execFileSync(process.execPath, [childScript, job], {
    encoding: "utf8",
    timeout: 300_000,
    maxBuffer: 512 << 20,
    stdio: ["ignore", "pipe", "pipe"],
  });
  return (JSON.parse(out) as { results: ChildResult[] }).results;
}

/** Mean KL(p‖q) in nats over positions, max |Δp|, and top-1 agreements. */
function divergence(ours: Float32Array[], cpp: ChildResult): { kl: number; worst: number; agree: number } {
  let kl = 0;
  let worst = 0;
  let agree = 0;
  ours.forEach((row, t) => {
    const p = softmax64(row);
    const q = softmax64(cpp.logProbs[t]!);
    for (let i = 0; i < p.length; i++) {
      worst = Math.max(worst, Math.abs(p[i]! - q[i]!));
      if (p[i]! > 0) kl += p[i]! * (Math.log(p[i]!) - Math.log(Math.max(q[i]!, 1e-300)));
    }
    if (argmax(row) === argmax(cpp.logProbs[t]!)) agree++;
  });
  return { kl: kl / ours.length, worst, agree };
}

// dModel 256 and an MLP of 512 so that the K-quants' 256-blocks fit every matrix (no fallback to Q5_0/Q8_0).
const K_LEVERS = { dModel: 256, heads: 4, kvHeads: 2, mlpHidden: 512 };
const QUANT_CASES: { preset: QuantPreset; family: "llama" | "gpt2"; tie: boolean }[] = [
  ...QUANT_PRESETS.map((preset) => ({ preset, family: "llama" as const, tie: false })),
  // gpt2: fused attn_qkv (Q4_K_M's attn_v rule), tied embeddings (token_embd takes the output head's Q6_K)
  { preset: "q4_k_m", family: "gpt2", tie: true },
  { preset: "q4_0", family: "gpt2", tie: true },
];

/**
 * Per-type tolerance: mean KL(afterscale ‖ llama.cpp) in nats, and the share of positions whose top-1
 * token agrees. Measured (AMD EPYC, AVX-512 ggml CPU kernels): Q8_0 0.020, Q4_0 0.026, Q4_1 0.027, Q5_0 0.024 (activations
 * as Q8_0); Q4_K 0.055, Q4_K_S 0.071, Q4_K_M 0.050, Q6_K 0.041 (activations as Q8_K); top-1 42–46 of 48.
 * These deliberately sharp test models (logits up to ~20) magnify the activation rounding; the bounds
 * leave about 2× room for other CPUs' kernels.
 */
const QUANT_TOLERANCE: Record<QuantPreset, { kl: number; top1: number }> = {
  q8_0: { kl: 0.05, top1: 0.85 },
  q4_0: { kl: 0.06, top1: 0.8 },
  q4_1: { kl: 0.06, top1: 0.8 },
  q5_0: { kl: 0.06, top1: 0.8 },
  q4_k: { kl: 0.12, top1: 0.8 },
  q4_k_s: { kl: 0.15, top1: 0.8 },
  q4_k_m: { kl: 0.12, top1: 0.8 },
  q6_k: { kl: 0.1, top1: 0.8 },
};

test("llama.cpp loads every quantized export and agrees with afterscale on the weights it holds", {
  skip,
}, () => {
  const paths: string[] = [];
  const dequantized: Float32Array[][] = [];
  const original: Float32Array[][] = [];
  const types: Map<string, string>[] = [];
  for (const c of QUANT_CASES) {
    const levers = c.family === "llama" ? K_LEVERS : { dModel: 256 };
    const model = ioModel(c.family, tokenizer.vocabSize, c.tie, 7, levers);
    const bytes = modelToGguf(model, tokenizer, { dtype: c.preset });
    const path = join(dir, `${c.family}-${c.preset}.gguf`);
    writeFileSync(path, bytes);
    paths.push(path);
    dequantized.push(ourLogits(ggufToModel(bytes).model, tokens));
    original.push(ourLogits(model, tokens));
    types.push(tensorTypes(bytes));
  }
  const cpp = runLlamaCppMany(paths);
  QUANT_CASES.forEach((c, i) => {
    const what = `${c.family} ${c.preset}`;
    const r = divergence(dequantized[i]!, cpp[i]!);
    const vsF32 = divergence(original[i]!, cpp[i]!);
    const t = types[i]!;
    console.log(
      `llama.cpp ${what}: mean KL ${r.kl.toExponential(2)}, max |Δp| ${r.worst.toExponential(2)}, top-1 ${r.agree}/${tokens.length} ` +
        `(against the unquantized model: KL ${vsF32.kl.toExponential(2)}, top-1 ${vsF32.agree}); ` +
        `attn_output ${t.get("blk.0.attn_output.weight")}, head ${t.get("output.weight") ?? t.get("token_embd.weight")}`,
    );
    const tol = QUANT_TOLERANCE[c.preset];
    assert.ok(r.kl <= tol.kl, `${what}: mean KL ${r.kl} exceeds ${tol.kl}`);
    assert.ok(r.agree >= tol.top1 * tokens.length, `${what}: top-1 agreement ${r.agree}/${tokens.length}`);
    // Where quantization moves the model a lot, llama.cpp must be running the very weights afterscale
    // dequantizes, not something near the original ones.
    if (vsF32.kl > 0.3)
      assert.ok(r.kl < vsF32.kl / 5, `${what}: KL ${r.kl} is not far below the F32 model's ${vsF32.kl}`);
  });
});
