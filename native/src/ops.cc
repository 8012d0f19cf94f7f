// Elementwise kernels, reductions, embedding, activations, the loss primitives (exp, log-sigmoid, clamp,
// minimum), rotary embedding, dropout and AdamW.
// Semantics: src/backend/backend.ts. Compiled once per instruction set (see kernels.h); the loops are
// plain so the compiler vectorises them for each. Normalisation, softmax and cross-entropy live in
// ops_norm.cc, attention in ops_attention.cc.
#include "ops_common.h"

namespace as {
namespace AS_ISA {
namespace {

void add_range(const float* __restrict a, const float* __restrict b, float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
void add_into_range(float* __restrict dst, const float* __restrict src, int64_t n) {
  for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}
void add_scalar_range(const float* __restrict a, float b, float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = a[i] + b;
}
void mul_range(const float* __restrict a, const float* __restrict b, float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}
void mul_scalar_range(const float* __restrict a, float b, float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = a[i] * b;
}

// out[i] = a[i] ∘ b[i % bn] for i in [begin, end): walk b in contiguous segments so the inner loop vectorises.
template <class Range, class ScalarRange>
void broadcast_binary(const float* a, const float* b, float* out, int64_t n, int64_t bn, Range range,
                      ScalarRange scalar_range) {
  parallel_for(n, kElemGrain, [&](int64_t begin, int64_t end) {
    if (bn == 1) {
      scalar_range(a + begin, b[0], out + begin, end - begin);
      return;
    }
    int64_t i = begin, j = begin % bn;
    while (i < end) {
      int64_t len = end - i < bn - j ? end - i : bn - j;
      range(a + i, b + j, out + i, len);
      i += len;
      j = 0;
    }
  });
}

void gelu_range(const float* __restrict x, float* __restrict out, int64_t n) {
  // 0.5·x·(1 + tanh(u)) == x·σ(2u): the sigmoid form has no cancellation for negative x.
  const float k = 0.7978845608028654f;  // √(2/π)
  for (int64_t i = 0; i < n; i++) {
    float v = x[i];
    float u = k * (v + 0.044715f * v * v * v);
    out[i] = v * sigmoid(2.0f * u);
  }
}

void gelu_backward_range(const float* __restrict x, const float* __restrict g, float* __restrict gx, int64_t n) {
  // d/dx x·σ(2u) = σ + 2·x·σ·(1 − σ)·u'   with u' = √(2/π)·(1 + 3·0.044715·x²)
  const float k = 0.7978845608028654f;
  for (int64_t i = 0; i < n; i++) {
    float v = x[i];
    float u = k * (v + 0.044715f * v * v * v);
    float du = k * (1.0f + 3.0f * 0.044715f * v * v);
    float s = sigmoid(2.0f * u);
    gx[i] = g[i] * (s + 2.0f * v * s * (1.0f - s) * du);
  }
}

void silu_range(const float* __restrict x, float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = x[i] * sigmoid(x[i]);
}

void silu_backward_range(const float* __restrict x, const float* __restrict g, float* __restrict gx, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float s = sigmoid(x[i]);
    gx[i] = g[i] * s * (1.0f + x[i] * (1.0f - s));
  }
}

void relu2_range(const float* __restrict x, float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float r = x[i] > 0.0f ? x[i] : 0.0f;
    out[i] = r * r;
  }
}

void relu2_backward_range(const float* __restrict x, const float* __restrict g, float* __restrict gx, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float r = x[i] > 0.0f ? x[i] : 0.0f;
    gx[i] = 2.0f * r * g[i];
  }
}

void softcap_range(const float* __restrict x, float* __restrict out, int64_t n, float cap) {
  const float inv = 1.0f / cap;
  for (int64_t i = 0; i < n; i++) out[i] = cap * std::tanh(x[i] * inv);
}

void softcap_backward_range(const float* __restrict x, const float* __restrict g, float* __restrict gx, int64_t n,
                            float cap) {
  const float inv = 1.0f / cap;
  for (int64_t i = 0; i < n; i++) {
    float t = std::tanh(x[i] * inv);
    gx[i] = g[i] * (1.0f - t * t);
  }
}

void swiglu_range(const float* __restrict gate, const float* __restrict up, float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

void swiglu_backward_range(const float* __restrict gate, const float* __restrict up, const float* __restrict g,
                           float* __restrict gGate, float* __restrict gUp, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float s = sigmoid(gate[i]);
    float silu = gate[i] * s;
    gGate[i] = g[i] * up[i] * s * (1.0f + gate[i] * (1.0f - s));
    gUp[i] = g[i] * silu;
  }
}

void exp_range(const float* __restrict x, float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = fast_exp(x[i]);
}

// log σ(x) = min(x, 0) − log1p(e^−|x|): finite in both tails.
void log_sigmoid_range(const float* __restrict x, float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float v = x[i];
    out[i] = (v < 0.0f ? v : 0.0f) - std::log1p(fast_exp(-std::fabs(v)));
  }
}

