// The reference backend is the oracle for every other backend, so its kernels are checked here against
// hand-computed values, naive re-implementations, and (for every backward kernel) central finite
// differences in float64: for a random upstream gradient g, ∂/∂x_i Σ g·f(x) ≈ (L(x+εe_i) − L(x−εe_i)) / 2ε.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  type AttentionShape,
  dropoutKeep,
  type FloatArray,
  type MatmulArgs,
} from "../src/backend/backend.js";
import { reference as R } from "../src/backend/reference.js";
import { TestRandom } from "./helpers/random.js";

const EPS = 1e-6;
const TOL = 1e-6;

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "dot: length mismatch");
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Differences between analytic and numeric gradients beyond tolerance, as readable strings. */
function gradErrors(x: Float64Array, analytic: ArrayLike<number>, loss: () => number, tol = TOL): string[] {
  assert.equal(analytic.length, x.length, "gradient length must match the input");
  const errors: string[] = [];
  for (let i = 0; i < x.length; i++) {
    const saved = x[i];
    x[i] = saved + EPS;
    const plus = loss();
    x[i] = saved - EPS;
    const minus = loss();
    x[i] = saved;
    const numeric = (plus - minus) / (2 * EPS);
    const a = analytic[i];
    if (!(Math.abs(a - numeric) <= tol * Math.max(1, Math.abs(a), Math.abs(numeric)))) {
      errors.push(`[${i}] analytic ${a} vs numeric ${numeric}`);
    }
  }
  return errors;
}

/** Asserts that `analytic` is the gradient of loss() with respect to x (x is perturbed in place). */
function checkGrad(label: string, x: Float64Array, analytic: ArrayLike<number>, loss: () => number): void {
  const errors = gradErrors(x, analytic, loss);
  assert.deepEqual(errors, [], `${label}: gradient mismatch\n${errors.slice(0, 8).join("\n")}`);
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
  label: string,
): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  for (let i = 0; i < actual.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    assert.ok(
      diff <= tol * Math.max(1, Math.abs(expected[i])),
      `${label}[${i}]: got ${actual[i]}, expected ${expected[i]}`,
    );
  }
}

const f64 = (xs: number[]) => Float64Array.from(xs);

describe("gradient checker", () => {
  test("detects a wrong gradient", () => {
    const x = f64([0.5, -1.5]);
    const loss = () => x[0] * x[0] + 3 * x[1];
    assert.deepEqual(gradErrors(x, [1, 3], loss), []);
    assert.equal(gradErrors(x, [1, 3.001], loss).length, 1);
  });
});

describe("elementwise and reductions", () => {
  test("add / mul broadcast, scale, addInto, fill", () => {
    const a = f64([1, 2, 3, 4, 5, 6]);
    const b = f64([10, 20, 30]);
    const out = new Float64Array(6);
    R.add(a, b, out, 6, 3);
    assert.deepEqual([...out], [11, 22, 33, 14, 25, 36]);
    R.mul(a, b, out, 6, 3);
    assert.deepEqual([...out], [10, 40, 90, 40, 100, 180]);
    R.mul(a, f64([2]), out, 6, 1);
    assert.deepEqual([...out], [2, 4, 6, 8, 10, 12]);
    R.scale(a, -0.5, out, 6);
    assert.deepEqual([...out], [-0.5, -1, -1.5, -2, -2.5, -3]);
    R.addInto(out, a, 6);
    assert.deepEqual([...out], [0.5, 1, 1.5, 2, 2.5, 3]);
    R.fill(out, 7, 4);
    assert.deepEqual([...out], [7, 7, 7, 7, 2.5, 3]);
    assert.throws(() => R.add(a, b, out, 6, 4), /bn=4 must be positive and divide n=6/);
  });

  test("sum and sumSquares accumulate in float64", () => {
    assert.equal(R.sum(f64([1, 2, 3.5]), 3), 6.5);
    assert.equal(R.sumSquares(f64([1, -2, 3]), 3), 14);
    assert.equal(R.sum(f64([1, 2, 3]), 2), 3);
    // 2^24 + 1 is not representable in float32; a float32 accumulator would lose the ones.
    const x = new Float32Array(1 + 1000).fill(1);
    x[0] = 16777216;
    assert.equal(R.sum(x, x.length), 16777216 + 1000);
  });

  test("sumRows is the gradient of a broadcast add and (with mul) of a broadcast mul", () => {
    const rnd = new TestRandom(1);
    const rows = 4;
    const cols = 3;
    const a = rnd.normals(rows * cols);
    const b = rnd.normals(cols);
    const g = rnd.normals(rows * cols);
    const out = new Float64Array(rows * cols);
    const gb = new Float64Array(cols);
    R.sumRows(g, gb, rows, cols);
    checkGrad("add db", b, gb, () => {
      R.add(a, b, out, rows * cols, cols);
      return dot(g, out);
    });
    const ga = new Float64Array(rows * cols);
    R.mul(g, b, ga, rows * cols, cols);
    const ga2 = new Float64Array(rows * cols);
    R.mul(g, a, ga2, rows * cols, rows * cols);
    R.sumRows(ga2, gb, rows, cols);
    const loss = () => {
      R.mul(a, b, out, rows * cols, cols);
      return dot(g, out);
    };
    checkGrad("mul da", a, ga, loss);
    checkGrad("mul db", b, gb, loss);
  });
});

