// The differentiable ops. Each op checks shapes (errors name the op and the shapes), runs the forward
// kernel, and — when a gradient is needed — records a node whose backward runs the backward kernel.
import type { AttentionShape, FloatArray, MatmulArgs } from "../backend/backend.js";
import { backend, reference } from "../backend/index.js";
import { pool } from "./pool.js";
import { currentPrecision } from "./precision.js";
import {
  accumulateGrad,
  bf16Source,
  empty,
  full,
  needsGrad,
  record,
  releaseStorage,
  Tensor,
} from "./tensor.js";

const fmt = (s: readonly number[]) => `[${s.join(",")}]`;

function sameDtype(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (t.dtype !== ts[0]!.dtype) throw new Error(`${op}: mixed dtypes ${ts.map((x) => x.dtype).join(", ")}`);
  }
}

function lastDim(op: string, t: Tensor): number {
  if (t.shape.length === 0) throw new Error(`${op}: expected at least 1 dimension, got a scalar`);
  return t.shape[t.shape.length - 1]!;
}

/** b broadcasts over a when b's shape equals a trailing part of a's shape. */
function checkSuffix(op: string, a: Tensor, b: Tensor): void {
  const off = a.shape.length - b.shape.length;
  if (off < 0 || b.shape.some((d, i) => d !== a.shape[off + i])) {
    throw new Error(
      `${op}: ${fmt(a.shape)} and ${fmt(b.shape)}: shapes must match or the second must match the trailing dimensions of the first`,
    );
  }
}

// ---------------------------------------------------------------- views

/** Same storage, new shape (-1 infers one dimension). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const known = shape.reduce((p, d) => (d === -1 ? p : p * d), 1);
  const resolved = shape.map((d) => (d === -1 ? x.size / known : d));
  if (resolved.reduce((p, d) => p * d, 1) !== x.size || resolved.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`reshape: cannot view ${fmt(x.shape)} (${x.size} values) as ${fmt(shape)}`);
  }
  const out = new Tensor(x.data, resolved, false, x);
  if (needsGrad(x)) {
    record(out, {
      op: "reshape",
      inputs: [x],
      reads: [],
      backward: (g) => accumulateGrad(x, new Tensor(g.data, x.shape, false, g), false),
    });
  }
  return out;
}

/**
 * [a, b, c, d] → [a, c, b, d]: a copy with axes 1 and 2 swapped, e.g. [batch, time, heads, headDim] to
 * [batch, heads, time, headDim] and back. Its backward is the same swap of the gradient.
 */
export function swapAxes12(x: Tensor): Tensor {
  if (x.shape.length !== 4) throw new Error(`swapAxes12: ${fmt(x.shape)} is not 4-D`);
  const [a, b, c, d] = x.shape as [number, number, number, number];
  const out = empty([a, c, b, d], x.dtype);
  swap12(x.data, out.data, a, b, c, d);
  if (needsGrad(x)) {
    record(out, {
      op: "swapAxes12",
      inputs: [x],
      reads: [],
      backward: (g) => {
        const gx = empty(x.shape, x.dtype);
        swap12(g.data, gx.data, a, c, b, d);
        accumulateGrad(x, gx, true);
      },
    });
  }
  return out;
}

/** out[i, k, j, :] = src[i, j, k, :] for src [a, b, c, d]: rows of d values move whole. */
function swap12(src: FloatArray, out: FloatArray, a: number, b: number, c: number, d: number): void {
  for (let i = 0; i < a; i++)
    for (let j = 0; j < b; j++)
      for (let k = 0; k < c; k++) {
        const from = ((i * b + j) * c + k) * d;
        out.set(src.subarray(from, from + d), ((i * c + k) * b + j) * d);
      }
}

// ---------------------------------------------------------------- matmul

export interface MatmulOptions {
  /** Use a's last two dimensions transposed (a is stored [..., k, m]). */
  transA?: boolean;
  /** Use b's last two dimensions transposed (b is stored [..., n, k]: the nn.Linear weight layout). */
  transB?: boolean;
}