void log_sigmoid_backward_range(const float* __restrict x, const float* __restrict g, float* __restrict gx,
                                int64_t n) {
  for (int64_t i = 0; i < n; i++) gx[i] = g[i] * sigmoid(-x[i]);
}

void clamp_range(const float* __restrict x, float* __restrict out, int64_t n, float lo, float hi) {
  for (int64_t i = 0; i < n; i++) {
    float v = x[i] < lo ? lo : x[i];
    out[i] = v > hi ? hi : v;
  }
}

// The bounds pass the gradient (PyTorch's clamp).
void clamp_backward_range(const float* __restrict x, const float* __restrict g, float* __restrict gx, int64_t n,
                          float lo, float hi) {
  for (int64_t i = 0; i < n; i++) gx[i] = x[i] >= lo && x[i] <= hi ? g[i] : 0.0f;
}

void minimum_range(const float* __restrict a, const float* __restrict b, float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = a[i] < b[i] ? a[i] : b[i];
}

// The smaller input takes the gradient; a tie splits it evenly (torch.minimum).
void minimum_backward_range(const float* __restrict a, const float* __restrict b, const float* __restrict g,
                            float* __restrict ga, float* __restrict gb, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float half = 0.5f * g[i];
    ga[i] = a[i] < b[i] ? g[i] : (a[i] == b[i] ? half : 0.0f);
    gb[i] = b[i] < a[i] ? g[i] : (a[i] == b[i] ? half : 0.0f);
  }
}

inline uint32_t lowbias32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// The mask of backend.ts dropoutKeep(): element i is kept iff (h >> 8) / 2^24 >= p.
void dropout_range(const float* __restrict x, float* __restrict out, int64_t begin, int64_t end, float p,
                   uint32_t seedHash, float keepScale) {
  for (int64_t i = begin; i < end; i++) {
    uint32_t h = lowbias32(static_cast<uint32_t>(i) ^ seedHash);
    float u = static_cast<float>(h >> 8) * (1.0f / 16777216.0f);
    out[i] = u >= p ? x[i] * keepScale : 0.0f;
  }
}

void adamw_range(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v,
                 int64_t n, float decay, float b1, float b2, float stepSize, float invSqrtBc2, float eps) {
  for (int64_t i = 0; i < n; i++) {
    float gi = g[i];
    float mi = b1 * m[i] + (1.0f - b1) * gi;
    float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float denom = std::sqrt(vi) * invSqrtBc2 + eps;
    p[i] = p[i] * decay - stepSize * mi / denom;
  }
}

void rope_row(const float* __restrict x, float* __restrict out, const float* __restrict c,
              const float* __restrict s, int64_t half, float sign) {
  for (int64_t i = 0; i < half; i++) {
    float x0 = x[i], x1 = x[i + half], si = sign * s[i];
    out[i] = x0 * c[i] - x1 * si;
    out[i + half] = x1 * c[i] + x0 * si;
  }
}

}  // namespace

void add(const float* a, const float* b, float* out, int64_t n, int64_t bn) {
  broadcast_binary(a, b, out, n, bn, add_range, add_scalar_range);
}

void mul(const float* a, const float* b, float* out, int64_t n, int64_t bn) {
  broadcast_binary(a, b, out, n, bn, mul_range, mul_scalar_range);
}

void scale(const float* a, float s, float* out, int64_t n) {
  parallel_for(n, kElemGrain, [&](int64_t b, int64_t e) { mul_scalar_range(a + b, s, out + b, e - b); });
}

void add_into(float* dst, const float* src, int64_t n) {
  parallel_for(n, kElemGrain, [&](int64_t b, int64_t e) { add_into_range(dst + b, src + b, e - b); });
}

// Round to nearest even on the bits, as vcvtneps2bf16 does (bar its denormals-as-zero: a product packing
// the copy rounds it again, to the same value); plain integer code the compiler vectorises.
void to_bf16(const float* src, uint16_t* dst, int64_t n) {
  parallel_for(n, kElemGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      uint32_t bits;
      std::memcpy(&bits, src + i, 4);
      const bool nan = (bits & 0x7fffffffu) > 0x7f800000u;
      const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
      dst[i] = static_cast<uint16_t>(nan ? ((bits >> 16) | 0x40u) : rounded);
    }
  });
}

void fill(float* dst, float value, int64_t n) {
  parallel_for(n, kElemGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) dst[i] = value;
  });
}

