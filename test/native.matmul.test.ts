// The native matmul against a float64 triple loop, for every instruction set this CPU runs: edge shapes
// (1×1×1, m = 1 / n = 1 matrix-vector paths, odd sizes, sizes crossing the kernel's register and cache
// blocks), the few-row path (m = 2..16), all four transpose combinations, batches with padded and
// broadcast (stride 0) operands, accumulation, and argument checking. The addon is required: the test
// fails if it cannot load.
import assert from "node:assert/strict";
import { test } from "node:test";
import { floatToBf16, roundBf16 } from "../src/backend/bf16.js";
import { type NativeAddon, nativeAddon } from "../src/backend/native.js";
import { mulberry32 } from "./helpers/random.js";

function addon(): NativeAddon {
  const a = nativeAddon();
  if ("error" in a) assert.fail(`the native addon is required for this test: ${a.error}`);
  return a;
}

interface Case {
  batch: number;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  strideA: number;
  strideB: number;
  accumulate: boolean;
}

const rand = mulberry32(7);
const uniform = (n: number) => Float32Array.from({ length: n }, () => rand() * 2 - 1);

/**
 * C (+)= op(A)·op(B) in float64 with a rigorous bound per element: the float32 kernel may be off by at
 * most (k + 2)·u·(Σ|a·b| + |c0|) (u = 2^-24), whatever its summation order or FMA use. With `bf16` the
 * operands are first rounded to bf16 (what matmulBf16 multiplies: products of bf16 values are exact in
 * float32, so the same bound holds for its float32 sums).
 */
function reference(a: Float32Array, b: Float32Array, c0: Float32Array, g: Case, bf16 = false) {
  const r = bf16 ? roundBf16 : (x: number) => x;
  const size = g.batch * g.m * g.n;
  const value = new Float64Array(size);
  const bound = new Float64Array(size);
  const u = 2 ** -24;
  for (let bi = 0; bi < g.batch; bi++) {
    const oa = bi * g.strideA;
    const ob = bi * g.strideB;
    for (let i = 0; i < g.m; i++) {
      for (let j = 0; j < g.n; j++) {
        const o = (bi * g.m + i) * g.n + j;
        let s = g.accumulate ? c0[o]! : 0;
        let mag = g.accumulate ? Math.abs(c0[o]!) : 0;
        for (let p = 0; p < g.k; p++) {
          const av = r(a[oa + (g.transA ? p * g.m + i : i * g.k + p)]!);
          const bv = r(b[ob + (g.transB ? j * g.k + p : p * g.n + j)]!);
          s += av * bv;
          mag += Math.abs(av * bv);
        }
        value[o] = s;
        bound[o] = (g.k + 2) * u * mag + 1e-30;
      }
    }
  }
  return { value, bound };
}

/** Random operands for a case, a dirty output, and the float64 answer (computed once, reused per ISA). */
function prepare(g: Case, bf16 = false) {
  const a = uniform(Math.max(1, (g.batch - 1) * g.strideA + g.m * g.k));
  const b = uniform(Math.max(1, (g.batch - 1) * g.strideB + g.k * g.n));
  const c0 = uniform(g.batch * g.m * g.n); // dirty output: must be overwritten unless accumulating
  return { g, a, b, c0, bf16, ref: reference(a, b, c0, g, bf16) };
}

function check(lib: NativeAddon, p: ReturnType<typeof prepare>, label: string) {
  const { g, a, b, ref } = p;
  const c = p.c0.slice();
  const product = p.bf16 ? lib.matmulBf16 : lib.matmul;
  product(a, b, c, g.batch, g.m, g.n, g.k, g.transA, g.transB, g.strideA, g.strideB, g.accumulate);
  for (let i = 0; i < c.length; i++) {
    const err = Math.abs(c[i]! - ref.value[i]!);
    if (!(err <= ref.bound[i]!)) {
      assert.fail(
        `${label}: ${p.bf16 ? "matmulBf16" : "matmul"} ${JSON.stringify(g)} element ${i}: got ${c[i]}, want ${ref.value[i]} ` +
          `(error ${err.toExponential(2)} > bound ${ref.bound[i]!.toExponential(2)})`,
      );
    }
  }
}