/**
 * op(a)·op(b). a is [..., m, k] (or [..., k, m] with transA); b is [k, n] (or [n, k] with transB) and is
 * shared by every leading index of a, or has the same leading dimensions as a.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  sameDtype("matmul", a, b);
  const err = (why: string) =>
    new Error(`matmul: ${fmt(a.shape)}${transA ? "ᵀ" : ""} x ${fmt(b.shape)}${transB ? "ᵀ" : ""}: ${why}`);
  if (a.shape.length < 2 || b.shape.length < 2) throw err("both operands need at least 2 dimensions");
  const ar = a.shape.length;
  const br = b.shape.length;
  const [m, k] = transA ? [a.shape[ar - 1]!, a.shape[ar - 2]!] : [a.shape[ar - 2]!, a.shape[ar - 1]!];
  const [kb, n] = transB ? [b.shape[br - 1]!, b.shape[br - 2]!] : [b.shape[br - 2]!, b.shape[br - 1]!];
  if (k !== kb) throw err(`inner dimensions ${k} and ${kb} differ`);
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const nA = batchA.reduce((p, d) => p * d, 1);
  const nB = batchB.reduce((p, d) => p * d, 1);
  let batch: number;
  let outBatch: number[];
  if (br === 2) {
    batch = nA;
    outBatch = batchA;
  } else if (ar === 2) {
    batch = nB;
    outBatch = batchB;
  } else if (batchA.length === batchB.length && batchA.every((d, i) => d === batchB[i])) {
    batch = nA;
    outBatch = batchA;
  } else {
    throw err(`batch dimensions ${fmt(batchA)} and ${fmt(batchB)} differ`);
  }
  const strideA = ar === 2 ? 0 : m * k;
  const strideB = br === 2 ? 0 : k * n;
  const out = empty([...outBatch, m, n], a.dtype);
  // Decided once, here: the backward products use the forward's precision wherever backward() runs.
  const bf16 = a.dtype === "float32" && currentPrecision() === "bf16-mixed";
  const mm = bf16 ? mmBf16 : mmF32;
  mm(a.data, b.data, out.data, batch, m, n, k, transA, transB, strideA, strideB, false);
  if (needsGrad(a, b)) {
    // A's gradient reads B, B's reads A; bf16 products read them only rounded, so a released operand
    // (releaseStorage) keeps just its bf16 copy.
    const read = [...(b.requiresGrad ? [a] : []), ...(a.requiresGrad ? [b] : [])];
    record(out, {
      op: "matmul",
      inputs: [a, b],
      reads: bf16 ? [] : read,
      readsBf16: bf16 ? read : [],
      backward: (g) => {
        const gd = g.data;
        const sG = m * n;
        if (a.requiresGrad) {
          // d op(A) = dC·op(B)ᵀ, written in A's storage layout.
          const bv = bf16 ? bf16Source(b) : b.data;
          const [x, y, tx, ty, sx, sy, mm_, nn_] = transA
            ? [bv, gd, transB, true, strideB, sG, k, m]
            : [gd, bv, false, !transB, sG, strideB, m, k];
          gradInto(a, (out, acc) =>
            gradProduct(mm, x, y, out, batch, mm_, nn_, n, tx, ty, sx, sy, strideA, acc),
          );
        }
        if (b.requiresGrad) {
          // d op(B) = op(A)ᵀ·dC, written in B's storage layout.
          const av = bf16 ? bf16Source(a) : a.data;
          const [x, y, tx, ty, sx, sy, mm_, nn_] = transB
            ? [gd, av, true, transA, sG, strideA, n, k]
            : [av, gd, !transA, false, strideA, sG, k, n];
          gradInto(b, (out, acc) =>
            gradProduct(mm, x, y, out, batch, mm_, nn_, m, tx, ty, sx, sy, strideB, acc),
          );
        }
      },
    });
  }
  return out;
}

/** A product's operand: floats, or (bf16 products only) a released activation's bf16 bits. */
type Operand = FloatArray | Uint16Array;

/**
 * One of the backend's two products (float32, or bf16 operands) as a function of flat arguments; a shared
 * right operand with a plain left one becomes one tall product over the whole batch.
 */
const product =
  (kernel: "matmul" | "matmulBf16") =>
  (
    a: Operand,
    b: Operand,
    c: FloatArray,
    batch: number,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
    strideA: number,
    strideB: number,
    accumulate: boolean,
  ): void => {
    const kernels = c instanceof Float64Array ? reference : backend();
    const run = (args: MatmulArgs) => {
      if (kernel === "matmulBf16") kernels.matmulBf16(a, b, c, args);
      else if (a instanceof Uint16Array || b instanceof Uint16Array)
        throw new Error("matmul: bf16 operands need the bf16 product");
      else kernels.matmul(a, b, c, args);
    };
    // A shared right operand and a plain left one: the whole batch is one tall product.
    if (batch > 1 && strideB === 0 && !transA && strideA === m * k) {
      run({ batch: 1, m: batch * m, n, k, transA, transB, strideA: 0, strideB: 0, accumulate });
      return;
    }
    run({ batch, m, n, k, transA, transB, strideA, strideB, accumulate });
  };
type Product = ReturnType<typeof product>;
const mmF32 = product("matmul");
const mmBf16 = product("matmulBf16");

/**
 * Adds a product to t's gradient. When t already has one (a tensor feeding several products, like the
 * normed input of q, k and v), the product accumulates straight into it (C += A·B): no temporary and no
 * separate add pass. Otherwise it is written to a fresh buffer that t adopts.
 */
function gradInto(t: Tensor, product: (out: FloatArray, accumulate: boolean) => void): void {
  if (t.grad !== null && t.grad.dtype === t.dtype && t.grad.size === t.size) {
    product(t.grad.data, true);
    return;
  }
  const g = empty(t.shape, t.dtype);
  product(g.data, false);
  accumulateGrad(t, g, true);
}

/**
 * A gradient product x·y of per-item shape [m, n] with inner size k. When the gradient's operand was
 * broadcast over the batch (outStride 0), the per-item products are summed into one matrix. With
 * `accumulate` the result is added to `out`.
 */
