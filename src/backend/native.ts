// The native backend: a thin wrapper over the C++ addon (native/src, built to
// build/Release/afterscale_native.node). Every kernel forwards to the addon function of the same name, with
// AttentionShape / AdamWArgs flattened in field order. The addon checks every size itself and throws on a
// bad call; this file only adds the float32 check (the kernels have no float64 version).
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import {
  type AdamWArgs,
  type AttentionShape,
  type Backend,
  type FloatArray,
  GGML_TYPE_IDS,
  type MatmulArgs,
} from "./backend.js";
import { packageRoot } from "./package-root.js";

type F32 = Float32Array;

type NativeMatmul = (
  a: F32 | Uint16Array,
  b: F32 | Uint16Array,
  c: F32,
  batch: number,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  strideA: number,
  strideB: number,
  accumulate: boolean,
  symmetric?: boolean,
) => void;

/** The functions the addon exports (native/src/addon.cc, bind_matmul.cc, bind_ops.cc). */
export interface NativeAddon {
  isa(): string;
  threads(): number;
  setThreads(n: number): number;
  selectIsa(isa: string): boolean;
  matmul: NativeMatmul;
  matmulBf16: NativeMatmul;
  /** out[m, n] = x[m, k]·Wᵀ, W [n, k] in ggml type `type` (native/src/bind_quant.cc). */
  matmulQuant(x: F32, w: Uint8Array, out: F32, m: number, n: number, k: number, type: number): void;
  /** The variant matmulQuant runs: "avx512vnni", "avx512", "avx2" or "generic". */
  quantIsa(): string;
  add(a: F32, b: F32, out: F32, n: number, bn: number): void;
  mul(a: F32, b: F32, out: F32, n: number, bn: number): void;
  scale(a: F32, s: number, out: F32, n: number): void;
  addInto(dst: F32, src: F32, n: number): void;
  fill(dst: F32, value: number, n: number): void;
  toBf16(src: F32, dst: Uint16Array, n: number): void;
  sumRows(x: F32, out: F32, rows: number, cols: number): void;
  sum(x: F32, n: number): number;
  sumSquares(x: F32, n: number): number;
  embedding(table: F32, ids: Int32Array, out: F32, n: number, dim: number): void;
  embeddingBackward(gOut: F32, ids: Int32Array, gTable: F32, n: number, dim: number, vocab: number): void;
  layerNorm(
    x: F32,
    w: F32,
    b: F32,
    out: F32,
    mean: F32,
    rstd: F32,
    rows: number,
    dim: number,
    eps: number,
  ): void;
  layerNormBackward(
    gOut: F32,
    x: F32,
    w: F32,
    mean: F32,
    rstd: F32,
    gx: F32,
    gw: F32,
    gb: F32,
    rows: number,
    dim: number,
  ): void;
  rmsNorm(x: F32, w: F32, out: F32, rstd: F32, rows: number, dim: number, eps: number): void;
  rmsNormBackward(gOut: F32, x: F32, w: F32, rstd: F32, gx: F32, gw: F32, rows: number, dim: number): void;
  gelu(x: F32, out: F32, n: number): void;
  geluBackward(x: F32, gOut: F32, gx: F32, n: number): void;
  silu(x: F32, out: F32, n: number): void;
  siluBackward(x: F32, gOut: F32, gx: F32, n: number): void;
  relu2(x: F32, out: F32, n: number): void;
  relu2Backward(x: F32, gOut: F32, gx: F32, n: number): void;
  softcap(x: F32, out: F32, n: number, cap: number): void;
  softcapBackward(x: F32, gOut: F32, gx: F32, n: number, cap: number): void;
  exp(x: F32, out: F32, n: number): void;
  logSigmoid(x: F32, out: F32, n: number): void;
  logSigmoidBackward(x: F32, gOut: F32, gx: F32, n: number): void;
  clamp(x: F32, out: F32, n: number, lo: number, hi: number): void;
  clampBackward(x: F32, gOut: F32, gx: F32, n: number, lo: number, hi: number): void;
  minimum(a: F32, b: F32, out: F32, n: number): void;
  minimumBackward(a: F32, b: F32, gOut: F32, ga: F32, gb: F32, n: number): void;
  swiglu(gate: F32, up: F32, out: F32, n: number): void;
  swigluBackward(gate: F32, up: F32, gOut: F32, gGate: F32, gUp: F32, n: number): void;
  softmax(x: F32, out: F32, rows: number, dim: number): void;
  softmaxBackward(y: F32, gOut: F32, gx: F32, rows: number, dim: number): void;
  rope(
    x: F32,
    out: F32,
    cos: F32,
    sin: F32,
    batch: number,
    t: number,
    heads: number,
    headDim: number,
    positions: number | Int32Array,
    inverse: boolean,
  ): void;
  attention(q: F32, k: F32, v: F32, out: F32, lse: F32, ...shape: AttentionArgs): void;
  attentionCached(
    q: F32,
    keys: F32[],
    values: F32[],
    counts: Int32Array,
    lengths: Int32Array,
    out: F32,
    heads: number,
    kvHeads: number,
    headDim: number,
    scale: number,
  ): void;
  attentionBackward(
    q: F32,
    k: F32,
    v: F32,
    out: F32,
    lse: F32,
    gOut: F32,
    gq: F32,
    gk: F32,
    gv: F32,
    ...shape: AttentionArgs
  ): void;
  crossEntropy(
    logits: F32,
    targets: Int32Array,
    loss: F32,
    lse: F32,
    rows: number,
    vocab: number,
    ignoreIndex: number,
  ): void;
  crossEntropyBackward(
    logits: F32,
    targets: Int32Array,
    lse: F32,
    gx: F32,
    rows: number,
    vocab: number,
    ignoreIndex: number,
    gScale: number,
  ): void;
  tokenLogProbsBackward(
    logits: F32,
    targets: Int32Array,
    lse: F32,
    gOut: F32,
    gx: F32,
    rows: number,
    vocab: number,
    ignoreIndex: number,
  ): void;
  dropout(x: F32, out: F32, n: number, p: number, seed: number): void;
  dropoutBackward(gOut: F32, gx: F32, n: number, p: number, seed: number): void;
  adamw(
    param: F32,
    grad: F32,
    m: F32,
    v: F32,
    n: number,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    biasCorrection1: number,
    biasCorrection2: number,
  ): void;
}