// [m, n, k]: tiny, matrix-vector, odd, and crossing the blocks (AVX-512 tiles are 12×32; k up to 512 is one
// block and deeper k equal blocks of at most 512; A blocks of ~192 KB and 4096-column B blocks swept
// ~512 KB at a time; AVX2 6×16; portable 4×8).
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 5],
  [7, 1, 5],
  [1, 1, 300],
  [3, 4, 1],
  [2, 2, 2],
  [17, 33, 65],
  [12, 32, 16],
  [13, 31, 257],
  [25, 65, 513],
  [1, 384, 200],
  [150, 1, 200],
  [1, 1100, 500], // matrix-vector products big enough to be split between threads
  [1100, 1, 500],
  [200, 70, 40],
  [5, 4200, 3],
  [64, 64, 64],
  [12, 200, 600],
  [200, 40, 1100], // three depth blocks of 367, 367, 366
];

// [m, n, k] for the few-row path (m = 2..16): dot tiles of 3×8 / 4×3 / 4×2 (AVX-512 / AVX2 / portable),
// 32 / 16 / 8-wide axpy strips, 64-row slabs, depth slices of at most ~580 for deep products.
const SMALL_M: [number, number, number][] = [
  [2, 7, 5],
  [3, 40, 33],
  [5, 37, 48],
  [8, 70, 100],
  [8, 130, 17],
  [16, 45, 64],
  [16, 33, 7],
  [13, 100, 31],
  [6, 50, 150],
  [8, 40, 1100], // two depth slices
  [3, 20, 1500],
];

function cases(): Case[] {
  const out: Case[] = [];
  for (const [m, n, k] of SHAPES) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        out.push({ batch: 1, m, n, k, transA, transB, strideA: m * k, strideB: k * n, accumulate: false });
      }
    }
  }
  // Batches: padded strides, broadcast A or B (stride 0), accumulation, on a few shapes.
  for (const [m, n, k] of [
    [1, 9, 20],
    [9, 1, 20],
    [19, 37, 70],
    [33, 40, 8],
  ] as [number, number, number][]) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const full = { m, n, k, transA, transB };
        out.push({ ...full, batch: 3, strideA: m * k + 3, strideB: k * n + 1, accumulate: false });
        out.push({ ...full, batch: 4, strideA: m * k, strideB: 0, accumulate: false });
        out.push({ ...full, batch: 3, strideA: 0, strideB: k * n, accumulate: true });
        out.push({ ...full, batch: 1, strideA: 0, strideB: 0, accumulate: true });
      }
    }
  }
  // Few rows (2..16, the batched-decode path that streams B without packing): both B layouts, either A
  // layout, k with and without a vector tail, n crossing the register tiles and the 16-column thread units,
  // accumulation, and batches that share B (folded into more rows) or not.
  for (const [m, n, k] of SMALL_M) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const full = { m, n, k, transA, transB };
        out.push({ ...full, batch: 1, strideA: m * k, strideB: k * n, accumulate: false });
        out.push({ ...full, batch: 1, strideA: m * k, strideB: k * n, accumulate: true });
      }
      out.push({ m, n, k, transA, transB: true, batch: 2, strideA: m * k, strideB: 0, accumulate: false });
      out.push({
        m,
        n,
        k,
        transA,
        transB: false,
        batch: 3,
        strideA: m * k + 1,
        strideB: 0,
        accumulate: true,
      });
      out.push({
        m,
        n,
        k,
        transA,
        transB: true,
        batch: 2,
        strideA: m * k,
        strideB: k * n + 2,
        accumulate: false,
      });
    }
  }
  // Enough work in all (> 128³ multiply-adds) that the batch is split between threads.
  for (const [transA, transB] of [
    [true, false],
    [false, true],
  ] as [boolean, boolean][]) {
    out.push({
      batch: 4,
      m: 40,
      n: 70,
      k: 200,
      transA,
      transB,
      strideA: 8000,
      strideB: 14000,
      accumulate: false,
    });
  }
  return out;
}

const ISAS = ["avx512bf16", "avx512", "avx2", "generic"];