// --- matmul ---

function naiveMatmul(a: ArrayLike<number>, b: ArrayLike<number>, args: MatmulArgs): Float64Array {
  const { batch, m, n, k, transA, transB, strideA, strideB } = args;
  const c = new Float64Array(batch * m * n);
  for (let bi = 0; bi < batch; bi++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) {
          const av = transA ? a[bi * strideA + p * m + i] : a[bi * strideA + i * k + p];
          const bv = transB ? b[bi * strideB + j * k + p] : b[bi * strideB + p * n + j];
          s += av * bv;
        }
        c[(bi * m + i) * n + j] = s;
      }
    }
  }
  return c;
}

function mm(
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  extra: Partial<MatmulArgs> = {},
): MatmulArgs {
  return { batch: 1, m, n, k, transA, transB, strideA: m * k, strideB: k * n, accumulate: false, ...extra };
}

describe("matmul", () => {
  const flags: [boolean, boolean][] = [
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ];

  test("matches a naive triple loop: all transposes, batch, strides, broadcast, accumulate", () => {
    const rnd = new TestRandom(2);
    for (const [transA, transB] of flags) {
      for (const [m, n, k] of [
        [3, 4, 5],
        [1, 1, 1],
        [1, 5, 2],
        [4, 1, 3],
        [2, 3, 1],
      ]) {
        for (const [batch, sA, sB] of [
          [1, m * k, k * n],
          [3, m * k, k * n],
          [3, 0, k * n],
          [3, m * k, 0],
          [2, m * k + 2, k * n + 1],
        ]) {
          const a = rnd.normals(Math.max(1, (batch - 1) * sA + m * k));
          const b = rnd.normals(Math.max(1, (batch - 1) * sB + k * n));
          const args = mm(m, n, k, transA, transB, { batch, strideA: sA, strideB: sB });
          const label = `tA=${transA} tB=${transB} m=${m} n=${n} k=${k} batch=${batch} sA=${sA} sB=${sB}`;
          const expected = naiveMatmul(a, b, args);
          const c = rnd.normals(batch * m * n); // dirty output buffer
          R.matmul(a, b, c, args);
          assertClose(c, expected, 1e-12, label);
          // accumulate: C += A·B
          const before = rnd.normals(batch * m * n);
          const acc = Float64Array.from(before);
          R.matmul(a, b, acc, { ...args, accumulate: true });
          assertClose(
            acc,
            expected.map((v, i) => v + before[i]),
            1e-12,
            `${label} accumulate`,
          );
          // float32 in, float32 out
          const c32 = new Float32Array(batch * m * n);
          R.matmul(Float32Array.from(a), Float32Array.from(b), c32, args);
          assertClose(c32, expected, 1e-5, `${label} float32`);
        }
      }
    }
  });

  test("the matmul compositions autodiff uses are the gradients, for every transpose pair", () => {
    const rnd = new TestRandom(3);
    const [m, n, k] = [3, 4, 2];
    for (const [transA, transB] of flags) {
      const a = rnd.normals(m * k);
      const b = rnd.normals(k * n);
      const g = rnd.normals(m * n);
      const c = new Float64Array(m * n);
      const loss = () => {
        R.matmul(a, b, c, mm(m, n, k, transA, transB));
        return dot(g, c);
      };
      // dL/dop(A) = G·op(B)ᵀ [m,k]; dL/dop(B) = op(A)ᵀ·G [k,n]; stored-transposed operands get the transpose.
      const ga = new Float64Array(m * k);
      if (!transA) R.matmul(g, b, ga, mm(m, k, n, false, !transB));
      else R.matmul(b, g, ga, mm(k, m, n, transB, true));
      const gb = new Float64Array(k * n);
      if (!transB) R.matmul(a, g, gb, mm(k, n, m, !transA, false));
      else R.matmul(g, a, gb, mm(n, k, m, true, transA));
      const label = `tA=${transA} tB=${transB}`;
      checkGrad(`${label} dA`, a, ga, loss);
      checkGrad(`${label} dB`, b, gb, loss);
    }
  });

  test("a broadcast operand's gradient is the accumulated sum over the batch", () => {
    const rnd = new TestRandom(4);
    const [batch, m, n, k] = [3, 2, 3, 4];
    const x = rnd.normals(batch * m * k);
    const w = rnd.normals(n * k); // nn.Linear layout [out, in], shared by every batch item
    const g = rnd.normals(batch * m * n);
    const y = new Float64Array(batch * m * n);
    const args = mm(m, n, k, false, true, { batch, strideA: m * k, strideB: 0 });
    const loss = () => {
      R.matmul(x, w, y, args);
      return dot(g, y);
    };
    const gw = rnd.normals(n * k); // dirty: the first item overwrites, the rest accumulate
    for (let bi = 0; bi < batch; bi++) {
      R.matmul(
        g.subarray(bi * m * n),
        x.subarray(bi * m * k),
        gw,
        mm(n, k, m, true, false, { accumulate: bi > 0 }),
      );
    }
    checkGrad("broadcast dW", w, gw, loss);
  });

  test("rejects too-short operands", () => {
    assert.throws(
      () =>
        R.matmul(new Float64Array(5), new Float64Array(6), new Float64Array(4), mm(2, 2, 3, false, false)),
      /matmul: A has 5 elements, needs at least 6/,
    );
  });
});

