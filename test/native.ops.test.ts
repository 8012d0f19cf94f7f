// Native kernels (all but matmul) against small float64 oracles written out here, for every instruction set
// this CPU supports, on random inputs in small and edge-case shapes. Tolerance: 1e-4 relative (per element,
// with a floor of 1e-2·max|expected| so values that are tiny next to their neighbours do not dominate).
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { type AttentionShape, type Backend, dropoutKeep } from "../src/backend/backend.js";
import { floatToBf16 } from "../src/backend/bf16.js";
import {
  loadNative,
  nativeAddon,
  nativeIsa,
  selectNativeIsa,
  setNativeThreads,
} from "../src/backend/native.js";
import { mulberry32 } from "./helpers/random.js";

const TOL = 1e-4;

const rand = mulberry32(12345);
function randn(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * scale;
  return a;
}
function randInts(n: number, hi: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.floor(rand() * hi);
  return a;
}
// Output buffers start dirty, as they do from the tensor pool.
function dirty(n: number): Float32Array {
  return new Float32Array(n).fill(Number.NaN);
}

/** Max over elements of |got − want| / max(|want|, 1e-2·max|want|); asserts it is below tol. */
function check(what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol = TOL): number {
  assert.equal(got.length, want.length, `${what}: length`);
  let maxAbs = 0;
  for (let i = 0; i < want.length; i++) maxAbs = Math.max(maxAbs, Math.abs(want[i]!));
  const floor = Math.max(1e-2 * maxAbs, 1e-30);
  let worst = 0;
  let worstAbs = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (!Number.isFinite(g) && g !== w) assert.fail(`${what}[${i}]: got ${g}, want ${w}`);
    const err = g === w ? 0 : Math.abs(g - w) / Math.max(Math.abs(w), floor);
    if (err > worst) worst = err;
    if (g !== w) worstAbs = Math.max(worstAbs, Math.abs(g - w));
    if (!(err <= tol))
      assert.fail(`${what}[${i}]: got ${g}, want ${w} (relative error ${err.toExponential(2)})`);
  }
  record(what, worst, maxAbs > 0 ? worstAbs / maxAbs : worstAbs);
  return worst;
}

// Worst errors per kernel over all ISAs and shapes, printed at the end: the per-element relative error
// checked above, and the largest absolute error relative to the largest expected value.
const worstByKernel = new Map<string, [number, number]>();
function record(what: string, err: number, errOfMax: number): void {
  const key = what.split(" ")[0]!;
  const [e0, e1] = worstByKernel.get(key) ?? [0, 0];
  worstByKernel.set(key, [Math.max(e0, err), Math.max(e1, errOfMax)]);
}

// --- float64 oracles ---

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}
const GELU_K = Math.sqrt(2 / Math.PI);
function gelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(GELU_K * (x + 0.044715 * x ** 3)));
}
function geluGrad(x: number): number {
  const t = Math.tanh(GELU_K * (x + 0.044715 * x ** 3));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_K * (1 + 3 * 0.044715 * x * x);
}

interface AttentionRef {
  out: Float64Array;
  lse: Float64Array;
  gq: Float64Array;
  gk: Float64Array;
  gv: Float64Array;
}

// Plain attention with the full probability matrix, plus its gradient for upstream gradient gOut.
function attentionRef(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  gOut: Float32Array,
  s: AttentionShape,
) {
  const { batch: B, tq, tk, heads: H, kvHeads: Hkv, headDim: hd, scale, causal } = s;
  const out = new Float64Array(B * tq * H * hd);
  const lse = new Float64Array(B * H * tq);
  const gq = new Float64Array(q.length);
  const gk = new Float64Array(k.length);
  const gv = new Float64Array(v.length);
  const qi = (b: number, i: number, h: number) => ((b * tq + i) * H + h) * hd;
  const kj = (b: number, j: number, g: number) => ((b * tk + j) * Hkv + g) * hd;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / Hkv));
      for (let i = 0; i < tq; i++) {
        const n = causal ? i + tk - tq + 1 : tk;
        const sc: number[] = [];
        for (let j = 0; j < n; j++) {
          let d = 0;
          for (let c = 0; c < hd; c++) d += q[qi(b, i, h) + c]! * k[kj(b, j, g) + c]!;
          sc.push(d * scale);
        }
        const mx = Math.max(...sc);
        let sum = 0;
        for (const x of sc) sum += Math.exp(x - mx);
        const l = mx + Math.log(sum);
        lse[(b * H + h) * tq + i] = l;
        const p = sc.map((x) => Math.exp(x - l));
        for (let j = 0; j < n; j++)
          for (let c = 0; c < hd; c++) out[qi(b, i, h) + c] += p[j]! * v[kj(b, j, g) + c]!;
        // Backward: dp_j = gO·v_j, ds_j = p_j (dp_j − Σ p dp).
        const dp: number[] = [];
        for (let j = 0; j < n; j++) {
          let d = 0;
          for (let c = 0; c < hd; c++) d += gOut[qi(b, i, h) + c]! * v[kj(b, j, g) + c]!;
          dp.push(d);
        }
        let pdp = 0;
        for (let j = 0; j < n; j++) pdp += p[j]! * dp[j]!;
        for (let j = 0; j < n; j++) {
          const ds = p[j]! * (dp[j]! - pdp);
          for (let c = 0; c < hd; c++) {
            gq[qi(b, i, h) + c] += ds * scale * k[kj(b, j, g) + c]!;
            gk[kj(b, j, g) + c] += ds * scale * q[qi(b, i, h) + c]!;
            gv[kj(b, j, g) + c] += p[j]! * gOut[qi(b, i, h) + c]!;
          }
        }
      }
    }
  return { out, lse, gq, gk, gv } satisfies AttentionRef;
}

