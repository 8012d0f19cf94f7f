// PyTorch agreement for the Hugging Face export: tools/torch_hf_logits.py ran float64 references written
// after transformers' modeling_llama.py (rotate_half rotary, repeat_kv) and modeling_gpt2.py (Conv1D
// weights stored [in, out], fused c_attn) on the committed checkpoints test/fixtures/io/hf-{llama,gpt2},
// which tools/export_io_fixture.ts exported from afterscale. Importing each checkpoint and running
// afterscale must give the same logits, and exporting it again the same bytes.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { hfConfig, hfSafetensors, importModel } from "../src/io/index.js";
import { forward } from "../src/nn/index.js";
import { noGrad, tidy } from "../src/tensor/index.js";
import { assertClose } from "./helpers/close.js";

const fixtures = fileURLToPath(new URL("../../test/fixtures/io/", import.meta.url));

for (const family of ["llama", "gpt2"] as const) {
  const ckpt = join(fixtures, `hf-${family}`);
  const ref = JSON.parse(readFileSync(join(fixtures, `hf-${family}-logits.json`), "utf8")) as {
    tokens: number[];
    shape: [number, number];
    logits: number[];
  };

  test(`afterscale reproduces PyTorch's logits for its exported Hugging Face ${family} checkpoint`, () => {
    const { model, tokenizer, notes } = importModel(ckpt);
    assert.equal(model.config.family, family);
    if (family === "llama") {
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
    assertClose(ours, ref.logits, 1e-4, 1e-4, `${family} logits vs PyTorch`);
  });

  test(`re-exporting the imported ${family} checkpoint reproduces its config and safetensors bytes`, () => {
    const { model, tokenizer } = importModel(ckpt);
    assert.deepEqual(
      hfConfig(model.config, tokenizer),
      JSON.parse(readFileSync(join(ckpt, "config.json"), "utf8")),
    );
    assert.deepEqual(Buffer.from(hfSafetensors(model)), readFileSync(join(ckpt, "model.safetensors")));
    if (tokenizer) assert.equal(tokenizer.toJsonText(), readFileSync(join(ckpt, "tokenizer.json"), "utf8"));
  });
}
