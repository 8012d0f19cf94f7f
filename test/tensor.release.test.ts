// releaseStorage: an activation no backward reads gives its storage back during the forward pass, one that
// backward reads stays, and one that only bf16-mixed products read shrinks to a bf16 copy; the gradients are
// the same, to the bit, as when nothing is released (on both backends).
import assert from "node:assert/strict";
import { test } from "node:test";
import { backend, setBackend } from "../src/backend/index.js";
import {
  add,
  linear,
  type Precision,
  parameter,
  pool,
  releaseStorage,
  rmsNorm,
  sum,
  type Tensor,
  tidy,
  withPrecision,
} from "../src/tensor/index.js";
import { mulberry32 } from "./helpers/random.js";

const rand = mulberry32(3);
const uniform = (n: number) => Float32Array.from({ length: n }, () => rand() * 2 - 1);
const [rows, d, f] = [24, 40, 56];
const values = { x: uniform(rows * d), g: uniform(d), w1: uniform(f * d), w2: uniform(d * f), b: uniform(d) };

/**
 * rmsNorm → linear (biased) → linear, with a residual; `release` gives back each intermediate once the
 * forward is done with it. Returns the parameters' gradients and what the pool held at the forward's end.
 */
function step(precision: Precision, release: boolean) {
  const x = parameter(values.x.slice(), [rows, d]);
  const g = parameter(values.g.slice(), [d]);
  const w1 = parameter(values.w1.slice(), [f, d]);
  const w2 = parameter(values.w2.slice(), [d, f]);
  const b = parameter(values.b.slice(), [d]);
  let heldBytes = 0;
  withPrecision(precision, () =>
    tidy(() => {
      const before = pool.stats().liveBytes;
      const n = rmsNorm(x, g);
      const h = linear(n, w1);
      const y = linear(h, w2, b);
      const out = add(x, y);
      if (release) for (const t of [n, h, y]) releaseStorage(t);
      heldBytes = pool.stats().liveBytes - before;
      sum(out).backward();
    }),
  );
  const grads = [x, g, w1, w2, b].map((p: Tensor) => Float32Array.from(p.grad!.data));
  return { grads, heldBytes };
}

for (const name of ["native", "reference"] as const) {
  for (const precision of ["fp32", "bf16-mixed"] as const) {
    test(`${name}, ${precision}: released activations leave every gradient bit-identical and free their bytes`, () => {
      const prev = backend().name;
      setBackend(name);
      try {
        const kept = step(precision, false);
        const released = step(precision, true);
        for (const [i, g] of kept.grads.entries()) assert.deepEqual(released.grads[i], g, `gradient ${i}`);
        // Kept: n (its norm reads x, not n), h, y, out, the norm's rstd. Released: y goes (an add reads
        // nothing); n and h are read by the products: float32 under fp32, bf16 copies under bf16-mixed.
        const rstd = rows * 4;
        const full = rows * (d + f + d + d) * 4 + rstd;
        assert.equal(kept.heldBytes, full);
        const productBytes = precision === "bf16-mixed" ? 2 : 4;
        assert.equal(released.heldBytes, rows * d * 4 + rows * (d + f) * productBytes + rstd);
      } finally {
        setBackend(prev);
      }
    });
  }
}

test("storage a backward reads stays, kept tensors stay, and a released tensor cannot be read again", () => {
  const x = parameter(uniform(rows * d), [rows, d]);
  const g = parameter(uniform(d), [d]);
  tidy(() => {
    const n = rmsNorm(x, g);
    const m = rmsNorm(n, g); // reads n
    releaseStorage(n);
    assert.equal(n.data.length, n.size, "n is read by the second norm's backward");
    releaseStorage(x);
    assert.equal(x.data.length, x.size, "a parameter is kept");
    const y = add(m, m);
    releaseStorage(y);
    assert.equal(y.data.length, 0, "nothing reads y");
    assert.throws(() => add(y, m), /elements|values|length/);
  });
});
