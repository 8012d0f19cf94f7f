// Sparse autoencoders: the loss and its gradient equal PyTorch's (fixture from tools/gen_sae_fixtures.py) and a
// float64 finite-difference check, decoder rows stay at unit norm through training, top-k keeps exactly k,
// an SAE trained on activations made from a known sparse dictionary explains them at low L0, CE recovered is 1
// for a perfect reconstruction and 0 for the ablation itself, save/load round-trips, and bad input is refused.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  ceRecovered,
  createSae,
  evaluateSae,
  geometricMedian,
  loadSae,
  normalizeDecoder,
  projectDecoderGrad,
  type Sae,
  type SaeConfig,
  saeApply,
  saeLoss,
  saveSae,
  scanFeatures,
  topkMask,
  trainSae,
} from "../src/interp/index.js";
import { createModel, type ModelConfig, preset } from "../src/nn/index.js";
import { AdamW } from "../src/optim/index.js";
import { noGrad, parameter, Rng, type Tensor, tensor, tidy } from "../src/tensor/index.js";
import { train } from "../src/train/index.js";
import { assertClose } from "./helpers/close.js";
import { tinyDataset, tinyModel } from "./helpers/train-data.js";

const fixtures = fileURLToPath(new URL("../../test/fixtures/interp/", import.meta.url));

interface Enc {
  shape: number[];
  data: number[];
}
interface Case {
  kind: "relu" | "topk";
  l1: number;
  k: number | null;
  [name: string]: Enc | number | string | null;
}

function saeFrom(c: Case, dtype: "float32" | "float64"): { sae: Sae; x: Tensor } {
  const t = (name: string, requiresGrad = true) => {
    const e = c[name] as Enc;
    const arr = dtype === "float64" ? Float64Array.from(e.data) : Float32Array.from(e.data);
    return requiresGrad ? parameter(arr, e.shape, name) : tensor(arr, e.shape, { dtype });
  };
  const W_enc = t("W_enc");
  const [dIn, features] = W_enc.shape as [number, number];
  const config: SaeConfig = {
    hook: "blocks.0.hook_resid_post",
    dIn,
    features,
    activation: c.kind === "relu" ? { kind: "relu", l1: c.l1 } : { kind: "topk", k: c.k! },
    inputScale: 1,
  };
  return {
    sae: { config, W_enc, b_enc: t("b_enc"), W_dec: t("W_dec"), b_dec: t("b_dec") },
    x: t("x", false),
  };
}

const ref = JSON.parse(readFileSync(join(fixtures, "sae-loss.json"), "utf8")) as { cases: Case[] };

for (const c of ref.cases) {
  for (const [dtype, rtol, atol] of [
    ["float64", 1e-10, 1e-12],
    ["float32", 2e-4, 2e-5],
  ] as const) {
    test(`${c.kind} SAE (${dtype}): loss, f, x̂ and the gradients equal PyTorch's, W_dec's after projection`, () => {
      const { sae, x } = saeFrom(c, dtype);
      tidy(() => {
        const r = saeLoss(sae, x);
        r.loss.backward();
        assertClose([r.loss.item()], [c.loss as number], rtol, atol, "loss");
        assertClose([r.mse.item()], [c.mse as number], rtol, atol, "mse");
        if (c.kind === "relu")
          assertClose([r.sparsity.item()], [c.sparsity as number], rtol, atol, "sparsity");
        assertClose(r.f.data, (c.f as Enc).data, rtol, atol, "f");
        assertClose(r.xhat.data, (c.xhat as Enc).data, rtol, atol, "x̂");
      });
      assertClose(sae.W_enc.grad!.data, (c.grad_W_enc as Enc).data, rtol, atol, "dW_enc");
      assertClose(sae.b_enc.grad!.data, (c.grad_b_enc as Enc).data, rtol, atol, "db_enc");
      assertClose(sae.b_dec.grad!.data, (c.grad_b_dec as Enc).data, rtol, atol, "db_dec");
      projectDecoderGrad(sae);
      assertClose(sae.W_dec.grad!.data, (c.grad_W_dec_projected as Enc).data, rtol, atol, "dW_dec projected");
    });
  }
}

