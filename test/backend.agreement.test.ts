// The native kernels against the reference kernels on random float32 inputs, every kernel and both
// directions, for every instruction set this CPU runs (avx512, avx2, generic). Tolerance: max |native − reference| / max(|reference|, 1e-3) ≤ the per-kernel bound below
// (1e-4 unless stated; reductions over long rows get the same bound since both accumulate carefully).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { AttentionShape, Backend } from "../src/backend/backend.js";
import { nativeBackend, reference } from "../src/backend/index.js";
import { nativeIsa, selectNativeIsa } from "../src/backend/native.js";
import { ropeTable } from "../src/tensor/ops.js";
import { Rng } from "../src/tensor/random.js";
import { relError } from "./helpers/close.js";

const TOL = 1e-4;
type Isa = "avx512" | "avx2" | "generic";
const ISAS: Isa[] = ["avx512", "avx2", "generic"];
const rng = new Rng(42);
const rand = (n: number, s = 1) => Float32Array.from({ length: n }, () => rng.normal() * s);
const out = (n: number) => new Float32Array(n).fill(Number.NaN); // dirty: a kernel must overwrite

/**
 * Runs `call` on both backends with fresh copies of the outputs and compares every output array.
 * jointScale: each output's error is relative to the largest reference value of all outputs, for outputs
 * that share one scale and may be zero up to rounding (a single key's gradient under softmax).
 */
function agree(
  name: string,
  outputs: Record<string, number>,
  call: (k: Backend, o: Record<string, Float32Array>) => unknown,
  tol = TOL,
  jointScale = false,
) {
  const native = nativeBackend();
  assert.ok(native, "the native addon must be built for this test (npm install builds it)");
  const run = (k: Backend) => {
    const o: Record<string, Float32Array> = {};
    for (const [key, n] of Object.entries(outputs)) o[key] = out(n);
    const ret = call(k, o);
    return { o, ret };
  };
  const r = run(reference);
  const maxAbs = (a: Float32Array) => a.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  const floor = jointScale ? Math.max(1e-3, ...Object.values(r.o).map(maxAbs)) : 1e-3;
  const defaultIsa = nativeIsa() as Isa;
  try {
    for (const isa of ISAS) {
      if (!selectNativeIsa(isa)) continue; // this CPU lacks it
      const n = run(native);
      for (const key of Object.keys(outputs)) {
        const e = relError(n.o[key]!, r.o[key]!, floor);
        assert.ok(
          e <= tol,
          `${name}.${key} (${isa}): native vs reference relative error ${e.toExponential(2)} > ${tol}`,
        );
      }
      if (typeof r.ret === "number") {
        const e = Math.abs((n.ret as number) - r.ret) / Math.max(1, Math.abs(r.ret));
        assert.ok(e <= tol, `${name} (${isa}): returned ${n.ret} vs ${r.ret}`);
      }
    }
  } finally {
    selectNativeIsa(defaultIsa);
  }
}

test("agreement: matmul, all layouts", () => {
  for (const [batch, m, n, k] of [
    [1, 1, 1, 1],
    [1, 17, 33, 65],
    [3, 8, 5, 40],
    [1, 130, 70, 257],
    [1, 1, 300, 96],
  ] as const) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const [sharedB, accumulate] of [
          [false, false],
          [true, true],
        ] as const) {
          const a = rand(batch * m * k);
          const b = rand((sharedB ? 1 : batch) * k * n);
          const c0 = rand(batch * m * n);
          agree(
            `matmul ${batch}x${m}x${n}x${k} tA${transA} tB${transB} shared${sharedB} acc${accumulate}`,
            { c: batch * m * n },
            (kk, o) => {
              o.c!.set(c0);
              kk.matmul(a, b, o.c!, {
                batch,
                m,
                n,
                k,
                transA,
                transB,
                strideA: m * k,
                strideB: sharedB ? 0 : k * n,
                accumulate,
              });
            },
          );
        }
      }
    }
  }
});

