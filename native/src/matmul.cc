// Matrix multiply C = op(A)·op(B) per batch item (see MatmulArgs in kernels.h / backend.ts).
//
// The GotoBLAS/BLIS scheme: C is computed in NC-column blocks; for each kc-deep slice, op(B) is packed
// into NR-wide micro-panels (shared by all threads), op(A) into MR-tall micro-panels (per thread, mc rows
// at a time), and a register-blocked micro-kernel multiplies one MR×kc panel by one kc×NR panel into an
// MR×NR tile of C held entirely in vector registers. Transposes are absorbed by the packing routines.
// Matrix-vector products (m == 1 or n == 1, the decode case) skip packing: they are memory-bound, so they
// stream the matrix once with dot products or axpys; so do products with a few rows (2..16, batched
// decode), with register tiles that use each streamed element of B for all the rows. Threads: the row
// split shares one packed B per depth block (one barrier each); the column split, used when M is small,
// shares nothing.
//
// This file is compiled once per instruction set (AS_ISA = avx512 | avx2 | generic); the tile sizes and
// the vector type follow from the compiler flags.
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

#include "kernels.h"
#include "ops_common.h"
#include "threadpool.h"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace as {
namespace AS_ISA {
namespace {

// ---------------------------------------------------------------------------------------------------
// A minimal vector layer so the kernels below are written once.
#if defined(__AVX512F__)
using vec = __m512;
constexpr int VW = 16;
inline vec vload(const float* p) { return _mm512_loadu_ps(p); }
inline vec vloada(const float* p) { return _mm512_load_ps(p); }
inline void vstore(float* p, vec v) { _mm512_storeu_ps(p, v); }
inline vec vzero() { return _mm512_setzero_ps(); }
inline vec vset1(float x) { return _mm512_set1_ps(x); }
inline vec vadd(vec a, vec b) { return _mm512_add_ps(a, b); }
inline vec vfma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
inline float vsum(vec v) {
  __m256 h = _mm256_add_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
constexpr int MR = 12, NV = 2;  // 12×32 tile: 24 accumulators + 2 B vectors + 1 broadcast of 32 zmm
#elif defined(__AVX2__) && defined(__FMA__)
using vec = __m256;
constexpr int VW = 8;
inline vec vload(const float* p) { return _mm256_loadu_ps(p); }
inline vec vloada(const float* p) { return _mm256_load_ps(p); }
inline void vstore(float* p, vec v) { _mm256_storeu_ps(p, v); }
inline vec vzero() { return _mm256_setzero_ps(); }
inline vec vset1(float x) { return _mm256_set1_ps(x); }
inline vec vadd(vec a, vec b) { return _mm256_add_ps(a, b); }
inline vec vfma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
inline float vsum(vec v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
constexpr int MR = 6, NV = 2;  // 6×16 tile: 12 accumulators + 2 B vectors + 1 broadcast of 16 ymm
#else
// Portable: GCC/Clang vector extensions (SSE2 on x86-64, NEON on arm64), no FMA contraction.
typedef float vec __attribute__((vector_size(16)));
constexpr int VW = 4;
inline vec vload(const float* p) {
  vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline vec vloada(const float* p) { return *reinterpret_cast<const vec*>(p); }
inline void vstore(float* p, vec v) { std::memcpy(p, &v, sizeof v); }
inline vec vzero() { return vec{0, 0, 0, 0}; }
inline vec vset1(float x) { return vec{x, x, x, x}; }
inline vec vadd(vec a, vec b) { return a + b; }
inline vec vfma(vec a, vec b, vec c) { return a * b + c; }
inline float vsum(vec v) { return (v[0] + v[1]) + (v[2] + v[3]); }
constexpr int MR = 4, NV = 2;  // 4×8 tile: 8 accumulators + 2 + 1 of 16 xmm
#endif

constexpr int NR = NV * VW;
// Cache blocking: an MR×kc A micro-panel (up to 24 KB on AVX-512) stays in L1 while it sweeps a chunk of
// the packed B block that fits L2 (about 512 KB), next to the mc×kc packed A block (about 192 KB); the
// whole kc×NC packed B block sits in L3, and a wide NC means A is packed rarely. The depth kc adapts to K:
// K up to KC_MAX is one block, so C is written once instead of read and rewritten per block (worth 5-25%
// on the K = 384 training shapes); deeper products take equal blocks of at most KC_MAX. The row block and
// the B chunk shrink with kc to stay within their cache budgets. (-D overrides are for tuning with
// native/dev.)
#ifndef AS_TUNE_KC
#define AS_TUNE_KC 512
#endif
#ifndef AS_TUNE_ABYTES
#define AS_TUNE_ABYTES 196608
#endif
#ifndef AS_TUNE_BBYTES
#define AS_TUNE_BBYTES 524288
#endif
#ifndef AS_TUNE_NC
#define AS_TUNE_NC 4096
#endif
constexpr int64_t KC_MAX = AS_TUNE_KC;
constexpr int64_t NC = NR * (AS_TUNE_NC / NR);

// Block sizes of one product of depth K.
struct Blocking {
  int64_t kc;      // depth of one block (the last may be shorter)
  int64_t mc;      // rows of A packed at a time, a multiple of MR
  int64_t bchunk;  // packed B micro-panels swept by one A micro-panel before the next
  // bytes_per_k: what one k-value of one row costs in a packed panel (4 for float, 2 for bf16); pair-packed
  // panels (bf16) need an even depth per block and may go twice as deep for the same cache budget.
  explicit Blocking(int64_t K, int64_t bytes_per_k = 4) {
    const int64_t kc_max = KC_MAX * 4 / bytes_per_k;
    const int64_t blocks = (K + kc_max - 1) / kc_max;
    kc = (K + blocks - 1) / blocks;
    if (bytes_per_k < 4) kc += kc & 1;
    const int64_t bytes = kc * bytes_per_k;
    mc = std::max<int64_t>(MR, AS_TUNE_ABYTES / (bytes * MR) * MR);
    bchunk = std::max<int64_t>(1, AS_TUNE_BBYTES / (bytes * NR));
  }
};

// ---------------------------------------------------------------------------------------------------
// Packing buffers: grown on demand, 64-byte aligned, kept for the thread's lifetime (no malloc per call).
struct Buffer {
  float* p = nullptr;
  size_t cap = 0;
  float* get(size_t n) {
    if (n > cap) {
      std::free(p);
      size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p) std::abort();
      cap = n;
    }
    return p;
  }
  ~Buffer() { std::free(p); }
};
thread_local Buffer tl_apack, tl_bpack;

// Spin barrier for the threads of one parallel region (they all run at once on the pool).
struct Barrier {
  std::atomic<int> count{0};
  std::atomic<int> gen{0};
  int n;
  explicit Barrier(int n_) : n(n_) {}
  void wait() {
    int g = gen.load(std::memory_order_acquire);
    if (count.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
      count.store(0, std::memory_order_relaxed);
      gen.fetch_add(1, std::memory_order_release);
      return;
    }
    for (int spin = 0; gen.load(std::memory_order_acquire) == g; spin++) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
      if (spin > 4000) std::this_thread::yield();  // the other thread may have been descheduled
    }
  }
};

// A matrix operand: element (r, c) is at p[r·rs + c·cs] (one of the strides is 1), or, for the bf16 GEMM
// only, bf16 bits at h[r·rs + c·cs] when h is set.
struct Operand {
  const float* p;
  int64_t rs, cs;
  const uint16_t* h = nullptr;
};

// ---------------------------------------------------------------------------------------------------
// Packing. A micro-panel is [kc][MR] (MR values of one k next to each other), a B micro-panel [kc][NR].
// Missing rows/columns at the edges are zero so the micro-kernel always runs full tiles.

#if defined(__AVX512F__)
// Lane masks for packing n <= R valid columns into an R-wide panel, 16 lanes a vector: `load` keeps the n
// valid lanes (masked loads read the rest as zeros), `store` the panel's R. R is 12 (an A panel) or 32 (B).
template <int R>
struct PanelMasks {
  static_assert(R <= 16 || R == 32, "vectors of 16");
  static constexpr int nv = R <= 16 ? 1 : 2;
  __mmask16 load[nv], store[nv];
  explicit PanelMasks(int64_t n) {
    for (int v = 0; v < nv; v++) {
      const int64_t have = std::clamp<int64_t>(n - 16 * v, 0, 16), width = std::min(16, R - 16 * v);
      load[v] = static_cast<__mmask16>((1u << have) - 1);
      store[v] = static_cast<__mmask16>((1u << width) - 1);
    }
  }
};
#endif

// dst[p·R + i] = src[p·ld + i] for i < n, 0 for n <= i < R.
template <int R>
inline void pack_copy(const float* src, int64_t ld, int64_t n, int64_t kc, float* dst) {
#if defined(__AVX512F__)
  const PanelMasks<R> mask(n);
  for (int64_t p = 0; p < kc; p++)
    for (int v = 0; v < mask.nv; v++)
      _mm512_mask_storeu_ps(dst + p * R + 16 * v, mask.store[v],
                            _mm512_maskz_loadu_ps(mask.load[v], src + p * ld + 16 * v));
#else
  for (int64_t p = 0; p < kc; p++) {
    const float* s = src + p * ld;
    float* d = dst + p * R;
    for (int64_t i = 0; i < n; i++) d[i] = s[i];
    for (int64_t i = n; i < R; i++) d[i] = 0.0f;
  }
#endif
}

// dst[p·R + i] = src[i·ld + p] for i < n, 0 for n <= i < R (a transpose), plain loops.
template <int R>
inline void pack_transpose_scalar(const float* src, int64_t ld, int64_t n, int64_t kc, float* dst) {
  // Blocks of 8 k-values: each source row contributes one short contiguous run.
  int64_t p0 = 0;
  for (; p0 + 8 <= kc; p0 += 8) {
    for (int64_t i = 0; i < n; i++) {
      const float* s = src + i * ld + p0;
      float* d = dst + p0 * R + i;
      for (int q = 0; q < 8; q++) d[q * R] = s[q];
    }
    for (int64_t i = n; i < R; i++)
      for (int q = 0; q < 8; q++) dst[(p0 + q) * R + i] = 0.0f;
  }
  for (; p0 < kc; p0++) {
    for (int64_t i = 0; i < n; i++) dst[p0 * R + i] = src[i * ld + p0];
    for (int64_t i = n; i < R; i++) dst[p0 * R + i] = 0.0f;
  }
}

#if defined(__AVX512F__)
// The same transpose 16 k-values at a time: up to 16 source rows are loaded, transposed in registers
// and written as 16 packed rows (masked to R columns, or two halves for R = 32).
template <int R>
inline void pack_transpose(const float* src, int64_t ld, int64_t n, int64_t kc, float* dst) {
  static_assert(R <= 16 || R == 32, "row groups of 16");
  constexpr int groups = R <= 16 ? 1 : 2;
  constexpr __mmask16 store_mask = R >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << R) - 1);
  __m512 r[16];
  for (int64_t p0 = 0; p0 < kc; p0 += 16) {
    const int64_t w = std::min<int64_t>(16, kc - p0);
    const __mmask16 load_mask = static_cast<__mmask16>((1u << w) - 1);
    for (int g = 0; g < groups; g++) {
      for (int i = 0; i < 16; i++) {
        const int64_t row = g * 16 + i;
        r[i] = row < n ? _mm512_maskz_loadu_ps(load_mask, src + row * ld + p0) : _mm512_setzero_ps();
      }
      transpose16(r);
      for (int64_t q = 0; q < w; q++) _mm512_mask_storeu_ps(dst + (p0 + q) * R + g * 16, store_mask, r[q]);
    }
  }
}
#elif defined(__AVX2__)
// In-register 8×8 transpose: r[i] holds row i on entry, column i on exit.
inline void transpose8(__m256* r) {
  __m256 t[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; i++) {
    t[i] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x20);
    t[i + 4] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x31);
  }
  for (int i = 0; i < 8; i++) r[i] = t[i];
}