// --- per-kernel checks, run once per ISA ---

function checkElementwise(nb: Backend): void {
  for (const [n, bn] of [
    [1, 1],
    [37, 37],
    [48, 1],
    [60, 12],
    [10, 3],
    [70000, 70000],
    [70000, 100],
  ] as const) {
    const a = randn(n);
    const b = randn(bn);
    const out = dirty(n);
    nb.add(a, b, out, n, bn);
    check(
      `add n=${n} bn=${bn}`,
      out,
      Array.from(a, (x, i) => x + b[i % bn]!),
    );
    nb.mul(a, b, out, n, bn);
    check(
      `mul n=${n} bn=${bn}`,
      out,
      Array.from(a, (x, i) => x * b[i % bn]!),
    );
  }
  for (const n of [1, 33, 70001]) {
    const a = randn(n);
    const out = dirty(n);
    nb.scale(a, -2.5, out, n);
    check(
      `scale n=${n}`,
      out,
      Array.from(a, (x) => x * -2.5),
    );
    const dst = randn(n);
    const before = Float64Array.from(dst);
    nb.addInto(dst, a, n);
    check(
      `addInto n=${n}`,
      dst,
      before.map((x, i) => x + a[i]!),
    );
    nb.fill(out, 0.75, n);
    check(`fill n=${n}`, out, new Float64Array(n).fill(0.75));
  }
  // bf16 copies: bit-exact against src/backend/bf16.ts, ties to even, NaN, infinities and denormals included.
  const bits = new Uint32Array([
    0x3f808000, 0x3f818000, 0x3f80c000, 0x7f7fffff, 0xff800000, 0x7fc00001, 0x00000001,
  ]);
  const special = Array.from(new Float32Array(bits.buffer));
  for (const n of [7, 70001]) {
    const a = randn(n, 1e3);
    a.set(special);
    const h = new Uint16Array(n).fill(0xdead);
    nb.toBf16(a, h, n);
    assert.deepEqual(h, Uint16Array.from(a, floatToBf16), `toBf16 n=${n}`);
  }
}

function checkReductions(nb: Backend): void {
  for (const [rows, cols] of [
    [1, 1],
    [5, 7],
    [300, 3],
    [2, 40000],
    [1000, 70],
  ] as const) {
    const x = randn(rows * cols);
    const out = dirty(cols);
    nb.sumRows(x, out, rows, cols);
    const want = new Float64Array(cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) want[c] += x[r * cols + c]!;
    check(`sumRows ${rows}x${cols}`, out, want);
  }
  for (const n of [0, 1, 17, 1000, 300001]) {
    const x = randn(n);
    let s = 0;
    let ss = 0;
    for (const v of x) {
      s += v;
      ss += v * v;
    }
    check(`sum n=${n}`, [nb.sum(x, n)], [s], 1e-9);
    check(`sumSquares n=${n}`, [nb.sumSquares(x, n)], [ss], 1e-9);
  }
}