test("float64 finite differences agree with the SAE loss's gradient (encoder, biases; decoder with unit rows along the tangent)", () => {
  const c = ref.cases[0]!;
  const { sae, x } = saeFrom(c, "float64");
  normalizeDecoder(sae);
  const lossAt = () => noGrad(() => tidy(() => saeLoss(sae, x).loss.item()));
  tidy(() => saeLoss(sae, x).loss.backward());
  projectDecoderGrad(sae);
  const h = 1e-6;
  for (const p of [sae.W_enc, sae.b_enc, sae.b_dec, sae.W_dec]) {
    const numeric = Array.from(p.data, (_, i) => {
      const old = p.data[i]!;
      p.data[i] = old + h;
      const lp = lossAt();
      p.data[i] = old - h;
      const lm = lossAt();
      p.data[i] = old;
      return (lp - lm) / (2 * h);
    });
    if (p === sae.W_dec) {
      // The finite difference also moves the norms in the penalty; that part lies along each row, so after
      // removing each row's own component the two must agree.
      const { features, dIn } = sae.config;
      for (let i = 0; i < features; i++) {
        let dot = 0;
        for (let j = 0; j < dIn; j++) dot += numeric[i * dIn + j]! * p.data[i * dIn + j]!;
        for (let j = 0; j < dIn; j++) numeric[i * dIn + j]! -= dot * p.data[i * dIn + j]!;
      }
    }
    assertClose(p.grad!.data, numeric, 1e-5, 1e-6, `d/d${p.name}`);
  }
});

test("top-k keeps exactly k features where k pre-activations are positive, and no more than k anywhere", () => {
  const rng = new Rng(3);
  const rows = 7;
  const cols = 40;
  const pre = Float32Array.from({ length: rows * cols }, () => rng.normal());
  for (const k of [1, 5, 17, 40]) {
    const mask = topkMask(pre, rows, cols, k);
    for (let r = 0; r < rows; r++) {
      const row = Array.from(pre.subarray(r * cols, (r + 1) * cols));
      const kth = [...row].sort((a, b) => b - a)[k - 1]!;
      const kept = row.filter((_, j) => mask[r * cols + j] === 1);
      assert.equal(kept.length, k);
      assert.ok(kept.every((v) => v >= kth));
    }
  }
  // A top-k SAE whose encoder bias makes every pre-activation positive has exactly k active per token.
  const sae = createSae(
    { hook: "h", dIn: 8, features: 32, activation: { kind: "topk", k: 4 }, inputScale: 1 },
    1,
  );
  sae.b_enc.data.fill(100);
  const acts = Float32Array.from({ length: 10 * 8 }, () => rng.normal());
  const { f } = saeApply(sae, acts, 10);
  for (let i = 0; i < 10; i++) assert.equal(f.subarray(i * 32, (i + 1) * 32).filter((v) => v > 0).length, 4);
});

/** n activations [n, d] made from `active` of `atoms` random unit directions, with positive coefficients. */
function sparseData(n: number, d: number, atoms: number, active: number, seed: number) {
  const rng = new Rng(seed);
  const dict = Float64Array.from({ length: atoms * d }, () => rng.normal());
  for (let a = 0; a < atoms; a++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += dict[a * d + j]! ** 2;
    for (let j = 0; j < d; j++) dict[a * d + j]! /= Math.sqrt(s);
  }
  const x = new Float32Array(n * d);
  for (let i = 0; i < n; i++)
    for (let t = 0; t < active; t++) {
      const a = rng.int(atoms);
      const c = 1 + rng.uniform() * 2;
      for (let j = 0; j < d; j++) x[i * d + j]! += c * dict[a * d + j]!;
    }
  return { x, dict };
}

