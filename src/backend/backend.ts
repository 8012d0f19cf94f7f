// The kernel contract. Every op in src/tensor is written once against this interface; each backend
// (native C++ addon, plain-TypeScript reference) implements every kernel with the same semantics.
//
// Conventions, shared by all kernels:
// - Arrays are contiguous row-major. Shapes are passed as plain integers.
// - Outputs are fully overwritten (buffers come dirty from the pool) unless a kernel says it accumulates.
// - Backward kernels write (not add) the input gradients; the autodiff layer accumulates.
// - The reference backend also accepts Float64Array (for float64 gradient checks); native is float32 only.
// - Reductions that return a number accumulate in float64.

export type FloatArray = Float32Array | Float64Array;

export interface MatmulArgs {
  /** Number of independent products. */
  batch: number;
  m: number;
  n: number;
  k: number;
  /** A is stored [k, m] (per batch) and used transposed. Otherwise [m, k]. */
  transA: boolean;
  /** B is stored [n, k] (per batch) and used transposed (the nn.Linear weight layout). Otherwise [k, n]. */
  transB: boolean;
  /** Element offset between consecutive batch items of A / B; 0 broadcasts one matrix to every batch item. */
  strideA: number;
  strideB: number;
  /** C += A·B instead of C = A·B. C is always [batch, m, n], contiguous. */
  accumulate: boolean;
  /**
   * C is symmetric (m == n): X·Xᵀ, or a product of commuting symmetric matrices such as A·A. Only the upper
   * triangle is computed and mirrored, about half the work; where C is exactly symmetric the result is the
   * full product's bit for bit. The caller vouches for the symmetry (Newton–Schulz's Gram products).
   */
  symmetric?: boolean;
}

export interface AttentionShape {
  batch: number;
  /** Query length and key length; queries are the last `tq` positions of the `tk` keys (tq <= tk). */
  tq: number;
  tk: number;
  heads: number;
  /** Key/value heads; `heads` is a multiple of it (query head h reads kv head floor(h / (heads / kvHeads))). */
  kvHeads: number;
  headDim: number;
  /** Score scale, usually 1/sqrt(headDim). */
  scale: number;
  /** Query i (0-based within tq) sees keys j <= i + (tk - tq). Without it every query sees every key. */
  causal: boolean;
  /**
   * bf16 mixed precision: the score products q·kᵀ (forward and backward) and dO·vᵀ, the forward's p·v and the
   * backward's gradient products (on its per-kv-head schedule) take bf16-rounded operands with float32
   * accumulation; softmax, lse and D = dO·O stay float32.
   * Honoured by the native kernels where the CPU has AVX-512 BF16 and headDim is 16, 32, 48 or 64; elsewhere
   * (and on the reference backend) attention runs in float32.
   */
  bf16?: boolean;
}

/** Attention against per-sequence KV caches (attentionCached): the head layout of every sequence. */
export interface CachedAttentionShape {
  heads: number;
  kvHeads: number;
  headDim: number;
  scale: number;
}

export interface AdamWArgs {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1 - beta1^t and 1 - beta2^t for the current step t (computed in float64 by the caller). */
  biasCorrection1: number;
  biasCorrection2: number;
}

/** The ggml types a packed weight may hold (their ggml_type ids in GGML_TYPE_IDS). */
export type PackedType =
  | "F16"
  | "BF16"
  | "Q4_0"
  | "Q4_1"
  | "Q5_0"
  | "Q5_1"
  | "Q8_0"
  | "Q4_K"
  | "Q5_K"
  | "Q6_K";

export const GGML_TYPE_IDS = {
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  BF16: 30,
} as const satisfies Record<PackedType, number>;

/**
 * A weight matrix [rows, cols] kept in a ggml type: the bytes of a GGUF tensor, row after row, each row
 * a whole number of the type's blocks. It carries its own dequantizer (the codecs live in src/io).
 */
export interface PackedMatrix {
  readonly type: PackedType;
  readonly rows: number;
  readonly cols: number;
  readonly bytes: Uint8Array;
  /** Rows r0 .. r1 − 1 as float32, exactly as ggml dequantizes them: [(r1 − r0)·cols]. */
  dequantizeRows(r0: number, r1: number): Float32Array;
}

