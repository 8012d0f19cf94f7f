// Writes the small Hugging Face Llama checkpoint that tools/torch_hf_logits.py runs in PyTorch:
// test/fixtures/io/hf-llama/{config.json, model.safetensors, tokenizer.json, ...}, test/fixtures/io/hf-gpt2 and
// test/fixtures/io/hf-qwen3 (QK-norm, an untied head, an MLP width that is no multiple of 32), and the BF16 exports
// hf-llama-bf16 and hf-gpt2-bf16 of the first two, which tools/transformers_bf16_logits.py loads in transformers.
// Seeded, so rerunning it gives the same files. Weights are scaled up from the training initialisation so that attention, rotary
// positions and norm weights all shape the logits (a near-uniform model would agree with anything).
//   npm run build && node dist/tools/export_io_fixture.js && python3 tools/torch_hf_logits.py
//   python3 tools/transformers_bf16_logits.py
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { trainBpe } from "../src/data/index.js";
import { exportHf, importHf } from "../src/io/hf.js";
import { createModel, parseModelConfig } from "../src/nn/index.js";
import { Rng } from "../src/tensor/index.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const out = join(root, "test", "fixtures", "io", "hf-llama");

const tokenizer = trainBpe(
  [
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away.",
    "Small language models are trained, measured and exported to other tools.",
  ],
  { vocabSize: 300 },
);
const config = parseModelConfig({
  family: "llama",
  vocab: tokenizer.vocabSize,
  dModel: 32,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  context: 32,
  mlpRatio: 3,
  normEps: 1e-5,
  ropeTheta: 10000,
  dropout: 0,
  tie: true,
});
const model = createModel(config, 42);
const rng = new Rng(43);
for (const spec of model.specs) {
  const d = model.params.get(spec.name)!.data;
  if (spec.init === "ones") for (let i = 0; i < d.length; i++) d[i] = 1 + 0.2 * rng.normal();
  else for (let i = 0; i < d.length; i++) d[i] = d[i]! * (spec.name.includes("embed_tokens") ? 25 : 10);
}
const files = exportHf(model, tokenizer, out);
console.log(`wrote ${files.join(", ")} to ${out}`);

// A tiny GPT-2 (no tokenizer, to stay small) for the Conv1D-transposed, fused c_attn layout.
const gpt2 = createModel(
  parseModelConfig({
    ...config,
    family: "gpt2",
    dModel: 16,
    layers: 1,
    heads: 2,
    kvHeads: 2,
    context: 16,
    mlpRatio: 4,
  }),
  44,
);
for (const spec of gpt2.specs) {
  const d = gpt2.params.get(spec.name)!.data;
  if (spec.init !== "normal") for (let i = 0; i < d.length; i++) d[i] = d[i]! + 0.2 * rng.normal();
  else for (let i = 0; i < d.length; i++) d[i] = d[i]! * (spec.name.startsWith("w") ? 25 : 10);
}
const gpt2Out = join(root, "test", "fixtures", "io", "hf-gpt2");
console.log(`wrote ${exportHf(gpt2, null, gpt2Out).join(", ")} to ${gpt2Out}`);

// A tiny Qwen3 (llama recipe + QK-norm), no tokenizer: per-head q/k RMSNorm gains before rotary, an untied
// head, and an MLP width of 40 that only an exact mlpHidden expresses.
const qwen3 = createModel(parseModelConfig({ ...config, tie: false, qkNorm: true, mlpHidden: 40 }), 45);
for (const spec of qwen3.specs) {
  const d = qwen3.params.get(spec.name)!.data;
  if (spec.init === "ones") for (let i = 0; i < d.length; i++) d[i] = 1 + 0.3 * rng.normal();
  else for (let i = 0; i < d.length; i++) d[i] = d[i]! * (/embed_tokens|lm_head/.test(spec.name) ? 25 : 10);
}
const qwen3Out = join(root, "test", "fixtures", "io", "hf-qwen3");
console.log(`wrote ${exportHf(qwen3, null, qwen3Out).join(", ")} to ${qwen3Out}`);

// BF16 exports (weights only, to stay small) of the llama and gpt2 checkpoints just written, as read back.
for (const arch of ["llama", "gpt2"]) {
  const from = join(root, "test", "fixtures", "io", `hf-${arch}`);
  const to = join(root, "test", "fixtures", "io", `hf-${arch}-bf16`);
  console.log(`wrote ${exportHf(importHf(from).model, null, to, { dtype: "bf16" }).join(", ")} to ${to}`);
}
