// The quantized-weight product (matmulQuant) against the reference dequantise-then-multiply, for every weight
// type, on every instruction set this CPU runs (the VNNI, AVX-512, AVX2 and portable variants), at m = 1, 3
// and 16 (the int8 few-row kernel: decode and batched decode) and m = 40 (prefill: fp32 tiles), with row
// lengths that are and are not multiples of 256.
//
// Tolerance. With m ≤ 16 and a block type, the kernel quantises each row of x to 8 bits per block of 32
// (d = max|x|/127, q = round(x/d)), so each x_i moves by at most d_b/2 and an output by at most
// Σ_b (d_b/2)·Σ_{i∈b}|w_i − o_i| (o: the block's offset in Q4_1/Q5_1/Q4_K/Q5_K, the value its weights take
// with every quant zeroed; the kernel multiplies the offset by the exact sum of x) — the bound asserted (with 1% for float rounding inside the quantiser), plus
// float32 rounding of the sums, 2·(k + 2)·2^-24·Σ|w·x|. F16/BF16 weights and the tile path do not
// quantise x: only the float32 rounding bound applies. The reference runs in float64 on the weights the
// file holds (ggml's own dequantization, bit-exact), so the bounds are the kernel's whole error.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { PackedMatrix, PackedType } from "../src/backend/backend.js";
import { floatToBf16 } from "../src/backend/bf16.js";
import { nativeBackend, reference } from "../src/backend/index.js";
import { nativeIsa, nativeQuantIsa, selectNativeIsa } from "../src/backend/native.js";
import { quantizeBlocks } from "../src/io/ggml-quants.js";
import { floatToHalf } from "../src/io/half.js";
import { packMatrix } from "../src/io/packed.js";
import { mulberry32, normal } from "./helpers/random.js";

const rnd = normal(mulberry32(11));

function encode(type: PackedType, w: Float32Array): Uint8Array {
  if (type === "F16" || type === "BF16") {
    const h = new Uint16Array(w.length);
    for (let i = 0; i < w.length; i++) h[i] = type === "F16" ? floatToHalf(w[i]!) : floatToBf16(w[i]!);
    return new Uint8Array(h.buffer);
  }
  return quantizeBlocks(type, w);
}

/** Weights with outliers and a varying scale per row, so blocks differ (and Q4_1/K-quant offsets matter). */
function weights(n: number, k: number, shift: number): Float32Array {
  const w = new Float32Array(n * k);
  for (let j = 0; j < n; j++) {
    const s = 0.02 * (1 + (j % 5));
    for (let i = 0; i < k; i++) w[j * k + i] = s * (rnd() + shift) * (i % 37 === 0 ? 6 : 1);
  }
  return w;
}

function activations(m: number, k: number): Float32Array {
  return Float32Array.from({ length: m * k }, (_, i) => rnd() * (i % 29 === 0 ? 8 : 1));
}

/** Where each block of an offset type keeps its quants: [first byte, end) within the block, block bytes. */
const QUANT_BYTES: Partial<Record<PackedType, [number, number, number]>> = {
  Q4_1: [4, 20, 20],
  Q5_1: [4, 24, 24],
  Q4_K: [16, 144, 144],
  Q5_K: [16, 176, 176],
};

/** Each weight's block offset (zero for the symmetric types): the matrix dequantized with its quants zeroed. */
function offsets(p: PackedMatrix): Float32Array {
  const at = QUANT_BYTES[p.type];
  if (!at) return new Float32Array(p.rows * p.cols);
  const bytes = p.bytes.slice();
  for (let b = 0; b < bytes.length; b += at[2]) bytes.fill(0, b + at[0], b + at[1]);
  return packMatrix(p.type, p.rows, p.cols, bytes).dequantizeRows(0, p.rows);
}

/** Per output: the reference value (float64) and the bound on the kernel's error (see the header). */
function expected(x: Float32Array, p: PackedMatrix, m: number, quantisesX: boolean) {
  const { rows: n, cols: k } = p;
  const w = p.dequantizeRows(0, n);
  const o = offsets(p);
  const value = new Float64Array(m * n);
  const bound = new Float64Array(m * n);
  for (let r = 0; r < m; r++) {
    const half = new Float64Array(k / 32);
    if (quantisesX)
      for (let b = 0; b < k / 32; b++) {
        let amax = 0;
        for (let i = 32 * b; i < 32 * b + 32; i++) amax = Math.max(amax, Math.abs(x[r * k + i]!));
        half[b] = (amax / 127 / 2) * 1.01;
      }
    for (let j = 0; j < n; j++) {
      let v = 0;
      let abs = 0;
      let q = 0;
      for (let i = 0; i < k; i++) {
        const wi = w[j * k + i]!;
        v += x[r * k + i]! * wi;
        abs += Math.abs(x[r * k + i]! * wi);
        if (quantisesX) q += half[i >> 5]! * Math.abs(wi - o[j * k + i]!);
      }
      value[r * n + j] = v;
      bound[r * n + j] = q + 2 * (k + 2) * 2 ** -24 * abs + 1e-30;
    }
  }
  return { value, bound };
}