// The same transpose 8 k-values at a time (full blocks only; the k tail and partial row groups use
// the scalar loop).
template <int R>
inline void pack_transpose(const float* src, int64_t ld, int64_t n, int64_t kc, float* dst) {
  static_assert(R <= 8 || R % 8 == 0, "row groups of 8");
  constexpr int groups = R <= 8 ? 1 : R / 8;
  const __m256i store_mask =
      _mm256_cmpgt_epi32(_mm256_set1_epi32(R >= 8 ? 8 : R), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const int64_t kfull = kc / 8 * 8;
  __m256 r[8];
  for (int64_t p0 = 0; p0 < kfull; p0 += 8) {
    for (int g = 0; g < groups; g++) {
      for (int i = 0; i < 8; i++) {
        const int64_t row = g * 8 + i;
        r[i] = row < n && (R >= 8 || i < R) ? _mm256_loadu_ps(src + row * ld + p0) : _mm256_setzero_ps();
      }
      transpose8(r);
      for (int q = 0; q < 8; q++) _mm256_maskstore_ps(dst + (p0 + q) * R + g * 8, store_mask, r[q]);
    }
  }
  if (kfull < kc) pack_transpose_scalar<R>(src + kfull, ld, n, kc - kfull, dst + kfull * R);
}
#else
template <int R>
inline void pack_transpose(const float* src, int64_t ld, int64_t n, int64_t kc, float* dst) {
  pack_transpose_scalar<R>(src, ld, n, kc, dst);
}
#endif

// A rows [i0, i0+mr), k range [p0, p0+kc) → one MR micro-panel.
inline void pack_a(const Operand& A, int64_t i0, int64_t mr, int64_t p0, int64_t kc, float* dst) {
  if (A.cs == 1)
    pack_transpose<MR>(A.p + i0 * A.rs + p0, A.rs, mr, kc, dst);
  else
    pack_copy<MR>(A.p + p0 * A.cs + i0, A.cs, mr, kc, dst);
}

// B k range [p0, p0+kc), columns [j0, j0+nr) → one NR micro-panel.
inline void pack_b(const Operand& B, int64_t p0, int64_t kc, int64_t j0, int64_t nr, float* dst) {
  if (B.cs == 1)
    pack_copy<NR>(B.p + p0 * B.rs + j0, B.rs, nr, kc, dst);
  else
    pack_transpose<NR>(B.p + j0 * B.cs + p0, B.cs, nr, kc, dst);
}

// ---------------------------------------------------------------------------------------------------
// Stores one accumulator row segment (VW columns) into C, only the first `cols` (1..VW) of them.
inline void store_part(float* c, vec v, int cols, bool add) {
#if defined(__AVX512F__)
  const __mmask16 m = static_cast<__mmask16>((1u << cols) - 1);
  if (add) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, c), v);
  _mm512_mask_storeu_ps(c, m, v);
