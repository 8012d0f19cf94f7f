// bf16 attention (AttentionShape.bf16, the native kernels with AVX-512 BF16) against a float64 reference of
// its definition: scores from bf16-rounded q and k, the forward's p·v from bf16-rounded (unnormalised)
// probabilities and values, dP from bf16-rounded dO and v; softmax, lse and D in full precision; the
// gradient products from bf16-rounded operands on the per-kv-head backward schedule and in full precision on
// the key-parallel one. Covers head sizes 16/32/48/64, causal and not, grouped kv heads, fewer queries than
// keys, odd key counts (a zero-padded last pair), and both backward schedules.
// Where the CPU lacks AVX-512 BF16 (or the head size has no bf16 tile), the flag must change nothing.
import assert from "node:assert/strict";
import { test } from "node:test";
import { roundBf16 } from "../src/backend/bf16.js";
import { type NativeAddon, nativeAddon } from "../src/backend/native.js";
import { mulberry32 } from "./helpers/random.js";

interface Shape {
  batch: number;
  tq: number;
  tk: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  causal: boolean;
}

function addon(): NativeAddon {
  const a = nativeAddon();
  if ("error" in a) assert.fail(`the native addon is required for this test: ${a.error}`);
  return a;
}

const rand = mulberry32(5);
const randn = (n: number) => Float32Array.from({ length: n }, () => rand() * 2 - 1);

/**
 * The definition, in float64 (bf = round to bf16, or identity for the float32 variant). With `gradBf16` the
 * gradient products round their operands too: dS·K and dSᵀ·Q (dS rounded, the scale applied after) and
 * Pᵀ·dO, as the per-kv-head backward schedule does.
 */
function reference(
  s: Shape,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  gOut: Float32Array,
  bf16: boolean,
  gradBf16 = false,
) {
  const bf = bf16 ? roundBf16 : (x: number) => x;
  const gb = gradBf16 ? roundBf16 : (x: number) => x;
  const { batch: B, tq, tk, heads: H, kvHeads: KV, headDim: hd } = s;
  const scale = Math.fround(1 / Math.sqrt(hd));
  const out = new Float64Array(B * tq * H * hd);
  const gq = new Float64Array(out.length);
  const gk = new Float64Array(B * tk * KV * hd);
  const gv = new Float64Array(gk.length);
  const qi = (b: number, i: number, h: number) => ((b * tq + i) * H + h) * hd;
  const kj = (b: number, j: number, g: number) => ((b * tk + j) * KV + g) * hd;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / KV));
      for (let i = 0; i < tq; i++) {
        const n = s.causal ? i + tk - tq + 1 : tk;
        const sc = new Float64Array(n);
        for (let j = 0; j < n; j++) {
          let acc = 0;
          for (let d = 0; d < hd; d++) acc += bf(q[qi(b, i, h) + d]!) * bf(k[kj(b, j, g) + d]!);
          sc[j] = scale * acc;
        }
        const m = Math.max(...sc);
        const p = sc.map((x) => Math.exp(x - m));
        const l = p.reduce((a, x) => a + x, 0);
        for (let d = 0; d < hd; d++) {
          let acc = 0;
          for (let j = 0; j < n; j++) acc += bf(p[j]!) * bf(v[kj(b, j, g) + d]!);
          out[qi(b, i, h) + d] = acc / l;
        }
        // Backward: P = softmax (unrounded), dP from rounded dO and v, the products in full precision.
        let D = 0;
        for (let d = 0; d < hd; d++) D += gOut[qi(b, i, h) + d]! * Math.fround(out[qi(b, i, h) + d]!);
        for (let j = 0; j < n; j++) {
          const P = p[j]! / l;
          let dP = 0;
          for (let d = 0; d < hd; d++) dP += bf(gOut[qi(b, i, h) + d]!) * bf(v[kj(b, j, g) + d]!);
          const dS = gb(P * (dP - D));
          const Pg = gb(P);
          for (let d = 0; d < hd; d++) {
            gq[qi(b, i, h) + d] += scale * dS * gb(k[kj(b, j, g) + d]!);
            gk[kj(b, j, g) + d] += scale * dS * gb(q[qi(b, i, h) + d]!);
            gv[kj(b, j, g) + d] += Pg * gb(gOut[qi(b, i, h) + d]!);
          }
        }
      }
    }
  return { out, gq, gk, gv };
}

function run(
  lib: NativeAddon,
  s: Shape,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  gOut: Float32Array,
  bf16: boolean,
) {
  const scale = 1 / Math.sqrt(s.headDim);
  const args = [s.batch, s.tq, s.tk, s.heads, s.kvHeads, s.headDim, scale, s.causal, bf16] as const;
  const out = new Float32Array(q.length);
  const lse = new Float32Array(s.batch * s.heads * s.tq);
  lib.attention(q, k, v, out, lse, ...args);
  const gq = new Float32Array(q.length);
  const gk = new Float32Array(k.length);
  const gv = new Float32Array(v.length);
  lib.attentionBackward(q, k, v, out, lse, gOut, gq, gk, gv, ...args);
  return { out, gq, gk, gv };
}

/** Max |got − want| over max |want|, and the worst element. */
function relErr(got: Float32Array, want: Float64Array): number {
  let worst = 0;
  let mag = 1e-30;
  for (let i = 0; i < want.length; i++) {
    worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
    mag = Math.max(mag, Math.abs(want[i]!));
  }
  return worst / mag;
}