/** AttentionShape flattened in declared field order. */
type AttentionArgs = [
  batch: number,
  tq: number,
  tk: number,
  heads: number,
  kvHeads: number,
  headDim: number,
  scale: number,
  causal: boolean,
  bf16: boolean,
];

function attentionArgs(s: AttentionShape): AttentionArgs {
  return [s.batch, s.tq, s.tk, s.heads, s.kvHeads, s.headDim, s.scale, s.causal, s.bf16 ?? false];
}

let loaded: NativeAddon | { error: string } | undefined;

/** Loads the addon once; returns it, or why it could not be loaded (not built, wrong platform, ...). */
export function nativeAddon(): NativeAddon | { error: string } {
  if (loaded) return loaded;
  try {
    const path =
      process.env.AFTERSCALE_NATIVE_PATH ?? join(packageRoot(), "build", "Release", "afterscale_native.node");
    if (!existsSync(path)) {
      loaded = {
        error: `native addon not built (${path} missing; run npm run configure:native && npm run build:native)`,
      };
    } else {
      loaded = createRequire(import.meta.url)(path) as NativeAddon;
    }
  } catch (e) {
    loaded = { error: `native addon failed to load: ${e instanceof Error ? e.message : String(e)}` };
  }
  return loaded;
}

function addonOrThrow(): NativeAddon {
  const a = nativeAddon();
  if ("error" in a) throw new Error(a.error);
  return a;
}

/** The instruction set the kernels run with ("avx512bf16", "avx512", "avx2" or "generic"). */
export function nativeIsa(): string {
  return addonOrThrow().isa();
}

/** The variant of the quantized-weight products ("avx512vnni", "avx512", "avx2" or "generic"). */
export function nativeQuantIsa(): string {
  return addonOrThrow().quantIsa();
}

/** Resizes the kernel thread pool (n < 1: the default); returns the new size. */
export function setNativeThreads(n: number): number {
  return addonOrThrow().setThreads(n);
}

/** Forces an instruction set if this CPU supports it; returns false (and changes nothing) otherwise. */
export function selectNativeIsa(isa: "avx512bf16" | "avx512" | "avx2" | "generic"): boolean {
  return addonOrThrow().selectIsa(isa);
}