function gradProduct(
  mm: Product,
  x: Operand,
  y: Operand,
  out: FloatArray,
  batch: number,
  m: number,
  n: number,
  k: number,
  transX: boolean,
  transY: boolean,
  strideX: number,
  strideY: number,
  outStride: number,
  accumulate = false,
): void {
  if (outStride !== 0 || batch === 1) {
    mm(x, y, out, batch, m, n, k, transX, transY, strideX, strideY, accumulate);
    return;
  }
  // Sum over the batch. When x is a batch of [k, m] matrices used transposed and y is a batch of
  // [k, n], the sum is one product with inner size batch·k.
  if (transX && !transY && strideX === m * k && strideY === k * n) {
    mm(x, y, out, 1, m, n, batch * k, true, false, 0, 0, accumulate);
    return;
  }
  for (let i = 0; i < batch; i++) {
    const xs = strideX === 0 ? x : x.subarray(i * strideX, (i + 1) * strideX);
    const ys = strideY === 0 ? y : y.subarray(i * strideY, (i + 1) * strideY);
    mm(xs, ys, out, 1, m, n, k, transX, transY, 0, 0, accumulate || i > 0);
  }
}

/** x·wᵀ + b: the nn.Linear layer, w stored [out, in] (in float, or packed in a ggml type). */
export function linear(x: Tensor, w: Tensor, b?: Tensor | null): Tensor {
  const y = w.packed ? packedLinear(x, w) : matmul(x, w, { transB: true });
  if (!b) return y;
  const out = add(y, b);
  releaseStorage(y); // the sum's backward reads neither term
  return out;
}

/** x·wᵀ with w kept in a ggml type: one matmulQuant call, no float copy of w, no gradient. */
function packedLinear(x: Tensor, w: Tensor): Tensor {
  const p = w.packed!;
  const k = x.shape[x.shape.length - 1];
  if (k !== p.cols)
    throw new Error(`linear: input ${fmt(x.shape)} does not fit weight [${p.rows},${p.cols}]`);
  if (needsGrad(x))
    throw new Error(
      `linear: ${w.name ?? "the weight"} is kept in ${p.type} (a quantized model); gradients through ` +
        "quantized weights are not supported: load the model with dequantized weights to train it",
    );
  const out = empty([...x.shape.slice(0, -1), p.rows], x.dtype);
  x.kernels.matmulQuant(x.data, p, out.data, x.size / k);
  return out;
}

// ---------------------------------------------------------------- elementwise

/** a + b, where b matches a's shape or its trailing dimensions (a bias). */
export function add(a: Tensor, b: Tensor): Tensor {
  checkSuffix("add", a, b);
  sameDtype("add", a, b);
  const out = empty(a.shape, a.dtype);
  a.kernels.add(a.data, b.data, out.data, a.size, b.size);
  if (needsGrad(a, b)) {
    record(out, {
      op: "add",
      inputs: [a, b],
      reads: [],
      backward: (g) => {
        accumulateGrad(a, g, false);
        if (!b.requiresGrad) return;
        if (b.size === a.size) accumulateGrad(b, g, false);
        else {
          const gb = empty(b.shape, b.dtype);
          g.kernels.sumRows(g.data, gb.data, a.size / b.size, b.size);
          accumulateGrad(b, gb, true);
        }
      },
    });
  }
  return out;
}

/** a ⊙ b, where b matches a's shape or its trailing dimensions. */
export function mul(a: Tensor, b: Tensor): Tensor {
  checkSuffix("mul", a, b);
  sameDtype("mul", a, b);
  const out = empty(a.shape, a.dtype);
  a.kernels.mul(a.data, b.data, out.data, a.size, b.size);
  if (needsGrad(a, b)) {
    record(out, {
      op: "mul",
      inputs: [a, b],
      reads: [a, b],
      backward: (g) => {
        const k = g.kernels;
        if (a.requiresGrad) {
          const ga = empty(a.shape, a.dtype);
          k.mul(g.data, b.data, ga.data, a.size, b.size); // d a = g ⊙ b
          accumulateGrad(a, ga, true);
        }
        if (b.requiresGrad) {
          const gab = empty(a.shape, a.dtype);
          k.mul(g.data, a.data, gab.data, a.size, a.size); // d b = Σ over broadcast rows of g ⊙ a
          if (b.size === a.size) accumulateGrad(b, gab, true);
          else {
            const gb = empty(b.shape, b.dtype);
            k.sumRows(gab.data, gb.data, a.size / b.size, b.size);
            gab.dispose();
            accumulateGrad(b, gb, true);
          }
        }
      },
    });
  }
  return out;
}

/** a · s for a number s. */
export function scale(a: Tensor, s: number): Tensor {
  const out = empty(a.shape, a.dtype);
  a.kernels.scale(a.data, s, out.data, a.size);
  if (needsGrad(a)) {
    record(out, {
      op: "scale",
      inputs: [a],
      reads: [],
      backward: (g) => {
        const ga = empty(a.shape, a.dtype);
        g.kernels.scale(g.data, s, ga.data, a.size);
        accumulateGrad(a, ga, true);
      },
    });
  }
  return out;
}

/** a − b, where b matches a's shape or its trailing dimensions. */
export function sub(a: Tensor, b: Tensor): Tensor {
  return add(a, scale(b, -1));
}

/** x + c for a number c. */
export function addScalar(x: Tensor, c: number): Tensor {
  return add(x, full([], c, { dtype: x.dtype }));
}

/** x². */
export function square(x: Tensor): Tensor {
  return mul(x, x);
}

/** eˣ; its gradient reuses the output (g·eˣ). */
export function exp(x: Tensor): Tensor {
  const out = empty(x.shape, x.dtype);
  x.kernels.exp(x.data, out.data, x.size);
  if (needsGrad(x)) {
    record(out, {
      op: "exp",
      inputs: [x],
      reads: [out],
      backward: (g) => {
        const gx = empty(x.shape, x.dtype);
        g.kernels.mul(g.data, out.data, gx.data, x.size, x.size);
        accumulateGrad(x, gx, true);
      },
    });
  }
  return out;
}

