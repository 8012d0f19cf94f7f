// PyTorch agreement for the Hugging Face export: tools/torch_hf_logits.py ran float64 references written
// after transformers' modeling_llama.py (rotate_half rotary, repeat_kv), modeling_qwen3.py (q_norm, k_norm)
// and modeling_gpt2.py (Conv1D weights stored [in, out], fused c_attn) on the committed checkpoints
// test/fixtures/io/hf-{llama,gpt2,qwen3},
// which tools/export_io_fixture.ts exported from afterscale. Importing each checkpoint and running
// afterscale must give the same logits, and exporting it again the same bytes.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { hfConfig, hfSafetensors, importModel } from "../src/io/index.js";
import { blockParts, forward, mlpHidden } from "../src/nn/index.js";
import { noGrad, tidy } from "../src/tensor/index.js";
import { assertClose } from "./helpers/close.js";

const fixtures = fileURLToPath(new URL("../../test/fixtures/io/", import.meta.url));

// qwen3 is the llama family with QK-norm (and this fixture's MLP width, 40, is no multiple of 32).
for (const arch of ["llama", "gpt2", "qwen3"] as const) {
  const family = arch === "gpt2" ? "gpt2" : "llama";
  const ckpt = join(fixtures, `hf-${arch}`);
  const ref = JSON.parse(readFileSync(join(fixtures, `hf-${arch}-logits.json`), "utf8")) as {
    tokens: number[];
    shape: [number, number];
    logits: number[];
  };

  test(`afterscale reproduces PyTorch's logits for its exported Hugging Face ${arch} checkpoint`, () => {
    const { model, tokenizer, notes } = importModel(ckpt);
    assert.equal(model.config.family, family);
    assert.equal(blockParts(model.config).qkNorm, arch === "qwen3");
    if (arch === "qwen3") assert.equal(mlpHidden(model.config), 40);
    if (arch === "llama") {
      assert.deepEqual(notes, []);
      assert.ok(tokenizer);
      assert.equal(
        model.config.kvHeads * 2,
        model.config.heads,
        "the fixture exercises grouped-query attention",
      );
    }
    assert.deepEqual(ref.shape, [ref.tokens.length, model.config.vocab]);
    const ours = noGrad(() =>
      tidy(() => Float32Array.from(forward(model, Int32Array.from(ref.tokens), 1, ref.tokens.length).data)),
    );
    let scale = 0;
    for (const x of ref.logits) scale = Math.max(scale, Math.abs(x));
    assert.ok(scale > 5, "the reference logits are far from uniform");
    assertClose(ours, ref.logits, 1e-4, 1e-4, `${arch} logits vs PyTorch`);
  });

  test(`re-exporting the imported ${arch} checkpoint reproduces its config and safetensors bytes`, () => {
    const { model, tokenizer } = importModel(ckpt);
    assert.deepEqual(
      hfConfig(model.config, tokenizer),
      JSON.parse(readFileSync(join(ckpt, "config.json"), "utf8")),
    );
    assert.deepEqual(Buffer.from(hfSafetensors(model)), readFileSync(join(ckpt, "model.safetensors")));
    if (tokenizer) assert.equal(tokenizer.toJsonText(), readFileSync(join(ckpt, "tokenizer.json"), "utf8"));
  });
}

// Hugging Face transformers on the BF16 export: tools/transformers_bf16_logits.py loaded the committed
// checkpoints test/fixtures/io/hf-{llama,gpt2}-bf16 with AutoModelForCausalLM, found every weight equal to
// torch's own bf16 rounding of the float32 checkpoint, and ran them in float64.
for (const arch of ["llama", "gpt2"] as const) {
  const ckpt = join(fixtures, `hf-${arch}-bf16`);
  test(`transformers loads afterscale's BF16 ${arch} export, and its logits are afterscale's`, () => {
    const ref = JSON.parse(readFileSync(join(fixtures, `hf-${arch}-bf16-logits.json`), "utf8")) as {
      tokens: number[];
      shape: [number, number];
      logits: number[];
    };
    const { model } = importModel(ckpt);
    assert.deepEqual(ref.shape, [ref.tokens.length, model.config.vocab]);
    const ours = noGrad(() =>
      tidy(() => Float32Array.from(forward(model, Int32Array.from(ref.tokens), 1, ref.tokens.length).data)),
    );
    assertClose(ours, ref.logits, 1e-4, 1e-4, `${arch} BF16 logits vs transformers`);
  });

  test(`the ${arch} BF16 fixture is what export --dtype bf16 writes today`, () => {
    const { model, tokenizer } = importModel(join(fixtures, `hf-${arch}`));
    assert.deepEqual(
      hfConfig(model.config, null, "bf16"),
      JSON.parse(readFileSync(join(ckpt, "config.json"), "utf8")),
    );
    assert.equal(hfConfig(model.config, tokenizer, "bf16").torch_dtype, "bfloat16");
    assert.deepEqual(
      Buffer.from(hfSafetensors(model, "bf16")),
      readFileSync(join(ckpt, "model.safetensors")),
    );
  });
}
