// Tensor and reverse-mode autodiff (micrograd-style): every op that needs a gradient records a Node with
// its inputs and a backward closure; backward() walks the nodes in reverse topological order.
//
// Memory: tensor storage comes from the buffer pool. `tidy(fn)` gives back every tensor created inside
// fn except what fn returns and what was `keep()`-ed (parameters, their gradients), so a training step
// wrapped in tidy reuses the same buffers every step instead of churning the garbage collector. Within a
// step, `releaseStorage(t)` gives back earlier what no recorded backward reads (each node says what it
// reads), and keeps a bf16 copy of what backward reads only rounded to bf16 (bf16-mixed products).
import type { Backend, FloatArray, PackedMatrix } from "../backend/backend.js";
import { backend, inPhase, reference } from "../backend/index.js";
import { type DType, pool } from "./pool.js";

export interface Node {
  op: string;
  inputs: Tensor[];
  /** Adds this node's contribution to its inputs' gradients, given the gradient of its output. */
  backward(gOut: Tensor): void;
  /** Returns scratch buffers the node saved for backward (called once backward has used them). */
  release?(): void;
  /** The tensors whose float32 values backward reads; by default every input and the output. */
  reads?: Tensor[];
  /** Tensors backward reads only rounded to bf16 (the operands of bf16-mixed products). */
  readsBf16?: Tensor[];
}

export class Tensor {
  readonly shape: readonly number[];
  readonly size: number;
  readonly dtype: DType;
  data: FloatArray;
  requiresGrad: boolean;
  grad: Tensor | null = null;
  node: Node | null = null;
  /** A view shares its base's storage (reshape); only the base gives the storage back. */
  readonly base: Tensor | null;
  /** Kept tensors are never given back by tidy(); parameters and their gradients are kept. */
  kept = false;
  disposed = false;
  name?: string;
  /** Recorded nodes whose backward reads this storage as float32 (counted on the storage's base). */
  readers = 0;
  /** Recorded nodes whose backward reads this storage only rounded to bf16. */
  bf16Readers = 0;
  /** After releaseStorage: the values rounded to bf16 (when a bf16 reader needs them), else null. */
  bf16: Uint16Array | null = null;
  /**
   * A weight kept in a ggml type (packedParameter): then `data` is empty and only linear() and embedding()
   * read the tensor, through the packed matrix.
   */
  readonly packed: PackedMatrix | null;

  constructor(
    data: FloatArray,
    shape: readonly number[],
    requiresGrad = false,
    base: Tensor | null = null,
    packed: PackedMatrix | null = null,
  ) {
    const size = shapeSize(shape);
    if (packed ? data.length !== 0 : data.length !== size) {
      throw new Error(`tensor: shape [${shape.join(",")}] needs ${size} values, got ${data.length}`);
    }
    this.data = data;
    this.shape = shape.slice();
    this.size = size;
    this.dtype = data instanceof Float64Array ? "float64" : "float32";
    this.requiresGrad = requiresGrad;
    this.base = base;
    this.packed = packed;
    track(this);
  }

  /** The kernels for this tensor: the active backend for float32, the reference one for float64. */
  get kernels(): Backend {
    return this.dtype === "float64" ? reference : backend();
  }

  item(): number {
    if (this.size !== 1) throw new Error(`item: tensor of shape [${this.shape.join(",")}] is not a scalar`);
    return this.data[0]!;
  }