const TYPES: { type: PackedType; ks: number[]; shift: number }[] = [
  { type: "Q8_0", ks: [96, 256], shift: 0 },
  { type: "Q4_0", ks: [96, 256], shift: 0 },
  { type: "Q4_1", ks: [96, 256], shift: 0.7 },
  { type: "Q5_0", ks: [96, 256], shift: 0 },
  { type: "Q5_1", ks: [96, 256], shift: 0.7 },
  { type: "Q4_K", ks: [256, 512], shift: 0.7 },
  { type: "Q5_K", ks: [256, 512], shift: 0.7 },
  { type: "Q6_K", ks: [256, 512], shift: 0 },
  { type: "F16", ks: [37, 256], shift: 0 },
  { type: "BF16", ks: [37, 256], shift: 0 },
];

test("matmulQuant: every type and variant within the activation-quantisation bound of dequantise-then-multiply", () => {
  const native = nativeBackend();
  assert.ok(native, "the native addon is required for this test");
  const defaultIsa = nativeIsa() as "avx512bf16" | "avx512" | "avx2" | "generic";
  const variants = new Set<string>();
  try {
    for (const isa of ["avx512", "avx2", "generic"] as const) {
      if (!selectNativeIsa(isa)) continue; // this CPU lacks it
      variants.add(nativeQuantIsa());
      for (const { type, ks, shift } of TYPES) {
        for (const k of ks) {
          const n = 19;
          const packed = packMatrix(type, n, k, encode(type, weights(n, k, shift)));
          for (const m of [1, 3, 16, 40]) {
            const x = activations(m, k);
            const out = new Float32Array(m * n).fill(Number.NaN);
            native.matmulQuant(x, packed, out, m);
            const quantisesX = m <= 16 && type !== "F16" && type !== "BF16";
            const { value, bound } = expected(x, packed, m, quantisesX);
            for (let i = 0; i < m * n; i++) {
              const err = Math.abs(out[i]! - value[i]!);
              assert.ok(
                err <= bound[i]!,
                `${nativeQuantIsa()} ${type} m ${m} n ${n} k ${k} [${i}]: ${out[i]} vs ${value[i]} (|Δ| ${err} > bound ${bound[i]})`,
              );
            }
          }
        }
      }
    }
  } finally {
    selectNativeIsa(defaultIsa);
  }
  assert.ok(variants.has("generic"), "the portable variant ran");
});

test("matmulQuant runs the variant of the kernel set in use, the bf16 set included", () => {
  const defaultIsa = nativeIsa();
  const want: Record<string, string[]> = {
    avx512bf16: ["avx512vnni", "avx512"],
    avx512: ["avx512vnni", "avx512"],
    avx2: ["avx2"],
    generic: ["generic"],
  };
  try {
    for (const [isa, variants] of Object.entries(want)) {
      if (!selectNativeIsa(isa as "avx512bf16")) continue;
      assert.ok(
        variants.includes(nativeQuantIsa()),
        `kernel set ${isa} ran matmulQuant's ${nativeQuantIsa()}`,
      );
    }
  } finally {
    selectNativeIsa(defaultIsa as "avx512bf16");
  }
});

test("matmulQuant: native and reference backends agree, and the tile path is exact", () => {
  const native = nativeBackend()!;
  const n = 33;
  const k = 256;
  const packed = packMatrix("Q4_K", n, k, encode("Q4_K", weights(n, k, 0.5)));
  const m = 24; // > 16 rows: tiles dequantised to float32, x not quantised
  const x = activations(m, k);
  const a = new Float32Array(m * n);
  const b = new Float64Array(m * n);
  native.matmulQuant(x, packed, a, m);
  reference.matmulQuant(Float64Array.from(x), packed, b, m);
  const { bound } = expected(x, packed, m, false);
  for (let i = 0; i < m * n; i++)
    assert.ok(Math.abs(a[i]! - b[i]!) <= bound[i]!, `[${i}] ${a[i]} vs ${b[i]}`);
});

test("matmulQuant: bad calls are errors, not crashes", () => {
  const native = nativeBackend()!;
  const packed = packMatrix("Q8_0", 2, 64, new Uint8Array(2 * 2 * 34));
  assert.throws(() => native.matmulQuant(new Float32Array(63), packed, new Float32Array(2), 1), /x has 63/);
  assert.throws(() => native.matmulQuant(new Float32Array(64), packed, new Float32Array(1), 1), /out has 1/);
  const short = { ...packed, bytes: new Uint8Array(100) };
  assert.throws(
    () => native.matmulQuant(new Float32Array(64), short, new Float32Array(2), 1),
    /w has 100 bytes/,
  );
  assert.throws(() => packMatrix("Q4_K", 2, 96, new Uint8Array(0)), /not a whole number of Q4_K blocks/);
  assert.throws(() => packMatrix("Q4_0", 2, 64, new Uint8Array(70)), /needs 72 bytes, got 70/);
});