// Each thread owns a range of columns and walks every row, accumulating in float64 (rows can be many).
void sum_rows(const float* x, float* out, int64_t rows, int64_t cols) {
  int64_t grain = rows >= kElemGrain ? 16 : (kElemGrain + rows - 1) / (rows < 1 ? 1 : rows);
  parallel_for(cols, grain, [&](int64_t c0, int64_t c1) {
    constexpr int64_t kBlock = 256;
    double acc[kBlock];
    for (int64_t cb = c0; cb < c1; cb += kBlock) {
      int64_t len = c1 - cb < kBlock ? c1 - cb : kBlock;
      for (int64_t j = 0; j < len; j++) acc[j] = 0;
      for (int64_t r = 0; r < rows; r++) {
        const float* __restrict row = x + r * cols + cb;
        for (int64_t j = 0; j < len; j++) acc[j] += static_cast<double>(row[j]);
      }
      for (int64_t j = 0; j < len; j++) out[cb + j] = static_cast<float>(acc[j]);
    }
  });
}

namespace {
// Per-thread float64 partial sums combined in a fixed order (deterministic for a given thread count).
template <class F>
double parallel_sum(int64_t n, F partial) {
  int nt = threads_for(n, kElemGrain * 4);
  if (nt <= 1) return partial(int64_t(0), n);
  thread_local std::vector<double> parts;
  parts.assign(nt, 0.0);
  double* p = parts.data();
  for_slots(n, nt, [&](int slot, int64_t b, int64_t e) { p[slot] = partial(b, e); });
  double s = 0;
  for (int t = 0; t < nt; t++) s += p[t];
  return s;
}
}  // namespace

double sum(const float* x, int64_t n) {
  return parallel_sum(n, [&](int64_t b, int64_t e) { return lane_sum_f64(x + b, e - b); });
}

double sum_squares(const float* x, int64_t n) {
  return parallel_sum(n, [&](int64_t b, int64_t e) { return lane_sum_squares_f64(x + b, e - b); });
}

// Ids are validated by the binding (bind_ops.cc).
void embedding(const float* table, const int32_t* ids, float* out, int64_t n, int64_t dim) {
  parallel_for(n, row_grain(dim), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++)
      std::memcpy(out + i * dim, table + static_cast<int64_t>(ids[i]) * dim, sizeof(float) * dim);
  });
}

// Each thread owns a range of table rows: it zeroes them, then scans all ids in order and adds the rows
// that fall in its range. Race-free and deterministic (every row sums its contributions in id order).
void embedding_backward(const float* gOut, const int32_t* ids, float* gTable, int64_t n, int64_t dim,
                        int64_t vocab) {
  int64_t work = vocab * dim + n * dim;
  int nt = threads_for(work, kElemGrain);
  if (nt > vocab) nt = static_cast<int>(vocab < 1 ? 1 : vocab);
  for_slots(vocab, nt, [&](int, int64_t v0, int64_t v1) {
    std::memset(gTable + v0 * dim, 0, sizeof(float) * (v1 - v0) * dim);
    for (int64_t i = 0; i < n; i++) {
      int64_t id = ids[i];
      if (id < v0 || id >= v1) continue;
      add_into_range(gTable + id * dim, gOut + i * dim, dim);
    }
  });
}

void gelu(const float* x, float* out, int64_t n) {
  parallel_for(n, kElemGrain / 4, [&](int64_t b, int64_t e) { gelu_range(x + b, out + b, e - b); });
}
void gelu_backward(const float* x, const float* gOut, float* gx, int64_t n) {
  parallel_for(n, kElemGrain / 4,
               [&](int64_t b, int64_t e) { gelu_backward_range(x + b, gOut + b, gx + b, e - b); });
}
void silu(const float* x, float* out, int64_t n) {
  parallel_for(n, kElemGrain / 4, [&](int64_t b, int64_t e) { silu_range(x + b, out + b, e - b); });
}
void silu_backward(const float* x, const float* gOut, float* gx, int64_t n) {
  parallel_for(n, kElemGrain / 4,
               [&](int64_t b, int64_t e) { silu_backward_range(x + b, gOut + b, gx + b, e - b); });
}
void relu2(const float* x, float* out, int64_t n) {
  parallel_for(n, kElemGrain, [&](int64_t b, int64_t e) { relu2_range(x + b, out + b, e - b); });
}
void relu2_backward(const float* x, const float* gOut, float* gx, int64_t n) {
  parallel_for(n, kElemGrain,
               [&](int64_t b, int64_t e) { relu2_backward_range(x + b, gOut + b, gx + b, e - b); });
}
void softcap(const float* x, float* out, int64_t n, float cap) {
  parallel_for(n, kElemGrain / 4, [&](int64_t b, int64_t e) { softcap_range(x + b, out + b, e - b, cap); });
}
void softcap_backward(const float* x, const float* gOut, float* gx, int64_t n, float cap) {
  parallel_for(n, kElemGrain / 4,
               [&](int64_t b, int64_t e) { softcap_backward_range(x + b, gOut + b, gx + b, e - b, cap); });
}
void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  parallel_for(n, kElemGrain / 4, [&](int64_t b, int64_t e) { swiglu_range(gate + b, up + b, out + b, e - b); });
}
void swiglu_backward(const float* gate, const float* up, const float* gOut, float* gGate, float* gUp, int64_t n) {
  parallel_for(n, kElemGrain / 4, [&](int64_t b, int64_t e) {
    swiglu_backward_range(gate + b, up + b, gOut + b, gGate + b, gUp + b, e - b);
  });
}

