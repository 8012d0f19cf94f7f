// bf16 mixed precision at the op level: inside withPrecision("bf16-mixed"), a float32 matmul and both of
// its gradient products multiply bf16-rounded operands with float32 accumulation (checked against float64
// sums of the rounded values, on both backends); float64 tensors are never rounded; the setting is scoped.
import assert from "node:assert/strict";
import { test } from "node:test";
import { roundBf16 } from "../src/backend/bf16.js";
import { backend, setBackend } from "../src/backend/index.js";
import {
  currentPrecision,
  linear,
  matmul,
  mul,
  parameter,
  sum,
  Tensor,
  tidy,
  withPrecision,
} from "../src/tensor/index.js";
import { parseTrainConfig } from "../src/train/index.js";
import { mulberry32 } from "./helpers/random.js";

const rand = mulberry32(11);
const uniform = (n: number) => Float32Array.from({ length: n }, () => rand() * 2 - 1);

/** C = op(A)·op(B) in float64, optionally of bf16-rounded operands, with |A|·|B| for the error bound. */
function product(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  n: number,
  k: number,
  tA: boolean,
  tB: boolean,
  bf16: boolean,
) {
  const r = bf16 ? roundBf16 : (x: number) => x;
  const value = new Float64Array(m * n);
  const mag = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      let t = 0;
      for (let p = 0; p < k; p++) {
        const x = r(a[tA ? p * m + i : i * k + p]!) * r(b[tB ? j * k + p : p * n + j]!);
        s += x;
        t += Math.abs(x);
      }
      value[i * n + j] = s;
      mag[i * n + j] = t;
    }
  return { value, mag };
}

function assertClose(
  got: ArrayLike<number>,
  want: { value: Float64Array; mag: Float64Array },
  k: number,
  label: string,
) {
  for (let i = 0; i < want.value.length; i++) {
    const bound = (k + 2) * 2 ** -24 * want.mag[i]! + 1e-30;
    const err = Math.abs(got[i]! - want.value[i]!);
    if (!(err <= bound))
      assert.fail(`${label}[${i}]: got ${got[i]}, want ${want.value[i]} (error ${err} > ${bound})`);
  }
}

for (const name of ["native", "reference"] as const) {
  test(`bf16-mixed linear: forward and both gradients multiply bf16-rounded operands (${name})`, () => {
    const previous = backend().name;
    setBackend(name);
    try {
      // x [m, k] · wᵀ (w [n, k]), m > 16 so the native side takes the bf16 GEMM where the CPU has one.
      const [m, n, k] = [40, 24, 37];
      const xv = uniform(m * k);
      const wv = uniform(n * k);
      const gv = uniform(m * n); // the upstream gradient, through sum(y ∘ g)
      const x = parameter(xv.slice(), [m, k]);
      const w = parameter(wv.slice(), [n, k]);
      let y: Float32Array = new Float32Array(0);
      withPrecision("bf16-mixed", () =>
        tidy(() => {
          const out = linear(x, w);
          y = Float32Array.from(out.data);
          const g = new Tensor(gv.slice(), [m, n]);
          sum(mul(out, g)).backward();
        }),
      );
      assertClose(y, product(xv, wv, m, n, k, false, true, true), k, "y");
      // dx = g·w and dw = gᵀ·x, the upstream gradient rounded too.
      assertClose(x.grad!.data, product(gv, wv, m, k, n, false, false, true), n, "dx");
      assertClose(w.grad!.data, product(gv, xv, n, k, m, true, false, true), m, "dw");
      // And it is not the float32 product: rounding to 8 significant bits moves the sums far more.
      const exact = product(xv, wv, m, n, k, false, true, false).value;
      const moved = y.reduce((worst, v, i) => Math.max(worst, Math.abs(v - exact[i]!)), 0);
      assert.ok(moved > 1e-3, `bf16 products should differ from float32 ones (max difference ${moved})`);
    } finally {
      setBackend(previous);
    }
  });
}

test("bf16-mixed leaves float64 products exact (gradient checks stay valid) and is scoped", () => {
  const a = new Tensor(Float64Array.from([1 + 2 ** -20, 2, 3, 4]), [2, 2]);
  const b = new Tensor(Float64Array.from([1, 0, 0, 1]), [2, 2]);
  const out = withPrecision("bf16-mixed", () => {
    assert.equal(currentPrecision(), "bf16-mixed");
    return matmul(a, b);
  });
  assert.equal(out.data[0], 1 + 2 ** -20);
  assert.equal(currentPrecision(), "fp32");
  assert.throws(() =>
    withPrecision("bf16-mixed", () => {
      throw new Error("inside");
    }),
  );
  assert.equal(currentPrecision(), "fp32", "restored after a throw");
});

test("a bad precision is refused with the values allowed", () => {
  assert.throws(() => parseTrainConfig({ precision: "fp16" }), /precision.*fp32.*bf16-mixed/s);
  assert.equal(parseTrainConfig({}).precision, "fp32");
});