/** min(max(x, lo), hi); lo or hi may be ±Infinity. The gradient passes on [lo, hi], bounds included (PyTorch's). */
export function clamp(x: Tensor, lo: number, hi: number): Tensor {
  if (!(lo <= hi)) throw new Error(`clamp: lower bound ${lo} must be <= upper bound ${hi}`);
  const out = empty(x.shape, x.dtype);
  x.kernels.clamp(x.data, out.data, x.size, lo, hi);
  if (needsGrad(x)) {
    record(out, {
      op: "clamp",
      inputs: [x],
      reads: [x],
      backward: (g) => {
        const gx = empty(x.shape, x.dtype);
        g.kernels.clampBackward(x.data, g.data, gx.data, x.size, lo, hi);
        accumulateGrad(x, gx, true);
      },
    });
  }
  return out;
}

/** max(x, 0). */
export function relu(x: Tensor): Tensor {
  return clamp(x, 0, Number.POSITIVE_INFINITY);
}

/** Elementwise min(a, b) of two same-shaped tensors; at a tie each gets half the gradient (torch.minimum). */
export function minimum(a: Tensor, b: Tensor): Tensor {
  if (a.size !== b.size || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`minimum: ${fmt(a.shape)} and ${fmt(b.shape)} must have the same shape`);
  }
  sameDtype("minimum", a, b);
  const out = empty(a.shape, a.dtype);
  a.kernels.minimum(a.data, b.data, out.data, a.size);
  if (needsGrad(a, b)) {
    record(out, {
      op: "minimum",
      inputs: [a, b],
      reads: [a, b],
      backward: (g) => {
        const ga = empty(a.shape, a.dtype);
        const gb = empty(b.shape, b.dtype);
        g.kernels.minimumBackward(a.data, b.data, g.data, ga.data, gb.data, a.size);
        accumulateGrad(a, ga, true);
        accumulateGrad(b, gb, true);
      },
    });
  }
  return out;
}

type Unary = "gelu" | "silu" | "relu2" | "logSigmoid";

function unary(kind: Unary, x: Tensor): Tensor {
  const out = empty(x.shape, x.dtype);
  const k = x.kernels;
  k[kind](x.data, out.data, x.size);
  if (needsGrad(x)) {
    const bwd = `${kind}Backward` as const;
    record(out, {
      op: kind,
      inputs: [x],
      reads: [x],
      backward: (g) => {
        const gx = empty(x.shape, x.dtype);
        g.kernels[bwd](x.data, g.data, gx.data, x.size);
        accumulateGrad(x, gx, true);
      },
    });
  }
  return out;
}

/** GELU, tanh approximation (GPT-2's). */
export const gelu = (x: Tensor) => unary("gelu", x);
/** x·σ(x). */
export const silu = (x: Tensor) => unary("silu", x);
/** max(x, 0)². */
export const relu2 = (x: Tensor) => unary("relu2", x);
/** log σ(x) = −log(1 + e^−x), computed without overflow in either tail. */
export const logSigmoid = (x: Tensor) => unary("logSigmoid", x);

/** cap·tanh(x/cap): squashes logits smoothly into (−cap, cap) (Gemma 2's logit soft-cap). */
export function softcap(x: Tensor, cap: number): Tensor {
  if (!(cap > 0) || !Number.isFinite(cap))
    throw new Error(`softcap: cap must be a positive number, got ${cap}`);
  const out = empty(x.shape, x.dtype);
  x.kernels.softcap(x.data, out.data, x.size, cap);
  if (needsGrad(x)) {
    record(out, {
      op: "softcap",
      inputs: [x],
      reads: [x],
      backward: (g) => {
        const gx = empty(x.shape, x.dtype);
        g.kernels.softcapBackward(x.data, g.data, gx.data, x.size, cap);
        accumulateGrad(x, gx, true);
      },
    });
  }
  return out;
}

/** silu(gate) ⊙ up, the Llama MLP's gate. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  if (gate.size !== up.size || gate.shape.some((d, i) => d !== up.shape[i])) {
    throw new Error(`swiglu: gate ${fmt(gate.shape)} and up ${fmt(up.shape)} must have the same shape`);
  }
  sameDtype("swiglu", gate, up);
  const out = empty(gate.shape, gate.dtype);
  gate.kernels.swiglu(gate.data, up.data, out.data, gate.size);
  if (needsGrad(gate, up)) {
    record(out, {
      op: "swiglu",
      inputs: [gate, up],
      reads: [gate, up],
      backward: (g) => {
        const gg = empty(gate.shape, gate.dtype);
        const gu = empty(up.shape, up.dtype);
        g.kernels.swigluBackward(gate.data, up.data, g.data, gg.data, gu.data, gate.size);
        accumulateGrad(gate, gg, true);
        accumulateGrad(up, gu, true);
      },
    });
  }
  return out;
}

/** Softmax over the last dimension. */
export function softmax(x: Tensor): Tensor {
  const dim = lastDim("softmax", x);
  const rows = x.size / dim;
  const out = empty(x.shape, x.dtype);
  x.kernels.softmax(x.data, out.data, rows, dim);
  if (needsGrad(x)) {
    record(out, {
      op: "softmax",
      inputs: [x],
      reads: [out],
      backward: (g) => {
        const gx = empty(x.shape, x.dtype);
        g.kernels.softmaxBackward(out.data, g.data, gx.data, rows, dim);
        accumulateGrad(x, gx, true);
      },
    });
  }
  return out;
}