test("native matmul matches a float64 triple loop on every instruction set", () => {
  const lib = addon();
  const original = lib.isa();
  const prepared = cases().map((g) => prepare(g));
  let ran = 0;
  try {
    for (const isa of ISAS) {
      if (!lib.selectIsa(isa)) continue; // this CPU lacks it
      assert.equal(lib.isa(), isa);
      for (const p of prepared) check(lib, p, isa);
      ran++;
    }
  } finally {
    lib.selectIsa(original);
  }
  assert.ok(ran >= 1, "the portable kernel set must always be available");
  assert.equal(lib.isa(), original);
});

// The bf16 GEMM packs pairs of k-values: odd depths (a zero-padded last pair), depths over its 1024-deep
// block (2100: three blocks of 700), edge tiles, and the products of training (x·Wᵀ, dY·W, dYᵀ·X).
const BF16_SHAPES: [number, number, number][] = [
  [17, 33, 65],
  [25, 65, 513],
  [200, 70, 40],
  [64, 64, 63],
  [40, 37, 2100],
  [130, 96, 1],
  [20, 2, 3],
];

test("native matmulBf16 matches bf16-rounded operands multiplied in float64, on every instruction set", () => {
  const lib = addon();
  const original = lib.isa();
  const prepared: ReturnType<typeof prepare>[] = [];
  // The float32 cases (matrix-vector, few-row and batched products take the rounding fallback), then
  // the shapes of the bf16 GEMM.
  for (const g of cases()) prepared.push(prepare(g, true));
  for (const [m, n, k] of BF16_SHAPES)
    for (const transA of [false, true])
      for (const transB of [false, true])
        for (const accumulate of [false, true])
          prepared.push(
            prepare({ batch: 1, m, n, k, transA, transB, strideA: m * k, strideB: k * n, accumulate }, true),
          );
  let ran = 0;
  try {
    for (const isa of ISAS) {
      if (!lib.selectIsa(isa)) continue;
      for (const p of prepared) check(lib, p, isa);
      ran++;
    }
  } finally {
    lib.selectIsa(original);
  }
  assert.ok(ran >= 1);
  // On all threads: a training-sized product in each layout.
  for (const [transA, transB] of [
    [false, true],
    [false, false],
    [true, false],
  ] as [boolean, boolean][]) {
    const g = { batch: 1, m: 300, n: 260, k: 390, transA, transB, strideA: 300 * 390, strideB: 390 * 260 };
    check(lib, prepare({ ...g, accumulate: transA }, true), `threads tA${transA} tB${transB}`);
  }
});

test("native matmulBf16 with an operand given as bf16 bits equals it given as floats, bit for bit", () => {
  const lib = addon();
  const original = lib.isa();
  const bits = (x: Float32Array) => Uint16Array.from(x, floatToBf16);
  // Every float32 case (the fallbacks), the bf16 GEMM's shapes, and a training-sized product per layout;
  // a few operands are float32 denormals (counted as zero either way) and values that round to even.
  const all = [
    ...cases(),
    ...BF16_SHAPES.flatMap(([m, n, k]) =>
      [false, true].flatMap((transA) =>
        [false, true].map((transB) => ({
          batch: 1,
          m,
          n,
          k,
          transA,
          transB,
          strideA: m * k,
          strideB: k * n,
        })),
      ),
    ),
    {
      batch: 1,
      m: 300,
      n: 260,
      k: 390,
      transA: false,
      transB: false,
      strideA: 300 * 390,
      strideB: 390 * 260,
    },
    { batch: 1, m: 300, n: 260, k: 390, transA: true, transB: false, strideA: 300 * 390, strideB: 390 * 260 },
  ].map((g) => ({ ...g, accumulate: true }));
  const special = new Float32Array(new Uint32Array([0x00000003, 0x80400000, 0x3f808000, 0x3f818000]).buffer);
  let ran = 0;
  try {
    for (const isa of ISAS) {
      if (!lib.selectIsa(isa)) continue;
      ran++;
      for (const g of all) {
        const { a, b, c0 } = prepare(g);
        a.set(special.subarray(0, Math.min(4, a.length)));
        b.set(special.subarray(0, Math.min(4, b.length)));
        const run = (x: Float32Array | Uint16Array, y: Float32Array | Uint16Array) => {
          const c = c0.slice();
          lib.matmulBf16(x, y, c, g.batch, g.m, g.n, g.k, g.transA, g.transB, g.strideA, g.strideB, true);
          return c;
        };
        const want = run(a, b);
        for (const [label, got] of [
          ["a as bits", run(bits(a), b)],
          ["b as bits", run(a, bits(b))],
          ["both as bits", run(bits(a), bits(b))],
        ] as const) {
          const at = got.findIndex((v, i) => !Object.is(v, want[i]));
          assert.equal(at, -1, `${isa} ${label} ${JSON.stringify(g)}: element ${at}`);
        }
      }
    }
  } finally {
    lib.selectIsa(original);
  }
  assert.ok(ran >= 1);
  assert.throws(
    () =>
      lib.matmul(
        new Uint16Array(4),
        new Float32Array(4),
        new Float32Array(4),
        1,
        2,
        2,
        1,
        false,
        false,
        2,
        2,
        false,
      ),
    /Float32Array/,
  );
});