// --- activations and softmax ---

describe("activations", () => {
  test("forward values", () => {
    const x = f64([1, 0, -1, 3, -40, 40]);
    const out = new Float64Array(6);
    R.gelu(x, out, 6);
    // The tanh form is odd-symmetric around x/2: gelu(x) − gelu(−x) = x, so gelu(−1) = gelu(1) − 1.
    assertClose(out.subarray(0, 3), [0.8411919906082768, 0, 0.8411919906082768 - 1], 1e-15, "gelu");
    R.silu(x, out, 6);
    assertClose(out, [0.7310585786300049, 0, -0.2689414213699951, 2.8577223804673, -0, 40], 1e-13, "silu");
    R.relu2(x, out, 6);
    assert.deepEqual([...out], [1, 0, 0, 9, 0, 1600]);
    const up = f64([2, 5, -3, 1, 1, 0.5]);
    R.swiglu(x, up, out, 6);
    assertClose(
      out,
      [2 * 0.7310585786300049, 0, 3 * 0.2689414213699951, 2.8577223804673, 0, 20],
      1e-13,
      "swiglu",
    );
  });

  test("gelu, silu, relu2, softcap backward are gradients", () => {
    const rnd = new TestRandom(5);
    const n = 24;
    const x = rnd.normals(n, 2);
    const g = rnd.normals(n);
    const out = new Float64Array(n);
    const gx = new Float64Array(n);
    const cases = [
      ["gelu", R.gelu, R.geluBackward],
      ["silu", R.silu, R.siluBackward],
      ["relu2", R.relu2, R.relu2Backward],
      [
        "softcap",
        (x: Float64Array, o: Float64Array, k: number) => R.softcap(x, o, k, 1.5),
        (x: Float64Array, go: Float64Array, gx: Float64Array, k: number) =>
          R.softcapBackward(x, go, gx, k, 1.5),
      ],
    ] as const;
    for (const [name, fwd, bwd] of cases) {
      bwd(x, g, gx, n);
      assert.ok(maxAbs(gx) > 0.1, `${name}: gradient should not vanish`);
      checkGrad(name, x, gx, () => {
        fwd(x, out, n);
        return dot(g, out);
      });
    }
  });

  test("swiglu backward: both inputs", () => {
    const rnd = new TestRandom(6);
    const n = 17;
    const gate = rnd.normals(n, 2);
    const up = rnd.normals(n);
    const g = rnd.normals(n);
    const out = new Float64Array(n);
    const gGate = new Float64Array(n);
    const gUp = new Float64Array(n);
    R.swigluBackward(gate, up, g, gGate, gUp, n);
    const loss = () => {
      R.swiglu(gate, up, out, n);
      return dot(g, out);
    };
    checkGrad("swiglu gate", gate, gGate, loss);
    checkGrad("swiglu up", up, gUp, loss);
  });

  test("softmax: known values, stability, in place", () => {
    const expected = [0.09003057317038046, 0.24472847105479767, 0.6652409557748219];
    const out = new Float64Array(6);
    R.softmax(f64([1, 2, 3, 1001, 1002, 1003]), out, 2, 3);
    assertClose(out, [...expected, ...expected], 1e-15, "softmax");
    const x = f64([1, 2, 3]);
    R.softmax(x, x, 1, 3);
    assertClose(x, expected, 1e-15, "softmax in place");
    const one = new Float64Array(1);
    R.softmax(f64([-7]), one, 1, 1);
    assert.equal(one[0], 1);
  });

  test("softmax backward is the gradient", () => {
    const rnd = new TestRandom(7);
    for (const [rows, dim] of [
      [3, 5],
      [1, 1],
      [2, 1],
    ]) {
      const x = rnd.normals(rows * dim, 2);
      const g = rnd.normals(rows * dim);
      const y = new Float64Array(rows * dim);
      R.softmax(x, y, rows, dim);
      const gx = new Float64Array(rows * dim);
      R.softmaxBackward(y, g, gx, rows, dim);
      checkGrad(`softmax ${rows}x${dim}`, x, gx, () => {
        R.softmax(x, y, rows, dim);
        return dot(g, y);
      });
    }
  });
});

