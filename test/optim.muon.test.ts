// Muon against Keller Jordan's published update in PyTorch (tools/gen_muon_fixture.py: float64, so the
// fixture is the algorithm's value and afterscale's float32 is held to it), on each backend; Newton–Schulz
// on the native backend against the reference one; which parameters the trainer gives to Muon.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import type { Backend } from "../src/backend/backend.js";
import { nativeBackend, reference, setBackend } from "../src/backend/index.js";
import { createModel, preset } from "../src/nn/index.js";
import { Muon, MuonWithAdamW, NewtonSchulzWork, newtonSchulz } from "../src/optim/index.js";
import * as T from "../src/tensor/index.js";
import { Rng } from "../src/tensor/random.js";
import { createOptimizer, isHiddenMatrix, parseTrainConfig } from "../src/train/index.js";
import { assertClose, relError } from "./helpers/close.js";

interface Arr {
  shape: number[];
  data: number[];
}
interface MuonFixture {
  lr: number;
  momentum: number;
  weightDecay: number;
  params: Record<string, Arr>;
  grads: Record<string, Arr[]>;
  result: Record<string, Arr>;
  momentumBuffers: Record<string, Arr>;
  newtonSchulz: { input: Arr; output: Arr };
}

const here = dirname(fileURLToPath(import.meta.url));
const fx = JSON.parse(
  readFileSync(join(here, "..", "..", "test", "fixtures", "muon", "muon.json"), "utf8"),
) as MuonFixture;

function orthogonalise(k: Backend, input: Arr, batch = 1, precision: "fp32" | "bf16" = "fp32"): Float32Array {
  const [rows, cols] = input.shape as [number, number];
  const work = new NewtonSchulzWork(batch, rows, cols);
  for (let i = 0; i < batch; i++) work.x.set(input.data, i * rows * cols);
  return newtonSchulz(k, work, undefined, precision).slice();
}

/** The fixture's parameters after its gradient steps, on the current backend. */
function runFixture(precision: "fp32" | "bf16") {
  const names = Object.keys(fx.params);
  const params = names.map((n) => T.parameter(Float32Array.from(fx.params[n]!.data), fx.params[n]!.shape, n));
  const muon = new Muon(params, { lr: fx.lr, momentum: fx.momentum, weightDecay: fx.weightDecay, precision });
  const steps = fx.grads[names[0]!]!.length;
  for (let s = 0; s < steps; s++) {
    params.forEach((p, i) => {
      const g = fx.grads[names[i]!]![s]!;
      p.grad = T.keep(T.tensor(g.data, g.shape));
    });
    muon.update();
    for (const p of params) {
      p.grad!.kept = false;
      p.grad!.dispose();
      p.grad = null;
    }
  }
  return { names, params, muon, steps };
}

for (const b of ["reference", "native"] as const) {
  test(`Muon steps match PyTorch (muon.py): tall, wide and square matrices, ${b} backend`, (t) => {
    if (b === "native" && !nativeBackend()) return t.skip("native addon not built");
    setBackend(b);
    try {
      const { names, params, muon, steps } = runFixture("fp32");
      assert.equal(muon.step, steps);
      const { momentum } = muon.state();
      names.forEach((n, i) => {
        // Updates are lr-sized (0.05) per step; float32 Newton–Schulz agrees with float64 to ~1e-5 of that.
        assertClose(params[i]!.data, fx.result[n]!.data, 1e-4, 2e-5, `${n} after ${steps} steps`);
        assertClose(momentum[i]!, fx.momentumBuffers[n]!.data, 1e-5, 1e-7, `${n} momentum buffer`);
      });
    } finally {
      setBackend("native");
    }
  });
}

test("Newton–Schulz matches PyTorch's zeropower_via_newtonschulz5 (wide matrix, float64 reference)", () => {
  const out = orthogonalise(reference, fx.newtonSchulz.input);
  assertClose(out, fx.newtonSchulz.output.data, 1e-4, 1e-5, "NS5");
});

test("Newton–Schulz: native agrees with reference, batched, on wide, tall and square matrices", (t) => {
  const native = nativeBackend();
  if (!native) return t.skip("native addon not built");
  const rng = new Rng(7);
  for (const [rows, cols] of [
    [24, 40],
    [48, 20],
    [32, 32],
    [1, 9],
  ] as const) {
    const input = { shape: [rows, cols], data: Array.from({ length: rows * cols }, () => rng.normal()) };
    const r = orthogonalise(reference, input, 3);
    const n = orthogonalise(native, input, 3);
    const err = relError(n, r);
    assert.ok(err < 1e-4, `[${rows}, ${cols}]: native vs reference relative error ${err}`);
    // Every matrix of a batch is handled on its own: the three copies come out the same.
    const size = rows * cols;
    assertClose(r.subarray(size, 2 * size), r.subarray(0, size), 1e-6, 1e-7, "batch item 1 vs 0");
  }
});