test("native matmul: a larger product crossing every block boundary, on all threads", () => {
  // (Single-threaded kernels are covered above: batched products split the batch over threads.)
  const lib = addon();
  // n > 512 (the L2 chunk of B), k > 256 (the depth block), m > 192 (the row block); n > 4096 (the
  // column block) is covered by [5, 4200, 3] above.
  const wide = { batch: 1, m: 14, n: 3100, k: 260, strideA: 14 * 260, strideB: 260 * 3100, accumulate: true };
  check(lib, prepare({ ...wide, transA: false, transB: true }), "wide");
  const tall = { batch: 1, m: 400, n: 70, k: 300, strideA: 400 * 300, strideB: 300 * 70, accumulate: false };
  check(lib, prepare({ ...tall, transA: true, transB: false }), "tall");
  // Few rows with enough work to be split over threads by columns (the decode shapes, shrunk).
  const few = { batch: 1, m: 8, n: 1100, k: 384, strideA: 8 * 384, strideB: 384 * 1100, accumulate: false };
  check(lib, prepare({ ...few, transA: false, transB: true }), "few tB");
  check(lib, prepare({ ...few, transA: false, transB: false, accumulate: true }), "few");
  check(lib, prepare({ ...few, m: 16, k: 260, strideA: 16 * 260, transA: true, transB: true }), "few tA tB");
});

test("native matmul: k = 0 gives zeros (or leaves C when accumulating); empty shapes are no-ops", () => {
  const lib = addon();
  const c = new Float32Array([1, 2, 3, 4, 5, 6]);
  lib.matmul(new Float32Array(0), new Float32Array(0), c, 1, 2, 3, 0, false, false, 0, 0, true);
  assert.deepEqual([...c], [1, 2, 3, 4, 5, 6]);
  lib.matmul(new Float32Array(0), new Float32Array(0), c, 1, 2, 3, 0, false, false, 0, 0, false);
  assert.deepEqual([...c], [0, 0, 0, 0, 0, 0]);
  lib.matmul(
    new Float32Array(0),
    new Float32Array(0),
    new Float32Array(0),
    1,
    0,
    3,
    4,
    false,
    false,
    0,
    0,
    false,
  );
});