function f32(x: FloatArray, what: string): F32 {
  if (x instanceof Float32Array) return x;
  throw new TypeError(
    `native backend: ${what} is a ${x.constructor.name}, but the native kernels are float32 only ` +
      "(float64 tensors must use the reference backend)",
  );
}

function product(
  fn: NativeMatmul,
  name: string,
  x: FloatArray | Uint16Array,
  y: FloatArray | Uint16Array,
  c: FloatArray,
  m: MatmulArgs,
): void {
  // bf16 bits (matmulBf16 only; the addon refuses them elsewhere) pass as they are.
  const operand = (v: FloatArray | Uint16Array, what: string) =>
    v instanceof Uint16Array ? v : f32(v, what);
  fn(
    operand(x, `${name} a`),
    operand(y, `${name} b`),
    f32(c, `${name} c`),
    m.batch,
    m.m,
    m.n,
    m.k,
    m.transA,
    m.transB,
    m.strideA,
    m.strideB,
    m.accumulate,
    m.symmetric === true,
  );
}

function makeBackend(a: NativeAddon): Backend {
  return {
    name: "native",
    threads: () => a.threads(),

    matmul: (x, y, c, m) => product(a.matmul, "matmul", x, y, c, m),
    matmulBf16: (x, y, c, m) => product(a.matmulBf16, "matmulBf16", x, y, c, m),

    matmulQuant(x, w, out, m) {
      a.matmulQuant(
        f32(x, "matmulQuant x"),
        w.bytes,
        f32(out, "matmulQuant out"),
        m,
        w.rows,
        w.cols,
        GGML_TYPE_IDS[w.type],
      );
    },

    add: (x, y, out, n, bn) => a.add(f32(x, "add a"), f32(y, "add b"), f32(out, "add out"), n, bn),
    mul: (x, y, out, n, bn) => a.mul(f32(x, "mul a"), f32(y, "mul b"), f32(out, "mul out"), n, bn),
    scale: (x, s, out, n) => a.scale(f32(x, "scale a"), s, f32(out, "scale out"), n),
    addInto: (dst, src, n) => a.addInto(f32(dst, "addInto dst"), f32(src, "addInto src"), n),
    fill: (dst, value, n) => a.fill(f32(dst, "fill dst"), value, n),
    toBf16: (src, dst, n) => a.toBf16(src, dst, n),
    sumRows: (x, out, rows, cols) => a.sumRows(f32(x, "sumRows x"), f32(out, "sumRows out"), rows, cols),
    sum: (x, n) => a.sum(f32(x, "sum x"), n),
    sumSquares: (x, n) => a.sumSquares(f32(x, "sumSquares x"), n),

    embedding: (table, ids, out, n, dim) =>
      a.embedding(f32(table, "embedding table"), ids, f32(out, "embedding out"), n, dim),
    embeddingBackward: (gOut, ids, gTable, n, dim, vocab) =>
      a.embeddingBackward(
        f32(gOut, "embeddingBackward gOut"),
        ids,
        f32(gTable, "embeddingBackward gTable"),
        n,
        dim,
        vocab,
      ),

    layerNorm: (x, w, b, out, mean, rstd, rows, dim, eps) =>
      a.layerNorm(
        f32(x, "layerNorm x"),
        f32(w, "layerNorm w"),
        f32(b, "layerNorm b"),
        f32(out, "layerNorm out"),
        f32(mean, "layerNorm mean"),
        f32(rstd, "layerNorm rstd"),
        rows,
        dim,
        eps,
      ),
    layerNormBackward: (gOut, x, w, mean, rstd, gx, gw, gb, rows, dim) =>
      a.layerNormBackward(
        f32(gOut, "layerNormBackward gOut"),
        f32(x, "layerNormBackward x"),
        f32(w, "layerNormBackward w"),
        f32(mean, "layerNormBackward mean"),
        f32(rstd, "layerNormBackward rstd"),
        f32(gx, "layerNormBackward gx"),
        f32(gw, "layerNormBackward gw"),
        f32(gb, "layerNormBackward gb"),
        rows,
        dim,
      ),
    rmsNorm: (x, w, out, rstd, rows, dim, eps) =>
      a.rmsNorm(
        f32(x, "rmsNorm x"),
        f32(w, "rmsNorm w"),
        f32(out, "rmsNorm out"),
        f32(rstd, "rmsNorm rstd"),
        rows,
        dim,
        eps,
      ),
    rmsNormBackward: (gOut, x, w, rstd, gx, gw, rows, dim) =>
      a.rmsNormBackward(
        f32(gOut, "rmsNormBackward gOut"),
        f32(x, "rmsNormBackward x"),
        f32(w, "rmsNormBackward w"),
        f32(rstd, "rmsNormBackward rstd"),
        f32(gx, "rmsNormBackward gx"),
        f32(gw, "rmsNormBackward gw"),
        rows,
        dim,
      ),

    gelu: (x, out, n) => a.gelu(f32(x, "gelu x"), f32(out, "gelu out"), n),
    geluBackward: (x, gOut, gx, n) =>
      a.geluBackward(f32(x, "geluBackward x"), f32(gOut, "geluBackward gOut"), f32(gx, "geluBackward gx"), n),
    silu: (x, out, n) => a.silu(f32(x, "silu x"), f32(out, "silu out"), n),
    siluBackward: (x, gOut, gx, n) =>
      a.siluBackward(f32(x, "siluBackward x"), f32(gOut, "siluBackward gOut"), f32(gx, "siluBackward gx"), n),
    relu2: (x, out, n) => a.relu2(f32(x, "relu2 x"), f32(out, "relu2 out"), n),
    relu2Backward: (x, gOut, gx, n) =>
      a.relu2Backward(
        f32(x, "relu2Backward x"),
        f32(gOut, "relu2Backward gOut"),
        f32(gx, "relu2Backward gx"),
        n,
      ),
    softcap: (x, out, n, cap) => a.softcap(f32(x, "softcap x"), f32(out, "softcap out"), n, cap),
    softcapBackward: (x, gOut, gx, n, cap) =>
      a.softcapBackward(
        f32(x, "softcapBackward x"),
        f32(gOut, "softcapBackward gOut"),
        f32(gx, "softcapBackward gx"),
        n,
        cap,
      ),
    exp: (x, out, n) => a.exp(f32(x, "exp x"), f32(out, "exp out"), n),
    logSigmoid: (x, out, n) => a.logSigmoid(f32(x, "logSigmoid x"), f32(out, "logSigmoid out"), n),
    logSigmoidBackward: (x, gOut, gx, n) =>
      a.logSigmoidBackward(
        f32(x, "logSigmoidBackward x"),
        f32(gOut, "logSigmoidBackward gOut"),
        f32(gx, "logSigmoidBackward gx"),
        n,
      ),
    clamp: (x, out, n, lo, hi) => a.clamp(f32(x, "clamp x"), f32(out, "clamp out"), n, lo, hi),
    clampBackward: (x, gOut, gx, n, lo, hi) =>
      a.clampBackward(
        f32(x, "clampBackward x"),
        f32(gOut, "clampBackward gOut"),
        f32(gx, "clampBackward gx"),
        n,
        lo,
        hi,
      ),
    minimum: (x, y, out, n) =>
      a.minimum(f32(x, "minimum a"), f32(y, "minimum b"), f32(out, "minimum out"), n),
    minimumBackward: (x, y, gOut, ga, gb, n) =>
      a.minimumBackward(
        f32(x, "minimumBackward a"),
        f32(y, "minimumBackward b"),
        f32(gOut, "minimumBackward gOut"),
        f32(ga, "minimumBackward ga"),
        f32(gb, "minimumBackward gb"),
        n,
      ),
    swiglu: (gate, up, out, n) =>
      a.swiglu(f32(gate, "swiglu gate"), f32(up, "swiglu up"), f32(out, "swiglu out"), n),
    swigluBackward: (gate, up, gOut, gGate, gUp, n) =>
      a.swigluBackward(
        f32(gate, "swigluBackward gate"),
        f32(up, "swigluBackward up"),
        f32(gOut, "swigluBackward gOut"),
        f32(gGate, "swigluBackward gGate"),
        f32(gUp, "swigluBackward gUp"),
        n,
      ),

    softmax: (x, out, rows, dim) => a.softmax(f32(x, "softmax x"), f32(out, "softmax out"), rows, dim),
    softmaxBackward: (y, gOut, gx, rows, dim) =>
      a.softmaxBackward(
        f32(y, "softmaxBackward y"),
        f32(gOut, "softmaxBackward gOut"),
        f32(gx, "softmaxBackward gx"),
        rows,
        dim,
      ),

    rope: (x, out, cos, sin, batch, t, heads, headDim, positions, inverse) =>
      a.rope(
        f32(x, "rope x"),
        f32(out, "rope out"),
        f32(cos, "rope cos"),
        f32(sin, "rope sin"),
        batch,
        t,
        heads,
        headDim,
        positions,
        inverse,
      ),

    attention: (q, k, v, out, lse, shape) =>
      a.attention(
        f32(q, "attention q"),
        f32(k, "attention k"),
        f32(v, "attention v"),
        f32(out, "attention out"),
        f32(lse, "attention lse"),
        ...attentionArgs(shape),
      ),
    attentionCached: (q, keys, values, counts, lengths, out, shape) =>
      a.attentionCached(
        f32(q, "attentionCached q"),
        keys.map((k) => f32(k, "attentionCached keys")),
        values.map((v) => f32(v, "attentionCached values")),
        counts,
        lengths,
        f32(out, "attentionCached out"),
        shape.heads,
        shape.kvHeads,
        shape.headDim,
        shape.scale,
      ),
    attentionBackward: (q, k, v, out, lse, gOut, gq, gk, gv, shape) =>
      a.attentionBackward(
        f32(q, "attentionBackward q"),
        f32(k, "attentionBackward k"),
        f32(v, "attentionBackward v"),
        f32(out, "attentionBackward out"),
        f32(lse, "attentionBackward lse"),
        f32(gOut, "attentionBackward gOut"),
        f32(gq, "attentionBackward gq"),
        f32(gk, "attentionBackward gk"),
        f32(gv, "attentionBackward gv"),
        ...attentionArgs(shape),
      ),

    crossEntropy: (logits, targets, loss, lse, rows, vocab, ignoreIndex) =>
      a.crossEntropy(
        f32(logits, "crossEntropy logits"),
        targets,
        f32(loss, "crossEntropy loss"),
        f32(lse, "crossEntropy lse"),
        rows,
        vocab,
        ignoreIndex,
      ),
    crossEntropyBackward: (logits, targets, lse, gx, rows, vocab, ignoreIndex, gScale) =>
      a.crossEntropyBackward(
        f32(logits, "crossEntropyBackward logits"),
        targets,
        f32(lse, "crossEntropyBackward lse"),
        f32(gx, "crossEntropyBackward gx"),
        rows,
        vocab,
        ignoreIndex,
        gScale,
      ),

    tokenLogProbsBackward: (logits, targets, lse, gOut, gx, rows, vocab, ignoreIndex) =>
      a.tokenLogProbsBackward(
        f32(logits, "tokenLogProbsBackward logits"),
        targets,
        f32(lse, "tokenLogProbsBackward lse"),
        f32(gOut, "tokenLogProbsBackward gOut"),
        f32(gx, "tokenLogProbsBackward gx"),
        rows,
        vocab,
        ignoreIndex,
      ),

    dropout: (x, out, n, p, seed) => a.dropout(f32(x, "dropout x"), f32(out, "dropout out"), n, p, seed),
    dropoutBackward: (gOut, gx, n, p, seed) =>
      a.dropoutBackward(f32(gOut, "dropoutBackward gOut"), f32(gx, "dropoutBackward gx"), n, p, seed),

    adamw: (param, grad, m, v, n, o: AdamWArgs) =>
      a.adamw(
        f32(param, "adamw param"),
        f32(grad, "adamw grad"),
        f32(m, "adamw m"),
        f32(v, "adamw v"),
        n,
        o.lr,
        o.beta1,
        o.beta2,
        o.eps,
        o.weightDecay,
        o.biasCorrection1,
        o.biasCorrection2,
      ),
  };
}

let backend: Backend | undefined;

/** The native backend, or why it is unavailable (the caller then falls back to the reference backend). */
export function loadNative(): Backend | { error: string } {
  if (backend) return backend;
  const a = nativeAddon();
  if ("error" in a) return a;
  backend = makeBackend(a);
  return backend;
}