#else
  alignas(64) float t[VW];
  vstore(t, v);
  for (int j = 0; j < cols; j++) c[j] = add ? c[j] + t[j] : t[j];
#endif
}

// Writes an R×NR accumulator tile to C (adding to C with `add`): only its first nr (<= NR) columns.
template <int R>
inline void store_tile(vec (&acc)[R][NV], float* c, int64_t ldc, bool add, int nr) {
  for (int i = 0; i < R; i++)
    for (int j = 0; j < NV && j * VW < nr; j++)
      store_part(c + i * ldc + j * VW, acc[i][j], std::min(VW, nr - j * VW), add);
}

// Micro-kernel: C[R×NR] (+)= Apanel[kc][MR] · Bpanel[kc][NR] for the first R (<= MR) rows of the panel,
// accumulators in registers; only the first nr (<= NR) columns are written.
template <int R>
void micro(int64_t kc, const float* __restrict pa, const float* __restrict pb, float* __restrict c, int64_t ldc,
           bool add, int nr) {
  vec acc[R][NV];
  for (int i = 0; i < R; i++)
    for (int j = 0; j < NV; j++) acc[i][j] = vzero();
  for (int64_t p = 0; p < kc; p++) {
    vec b[NV];
    for (int j = 0; j < NV; j++) b[j] = vloada(pb + j * VW);
    for (int i = 0; i < R; i++) {
      vec a = vset1(pa[i]);
      for (int j = 0; j < NV; j++) acc[i][j] = vfma(a, b[j], acc[i][j]);
    }
    pa += MR;
    pb += NR;
  }
  if (nr == NR) {
    for (int i = 0; i < R; i++)
      for (int j = 0; j < NV; j++) {
        float* cij = c + i * ldc + j * VW;
        vstore(cij, add ? vadd(vload(cij), acc[i][j]) : acc[i][j]);
      }
  } else {
    store_tile<R>(acc, c, ldc, add, nr);
  }
}

using MicroFn = void (*)(int64_t, const float*, const float*, float*, int64_t, bool, int);

// micro<1> ... micro<MR>, indexed by the number of valid rows (bottom-edge panels compute only those).
template <int... I>
constexpr std::array<MicroFn, sizeof...(I)> micro_table(std::integer_sequence<int, I...>) {
  return {{&micro<I + 1>...}};
}
constexpr auto kMicro = micro_table(std::make_integer_sequence<int, MR>{});

// The float32 panel format for the blocked GEMM below (bf16 pair panels are in matmul_bf16.h).
struct F32Panels {
  static constexpr int64_t bytes_per_k = 4;
  // Packed rows (of MR or NR floats) for depth kc.
  static int64_t depth(int64_t kc) { return kc; }
  static void pack_a(const Operand& A, int64_t i0, int64_t mr, int64_t p0, int64_t kc, float* dst) {
    as::AS_ISA::pack_a(A, i0, mr, p0, kc, dst);
  }
  static void pack_b(const Operand& B, int64_t p0, int64_t kc, int64_t j0, int64_t nr, float* dst) {
    as::AS_ISA::pack_b(B, p0, kc, j0, nr, dst);
  }
  static void micro(int rows, int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, bool add,
                    int nr) {
    if (rows == MR)
      as::AS_ISA::micro<MR>(kc, pa, pb, c, ldc, add, nr);
    else
      kMicro[rows - 1](kc, pa, pb, c, ldc, add, nr);
  }
};

// ---------------------------------------------------------------------------------------------------
// Blocked GEMM for one product, run by `nt` threads (tid = this thread) sharing the packed B block.
// `Panels` is the packed format: float32 (F32Panels) or bf16 pairs (Bf16Panels); every packed element,
// a float or a pair of bf16, takes 4 bytes, so the buffers are float arrays either way.
struct Gemm {
  Operand A, B;
  float* C;
  int64_t M, N, K;
  bool accumulate;
  Blocking blk;
  float* bpack;   // 2 × kcmax × NC' floats (double-buffered so one barrier per block suffices)
  int64_t kcmax;  // each packed B panel gets kcmax × NR floats, whatever this block's depth
  int64_t bstride;
  Barrier* barrier;
  bool upper;  // only the tiles that reach the diagonal or above it (a symmetric C; see MatmulArgs)
};