// --- normalisation ---

describe("normalisation", () => {
  test("layerNorm and rmsNorm forward values", () => {
    const out = new Float64Array(4);
    const mean = new Float64Array(1);
    const rstd = new Float64Array(1);
    R.layerNorm(f64([1, 2, 3, 4]), f64([1, 1, 1, 1]), f64([0, 0, 0, 0]), out, mean, rstd, 1, 4, 0);
    const r = 1 / Math.sqrt(1.25);
    assertClose(out, [-1.5 * r, -0.5 * r, 0.5 * r, 1.5 * r], 1e-15, "layerNorm");
    assert.equal(mean[0], 2.5);
    assertClose(rstd, [r], 1e-15, "layerNorm rstd");
    R.layerNorm(f64([1, 2, 3, 4]), f64([2, 2, 2, 2]), f64([1, 1, 1, 1]), out, mean, rstd, 1, 4, 0);
    assertClose(out, [1 - 3 * r, 1 - r, 1 + r, 1 + 3 * r], 1e-15, "layerNorm affine");
    const out2 = new Float64Array(2);
    R.rmsNorm(f64([3, 4]), f64([1, 2]), out2, rstd, 1, 2, 0);
    assertClose(out2, [0.848528137423857, 2 * 1.131370849898476], 1e-14, "rmsNorm");
  });

  test("layerNorm backward: gx, gw, gb", () => {
    const rnd = new TestRandom(8);
    for (const [rows, dim] of [
      [3, 6],
      [1, 2],
      [4, 1],
    ]) {
      const x = rnd.normals(rows * dim, 2);
      const w = rnd.normals(dim);
      const b = rnd.normals(dim);
      const g = rnd.normals(rows * dim);
      const out = new Float64Array(rows * dim);
      const mean = new Float64Array(rows);
      const rstd = new Float64Array(rows);
      const eps = 1e-5;
      R.layerNorm(x, w, b, out, mean, rstd, rows, dim, eps);
      const gx = new Float64Array(rows * dim);
      const gw = rnd.normals(dim); // dirty buffers must be overwritten
      const gb = rnd.normals(dim);
      R.layerNormBackward(g, x, w, mean, rstd, gx, gw, gb, rows, dim);
      const loss = () => {
        R.layerNorm(x, w, b, out, mean, rstd, rows, dim, eps);
        return dot(g, out);
      };
      const label = `layerNorm ${rows}x${dim}`;
      checkGrad(`${label} dx`, x, gx, loss);
      checkGrad(`${label} dw`, w, gw, loss);
      checkGrad(`${label} db`, b, gb, loss);
    }
  });

  test("rmsNorm backward: gx, gw", () => {
    const rnd = new TestRandom(9);
    for (const [rows, dim] of [
      [3, 6],
      [1, 1],
      [2, 3],
    ]) {
      const x = rnd.normals(rows * dim, 2);
      const w = rnd.normals(dim);
      const g = rnd.normals(rows * dim);
      const out = new Float64Array(rows * dim);
      const rstd = new Float64Array(rows);
      const eps = 1e-5;
      R.rmsNorm(x, w, out, rstd, rows, dim, eps);
      const gx = new Float64Array(rows * dim);
      const gw = rnd.normals(dim);
      R.rmsNormBackward(g, x, w, rstd, gx, gw, rows, dim);
      const loss = () => {
        R.rmsNorm(x, w, out, rstd, rows, dim, eps);
        return dot(g, out);
      };
      checkGrad(`rmsNorm ${rows}x${dim} dx`, x, gx, loss);
      checkGrad(`rmsNorm ${rows}x${dim} dw`, w, gw, loss);
    }
  });
});

// --- rope ---