test("agreement: elementwise, reductions, embedding", () => {
  const n = 1000;
  const a = rand(n);
  const b = rand(n);
  const bias = rand(40);
  agree("add", { o: n }, (k, o) => k.add(a, b, o.o!, n, n));
  agree("add broadcast", { o: n }, (k, o) => k.add(a, bias, o.o!, n, 40));
  agree("mul broadcast", { o: n }, (k, o) => k.mul(a, bias, o.o!, n, 40));
  agree("scale", { o: n }, (k, o) => k.scale(a, 0.37, o.o!, n));
  agree("addInto", { o: n }, (k, o) => {
    o.o!.set(b);
    k.addInto(o.o!, a, n);
  });
  agree("fill", { o: n }, (k, o) => k.fill(o.o!, 2.5, n));
  agree("sumRows", { o: 40 }, (k, o) => k.sumRows(a, o.o!, 25, 40));
  agree("sum", {}, (k) => k.sum(a, n));
  agree("sumSquares", {}, (k) => k.sumSquares(a, n));
  const table = rand(50 * 8);
  const ids = Int32Array.from({ length: 30 }, () => rng.int(50));
  agree("embedding", { o: 30 * 8 }, (k, o) => k.embedding(table, ids, o.o!, 30, 8));
  const g = rand(30 * 8);
  agree("embeddingBackward", { o: 50 * 8 }, (k, o) => k.embeddingBackward(g, ids, o.o!, 30, 8, 50));
});

test("agreement: norms, activations, softmax", () => {
  const rows = 37;
  const dim = 96;
  const x = rand(rows * dim, 2);
  const w = rand(dim);
  const b = rand(dim);
  const g = rand(rows * dim);
  agree("layerNorm", { y: rows * dim, mean: rows, rstd: rows }, (k, o) =>
    k.layerNorm(x, w, b, o.y!, o.mean!, o.rstd!, rows, dim, 1e-5),
  );
  const mean = new Float32Array(rows);
  const rstd = new Float32Array(rows);
  reference.layerNorm(x, w, b, out(rows * dim), mean, rstd, rows, dim, 1e-5);
  agree("layerNormBackward", { gx: rows * dim, gw: dim, gb: dim }, (k, o) =>
    k.layerNormBackward(g, x, w, mean, rstd, o.gx!, o.gw!, o.gb!, rows, dim),
  );
  agree("rmsNorm", { y: rows * dim, rstd: rows }, (k, o) => k.rmsNorm(x, w, o.y!, o.rstd!, rows, dim, 1e-5));
  reference.rmsNorm(x, w, out(rows * dim), rstd, rows, dim, 1e-5);
  agree("rmsNormBackward", { gx: rows * dim, gw: dim }, (k, o) =>
    k.rmsNormBackward(g, x, w, rstd, o.gx!, o.gw!, rows, dim),
  );
  const n = rows * dim;
  for (const act of ["gelu", "silu", "relu2"] as const) {
    agree(act, { y: n }, (k, o) => k[act](x, o.y!, n));
    agree(`${act}Backward`, { gx: n }, (k, o) => k[`${act}Backward`](x, g, o.gx!, n));
  }
  // x spans ±4 around a cap of 1.5: tanh's flat tails and its steep middle both get exercised.
  agree("softcap", { y: n }, (k, o) => k.softcap(x, o.y!, n, 1.5));
  agree("softcapBackward", { gx: n }, (k, o) => k.softcapBackward(x, g, o.gx!, n, 1.5));
  const up = rand(n);
  agree("swiglu", { y: n }, (k, o) => k.swiglu(x, up, o.y!, n));
  agree("swigluBackward", { gg: n, gu: n }, (k, o) => k.swigluBackward(x, up, g, o.gg!, o.gu!, n));
  const y = new Float32Array(n);
  agree("softmax", { y: n }, (k, o) => k.softmax(x, o.y!, rows, dim));
  reference.softmax(x, y, rows, dim);
  agree("softmaxBackward", { gx: n }, (k, o) => k.softmaxBackward(y, g, o.gx!, rows, dim));
});

