// bf16 panels for the blocked GEMM of matmul.cc, on CPUs with AVX-512 BF16 (included there, inside its
// anonymous namespace, only when compiled with -mavx512bf16).
//
// vdpbf16ps multiplies pairs: acc.f32[j] += a.bf16[2j]·b.bf16[2j] + a.bf16[2j+1]·b.bf16[2j+1], each product
// exact in float32 and each sum rounded to nearest even, so one instruction does two k-steps of the float32
// FMA micro-kernel at the same throughput. Panels therefore hold pairs of consecutive k: a packed element
// is a 32-bit word (bf16 of k = 2q in the low half, k = 2q + 1 in the high half), an A panel is [kc/2][MR]
// words and a B panel [kc/2][NR] words; an odd last k is paired with a zero. Rounding to bf16 (nearest
// even, with vcvtne2ps2bf16, which treats float32 denormals as zero) happens in packing, so the operands
// stay float32 in memory (or arrive as bf16 bits, below) and each is read once per block, as in the float32
// GEMM.
#pragma once

// A source is floats (rounded to bf16 here, nearest even) or bf16 bits (an operand kept as a bf16 copy,
// MatmulArgs::ah / bh, which needs only pairing). Two loads cover both packings below:

// 16 values of row r0 as bf16 in halves 0..15 and of row r1 in 16..31 (r1 null: zeros); `m` masks the lanes.
inline __m512i row_pair(const float* r0, const float* r1, __mmask16 m) {
  const __m512 b = r1 ? _mm512_maskz_loadu_ps(m, r1) : _mm512_setzero_ps();
  return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(b, _mm512_maskz_loadu_ps(m, r0)));
}
inline __m512i row_pair(const uint16_t* r0, const uint16_t* r1, __mmask16 m) {
  const __m256i b = r1 ? _mm256_maskz_loadu_epi16(m, r1) : _mm256_setzero_si256();
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_maskz_loadu_epi16(m, r0)), b, 1);
}

// w <= 32 consecutive values of one row as bf16, in order (the rest zero).
inline __m512 row_run(const float* s, int64_t w) {
  const __mmask16 lo = static_cast<__mmask16>((1u << std::min<int64_t>(16, w)) - 1);
  const __mmask16 hi = static_cast<__mmask16>((1u << std::max<int64_t>(0, w - 16)) - 1);
  return reinterpret_cast<__m512>(_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, s + 16), _mm512_maskz_loadu_ps(lo, s)));
}
inline __m512 row_run(const uint16_t* s, int64_t w) {
  const __mmask32 m = w == 32 ? 0xFFFFFFFFu : static_cast<__mmask32>((1u << w) - 1);
  return _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(m, s));
}

// Rows p of src (ld apart) hold n <= R contiguous elements: dst[q][R] words pair rows 2q and 2q + 1
// (k runs down the rows), zero-padded to R columns.
template <int R, class T>
inline void pack_pairs_down(const T* src, int64_t ld, int64_t n, int64_t kc, float* dst_) {
  auto* dst = reinterpret_cast<int32_t*>(dst_);
  const PanelMasks<R> mask(n);
  const __m512i idx = pair_interleave_index();
  for (int64_t p = 0; p < kc; p += 2) {
    for (int v = 0; v < mask.nv; v++) {
      const T* r0 = src + p * ld + 16 * v;
      const __m512i h = _mm512_permutexvar_epi16(idx, row_pair(r0, p + 1 < kc ? r0 + ld : nullptr, mask.load[v]));
      _mm512_mask_storeu_epi32(dst + (p / 2) * R + 16 * v, mask.store[v], h);
    }
  }
}