test("on activations built from a known sparse dictionary the SAE finds every atom and explains ≥ 0.9 of the variance at L0 ≤ 6, rows staying unit norm", () => {
  const d = 32;
  const atoms = 32;
  const features = 64;
  const { x, dict } = sparseData(6000, d, atoms, 3, 5);
  const train = x.subarray(0, 5000 * d);
  const held = x.subarray(5000 * d);
  const sae = createSae(
    { hook: "h", dIn: d, features, activation: { kind: "relu", l1: 1 }, inputScale: 1 },
    2,
    geometricMedian(train, 5000, d),
  );
  const opt = new AdamW([{ params: [sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec] }], {
    lr: 3e-3,
    weightDecay: 0,
    beta2: 0.999,
  });
  const batch = 250;
  for (let step = 0; step < 800; step++) {
    const o = (step % 20) * batch * d;
    tidy(() => saeLoss(sae, tensor(train.subarray(o, o + batch * d), [batch, d])).loss.backward());
    projectDecoderGrad(sae);
    opt.update();
    opt.zeroGrad();
    normalizeDecoder(sae);
  }
  for (let i = 0; i < features; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += sae.W_dec.data[i * d + j]! ** 2;
    assert.ok(Math.abs(Math.sqrt(s) - 1) < 1e-5, `decoder row ${i} has norm ${Math.sqrt(s)}`);
  }
  const n = 1000;
  const { f, xhat } = saeApply(sae, Float32Array.from(held), n);
  const mean = new Float64Array(d);
  for (let i = 0; i < n * d; i++) mean[i % d]! += held[i]! / n;
  let sse = 0;
  let sst = 0;
  for (let i = 0; i < n * d; i++) {
    sse += (held[i]! - xhat[i]!) ** 2;
    sst += (held[i]! - mean[i % d]!) ** 2;
  }
  const ev = 1 - sse / sst;
  const l0 = f.filter((v) => v > 0).length / n;
  assert.ok(ev >= 0.9, `explained variance ${ev}`);
  assert.ok(l0 <= 6, `L0 ${l0} (3 atoms per vector)`);
  // Every atom of the true dictionary is found: some decoder row points along it.
  for (let a = 0; a < atoms; a++) {
    let best = -1;
    for (let i = 0; i < features; i++) {
      let c = 0;
      for (let j = 0; j < d; j++) c += dict[a * d + j]! * sae.W_dec.data[i * d + j]!;
      best = Math.max(best, c);
    }
    assert.ok(best > 0.95, `atom ${a}: best decoder cosine ${best}`);
  }
});

const tinyConfig: ModelConfig = {
  ...preset("nano", "llama", 64, 16),
  dModel: 16,
  layers: 2,
  heads: 2,
  kvHeads: 2,
};

function tinyTokens(n: number, seed: number): Uint16Array {
  const rng = new Rng(seed);
  // Repetitive text, so the model's activations are not noise.
  return Uint16Array.from({ length: n }, (_, i) => (i % 7 === 0 ? rng.int(64) : (i * 5) % 64));
}

test("CE recovered is 1 when the splice returns the activation itself and 0 when it is the ablation", () => {
  const model = createModel(tinyConfig, 1);
  const val = [tinyTokens(2000, 2)];
  const hook = "blocks.0.hook_resid_post";
  const same = ceRecovered(model, hook, val, (act) => Float32Array.from(act), { maxTokens: 512 });
  assert.ok(Math.abs(same.recovered - 1) < 1e-6, `identity: ${same.recovered}`);
  assert.ok(Math.abs(same.withSae - same.clean) < 1e-6);
  assert.notEqual(same.ablated, same.clean);
  const zero = ceRecovered(model, hook, val, (act) => new Float32Array(act.length), { maxTokens: 512 });
  assert.ok(Math.abs(zero.recovered) < 1e-6, `ablation: ${zero.recovered}`);
  assert.equal(zero.tokens, 512);
});