// Prefetches the rows [i0, i1) × depth [p0, p0 + kc) of op(A) — the next A block — a few cache lines at a
// time, spread over the micro-kernel calls of the current block, so packing that block later finds it in
// cache instead of waiting on memory (worth ~20% where few B panels share each packed A panel, e.g.
// 8192×128×384).
struct PrefetchA {
  const char* base = nullptr;
  int64_t stride = 0, lines_per_row = 0, total = 0, per_call = 0, at = 0;
  PrefetchA(const Operand& A, int64_t i0, int64_t i1, int64_t p0, int64_t kc, int64_t calls) {
    if (i1 <= i0 || calls <= 0) return;
    // Rows of A in memory: along k when A.cs == 1, along i otherwise.
    const bool by_row = A.cs == 1;
    const int64_t at0 = by_row ? i0 * A.rs + p0 : p0 * A.cs + i0, size = A.h ? 2 : 4;
    base = A.h ? reinterpret_cast<const char*>(A.h + at0) : reinterpret_cast<const char*>(A.p + at0);
    stride = (by_row ? A.rs : A.cs) * size;
    lines_per_row = ((by_row ? kc : i1 - i0) * size + 63) / 64;
    total = (by_row ? i1 - i0 : kc) * lines_per_row;
    per_call = (total + calls - 1) / calls;
  }
  void step() {
    for (int64_t t = 0; t < per_call && at < total; t++, at++)
      __builtin_prefetch(base + (at / lines_per_row) * stride + 64 * (at % lines_per_row), 0, 2);
  }
};

template <class Panels>
void gemm_thread(const Gemm& g, int tid, int nt) {
  const int64_t M = g.M, N = g.N, K = g.K;
  const int64_t KC = g.blk.kc, MC = g.blk.mc, BCHUNK = g.blk.bchunk;
  float* apack = tl_apack.get(static_cast<size_t>(MC * Panels::depth(KC)));
  int64_t iter = 0;
  // Split the work between threads by rows (each packs only its own A) or, when there are few row
  // panels, by column panels (each packs all of the small A). Pick the better-balanced split, once,
  // from the first column block; with many row panels always the row split, since the column split
  // packs all of A on every thread (on 8192×128×384 the two balance alike, and the column split ran 15%
  // slower).
  const int64_t nc0 = std::min(NC, N), npan0 = (nc0 + NR - 1) / NR, mpan = (M + MR - 1) / MR;
  const int64_t work_m = (mpan + nt - 1) / nt * MR * nc0, work_n = (npan0 + nt - 1) / nt * NR * M;
  const bool split_m = work_m <= work_n || mpan >= 16 * nt || g.upper;
  // The row split shares one packed B (threads pack a share each, then wait for all). In the column
  // split each thread packs and reads only its own panels, into a private buffer (the caller's for
  // thread 0), so no thread waits for another.
  const bool shared_b = split_m && nt > 1;
  const int64_t pstride = Panels::depth(g.kcmax) * NR;
  float* own = nullptr;
  if (!shared_b) own = tid == 0 ? g.bpack : tl_bpack.get(static_cast<size_t>(((npan0 + nt - 1) / nt) * pstride));
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    const int64_t npan = (nc + NR - 1) / NR;
    int64_t r0 = 0, r1 = M, q0 = 0, q1 = npan;
    if (split_m && g.upper) {
      // The upper triangle's rows [0, r) hold 1 − (1 − r/M)² of its work: split that evenly.
      auto bound = [&](int t) {
        return std::min(M, static_cast<int64_t>(mpan * (1.0 - std::sqrt(1.0 - double(t) / nt)) + 0.5) * MR);
      };
      r0 = bound(tid);
      r1 = tid + 1 == nt ? M : bound(tid + 1);
    } else if (split_m) {
      r0 = std::min(M, mpan * tid / nt * MR);
      r1 = std::min(M, mpan * (tid + 1) / nt * MR);
    } else {
      q0 = npan * tid / nt;
      q1 = npan * (tid + 1) / nt;
    }
    for (int64_t pc = 0; pc < K; pc += KC, iter++) {
      const int64_t kc = std::min(KC, K - pc);
      float* bp = shared_b ? g.bpack + (iter & 1) * g.bstride : own;
      const int64_t pk0 = shared_b ? npan * tid / nt : q0, pk1 = shared_b ? npan * (tid + 1) / nt : q1;
      const int64_t slot0 = shared_b ? 0 : q0;
      for (int64_t q = pk0; q < pk1; q++)
        Panels::pack_b(g.B, pc, kc, jc + q * NR, std::min<int64_t>(NR, nc - q * NR), bp + (q - slot0) * pstride);
      if (shared_b) g.barrier->wait();
      const bool add = g.accumulate || pc > 0;
      // Equal-sized MC blocks over this thread's rows.
      const int64_t rows = r1 - r0;
      if (rows <= 0 || q0 >= q1) continue;
      const int64_t nblk = (rows + MC - 1) / MC;
      const int64_t mcb = ((rows + nblk - 1) / nblk + MR - 1) / MR * MR;
      for (int64_t ic = r0; ic < r1; ic += mcb) {
        const int64_t mc = std::min(mcb, r1 - ic);
        const int64_t kd = Panels::depth(kc);
        for (int64_t ir = 0; ir < mc; ir += MR)
          Panels::pack_a(g.A, ic + ir, std::min<int64_t>(MR, mc - ir), pc, kc, apack + ir * kd);
        PrefetchA next(g.A, ic + mcb, std::min(r1, ic + 2 * mcb), pc, kc, (mc + MR - 1) / MR * (q1 - q0));
        // One A micro-panel stays in L1 while it sweeps a chunk of the packed B block that fits L2
        // (BCHUNK panels); C is written along its rows.
        for (int64_t qc = q0; qc < q1; qc += BCHUNK)
        for (int64_t ir = 0; ir < mc; ir += MR) {
          const int64_t mr = std::min<int64_t>(MR, mc - ir);
          for (int64_t q = qc; q < std::min(q1, qc + BCHUNK); q++) {
            const int64_t j = jc + q * NR, nr = std::min<int64_t>(NR, nc - q * NR);
            if (g.upper && ic + ir >= j + nr) continue;  // wholly below the diagonal: mirrored later
            const float* pb = bp + (q - slot0) * pstride;
            float* cc = g.C + (ic + ir) * N + j;
            Panels::micro(static_cast<int>(mr), kd, apack + ir * kd, pb, cc, N, add, static_cast<int>(nr));
            next.step();
          }
        }
      }
    }
  }
}