function ropeTables(maxPos: number, headDim: number, base = 10000): { cos: Float64Array; sin: Float64Array } {
  const half = headDim / 2;
  const cos = new Float64Array(maxPos * half);
  const sin = new Float64Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * base ** (-(2 * i) / headDim);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

describe("rope", () => {
  test("rotates pair (i, i + hd/2) by pos·θ_i", () => {
    const { cos, sin } = ropeTables(8, 4);
    // hd = 4: pairs (0, 2) with θ_0 = 1 and (1, 3) with θ_1 = 1/100; one row at position 3.
    const x = f64([1, 2, 0, 1]);
    const out = new Float64Array(4);
    R.rope(x, out, cos, sin, 1, 1, 1, 4, 3, false);
    const [c0, s0, c1, s1] = [Math.cos(3), Math.sin(3), Math.cos(0.03), Math.sin(0.03)];
    assertClose(out, [c0, 2 * c1 - s1, s0, 2 * s1 + c1], 1e-15, "rope");
    // position 0 is the identity
    R.rope(x, out, cos, sin, 1, 1, 1, 4, 0, false);
    assertClose(out, x, 0, "rope at position 0");
  });

  test("inverse ∘ rope = identity (also in place), and backward = inverse rope is the gradient", () => {
    const rnd = new TestRandom(10);
    const [batch, t, heads, hd, pos0] = [2, 3, 2, 6, 4];
    const { cos, sin } = ropeTables(pos0 + t, hd);
    const n = batch * t * heads * hd;
    const x = rnd.normals(n);
    const y = new Float64Array(n);
    R.rope(x, y, cos, sin, batch, t, heads, hd, pos0, false);
    assert.ok(maxAbs(y.map((v, i) => v - x[i])) > 0.1, "rope should change x");
    const back = Float64Array.from(y);
    R.rope(back, back, cos, sin, batch, t, heads, hd, pos0, true);
    assertClose(back, x, 1e-14, "inverse(rope(x))");
    const g = rnd.normals(n);
    const gx = new Float64Array(n);
    R.rope(g, gx, cos, sin, batch, t, heads, hd, pos0, true);
    checkGrad("rope", x, gx, () => {
      R.rope(x, y, cos, sin, batch, t, heads, hd, pos0, false);
      return dot(g, y);
    });
  });

  test("rejects positions past the tables and odd head dims", () => {
    const { cos, sin } = ropeTables(4, 2);
    const x = new Float64Array(4);
    assert.throws(
      () => R.rope(x, x, cos, sin, 1, 2, 1, 2, 3, false),
      /position 4 \(row 1\) is outside the cos\/sin tables/,
    );
    assert.throws(() => R.rope(x, x, cos, sin, 1, 1, 1, 3, 0, false), /headDim must be even/);
  });
});

// --- attention ---

/** Materialises every score: the obviously-correct attention the streaming kernel must match. */
function naiveAttention(q: Float64Array, k: Float64Array, v: Float64Array, s: AttentionShape) {
  const { batch, tq, tk, heads, kvHeads, headDim: hd, scale, causal } = s;
  const out = new Float64Array(batch * tq * heads * hd);
  const lse = new Float64Array(batch * heads * tq);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor((h * kvHeads) / heads);
      for (let i = 0; i < tq; i++) {
        const scores: number[] = [];
        for (let j = 0; j < tk; j++) {
          if (causal && j > i + tk - tq) break;
          let d = 0;
          for (let e = 0; e < hd; e++)
            d += q[((b * tq + i) * heads + h) * hd + e] * k[((b * tk + j) * kvHeads + kvh) * hd + e];
          scores.push(d * scale);
        }
        const total = scores.reduce((acc, x) => acc + Math.exp(x), 0);
        lse[(b * heads + h) * tq + i] = Math.log(total);
        for (let j = 0; j < scores.length; j++) {
          const p = Math.exp(scores[j]) / total;
          for (let e = 0; e < hd; e++)
            out[((b * tq + i) * heads + h) * hd + e] += p * v[((b * tk + j) * kvHeads + kvh) * hd + e];
        }
      }
    }
  }
  return { out, lse };
}

