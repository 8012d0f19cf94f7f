// Muon (MomentUm Orthogonalized by Newton–Schulz), after Keller Jordan's muon.py
// (github.com/KellerJordan/Muon, `muon_update` and `zeropower_via_newtonschulz5`), for 2-D hidden weights:
//   m ← β·m + (1 − β)·g                      (momentum.lerp_(g, 1 − β))
//   u ← (1 − β)·g + β·m                      (Nesterov: g.lerp_(m, β))
//   O ← NS5(u / (‖u‖_F + 1e-7))              (five quintic Newton–Schulz steps, (a, b, c) below)
//   p ← p·(1 − lr·wd) − lr·√max(1, rows/cols)·O
// Keller runs Newton–Schulz in bfloat16 on a GPU; here it runs on the backend's matmul kernel in float32, or
// with `precision: "bf16"` on its bf16 product (operands rounded, float32 accumulation and iterate), one call
// per product for all matrices of one shape together (batched), on the smaller Gram side:
// wide X [r, c] (r ≤ c): A = X·Xᵀ, X ← a·X + (b·A + c·A²)·X; tall X: the same on Xᵀ, written without
// transposing as A = Xᵀ·X, X ← a·X + X·(b·A + c·A²)ᵀ.
import type { Backend, FloatArray } from "../backend/index.js";
import { inPhase } from "../backend/index.js";
import type { Tensor } from "../tensor/index.js";

export interface MuonConfig {
  lr: number;
  momentum: number;
  weightDecay: number;
  /** Newton–Schulz's products: fp32, or bf16 operands with fp32 accumulation (the iterate stays fp32). */
  precision: "fp32" | "bf16";
}

export const muonDefaults: MuonConfig = { lr: 0.02, momentum: 0.95, weightDecay: 0, precision: "fp32" };

/** The quintic's coefficients (chosen for the largest slope at zero) and its step count. */
export const NS_COEFFICIENTS = [3.4445, -4.775, 2.0315] as const;
export const NS_STEPS = 5;
const NS_EPS = 1e-7;

/** Scratch for Newton–Schulz on `batch` matrices [rows, cols]: two iterates and three Gram-side matrices. */
export class NewtonSchulzWork {
  readonly side: number;
  readonly x: Float32Array;
  readonly y: Float32Array;
  readonly gram: Float32Array;
  readonly scaledGram: Float32Array;
  readonly poly: Float32Array;

  constructor(
    readonly batch: number,
    readonly rows: number,
    readonly cols: number,
  ) {
    this.side = Math.min(rows, cols);
    this.x = new Float32Array(batch * rows * cols);
    this.y = new Float32Array(batch * rows * cols);
    const g = batch * this.side * this.side;
    this.gram = new Float32Array(g);
    this.scaledGram = new Float32Array(g);
    this.poly = new Float32Array(g);
  }
}

/**
 * Orthogonalises each of the `work.batch` matrices in work.x, approximately: Frobenius normalisation, then
 * `steps` Newton–Schulz iterations, which move every singular value into roughly [0.5, 1.5] rather than
 * exactly to 1 (Keller Jordan's note: this does not hurt training). Overwrites work.x and work.y; returns
 * the one that holds the result.
 */
export function newtonSchulz(
  k: Backend,
  work: NewtonSchulzWork,
  steps = NS_STEPS,
  precision: MuonConfig["precision"] = "fp32",
): Float32Array {
  const { batch, rows, cols, side } = work;
  const product: Backend["matmul"] = (x, y, z, args) =>
    precision === "bf16" ? k.matmulBf16(x, y, z, args) : k.matmul(x, y, z, args);
  const size = rows * cols;
  const [a, b, c] = NS_COEFFICIENTS;
  let x = work.x;
  let y = work.y;
  for (let i = 0; i < batch; i++) {
    const xi = x.subarray(i * size, (i + 1) * size);
    const norm = Math.sqrt(k.sumSquares(xi, size));
    k.scale(xi, 1 / (norm + NS_EPS), xi, size);
  }
  const wide = rows <= cols;
  const n = batch * size;
  const g = batch * side * side;
  // A = X·Xᵀ is symmetric: its product computes the upper triangle only (the same bits, half the work).
  // (c·A)·A is not quite symmetric, since c·A[i,k] and c·A[k,j] round differently: it stays a full
  // product, so Newton–Schulz gives the same bits as before the symmetric products existed.
  const gramSide = {
    batch,
    m: side,
    n: side,
    strideA: size,
    strideB: size,
    accumulate: false,
    symmetric: true,
  };
  const square = { batch, m: side, n: side, k: side, transA: false, transB: false };
  const squareStride = { strideA: side * side, strideB: side * side };
  for (let s = 0; s < steps; s++) {
    // A = X·Xᵀ (wide) or Xᵀ·X (tall): [side, side].
    if (wide) product(x, x, work.gram, { ...gramSide, k: cols, transA: false, transB: true });
    else product(x, x, work.gram, { ...gramSide, k: rows, transA: true, transB: false });
    // B = b·A + (c·A)·A.
    k.scale(work.gram, c, work.scaledGram, g);
    k.scale(work.gram, b, work.poly, g);
    product(work.scaledGram, work.gram, work.poly, { ...square, ...squareStride, accumulate: true });
    // Y = a·X + B·X (wide) or a·X + X·Bᵀ (tall).
    k.scale(x, a, y, n);
    if (wide) {
      product(work.poly, x, y, {
        batch,
        m: rows,
        n: cols,
        k: rows,
        transA: false,
        transB: false,
        strideA: side * side,
        strideB: size,
        accumulate: true,
      });
    } else {
      product(x, work.poly, y, {
        batch,
        m: rows,
        n: cols,
        k: cols,
        transA: false,
        transB: true,
        strideA: size,
        strideB: side * side,
        accumulate: true,
      });
    }
    [x, y] = [y, x];
  }
  return x;
}