test("an SAE trained on a tiny model: metrics are in range, save/load round-trips, inspect finds contexts, nothing is overwritten", () => {
  const model = createModel(tinyConfig, 1);
  const hook = "blocks.1.hook_resid_post";
  const opts = {
    hook,
    features: 64,
    activation: { kind: "relu" as const, l1: 0.5 },
    steps: 30,
    lr: 3e-3,
    batchTokens: 128,
    seed: 7,
    bufferTokens: 512,
  };
  const sae = trainSae(model, [tinyTokens(4000, 1)], opts);
  const again = trainSae(model, [tinyTokens(4000, 1)], opts);
  assert.deepEqual(Array.from(again.W_dec.data), Array.from(sae.W_dec.data), "same seed, same SAE");
  const m = evaluateSae(model, sae, [tinyTokens(1200, 9)], { maxTokens: 1024 });
  assert.equal(m.tokens, 1024);
  assert.ok(m.l0 > 0 && m.l0 <= 64);
  assert.ok(m.explainedVariance < 1 && m.explainedVariance > -1);
  assert.equal(m.density.length, 64);
  assert.equal(m.deadFeatures, m.density.filter((p) => p === 0).length);
  const mean = evaluateSae(model, sae, [tinyTokens(1200, 9)], { maxTokens: 1024, ablation: "mean" });
  assert.equal(mean.ce.ablation, "mean");
  assert.equal(mean.ce.withSae, m.ce.withSae);
  assert.notEqual(mean.ce.ablated, m.ce.ablated);

  const root = mkdtempSync(join(tmpdir(), "afterscale-sae-"));
  const dir = join(root, "sae");
  const info = {
    model: "tiny",
    modelSource: "tiny",
    data: "tiny",
    seed: 7,
    steps: 30,
    batchTokens: 128,
    lr: 3e-3,
    bDecInit: "median" as const,
    metrics: m,
  };
  saveSae(dir, sae, info);
  const { sae: back, file } = loadSae(dir);
  assert.deepEqual(back.config, sae.config);
  assert.equal(file.info.seed, 7);
  for (const k of ["W_enc", "b_enc", "W_dec", "b_dec"] as const)
    assert.deepEqual(Array.from(back[k].data), Array.from(sae[k].data), k);
  assert.throws(() => saveSae(dir, sae, info), /already exists/);
  assert.deepEqual(
    Array.from(loadSae(dir).sae.W_dec.data),
    Array.from(sae.W_dec.data),
    "the first SAE is intact",
  );

  const scan = scanFeatures(model, back, [tinyTokens(1200, 9)], { contexts: 3, maxTokens: 512 });
  assert.equal(scan.tokens, 512);
  const alive = scan.features.filter((f) => f.density > 0);
  assert.ok(alive.length > 0);
  for (const f of alive) {
    assert.ok(f.contexts.length > 0 && f.contexts.length <= 3);
    assert.equal(f.contexts[0]!.activation, f.maxActivation);
    for (let i = 1; i < f.contexts.length; i++)
      assert.ok(f.contexts[i - 1]!.activation >= f.contexts[i]!.activation);
  }
});

test("bad input is refused by name: unknown hook, per-pair hook, missing folder, corrupt or mismatched files", () => {
  const model = createModel(tinyConfig, 1);
  const base = {
    features: 8,
    activation: { kind: "relu" as const, l1: 1 },
    steps: 1,
    lr: 1e-3,
    batchTokens: 16,
    seed: 1,
  };
  assert.throws(
    () => trainSae(model, [tinyTokens(500, 1)], { ...base, hook: "blocks.9.hook_resid_post" }),
    /no hook point blocks\.9\.hook_resid_post/,
  );
  assert.throws(
    () => trainSae(model, [tinyTokens(500, 1)], { ...base, hook: "blocks.0.attn.hook_pattern" }),
    /per pair of positions/,
  );
  const root = mkdtempSync(join(tmpdir(), "afterscale-sae-bad-"));
  assert.throws(() => loadSae(join(root, "missing")), /no such folder .*missing/);
  assert.throws(() => loadSae(root), /holds no sae\.json/);

  const sae = createSae(
    {
      hook: "blocks.0.hook_resid_post",
      dIn: 16,
      features: 32,
      activation: { kind: "topk", k: 4 },
      inputScale: 1,
    },
    1,
  );
  const info = {
    model: "m",
    modelSource: "m",
    data: "d",
    seed: 1,
    steps: 0,
    batchTokens: 1,
    lr: 1,
    bDecInit: "mean" as const,
    metrics: null,
  };
  const dir = join(root, "ok");
  saveSae(dir, sae, info);
  const json = JSON.parse(readFileSync(join(dir, "sae.json"), "utf8"));
  writeFileSync(join(dir, "sae.json"), JSON.stringify({ ...json, features: 33 }));
  assert.throws(() => loadSae(dir), /W_enc is \[16,32\], sae\.json implies \[16,33\]/);
  writeFileSync(join(dir, "sae.json"), JSON.stringify({ ...json, activation: { kind: "topk", k: 99 } }));
  assert.throws(() => loadSae(dir), /top-k k must be an integer in \[1, 32\]/);
  writeFileSync(join(dir, "sae.json"), "{ not json");
  assert.throws(() => loadSae(dir), /sae\.json is not valid JSON/);
  writeFileSync(join(dir, "sae.json"), JSON.stringify(json));
  writeFileSync(join(dir, "sae.safetensors"), Buffer.from([1, 2, 3]));
  assert.throws(() => loadSae(dir), /sae\.safetensors: not a valid safetensors file/);
  assert.ok(existsSync(join(dir, "sae.json")));

  // An SAE for a wider hook than the model has is refused when it meets the model.
  const wide = createSae(
    {
      hook: "blocks.0.hook_resid_post",
      dIn: 24,
      features: 8,
      activation: { kind: "relu", l1: 1 },
      inputScale: 1,
    },
    1,
  );
  assert.throws(
    () => evaluateSae(model, wide, [tinyTokens(500, 2)], { maxTokens: 64 }),
    /width 16, the SAE's d_in is 24/,
  );
});