template <class Panels = F32Panels>
void gemm(const Operand& A, const Operand& B, float* C, int64_t M, int64_t N, int64_t K, bool accumulate, int nt,
          bool upper = false) {
  const Blocking blk(K, Panels::bytes_per_k);
  const int64_t ncmax = std::min(NC, (N + NR - 1) / NR * NR), kcmax = std::min(blk.kc, K);
  Gemm g{A, B, C, M, N, K, accumulate, blk, nullptr, kcmax, Panels::depth(kcmax) * ncmax, nullptr, upper};
  g.bpack = tl_bpack.get(static_cast<size_t>(2 * g.bstride));
  if (nt <= 1) {
    gemm_thread<Panels>(g, 0, 1);
    return;
  }
  Barrier barrier(nt);
  g.barrier = &barrier;
  parallel([&](int tid, int ntt) { gemm_thread<Panels>(g, tid, ntt); }, nt);
}

// ---------------------------------------------------------------------------------------------------
// Matrix-vector products (no packing; the matrix is read once).

inline float dot(const float* a, const float* b, int64_t n) {
  vec s0 = vzero(), s1 = vzero();
  int64_t i = 0;
  for (; i + 2 * VW <= n; i += 2 * VW) {
    s0 = vfma(vload(a + i), vload(b + i), s0);
    s1 = vfma(vload(a + i + VW), vload(b + i + VW), s1);
  }
  float s = vsum(vadd(s0, s1));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

// y[r] (+)= dot(W[r, :], x) for rows [r0, r1); W rows are ld apart, length K.
void gemv_rows(const float* W, int64_t ld, int64_t K, const float* x, float* y, int64_t r0, int64_t r1, bool add) {
  int64_t r = r0;
  // Four rows at a time share each load of x.
  for (; r + 4 <= r1; r += 4) {
    const float *w0 = W + r * ld, *w1 = w0 + ld, *w2 = w1 + ld, *w3 = w2 + ld;
    vec s0 = vzero(), s1 = vzero(), s2 = vzero(), s3 = vzero();
    int64_t p = 0;
    for (; p + VW <= K; p += VW) {
      vec xv = vload(x + p);
      s0 = vfma(vload(w0 + p), xv, s0);
      s1 = vfma(vload(w1 + p), xv, s1);
      s2 = vfma(vload(w2 + p), xv, s2);
      s3 = vfma(vload(w3 + p), xv, s3);
    }
    float t0 = vsum(s0), t1 = vsum(s1), t2 = vsum(s2), t3 = vsum(s3);
    for (; p < K; p++) {
      t0 += w0[p] * x[p];
      t1 += w1[p] * x[p];
      t2 += w2[p] * x[p];
      t3 += w3[p] * x[p];
    }
    if (add) {
      y[r] += t0, y[r + 1] += t1, y[r + 2] += t2, y[r + 3] += t3;
    } else {
      y[r] = t0, y[r + 1] = t1, y[r + 2] = t2, y[r + 3] = t3;
    }
  }
  for (; r < r1; r++) {
    float t = dot(W + r * ld, x, K);
    y[r] = add ? y[r] + t : t;
  }
}

// y[j] (+)= Σ_p x[p]·W[p, j] for columns [j0, j1); W rows are ld apart, K rows.
void gemv_cols(const float* W, int64_t ld, int64_t K, const float* x, float* y, int64_t j0, int64_t j1, bool add) {
  constexpr int CV = 8;  // a strip of 8 vectors of y stays in registers while the rows stream by
  int64_t j = j0;
  for (; j + CV * VW <= j1; j += CV * VW) {
    vec acc[CV];
    for (int v = 0; v < CV; v++) acc[v] = add ? vload(y + j + v * VW) : vzero();
    for (int64_t p = 0; p < K; p++) {
      vec xp = vset1(x[p]);
      const float* w = W + p * ld + j;
      for (int v = 0; v < CV; v++) acc[v] = vfma(xp, vload(w + v * VW), acc[v]);
    }
    for (int v = 0; v < CV; v++) vstore(y + j + v * VW, acc[v]);
  }
  for (; j + VW <= j1; j += VW) {
    vec acc = add ? vload(y + j) : vzero();
    for (int64_t p = 0; p < K; p++) acc = vfma(vset1(x[p]), vload(W + p * ld + j), acc);
    vstore(y + j, acc);
  }
  for (; j < j1; j++) {
    float s = 0;
    for (int64_t p = 0; p < K; p++) s += x[p] * W[p * ld + j];
    y[j] = add ? y[j] + s : s;
  }
}

// ---------------------------------------------------------------------------------------------------
// Matrix-vector products use another thread from 32K multiply-adds (~1.5 us on one core): in a decode
// step the kernel calls come microseconds apart, so the worker is still spinning and joins at once, and a
// worker slow to wake costs little, since the caller runs whatever it has not claimed. With the earlier
// 256K grain the 384-wide projections ran on one thread: batch-1 decode of the benchmark's small / medium
// / char configs is 1.4-1.7x faster with 32K (2026-12-01, 2 threads, alternating runs).
constexpr int64_t kGemvGrain = 32768;

// ---------------------------------------------------------------------------------------------------
// Few-row products (2 <= M <= matmul_small_m_max = 16, the batched-decode case: one row per active
// sequence). Packing a whole weight matrix for a handful of rows costs more than the product, so these
// stream op(B) straight from memory, once for all M rows, with the rows of A kept in L1/registers.

// Register tile for the dot-product form: JD rows of W (output columns) × ID rows of A, one vector
// accumulator each. Measured best of 2×8 … 8×3 with native/dev (AVX-512: 3×8 = 24 accumulators + 3 W
// vectors + 1 A vector of 32 zmm, so 8 decode rows read W once; AVX2: 4×3 = 12 + 4 of 16 ymm, the A
// operand folded into the FMA; portable, without FMA: 4×2).
#if defined(AS_TUNE_JD)
constexpr int JD = AS_TUNE_JD, ID = AS_TUNE_ID;
#elif defined(__AVX512F__)
constexpr int JD = 3, ID = 8;
#elif defined(__AVX2__)
constexpr int JD = 4, ID = 3;
#else
constexpr int JD = 4, ID = 2;
#endif

// y[0..3] (+)= the horizontal sums of a, b, c, d.
inline void store_sum4(float* y, vec a, vec b, vec c, vec d, bool add) {
#if defined(__AVX512F__) || defined(__AVX2__)
#if defined(__AVX512F__)
  __m128 s = hsum4(a, b, c, d);
#else
  // hadd pairs neighbours: after two rounds lane t of each 128-bit half holds a partial sum of input t.
  __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
#endif
  if (add) s = _mm_add_ps(_mm_loadu_ps(y), s);
  _mm_storeu_ps(y, s);
#else
  const float s[4] = {vsum(a), vsum(b), vsum(c), vsum(d)};
  for (int j = 0; j < 4; j++) y[j] = add ? y[j] + s[j] : s[j];
#endif
}

// C[i, j] (+)= Σ_p A[i, p]·W[j, p] for i < I, j < J: A and W rows are K long, lda / ldw apart.
// pf, when not null, is the next tile's W (J rows ldw apart): prefetched alongside, so the stream of W
// from L3/memory overlaps the arithmetic instead of alternating with it.
template <int J, int I>
void dot_tile(const float* __restrict W, int64_t ldw, const float* __restrict A, int64_t lda, int64_t K,
              float* __restrict C, int64_t ldc, bool add, const float* pf) {
  vec acc[J * I];
  for (int t = 0; t < J * I; t++) acc[t] = vzero();
  int64_t p = 0;
  for (; p + VW <= K; p += VW) {
    vec w[J];
    for (int j = 0; j < J; j++) w[j] = vload(W + j * ldw + p);
    if (pf && p % 16 == 0)  // one prefetch per 64-byte line
      for (int j = 0; j < J; j++) __builtin_prefetch(pf + j * ldw + p);
    for (int i = 0; i < I; i++) {
      vec a = vload(A + i * lda + p);
#if defined(__AVX512F__)
      // Keep the load in a register: folded into each FMA it would be loaded J times. (AVX2 has no spare
      // register for it: there the fold is the better trade.)
      asm("" : "+v"(a));
#endif
      for (int j = 0; j < J; j++) acc[i * J + j] = vfma(w[j], a, acc[i * J + j]);
    }
  }
#if defined(__AVX512F__)
  if (p < K) {  // the k tail as one masked step (zeros contribute nothing)
    const __mmask16 m = static_cast<__mmask16>((1u << (K - p)) - 1);
    vec w[J];
    for (int j = 0; j < J; j++) w[j] = _mm512_maskz_loadu_ps(m, W + j * ldw + p);
    for (int i = 0; i < I; i++) {
      const vec a = _mm512_maskz_loadu_ps(m, A + i * lda + p);
      for (int j = 0; j < J; j++) acc[i * J + j] = vfma(w[j], a, acc[i * J + j]);
    }
    p = K;
  }
#endif
  // Horizontal sums four accumulators at a time (s[i·J + j] is C[i, j]; ~10 % faster than one by one),
  // then the scalar k tail (AVX2 / portable), then C.
  constexpr int T = J * I;
  float s[(T + 3) / 4 * 4 + 4];
  constexpr int T4 = T / 4 * 4;  // constant bounds: GCC otherwise warns of the tail loop overrunning acc
  for (int t = 0; t < T4; t += 4) store_sum4(s + t, acc[t], acc[t + 1], acc[t + 2], acc[t + 3], false);
  for (int t = T4; t < T; t++) s[t] = vsum(acc[t]);
#if defined(__AVX512F__)
  if (J <= 4) {  // p == K here: each row's J sums go to C with one masked (add and) store
    const __mmask8 m = static_cast<__mmask8>((1u << J) - 1);
    for (int i = 0; i < I; i++) {
      __m128 v = _mm_loadu_ps(s + i * J);
      if (add) v = _mm_add_ps(_mm_maskz_loadu_ps(m, C + i * ldc), v);
      _mm_mask_storeu_ps(C + i * ldc, m, v);
    }
    return;
  }
#endif
  for (int i = 0; i < I; i++)
    for (int j = 0; j < J; j++) {
      float v = s[i * J + j];
      for (int64_t q = p; q < K; q++) v += A[i * lda + q] * W[j * ldw + q];
      float* c = C + i * ldc + j;
      *c = add ? *c + v : v;
    }
}

using DotTileFn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, float*, int64_t, bool,
                           const float*);