describe("attention", () => {
  const shapes: [string, AttentionShape][] = [
    ["causal MHA", { batch: 2, tq: 3, tk: 3, heads: 2, kvHeads: 2, headDim: 4, scale: 0.5, causal: true }],
    [
      "causal GQA 1 kv head, tq < tk",
      { batch: 1, tq: 2, tk: 5, heads: 4, kvHeads: 1, headDim: 3, scale: 0.6, causal: true },
    ],
    [
      "non-causal GQA",
      { batch: 2, tq: 3, tk: 4, heads: 4, kvHeads: 2, headDim: 2, scale: 0.7, causal: false },
    ],
    [
      "size-1 everything",
      { batch: 1, tq: 1, tk: 1, heads: 1, kvHeads: 1, headDim: 1, scale: 1, causal: true },
    ],
    [
      "decode step tq=1",
      { batch: 2, tq: 1, tk: 4, heads: 2, kvHeads: 1, headDim: 3, scale: 0.5, causal: true },
    ],
    [
      "non-causal tq=tk",
      { batch: 1, tq: 3, tk: 3, heads: 1, kvHeads: 1, headDim: 2, scale: 1, causal: false },
    ],
  ];

  function inputs(rnd: TestRandom, s: AttentionShape) {
    const q = rnd.normals(s.batch * s.tq * s.heads * s.headDim);
    const k = rnd.normals(s.batch * s.tk * s.kvHeads * s.headDim);
    const v = rnd.normals(s.batch * s.tk * s.kvHeads * s.headDim);
    return { q, k, v };
  }

  test("forward matches a materialised softmax(q·kᵀ·scale)·v, lse included", () => {
    const rnd = new TestRandom(11);
    for (const [label, s] of shapes) {
      const { q, k, v } = inputs(rnd, s);
      const out = rnd.normals(q.length);
      const lse = rnd.normals(s.batch * s.heads * s.tq);
      R.attention(q, k, v, out, lse, s);
      const expected = naiveAttention(q, k, v, s);
      assertClose(out, expected.out, 1e-13, `${label} out`);
      assertClose(lse, expected.lse, 1e-13, `${label} lse`);
      // float32 path
      const out32 = new Float32Array(q.length);
      const lse32 = new Float32Array(lse.length);
      R.attention(Float32Array.from(q), Float32Array.from(k), Float32Array.from(v), out32, lse32, s);
      assertClose(out32, expected.out, 1e-5, `${label} out float32`);
    }
  });

  test("a causal first query with tq = tk sees only the first key", () => {
    const s: AttentionShape = {
      batch: 1,
      tq: 2,
      tk: 2,
      heads: 1,
      kvHeads: 1,
      headDim: 2,
      scale: 1,
      causal: true,
    };
    const out = new Float64Array(4);
    const lse = new Float64Array(2);
    R.attention(f64([1, 2, 3, 4]), f64([5, 6, 7, 8]), f64([0.25, -1, 9, 9]), out, lse, s);
    assert.deepEqual([...out.subarray(0, 2)], [0.25, -1]);
    assert.equal(lse[0], 1 * 5 + 2 * 6);
  });

  test("backward (recomputed from lse) is the gradient of q, k and v", () => {
    const rnd = new TestRandom(12);
    for (const [label, s] of shapes) {
      const { q, k, v } = inputs(rnd, s);
      const g = rnd.normals(q.length);
      const out = new Float64Array(q.length);
      const lse = new Float64Array(s.batch * s.heads * s.tq);
      R.attention(q, k, v, out, lse, s);
      const gq = rnd.normals(q.length); // dirty buffers: the kernel must overwrite them
      const gk = rnd.normals(k.length);
      const gv = rnd.normals(v.length);
      R.attentionBackward(q, k, v, out, lse, g, gq, gk, gv, s);
      const o = new Float64Array(q.length);
      const l = new Float64Array(lse.length);
      const loss = () => {
        R.attention(q, k, v, o, l, s);
        return dot(g, o);
      };
      checkGrad(`${label} dq`, q, gq, loss);
      checkGrad(`${label} dk`, k, gk, loss);
      checkGrad(`${label} dv`, v, gv, loss);
      // float32 backward agrees with float64
      const gq32 = new Float32Array(q.length);
      const gk32 = new Float32Array(k.length);
      const gv32 = new Float32Array(v.length);
      const f = (a: Float64Array) => Float32Array.from(a);
      R.attentionBackward(f(q), f(k), f(v), f(out), f(lse), f(g), gq32, gk32, gv32, s);
      assertClose(gq32, gq, 1e-4, `${label} gq float32`);
      assertClose(gk32, gk, 1e-4, `${label} gk float32`);
      assertClose(gv32, gv, 1e-4, `${label} gv float32`);
    }
  });

  test("rejects bad shapes", () => {
    const z = new Float64Array(64);
    const base: AttentionShape = {
      batch: 1,
      tq: 2,
      tk: 2,
      heads: 3,
      kvHeads: 2,
      headDim: 2,
      scale: 1,
      causal: true,
    };
    assert.throws(() => R.attention(z, z, z, z, z, base), /heads=3 must be a positive multiple of kvHeads=2/);
    assert.throws(() => R.attention(z, z, z, z, z, { ...base, kvHeads: 1, tq: 3 }), /tq=3 must be <= tk=2/);
  });
});