export interface Backend {
  readonly name: "native" | "reference";
  /** Threads the backend uses (1 for reference). */
  threads(): number;

  // --- products ---
  /** C = op(A)·op(B) per batch item; see MatmulArgs. */
  matmul(a: FloatArray, b: FloatArray, c: FloatArray, args: MatmulArgs): void;
  /**
   * The same product with op(A) and op(B) rounded to bf16 (nearest even) and float32 accumulation: bf16 mixed
   * precision's products. Native: the AVX-512 BF16 GEMM where the CPU has it, else rounded copies multiplied
   * in float32 (float32 denormal inputs count as zero, as vcvtne2ps2bf16 makes them); reference: float64.
   * Either operand may come as bf16 bits (a Uint16Array, e.g. a released activation's bf16 copy): the same
   * product, with nothing left to round.
   */
  matmulBf16(a: FloatArray | Uint16Array, b: FloatArray | Uint16Array, c: FloatArray, args: MatmulArgs): void;
  /**
   * out[m, rows] = x[m, cols]·wᵀ with w packed (the nn.Linear layout). Native: with m ≤ 16 the rows of x
   * are quantized to 8 bits per block of 32 (ggml's Q8_0 rule) and multiplied in int8 (F16/BF16 weights: in
   * float32, x unquantized); with more rows, tiles of w are dequantized and multiplied in float32.
   * Reference: w dequantized, products in float64.
   */
  matmulQuant(x: FloatArray, w: PackedMatrix, out: FloatArray, m: number): void;

  // --- elementwise (n = out length; b broadcasts over the trailing bn elements: out[i] = a[i] ∘ b[i % bn]) ---
  add(a: FloatArray, b: FloatArray, out: FloatArray, n: number, bn: number): void;
  mul(a: FloatArray, b: FloatArray, out: FloatArray, n: number, bn: number): void;
  /** out = a * s */
  scale(a: FloatArray, s: number, out: FloatArray, n: number): void;
  /** dst += src */
  addInto(dst: FloatArray, src: FloatArray, n: number): void;
  fill(dst: FloatArray, value: number, n: number): void;
  /** dst = bf16 bits of src, rounded to nearest even (NaN stays NaN): a released activation's bf16 copy. */
  toBf16(src: Float32Array, dst: Uint16Array, n: number): void;
  /** out[c] = Σ_r x[r, c] for x [rows, cols] (the gradient of a broadcast add). */
  sumRows(x: FloatArray, out: FloatArray, rows: number, cols: number): void;

  // --- reductions ---
  sum(x: FloatArray, n: number): number;
  sumSquares(x: FloatArray, n: number): number;

  // --- embedding: out[i, :] = table[ids[i], :]; backward: gTable = 0, gTable[ids[i], :] += gOut[i, :] ---
  embedding(table: FloatArray, ids: Int32Array, out: FloatArray, n: number, dim: number): void;
  embeddingBackward(
    gOut: FloatArray,
    ids: Int32Array,
    gTable: FloatArray,
    n: number,
    dim: number,
    vocab: number,
  ): void;

  // --- normalisation over the last dimension of x [rows, dim] ---
  /** y = (x - mean) * rstd * w + b; saves mean and rstd [rows]. */
  layerNorm(
    x: FloatArray,
    w: FloatArray,
    b: FloatArray,
    out: FloatArray,
    mean: FloatArray,
    rstd: FloatArray,
    rows: number,
    dim: number,
    eps: number,
  ): void;
  layerNormBackward(
    gOut: FloatArray,
    x: FloatArray,
    w: FloatArray,
    mean: FloatArray,
    rstd: FloatArray,
    gx: FloatArray,
    gw: FloatArray,
    gb: FloatArray,
    rows: number,
    dim: number,
  ): void;
  /** y = x * rstd * w with rstd = 1/sqrt(mean(x²) + eps); saves rstd [rows]. */
  rmsNorm(
    x: FloatArray,
    w: FloatArray,
    out: FloatArray,
    rstd: FloatArray,
    rows: number,
    dim: number,
    eps: number,
  ): void;
  rmsNormBackward(
    gOut: FloatArray,
    x: FloatArray,
    w: FloatArray,
    rstd: FloatArray,
    gx: FloatArray,
    gw: FloatArray,
    rows: number,
    dim: number,
  ): void;