  toArray(): number[] {
    return Array.from(this.data);
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(",")}]${this.name ? `, ${this.name}` : ""})`;
  }

  /** Reverse-mode pass from this tensor; a scalar gets gradient 1 unless `grad` is given. */
  backward(grad?: Tensor): void {
    backward(this, grad);
  }

  /** Gives the storage back to the pool; the tensor must not be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (!this.base && !this.packed) pool.release(this.data);
    if (this.bf16) pool.release(this.bf16);
    this.data = EMPTY;
    this.bf16 = null;
    this.node = null;
  }

  /** The tensor that owns this one's storage (itself, unless it is a view). */
  get storage(): Tensor {
    let t: Tensor = this;
    while (t.base) t = t.base;
    return t;
  }
}

const EMPTY = new Float32Array(0);

export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0)
      throw new Error(`tensor: invalid dimension ${d} in shape [${shape.join(",")}]`);
    n *= d;
  }
  return n;
}

// ---------------------------------------------------------------- creation

export interface TensorOptions {
  dtype?: DType;
  requiresGrad?: boolean;
}

/** A tensor whose storage comes from the pool; contents are undefined until written. */
export function empty(shape: readonly number[], dtype: DType = "float32"): Tensor {
  return new Tensor(pool.alloc(dtype, shapeSize(shape)), shape);
}

export function zeros(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  const t = empty(shape, opts.dtype);
  t.data.fill(0);
  t.requiresGrad = opts.requiresGrad ?? false;
  return t;
}

export function full(shape: readonly number[], value: number, opts: TensorOptions = {}): Tensor {
  const t = empty(shape, opts.dtype);
  t.data.fill(value);
  t.requiresGrad = opts.requiresGrad ?? false;
  return t;
}

/** A tensor holding a copy of `values`. */
export function tensor(
  values: ArrayLike<number>,
  shape?: readonly number[],
  opts: TensorOptions = {},
): Tensor {
  const t = empty(shape ?? [values.length], opts.dtype);
  if (values.length !== t.size) {
    throw new Error(`tensor: shape [${t.shape.join(",")}] needs ${t.size} values, got ${values.length}`);
  }
  t.data.set(values);
  t.requiresGrad = opts.requiresGrad ?? false;
  return t;
}

/** A trainable leaf: requires grad and survives every tidy() scope. */
export function parameter(values: FloatArray, shape: readonly number[], name?: string): Tensor {
  const t = new Tensor(values, shape, true);
  t.kept = true;
  if (name) t.name = name;
  return t;
}

/**
 * A [rows, cols] weight kept in its ggml type, for inference: linear() multiplies it with the matmulQuant
 * kernel and embedding() dequantizes the rows it looks up; it holds no float32 copy and takes no gradient.
 */
export function packedParameter(packed: PackedMatrix, name?: string): Tensor {
  const t = new Tensor(new Float32Array(0), [packed.rows, packed.cols], false, null, packed);
  t.kept = true;
  if (name) t.name = name;
  return t;
}

// ---------------------------------------------------------------- grad mode

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording the graph (inference, evaluation, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** True when an op on these inputs must record a node. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t?.requiresGrad) return true;
  return false;
}

/** Attaches a node to an op's output (call only when needsGrad()). */
export function record(out: Tensor, node: Node): Tensor {
  out.requiresGrad = true;
  out.node = node;
  for (const t of node.reads ?? [...node.inputs, out]) t.storage.readers++;
  for (const t of node.readsBf16 ?? []) t.storage.bf16Readers++;
  return out;
}

/**
 * Gives t's storage back to the pool before the step ends, for a caller that will not read t again, nor any
 * other view of its storage (the gradient still flows through t; only its values go). Storage a recorded
 * backward reads stays; storage it reads only rounded to bf16 shrinks to a bf16 copy (half the bytes). Kept
 * tensors are left alone; hooks' and caches' tensors are the caller's to spare, since only it knows who
 * else holds t. Reading released values is an error the native kernels catch (they check every length).
 */
export function releaseStorage(t: Tensor): void {
  const s = t.storage;
  if (s.kept || s.packed || s.disposed || s.data === EMPTY || s.readers > 0) return;
  if (s.bf16Readers > 0) {
    if (s.dtype !== "float32") return;
    s.bf16 = pool.allocBf16(s.size);
    backend().toBf16(s.data as Float32Array, s.bf16, s.size);
  }
  pool.release(s.data);
  s.data = EMPTY;
}

/** t's values for a bf16 reader (a matmulBf16 operand): its storage, or, once released, its bf16 copy. */
export function bf16Source(t: Tensor): FloatArray | Uint16Array {
  return t.storage.bf16 ?? t.data;
}

// ---------------------------------------------------------------- scopes

const scopes: Tensor[][] = [];

function track(t: Tensor): void {
  scopes[scopes.length - 1]?.push(t);
}

/** Marks a tensor (and the storage it views) to survive every enclosing tidy(). */
export function keep<T extends Tensor>(t: T): T {
  t.kept = true;
  if (t.base) keep(t.base);
  return t;
}

/**
 * Runs fn and disposes every tensor it created, except kept ones and those in its result
 * (a tensor, or an array/object of tensors), which move to the enclosing scope.
 */
export function tidy<T>(fn: () => T): T {
  scopes.push([]);
  let result: T | undefined;
  let created: Tensor[] = [];
  try {
    result = fn();
  } finally {
    created = scopes.pop()!;
  }
  const survivors = new Set<Tensor>();
  collect(result, survivors);
  for (const t of [...survivors]) for (let b = t.base; b; b = b.base) survivors.add(b);
  for (const t of created) {
    if (t.kept) continue;
    if (survivors.has(t)) track(t);
    else t.dispose();
  }
  return result as T;
}

function collect(value: unknown, into: Set<Tensor>): void {
  if (value instanceof Tensor) into.add(value);
  else if (Array.isArray(value)) for (const v of value) collect(v, into);
  else if (value && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, into);
  }
}

// ---------------------------------------------------------------- backward

/**
 * Adds `g` to t.grad. `fresh` says g was allocated for t alone, so a first gradient can be adopted
 * without a copy; a shared one (passed through unchanged by add/reshape) is copied.
 */
export function accumulateGrad(t: Tensor, g: Tensor, fresh: boolean): void {
  if (!t.requiresGrad) {
    if (fresh) g.dispose();
    return;
  }
  if (t.grad === null) {
    let own = g;
    if (!fresh || g.base) {
      own = empty(t.shape, t.dtype);
      own.data.set(g.data);
    } else if (g.shape.length !== t.shape.length || g.shape.some((d, i) => d !== t.shape[i])) {
      own = new Tensor(g.data, t.shape, false, g);
    }
    if (!t.node) keep(own);
    t.grad = own;
  } else {
    t.kernels.addInto(t.grad.data, g.data, t.size);
    if (fresh) g.dispose();
  }
}

export function backward(root: Tensor, grad?: Tensor): void {
  inPhase("backward", () => runBackward(root, grad));
}

function runBackward(root: Tensor, grad?: Tensor): void {
  if (!root.requiresGrad) throw new Error(`backward: ${root} does not require grad`);
  if (!grad && root.size !== 1) {
    throw new Error(`backward: ${root} is not a scalar; pass the output gradient explicitly`);
  }
  const order = topoSort(root);
  const seed = grad ?? full(root.shape, 1, { dtype: root.dtype });
  accumulateGrad(root, seed, !grad);
  for (let i = order.length - 1; i >= 0; i--) {
    const t = order[i]!;
    const node = t.node!;
    const g = t.grad;
    if (g) node.backward(g);
    node.release?.();
    // The graph is single-use: drop the link, and the intermediate gradient once it has flowed on.
    t.node = null;
    if (g && t !== root) {
      t.grad = null;
      g.dispose();
    }
  }
}

/** Non-leaf tensors reachable from root, inputs before outputs. */
function topoSort(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [t, next] = top;
    const inputs = t.node?.inputs ?? [];
    if (next < inputs.length) {
      top[1]++;
      const child = inputs[next]!;
      if (!seen.has(child) && child.node) {
        seen.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      if (t.node) order.push(t);
    }
  }
  return order;
}