const SHAPES: Shape[] = [
  { batch: 2, tq: 37, tk: 37, heads: 4, kvHeads: 2, headDim: 32, causal: true }, // odd keys, grouped kv
  { batch: 2, tq: 20, tk: 45, heads: 2, kvHeads: 2, headDim: 64, causal: true }, // fewer queries than keys
  { batch: 2, tq: 70, tk: 70, heads: 2, kvHeads: 1, headDim: 16, causal: false }, // two query blocks
  { batch: 1, tq: 40, tk: 40, heads: 2, kvHeads: 1, headDim: 32, causal: true }, // too little work to split
  { batch: 1, tq: 9, tk: 9, heads: 4, kvHeads: 1, headDim: 48, causal: true },
  { batch: 1, tq: 160, tk: 160, heads: 2, kvHeads: 1, headDim: 32, causal: true }, // key-parallel: 2 threads, 1 pair
];

test("bf16 attention matches its float64 definition (forward and backward)", () => {
  const lib = addon();
  const original = lib.isa();
  if (!lib.selectIsa("avx512bf16")) {
    // No AVX-512 BF16 here: the flag is ignored, attention stays float32 (checked in the next test).
    return;
  }
  const threads = lib.threads();
  lib.setThreads(2); // the key-parallel schedule needs more threads than (batch, kv head) pairs
  try {
    for (const s of SHAPES) {
      const q = randn(s.batch * s.tq * s.heads * s.headDim);
      const k = randn(s.batch * s.tk * s.kvHeads * s.headDim);
      const v = randn(k.length);
      const gOut = randn(q.length);
      const got = run(lib, s, q, k, v, gOut, true);
      // The per-kv-head backward schedule (bf16 gradient products) runs when there are at least as many
      // (batch, kv head) pairs as threads; the kernel wakes one thread per 65,536 units of work (at most 2).
      const work = s.batch * s.heads * s.tq * (s.causal ? s.tk - Math.floor(s.tq / 2) : s.tk) * s.headDim;
      const perKvHead = s.batch * s.kvHeads >= Math.min(Math.ceil(work / 65536), 2);
      const want = reference(s, q, k, v, gOut, true, perKvHead);
      const plain = reference(s, q, k, v, gOut, false);
      const label = JSON.stringify(s);
      // float32 accumulation against float64 (~1e-7), except where a probability's float32 exp (good to
      // ~3e-7) lies that close to a bf16 rounding boundary and rounds to the other neighbour than the
      // float64 one: about 1 in 7,000 probabilities, each moving its query row's output by at most 2^-8 of
      // a value. So: nearly every query row within 2e-5, none off by more than such a flip.
      const vmax = v.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
      const outMax = want.out.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
      const offRows = new Set<number>();
      for (let i = 0; i < want.out.length; i++) {
        const err = Math.abs(got.out[i]! - want.out[i]!);
        assert.ok(err <= 2 ** -8 * vmax, `out ${label} [${i}]: ${got.out[i]} vs ${want.out[i]}`);
        if (err > 2e-5 * outMax) offRows.add(Math.floor(i / s.headDim));
      }
      const rows = want.out.length / s.headDim;
      assert.ok(offRows.size <= 2 + rows / 50, `out ${label}: ${offRows.size} of ${rows} query rows off`);
      assert.ok(relErr(got.gq, want.gq) < 1e-3, `gq ${label}: ${relErr(got.gq, want.gq)}`);
      assert.ok(relErr(got.gk, want.gk) < 1e-3, `gk ${label}: ${relErr(got.gk, want.gk)}`);
      assert.ok(relErr(got.gv, want.gv) < 1e-3, `gv ${label}: ${relErr(got.gv, want.gv)}`);
      // ... and it is the bf16 definition, not float32 attention: that one is much further off.
      assert.ok(relErr(got.gq, plain.gq) > 4 * relErr(got.gq, want.gq), `gq ${label} looks float32`);
    }
  } finally {
    lib.setThreads(threads);
    lib.selectIsa(original);
  }
});

test("where bf16 attention does not apply, the flag changes nothing", () => {
  const lib = addon();
  const original = lib.isa();
  try {
    const cases: [string, Shape][] = [
      ["avx512", { batch: 2, tq: 33, tk: 33, heads: 2, kvHeads: 1, headDim: 32, causal: true }],
      ["avx512bf16", { batch: 2, tq: 33, tk: 33, heads: 2, kvHeads: 1, headDim: 24, causal: true }], // no tile
      ["avx512bf16", { batch: 1, tq: 1, tk: 20, heads: 2, kvHeads: 2, headDim: 32, causal: true }], // decoding
    ];
    for (const [isa, s] of cases) {
      if (!lib.selectIsa(isa)) continue;
      const q = randn(s.batch * s.tq * s.heads * s.headDim);
      const k = randn(s.batch * s.tk * s.kvHeads * s.headDim);
      const v = randn(k.length);
      const gOut = randn(q.length);
      const a = run(lib, s, q, k, v, gOut, false);
      const b = run(lib, s, q, k, v, gOut, true);
      for (const key of ["out", "gq", "gk", "gv"] as const)
        assert.deepEqual(b[key], a[key], `${isa} ${JSON.stringify(s)} ${key}`);
    }
  } finally {
    lib.selectIsa(original);
  }
});
