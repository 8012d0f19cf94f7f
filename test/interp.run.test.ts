// runWithCache and runWithHooks: the activations under TransformerLens names equal Hugging Face
// transformers' hidden states and attention maps on afterscale's exported checkpoints (fixtures from
// tools/gen_interp_fixtures.py), every name the model has is cached with its shape, the pattern is a causal
// softmax, hooks patch and ablate, and bad names are refused by name.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { hookNames, runWithCache, runWithHooks } from "../src/interp/index.js";
import { importModel } from "../src/io/index.js";
import {
  createModel,
  forward,
  type Model,
  type ModelConfig,
  parseModelConfig,
  preset,
} from "../src/nn/index.js";
import { noGrad, tidy, zeros } from "../src/tensor/index.js";
import { assertClose } from "./helpers/close.js";
import { mulberry32, normal } from "./helpers/random.js";

const io = fileURLToPath(new URL("../../test/fixtures/io/", import.meta.url));
const interp = fileURLToPath(new URL("../../test/fixtures/interp/", import.meta.url));

for (const arch of ["llama", "gpt2", "qwen3"] as const) {
  test(`${arch}: resid_pre/post, ln_final and the attention pattern equal transformers' hidden states and attentions`, () => {
    const ref = JSON.parse(readFileSync(join(interp, `hf-${arch}-acts.json`), "utf8")) as {
      tokens: number[];
      hidden: number[][];
      attentions: number[][];
    };
    const { model } = importModel(join(io, `hf-${arch}`));
    const L = model.config.layers;
    assert.equal(ref.hidden.length, L + 1);
    const { logits, cache } = runWithCache(model, { ids: ref.tokens });
    for (let l = 0; l < L; l++) {
      assertClose(
        cache.get(`blocks.${l}.hook_resid_pre`).data,
        ref.hidden[l]!,
        1e-4,
        1e-4,
        `${arch} resid_pre ${l}`,
      );
      if (l + 1 < L)
        assertClose(
          cache.get(`blocks.${l}.hook_resid_post`).data,
          ref.hidden[l + 1]!,
          1e-4,
          1e-4,
          `resid_post ${l}`,
        );
      const pattern = cache.get(`blocks.${l}.attn.hook_pattern`);
      assert.deepEqual(pattern.shape, [1, model.config.heads, ref.tokens.length, ref.tokens.length]);
      assertClose(pattern.data, ref.attentions[l]!, 1e-4, 1e-4, `${arch} pattern ${l}`);
    }
    // transformers puts the final norm's output in the last hidden state.
    assertClose(cache.get("ln_final.hook_normalized").data, ref.hidden[L]!, 1e-4, 1e-4, `${arch} ln_final`);
    assert.ok(logits.size > 0);
    cache.dispose();
    logits.dispose();
  });
}

function perturbed(levers: Partial<ModelConfig>, seed: number): Model {
  const cfg = parseModelConfig({ ...preset("nano", "llama", 30, 16), layers: 2, kvHeads: 2, ...levers });
  const model = createModel(cfg, seed);
  const rnd = normal(mulberry32(seed));
  for (const t of model.params.values()) for (let i = 0; i < t.size; i++) t.data[i]! += 0.1 * rnd();
  return model;
}

test("runWithCache keeps every hook point with its shape; the pattern is a causal softmax; logits are unchanged", () => {
  for (const levers of [{}, { family: "gpt2", kvHeads: 4 }, { mlp: "none" }] as Partial<ModelConfig>[]) {
    const model = perturbed(levers, 5);
    const c = model.config;
    const ids = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8];
    const [B, T] = [2, 6];
    const { logits, cache } = runWithCache(model, { ids, batch: B });
    assert.deepEqual(cache.names(), hookNames(model));
    assert.equal(
      cache.has("blocks.0.mlp.hook_post"),
      c.mlp !== "none",
      "MLP points exist where the MLP does",
    );
    assert.deepEqual(cache.get("blocks.1.attn.hook_attn_scores").shape, [B, c.heads, T, T]);
    assert.deepEqual(cache.get("blocks.1.hook_resid_post").shape, [B, T, c.dModel]);
    const p = cache.get("blocks.1.attn.hook_pattern").data;
    for (let row = 0; row < B * c.heads * T; row++) {
      const i = row % T;
      let sum = 0;
      for (let j = 0; j < T; j++) {
        const x = p[row * T + j]!;
        if (j > i) assert.equal(x, 0, "no attention to later positions");
        sum += x;
      }
      assert.ok(Math.abs(sum - 1) < 1e-5);
    }
    const plain = noGrad(() =>
      tidy(() => Float32Array.from(forward(model, Int32Array.from(ids), B, T).data)),
    );
    assertClose(logits.data, plain, 1e-5, 1e-5, "hooked logits = fused logits");
    cache.dispose();
  }
});

test("runWithHooks: patching the clean residual into a corrupted run restores the clean logits; ablation changes them", () => {
  const model = perturbed({}, 7);
  const clean = [1, 2, 3, 4, 5, 6];
  const corrupt = [1, 2, 3, 9, 5, 6];
  const { logits: cleanLogits, cache } = runWithCache(
    model,
    { ids: clean },
    { names: ["blocks.1.hook_resid_pre"] },
  );
  assert.deepEqual(cache.names(), ["blocks.1.hook_resid_pre"]);
  const patched = runWithHooks(
    model,
    { ids: corrupt },
    { "blocks.1.hook_resid_pre": () => cache.get("blocks.1.hook_resid_pre") },
  );
  assertClose(patched.data, cleanLogits.data, 1e-5, 1e-5, "patched = clean");
  const corrupted = runWithHooks(model, { ids: corrupt }, {});
  assert.ok(Math.abs(corrupted.data[5 * 30]! - cleanLogits.data[5 * 30]!) > 1e-4, "the corruption matters");
  const ablated = runWithHooks(model, { ids: clean }, { "blocks.0.attn.hook_z": (z) => zeros(z.shape) });
  assert.ok(
    Math.abs(ablated.data[5 * 30]! - cleanLogits.data[5 * 30]!) > 1e-4,
    "ablating layer 0's heads matters",
  );
  for (const t of [patched, corrupted, ablated, cleanLogits]) t.dispose();
  cache.dispose();
});

test("bad names and tokens are refused by name", () => {
  const model = perturbed({ mlp: "none" }, 3);
  assert.throws(
    () => runWithCache(model, { ids: [1, 2] }, { names: ["blocks.0.mlp.hook_post"] }),
    /no hook point blocks\.0\.mlp\.hook_post/,
  );
  assert.throws(
    () => runWithHooks(model, { ids: [1, 2] }, { "blocks.9.hook_resid_pre": () => undefined }),
    /blocks\.9/,
  );
  assert.throws(() => runWithHooks(model, { ids: [1, 99] }, {}), /token id 99/);
  assert.throws(() => runWithHooks(model, { ids: [1, 2, 3], batch: 2 }, {}), /3 ids/);
  const { cache } = runWithCache(model, { ids: [1] }, { names: ["hook_embed"] });
  assert.throws(() => cache.get("blocks.0.hook_resid_pre"), /holds hook_embed/);
});