// ---------------------------------------------------------------- normalisation

function checkNormParam(op: string, x: Tensor, p: Tensor, what: string): number {
  const dim = lastDim(op, x);
  if (p.shape.length !== 1 || p.shape[0] !== dim) {
    throw new Error(`${op}: ${what} ${fmt(p.shape)} must be [${dim}] to match input ${fmt(x.shape)}`);
  }
  return dim;
}

/** LayerNorm over the last dimension: (x − mean)/√(var + eps)·w + b. */
export function layerNorm(x: Tensor, w: Tensor, b: Tensor, eps = 1e-5): Tensor {
  const dim = checkNormParam("layerNorm", x, w, "weight");
  checkNormParam("layerNorm", x, b, "bias");
  sameDtype("layerNorm", x, w, b);
  const rows = x.size / dim;
  const out = empty(x.shape, x.dtype);
  const mean = pool.alloc(x.dtype, rows);
  const rstd = pool.alloc(x.dtype, rows);
  x.kernels.layerNorm(x.data, w.data, b.data, out.data, mean, rstd, rows, dim, eps);
  if (!needsGrad(x, w, b)) {
    pool.release(mean);
    pool.release(rstd);
    return out;
  }
  return record(out, {
    op: "layerNorm",
    inputs: [x, w, b],
    reads: [x, w],
    backward: (g) => {
      const gx = empty(x.shape, x.dtype);
      const gw = empty(w.shape, w.dtype);
      const gb = empty(b.shape, b.dtype);
      g.kernels.layerNormBackward(g.data, x.data, w.data, mean, rstd, gx.data, gw.data, gb.data, rows, dim);
      accumulateGrad(x, gx, true);
      accumulateGrad(w, gw, true);
      accumulateGrad(b, gb, true);
    },
    release: () => {
      pool.release(mean);
      pool.release(rstd);
    },
  });
}

/** RMSNorm over the last dimension: x/√(mean(x²) + eps)·w. */
export function rmsNorm(x: Tensor, w: Tensor, eps = 1e-5): Tensor {
  const dim = checkNormParam("rmsNorm", x, w, "weight");
  sameDtype("rmsNorm", x, w);
  const rows = x.size / dim;
  const out = empty(x.shape, x.dtype);
  const rstd = pool.alloc(x.dtype, rows);
  x.kernels.rmsNorm(x.data, w.data, out.data, rstd, rows, dim, eps);
  if (!needsGrad(x, w)) {
    pool.release(rstd);
    return out;
  }
  return record(out, {
    op: "rmsNorm",
    inputs: [x, w],
    reads: [x, w],
    backward: (g) => {
      const gx = empty(x.shape, x.dtype);
      const gw = empty(w.shape, w.dtype);
      g.kernels.rmsNormBackward(g.data, x.data, w.data, rstd, gx.data, gw.data, rows, dim);
      accumulateGrad(x, gx, true);
      accumulateGrad(w, gw, true);
    },
    release: () => pool.release(rstd),
  });
}

// ---------------------------------------------------------------- embedding

/** Rows of table [vocab, dim] picked by ids; the result has shape [...idsShape, dim]. */
export function embedding(
  table: Tensor,
  ids: Int32Array,
  idsShape: readonly number[] = [ids.length],
): Tensor {
  if (table.shape.length !== 2)
    throw new Error(`embedding: table must be [vocab, dim], got ${fmt(table.shape)}`);
  if (idsShape.reduce((p, d) => p * d, 1) !== ids.length) {
    throw new Error(`embedding: ids shape ${fmt(idsShape)} does not match ${ids.length} ids`);
  }
  const [vocab, dim] = table.shape as [number, number];
  const out = empty([...idsShape, dim], table.dtype);
  if (table.packed) {
    // A packed table: each looked-up row dequantized (there is no gradient to record).
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!(id >= 0 && id < vocab))
        throw new Error(`embedding: id ${id} is outside the table's ${vocab} rows`);
      out.data.set(table.packed.dequantizeRows(id, id + 1), i * dim);
    }
    return out;
  }
  table.kernels.embedding(table.data, ids, out.data, ids.length, dim);
  if (needsGrad(table)) {
    record(out, {
      op: "embedding",
      inputs: [table],
      reads: [],
      backward: (g) => {
        const gt = empty(table.shape, table.dtype);
        g.kernels.embeddingBackward(g.data, ids, gt.data, ids.length, dim, vocab);
        accumulateGrad(table, gt, true);
      },
    });
  }
  return out;
}

// ---------------------------------------------------------------- attention

export interface AttentionOptions {
  heads: number;
  /** Grouped-query attention: fewer key/value heads than query heads (default: heads). */
  kvHeads?: number;
  causal?: boolean;
  /** Rotary position embedding applied to q and k inside the op; positions start at pos0. */
  rope?: { theta: number; pos0?: number };
}

const ropeTables = new Map<string, { cos: FloatArray; sin: FloatArray; maxPos: number }>();

