// Models: presets have the advertised sizes, KV-cache decoding (one sequence, a batch, or a ragged step that
// mixes prompts and decoding rows) gives the full forward pass's logits, and one seed fixes the initialisation.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  createModel,
  forward,
  forwardStep,
  newKVCache,
  parameterCounts,
  preset,
  presetNames,
} from "../src/nn/index.js";
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

for (const family of ["gpt2", "llama"] as const) {
  test(`${family}: a ragged step (prompts and decoding rows together) matches each sequence's full pass`, () => {
    const vocab = 40;
    const cfg = { ...preset("nano", family, vocab, 32), layers: 2, kvHeads: family === "llama" ? 2 : 4 };
    const model = createModel(cfg, 5);
    // A decodes its 6th token, B arrives with a 9-token prompt, C decodes its 2nd, D feeds a 2-token chunk.
    const seqs = [
      Int32Array.from([1, 2, 3, 4, 5, 6]),
      Int32Array.from([7, 8, 9, 10, 11, 12, 13, 14, 15]),
      Int32Array.from([16, 17]),
      Int32Array.from([18, 19, 20, 21, 22]),
    ];
    const already = [5, 0, 1, 3];
    noGrad(() =>
      tidy(() => {
        const caches = seqs.map(() => newKVCache(model));
        seqs.forEach((ids, s) => {
          if (already[s]! > 0)
            forward(model, ids.subarray(0, already[s]), 1, already[s]!, { cache: caches[s]! });
        });
        const fed = seqs.map((ids, s) => ids.subarray(already[s]));
        const packed = Int32Array.from(fed.flatMap((f) => [...f]));
        const counts = fed.map((f) => f.length);
        const logits = forwardStep(model, packed, counts, caches);
        assert.deepEqual(logits.shape, [4, 1, vocab]);
        seqs.forEach((ids, s) => {
          const full = forward(model, ids, 1, ids.length);
          const last = (ids.length - 1) * vocab;
          assertClose(
            logits.data.subarray(s * vocab, (s + 1) * vocab),
            full.data.subarray(last, last + vocab),
            1e-4,
            1e-5,
            `sequence ${s}`,
          );
          assert.equal(caches[s]!.length, ids.length);
        });
        // The caches go on decoding like fresh ones: one more token each, batched.
        const next = Int32Array.from([23, 24, 25, 26]);
        const again = forwardStep(model, next, [1, 1, 1, 1], caches);
        seqs.forEach((ids, s) => {
          const full = forward(model, Int32Array.from([...ids, next[s]!]), 1, ids.length + 1);
          const last = ids.length * vocab;
          assertClose(
            again.data.subarray(s * vocab, (s + 1) * vocab),
            full.data.subarray(last, last + vocab),
            1e-4,
            1e-5,
            `sequence ${s}, next token`,
          );
        });
        for (const c of caches) c.dispose();
      }),
    );
  });
}

test("a cached step rejects what does not fit: counts, ids, context", () => {
  const model = createModel({ ...preset("nano", "llama", 30, 8), layers: 1 }, 1);
  const [a, b] = [newKVCache(model), newKVCache(model, 4)];
  noGrad(() => {
    assert.throws(() => forwardStep(model, Int32Array.of(1, 2), [1], [a, b]), /2 KV caches for 1 sequences/);
    assert.throws(
      () => forwardStep(model, Int32Array.of(1, 2), [2, 1], [a, b]),
      /2 ids for counts adding up to 3/,
    );
    assert.throws(() => forwardStep(model, Int32Array.of(1), [1, 0], [a, b]), /sequence 1 feeds 0 tokens/);
    assert.throws(() => forwardStep(model, Int32Array.of(1, 2), [1, 1], [a, a]), /same KV cache/);
    assert.throws(
      () => forwardStep(model, new Int32Array(5), [5], [b]),
      /positions up to 5 exceed the context of 4/,
    );
    assert.throws(
      () => forwardStep(model, new Int32Array(9), [9], [a]),
      /positions up to 9 exceed the context of 8/,
    );
  });
  // Nothing was stored: the caches are still empty.
  assert.equal(a.length, 0);
  assert.equal(b.length, 0);
  a.dispose();
  b.dispose();
});