test("the CLI: sae train writes a folder with its metrics, refuses to overwrite it and an unknown hook; sae inspect shows contexts", async () => {
  const { root, data } = tinyDataset();
  after(() => rmSync(root, { recursive: true, force: true }));
  const run = await train(
    { ...tinyModel, data, root, runName: "sae-base", steps: 4 },
    { quiet: true, handleSignals: false, log: () => {} },
  );
  const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
  const afterscale = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: "utf8" });
  const out = join(root, "sae-tiny");
  const args = ["sae", "train", "--model", run.runDir, "--hook", "blocks.1.hook_resid_post", "--l1", "1"];
  const small = [
    "--steps",
    "5",
    "--batch-tokens",
    "64",
    "--eval-tokens",
    "128",
    "-o",
    out,
    "--quiet",
    "--json",
  ];
  const r = afterscale(...args, ...small);
  assert.equal(r.status, 0, r.stderr);
  const result = JSON.parse(r.stdout) as {
    features: number;
    l0: number;
    ce: { recovered: number };
    tokens: number;
  };
  assert.equal(result.features, 8 * tinyModel.dModel);
  assert.equal(result.tokens, 128);
  const saved = JSON.parse(readFileSync(join(out, "sae.json"), "utf8"));
  assert.equal(saved.hook, "blocks.1.hook_resid_post");
  assert.equal(saved.info.steps, 5);
  assert.equal(saved.info.metrics.l0, result.l0);
  const again = afterscale(...args, ...small);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /already exists/);
  const badHook = afterscale(
    "sae",
    "train",
    "--model",
    run.runDir,
    "--hook",
    "blocks.7.hook_resid_post",
    "--l1",
    "1",
  );
  assert.match(badHook.stderr, /no hook point blocks\.7\.hook_resid_post/);
  const both = afterscale("sae", "train", "--model", run.runDir, "--hook", "blocks.1.hook_resid_post");
  assert.match(both.stderr, /exactly one of --l1/);
  const ins = afterscale("sae", "inspect", out, "--features", "0,3", "--contexts", "2", "--json");
  assert.equal(ins.status, 0, ins.stderr);
  const shown = JSON.parse(ins.stdout) as { features: { feature: number; contexts: { text: string }[] }[] };
  assert.deepEqual(
    shown.features.map((f) => f.feature),
    [0, 3],
  );
  for (const f of shown.features) for (const c of f.contexts) assert.match(c.text, /«.*»/s);
  const missing = afterscale("sae", "inspect", join(root, "nope"));
  assert.match(missing.stderr, /no such folder .*nope/);
  const range = afterscale("sae", "inspect", out, "--features", "9999");
  assert.match(range.stderr, /feature 9999 is out of range/);
});
