// Small helpers shared by ops.cc, ops_norm.cc and ops_attention.cc. Each of those files is compiled once
// per instruction set, so everything here lives in an anonymous namespace inside AS_ISA: every compilation
// gets its own copy, built with its own flags (a shared inline function could otherwise be merged by the
// linker into the AVX-512 copy and run on a CPU without it).
//
// Reductions are written with kLanes independent accumulators: the compiler may not reorder float
// additions on its own (no -ffast-math), but it turns "acc[j] += x[i + j]" into plain vector adds.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels.h"
#include "threadpool.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace as {
namespace AS_ISA {
namespace {

constexpr int kLanes = 16;

#if defined(__AVX512BF16__)
// vcvtne2ps2bf16(b, a) puts bf16(a) in 16-bit lanes 0..15 and bf16(b) in 16..31; this permutation interleaves
// them a0 b0 a1 b1 …, so each 32-bit word pairs a[i] with b[i]: the operand vdpbf16ps multiplies (the bf16
// GEMM's panels and attention's pair words).
inline __m512i pair_interleave_index() {
  alignas(64) static const uint16_t idx[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                               8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  return _mm512_load_si512(idx);
}
#endif
// Elements per thread below which an elementwise kernel stays on one thread.
constexpr int64_t kElemGrain = 1 << 15;

// Rows per thread so that each thread gets at least ~kElemGrain elements of work.
inline int64_t row_grain(int64_t dim) { return dim >= kElemGrain ? 1 : kElemGrain / (dim < 1 ? 1 : dim); }

inline float lane_sum(const float* __restrict x, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; j++) acc[j] += x[i + j];
  float s = 0;
  for (; i < n; i++) s += x[i];
  for (int j = 0; j < kLanes; j++) s += acc[j];
  return s;
}

inline float lane_dot(const float* __restrict a, const float* __restrict b, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; j++) acc[j] += a[i + j] * b[i + j];
  float s = 0;
  for (; i < n; i++) s += a[i] * b[i];
  for (int j = 0; j < kLanes; j++) s += acc[j];
  return s;
}

inline float lane_max(const float* __restrict x, int64_t n) {
  float acc[kLanes];
  for (int j = 0; j < kLanes; j++) acc[j] = -INFINITY;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; j++) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
  float m = -INFINITY;
  for (; i < n; i++) m = x[i] > m ? x[i] : m;
  for (int j = 0; j < kLanes; j++) m = acc[j] > m ? acc[j] : m;
  return m;
}

// Σ x in float64 (for the reductions that return a number).
inline double lane_sum_f64(const float* __restrict x, int64_t n) {
  double acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) acc[j] += static_cast<double>(x[i + j]);
  double s = 0;
  for (; i < n; i++) s += x[i];
  for (int j = 0; j < 8; j++) s += acc[j];
  return s;
}

inline double lane_sum_squares_f64(const float* __restrict x, int64_t n) {
  double acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) {
      double d = x[i + j];
      acc[j] += d * d;
    }
  double s = 0;
  for (; i < n; i++) s += static_cast<double>(x[i]) * x[i];
  for (int j = 0; j < 8; j++) s += acc[j];
  return s;
}

#if defined(__AVX512F__)
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own `_mm512_undefined_*` idiom.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// In-register 16×16 transpose: r[i] holds row i on entry, column i on exit.
inline void transpose16(__m512* r) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
    r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
    r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
  }
  for (int h = 0; h < 16; h += 8)
    for (int i = 0; i < 4; i++) {
      t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
      t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xdd);
    }
  for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
}

// The horizontal sums of a, b, c, d as lanes 0..3: one reduction tree for four dot products. (The low
// half is extractf32x8(v, 0), the same code as castps512_ps256, whose GCC 12 expansion trips a false
// -Wuninitialized, GCC bug 105593.)
inline __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
  auto half = [](__m512 v) { return _mm256_add_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1)); };
  // hadd pairs neighbours: after two rounds lane t of each 128-bit half holds a partial sum of input t.
  const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(half(a), half(b)), _mm256_hadd_ps(half(c), half(d)));
  return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}
#endif

// exp(x) for float, branch-free so loops over it vectorise (Cephes expf: x = n·ln2 + r with |r| <= ln2/2,
// e^r by a degree-6 polynomial, 2^n through the exponent bits). Relative error ~2 ulp (measured < 3e-7).
// Below -87.33 it returns 0 and above 88 +inf (true e^x is < 1.2e-38 resp. > 1.6e38 there).
inline float fast_exp(float x) {
  const float lo = -87.33654475f, hi = 88.0f;
  float xc = x < lo ? lo : (x > hi ? hi : x);
  // Round x·log2(e) to the nearest integer by adding and removing 1.5·2^23.
  float n = xc * 1.44269504088896341f + 12582912.0f;
  n -= 12582912.0f;
  float r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float z = r * r;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * z + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float pow2n;
  std::memcpy(&pow2n, &bits, sizeof pow2n);
  float res = y * pow2n;
  res = x < lo ? 0.0f : res;
  res = x > hi ? INFINITY : res;
  return res;
}

// 1 / (1 + e^-x), accurate in both tails (no 1 − small cancellation).
inline float sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }

// out[i] = exp(x[i] - shift); returns Σ out (float lanes).
inline float exp_shifted(const float* __restrict x, float* __restrict out, int64_t n, float shift) {
  for (int64_t i = 0; i < n; i++) out[i] = fast_exp(x[i] - shift);
  return lane_sum(out, n);
}

// Σ exp(x[i] - shift) without an output buffer (chunks through a small stack buffer).
inline float exp_shifted_sum(const float* __restrict x, int64_t n, float shift) {
  constexpr int64_t kChunk = 256;
  float buf[kChunk];
  float s = 0;
  for (int64_t i = 0; i < n; i += kChunk) {
    int64_t len = n - i < kChunk ? n - i : kChunk;
    s += exp_shifted(x + i, buf, len, shift);
  }
  return s;
}

// A thread-local buffer of at least n floats, kept between calls (no allocation in steady state).
inline float* scratch(std::vector<float>& buf, size_t n) {
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// Threads to use for `n` items given at least `grain` items per thread.
inline int threads_for(int64_t n, int64_t grain) {
  if (grain < 1) grain = 1;
  int64_t want = (n + grain - 1) / grain;
  int64_t nt = num_threads();
  return static_cast<int>(want < 1 ? 1 : (want < nt ? want : nt));
}

// f(slot, begin, end) over a static partition of [0, n) into `nt` slots. If the pool runs fewer threads
// (nested call), slot 0 covers everything: callers size per-slot buffers by `nt` and zero them first.
template <class F>
inline void for_slots(int64_t n, int nt, F&& f) {
  if (n <= 0) return;
  if (nt <= 1) {
    f(0, int64_t(0), n);
    return;
  }
  parallel(
      [&](int tid, int ntt) {
        int64_t chunk = (n + ntt - 1) / ntt;
        int64_t b = chunk * tid < n ? chunk * tid : n;
        int64_t e = b + chunk < n ? b + chunk : n;
        if (b < e) f(tid, b, e);
      },
      nt);
}

}  // namespace
}  // namespace AS_ISA
}  // namespace as