export interface MuonState {
  step: number;
  momentum: Float32Array[];
}

/** The parameters of one shape, updated together (one batched matmul per Newton–Schulz product). */
interface ShapeGroup {
  indices: number[];
  work: NewtonSchulzWork;
}

export class Muon {
  readonly config: MuonConfig;
  private readonly list: Tensor[];
  private readonly momentum: Float32Array[];
  private readonly shapes: ShapeGroup[] = [];
  private zeros: Float32Array | null = null;
  private t = 0;

  constructor(params: Tensor[], config: Partial<MuonConfig> = {}) {
    this.config = { ...muonDefaults, ...config };
    this.list = params;
    const byShape = new Map<string, number[]>();
    params.forEach((p, i) => {
      if (p.dtype !== "float32") throw new Error(`Muon: parameter ${p} must be float32`);
      if (p.shape.length !== 2)
        throw new Error(`Muon: parameter ${p} is not a matrix (Muon is for 2-D weights)`);
      const key = p.shape.join("x");
      byShape.set(key, [...(byShape.get(key) ?? []), i]);
    });
    this.momentum = params.map((p) => new Float32Array(p.size));
    for (const indices of byShape.values()) {
      const [rows, cols] = params[indices[0]!]!.shape as [number, number];
      this.shapes.push({ indices, work: new NewtonSchulzWork(indices.length, rows, cols) });
    }
  }

  params(): Tensor[] {
    return this.list;
  }

  get step(): number {
    return this.t;
  }

  /** One update of every parameter; a parameter without a gradient counts as a zero gradient (as muon.py). */
  update(lr = this.config.lr): void {
    inPhase("optimizer", () => this.applyUpdate(lr));
  }

  private applyUpdate(lr: number): void {
    this.t++;
    const { momentum: beta, weightDecay } = this.config;
    for (const { indices, work } of this.shapes) {
      const k = this.list[indices[0]!]!.kernels;
      const size = work.rows * work.cols;
      // The Nesterov update of each matrix goes into its slot of work.x; work.y is scratch until NS runs.
      indices.forEach((idx, slot) => {
        const p = this.list[idx]!;
        const m = this.momentum[idx]!;
        const g = p.grad ? p.grad.data : this.zeroGradient(size);
        const u = work.x.subarray(slot * size, (slot + 1) * size);
        const t = work.y.subarray(slot * size, (slot + 1) * size);
        k.scale(g, 1 - beta, t, size); // (1 − β)·g
        k.scale(m, beta, m, size);
        k.addInto(m, t, size); // m = β·m + (1 − β)·g
        k.scale(m, beta, u, size);
        k.addInto(u, t, size); // u = (1 − β)·g + β·m
      });
      const o = newtonSchulz(k, work, NS_STEPS, this.config.precision);
      const shapeScale = Math.sqrt(Math.max(1, work.rows / work.cols));
      indices.forEach((idx, slot) => {
        const p = this.list[idx]!;
        const oi = o.subarray(slot * size, (slot + 1) * size);
        if (weightDecay !== 0) k.scale(p.data, 1 - lr * weightDecay, p.data, size);
        k.scale(oi, -lr * shapeScale, oi, size);
        k.addInto(p.data, oi, size);
      });
    }
  }

  private zeroGradient(size: number): FloatArray {
    if (!this.zeros || this.zeros.length < size) this.zeros = new Float32Array(size);
    return this.zeros.subarray(0, size);
  }

  state(): MuonState {
    return { step: this.t, momentum: this.momentum };
  }

  loadState(state: MuonState): void {
    if (state.momentum.length !== this.momentum.length) {
      throw new Error(
        `Muon.loadState: state has ${state.momentum.length} momentum buffers, optimizer has ${this.momentum.length} parameters`,
      );
    }
    state.momentum.forEach((m, i) => {
      if (m.length !== this.momentum[i]!.length) {
        throw new Error(
          `Muon.loadState: momentum ${i} has ${m.length} values, expected ${this.momentum[i]!.length}`,
        );
      }
    });
    state.momentum.forEach((m, i) => {
      this.momentum[i]!.set(m);
    });
    this.t = state.step;
  }
}
