// Row-wise kernels over the last dimension: layer norm, RMS norm, softmax, fused cross-entropy and the
// gradient of token log-probs.
// Semantics: src/backend/backend.ts. Rows are independent, so forward passes (and the input gradients)
// split rows across threads; the weight gradients of the norms are summed per thread slot in float64 and
// combined in slot order afterwards (deterministic for a given thread count).
#include "ops_common.h"

namespace as {
namespace AS_ISA {
namespace {

// Σ (x - mean)² over a row.
float centered_squares(const float* __restrict x, int64_t n, float mean) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; j++) {
      float d = x[i + j] - mean;
      acc[j] += d * d;
    }
  float s = 0;
  for (; i < n; i++) s += (x[i] - mean) * (x[i] - mean);
  for (int j = 0; j < kLanes; j++) s += acc[j];
  return s;
}

void layer_norm_row(const float* __restrict x, const float* __restrict w, const float* __restrict b,
                    float* __restrict out, int64_t dim, float mean, float rstd) {
  for (int64_t c = 0; c < dim; c++) out[c] = (x[c] - mean) * rstd * w[c] + b[c];
}

// Σ g·w·(x − mean) over a row. (One accumulator array per loop: with two, GCC vectorises the outer loop
// with shuffles instead of the plain vector adds.)
float centered_triple_dot(const float* __restrict g, const float* __restrict w, const float* __restrict x,
                          int64_t n, float mean) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; j++) acc[j] += g[i + j] * w[i + j] * (x[i + j] - mean);
  float s = 0;
  for (; i < n; i++) s += g[i] * w[i] * (x[i] - mean);
  for (int j = 0; j < kLanes; j++) s += acc[j];
  return s;
}

void layer_norm_row_backward(const float* __restrict g, const float* __restrict x, const float* __restrict w,
                             float* __restrict gx, double* __restrict gwAcc, double* __restrict gbAcc,
                             int64_t dim, float mean, float rstd, float meanGw, float meanGwXhat) {
  for (int64_t c = 0; c < dim; c++) {
    float xhat = (x[c] - mean) * rstd;
    gx[c] = rstd * (g[c] * w[c] - meanGw - xhat * meanGwXhat);
    gwAcc[c] += static_cast<double>(g[c] * xhat);
    gbAcc[c] += static_cast<double>(g[c]);
  }
}

void rms_norm_row(const float* __restrict x, const float* __restrict w, float* __restrict out, int64_t dim,
                  float rstd) {
  for (int64_t c = 0; c < dim; c++) out[c] = x[c] * rstd * w[c];
}

// Σ g·w·x over a row.
float triple_dot(const float* __restrict g, const float* __restrict w, const float* __restrict x, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; j++) acc[j] += g[i + j] * w[i + j] * x[i + j];
  float s = 0;
  for (; i < n; i++) s += g[i] * w[i] * x[i];
  for (int j = 0; j < kLanes; j++) s += acc[j];
  return s;
}

void rms_norm_row_backward(const float* __restrict g, const float* __restrict x, const float* __restrict w,
                           float* __restrict gx, double* __restrict gwAcc, int64_t dim, float rstd, float coef) {
  // gx = rstd·g·w − x·rstd³·mean(g·w·x); coef = rstd³·mean(g·w·x).
  for (int64_t c = 0; c < dim; c++) {
    gx[c] = rstd * g[c] * w[c] - x[c] * coef;
    gwAcc[c] += static_cast<double>(g[c] * x[c] * rstd);
  }
}

void scale_row(float* __restrict x, int64_t n, float s) {
  for (int64_t i = 0; i < n; i++) x[i] *= s;
}

void softmax_row_backward(const float* __restrict y, const float* __restrict g, float* __restrict gx, int64_t n,
                          float dot) {
  for (int64_t i = 0; i < n; i++) gx[i] = y[i] * (g[i] - dot);
}

void exp_scaled_row(const float* __restrict x, float* __restrict out, int64_t n, float shift, float s) {
  for (int64_t i = 0; i < n; i++) out[i] = fast_exp(x[i] - shift) * s;
}

// Sums the per-slot float64 partials [nt][dim] into out[dim].
void reduce_slots(const double* parts, int nt, int64_t dim, float* out) {
  for (int64_t c = 0; c < dim; c++) {
    double s = 0;
    for (int t = 0; t < nt; t++) s += parts[t * dim + c];
    out[c] = static_cast<float>(s);
  }
}

}  // namespace

void layer_norm(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd,
                int64_t rows, int64_t dim, float eps) {
  parallel_for(rows, row_grain(dim), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * dim;
      float mu = lane_sum(xr, dim) / static_cast<float>(dim);
      float var = centered_squares(xr, dim, mu) / static_cast<float>(dim);
      float rs = 1.0f / std::sqrt(var + eps);
      mean[r] = mu;
      rstd[r] = rs;
      layer_norm_row(xr, w, b, out + r * dim, dim, mu, rs);
    }
  });
}