test("agreement: rope and attention (MHA, GQA, MQA, T=1, tq<tk, non-causal)", () => {
  const shapes: AttentionShape[] = [
    { batch: 2, tq: 33, tk: 33, heads: 4, kvHeads: 4, headDim: 16, scale: 0.25, causal: true },
    { batch: 1, tq: 64, tk: 64, heads: 6, kvHeads: 2, headDim: 32, scale: 1 / Math.sqrt(32), causal: true },
    { batch: 2, tq: 9, tk: 9, heads: 3, kvHeads: 1, headDim: 8, scale: 0.3, causal: true },
    { batch: 3, tq: 1, tk: 1, heads: 2, kvHeads: 1, headDim: 4, scale: 0.5, causal: true },
    { batch: 1, tq: 1, tk: 20, heads: 4, kvHeads: 2, headDim: 8, scale: 0.35, causal: true },
    { batch: 1, tq: 5, tk: 12, heads: 2, kvHeads: 2, headDim: 8, scale: 0.35, causal: false },
  ];
  for (const s of shapes) {
    const tag = `attention b${s.batch} tq${s.tq} tk${s.tk} h${s.heads}/${s.kvHeads} hd${s.headDim} causal${s.causal}`;
    const qn = s.batch * s.tq * s.heads * s.headDim;
    const kn = s.batch * s.tk * s.kvHeads * s.headDim;
    const q = rand(qn);
    const k = rand(kn);
    const v = rand(kn);
    const g = rand(qn);
    agree(tag, { o: qn, lse: s.batch * s.heads * s.tq }, (kk, o) => kk.attention(q, k, v, o.o!, o.lse!, s));
    const o = new Float32Array(qn);
    const lse = new Float32Array(s.batch * s.heads * s.tq);
    reference.attention(q, k, v, o, lse, s);
    // With one visible key, softmax has no gradient wrt its score: gk is zero up to rounding.
    agree(
      `${tag} backward`,
      { gq: qn, gk: kn, gv: kn },
      (kk, r) => kk.attentionBackward(q, k, v, o, lse, g, r.gq!, r.gk!, r.gv!, s),
      TOL,
      true,
    );
    const table = ropeTable(10000, s.headDim, 128, "float32");
    for (const inverse of [false, true]) {
      agree(`rope ${tag} inverse${inverse}`, { o: kn }, (kk, r) =>
        kk.rope(k, r.o!, table.cos, table.sin, s.batch, s.tk, s.kvHeads, s.headDim, 3, inverse),
      );
    }
  }
});

test("agreement: rope at per-row positions, attention against per-sequence caches", () => {
  const [heads, kvHeads, hd] = [6, 2, 32];
  const seqs: [number, number][] = [
    [1, 1],
    [1, 77],
    [20, 20],
    [3, 50],
    [1, 129],
  ];
  const rows = seqs.reduce((a, [n]) => a + n, 0);
  const positions = Int32Array.from(seqs.flatMap(([n, l]) => Array.from({ length: n }, (_, i) => l - n + i)));
  const table = ropeTable(10000, hd, 256, "float32");
  const x = rand(rows * kvHeads * hd);
  for (const inverse of [false, true]) {
    agree(`rope positions inverse${inverse}`, { o: x.length }, (kk, r) =>
      kk.rope(x, r.o!, table.cos, table.sin, 1, rows, kvHeads, hd, positions, inverse),
    );
  }
  const q = rand(rows * heads * hd);
  const keys = seqs.map(([, l]) => rand((l + 2) * kvHeads * hd));
  const values = seqs.map(([, l]) => rand((l + 2) * kvHeads * hd));
  agree("attentionCached", { o: q.length }, (kk, r) =>
    kk.attentionCached(
      q,
      keys,
      values,
      Int32Array.from(seqs, ([n]) => n),
      Int32Array.from(seqs, ([, l]) => l),
      r.o!,
      { heads, kvHeads, headDim: hd, scale: hd ** -0.5 },
    ),
  );
});