function checkEmbedding(nb: Backend): void {
  for (const [n, dim, vocab] of [
    [1, 1, 1],
    [9, 5, 4],
    [3000, 64, 50],
  ] as const) {
    const table = randn(vocab * dim);
    const ids = randInts(n, vocab);
    const out = dirty(n * dim);
    nb.embedding(table, ids, out, n, dim);
    check(
      `embedding n=${n} dim=${dim}`,
      out,
      Array.from(out, (_, e) => table[ids[Math.floor(e / dim)]! * dim + (e % dim)]!),
    );
    const gOut = randn(n * dim);
    const gTable = dirty(vocab * dim);
    nb.embeddingBackward(gOut, ids, gTable, n, dim, vocab);
    const want = new Float64Array(vocab * dim);
    for (let i = 0; i < n; i++) for (let c = 0; c < dim; c++) want[ids[i]! * dim + c] += gOut[i * dim + c]!;
    check(`embeddingBackward n=${n} dim=${dim}`, gTable, want);
  }
  const table = randn(8 * 4);
  assert.throws(
    () => nb.embedding(table, Int32Array.from([1, 8]), dirty(8), 2, 4),
    /embedding: id 8 out of range \[0, 8\)/,
  );
  assert.throws(
    () => nb.embeddingBackward(randn(8), Int32Array.from([-1, 0]), dirty(32), 2, 4, 8),
    /id -1 out of range/,
  );
}

function checkNorms(nb: Backend): void {
  for (const [rows, dim] of [
    [1, 1],
    [3, 7],
    [5, 64],
    [600, 96],
  ] as const) {
    const x = randn(rows * dim, 2);
    for (let i = 0; i < x.length; i++) x[i] += 0.5; // a nonzero mean
    const w = randn(dim);
    const b = randn(dim);
    const eps = 1e-5;
    const out = dirty(rows * dim);
    const mean = dirty(rows);
    const rstd = dirty(rows);
    nb.layerNorm(x, w, b, out, mean, rstd, rows, dim, eps);
    const gOut = randn(rows * dim);
    const wOut = new Float64Array(rows * dim);
    const wMean = new Float64Array(rows);
    const wRstd = new Float64Array(rows);
    const wGx = new Float64Array(rows * dim);
    const wGw = new Float64Array(dim);
    const wGb = new Float64Array(dim);
    for (let r = 0; r < rows; r++) {
      let mu = 0;
      for (let c = 0; c < dim; c++) mu += x[r * dim + c]!;
      mu /= dim;
      let v = 0;
      for (let c = 0; c < dim; c++) v += (x[r * dim + c]! - mu) ** 2;
      const rs = 1 / Math.sqrt(v / dim + eps);
      wMean[r] = mu;
      wRstd[r] = rs;
      let a = 0;
      let bb = 0;
      for (let c = 0; c < dim; c++) {
        const xh = (x[r * dim + c]! - mu) * rs;
        const g = gOut[r * dim + c]!;
        wOut[r * dim + c] = xh * w[c]! + b[c]!;
        a += g * w[c]!;
        bb += g * w[c]! * xh;
        wGw[c] += g * xh;
        wGb[c] += g;
      }
      for (let c = 0; c < dim; c++) {
        const xh = (x[r * dim + c]! - mu) * rs;
        wGx[r * dim + c] = rs * (gOut[r * dim + c]! * w[c]! - a / dim - (xh * bb) / dim);
      }
    }
    check(`layerNorm ${rows}x${dim}`, out, wOut);
    check(`layerNorm(mean) ${rows}x${dim}`, mean, wMean);
    check(`layerNorm(rstd) ${rows}x${dim}`, rstd, wRstd);
    const gx = dirty(rows * dim);
    const gw = dirty(dim);
    const gb = dirty(dim);
    nb.layerNormBackward(gOut, x, w, mean, rstd, gx, gw, gb, rows, dim);
    if (dim > 1) check(`layerNormBackward(gx) ${rows}x${dim}`, gx, wGx);
    check(`layerNormBackward(gw) ${rows}x${dim}`, gw, wGw);
    check(`layerNormBackward(gb) ${rows}x${dim}`, gb, wGb);

    // RMS norm on the same data.
    nb.rmsNorm(x, w, out, rstd, rows, dim, eps);
    const rOut = new Float64Array(rows * dim);
    const rRstd = new Float64Array(rows);
    const rGx = new Float64Array(rows * dim);
    const rGw = new Float64Array(dim);
    for (let r = 0; r < rows; r++) {
      let ms = 0;
      for (let c = 0; c < dim; c++) ms += x[r * dim + c]! ** 2;
      const rs = 1 / Math.sqrt(ms / dim + eps);
      rRstd[r] = rs;
      let dot = 0;
      for (let c = 0; c < dim; c++) {
        const g = gOut[r * dim + c]!;
        rOut[r * dim + c] = x[r * dim + c]! * rs * w[c]!;
        dot += g * w[c]! * x[r * dim + c]!;
        rGw[c] += g * x[r * dim + c]! * rs;
      }
      for (let c = 0; c < dim; c++)
        rGx[r * dim + c] = rs * gOut[r * dim + c]! * w[c]! - (x[r * dim + c]! * rs ** 3 * dot) / dim;
    }
    check(`rmsNorm ${rows}x${dim}`, out, rOut);
    check(`rmsNorm(rstd) ${rows}x${dim}`, rstd, rRstd);
    nb.rmsNormBackward(gOut, x, w, rstd, gx, gw, rows, dim);
    if (dim > 1) check(`rmsNormBackward(gx) ${rows}x${dim}`, gx, rGx);
    check(`rmsNormBackward(gw) ${rows}x${dim}`, gw, rGw);
  }
}