// --- embedding and cross-entropy ---

describe("embedding", () => {
  test("forward gathers rows; bad ids throw", () => {
    const table = f64([0, 1, 10, 11, 20, 21]);
    const out = new Float64Array(6);
    R.embedding(table, Int32Array.from([2, 0, 2]), out, 3, 2);
    assert.deepEqual([...out], [20, 21, 0, 1, 20, 21]);
    assert.throws(
      () => R.embedding(table, Int32Array.from([0, 3]), out, 2, 2),
      /^Error: embedding: id 3 out of range \[0, 3\)$/,
    );
    assert.throws(
      () => R.embedding(table, Int32Array.from([-1]), out, 1, 2),
      /embedding: id -1 out of range \[0, 3\)/,
    );
    const g = new Float64Array(6);
    assert.throws(
      () => R.embeddingBackward(out, Int32Array.from([5]), g, 1, 2, 3),
      /id 5 out of range \[0, 3\)/,
    );
  });

  test("backward scatter-adds repeated ids and zeroes unused rows", () => {
    const rnd = new TestRandom(13);
    const [vocab, dim] = [5, 3];
    const ids = Int32Array.from([1, 3, 1, 1, 0, 3]);
    const table = rnd.normals(vocab * dim);
    const g = rnd.normals(ids.length * dim);
    const out = new Float64Array(ids.length * dim);
    const gTable = rnd.normals(vocab * dim);
    R.embeddingBackward(g, ids, gTable, ids.length, dim, vocab);
    assert.deepEqual([...gTable.subarray(2 * dim, 3 * dim)], [0, 0, 0]);
    assert.deepEqual([...gTable.subarray(4 * dim, 5 * dim)], [0, 0, 0]);
    checkGrad("embedding", table, gTable, () => {
      R.embedding(table, ids, out, ids.length, dim);
      return dot(g, out);
    });
  });
});

describe("crossEntropy", () => {
  test("forward values, ignored rows, stability", () => {
    const loss = new Float64Array(3);
    const lse = new Float64Array(3);
    const logits = f64([0, 0, 0, 0, 1, 2, 3, 4, 1000, 1001, 1002, 1003]);
    R.crossEntropy(logits, Int32Array.from([2, -100, 0]), loss, lse, 3, 4, -100);
    const lse1 = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3) + Math.exp(4));
    assertClose(loss, [Math.log(4), 0, lse1 - 1], 1e-13, "loss");
    assertClose(lse, [Math.log(4), lse1, 999 + lse1], 1e-13, "lse");
  });

  test("targets outside [0, vocab) that are not ignoreIndex throw, naming row and value", () => {
    const logits = new Float64Array(8);
    const loss = new Float64Array(2);
    const lse = new Float64Array(2);
    assert.throws(
      () => R.crossEntropy(logits, Int32Array.from([1, 4]), loss, lse, 2, 4, -100),
      /crossEntropy: target 4 at row 1 is out of range \[0, 4\)/,
    );
    assert.throws(
      () => R.crossEntropy(logits, Int32Array.from([-1, 0]), loss, lse, 2, 4, -100),
      /target -1 at row 0/,
    );
    const gx = new Float64Array(8);
    assert.throws(
      () => R.crossEntropyBackward(logits, Int32Array.from([0, 9]), lse, gx, 2, 4, -100, 1),
      /crossEntropyBackward: target 9 at row 1/,
    );
  });

  test("backward is the gradient of gScale·Σ loss, with zero rows for ignored targets", () => {
    const rnd = new TestRandom(14);
    const [rows, vocab, ignore] = [5, 6, -100];
    const targets = Int32Array.from([3, ignore, 0, 5, ignore]);
    const logits = rnd.normals(rows * vocab, 3);
    const loss = new Float64Array(rows);
    const lse = new Float64Array(rows);
    const gScale = 1 / 3; // e.g. the mean over the 3 counted rows
    R.crossEntropy(logits, targets, loss, lse, rows, vocab, ignore);
    const gx = rnd.normals(rows * vocab);
    R.crossEntropyBackward(logits, targets, lse, gx, rows, vocab, ignore, gScale);
    assert.deepEqual([...gx.subarray(vocab, 2 * vocab)], new Array(vocab).fill(0));
    assert.deepEqual([...gx.subarray(4 * vocab)], new Array(vocab).fill(0));
    checkGrad("crossEntropy", logits, gx, () => {
      R.crossEntropy(logits, targets, loss, lse, rows, vocab, ignore);
      return gScale * R.sum(loss, rows);
    });
    // vocab 1: loss 0, gradient 0
    R.crossEntropy(f64([5]), Int32Array.from([0]), loss, lse, 1, 1, ignore);
    assert.equal(loss[0], 0);
  });
});