test("Newton–Schulz in bf16 (Keller's precision) stays within bf16's rounding of float32's, on both backends", (t) => {
  const native = nativeBackend();
  if (!native) return t.skip("native addon not built");
  const rng = new Rng(11);
  for (const [rows, cols] of [
    [24, 40],
    [48, 20],
    [40, 40],
  ] as const) {
    const input = { shape: [rows, cols], data: Array.from({ length: rows * cols }, () => rng.normal()) };
    const fp32 = orthogonalise(reference, input, 2);
    for (const [name, k] of [
      ["reference", reference],
      ["native", native],
    ] as const) {
      const bf16 = orthogonalise(k, input, 2, "bf16");
      const err = relError(bf16, fp32);
      // bf16 keeps 8 significant bits (rounding 2^-9 ≈ 2e-3), and the quintic's slope of 3.4 near zero
      // amplifies it along small singular values: 3–5% here, far inside Newton–Schulz's own spread
      // (singular values land anywhere in about [0.5, 1.5]). The lower bound shows bf16 was used.
      assert.ok(err < 0.1 && err > 1e-3, `[${rows}, ${cols}] ${name}: bf16 vs fp32 relative error ${err}`);
    }
  }
  // A whole Muon run in bf16 stays near PyTorch's float64 steps: each update (lr 0.05) is off by ~1%.
  const { names, params } = runFixture("bf16");
  names.forEach((n, i) => {
    assertClose(params[i]!.data, fx.result[n]!.data, 0, 5e-3, `${n} after bf16 steps`);
  });
});

test("Newton–Schulz moves the singular values towards 1 (XᵀX near the identity for a tall matrix)", () => {
  const rng = new Rng(3);
  const [rows, cols] = [40, 12];
  const input = { shape: [rows, cols], data: Array.from({ length: rows * cols }, () => rng.normal()) };
  const x = orthogonalise(reference, input);
  const gram = new Float32Array(cols * cols);
  reference.matmul(x, x, gram, {
    batch: 1,
    m: cols,
    n: cols,
    k: rows,
    transA: true,
    transB: false,
    strideA: 0,
    strideB: 0,
    accumulate: false,
  });
  // Singular values land in roughly [0.5, 1.5] (not exactly 1): the Gram's diagonal is their mean square.
  for (let i = 0; i < cols; i++) {
    const d = gram[i * cols + i]!;
    assert.ok(d > 0.25 && d < 2.25, `diagonal ${i} of XᵀX is ${d}`);
  }
});

test("muon gives the hidden matrices to Muon and the embeddings, head, norms and biases to AdamW", () => {
  for (const family of ["llama", "gpt2"] as const) {
    for (const tie of [false, true]) {
      const config = { ...preset("nano", family, 300, 32), tie };
      const model = createModel(config, 1);
      const opt = createOptimizer(model, parseTrainConfig({ optimizer: "muon" }));
      assert.ok(opt instanceof MuonWithAdamW);
      const muonNames = new Set(opt.muon.params().map((p) => p.name));
      for (const s of model.specs) {
        const hidden = s.shape.length === 2 && s.decay && s.shape[0] !== config.vocab;
        assert.equal(muonNames.has(s.name), hidden, `${family} tie=${tie}: ${s.name}`);
        assert.equal(isHiddenMatrix(s, model.config), hidden, `${family}: ${s.name}`);
      }
      // 4 attention and 3 (llama) or 2 (gpt2) MLP matrices per block.
      assert.equal(muonNames.size, config.layers * (family === "llama" ? 7 : 6));
      assert.equal(opt.params().length, model.specs.length);
      for (const name of ["lm_head.weight", "model.embed_tokens.weight", "wte.weight", "wpe.weight"])
        assert.ok(!muonNames.has(name), `${name} must stay with AdamW`);
    }
  }
  const adamw = createOptimizer(createModel(preset("nano", "llama", 300, 32), 1), parseTrainConfig({}));
  assert.equal(adamw.name, "adamw");
});

test("the schedule scales both groups: Muon's rate is lr × muonLr / lr", () => {
  const model = createModel(preset("nano", "llama", 300, 32), 1);
  const opt = createOptimizer(model, parseTrainConfig({ optimizer: "muon", lr: 0.004, muonLr: 0.02 }));
  assert.ok(opt instanceof MuonWithAdamW);
  const seen: number[] = [];
  const original = opt.muon.update.bind(opt.muon);
  opt.muon.update = (lr?: number) => {
    seen.push(lr!);
    original(lr);
  };
  opt.update(0.001); // a quarter of the peak
  assert.ok(Math.abs(seen[0]! - 0.005) < 1e-12, `Muon's rate ${seen[0]}`);
  assert.equal(opt.step, 1);
  assert.equal(opt.muon.step, 1);
});