function checkActivations(nb: Backend): void {
  for (const n of [1, 13, 5000, 70001]) {
    const x = randn(n, 6);
    x[0] = n > 1 ? -30 : 0.5; // a far tail
    const gOut = randn(n);
    const out = dirty(n);
    const gx = dirty(n);
    const unary: [string, (x: number) => number, (x: number) => number][] = [
      ["gelu", gelu, geluGrad],
      ["silu", (v) => v * sigmoid(v), (v) => sigmoid(v) * (1 + v * (1 - sigmoid(v)))],
      ["relu2", (v) => Math.max(v, 0) ** 2, (v) => 2 * Math.max(v, 0)],
    ];
    for (const [name, f, df] of unary) {
      const fwd = name as "gelu" | "silu" | "relu2";
      nb[fwd](x, out, n);
      check(
        `${name} n=${n}`,
        out,
        Array.from(x, (v) => f(v)),
      );
      nb[`${fwd}Backward`](x, gOut, gx, n);
      check(
        `${name}Backward n=${n}`,
        gx,
        Array.from(x, (v, i) => df(v) * gOut[i]!),
      );
    }
    const up = randn(n, 3);
    nb.swiglu(x, up, out, n);
    check(
      `swiglu n=${n}`,
      out,
      Array.from(x, (v, i) => v * sigmoid(v) * up[i]!),
    );
    const gUp = dirty(n);
    nb.swigluBackward(x, up, gOut, gx, gUp, n);
    check(
      `swigluBackward(gate) n=${n}`,
      gx,
      Array.from(x, (v, i) => gOut[i]! * up[i]! * sigmoid(v) * (1 + v * (1 - sigmoid(v)))),
    );
    check(
      `swigluBackward(up) n=${n}`,
      gUp,
      Array.from(x, (v, i) => gOut[i]! * v * sigmoid(v)),
    );
  }
}

function checkSoftmax(nb: Backend): void {
  for (const [rows, dim] of [
    [1, 1],
    [4, 9],
    [3, 1000],
    [700, 50],
  ] as const) {
    const x = randn(rows * dim, 8);
    x[0] = 80; // large logits must not overflow
    const out = dirty(rows * dim);
    nb.softmax(x, out, rows, dim);
    const want = new Float64Array(rows * dim);
    for (let r = 0; r < rows; r++) {
      const row = Array.from(x.subarray(r * dim, (r + 1) * dim));
      const mx = Math.max(...row);
      const s = row.reduce((acc, v) => acc + Math.exp(v - mx), 0);
      for (let c = 0; c < dim; c++) want[r * dim + c] = Math.exp(row[c]! - mx) / s;
    }
    check(`softmax ${rows}x${dim}`, out, want);
    const gOut = randn(rows * dim);
    const gx = dirty(rows * dim);
    nb.softmaxBackward(out, gOut, gx, rows, dim);
    const wantG = new Float64Array(rows * dim);
    for (let r = 0; r < rows; r++) {
      let d = 0;
      for (let c = 0; c < dim; c++) d += out[r * dim + c]! * gOut[r * dim + c]!;
      for (let c = 0; c < dim; c++) wantG[r * dim + c] = out[r * dim + c]! * (gOut[r * dim + c]! - d);
    }
    if (dim > 1) check(`softmaxBackward ${rows}x${dim}`, gx, wantG);
  }
}