void layer_norm_backward(const float* gOut, const float* x, const float* w, const float* mean, const float* rstd,
                         float* gx, float* gw, float* gb, int64_t rows, int64_t dim) {
  int nt = threads_for(rows, row_grain(dim));
  thread_local std::vector<double> parts;
  parts.assign(static_cast<size_t>(nt) * dim * 2, 0.0);
  double* gwParts = parts.data();
  double* gbParts = parts.data() + static_cast<size_t>(nt) * dim;
  for_slots(rows, nt, [&](int slot, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* g = gOut + r * dim;
      const float* xr = x + r * dim;
      float sumGw = lane_dot(g, w, dim);
      float sumGwXhat = centered_triple_dot(g, w, xr, dim, mean[r]) * rstd[r];
      float inv = 1.0f / static_cast<float>(dim);
      layer_norm_row_backward(g, xr, w, gx + r * dim, gwParts + slot * dim, gbParts + slot * dim, dim, mean[r],
                              rstd[r], sumGw * inv, sumGwXhat * inv);
    }
  });
  reduce_slots(gwParts, nt, dim, gw);
  reduce_slots(gbParts, nt, dim, gb);
}

void rms_norm(const float* x, const float* w, float* out, float* rstd, int64_t rows, int64_t dim, float eps) {
  parallel_for(rows, row_grain(dim), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * dim;
      float ms = lane_dot(xr, xr, dim) / static_cast<float>(dim);
      float rs = 1.0f / std::sqrt(ms + eps);
      rstd[r] = rs;
      rms_norm_row(xr, w, out + r * dim, dim, rs);
    }
  });
}

void rms_norm_backward(const float* gOut, const float* x, const float* w, const float* rstd, float* gx, float* gw,
                       int64_t rows, int64_t dim) {
  int nt = threads_for(rows, row_grain(dim));
  thread_local std::vector<double> parts;
  parts.assign(static_cast<size_t>(nt) * dim, 0.0);
  double* gwParts = parts.data();
  for_slots(rows, nt, [&](int slot, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* g = gOut + r * dim;
      const float* xr = x + r * dim;
      float rs = rstd[r];
      float coef = rs * rs * rs * triple_dot(g, w, xr, dim) / static_cast<float>(dim);
      rms_norm_row_backward(g, xr, w, gx + r * dim, gwParts + slot * dim, dim, rs, coef);
    }
  });
  reduce_slots(gwParts, nt, dim, gw);
}

void softmax(const float* x, float* out, int64_t rows, int64_t dim) {
  parallel_for(rows, row_grain(dim) / 4 + 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * dim;
      float* o = out + r * dim;
      float mx = lane_max(xr, dim);
      float s = exp_shifted(xr, o, dim, mx);
      scale_row(o, dim, 1.0f / s);
    }
  });
}

void softmax_backward(const float* y, const float* gOut, float* gx, int64_t rows, int64_t dim) {
  parallel_for(rows, row_grain(dim), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* yr = y + r * dim;
      const float* g = gOut + r * dim;
      softmax_row_backward(yr, g, gx + r * dim, dim, lane_dot(yr, g, dim));
    }
  });
}

// Targets are validated by the binding: each is ignoreIndex or in [0, vocab). lse is saved for every row
// (ignored rows included); ignored rows get loss 0.
void cross_entropy(const float* logits, const int32_t* targets, float* loss, float* lse, int64_t rows,
                   int64_t vocab, int32_t ignoreIndex) {
  parallel_for(rows, row_grain(vocab) / 4 + 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = logits + r * vocab;
      float mx = lane_max(xr, vocab);
      float l = mx + std::log(exp_shifted_sum(xr, vocab, mx));
      lse[r] = l;
      int32_t t = targets[r];
      loss[r] = t == ignoreIndex ? 0.0f : l - xr[t];
    }
  });
}

void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse, float* gx, int64_t rows,
                            int64_t vocab, int32_t ignoreIndex, float gScale) {
  parallel_for(rows, row_grain(vocab) / 4 + 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      float* g = gx + r * vocab;
      int32_t t = targets[r];
      if (t == ignoreIndex) {
        std::memset(g, 0, sizeof(float) * vocab);
        continue;
      }
      exp_scaled_row(logits + r * vocab, g, vocab, lse[r], gScale);
      g[t] -= gScale;
    }
  });
}

// cross_entropy_backward with a gradient per row and the sign of log-probs: (onehot − softmax)·gOut[r].
void token_log_probs_backward(const float* logits, const int32_t* targets, const float* lse, const float* gOut,
                              float* gx, int64_t rows, int64_t vocab, int32_t ignoreIndex) {
  parallel_for(rows, row_grain(vocab) / 4 + 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      float* g = gx + r * vocab;
      int32_t t = targets[r];
      if (t == ignoreIndex) {
        std::memset(g, 0, sizeof(float) * vocab);
        continue;
      }
      exp_scaled_row(logits + r * vocab, g, vocab, lse[r], -gOut[r]);
      g[t] += gOut[r];
    }
  });
}

}  // namespace AS_ISA
}  // namespace as