// --- dropout and AdamW ---

describe("dropout", () => {
  test("p = 0 is the identity", () => {
    const x = f64([1, -2, 3]);
    const out = new Float64Array(3);
    R.dropout(x, out, 3, 0, 42);
    assert.deepEqual([...out], [1, -2, 3]);
  });

  test("mask follows dropoutKeep, scales by 1/(1 − p), and backward uses the same mask", () => {
    const n = 4000;
    const p = 0.25;
    const seed = 1234;
    const rnd = new TestRandom(15);
    const x = rnd.normals(n);
    const out = new Float64Array(n);
    R.dropout(x, out, n, p, seed);
    let kept = 0;
    for (let i = 0; i < n; i++) {
      const keep = dropoutKeep(seed, i, p);
      kept += keep ? 1 : 0;
      assert.equal(out[i], keep ? x[i] * (1 / (1 - p)) : 0);
    }
    assert.ok(Math.abs(kept / n - (1 - p)) < 0.03, `kept fraction ${kept / n}`);
    const other = new Float64Array(n);
    R.dropout(x, other, n, p, seed + 1);
    assert.notDeepEqual([...other], [...out], "a different seed gives a different mask");
    const g = rnd.normals(n);
    const gx = new Float64Array(n);
    R.dropoutBackward(g, gx, n, p, seed);
    const small = x.subarray(0, 40);
    checkGrad("dropout", small, gx.subarray(0, 40), () => {
      R.dropout(small, out, 40, p, seed);
      return dot(g.subarray(0, 40), out.subarray(0, 40));
    });
    assert.throws(() => R.dropout(x, out, n, 1, seed), /p must be in \[0, 1\)/);
  });
});

describe("adamw", () => {
  test("matches PyTorch's update over two steps", () => {
    const args = (t: number) => ({
      lr: 0.1,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0.01,
      biasCorrection1: 1 - 0.9 ** t,
      biasCorrection2: 1 - 0.999 ** t,
    });
    const param = f64([1, -2]);
    const m = new Float64Array(2);
    const v = new Float64Array(2);
    R.adamw(param, f64([0.5, 0]), m, v, 2, args(1));
    // step 1: p = 1·(1 − 0.001) − (0.1/0.1)·0.05 / (√0.00025/√0.001 + 1e-8) = 0.999 − 0.05/0.50000001
    assertClose(param, [0.999 - 0.05 / 0.50000001, -2 * 0.999], 1e-15, "step 1 param");
    assertClose(m, [0.05, 0], 1e-15, "step 1 m");
    assertClose(v, [0.00025, 0], 1e-15, "step 1 v");
    R.adamw(param, f64([-1, 0]), m, v, 2, args(2));
    const m2 = 0.9 * 0.05 - 0.1;
    const v2 = 0.999 * 0.00025 + 0.001;
    const p2 =
      (0.999 - 0.05 / 0.50000001) * 0.999 -
      (0.1 / 0.19) * (m2 / (Math.sqrt(v2) / Math.sqrt(1 - 0.999 ** 2) + 1e-8));
    assertClose(m, [m2, 0], 1e-15, "step 2 m");
    assertClose(param, [p2, -2 * 0.999 * 0.999], 1e-14, "step 2 param");
  });
});

describe("float32 inputs", () => {
  test("norms, softmax and cross-entropy on Float32Array agree with float64", () => {
    const rnd = new TestRandom(16);
    const [rows, dim] = [3, 8];
    const x = rnd.normals(rows * dim, 2);
    const w = rnd.normals(dim);
    const b = rnd.normals(dim);
    const f = (a: Float64Array) => Float32Array.from(a);
    const run = <T extends FloatArray>(make: (a: Float64Array) => T, alloc: (n: number) => T) => {
      const out = alloc(rows * dim);
      const mean = alloc(rows);
      const rstd = alloc(rows);
      R.layerNorm(make(x), make(w), make(b), out, mean, rstd, rows, dim, 1e-5);
      const sm = alloc(rows * dim);
      R.softmax(make(x), sm, rows, dim);
      const loss = alloc(rows);
      R.crossEntropy(make(x), Int32Array.from([0, 7, 3]), loss, alloc(rows), rows, dim, -1);
      return [...out, ...sm, ...loss];
    };
    const r64 = run(
      (a) => a,
      (n) => new Float64Array(n),
    );
    const r32 = run(f, (n) => new Float32Array(n));
    assertClose(r32, r64, 1e-5, "float32 vs float64");
  });
});