function checkRope(nb: Backend): void {
  for (const [batch, t, heads, hd, pos0] of [
    [1, 1, 1, 2, 0],
    [2, 5, 3, 8, 3],
    [2, 64, 4, 64, 7],
  ] as const) {
    const half = hd / 2;
    const maxPos = pos0 + t + 2;
    const cos = new Float32Array(maxPos * half);
    const sin = new Float32Array(maxPos * half);
    for (let p = 0; p < maxPos; p++)
      for (let i = 0; i < half; i++) {
        const angle = p * 10000 ** (-i / half);
        cos[p * half + i] = Math.cos(angle);
        sin[p * half + i] = Math.sin(angle);
      }
    const n = batch * t * heads * hd;
    const x = randn(n);
    const out = dirty(n);
    const want = new Float64Array(n);
    for (let b = 0; b < batch; b++)
      for (let tt = 0; tt < t; tt++)
        for (let h = 0; h < heads; h++) {
          const o = ((b * t + tt) * heads + h) * hd;
          const p = pos0 + tt;
          for (let i = 0; i < half; i++) {
            const c = cos[p * half + i]!;
            const s = sin[p * half + i]!;
            want[o + i] = x[o + i]! * c - x[o + i + half]! * s;
            want[o + i + half] = x[o + i + half]! * c + x[o + i]! * s;
          }
        }
    nb.rope(x, out, cos, sin, batch, t, heads, hd, pos0, false);
    check(`rope ${batch}x${t}x${heads}x${hd}`, out, want);
    const back = dirty(n);
    nb.rope(out, back, cos, sin, batch, t, heads, hd, pos0, true);
    check(`rope(inverse) ${batch}x${t}x${heads}x${hd}`, back, x);
    const inPlace = Float32Array.from(x);
    nb.rope(inPlace, inPlace, cos, sin, batch, t, heads, hd, pos0, false);
    check(`rope(inPlace) ${batch}x${t}x${heads}x${hd}`, inPlace, out, 0);
    assert.throws(
      () => nb.rope(x, out, cos, sin, batch, t + 3, heads, hd, pos0, false),
      /too few positions|elements/,
    );
    // Per-row positions: the same rotation as pos0 + i, in any order, rows at different positions.
    const rows = batch * t;
    const positions = Int32Array.from({ length: rows }, (_, r) => pos0 + (r % t));
    const viaArray = dirty(n);
    nb.rope(x, viaArray, cos, sin, batch, t, heads, hd, positions, false);
    check(`rope(positions) ${batch}x${t}x${heads}x${hd}`, viaArray, out, 0);
    const shuffled = Int32Array.from({ length: rows }, (_, r) => (r * 7 + 3) % (maxPos - 1));
    const perRow = dirty(n);
    nb.rope(x, perRow, cos, sin, rows, 1, heads, hd, shuffled, false);
    const oneRow = dirty(heads * hd);
    for (let r = 0; r < rows; r++) {
      nb.rope(x.subarray(r * heads * hd), oneRow, cos, sin, 1, 1, heads, hd, shuffled[r]!, false);
      check(
        `rope(shuffled-positions) row ${r}`,
        perRow.subarray(r * heads * hd, (r + 1) * heads * hd),
        oneRow,
        0,
      );
    }
    assert.throws(
      () => nb.rope(x, out, cos, sin, batch, t, heads, hd, new Int32Array(rows - 1), false),
      /positions has \d+ elements, needs/,
    );
    assert.throws(
      () =>
        nb.rope(
          x,
          out,
          cos,
          sin,
          batch,
          t,
          heads,
          hd,
          positions.map(() => maxPos),
          false,
        ),
      /too few positions/,
    );
  }
}

const ATTENTION_SHAPES: AttentionShape[] = [
  { batch: 1, tq: 1, tk: 1, heads: 1, kvHeads: 1, headDim: 1, scale: 1, causal: true },
  { batch: 2, tq: 5, tk: 5, heads: 4, kvHeads: 2, headDim: 8, scale: 8 ** -0.5, causal: true },
  { batch: 1, tq: 1, tk: 7, heads: 2, kvHeads: 1, headDim: 16, scale: 0.25, causal: true },
  { batch: 1, tq: 3, tk: 9, heads: 3, kvHeads: 1, headDim: 5, scale: 0.5, causal: true },
  { batch: 2, tq: 4, tk: 6, heads: 2, kvHeads: 2, headDim: 3, scale: 0.7, causal: false },
  { batch: 1, tq: 0, tk: 3, heads: 2, kvHeads: 1, headDim: 4, scale: 0.5, causal: true },
  // Big enough to run on several threads: one (batch, kv head) pair → the key-parallel backward …
  { batch: 1, tq: 48, tk: 64, heads: 4, kvHeads: 1, headDim: 32, scale: 32 ** -0.5, causal: true },
  // … and many pairs → the group-parallel backward.
  { batch: 4, tq: 32, tk: 32, heads: 4, kvHeads: 4, headDim: 32, scale: 32 ** -0.5, causal: true },
  { batch: 2, tq: 40, tk: 40, heads: 6, kvHeads: 2, headDim: 24, scale: 0.2, causal: false },
  // Key-parallel backward with ragged key blocks, causal and not.
  { batch: 1, tq: 37, tk: 45, heads: 2, kvHeads: 1, headDim: 40, scale: 0.15, causal: true },
  { batch: 1, tq: 20, tk: 50, heads: 4, kvHeads: 1, headDim: 24, scale: 0.2, causal: false },
];