void exp(const float* x, float* out, int64_t n) {
  parallel_for(n, kElemGrain / 4, [&](int64_t b, int64_t e) { exp_range(x + b, out + b, e - b); });
}
void log_sigmoid(const float* x, float* out, int64_t n) {
  parallel_for(n, kElemGrain / 4, [&](int64_t b, int64_t e) { log_sigmoid_range(x + b, out + b, e - b); });
}
void log_sigmoid_backward(const float* x, const float* gOut, float* gx, int64_t n) {
  parallel_for(n, kElemGrain / 4,
               [&](int64_t b, int64_t e) { log_sigmoid_backward_range(x + b, gOut + b, gx + b, e - b); });
}
void clamp(const float* x, float* out, int64_t n, float lo, float hi) {
  parallel_for(n, kElemGrain, [&](int64_t b, int64_t e) { clamp_range(x + b, out + b, e - b, lo, hi); });
}
void clamp_backward(const float* x, const float* gOut, float* gx, int64_t n, float lo, float hi) {
  parallel_for(n, kElemGrain,
               [&](int64_t b, int64_t e) { clamp_backward_range(x + b, gOut + b, gx + b, e - b, lo, hi); });
}
void minimum(const float* a, const float* b, float* out, int64_t n) {
  parallel_for(n, kElemGrain, [&](int64_t s, int64_t e) { minimum_range(a + s, b + s, out + s, e - s); });
}
void minimum_backward(const float* a, const float* b, const float* gOut, float* ga, float* gb, int64_t n) {
  parallel_for(n, kElemGrain, [&](int64_t s, int64_t e) {
    minimum_backward_range(a + s, b + s, gOut + s, ga + s, gb + s, e - s);
  });
}

// x [batch, t, heads, headDim]; row (b, i, h) is at position pos0 + i, or positions[b·t + i] when
// positions is given. Safe in place (out == x).
void rope(const float* x, float* out, const float* cos, const float* sin, int64_t batch, int64_t t,
          int64_t heads, int64_t headDim, int64_t pos0, const int32_t* positions, bool inverse) {
  int64_t half = headDim / 2, rows = batch * t * heads;
  float sign = inverse ? -1.0f : 1.0f;
  parallel_for(rows, row_grain(headDim), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      int64_t pos = positions ? positions[r / heads] : pos0 + (r / heads) % t;
      const float* xr = x + r * headDim;
      float* o = out + r * headDim;
      if (xr == o) {
        // In place: rotate through a copy of the row so the restrict-qualified loop sees distinct arrays.
        float tmp[512];
        if (headDim <= 512) {
          std::memcpy(tmp, xr, sizeof(float) * headDim);
          rope_row(tmp, o, cos + pos * half, sin + pos * half, half, sign);
          continue;
        }
        for (int64_t i = 0; i < half; i++) {
          float x0 = xr[i], x1 = xr[i + half], c = cos[pos * half + i], s = sign * sin[pos * half + i];
          o[i] = x0 * c - x1 * s;
          o[i + half] = x1 * c + x0 * s;
        }
        continue;
      }
      rope_row(xr, o, cos + pos * half, sin + pos * half, half, sign);
    }
  });
}

void dropout(const float* x, float* out, int64_t n, float p, uint32_t seed) {
  uint32_t seedHash = lowbias32(seed);
  float keepScale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  parallel_for(n, kElemGrain / 2,
               [&](int64_t b, int64_t e) { dropout_range(x, out, b, e, p, seedHash, keepScale); });
}

void dropout_backward(const float* gOut, float* gx, int64_t n, float p, uint32_t seed) {
  dropout(gOut, gx, n, p, seed);
}

void adamw(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWArgs& a) {
  float decay = 1.0f - a.lr * a.weightDecay;
  float stepSize = static_cast<float>(static_cast<double>(a.lr) / a.biasCorrection1);
  float invSqrtBc2 = static_cast<float>(1.0 / std::sqrt(a.biasCorrection2));
  parallel_for(n, kElemGrain / 2, [&](int64_t b, int64_t e) {
    adamw_range(param + b, grad + b, m + b, v + b, e - b, decay, a.beta1, a.beta2, stepSize, invSqrtBc2, a.eps);
  });
}

}  // namespace AS_ISA
}  // namespace as