  // --- activations (n elements); backward takes the forward input x ---
  /** GELU, tanh form: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
  gelu(x: FloatArray, out: FloatArray, n: number): void;
  geluBackward(x: FloatArray, gOut: FloatArray, gx: FloatArray, n: number): void;
  /** SiLU: x·σ(x). */
  silu(x: FloatArray, out: FloatArray, n: number): void;
  siluBackward(x: FloatArray, gOut: FloatArray, gx: FloatArray, n: number): void;
  /** ReLU²: max(x, 0)². */
  relu2(x: FloatArray, out: FloatArray, n: number): void;
  relu2Backward(x: FloatArray, gOut: FloatArray, gx: FloatArray, n: number): void;
  /** Soft-cap: cap·tanh(x/cap) (cap > 0). */
  softcap(x: FloatArray, out: FloatArray, n: number, cap: number): void;
  softcapBackward(x: FloatArray, gOut: FloatArray, gx: FloatArray, n: number, cap: number): void;
  /** exp(x); the gradient is gOut·exp(x), a mul of the saved output (no backward kernel). */
  exp(x: FloatArray, out: FloatArray, n: number): void;
  /** log σ(x) = min(x, 0) − log(1 + e^−|x|), finite for any finite x. */
  logSigmoid(x: FloatArray, out: FloatArray, n: number): void;
  /** gx = gOut·σ(−x). */
  logSigmoidBackward(x: FloatArray, gOut: FloatArray, gx: FloatArray, n: number): void;
  /** min(max(x, lo), hi) (lo ≤ hi; either may be ±Infinity). */
  clamp(x: FloatArray, out: FloatArray, n: number, lo: number, hi: number): void;
  /** gx = gOut where lo ≤ x ≤ hi, else 0 (PyTorch's clamp: the bounds themselves pass the gradient). */
  clampBackward(x: FloatArray, gOut: FloatArray, gx: FloatArray, n: number, lo: number, hi: number): void;
  /** out = min(a, b) elementwise (same length). */
  minimum(a: FloatArray, b: FloatArray, out: FloatArray, n: number): void;
  /** ga = gOut where a < b, gb = gOut where b < a; a tie gives each gOut/2 (PyTorch's torch.minimum). */
  minimumBackward(
    a: FloatArray,
    b: FloatArray,
    gOut: FloatArray,
    ga: FloatArray,
    gb: FloatArray,
    n: number,
  ): void;
  /** SwiGLU: silu(gate)·up. */
  swiglu(gate: FloatArray, up: FloatArray, out: FloatArray, n: number): void;
  swigluBackward(
    gate: FloatArray,
    up: FloatArray,
    gOut: FloatArray,
    gGate: FloatArray,
    gUp: FloatArray,
    n: number,
  ): void;

  // --- softmax over the last dimension of x [rows, dim]; backward takes the output y ---
  softmax(x: FloatArray, out: FloatArray, rows: number, dim: number): void;
  softmaxBackward(y: FloatArray, gOut: FloatArray, gx: FloatArray, rows: number, dim: number): void;

  // --- rotary embedding, half-split (GPT-NeoX / Hugging Face) convention ---
  /**
   * x [batch, t, heads, headDim]; row (b, i) sits at position `positions` + i, or, when `positions` is an
   * array, at positions[b·t + i] (sequences at different positions decoded together). cos/sin are tables
   * [maxPos, headDim/2]. Pair (i, i + headDim/2) is rotated by angle pos·θ_i. `inverse` rotates by −angle
   * (the backward pass).
   */
  rope(
    x: FloatArray,
    out: FloatArray,
    cos: FloatArray,
    sin: FloatArray,
    batch: number,
    t: number,
    heads: number,
    headDim: number,
    positions: number | Int32Array,
    inverse: boolean,
  ): void;