template <int J, int... I>
constexpr std::array<DotTileFn, sizeof...(I)> dot_row(std::integer_sequence<int, I...>) {
  return {{&dot_tile<J, I + 1>...}};
}
template <int... J>
constexpr std::array<std::array<DotTileFn, ID>, sizeof...(J)> dot_table(std::integer_sequence<int, J...>) {
  return {{dot_row<J + 1>(std::make_integer_sequence<int, ID>{})...}};
}
// kDotTile[j - 1][i - 1] computes a j × i tile.
constexpr auto kDotTile = dot_table(std::make_integer_sequence<int, JD>{});

#ifndef AS_TUNE_PFD  // prefetch distance in W blocks, and the L1 budget (bytes) that allows it
#define AS_TUNE_PFD 1
#define AS_TUNE_PFL1 32768
#endif
// C[:, j0:j1] (+)= A·Wᵀ for A [M, K] (rows contiguous) and W [N, K]: each block of JD rows of W is read
// from memory once and, from L1, dotted with every row of A. Deep products go in depth slices, so that a
// slice of A's rows, the current W block and the next (prefetched) one fit in L1 together: with k = 1024
// in one piece, 8 rows of A alone take 32 KB, the prefetch had to be off, and 8×384×1024 from memory ran
// at a third of its matrix-vector speed.
void small_m_dots(const float* A, const float* W, float* C, int64_t M, int64_t N, int64_t K, int64_t j0, int64_t j1,
                  bool add) {
  const int64_t rows = (AS_TUNE_PFD + 1) * JD + std::min<int64_t>(ID, M);
  const int64_t fit = std::max<int64_t>(16, AS_TUNE_PFL1 / (rows * 4) / 16 * 16);  // depth that fits L1
  const int64_t slices = (K + fit - 1) / fit, ks = ((K + slices - 1) / slices + 15) / 16 * 16;
  const bool prefetch = rows * std::min(ks, K) * 4 <= AS_TUNE_PFL1;
  for (int64_t k0 = 0; k0 < K; k0 += ks) {
    const int64_t kk = std::min(ks, K - k0);
    for (int64_t j = j0; j < j1; j += JD) {
      const int jd = static_cast<int>(std::min<int64_t>(JD, j1 - j));
      // The first row block prefetches the next W block (the rest find this one in L1).
      const float* next =
          j + (AS_TUNE_PFD + 1) * JD <= j1 && prefetch ? W + (j + AS_TUNE_PFD * JD) * K + k0 : nullptr;
      for (int64_t i = 0; i < M; i += ID) {
        const int id = static_cast<int>(std::min<int64_t>(ID, M - i));
        kDotTile[jd - 1][id - 1](W + j * K + k0, K, A + i * K + k0, K, kk, C + i * N + j, N, add || k0 > 0,
                                 i == 0 ? next : nullptr);
      }
    }
  }
}