// n <= R rows of src (ld apart) each hold kc contiguous k-values: dst[q][R] words pair k = 2q and 2q + 1 of
// each row (a transpose of pairs), 32 k-values (16 words per row) at a time through transpose16.
template <int R, class T>
inline void pack_pairs_across(const T* src, int64_t ld, int64_t n, int64_t kc, float* dst_) {
  static_assert(R <= 16 || R == 32, "row groups of 16");
  auto* dst = reinterpret_cast<int32_t*>(dst_);
  constexpr int groups = R <= 16 ? 1 : 2;
  constexpr __mmask16 store_mask = R >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << R) - 1);
  __m512 r[16];
  for (int64_t p0 = 0; p0 < kc; p0 += 32) {
    const int64_t w = std::min<int64_t>(32, kc - p0);
    for (int g = 0; g < groups; g++) {
      for (int i = 0; i < 16; i++) {
        const int64_t row = g * 16 + i;
        r[i] = row < n ? row_run(src + row * ld + p0, w) : _mm512_setzero_ps();
      }
      transpose16(r);
      for (int64_t q = 0; q < (w + 1) / 2; q++)
        _mm512_mask_storeu_epi32(dst + (p0 / 2 + q) * R + g * 16, store_mask, _mm512_castps_si512(r[q]));
    }
  }
}

// Micro-kernel: C[R×NR] (+)= Apanel[kp][MR] · Bpanel[kp][NR] over kp pair-words, like micro().
template <int R>
void micro_bf16(int64_t kp, const float* __restrict pa_, const float* __restrict pb, float* __restrict c,
                int64_t ldc, bool add, int nr) {
  const auto* pa = reinterpret_cast<const int32_t*>(pa_);
  __m512 acc[R][NV];
  for (int i = 0; i < R; i++)
    for (int j = 0; j < NV; j++) acc[i][j] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kp; p++) {
    __m512bh b[NV];
    for (int j = 0; j < NV; j++) b[j] = reinterpret_cast<__m512bh>(_mm512_load_si512(pb + j * VW));
    for (int i = 0; i < R; i++) {
      const __m512bh a = reinterpret_cast<__m512bh>(_mm512_set1_epi32(pa[i]));
      for (int j = 0; j < NV; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], a, b[j]);
    }
    pa += MR;
    pb += NR;
  }
  store_tile<R>(acc, c, ldc, add, nr);
}

template <int... I>
constexpr std::array<MicroFn, sizeof...(I)> micro_bf16_table(std::integer_sequence<int, I...>) {
  return {{&micro_bf16<I + 1>...}};
}
constexpr auto kMicroBf16 = micro_bf16_table(std::make_integer_sequence<int, MR>{});

struct Bf16Panels {
  static constexpr int64_t bytes_per_k = 2;
  static int64_t depth(int64_t kc) { return (kc + 1) / 2; }
  // A row-major along k (cs == 1): each row's k-values pair up in place; A stored [k, m]: pair rows.
  static void pack_a(const Operand& A, int64_t i0, int64_t mr, int64_t p0, int64_t kc, float* dst) {
    if (A.cs == 1)
      at(A, i0 * A.rs + p0, [&](auto src) { pack_pairs_across<MR>(src, A.rs, mr, kc, dst); });
    else
      at(A, p0 * A.cs + i0, [&](auto src) { pack_pairs_down<MR>(src, A.cs, mr, kc, dst); });
  }
  static void pack_b(const Operand& B, int64_t p0, int64_t kc, int64_t j0, int64_t nr, float* dst) {
    if (B.cs == 1)
      at(B, p0 * B.rs + j0, [&](auto src) { pack_pairs_down<NR>(src, B.rs, nr, kc, dst); });
    else
      at(B, j0 * B.cs + p0, [&](auto src) { pack_pairs_across<NR>(src, B.cs, nr, kc, dst); });
  }
  // pack(the operand's elements from `offset` on), floats or bf16 bits.
  template <class Pack>
  static void at(const Operand& X, int64_t offset, Pack pack) {
    if (X.h)
      pack(X.h + offset);
    else
      pack(X.p + offset);
  }
  static void micro(int rows, int64_t kp, const float* pa, const float* pb, float* c, int64_t ldc, bool add,
                    int nr) {
    kMicroBf16[rows - 1](kp, pa, pb, c, ldc, add, nr);
  }
};