test("native matmul rejects wrong sizes and types with an error, never a crash", () => {
  const lib = addon();
  const a = new Float32Array(6);
  const b = new Float32Array(12);
  const c = new Float32Array(8);
  lib.matmul(a, b, c, 1, 2, 4, 3, false, false, 6, 12, false);
  assert.throws(
    () => lib.matmul(a, b, new Float32Array(7), 1, 2, 4, 3, false, false, 6, 12, false),
    /matmul c/,
  );
  assert.throws(() => lib.matmul(a, b, c, 1, 2, 4, 4, false, false, 8, 16, false), /matmul a/);
  assert.throws(
    () => lib.matmul(a, new Float32Array(11), c, 1, 2, 4, 3, true, true, 6, 12, false),
    /matmul b/,
  );
  // Batch 2 with a broadcast A needs one A but two Bs and two Cs.
  assert.throws(
    () => lib.matmul(a, b, new Float32Array(16), 2, 2, 4, 3, false, false, 0, 12, false),
    /matmul b/,
  );
  assert.throws(() => lib.matmul(a, b, c, 1, -2, 4, 3, false, false, 6, 12, false), /m must be/);
  assert.throws(() => lib.matmul(a, b, c, 1, 2.5, 4, 3, false, false, 6, 12, false), /m must be/);
  assert.throws(() => lib.matmul(a, b, c, 1, 1e15, 1e15, 3, false, false, 6, 12, false), /matmul/);
  const f64 = new Float64Array(8) as unknown as Float32Array;
  assert.throws(() => lib.matmul(a, b, f64, 1, 2, 4, 3, false, false, 6, 12, false), /Float32Array/);
});

// Newton–Schulz's Gram products: a symmetric C is computed as its upper triangle and mirrored, and must
// equal the full product bit for bit (both entries of a pair sum the same products in the same order).
test("native matmul symmetric: X·Xᵀ, Xᵀ·X and A·A equal the full product bit for bit, on every instruction set", () => {
  const lib = addon();
  const original = lib.isa();
  const symmetric = (n: number) => {
    const r = uniform(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) r[i * n + j] = r[j * n + i]!;
    return r;
  };
  const cases: { label: string; a: Float32Array; b: Float32Array; c0: Float32Array; g: Case }[] = [];
  for (const [s, l, batch] of [
    [20, 9, 1],
    [40, 64, 3],
    [130, 385, 2],
    [300, 70, 1],
  ] as const) {
    const x = uniform(batch * s * l);
    const base = { batch, m: s, n: s, strideA: s * l, strideB: s * l };
    cases.push({
      label: `X·Xᵀ ${s}×${l}`,
      a: x,
      b: x,
      c0: uniform(batch * s * s),
      g: { ...base, k: l, transA: false, transB: true, accumulate: false },
    });
    // Xᵀ·X of the same data read as [l, s] (the tall side).
    cases.push({
      label: `Xᵀ·X ${l}×${s}`,
      a: x,
      b: x,
      c0: uniform(batch * s * s),
      g: { ...base, k: l, transA: true, transB: false, accumulate: false },
    });
    const a = new Float32Array(batch * s * s);
    for (let i = 0; i < batch; i++) a.set(symmetric(s), i * s * s);
    const c0 = new Float32Array(batch * s * s);
    for (let i = 0; i < batch; i++) c0.set(symmetric(s), i * s * s);
    const sq = { batch, m: s, n: s, k: s, strideA: s * s, strideB: s * s, transA: false, transB: false };
    cases.push({ label: `A·A ${s}`, a, b: a, c0, g: { ...sq, accumulate: true } });
  }
  let ran = 0;
  try {
    for (const isa of ISAS) {
      if (!lib.selectIsa(isa)) continue;
      ran++;
      for (const product of [lib.matmul, lib.matmulBf16])
        for (const { label, a, b, c0, g } of cases) {
          const run = (sym: boolean) => {
            const c = c0.slice();
            product(
              a,
              b,
              c,
              g.batch,
              g.m,
              g.n,
              g.k,
              g.transA,
              g.transB,
              g.strideA,
              g.strideB,
              g.accumulate,
              sym,
            );
            return c;
          };
          const full = run(false);
          const half = run(true);
          const at = half.findIndex((v, i) => !Object.is(v, full[i]));
          assert.equal(
            at,
            -1,
            `${isa} ${product === lib.matmul ? "matmul" : "matmulBf16"} ${label}: element ${at}`,
          );
        }
    }
  } finally {
    lib.selectIsa(original);
  }
  assert.ok(ran >= 1);
  assert.throws(
    () =>
      lib.matmul(
        new Float32Array(6),
        new Float32Array(12),
        new Float32Array(8),
        1,
        2,
        4,
        3,
        false,
        false,
        6,
        12,
        false,
        true,
      ),
    /symmetric needs m == n/,
  );
});