// Micro-kernel over an unpacked B: C[R×NR] (+)= Apanel[kc][MR] · B[kc rows ldb apart][NR], like micro.
template <int R>
void micro_strided(int64_t kc, const float* __restrict pa, const float* __restrict b, int64_t ldb,
                   float* __restrict c, int64_t ldc, bool add, int nr) {
  vec acc[R][NV];
  for (int i = 0; i < R; i++)
    for (int j = 0; j < NV; j++) acc[i][j] = vzero();
  for (int64_t p = 0; p < kc; p++) {
    vec bv[NV];
    for (int j = 0; j < NV; j++) bv[j] = vload(b + j * VW);
    for (int i = 0; i < R; i++) {
      vec a = vset1(pa[i]);
      for (int j = 0; j < NV; j++) acc[i][j] = vfma(a, bv[j], acc[i][j]);
    }
    pa += MR;
    b += ldb;
  }
  store_tile<R>(acc, c, ldc, add, nr);
}

template <int... I>
constexpr std::array<decltype(&micro_strided<1>), sizeof...(I)> strided_table(std::integer_sequence<int, I...>) {
  return {{&micro_strided<I + 1>...}};
}
constexpr auto kMicroStrided = strided_table(std::make_integer_sequence<int, MR>{});

#ifndef AS_TUNE_KS
#define AS_TUNE_KS 64
#endif
// Depth of one slab of W rows in the axpy form (measured: 32-64 best, 8 and 256 up to 2x slower).
constexpr int64_t KS = AS_TUNE_KS;

// C[:, j0:j1] (+)= A·W for W [K, N] and A packed into MR-row panels (apack, panel i at apack + i·K).
// W is read once, in slabs of KS whole rows: walking one narrow strip down all K rows would touch a new
// 4 KB page per row (N >= 1024), which defeats the hardware prefetcher, while a slab sweeps its KS rows
// left to right as KS sequential streams. C (M × N, small) collects the slabs' partial sums in L1/L2.
// A partial strip at the right edge is first copied into a zero-padded buffer.
void small_m_axpys(const float* apack, const float* W, float* C, int64_t M, int64_t N, int64_t K, int64_t j0,
                   int64_t j1, bool add) {
  const int64_t jfull = j0 + (j1 - j0) / NR * NR;
  float* edge = nullptr;
  if (jfull < j1) {
    edge = tl_bpack.get(static_cast<size_t>(K * NR));
    pack_copy<NR>(W + jfull, N, j1 - jfull, K, edge);
  }
  for (int64_t pc = 0; pc < K; pc += KS) {
    const int64_t kc = std::min(KS, K - pc);
    const bool acc = add || pc > 0;
    for (int64_t j = j0; j < j1; j += NR) {
      const bool full = j < jfull;
      const float* b = full ? W + pc * N + j : edge + pc * NR;
      const int64_t ldb = full ? N : NR;
      const int nr = static_cast<int>(full ? NR : j1 - jfull);
      for (int64_t i = 0; i < M; i += MR) {
        const int mr = static_cast<int>(std::min<int64_t>(MR, M - i));
        kMicroStrided[mr - 1](kc, apack + i * K + pc * MR, b, ldb, C + i * N + j, N, acc, nr);
      }
    }
  }
}

// Few-row products use another thread from 128K multiply-adds (~1.5 us on one core), for the reason the
// GEMVs do: with the earlier 1M, a serving batch's k and v projections (8×192×384) ran on one thread, and
// an 8-row decode step of the small preset took 4.3-5.4 ms instead of 3.9-4.2 (alternating runs).
constexpr int64_t kSmallMGrain = 1 << 17;

thread_local Buffer tl_small;  // A for the few-row products, prepared once per call by the calling thread

}  // namespace

// Products with 2 <= M <= matmul_small_m_max rows take the few-row path. A variable, not a constant, only so
// native/dev/matmul_harness can time the packed path against it (0 turns the few-row path off).
int matmul_small_m_max = 16;

namespace {

// C (+)= op(A)·op(B) for few rows: op(B) is streamed once, split by columns between up to nt threads.
void small_m(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K, bool transA, bool transB,
             bool add, int nt) {
  const float* ap = a;
  if (transB) {
    if (transA) {  // the dot products want rows of A: transpose the small [K, M] A once
      float* t = tl_small.get(static_cast<size_t>(M * K));
      for (int64_t p = 0; p < K; p++)
        for (int64_t i = 0; i < M; i++) t[i * K + p] = a[p * M + i];
      ap = t;
    }
  } else {
    const Operand A = transA ? Operand{a, 1, M} : Operand{a, K, 1};
    const int64_t panels = (M + MR - 1) / MR;
    float* t = tl_small.get(static_cast<size_t>(panels * MR * K));
    for (int64_t i = 0; i < M; i += MR) pack_a(A, i, std::min<int64_t>(MR, M - i), 0, K, t + i * K);
    ap = t;
  }
  auto run = [&](int64_t j0, int64_t j1) {
    if (transB)
      small_m_dots(ap, b, c, M, N, K, j0, j1, add);
    else
      small_m_axpys(ap, b, c, M, N, K, j0, j1, add);
  };
  // Threads take whole 16-column units (64 bytes of each C row) so they never share a cache line of C;
  // the axpy form also keeps its NR-wide strips whole.
  const int64_t unit = transB ? 16 : std::max<int64_t>(16, NR);
  const int64_t units = (N + unit - 1) / unit;
  const int use = static_cast<int>(std::min<int64_t>({nt, units, M * N * K / kSmallMGrain}));
  if (use <= 1) {
    run(0, N);
    return;
  }
  parallel(
      [&](int tid, int ntt) {
        const int64_t u0 = units * tid / ntt, u1 = units * (tid + 1) / ntt;
        if (u0 < u1) run(u0 * unit, std::min(N, u1 * unit));
      },
      use);
}

#if defined(__AVX512BF16__)
#include "matmul_bf16.h"
constexpr bool kBf16Gemm = true;
#else
constexpr bool kBf16Gemm = false;
#endif

// x rounded to the nearest bf16 (ties to even), as a float: what vcvtne2ps2bf16 gives, float32 denormals
// becoming zero and NaN staying NaN.
inline float round_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000) == 0)
    u &= 0x80000000u;
  else if ((u & 0x7fffffff) > 0x7f800000)
    u |= 0x00400000u;
  else
    u += 0x7fffu + ((u >> 16) & 1);
  u &= 0xffff0000u;
  std::memcpy(&x, &u, 4);
  return x;
}

