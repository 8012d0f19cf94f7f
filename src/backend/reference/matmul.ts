// Batched matrix product C = op(A)·op(B) (no backward kernel: autodiff composes it from matmuls).

import type { FloatArray, MatmulArgs, PackedMatrix } from "../backend.js";
import { bf16ToFloat, roundArrayBf16 } from "../bf16.js";
import { needCounts, needLength, scratch } from "./scratch.js";

const ROW_A = 0; // row i of op(A), gathered contiguously [k]
const ROW_C = 1; // row i of C, accumulated in float64 [n]

// C[b] (+)= op(A[b])·op(B[b]);  C[i,j] = Σ_p opA[i,p]·opB[p,j]
export function matmul(a: FloatArray, b: FloatArray, c: FloatArray, args: MatmulArgs): void {
  const { batch, m, n, k, transA, transB, strideA, strideB, accumulate, symmetric } = args;
  needCounts("matmul", { batch, m, n, k, strideA, strideB });
  if (symmetric && m !== n) throw new RangeError(`matmul: symmetric needs m == n, got m ${m}, n ${n}`);
  if (batch === 0 || m === 0 || n === 0) return;
  needLength("matmul", "A", a, (batch - 1) * strideA + m * k);
  needLength("matmul", "B", b, (batch - 1) * strideB + k * n);
  needLength("matmul", "C", c, batch * m * n);
  const aRow = scratch(ROW_A, k);
  const cRow = scratch(ROW_C, n);
  for (let bi = 0; bi < batch; bi++) {
    const a0 = bi * strideA;
    const b0 = bi * strideB;
    const c0 = bi * m * n;
    for (let i = 0; i < m; i++) {
      // Gather row i of op(A): contiguous when A is [m, k], strided by m when A is stored [k, m].
      if (transA) for (let p = 0; p < k; p++) aRow[p] = a[a0 + p * m + i];
      else for (let p = 0; p < k; p++) aRow[p] = a[a0 + i * k + p];
      if (transB) {
        // B stored [n, k]: C[i,j] is a dot product of two contiguous rows.
        for (let j = 0; j < n; j++) {
          const bj = b0 + j * k;
          let acc = 0;
          for (let p = 0; p < k; p++) acc += aRow[p] * b[bj + p];
          cRow[j] = acc;
        }
      } else {
        // B stored [k, n]: i-k-j order streams through rows of B, four rows of B per pass over C's row.
        cRow.fill(0, 0, n);
        let p = 0;
        for (; p + 4 <= k; p += 4) {
          const a0p = aRow[p];
          const a1p = aRow[p + 1];
          const a2p = aRow[p + 2];
          const a3p = aRow[p + 3];
          const bp = b0 + p * n;
          for (let j = 0; j < n; j++) {
            cRow[j] +=
              a0p * b[bp + j] + a1p * b[bp + n + j] + a2p * b[bp + 2 * n + j] + a3p * b[bp + 3 * n + j];
          }
        }
        for (; p < k; p++) {
          const aip = aRow[p];
          const bp = b0 + p * n;
          for (let j = 0; j < n; j++) cRow[j] += aip * b[bp + j];
        }
      }
      // A symmetric C keeps the upper triangle (j ≥ i) and mirrors it below, as the native kernel does.
      const ci = c0 + i * n;
      const j0 = symmetric ? i : 0;
      if (accumulate) for (let j = j0; j < n; j++) c[ci + j] += cRow[j];
      else for (let j = j0; j < n; j++) c[ci + j] = cRow[j];
    }
    if (symmetric)
      for (let i = 1; i < m; i++) for (let j = 0; j < i; j++) c[c0 + i * n + j] = c[c0 + j * n + i];
  }
}

/** The product of A and B rounded to bf16 (nearest even), accumulated in float64: what a bf16 GEMM computes. */
export function matmulBf16(
  a: FloatArray | Uint16Array,
  b: FloatArray | Uint16Array,
  c: FloatArray,
  args: MatmulArgs,
): void {
  const { batch, m, n, k, strideA, strideB } = args;
  const used = (x: FloatArray | Uint16Array, stride: number, size: number) => {
    const part =
      batch === 0 || m === 0 || n === 0 || k === 0 ? x : x.subarray(0, (batch - 1) * stride + size);
    // bf16 bits are already rounded: widened, they come through the rounding unchanged.
    return roundArrayBf16(part instanceof Uint16Array ? Float32Array.from(part, bf16ToFloat) : part);
  };
  matmul(used(a, strideA, m * k), used(b, strideB, k * n), c, args);
}

/** out[m, rows] = x·wᵀ with w dequantized (a block of rows at a time), products summed in float64. */
export function matmulQuant(x: FloatArray, w: PackedMatrix, out: FloatArray, m: number): void {
  const { rows: n, cols: k } = w;
  needCounts("matmulQuant", { m, n, k });
  needLength("matmulQuant", "x", x, m * k);
  needLength("matmulQuant", "out", out, m * n);
  const block = Math.max(1, Math.floor(65536 / Math.max(1, k)));
  for (let j0 = 0; j0 < n; j0 += block) {
    const j1 = Math.min(n, j0 + block);
    const wt = w.dequantizeRows(j0, j1);
    for (let i = 0; i < m; i++) {
      for (let j = j0; j < j1; j++) {
        const wj = (j - j0) * k;
        let acc = 0;
        for (let p = 0; p < k; p++) acc += x[i * k + p]! * wt[wj + p]!;
        out[i * n + j] = acc;
      }
    }
  }
}