function checkAttention(nb: Backend): void {
  for (const s of ATTENTION_SHAPES) {
    const label = `${s.batch}x${s.tq}/${s.tk}x${s.heads}/${s.kvHeads}x${s.headDim}${s.causal ? " causal" : ""}`;
    const nq = s.batch * s.tq * s.heads * s.headDim;
    const nk = s.batch * s.tk * s.kvHeads * s.headDim;
    const q = randn(nq, 2);
    const k = randn(nk, 2);
    const v = randn(nk);
    const gOut = randn(nq);
    const ref = attentionRef(q, k, v, gOut, s);
    const out = dirty(nq);
    const lse = dirty(s.batch * s.heads * s.tq);
    nb.attention(q, k, v, out, lse, s);
    check(`attention ${label}`, out, ref.out);
    check(`attention(lse) ${label}`, lse, ref.lse);
    const gq = dirty(nq);
    const gk = dirty(nk);
    const gv = dirty(nk);
    nb.attentionBackward(q, k, v, out, lse, gOut, gq, gk, gv, s);
    // dS = P∘(dP − D) cancels: errors are ~5e-7 of the largest gradient, which is up to ~1e-4 relative for
    // elements near the 1e-2·max floor, so the gradients get a little more room.
    check(`attentionBackward(gq) ${label}`, gq, ref.gq, 3 * TOL);
    check(`attentionBackward(gk) ${label}`, gk, ref.gk, 3 * TOL);
    check(`attentionBackward(gv) ${label}`, gv, ref.gv, 3 * TOL);
  }
  const s = ATTENTION_SHAPES[1]!;
  assert.throws(
    () => nb.attention(randn(10), randn(10), randn(10), dirty(10), dirty(10), s),
    /q has 10 elements, needs 320/,
  );
  assert.throws(
    () => nb.attention(randn(320), randn(160), randn(160), dirty(320), dirty(40), { ...s, kvHeads: 3 }),
    /multiple of kvHeads/,
  );
}

function checkCrossEntropy(nb: Backend): void {
  const IGNORE = -100;
  for (const [rows, vocab, ignored] of [
    [1, 1, 0],
    [6, 11, 2],
    [4, 5, 4], // every row ignored
    [40, 3000, 5],
  ] as const) {
    const logits = randn(rows * vocab, 10);
    logits[0] += 60; // a large logit: the lse must stay finite
    const targets = randInts(rows, vocab);
    for (let r = 0; r < ignored; r++) targets[(r * 7) % rows] = IGNORE;
    const loss = dirty(rows);
    const lse = dirty(rows);
    nb.crossEntropy(logits, targets, loss, lse, rows, vocab, IGNORE);
    const wantLse = new Float64Array(rows);
    const wantLoss = new Float64Array(rows);
    const wantG = new Float64Array(rows * vocab);
    const gScale = 1 / 3;
    for (let r = 0; r < rows; r++) {
      const row = Array.from(logits.subarray(r * vocab, (r + 1) * vocab));
      const mx = Math.max(...row);
      const l = mx + Math.log(row.reduce((a, x) => a + Math.exp(x - mx), 0));
      wantLse[r] = l;
      const t = targets[r]!;
      if (t === IGNORE) continue;
      wantLoss[r] = l - row[t]!;
      for (let c = 0; c < vocab; c++)
        wantG[r * vocab + c] = (Math.exp(row[c]! - l) - (c === t ? 1 : 0)) * gScale;
    }
    const label = `${rows}x${vocab} (${ignored} ignored)`;
    check(`crossEntropy ${label}`, loss, wantLoss);
    check(`crossEntropy(lse) ${label}`, lse, wantLse);
    const gx = dirty(rows * vocab);
    nb.crossEntropyBackward(logits, targets, lse, gx, rows, vocab, IGNORE, gScale);
    check(`crossEntropyBackward ${label}`, gx, wantG);
  }
  assert.throws(
    () => nb.crossEntropy(randn(8), Int32Array.from([1, 4]), dirty(2), dirty(2), 2, 4, -100),
    /target 4 at row 1 out of range \[0, 4\)/,
  );
  assert.throws(
    () => nb.crossEntropyBackward(randn(8), Int32Array.from([-5, 0]), randn(2), dirty(8), 2, 4, -100, 1),
    /target -5 at row 0/,
  );
}