thread_local Buffer tl_round_a, tl_round_b;

// A copy of n floats rounded to bf16, in a per-thread buffer.
const float* rounded(const float* src, int64_t n, Buffer& buf) {
  float* dst = buf.get(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) dst[i] = round_bf16(src[i]);
  return dst;
}

// n bf16 values as floats, in a per-thread buffer; denormals become zero, as rounded() makes them.
const float* widened(const uint16_t* src, int64_t n, Buffer& buf) {
  float* dst = buf.get(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) {
    uint32_t u = static_cast<uint32_t>(src[i]) << 16;
    if ((u & 0x7f800000) == 0) u &= 0x80000000u;
    std::memcpy(dst + i, &u, 4);
  }
  return dst;
}

// One product of the batch, using up to `nt` threads. With `bf16` the operands are rounded to bf16 and
// multiplied with float32 accumulation: by the bf16 GEMM where the CPU has one and the product is large
// enough to pack, otherwise by rounding copies and running the float32 product on them (the same products,
// exact in float32, summed in another order). ah / bh: an operand given as bf16 bits instead (bf16 only).
void matmul_one(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K, bool transA, bool transB,
                bool add, int nt, bool bf16 = false, bool symmetric = false, const uint16_t* ah = nullptr,
                const uint16_t* bh = nullptr) {
  if (K == 0) {
    if (!add) std::fill(c, c + M * N, 0.0f);
    return;
  }
  if (bf16 && !(kBf16Gemm && M > matmul_small_m_max && N > 1)) {
    a = ah ? widened(ah, M * K, tl_round_a) : rounded(a, M * K, tl_round_a);
    b = bh ? widened(bh, K * N, tl_round_b) : rounded(b, K * N, tl_round_b);
    ah = bh = nullptr;
    bf16 = false;
  }
  if (M == 1 || N == 1) {
    // m == 1: c[j] = Σ_p a[p]·B(p, j) — a is contiguous either way.
    // n == 1: c[i] = Σ_p A(i, p)·b[p] — b is contiguous either way.
    const float* x = M == 1 ? a : b;
    const float* W = M == 1 ? b : a;
    const int64_t len = M == 1 ? N : M;
    // Rows of W dotted with x (B stored [n, k] / A stored [m, k]), or axpys down its columns.
    const bool rows = M == 1 ? transB : !transA;
    auto run = [&](int64_t lo, int64_t hi) {
      if (rows)
        gemv_rows(W, K, K, x, c, lo, hi, add);
      else
        gemv_cols(W, len, K, x, c, lo, hi, add);
    };
    // Column strips for the axpy form are whole vector strips so the threads never share a cache line.
    const int64_t unit = rows ? 1 : 16;
    const int64_t units = (len + unit - 1) / unit;
    const int use = static_cast<int>(std::min<int64_t>({nt, units, len * K / kGemvGrain}));
    if (use <= 1) {
      run(0, len);
      return;
    }
    parallel(
        [&](int tid, int ntt) {
          const int64_t u0 = units * tid / ntt, u1 = units * (tid + 1) / ntt;
          if (u0 < u1) run(u0 * unit, std::min(len, u1 * unit));
        },
        use);
    return;
  }
  if (M <= matmul_small_m_max) {
    small_m(a, b, c, M, N, K, transA, transB, add, nt);
    return;
  }
  Operand A = transA ? Operand{a, 1, M, ah} : Operand{a, K, 1, ah};
  Operand B = transB ? Operand{b, 1, K, bh} : Operand{b, N, 1, bh};
  // Up to 128×128×128 (~15 us on one core) a product runs on one thread: splitting it saves a few
  // microseconds on an idle machine but costs a scheduler time slice when the other core is busy.
  if (static_cast<double>(M) * N * K <= 2097152.0) nt = 1;
  const bool upper = symmetric && M == N;
#if defined(__AVX512BF16__)
  if (bf16)
    gemm<Bf16Panels>(A, B, c, M, N, K, add, nt, upper);
  else
#endif
    gemm(A, B, c, M, N, K, add, nt, upper);
  // The tiles below the diagonal were skipped: C[i, j] = C[j, i]. (Where C is symmetric this equals the full
  // product bit for bit: both entries sum the same products in the same order.)
  if (upper)
    for (int64_t i = 1; i < M; i++)
      for (int64_t j = 0; j < i; j++) c[i * N + j] = c[j * N + i];
}

void matmul_batch(const float* a, const float* b, float* c, const MatmulArgs& args, bool bf16) {
  int64_t batch = args.batch, M = args.m;
  const int64_t N = args.n, K = args.k;
  if (batch <= 0 || M <= 0 || N <= 0) return;
  // A shared B with contiguous untransposed A items is one tall product: fold the batch into M.
  if (batch > 1 && args.strideB == 0 && !args.transA && args.strideA == M * K && !args.symmetric) {
    M *= batch;
    batch = 1;
  }
  const int nt = num_threads();
  const double flops = static_cast<double>(M) * N * K;  // multiply-adds per item
  auto item = [&](int64_t bi, int threads) {
    const uint16_t* ah = args.ah ? args.ah + bi * args.strideA : nullptr;
    const uint16_t* bh = args.bh ? args.bh + bi * args.strideB : nullptr;
    const float* ai = a ? a + bi * args.strideA : nullptr;
    const float* bi_ = b ? b + bi * args.strideB : nullptr;
    matmul_one(ai, bi_, c + bi * M * N, M, N, K, args.transA, args.transB, args.accumulate, threads, bf16,
               args.symmetric, ah, bh);
  };
  // One item, one thread, or too little work in all to share (see matmul_one): items in order.
  if (batch == 1 || nt == 1 || flops * batch <= 2097152.0) {
    for (int64_t bi = 0; bi < batch; bi++) item(bi, nt);
    return;
  }
  // Many products: split the batch between threads when that balances well or the items are small;
  // otherwise run the items one after another, each on all threads.
  if (batch % nt == 0 || flops < 4.0e6 || batch >= 4 * nt) {
    parallel_for(batch, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t bi = b0; bi < b1; bi++) item(bi, 1);
    });
    return;
  }
  for (int64_t bi = 0; bi < batch; bi++) item(bi, nt);
}

}  // namespace

void matmul(const float* a, const float* b, float* c, const MatmulArgs& args) { matmul_batch(a, b, c, args, false); }

void matmul_bf16(const float* a, const float* b, float* c, const MatmulArgs& args) {
  matmul_batch(a, b, c, args, true);
}

}  // namespace AS_ISA
}  // namespace as