/** cos/sin of pos·θ_i for i < headDim/2, computed in float64 once per (theta, headDim, dtype) and grown as needed. */
export function ropeTable(theta: number, headDim: number, maxPos: number, dtype: "float32" | "float64") {
  const key = `${theta}:${headDim}:${dtype}`;
  const have = ropeTables.get(key);
  if (have && have.maxPos >= maxPos) return have;
  const cap = Math.max(maxPos, 2 * (have?.maxPos ?? 0), 64);
  const half = headDim / 2;
  const cos = dtype === "float32" ? new Float32Array(cap * half) : new Float64Array(cap * half);
  const sin = dtype === "float32" ? new Float32Array(cap * half) : new Float64Array(cap * half);
  for (let i = 0; i < half; i++) {
    const freq = theta ** (-(2 * i) / headDim);
    for (let p = 0; p < cap; p++) {
      cos[p * half + i] = Math.cos(p * freq);
      sin[p * half + i] = Math.sin(p * freq);
    }
  }
  const table = { cos, sin, maxPos: cap };
  ropeTables.set(key, table);
  return table;
}

/**
 * Causal (by default) scaled dot-product attention, fused: q [B, Tq, H·hd], k and v [B, Tk, Hkv·hd]
 * → [B, Tq, H·hd]. Queries are the last Tq of the Tk positions. Only the softmax statistics (B·H·Tq
 * floats) and, with rope, the rotated q and k are kept for backward; probabilities are recomputed.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Tensor {
  const heads = opts.heads;
  const kvHeads = opts.kvHeads ?? heads;
  sameDtype("attention", q, k, v);
  const err = (why: string) =>
    new Error(
      `attention: q ${fmt(q.shape)}, k ${fmt(k.shape)}, v ${fmt(v.shape)} (heads ${heads}, kvHeads ${kvHeads}): ${why}`,
    );
  if (q.shape.length !== 3 || k.shape.length !== 3 || v.shape.length !== 3)
    throw err("expected [batch, time, heads·headDim]");
  if (
    !Number.isInteger(heads) ||
    heads < 1 ||
    !Number.isInteger(kvHeads) ||
    kvHeads < 1 ||
    heads % kvHeads !== 0
  ) {
    throw err("heads must be a positive multiple of kvHeads");
  }
  const [batch, tq, qw] = q.shape as [number, number, number];
  const tk = k.shape[1]!;
  if (qw % heads !== 0) throw err(`width ${qw} is not divisible by ${heads} heads`);
  const headDim = qw / heads;
  if (k.shape[0] !== batch || v.shape[0] !== batch) throw err("batch sizes differ");
  if (k.shape[2] !== kvHeads * headDim || v.shape[2] !== kvHeads * headDim || v.shape[1] !== tk) {
    throw err(`k and v must be [${batch}, Tk, ${kvHeads * headDim}] with the same Tk`);
  }
  if (tq > tk) throw err(`more queries (${tq}) than keys (${tk})`);
  if (opts.rope && headDim % 2 !== 0) throw err(`rope needs an even head dimension, got ${headDim}`);
  const shape: AttentionShape = {
    batch,
    tq,
    tk,
    heads,
    kvHeads,
    headDim,
    scale: 1 / Math.sqrt(headDim),
    causal: opts.causal ?? true,
    // Decided at the forward, like matmul's: the backward recomputes the forward's bf16 scores.
    bf16: q.dtype === "float32" && currentPrecision() === "bf16-mixed",
  };
  const kern = q.kernels;
  let qr = q.data;
  let kr = k.data;
  let table: ReturnType<typeof ropeTable> | null = null;
  let pos0 = 0;
  if (opts.rope) {
    pos0 = opts.rope.pos0 ?? 0;
    // Keys cover positions [pos0, pos0 + tk); queries are the last tq of them.
    table = ropeTable(opts.rope.theta, headDim, pos0 + tk, q.dtype);
    qr = pool.alloc(q.dtype, q.size);
    kr = pool.alloc(k.dtype, k.size);
    kern.rope(q.data, qr, table.cos, table.sin, batch, tq, heads, headDim, pos0 + tk - tq, false);
    kern.rope(k.data, kr, table.cos, table.sin, batch, tk, kvHeads, headDim, pos0, false);
  }
  const out = empty(q.shape, q.dtype);
  const lse = pool.alloc(q.dtype, batch * heads * tq);
  kern.attention(qr, kr, v.data, out.data, lse, shape);
  const releaseSaved = () => {
    pool.release(lse);
    if (table) {
      pool.release(qr);
      pool.release(kr);
    }
  };
  if (!needsGrad(q, k, v)) {
    releaseSaved();
    return out;
  }
  return record(out, {
    op: "attention",
    inputs: [q, k, v],
    // With rope, backward reads its own rotated copies of q and k, not q and k.
    reads: table ? [v, out] : [q, k, v, out],
    backward: (g) => {
      let gq = empty(q.shape, q.dtype);
      let gk = empty(k.shape, k.dtype);
      const gv = empty(v.shape, v.dtype);
      const kb = g.kernels;
      kb.attentionBackward(qr, kr, v.data, out.data, lse, g.data, gq.data, gk.data, gv.data, shape);
      if (table) {
        // The gradient w.r.t. the unrotated input is the inverse rotation of the rotated one.
        const rq = empty(q.shape, q.dtype);
        const rk = empty(k.shape, k.dtype);
        kb.rope(gq.data, rq.data, table.cos, table.sin, batch, tq, heads, headDim, pos0 + tk - tq, true);
        kb.rope(gk.data, rk.data, table.cos, table.sin, batch, tk, kvHeads, headDim, pos0, true);
        gq.dispose();
        gk.dispose();
        gq = rq;
        gk = rk;
      }
      accumulateGrad(q, gq, true);
      accumulateGrad(k, gk, true);
      accumulateGrad(v, gv, true);
    },
    release: releaseSaved,
  });
}

/**
 * Rotary embedding alone (x [B, T, H·hd]), for callers that cache rotated keys (KV-cache decoding). Row
 * (b, i) sits at position pos0 + i, or at positions[b·T + i] when an array is given (several sequences at
 * different positions, decoded together).
 */