function checkDropout(nb: Backend): void {
  for (const [n, p, seed] of [
    [1, 0.5, 1],
    [1000, 0, 7],
    [5000, 0.1, 123456789],
    [70000, 0.5, 42],
    [5000, 0.7, 3], // p·2^24 not an integer and p rounds down in float32
    [100, 1, 9],
  ] as const) {
    const x = randn(n);
    const out = dirty(n);
    nb.dropout(x, out, n, p, seed);
    const want = Array.from(x, (v, i) => (dropoutKeep(seed, i, p) ? v / (1 - p) : 0));
    check(`dropout n=${n} p=${p}`, out, want);
    for (let i = 0; i < n; i++) assert.equal(out[i] === 0, want[i] === 0, `dropout mask differs at ${i}`);
    const gx = dirty(n);
    nb.dropoutBackward(x, gx, n, p, seed);
    check(`dropoutBackward n=${n} p=${p}`, gx, want);
  }
}

function checkAdamW(nb: Backend): void {
  for (const n of [1, 31, 70000]) {
    const param = randn(n);
    const grad = randn(n);
    const m = randn(n, 0.1);
    const v = Float32Array.from(randn(n, 0.01), Math.abs);
    const args = {
      lr: 3e-3,
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      weightDecay: 0.1,
      biasCorrection1: 1 - 0.9 ** 3,
      biasCorrection2: 1 - 0.95 ** 3,
    };
    const wantP = new Float64Array(n);
    const wantM = new Float64Array(n);
    const wantV = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const g = grad[i]!;
      wantM[i] = args.beta1 * m[i]! + (1 - args.beta1) * g;
      wantV[i] = args.beta2 * v[i]! + (1 - args.beta2) * g * g;
      const denom = Math.sqrt(wantV[i]!) / Math.sqrt(args.biasCorrection2) + args.eps;
      wantP[i] =
        param[i]! * (1 - args.lr * args.weightDecay) - (args.lr / args.biasCorrection1) * (wantM[i]! / denom);
    }
    nb.adamw(param, grad, m, v, n, args);
    check(`adamw(param) n=${n}`, param, wantP);
    check(`adamw(m) n=${n}`, m, wantM);
    check(`adamw(v) n=${n}`, v, wantV);
  }
}

// Sequences of one cached step: [new positions, keys] each, with heads / kvHeads / headDim. Decoding rows
// (one new position), prompts long enough for the transposed path, and their mix in one call.
const CACHED_STEPS: { heads: number; kvHeads: number; headDim: number; seqs: [number, number][] }[] = [
  {
    heads: 6,
    kvHeads: 3,
    headDim: 64,
    seqs: [
      [1, 1],
      [1, 17],
      [1, 130],
      [1, 64],
    ],
  },
  {
    heads: 4,
    kvHeads: 4,
    headDim: 32,
    seqs: [
      [1, 40],
      [45, 45],
      [1, 3],
      [70, 100],
    ],
  },
  {
    heads: 4,
    kvHeads: 1,
    headDim: 16,
    seqs: [
      [2, 9],
      [3, 3],
      [1, 5],
    ],
  },
  {
    heads: 2,
    kvHeads: 1,
    headDim: 12,
    seqs: [
      [1, 30],
      [5, 8],
    ],
  },
  {
    heads: 8,
    kvHeads: 2,
    headDim: 128,
    seqs: [
      [1, 33],
      [1, 200],
      [8, 8],
    ],
  },
];

