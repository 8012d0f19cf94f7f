// The documented memory formula (src/nn/memory.ts, docs/memory.md) against what the buffer pool holds.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createModel, forward, preset } from "../src/nn/index.js";
import { trainingStepMemory } from "../src/nn/memory.js";
import { crossEntropy, pool, Rng, tidy, withPrecision } from "../src/tensor/index.js";

for (const [family, precision] of [
  ["llama", "fp32"],
  ["gpt2", "fp32"],
  ["llama", "bf16-mixed"],
  ["gpt2", "bf16-mixed"],
] as const) {
  test(`${family}, ${precision}: forward activations match the formula; the step's peak stays under its bound`, () => {
    const [batch, context, vocab] = [3, 32, 300];
    const cfg = { ...preset("nano", family, vocab, context), layers: 2 };
    const model = createModel(cfg, 1);
    const rng = new Rng(5);
    const ids = Int32Array.from({ length: batch * context }, () => rng.int(vocab));
    pool.clear();
    const base = pool.stats().liveBytes;
    pool.resetPeak();
    let forwardBytes = 0;
    withPrecision(precision, () =>
      tidy(() => {
        const loss = crossEntropy(forward(model, ids, batch, context), ids);
        forwardBytes = pool.stats().liveBytes - base - 4; // less the scalar loss
        loss.backward();
      }),
    );
    const peak = pool.stats().peakLiveBytes - base;
    const f = trainingStepMemory(cfg, batch, context, precision);
    assert.equal(forwardBytes, f.activationBytes, "activation bytes");
    const bound = f.activationBytes + f.logitGradBytes + f.gradBytes;
    assert.ok(peak <= bound && peak > 0.8 * bound, `peak ${peak} vs bound ${bound}`);
    for (const p of model.params.values()) p.grad = null;
  });
}