export function rope(x: Tensor, heads: number, theta: number, positions: number | Int32Array = 0): Tensor {
  if (x.shape.length !== 3 || x.shape[2]! % heads !== 0 || (x.shape[2]! / heads) % 2 !== 0) {
    throw new Error(
      `rope: ${fmt(x.shape)} must be [batch, time, heads·headDim] with ${heads} heads and an even headDim`,
    );
  }
  const [batch, t, w] = x.shape as [number, number, number];
  const headDim = w / heads;
  let end = 0;
  if (typeof positions === "number") end = positions + t;
  else {
    if (positions.length !== batch * t)
      throw new Error(`rope: ${positions.length} positions for ${fmt(x.shape)} (one per batch·time row)`);
    for (const p of positions) {
      if (p < 0) throw new Error(`rope: positions must be >= 0, got ${p}`);
      if (p + 1 > end) end = p + 1;
    }
  }
  const table = ropeTable(theta, headDim, end, x.dtype);
  const out = empty(x.shape, x.dtype);
  x.kernels.rope(x.data, out.data, table.cos, table.sin, batch, t, heads, headDim, positions, false);
  if (needsGrad(x)) {
    record(out, {
      op: "rope",
      inputs: [x],
      reads: [],
      backward: (g) => {
        const gx = empty(x.shape, x.dtype);
        g.kernels.rope(g.data, gx.data, table.cos, table.sin, batch, t, heads, headDim, positions, true);
        accumulateGrad(x, gx, true);
      },
    });
  }
  return out;
}

export interface CachedAttentionOptions {
  heads: number;
  /** Grouped-query attention (default: heads). */
  kvHeads?: number;
}

/**
 * Causal attention of new positions against per-sequence key/value caches, for inference: q [B, T, H·hd]
 * holds counts[s] rows for sequence s, packed in order (Σ counts = B·T); keys[s] and values[s]
 * [≥ lengths[s], Hkv·hd] hold that sequence's keys, its new positions last. Returns [B, T, H·hd]. Nothing is
 * recorded for backward, so it refuses inputs that need a gradient.
 */
export function attentionCached(
  q: Tensor,
  keys: readonly Tensor[],
  values: readonly Tensor[],
  counts: Int32Array,
  lengths: Int32Array,
  opts: CachedAttentionOptions,
): Tensor {
  const heads = opts.heads;
  const kvHeads = opts.kvHeads ?? heads;
  const err = (why: string) =>
    new Error(
      `attentionCached: q ${fmt(q.shape)}, ${counts.length} sequences (heads ${heads}, kvHeads ${kvHeads}): ${why}`,
    );
  if (needsGrad(q, ...keys, ...values)) throw err("inference only: an input needs a gradient");
  sameDtype("attentionCached", q, ...keys, ...values);
  if (q.shape.length !== 3) throw err("expected q [batch, time, heads·headDim]");
  if (!Number.isInteger(heads) || heads < 1 || !Number.isInteger(kvHeads) || kvHeads < 1 || heads % kvHeads)
    throw err("heads must be a positive multiple of kvHeads");
  const width = q.shape[2]!;
  if (width % heads !== 0) throw err(`width ${width} is not divisible by ${heads} heads`);
  const headDim = width / heads;
  if (keys.length !== counts.length || values.length !== counts.length || lengths.length !== counts.length)
    throw err(`${keys.length} keys, ${values.length} values and ${lengths.length} lengths`);
  let rows = 0;
  for (let s = 0; s < counts.length; s++) {
    const [n, l] = [counts[s]!, lengths[s]!];
    if (n < 0 || l < n) throw err(`sequence ${s} has ${n} new positions but ${l} keys`);
    for (const kv of [keys[s]!, values[s]!]) {
      if (kv.shape[kv.shape.length - 1] !== kvHeads * headDim || kv.size < l * kvHeads * headDim)
        throw err(`sequence ${s}'s cache ${fmt(kv.shape)} must hold ${l} rows of ${kvHeads * headDim}`);
    }
    rows += n;
  }
  if (rows !== q.size / width) throw err(`the counts add up to ${rows} rows, q has ${q.size / width}`);
  const out = empty(q.shape, q.dtype);
  const shape = { heads, kvHeads, headDim, scale: 1 / Math.sqrt(headDim) };
  q.kernels.attentionCached(
    q.data,
    keys.map((k) => k.data),
    values.map((v) => v.data),
    counts,
    lengths,
    out.data,
    shape,
  );
  return out;
}

// ---------------------------------------------------------------- losses and reductions

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (default -1). */
  ignoreIndex?: number;
}

/**
 * Mean cross-entropy of logits [..., vocab] against integer targets (one per row), fused with the
 * log-softmax; rows whose target is ignoreIndex count neither in the sum nor in the mean.
 */