function checkAttentionCached(nb: Backend): void {
  for (const { heads, kvHeads, headDim, seqs } of CACHED_STEPS) {
    const label = `${heads}/${kvHeads}x${headDim} [${seqs.map(([n, l]) => `${n}/${l}`).join(" ")}]`;
    const counts = Int32Array.from(seqs, ([n]) => n);
    const lengths = Int32Array.from(seqs, ([, l]) => l);
    const rows = counts.reduce((a, b) => a + b, 0);
    const w = heads * headDim;
    const q = randn(rows * w, 2);
    // Caches hold more rows than the step uses (their capacity); only the first lengths[s] count.
    const keys = seqs.map(([, l]) => randn((l + 3) * kvHeads * headDim, 2));
    const values = seqs.map(([, l]) => randn((l + 3) * kvHeads * headDim));
    const want = new Float64Array(rows * w);
    let row = 0;
    seqs.forEach(([n, l], s) => {
      const shape = { batch: 1, tq: n, tk: l, heads, kvHeads, headDim, scale: headDim ** -0.5, causal: true };
      const kv = l * kvHeads * headDim;
      const qs = q.subarray(row * w, (row + n) * w);
      const ref = attentionRef(
        qs,
        keys[s]!.subarray(0, kv),
        values[s]!.subarray(0, kv),
        new Float32Array(n * w),
        shape,
      );
      want.set(ref.out, row * w);
      row += n;
    });
    const out = dirty(rows * w);
    const shape = { heads, kvHeads, headDim, scale: headDim ** -0.5 };
    nb.attentionCached(q, keys, values, counts, lengths, out, shape);
    check(`attentionCached ${label}`, out, want);
  }
  const shape = { heads: 2, kvHeads: 1, headDim: 4, scale: 0.5 };
  const kv = [randn(12)];
  assert.throws(
    () => nb.attentionCached(randn(8), kv, kv, Int32Array.of(1), Int32Array.of(4), dirty(8), shape),
    /keys\[0\] has 12 elements, needs 16/,
  );
  assert.throws(
    () => nb.attentionCached(randn(16), kv, kv, Int32Array.of(2), Int32Array.of(1), dirty(16), shape),
    /sequence 0 has 2 queries but 1 keys/,
  );
  assert.throws(
    () => nb.attentionCached(randn(8), kv, [], Int32Array.of(1), Int32Array.of(3), dirty(8), shape),
    /one Float32Array per sequence/,
  );
}

const KERNEL_CHECKS: [string, (nb: Backend) => void][] = [
  ["elementwise", checkElementwise],
  ["reductions", checkReductions],
  ["embedding", checkEmbedding],
  ["norms", checkNorms],
  ["activations", checkActivations],
  ["softmax", checkSoftmax],
  ["rope", checkRope],
  ["attention", checkAttention],
  ["attentionCached", checkAttentionCached],
  ["crossEntropy", checkCrossEntropy],
  ["dropout", checkDropout],
  ["adamw", checkAdamW],
];

const addon = nativeAddon();
const skip = "error" in addon ? addon.error : false;

describe("native kernels vs float64 oracles", { skip }, () => {
  const nb = loadNative() as Backend;
  const defaultIsa = skip ? "" : nativeIsa();
  after(() => {
    if (skip) return;
    selectNativeIsa(defaultIsa as "avx512" | "avx2" | "generic");
    setNativeThreads(0); // back to the default size
    const lines = [...worstByKernel].map(
      ([k, [rel, ofMax]]) => `${k}: ${rel.toExponential(2)} (of max: ${ofMax.toExponential(2)})`,
    );
    console.log(`native ops: worst relative error per kernel\n  ${lines.join("\n  ")}`);
  });

  // Every ISA on one thread and on four (the threaded partitioning, more threads than this machine's cores).
  for (const threads of [1, 4]) {
    for (const isa of ["avx512", "avx2", "generic"] as const) {
      for (const [name, run] of KERNEL_CHECKS) {
        test(`${isa}, ${threads} thread(s): ${name}`, (t) => {
          if (!selectNativeIsa(isa)) {
            t.skip(`this CPU does not support ${isa}`);
            return;
          }
          setNativeThreads(threads);
          try {
            run(nb);
          } finally {
            selectNativeIsa(defaultIsa as "avx512" | "avx2" | "generic");
          }
        });
      }
    }
  }

  test("float64 arrays are rejected with a clear error", () => {
    assert.throws(
      () => nb.add(new Float64Array(4), new Float64Array(4), new Float64Array(4), 4, 4),
      /float32 only.*reference backend/,
    );
  });

  test("short arrays and bad sizes throw instead of crashing", () => {
    assert.throws(() => nb.add(randn(3), randn(4), dirty(4), 4, 4), /a has 3 elements, needs 4/);
    assert.throws(() => nb.softmax(randn(10), dirty(12), 3, 4), /x has 10 elements, needs 12/);
    assert.throws(() => nb.fill(dirty(4), 1, -1), /non-negative integer/);
    assert.throws(() => nb.dropout(randn(4), dirty(4), 4, 1.5, 0), /p must be in \[0, 1\]/);
  });
});