  // --- attention: q [batch, tq, heads, hd], k/v [batch, tk, kvHeads, hd], out [batch, tq, heads, hd] ---
  /** Softmax(q·kᵀ·scale)·v, never materialising more than one score row per thread; saves lse [batch, heads, tq]. */
  attention(
    q: FloatArray,
    k: FloatArray,
    v: FloatArray,
    out: FloatArray,
    lse: FloatArray,
    shape: AttentionShape,
  ): void;
  /** Recomputes the probabilities from lse (flash-attention style); writes gq, gk, gv. */
  attentionBackward(
    q: FloatArray,
    k: FloatArray,
    v: FloatArray,
    out: FloatArray,
    lse: FloatArray,
    gOut: FloatArray,
    gq: FloatArray,
    gk: FloatArray,
    gv: FloatArray,
    shape: AttentionShape,
  ): void;

  /**
   * Inference only (no lse, no backward): new positions of several sequences against their own key/value
   * caches. Sequence s has counts[s] query rows, packed sequence after sequence in q and out
   * [Σ counts, heads, hd], and lengths[s] ≥ counts[s] keys in keys[s] / values[s] [≥ lengths[s], kvHeads, hd],
   * the new positions last: its query i sees keys j ≤ lengths[s] − counts[s] + i.
   */
  attentionCached(
    q: FloatArray,
    keys: readonly FloatArray[],
    values: readonly FloatArray[],
    counts: Int32Array,
    lengths: Int32Array,
    out: FloatArray,
    shape: CachedAttentionShape,
  ): void;

  // --- fused log-softmax + cross-entropy over logits [rows, vocab] ---
  /** loss[r] = lse_r − logits[r, target_r] (0 where target == ignoreIndex); saves lse [rows]. */
  crossEntropy(
    logits: FloatArray,
    targets: Int32Array,
    loss: FloatArray,
    lse: FloatArray,
    rows: number,
    vocab: number,
    ignoreIndex: number,
  ): void;
  /** gx[r, :] = (softmax(logits[r]) − onehot(target_r))·gScale, and 0 for ignored rows. */
  crossEntropyBackward(
    logits: FloatArray,
    targets: Int32Array,
    lse: FloatArray,
    gx: FloatArray,
    rows: number,
    vocab: number,
    ignoreIndex: number,
    gScale: number,
  ): void;

  /**
   * The gradient of tokenLogProbs (logp[r] = logits[r, target_r] − lse_r, the negated cross-entropy) with a
   * gradient per row: gx[r, :] = (onehot(target_r) − softmax(logits[r]))·gOut[r], and 0 for ignored rows.
   */
  tokenLogProbsBackward(
    logits: FloatArray,
    targets: Int32Array,
    lse: FloatArray,
    gOut: FloatArray,
    gx: FloatArray,
    rows: number,
    vocab: number,
    ignoreIndex: number,
  ): void;

  // --- dropout: keep element i iff uniform(seed, i) >= p, scaled by 1/(1 − p); see dropoutKeep() ---
  dropout(x: FloatArray, out: FloatArray, n: number, p: number, seed: number): void;
  /** Same mask as the forward pass with the same seed. */
  dropoutBackward(gOut: FloatArray, gx: FloatArray, n: number, p: number, seed: number): void;

  // --- optimizer ---
  /**
   * PyTorch's AdamW, in place: p ← p·(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
   * p ← p − (lr / bc1) · m / (√v / √bc2 + eps).
   */
  adamw(param: FloatArray, grad: FloatArray, m: FloatArray, v: FloatArray, n: number, args: AdamWArgs): void;
}

/**
 * The dropout mask hash, shared by both backends so they drop the same elements:
 * lowbias32 of (i XOR lowbias32(seed)); keep iff (h >>> 8) / 2^24 >= p.
 */
export function lowbias32(x: number): number {
  x = x >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

export function dropoutKeep(seed: number, i: number, p: number): boolean {
  const h = lowbias32((i ^ lowbias32(seed)) >>> 0);
  return (h >>> 8) / 16777216 >= p;
}