export function crossEntropy(logits: Tensor, targets: Int32Array, opts: CrossEntropyOptions = {}): Tensor {
  const vocab = lastDim("crossEntropy", logits);
  const rows = logits.size / vocab;
  if (targets.length !== rows) {
    throw new Error(
      `crossEntropy: logits ${fmt(logits.shape)} have ${rows} rows but ${targets.length} targets were given`,
    );
  }
  const ignoreIndex = opts.ignoreIndex ?? -1;
  let count = 0;
  for (let i = 0; i < rows; i++) if (targets[i] !== ignoreIndex) count++;
  const kern = logits.kernels;
  const losses = pool.alloc(logits.dtype, rows);
  const lse = pool.alloc(logits.dtype, rows);
  kern.crossEntropy(logits.data, targets, losses, lse, rows, vocab, ignoreIndex);
  const out = empty([], logits.dtype);
  out.data[0] = count === 0 ? 0 : kern.sum(losses, rows) / count;
  pool.release(losses);
  if (!needsGrad(logits)) {
    pool.release(lse);
    return out;
  }
  return record(out, {
    op: "crossEntropy",
    inputs: [logits],
    backward: (g) => {
      const gx = empty(logits.shape, logits.dtype);
      const gScale = count === 0 ? 0 : g.data[0]! / count;
      g.kernels.crossEntropyBackward(logits.data, targets, lse, gx.data, rows, vocab, ignoreIndex, gScale);
      accumulateGrad(logits, gx, true);
    },
    release: () => pool.release(lse),
  });
}

/**
 * The log-probability of each row's target under log-softmax(logits [..., vocab]) → [...], fused like
 * crossEntropy (it is its negation per row); rows whose target is ignoreIndex give 0 and pass no gradient.
 */
export function tokenLogProbs(logits: Tensor, targets: Int32Array, ignoreIndex = -1): Tensor {
  const vocab = lastDim("tokenLogProbs", logits);
  const rows = logits.size / vocab;
  if (targets.length !== rows) {
    throw new Error(
      `tokenLogProbs: logits ${fmt(logits.shape)} have ${rows} rows but ${targets.length} targets were given`,
    );
  }
  const kern = logits.kernels;
  const losses = pool.alloc(logits.dtype, rows);
  const lse = pool.alloc(logits.dtype, rows);
  kern.crossEntropy(logits.data, targets, losses, lse, rows, vocab, ignoreIndex);
  const out = empty(logits.shape.slice(0, -1), logits.dtype);
  kern.scale(losses, -1, out.data, rows);
  pool.release(losses);
  if (!needsGrad(logits)) {
    pool.release(lse);
    return out;
  }
  return record(out, {
    op: "tokenLogProbs",
    inputs: [logits],
    backward: (g) => {
      const gx = empty(logits.shape, logits.dtype);
      g.kernels.tokenLogProbsBackward(logits.data, targets, lse, g.data, gx.data, rows, vocab, ignoreIndex);
      accumulateGrad(logits, gx, true);
    },
    release: () => pool.release(lse),
  });
}

/**
 * Sum over the last dimension: x [..., cols] → [...] (per-sequence sums of token log-probs). Composed as a
 * product with a column of ones, so both directions run on the matmul kernel.
 */
export function sumRows(x: Tensor): Tensor {
  const cols = lastDim("sumRows", x);
  if (cols === 0) throw new Error(`sumRows: ${fmt(x.shape)} has an empty last dimension`);
  const rows = x.size / cols;
  const ones = full([cols, 1], 1, { dtype: x.dtype });
  return reshape(matmul(reshape(x, [rows, cols]), ones), x.shape.slice(0, -1));
}

/** Sum of all elements, as a scalar tensor. */
export function sum(x: Tensor): Tensor {
  return reduceAll("sum", x, 1);
}

/** Mean of all elements, as a scalar tensor. */
export function mean(x: Tensor): Tensor {
  return reduceAll("mean", x, x.size === 0 ? 0 : 1 / x.size);
}

function reduceAll(op: string, x: Tensor, factor: number): Tensor {
  const out = empty([], x.dtype);
  out.data[0] = x.kernels.sum(x.data, x.size) * factor;
  if (needsGrad(x)) {
    record(out, {
      op,
      inputs: [x],
      backward: (g) => {
        const gx = empty(x.shape, x.dtype);
        g.kernels.fill(gx.data, g.data[0]! * factor, x.size);
        accumulateGrad(x, gx, true);
      },
    });
  }
  return out;
}

/** Inverted dropout with a counter-based mask: the same (seed, p) drops the same elements on every backend. */
export function dropout(x: Tensor, p: number, seed: number): Tensor {
  if (!(p >= 0 && p < 1)) throw new Error(`dropout: p must be in [0, 1), got ${p}`);
  if (p === 0) return x;
  const out = empty(x.shape, x.dtype);
  x.kernels.dropout(x.data, out.data, x.size, p, seed >>> 0);
  if (needsGrad(x)) {
    record(out, {
      op: "dropout",
      inputs: [x],
      reads: [],
      backward: (g) => {
        const gx = empty(x.shape, x.dtype);
        g.kernels.dropoutBackward(g.data, gx.data, x.size, p, seed >>> 0);
        accumulateGrad(x, gx, true);
      },
    });
  }
  return out;
}