test("agreement: cross-entropy, dropout, adamw", () => {
  const rows = 24;
  const vocab = 300;
  const logits = rand(rows * vocab, 3);
  const targets = Int32Array.from({ length: rows }, (_, i) => (i % 5 === 0 ? -1 : rng.int(vocab)));
  agree("crossEntropy", { loss: rows, lse: rows }, (k, o) =>
    k.crossEntropy(logits, targets, o.loss!, o.lse!, rows, vocab, -1),
  );
  const lse = new Float32Array(rows);
  reference.crossEntropy(logits, targets, new Float32Array(rows), lse, rows, vocab, -1);
  agree("crossEntropyBackward", { gx: rows * vocab }, (k, o) =>
    k.crossEntropyBackward(logits, targets, lse, o.gx!, rows, vocab, -1, 1 / 19),
  );
  const n = 5000;
  const x = rand(n);
  agree("dropout", { y: n }, (k, o) => k.dropout(x, o.y!, n, 0.25, 12345));
  agree("dropoutBackward", { gx: n }, (k, o) => k.dropoutBackward(x, o.gx!, n, 0.25, 12345));
  const p0 = rand(n);
  const grad = rand(n);
  const m0 = rand(n, 0.1);
  const v0 = Float32Array.from(rand(n), (z) => z * z * 0.01);
  agree("adamw", { p: n, m: n, v: n }, (k, o) => {
    o.p!.set(p0);
    o.m!.set(m0);
    o.v!.set(v0);
    const args = {
      lr: 1e-3,
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      weightDecay: 0.1,
      biasCorrection1: 1 - 0.9 ** 3,
      biasCorrection2: 1 - 0.95 ** 3,
    };
    k.adamw(o.p!, grad, o.m!, o.v!, n, args);
  });
});

test("agreement: token log-probs gradient and the loss primitives", () => {
  const rows = 24;
  const vocab = 300;
  const logits = rand(rows * vocab, 3);
  const targets = Int32Array.from({ length: rows }, (_, i) => (i % 5 === 0 ? -1 : rng.int(vocab)));
  const lse = new Float32Array(rows);
  reference.crossEntropy(logits, targets, new Float32Array(rows), lse, rows, vocab, -1);
  const gRows = rand(rows);
  agree("tokenLogProbsBackward", { gx: rows * vocab }, (k, o) =>
    k.tokenLogProbsBackward(logits, targets, lse, gRows, o.gx!, rows, vocab, -1),
  );
  const n = 3000;
  // Spread ±12: log-sigmoid's linear and exponentially flat tails, exp over many magnitudes.
  const x = rand(n, 4);
  const y = rand(n, 4);
  const g = rand(n);
  agree("exp", { y: n }, (k, o) => k.exp(x, o.y!, n));
  agree("logSigmoid", { y: n }, (k, o) => k.logSigmoid(x, o.y!, n));
  agree("logSigmoidBackward", { gx: n }, (k, o) => k.logSigmoidBackward(x, g, o.gx!, n));
  for (const [lo, hi] of [
    [0.8, 1.2],
    [0, Number.POSITIVE_INFINITY],
    [Number.NEGATIVE_INFINITY, -1],
  ] as const) {
    agree(`clamp [${lo}, ${hi}]`, { y: n }, (k, o) => k.clamp(x, o.y!, n, lo, hi));
    agree(`clampBackward [${lo}, ${hi}]`, { gx: n }, (k, o) => k.clampBackward(x, g, o.gx!, n, lo, hi));
  }
  // Every third pair ties: the tie rule (half the gradient each) must match too.
  const b = Float32Array.from(y, (v, i) => (i % 3 === 0 ? x[i]! : v));
  agree("minimum", { y: n }, (k, o) => k.minimum(x, b, o.y!, n));
  agree("minimumBackward", { ga: n, gb: n }, (k, o) => k.minimumBackward(x, b, g, o.ga!, o.gb!, n));
});

test("the loss kernels refuse bad calls on both backends", () => {
  const native = nativeBackend();
  assert.ok(native, "the native addon must be built for this test");
  for (const k of [reference, native]) {
    assert.throws(() => k.clamp(rand(4), out(4), 4, 1, 0), /lower bound 1.* must be <= upper bound 0/);
    assert.throws(
      () => k.tokenLogProbsBackward(rand(8), Int32Array.from([0, 9]), rand(2), rand(2), out(8), 2, 4, -100),
      /tokenLogProbsBackward: target 9 at row 1/,
    );
  }
});
