// JS bindings for every kernel except matmul. Each function takes the arguments of the Backend method of
// the same name (src/backend/backend.ts) in the same order, with AttentionShape and AdamWArgs flattened in
// their declared field order. Every array length, index and shape is checked here, so a bad call throws
// instead of reading or writing out of bounds.
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "bind.h"
#include "kernels.h"

namespace as {
namespace {

using Info = Napi::CallbackInfo;

// Element count a*b (*c), computed in double so absurd sizes fail cleanly instead of overflowing.
int64_t count(const Info& info, double a, double b = 1, double c = 1) {
  double n = a * b * c;
  if (n > 9007199254740992.0) fail(info, "native: tensor size " + std::to_string(n) + " is too large");
  return static_cast<int64_t>(n);
}

float f32num(const Info& info, size_t i, const char* what) { return static_cast<float>(num(info, i, what)); }

int32_t int32(const Info& info, size_t i, const char* what) {
  double d = num(info, i, what);
  if (d != std::floor(d) || d < -2147483648.0 || d > 2147483647.0)
    fail(info, std::string("native: ") + what + " must be a 32-bit integer");
  return static_cast<int32_t>(d);
}

// ToUint32 of a JS number (what `seed >>> 0` does in backend.ts).
uint32_t uint32(const Info& info, size_t i, const char* what) {
  double d = num(info, i, what);
  if (!std::isfinite(d)) return 0;
  double t = std::fmod(std::trunc(d), 4294967296.0);
  if (t < 0) t += 4294967296.0;
  return static_cast<uint32_t>(t);
}

Napi::Value undefined(const Info& info) { return info.Env().Undefined(); }

// add / mul (a, b, out, n, bn): out[i] = a[i] ∘ b[i % bn].
template <bool IsMul>
Napi::Value Binary(const Info& info) {
  const char* name = IsMul ? "mul" : "add";
  int64_t n = int_(info, 3, "n"), bn = int_(info, 4, "bn");
  if (n > 0 && bn < 1) fail(info, std::string("native: ") + name + ": bn must be >= 1");
  const float* a = f32(info, 0, n, "a");
  const float* b = f32(info, 1, n > 0 ? bn : 0, "b");
  float* out = f32(info, 2, n, "out");
  if (n > 0) (IsMul ? kernels().mul : kernels().add)(a, b, out, n, bn);
  return undefined(info);
}

Napi::Value Scale(const Info& info) {
  int64_t n = int_(info, 3, "n");
  float s = f32num(info, 1, "s");
  kernels().scale(f32(info, 0, n, "a"), s, f32(info, 2, n, "out"), n);
  return undefined(info);
}

Napi::Value AddInto(const Info& info) {
  int64_t n = int_(info, 2, "n");
  kernels().add_into(f32(info, 0, n, "dst"), f32(info, 1, n, "src"), n);
  return undefined(info);
}

Napi::Value ToBf16(const Info& info) {
  int64_t n = int_(info, 2, "n");
  kernels().to_bf16(f32(info, 0, n, "src"), u16(info, 1, n, "dst"), n);
  return undefined(info);
}

Napi::Value Fill(const Info& info) {
  int64_t n = int_(info, 2, "n");
  float value = f32num(info, 1, "value");
  kernels().fill(f32(info, 0, n, "dst"), value, n);
  return undefined(info);
}

Napi::Value SumRows(const Info& info) {
  int64_t rows = int_(info, 2, "rows"), cols = int_(info, 3, "cols");
  kernels().sum_rows(f32(info, 0, count(info, rows, cols), "x"), f32(info, 1, cols, "out"), rows, cols);
  return undefined(info);
}

Napi::Value Sum(const Info& info) {
  int64_t n = int_(info, 1, "n");
  return Napi::Number::New(info.Env(), kernels().sum(f32(info, 0, n, "x"), n));
}

Napi::Value SumSquares(const Info& info) {
  int64_t n = int_(info, 1, "n");
  return Napi::Number::New(info.Env(), kernels().sum_squares(f32(info, 0, n, "x"), n));
}

// Throws unless every id is in [0, vocab).
void check_ids(const Info& info, const int32_t* ids, int64_t n, int64_t vocab, const char* kernel) {
  for (int64_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= vocab)
      fail(info, std::string(kernel) + ": id " + std::to_string(ids[i]) + " out of range [0, " + std::to_string(vocab) +
                     ") at position " + std::to_string(i));
  }
}

// embedding(table, ids, out, n, dim). The table's row count is its length / dim.
Napi::Value Embedding(const Info& info) {
  int64_t n = int_(info, 3, "n"), dim = int_(info, 4, "dim");
  const float* table = f32(info, 0, dim, "table");
  const int32_t* ids = i32(info, 1, n, "ids");
  float* out = f32(info, 2, count(info, n, dim), "out");
  if (dim == 0 || n == 0) return undefined(info);
  int64_t vocab = static_cast<int64_t>(info[0].As<Napi::Float32Array>().ElementLength()) / dim;
  check_ids(info, ids, n, vocab, "embedding");
  kernels().embedding(table, ids, out, n, dim);
  return undefined(info);
}

// embeddingBackward(gOut, ids, gTable, n, dim, vocab)
Napi::Value EmbeddingBackward(const Info& info) {
  int64_t n = int_(info, 3, "n"), dim = int_(info, 4, "dim"), vocab = int_(info, 5, "vocab");
  const float* gOut = f32(info, 0, count(info, n, dim), "gOut");
  const int32_t* ids = i32(info, 1, n, "ids");
  float* gTable = f32(info, 2, count(info, vocab, dim), "gTable");
  check_ids(info, ids, n, vocab, "embeddingBackward");
  if (dim > 0 && vocab > 0) kernels().embedding_backward(gOut, ids, gTable, n, dim, vocab);
  return undefined(info);
}

// layerNorm(x, w, b, out, mean, rstd, rows, dim, eps)
Napi::Value LayerNorm(const Info& info) {
  int64_t rows = int_(info, 6, "rows"), dim = int_(info, 7, "dim");
  float eps = f32num(info, 8, "eps");
  int64_t n = count(info, rows, dim);
  const float* x = f32(info, 0, n, "x");
  const float* w = f32(info, 1, dim, "w");
  const float* b = f32(info, 2, dim, "b");
  float* out = f32(info, 3, n, "out");
  float* mean = f32(info, 4, rows, "mean");
  float* rstd = f32(info, 5, rows, "rstd");
  if (dim == 0 && rows > 0) fail(info, "native: layerNorm: dim must be >= 1");
  kernels().layer_norm(x, w, b, out, mean, rstd, rows, dim, eps);
  return undefined(info);
}

// layerNormBackward(gOut, x, w, mean, rstd, gx, gw, gb, rows, dim)
Napi::Value LayerNormBackward(const Info& info) {
  int64_t rows = int_(info, 8, "rows"), dim = int_(info, 9, "dim");
  int64_t n = count(info, rows, dim);
  const float* gOut = f32(info, 0, n, "gOut");
  const float* x = f32(info, 1, n, "x");
  const float* w = f32(info, 2, dim, "w");
  const float* mean = f32(info, 3, rows, "mean");
  const float* rstd = f32(info, 4, rows, "rstd");
  float* gx = f32(info, 5, n, "gx");
  float* gw = f32(info, 6, dim, "gw");
  float* gb = f32(info, 7, dim, "gb");
  kernels().layer_norm_backward(gOut, x, w, mean, rstd, gx, gw, gb, rows, dim);
  return undefined(info);
}

// rmsNorm(x, w, out, rstd, rows, dim, eps)
Napi::Value RmsNorm(const Info& info) {
  int64_t rows = int_(info, 4, "rows"), dim = int_(info, 5, "dim");
  float eps = f32num(info, 6, "eps");
  int64_t n = count(info, rows, dim);
  const float* x = f32(info, 0, n, "x");
  const float* w = f32(info, 1, dim, "w");
  float* out = f32(info, 2, n, "out");
  float* rstd = f32(info, 3, rows, "rstd");
  if (dim == 0 && rows > 0) fail(info, "native: rmsNorm: dim must be >= 1");
  kernels().rms_norm(x, w, out, rstd, rows, dim, eps);
  return undefined(info);
}

// rmsNormBackward(gOut, x, w, rstd, gx, gw, rows, dim)
Napi::Value RmsNormBackward(const Info& info) {
  int64_t rows = int_(info, 6, "rows"), dim = int_(info, 7, "dim");
  int64_t n = count(info, rows, dim);
  const float* gOut = f32(info, 0, n, "gOut");
  const float* x = f32(info, 1, n, "x");
  const float* w = f32(info, 2, dim, "w");
  const float* rstd = f32(info, 3, rows, "rstd");
  float* gx = f32(info, 4, n, "gx");
  float* gw = f32(info, 5, dim, "gw");
  kernels().rms_norm_backward(gOut, x, w, rstd, gx, gw, rows, dim);
  return undefined(info);
}

// Activations: fn(x, out, n) and fn(x, gOut, gx, n).
template <int Which>
Napi::Value Activation(const Info& info) {
  int64_t n = int_(info, 2, "n");
  const float* x = f32(info, 0, n, "x");
  float* out = f32(info, 1, n, "out");
  const KernelTable& t = kernels();
  (Which == 0 ? t.gelu : Which == 1 ? t.silu : t.relu2)(x, out, n);
  return undefined(info);
}

template <int Which>
Napi::Value ActivationBackward(const Info& info) {
  int64_t n = int_(info, 3, "n");
  const float* x = f32(info, 0, n, "x");
  const float* gOut = f32(info, 1, n, "gOut");
  float* gx = f32(info, 2, n, "gx");
  const KernelTable& t = kernels();
  (Which == 0 ? t.gelu_backward : Which == 1 ? t.silu_backward : t.relu2_backward)(x, gOut, gx, n);
  return undefined(info);
}

// softcap(x, out, n, cap) and softcapBackward(x, gOut, gx, n, cap)
Napi::Value Softcap(const Info& info) {
  int64_t n = int_(info, 2, "n");
  kernels().softcap(f32(info, 0, n, "x"), f32(info, 1, n, "out"), n, f32num(info, 3, "cap"));
  return undefined(info);
}

Napi::Value SoftcapBackward(const Info& info) {
  int64_t n = int_(info, 3, "n");
  kernels().softcap_backward(f32(info, 0, n, "x"), f32(info, 1, n, "gOut"), f32(info, 2, n, "gx"), n,
                             f32num(info, 4, "cap"));
  return undefined(info);
}

// exp(x, out, n)
Napi::Value Exp(const Info& info) {
  int64_t n = int_(info, 2, "n");
  kernels().exp(f32(info, 0, n, "x"), f32(info, 1, n, "out"), n);
  return undefined(info);
}

// logSigmoid(x, out, n)
Napi::Value LogSigmoid(const Info& info) {
  int64_t n = int_(info, 2, "n");
  kernels().log_sigmoid(f32(info, 0, n, "x"), f32(info, 1, n, "out"), n);
  return undefined(info);
}

// logSigmoidBackward(x, gOut, gx, n)
Napi::Value LogSigmoidBackward(const Info& info) {
  int64_t n = int_(info, 3, "n");
  kernels().log_sigmoid_backward(f32(info, 0, n, "x"), f32(info, 1, n, "gOut"), f32(info, 2, n, "gx"), n);
  return undefined(info);
}

// Clamp bounds lo <= hi (either may be ±Infinity; NaN is refused).
void clamp_bounds(const Info& info, size_t i, float* lo, float* hi) {
  *lo = f32num(info, i, "lo");
  *hi = f32num(info, i + 1, "hi");
  if (!(*lo <= *hi))
    fail(info, "native: clamp: lower bound " + std::to_string(*lo) + " must be <= upper bound " + std::to_string(*hi));
}

// clamp(x, out, n, lo, hi)
Napi::Value Clamp(const Info& info) {
  int64_t n = int_(info, 2, "n");
  float lo, hi;
  clamp_bounds(info, 3, &lo, &hi);
  kernels().clamp(f32(info, 0, n, "x"), f32(info, 1, n, "out"), n, lo, hi);
  return undefined(info);
}

// clampBackward(x, gOut, gx, n, lo, hi)
Napi::Value ClampBackward(const Info& info) {
  int64_t n = int_(info, 3, "n");
  float lo, hi;
  clamp_bounds(info, 4, &lo, &hi);
  kernels().clamp_backward(f32(info, 0, n, "x"), f32(info, 1, n, "gOut"), f32(info, 2, n, "gx"), n, lo, hi);
  return undefined(info);
}

// minimum(a, b, out, n)
Napi::Value Minimum(const Info& info) {
  int64_t n = int_(info, 3, "n");
  kernels().minimum(f32(info, 0, n, "a"), f32(info, 1, n, "b"), f32(info, 2, n, "out"), n);
  return undefined(info);
}

// minimumBackward(a, b, gOut, ga, gb, n)
Napi::Value MinimumBackward(const Info& info) {
  int64_t n = int_(info, 5, "n");
  kernels().minimum_backward(f32(info, 0, n, "a"), f32(info, 1, n, "b"), f32(info, 2, n, "gOut"),
                             f32(info, 3, n, "ga"), f32(info, 4, n, "gb"), n);
  return undefined(info);
}

// swiglu(gate, up, out, n)
Napi::Value Swiglu(const Info& info) {
  int64_t n = int_(info, 3, "n");
  kernels().swiglu(f32(info, 0, n, "gate"), f32(info, 1, n, "up"), f32(info, 2, n, "out"), n);
  return undefined(info);
}

// swigluBackward(gate, up, gOut, gGate, gUp, n)
Napi::Value SwigluBackward(const Info& info) {
  int64_t n = int_(info, 5, "n");
  kernels().swiglu_backward(f32(info, 0, n, "gate"), f32(info, 1, n, "up"), f32(info, 2, n, "gOut"),
                            f32(info, 3, n, "gGate"), f32(info, 4, n, "gUp"), n);
  return undefined(info);
}

// softmax(x, out, rows, dim)
Napi::Value Softmax(const Info& info) {
  int64_t rows = int_(info, 2, "rows"), dim = int_(info, 3, "dim");
  int64_t n = count(info, rows, dim);
  kernels().softmax(f32(info, 0, n, "x"), f32(info, 1, n, "out"), rows, dim);
  return undefined(info);
}

// softmaxBackward(y, gOut, gx, rows, dim)
Napi::Value SoftmaxBackward(const Info& info) {
  int64_t rows = int_(info, 3, "rows"), dim = int_(info, 4, "dim");
  int64_t n = count(info, rows, dim);
  kernels().softmax_backward(f32(info, 0, n, "y"), f32(info, 1, n, "gOut"), f32(info, 2, n, "gx"), rows, dim);
  return undefined(info);
}

// rope(x, out, cos, sin, batch, t, heads, headDim, positions, inverse): positions is pos0 (a number) or an
// Int32Array with the position of each of the batch·t rows.
Napi::Value Rope(const Info& info) {
  int64_t batch = int_(info, 4, "batch"), t = int_(info, 5, "t"), heads = int_(info, 6, "heads");
  int64_t headDim = int_(info, 7, "headDim");
  bool inverse = flag(info, 9);
  if (headDim % 2 != 0) fail(info, "native: rope: headDim must be even, got " + std::to_string(headDim));
  int64_t n = count(info, double(batch) * t, heads, headDim);
  const float* x = f32(info, 0, n, "x");
  float* out = f32(info, 1, n, "out");
  // The tables must cover every position used: pos0 .. pos0 + t - 1, or the largest of the positions.
  int64_t pos0 = 0, end = t;
  const int32_t* positions = nullptr;
  if (info.Length() > 8 && info[8].IsTypedArray()) {
    positions = i32(info, 8, count(info, batch, t), "rope positions");
    end = 0;
    for (int64_t r = 0; r < batch * t; r++) {
      if (positions[r] < 0) fail(info, "native: rope: positions must be >= 0, got " + std::to_string(positions[r]));
      end = std::max<int64_t>(end, int64_t(positions[r]) + 1);
    }
  } else {
    pos0 = int_(info, 8, "pos0");
    end = pos0 + t;
  }
  int64_t tableNeed = n == 0 ? 0 : count(info, double(end), headDim / 2);
  const float* cos = f32(info, 2, tableNeed, "cos table (too few positions)");
  const float* sin = f32(info, 3, tableNeed, "sin table (too few positions)");
  if (n > 0) kernels().rope(x, out, cos, sin, batch, t, heads, headDim, pos0, positions, inverse);
  return undefined(info);
}

// AttentionShape fields from argument `i` on: batch, tq, tk, heads, kvHeads, headDim, scale, causal, bf16.
AttentionShape attention_shape(const Info& info, size_t i) {
  AttentionShape s;
  s.batch = int_(info, i, "batch");
  s.tq = int_(info, i + 1, "tq");
  s.tk = int_(info, i + 2, "tk");
  s.heads = int_(info, i + 3, "heads");
  s.kvHeads = int_(info, i + 4, "kvHeads");
  s.headDim = int_(info, i + 5, "headDim");
  s.scale = f32num(info, i + 6, "scale");
  s.causal = flag(info, i + 7);
  s.bf16 = flag(info, i + 8);
  if (s.tq > s.tk)
    fail(info, "native: attention: tq (" + std::to_string(s.tq) + ") must be <= tk (" + std::to_string(s.tk) + ")");
  if (s.kvHeads < 1 || s.heads % s.kvHeads != 0)
    fail(info, "native: attention: heads (" + std::to_string(s.heads) + ") must be a multiple of kvHeads (" +
                   std::to_string(s.kvHeads) + ")");
  if (s.headDim < 1) fail(info, "native: attention: headDim must be >= 1");
  return s;
}

// attention(q, k, v, out, lse, ...shape)
Napi::Value Attention(const Info& info) {
  AttentionShape s = attention_shape(info, 5);
  int64_t nq = count(info, double(s.batch) * s.tq, s.heads, s.headDim);
  int64_t nk = count(info, double(s.batch) * s.tk, s.kvHeads, s.headDim);
  const float* q = f32(info, 0, nq, "q");
  const float* k = f32(info, 1, nk, "k");
  const float* v = f32(info, 2, nk, "v");
  float* out = f32(info, 3, nq, "out");
  float* lse = f32(info, 4, count(info, s.batch, s.heads, s.tq), "lse");
  kernels().attention(q, k, v, out, lse, s);
  return undefined(info);
}

// attentionBackward(q, k, v, out, lse, gOut, gq, gk, gv, ...shape)
Napi::Value AttentionBackward(const Info& info) {
  AttentionShape s = attention_shape(info, 9);
  int64_t nq = count(info, double(s.batch) * s.tq, s.heads, s.headDim);
  int64_t nk = count(info, double(s.batch) * s.tk, s.kvHeads, s.headDim);
  const float* q = f32(info, 0, nq, "q");
  const float* k = f32(info, 1, nk, "k");
  const float* v = f32(info, 2, nk, "v");
  const float* out = f32(info, 3, nq, "out");
  const float* lse = f32(info, 4, count(info, s.batch, s.heads, s.tq), "lse");
  const float* gOut = f32(info, 5, nq, "gOut");
  float* gq = f32(info, 6, nq, "gq");
  float* gk = f32(info, 7, nk, "gk");
  float* gv = f32(info, 8, nk, "gv");
  kernels().attention_backward(q, k, v, out, lse, gOut, gq, gk, gv, s);
  return undefined(info);
}

// Throws unless every target is ignoreIndex or in [0, vocab).
void check_targets(const Info& info, const int32_t* targets, int64_t rows, int64_t vocab, int32_t ignoreIndex,
                   const char* kernel) {
  for (int64_t r = 0; r < rows; r++) {
    int32_t t = targets[r];
    if (t != ignoreIndex && (t < 0 || t >= vocab))
      fail(info, std::string(kernel) + ": target " + std::to_string(t) + " at row " + std::to_string(r) +
                     " out of range [0, " + std::to_string(vocab) + ") and not the ignore index " +
                     std::to_string(ignoreIndex));
  }
}

// attentionCached(q, keys, values, counts, lengths, out, heads, kvHeads, headDim, scale): keys and values
// are arrays of Float32Array, one per sequence.
Napi::Value AttentionCached(const Info& info) {
  int64_t heads = int_(info, 6, "heads"), kvHeads = int_(info, 7, "kvHeads"), headDim = int_(info, 8, "headDim");
  float scale = f32num(info, 9, "scale");
  if (kvHeads < 1 || heads % kvHeads != 0)
    fail(info, "native: attentionCached: heads (" + std::to_string(heads) + ") must be a multiple of kvHeads (" +
                   std::to_string(kvHeads) + ")");
  if (headDim < 1) fail(info, "native: attentionCached: headDim must be >= 1");
  if (!info[3].IsTypedArray()) fail(info, "native: attentionCached: counts must be an Int32Array");
  const int64_t S = info[3].As<Napi::TypedArray>().ElementLength();
  const int32_t* counts = i32(info, 3, S, "attentionCached counts");
  const int32_t* lengths = i32(info, 4, S, "attentionCached lengths");
  if (!info[1].IsArray() || !info[2].IsArray() || info[1].As<Napi::Array>().Length() != uint32_t(S) ||
      info[2].As<Napi::Array>().Length() != uint32_t(S))
    fail(info, "native: attentionCached: keys and values must be arrays with one Float32Array per sequence (" +
                   std::to_string(S) + ")");
  // Pointers into the JS arrays' buffers: valid for this call (the arrays are held by `info`).
  std::vector<const float*> keys(S), values(S);
  int64_t rows = 0;
  for (int64_t s = 0; s < S; s++) {
    if (counts[s] < 0 || lengths[s] < counts[s] || (counts[s] > 0 && lengths[s] < 1))
      fail(info, "native: attentionCached: sequence " + std::to_string(s) + " has " + std::to_string(counts[s]) +
                     " queries but " + std::to_string(lengths[s]) + " keys");
    const int64_t need = count(info, lengths[s], kvHeads, headDim);
    for (int which = 0; which < 2; which++) {
      Napi::Value e = info[1 + which].As<Napi::Array>().Get(uint32_t(s));
      const std::string what =
          std::string("native: attentionCached: ") + (which ? "values[" : "keys[") + std::to_string(s) + "]";
      if (!e.IsTypedArray() || e.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        fail(info, what + " must be a Float32Array");
      auto a = e.As<Napi::Float32Array>();
      if (int64_t(a.ElementLength()) < need)
        fail(info, what + " has " + std::to_string(a.ElementLength()) + " elements, needs " + std::to_string(need));
      (which ? values : keys)[s] = a.Data();
    }
    rows += counts[s];
  }
  int64_t nq = count(info, rows, heads, headDim);
  const float* q = f32(info, 0, nq, "q");
  float* out = f32(info, 5, nq, "out");
  CachedAttention c{S, heads, kvHeads, headDim, scale, counts, lengths, keys.data(), values.data()};
  kernels().attention_cached(q, out, c);
  return undefined(info);
}

// crossEntropy(logits, targets, loss, lse, rows, vocab, ignoreIndex)
Napi::Value CrossEntropy(const Info& info) {
  int64_t rows = int_(info, 4, "rows"), vocab = int_(info, 5, "vocab");
  int32_t ignoreIndex = int32(info, 6, "ignoreIndex");
  const float* logits = f32(info, 0, count(info, rows, vocab), "logits");
  const int32_t* targets = i32(info, 1, rows, "targets");
  float* loss = f32(info, 2, rows, "loss");
  float* lse = f32(info, 3, rows, "lse");
  if (rows > 0 && vocab == 0) fail(info, "native: crossEntropy: vocab must be >= 1");
  check_targets(info, targets, rows, vocab, ignoreIndex, "crossEntropy");
  kernels().cross_entropy(logits, targets, loss, lse, rows, vocab, ignoreIndex);
  return undefined(info);
}

// crossEntropyBackward(logits, targets, lse, gx, rows, vocab, ignoreIndex, gScale)
Napi::Value CrossEntropyBackward(const Info& info) {
  int64_t rows = int_(info, 4, "rows"), vocab = int_(info, 5, "vocab");
  int32_t ignoreIndex = int32(info, 6, "ignoreIndex");
  float gScale = f32num(info, 7, "gScale");
  int64_t n = count(info, rows, vocab);
  const float* logits = f32(info, 0, n, "logits");
  const int32_t* targets = i32(info, 1, rows, "targets");
  const float* lse = f32(info, 2, rows, "lse");
  float* gx = f32(info, 3, n, "gx");
  check_targets(info, targets, rows, vocab, ignoreIndex, "crossEntropyBackward");
  kernels().cross_entropy_backward(logits, targets, lse, gx, rows, vocab, ignoreIndex, gScale);
  return undefined(info);
}

// tokenLogProbsBackward(logits, targets, lse, gOut, gx, rows, vocab, ignoreIndex)
Napi::Value TokenLogProbsBackward(const Info& info) {
  int64_t rows = int_(info, 5, "rows"), vocab = int_(info, 6, "vocab");
  int32_t ignoreIndex = int32(info, 7, "ignoreIndex");
  int64_t n = count(info, rows, vocab);
  const float* logits = f32(info, 0, n, "logits");
  const int32_t* targets = i32(info, 1, rows, "targets");
  const float* lse = f32(info, 2, rows, "lse");
  const float* gOut = f32(info, 3, rows, "gOut");
  float* gx = f32(info, 4, n, "gx");
  check_targets(info, targets, rows, vocab, ignoreIndex, "tokenLogProbsBackward");
  kernels().token_log_probs_backward(logits, targets, lse, gOut, gx, rows, vocab, ignoreIndex);
  return undefined(info);
}

// The kernel keeps element i iff (h >> 8) / 2^24 >= p in float. Snap p up to the next multiple of 2^-24 so
// that comparison is exactly the float64 one of backend.ts (rounding p to float could otherwise move it
// below a grid point and keep an element the reference drops).
float dropout_p(const Info& info, size_t i) {
  double p = num(info, i, "p");
  if (!(p >= 0 && p <= 1)) fail(info, "native: dropout: p must be in [0, 1], got " + std::to_string(p));
  return static_cast<float>(std::ceil(p * 16777216.0) / 16777216.0);
}

// dropout(x, out, n, p, seed)
Napi::Value Dropout(const Info& info) {
  int64_t n = int_(info, 2, "n");
  float p = dropout_p(info, 3);
  uint32_t seed = uint32(info, 4, "seed");
  kernels().dropout(f32(info, 0, n, "x"), f32(info, 1, n, "out"), n, p, seed);
  return undefined(info);
}

// dropoutBackward(gOut, gx, n, p, seed)
Napi::Value DropoutBackward(const Info& info) {
  int64_t n = int_(info, 2, "n");
  float p = dropout_p(info, 3);
  uint32_t seed = uint32(info, 4, "seed");
  kernels().dropout_backward(f32(info, 0, n, "gOut"), f32(info, 1, n, "gx"), n, p, seed);
  return undefined(info);
}

// adamw(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, biasCorrection1, biasCorrection2)
Napi::Value AdamW(const Info& info) {
  int64_t n = int_(info, 4, "n");
  AdamWArgs a;
  a.lr = f32num(info, 5, "lr");
  a.beta1 = f32num(info, 6, "beta1");
  a.beta2 = f32num(info, 7, "beta2");
  a.eps = f32num(info, 8, "eps");
  a.weightDecay = f32num(info, 9, "weightDecay");
  a.biasCorrection1 = num(info, 10, "biasCorrection1");
  a.biasCorrection2 = num(info, 11, "biasCorrection2");
  if (!(a.biasCorrection1 > 0) || !(a.biasCorrection2 > 0))
    fail(info, "native: adamw: bias corrections must be > 0 (step t >= 1)");
  kernels().adamw(f32(info, 0, n, "param"), f32(info, 1, n, "grad"), f32(info, 2, n, "m"), f32(info, 3, n, "v"), n,
                  a);
  return undefined(info);
}

}  // namespace

void register_ops(Napi::Env env, Napi::Object exports) {
  auto set = [&](const char* name, Napi::Value (*fn)(const Info&)) {
    exports.Set(name, Napi::Function::New(env, fn, name));
  };
  set("add", Binary<false>);
  set("mul", Binary<true>);
  set("scale", Scale);
  set("addInto", AddInto);
  set("toBf16", ToBf16);
  set("fill", Fill);
  set("sumRows", SumRows);
  set("sum", Sum);
  set("sumSquares", SumSquares);
  set("embedding", Embedding);
  set("embeddingBackward", EmbeddingBackward);
  set("layerNorm", LayerNorm);
  set("layerNormBackward", LayerNormBackward);
  set("rmsNorm", RmsNorm);
  set("rmsNormBackward", RmsNormBackward);
  set("gelu", Activation<0>);
  set("geluBackward", ActivationBackward<0>);
  set("silu", Activation<1>);
  set("siluBackward", ActivationBackward<1>);
  set("relu2", Activation<2>);
  set("relu2Backward", ActivationBackward<2>);
  set("softcap", Softcap);
  set("softcapBackward", SoftcapBackward);
  set("exp", Exp);
  set("logSigmoid", LogSigmoid);
  set("logSigmoidBackward", LogSigmoidBackward);
  set("clamp", Clamp);
  set("clampBackward", ClampBackward);
  set("minimum", Minimum);
  set("minimumBackward", MinimumBackward);
  set("swiglu", Swiglu);
  set("swigluBackward", SwigluBackward);
  set("softmax", Softmax);
  set("softmaxBackward", SoftmaxBackward);
  set("rope", Rope);
  set("attention", Attention);
  set("attentionBackward", AttentionBackward);
  set("attentionCached", AttentionCached);
  set("crossEntropy", CrossEntropy);
  set("crossEntropyBackward", CrossEntropyBackward);
  set("tokenLogProbsBackward", TokenLogProbsBackward);
  set("dropout", Dropout);
  set("dropoutBackward", DropoutBackward);
  set("adamw", AdamW);
}

}  // namespace as
