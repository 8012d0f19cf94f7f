// Models: presets have the advertised sizes, KV-cache decoding gives the full forward pass's logits,
// and one seed fixes the initialisation.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createModel, forward, newKVCache, parameterCounts, preset, presetNames } from "../src/nn/index.js";
import { noGrad, tidy } from "../src/tensor/index.js";
import { assertClose } from "./helpers/close.js";

test("presets span ~0.2M to ~16M non-embedding parameters", () => {
  const want = { nano: 0.2e6, micro: 1e6, mini: 4e6, small: 16e6 };
  for (const name of presetNames) {
    for (const family of ["gpt2", "llama"] as const) {
      const { nonEmbedding } = parameterCounts(preset(name, family, 4096));
      const ratio = nonEmbedding / want[name];
      assert.ok(ratio > 0.7 && ratio < 1.4, `${family} ${name}: ${nonEmbedding} non-embedding parameters`);
    }
  }
});

for (const family of ["gpt2", "llama"] as const) {
  test(`${family}: KV-cache decoding matches the full forward pass`, () => {
    const cfg = { ...preset("nano", family, 50, 16), layers: 2, kvHeads: family === "llama" ? 2 : 4 };
    const model = createModel(cfg, 7);
    const ids = Int32Array.from([3, 14, 15, 9, 26, 5, 35, 8, 9, 7]);
    noGrad(() =>
      tidy(() => {
        const full = forward(model, ids, 1, ids.length);
        const cache = newKVCache(model);
        // A prompt of 4 tokens in one call, then one token at a time.
        const first = forward(model, ids.subarray(0, 4), 1, 4, { cache });
        assertClose(first.data, full.data.subarray(0, 4 * 50), 1e-4, 1e-5, "prefill logits");
        for (let t = 4; t < ids.length; t++) {
          const step = forward(model, ids.subarray(t, t + 1), 1, 1, { cache });
          assertClose(
            step.data,
            full.data.subarray(t * 50, (t + 1) * 50),
            1e-4,
            1e-5,
            `logits at position ${t}`,
          );
        }
        cache.dispose();
      }),
    );
  });
}

test("the seed fixes the initialisation", () => {
  const cfg = preset("nano", "llama", 64, 8);
  const a = createModel(cfg, 1).params.get("model.layers.0.self_attn.q_proj.weight")!.data;
  const b = createModel(cfg, 1).params.get("model.layers.0.self_attn.q_proj.weight")!.data;
  const c = createModel(cfg, 2).params.get("model.layers.0.self_attn.q_proj.weight")!.data;
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

for (const family of ["gpt2", "llama"] as const) {
  test(`${family}: a batch of sequences at different positions decodes like each one alone`, () => {
    const cfg = { ...preset("nano", family, 40, 16), layers: 2 };
    const model = createModel(cfg, 3);
    const a = Int32Array.from([1, 2, 3, 4, 5]);
    const b = Int32Array.from([9, 8]);
    noGrad(() =>
      tidy(() => {
        const fullA = forward(model, a, 1, a.length);
        const fullB = forward(model, b, 1, b.length);
        const ca = newKVCache(model);
        const cb = newKVCache(model);
        forward(model, a.subarray(0, 4), 1, 4, { cache: ca });
        forward(model, b.subarray(0, 1), 1, 1, { cache: cb });
        // One batched step: sequence A at position 4, sequence B at position 1.
        const step = forward(model, Int32Array.from([a[4]!, b[1]!]), 2, 1, { caches: [ca, cb] });
        assertClose(step.data.subarray(0, 40), fullA.data.subarray(4 * 40, 5 * 40), 1e-4, 1e-5, "row A");
        assertClose(step.data.subarray(40, 80), fullB.data.subarray(40, 80), 1e-4, 1e-5, "row B");
        ca.dispose();
        cb.dispose();
      }),
    );
  });
}
