// out[m, n] = x[m, k] · Wᵀ with W [n, k] kept in a ggml type (see quant.h).
//
// Few rows (m ≤ kRowsMax: decode and batched decode), ggml's way: each row of x is quantised once per call
// to int8 blocks of 32 (d = max|x|/127, as ggml's Q8_0); each weight row is unpacked, block by block, to
// int8 values with a float scale per 16 (and, for Q4_1/Q5_1/Q4_K/Q5_K, an offset per 32), and the products
// are int8·int8 dot products — AVX-512 VNNI's vpdpbusd where the CPU has it, AVX2's vpmaddubsw otherwise,
// plain loops in the portable build. Both instructions multiply unsigned by signed bytes, so the weights
// enter as |w| and the activations take w's sign (vpsignb), as ggml does; a lane of the 32-bit result sums
// 4 neighbouring products, so lanes 0–3 are the block's first 16 weights and 4–7 its last 16, and one
// per-lane scale vector covers Q6_K's scale per 16 as well as the one-scale types. An offset multiplies the
// block's exact activation sum. F16/BF16 weights are converted to float and multiplied without quantising x.
//
// More rows (prefill): a tile of weight rows is dequantised to float32 and multiplied by the blocked fp32
// product (kernels().matmul); the unpacking is then a small share of the work, and x is not quantised.
//
// Threads split the output columns (weight rows); each thread unpacks its own rows into a scratch buffer.
// Compiled once per instruction set (AS_ISA = generic | avx2 | avx512 | avx512vnni).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels.h"
#include "quant.h"
#include "threadpool.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace as {
namespace AS_ISA {
namespace {

constexpr int64_t kRowsMax = 16;  // the int8 few-row kernel up to this many rows of x; more: the tile path

inline uint16_t rd16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

inline float half_to_float(uint16_t h) {
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  float f;
  if (exp == 0) {
    f = std::ldexp(static_cast<float>(man), -24);
    return sign ? -f : f;
  }
  const uint32_t bits = sign | (exp == 31 ? 0x7f800000u | (man << 13) : ((exp + 112) << 23) | (man << 13));
  std::memcpy(&f, &bits, 4);
  return f;
#endif
}

inline float bf16_to_float(uint16_t h) {
  const uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

#if defined(__AVX2__)
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
#endif

// ---------------------------------------------------------------------------------------------------
// Activations: rows of x quantised per block of 32, with each block's exact sum (for weight offsets).
struct QuantActs {
  const int8_t* q;      // [m, k]
  const float* d;       // [m, k/32]
  const float* s;       // [m, k/32]
  const int32_t* bias;  // VNNI, Q8_0/Q4_0: −offset · (sum of each 4 consecutive q) [m, k/4]; else null
};

#if defined(__AVX512VNNI__)
void offset_bias(const int8_t* q, int64_t k, int offset, int32_t* bias) {
  const __m256i ones = _mm256_set1_epi8(1), neg = _mm256_set1_epi32(-offset);
  for (int64_t b = 0; b < k / 32; b++) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * b));
    const __m256i sums = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, x);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(bias + 8 * b), _mm256_mullo_epi32(sums, neg));
  }
}
#endif

void quantize_row(const float* x, int64_t k, int8_t* q, float* d, float* s) {
  for (int64_t b = 0; b < k / 32; b++) {
    const float* xb = x + 32 * b;
#if defined(__AVX2__)
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4], mx = _mm256_setzero_ps(), sum = _mm256_setzero_ps();
    for (int i = 0; i < 4; i++) {
      v[i] = _mm256_loadu_ps(xb + 8 * i);
      mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v[i]));
      sum = _mm256_add_ps(sum, v[i]);
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
    s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
    const float amax = _mm_cvtss_f32(m4), db = amax / 127.0f;
    const __m256 id = _mm256_set1_ps(db != 0.0f ? 1.0f / db : 0.0f);
    __m256i iv[4];
    for (int i = 0; i < 4; i++)
      iv[i] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[i], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    // Pack 4×8 int32 to 32 int8; the packs interleave 128-bit lanes, which the permute undoes.
    const __m256i p16a = _mm256_packs_epi32(iv[0], iv[1]), p16b = _mm256_packs_epi32(iv[2], iv[3]);
    const __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 32 * b),
                        _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    d[b] = db;
    s[b] = _mm_cvtss_f32(s4);
#else
    float amax = 0, sum = 0;
    for (int i = 0; i < 32; i++) {
      amax = std::max(amax, std::fabs(xb[i]));
      sum += xb[i];
    }
    const float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
    for (int i = 0; i < 32; i++) q[32 * b + i] = static_cast<int8_t>(std::nearbyint(xb[i] * id));
    d[b] = db;
    s[b] = sum;
#endif
  }
}

// ---------------------------------------------------------------------------------------------------
// One weight row unpacked: int8 values q [k], per-lane scales sc [k/32 · 8] (lane l of block b covers
// weights 32b + 4l .. 32b + 4l + 3), and per-block offsets mn [k/32] (weight = sc·q + mn) where the type
// has them. The value of a weight is exactly ggml's dequantised value up to float32 rounding.
struct Unpacked {
  int8_t* q;
  float* sc;
  float* mn;  // null for the symmetric types
};

inline void set_scales(float* sc, float a0, float a1) {
  for (int i = 0; i < 4; i++) {
    sc[i] = a0;
    sc[4 + i] = a1;
  }
}

inline void scale_min_k4(int j, const uint8_t* s, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Nibbles of 16 bytes: element j = low nibble of byte j, element j + 16 = its high nibble, minus `off`.
inline void unpack_nibbles(const uint8_t* qs, int8_t* q, int off) {
#if defined(__AVX2__)
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  __m256i v = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
  v = _mm256_sub_epi8(_mm256_and_si256(v, _mm256_set1_epi8(0x0F)), _mm256_set1_epi8(static_cast<char>(off)));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), v);
#else
  for (int j = 0; j < 16; j++) {
    q[j] = static_cast<int8_t>((qs[j] & 15) - off);
    q[j + 16] = static_cast<int8_t>((qs[j] >> 4) - off);
  }
#endif
}

// Q4_K / Q5_K's 64 weights from 32 bytes: element l = low nibble of byte l, element 32 + l = its high one.
inline void unpack_nibbles_k(const uint8_t* qs, int8_t* q) {
#if defined(__AVX2__)
  const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs)), lo4 = _mm256_set1_epi8(0x0F);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), _mm256_and_si256(raw, lo4));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 32), _mm256_and_si256(_mm256_srli_epi16(raw, 4), lo4));
#else
  for (int l = 0; l < 32; l++) {
    q[l] = static_cast<int8_t>(qs[l] & 15);
    q[32 + l] = static_cast<int8_t>(qs[l] >> 4);
  }
#endif
}

// Q5_0 / Q5_1: nibbles plus a 32-bit word of fifth bits (bit j for element j).
inline void unpack_5bit(const uint8_t* qh4, const uint8_t* qs, int8_t* q, int off) {
  uint32_t qh;
  std::memcpy(&qh, qh4, 4);
#if defined(__AVX2__)
  // ggml's bytes_from_bits_32: byte j = 0xFF where bit j is set.
  const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
  __m256i bits = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(qh)), shuf);
  bits = _mm256_cmpeq_epi8(_mm256_or_si256(bits, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)), _mm256_set1_epi64x(-1));
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0F));
  const __m256i v = _mm256_sub_epi8(_mm256_or_si256(nib, _mm256_and_si256(bits, _mm256_set1_epi8(0x10))),
                                    _mm256_set1_epi8(static_cast<char>(off)));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), v);
#else
  for (int j = 0; j < 16; j++) {
    q[j] = static_cast<int8_t>(((qs[j] & 15) | (((qh >> j) & 1) << 4)) - off);
    q[j + 16] = static_cast<int8_t>(((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - off);
  }
#endif
}

void unpack_row(const uint8_t* p, int64_t k, int type, Unpacked u) {
  switch (type) {
    case kQ8_0:
      for (int64_t b = 0; b < k / 32; b++, p += 34) {
        std::memcpy(u.q + 32 * b, p + 2, 32);
        const float d = half_to_float(rd16(p));
        set_scales(u.sc + 8 * b, d, d);
      }
      return;
    case kQ4_0:
      for (int64_t b = 0; b < k / 32; b++, p += 18) {
        unpack_nibbles(p + 2, u.q + 32 * b, 8);
        const float d = half_to_float(rd16(p));
        set_scales(u.sc + 8 * b, d, d);
      }
      return;
    case kQ4_1:
      for (int64_t b = 0; b < k / 32; b++, p += 20) {
        unpack_nibbles(p + 4, u.q + 32 * b, 0);
        const float d = half_to_float(rd16(p));
        set_scales(u.sc + 8 * b, d, d);
        u.mn[b] = half_to_float(rd16(p + 2));
      }
      return;
    case kQ5_0:
      for (int64_t b = 0; b < k / 32; b++, p += 22) {
        unpack_5bit(p + 2, p + 6, u.q + 32 * b, 16);
        const float d = half_to_float(rd16(p));
        set_scales(u.sc + 8 * b, d, d);
      }
      return;
    case kQ5_1:
      for (int64_t b = 0; b < k / 32; b++, p += 24) {
        unpack_5bit(p + 4, p + 8, u.q + 32 * b, 0);
        const float d = half_to_float(rd16(p));
        set_scales(u.sc + 8 * b, d, d);
        u.mn[b] = half_to_float(rd16(p + 2));
      }
      return;
    case kQ4_K:
    case kQ5_K: {
      const bool five = type == kQ5_K;
      for (int64_t sb = 0; sb < k / 256; sb++, p += five ? 176 : 144) {
        const float d = half_to_float(rd16(p)), dmin = half_to_float(rd16(p + 2));
        const uint8_t* scales = p + 4;
        const uint8_t* qh = p + 16;
        const uint8_t* qs = p + (five ? 48 : 16);
        for (int part = 0; part < 4; part++) {
          const int64_t b0 = 8 * sb + 2 * part;  // the two 32-blocks of this 64
          int s1, m1, s2, m2;
          scale_min_k4(2 * part, scales, &s1, &m1);
          scale_min_k4(2 * part + 1, scales, &s2, &m2);
          int8_t* q0 = u.q + 32 * b0;
          if (!five) {
            unpack_nibbles_k(qs + 32 * part, q0);
          } else {
            for (int l = 0; l < 32; l++) {
              const uint8_t byte = qs[32 * part + l], h = static_cast<uint8_t>(qh[l] >> (2 * part));
              q0[l] = static_cast<int8_t>((byte & 15) | ((h & 1) << 4));
              q0[32 + l] = static_cast<int8_t>((byte >> 4) | ((h & 2) << 3));
            }
          }
          const float a1 = d * static_cast<float>(s1), a2 = d * static_cast<float>(s2);
          set_scales(u.sc + 8 * b0, a1, a1);
          set_scales(u.sc + 8 * (b0 + 1), a2, a2);
          u.mn[b0] = -(dmin * static_cast<float>(m1));
          u.mn[b0 + 1] = -(dmin * static_cast<float>(m2));
        }
      }
      return;
    }
    case kQ6_K:
      for (int64_t sb = 0; sb < k / 256; sb++, p += 210) {
        const float d = half_to_float(rd16(p + 208));
        const int8_t* sc = reinterpret_cast<const int8_t*>(p + 192);
        for (int h = 0; h < 2; h++) {
          const uint8_t* ql = p + 64 * h;
          const uint8_t* qh = p + 128 + 32 * h;
          int8_t* q = u.q + 256 * sb + 128 * h;
          for (int l = 0; l < 32; l++) {
            const uint8_t hb = qh[l];
            q[l] = static_cast<int8_t>(((ql[l] & 15) | ((hb & 3) << 4)) - 32);
            q[32 + l] = static_cast<int8_t>(((ql[32 + l] & 15) | (((hb >> 2) & 3) << 4)) - 32);
            q[64 + l] = static_cast<int8_t>(((ql[l] >> 4) | (((hb >> 4) & 3) << 4)) - 32);
            q[96 + l] = static_cast<int8_t>(((ql[32 + l] >> 4) | (((hb >> 6) & 3) << 4)) - 32);
          }
          for (int r = 0; r < 4; r++) {
            const int64_t b = 8 * sb + 4 * h + r;
            set_scales(u.sc + 8 * b, d * sc[8 * h + 2 * r], d * sc[8 * h + 2 * r + 1]);
          }
        }
      }
      return;
    default:
      return;
  }
}

bool has_offsets(int type) { return type == kQ4_1 || type == kQ5_1 || type == kQ4_K || type == kQ5_K; }
bool is_float_type(int type) { return type == kF16 || type == kBF16; }

// A row of an F16/BF16 weight to float32.
void float_row(const uint8_t* p, int64_t k, int type, float* out) {
  int64_t i = 0;
#if defined(__AVX2__)
  for (; i + 8 <= k; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * i));
    const __m256 v = type == kF16 ? _mm256_cvtph_ps(h)
                                  : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    _mm256_storeu_ps(out + i, v);
  }
#endif
  for (; i < k; i++) out[i] = type == kF16 ? half_to_float(rd16(p + 2 * i)) : bf16_to_float(rd16(p + 2 * i));
}

// A row of any type to float32 (the tile path).
void dequantize_row(const uint8_t* p, int64_t k, int type, float* out, Unpacked u) {
  if (is_float_type(type)) {
    float_row(p, k, type, out);
    return;
  }
  unpack_row(p, k, type, u);
  const bool off = has_offsets(type);
  for (int64_t b = 0; b < k / 32; b++)
    for (int i = 0; i < 32; i++)
      out[32 * b + i] = u.sc[8 * b + i / 4] * static_cast<float>(u.q[32 * b + i]) + (off ? u.mn[b] : 0.0f);
}

// ---------------------------------------------------------------------------------------------------
#if defined(__AVX2__)
// res[r] = the sum over nb blocks of what block(b, acc) adds into acc[r]: even and odd blocks accumulate
// apart, so two FMA chains are in flight (one would wait on its own latency).
template <int R, class Block>
inline void two_chains(int64_t nb, Block&& block, float* res) {
  __m256 acc0[R], acc1[R];
  for (int r = 0; r < R; r++) acc0[r] = acc1[r] = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    block(b, acc0);
    block(b + 1, acc1);
  }
  if (b < nb) block(b, acc0);
  for (int r = 0; r < R; r++) res[r] = hsum(_mm256_add_ps(acc0[r], acc1[r]));
}
#endif

// Dot products of one unpacked weight row with R quantised rows of x (rows r0 .. r0+R-1): res[r], the
// blocks in two chains (two_chains).
template <int R>
inline void int8_dots(const Unpacked& w, bool off, const QuantActs& a, int64_t k, int64_t r0, float* res) {
  const int64_t nb = k / 32;
#if defined(__AVX2__)
#if !defined(__AVX512VNNI__)
  const __m256i ones = _mm256_set1_epi16(1);
#endif
  auto block = [&](int64_t b, __m256* acc) __attribute__((always_inline)) {
    const __m256i wq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.q + 32 * b));
    const __m256i aw = _mm256_abs_epi8(wq);  // |−128| stays 0x80: 128 as the unsigned operand
    const __m256 ws = _mm256_loadu_ps(w.sc + 8 * b);
    for (int r = 0; r < R; r++) {
      const int64_t row = r0 + r;
      const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q + row * k + 32 * b));
      const __m256i sx = _mm256_sign_epi8(xq, wq);
#if defined(__AVX512VNNI__)
      const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sx);
#else
      // Pairs of products fit int16: |w| ≤ 128, |x| ≤ 127, 2·128·127 < 32767.
      const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), ones);
#endif
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(ws, _mm256_set1_ps(a.d[row * nb + b])), acc[r]);
    }
  };
  two_chains<R>(nb, block, res);
#else
  for (int r = 0; r < R; r++) {
    const int64_t row = r0 + r;
    const int8_t* xq = a.q + row * k;
    float acc = 0;
    for (int64_t b = 0; b < nb; b++)
      for (int h = 0; h < 2; h++) {
        int32_t s = 0;
        for (int i = 16 * h; i < 16 * h + 16; i++) s += int32_t(w.q[32 * b + i]) * int32_t(xq[32 * b + i]);
        acc += static_cast<float>(s) * (w.sc[8 * b + 4 * h] * a.d[row * nb + b]);
      }
    res[r] = acc;
  }
#endif
  if (off)
    for (int r = 0; r < R; r++) {
      const float* s = a.s + (r0 + r) * nb;
      float o = 0;
      for (int64_t b = 0; b < nb; b++) o += w.mn[b] * s[b];
      res[r] += o;
    }
}

#if defined(__AVX2__)
// Q8_0 and Q4_0, the decode types, read straight from their blocks (no unpacking pass): one scale per block.
// VNNI multiplies the weights as unsigned bytes — Q8_0 offset by 128, Q4_0's raw nibbles (offset 8) — and
// starts each block's sum from −offset·Σx per lane (QuantActs::bias), which cancels the offset exactly.
template <int TYPE>
struct Block;
template <>
struct Block<kQ8_0> {
  static constexpr int64_t bytes = 34;
  static __m256i values(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2)); }
  static __m256i unsigned_values(const uint8_t* p) { return _mm256_xor_si256(values(p), _mm256_set1_epi8(-128)); }
};
template <>
struct Block<kQ4_0> {
  static constexpr int64_t bytes = 18;
  static __m256i unsigned_values(const uint8_t* p) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2));
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0F));
  }
  static __m256i values(const uint8_t* p) { return _mm256_sub_epi8(unsigned_values(p), _mm256_set1_epi8(8)); }
};

template <int TYPE, int R>
inline void block_dots(const uint8_t* wrow, const QuantActs& a, int64_t k, int64_t r0, float* res) {
  using B = Block<TYPE>;
  const int64_t nb = k / 32;
#if !defined(__AVX512VNNI__)
  const __m256i ones = _mm256_set1_epi16(1);
#endif
  auto block = [&](int64_t b, __m256* acc) __attribute__((always_inline)) {
    const uint8_t* p = wrow + b * B::bytes;
    const __m256 dw = _mm256_set1_ps(half_to_float(rd16(p)));
#if defined(__AVX512VNNI__)
    const __m256i wu = B::unsigned_values(p);
#else
    const __m256i wq = B::values(p), aw = _mm256_abs_epi8(wq);
#endif
    for (int r = 0; r < R; r++) {
      const int64_t row = r0 + r;
      const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q + row * k + 32 * b));
#if defined(__AVX512VNNI__)
      const __m256i bias = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bias + 8 * (row * nb + b)));
      const __m256i p32 = _mm256_dpbusd_epi32(bias, wu, xq);
#else
      const __m256i p32 = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xq, wq)), ones);
#endif
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32), _mm256_mul_ps(dw, _mm256_set1_ps(a.d[row * nb + b])), acc[r]);
    }
  };
  two_chains<R>(nb, block, res);
}

// One row of x (decode) against NR weight rows at once: the row's blocks are loaded once for all of them,
// and the NR accumulation chains are independent.
template <int TYPE, int NR>
inline void block_dots_rows(const uint8_t* w0, int64_t row_bytes, const QuantActs& a, int64_t k, float* res) {
  using B = Block<TYPE>;
  const int64_t nb = k / 32;
  __m256 acc[NR];
  for (int i = 0; i < NR; i++) acc[i] = _mm256_setzero_ps();
#if !defined(__AVX512VNNI__)
  const __m256i ones = _mm256_set1_epi16(1);
#endif
  for (int64_t b = 0; b < nb; b++) {
    const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q + 32 * b));
#if defined(__AVX512VNNI__)
    const __m256i bias = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bias + 8 * b));
#endif
    const float dx = a.d[b];
    // The rows two passes ahead, fetched early (a line per block): the hardware prefetcher alone leaves
    // these interleaved streams waiting on memory (measured: up to 2.5× on matrices larger than the caches).
    for (int i = 0; i < NR; i++) __builtin_prefetch(w0 + (2 * NR + i) * row_bytes + b * B::bytes + 64);
    for (int i = 0; i < NR; i++) {
      const uint8_t* p = w0 + i * row_bytes + b * B::bytes;
      const __m256 scale = _mm256_set1_ps(half_to_float(rd16(p)) * dx);
#if defined(__AVX512VNNI__)
      const __m256i p32 = _mm256_dpbusd_epi32(bias, B::unsigned_values(p), xq);
#else
      const __m256i wq = B::values(p);
      const __m256i p32 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(wq), _mm256_sign_epi8(xq, wq)), ones);
#endif
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32), scale, acc[i]);
    }
  }
  for (int i = 0; i < NR; i++) res[i] = hsum(acc[i]);
}

#endif

// Dot products of one float weight row with R rows of x.
template <int R>
inline void float_dots(const float* w, const float* x, int64_t k, int64_t r0, float* res) {
  int64_t i = 0;
#if defined(__AVX2__)
  // Two accumulators per row, so consecutive FMAs do not wait on each other.
  __m256 acc0[R], acc1[R];
  for (int r = 0; r < R; r++) acc0[r] = acc1[r] = _mm256_setzero_ps();
  for (; i + 16 <= k; i += 16) {
    const __m256 w0 = _mm256_loadu_ps(w + i), w1 = _mm256_loadu_ps(w + i + 8);
    for (int r = 0; r < R; r++) {
      acc0[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + (r0 + r) * k + i), acc0[r]);
      acc1[r] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + (r0 + r) * k + i + 8), acc1[r]);
    }
  }
  for (; i + 8 <= k; i += 8) {
    const __m256 wv = _mm256_loadu_ps(w + i);
    for (int r = 0; r < R; r++) acc0[r] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + (r0 + r) * k + i), acc0[r]);
  }
  for (int r = 0; r < R; r++) res[r] = hsum(_mm256_add_ps(acc0[r], acc1[r]));
#else
  for (int r = 0; r < R; r++) res[r] = 0;
#endif
  for (int r = 0; r < R; r++) {
    const float* xr = x + (r0 + r) * k;
    float t = 0;
    for (int64_t j = i; j < k; j++) t += w[j] * xr[j];
    res[r] += t;
  }
}

#if defined(__AVX512VNNI__) || !defined(__AVX2__)
constexpr int kChunk = 8;  // rows of x per pass over an unpacked weight row (VNNI: 32 vector registers)
#else
constexpr int kChunk = 4;
#endif

template <class Dots>
inline void over_rows(int64_t m, Dots&& dots, float* res) {
  int64_t r0 = 0;
  for (; r0 + kChunk <= m; r0 += kChunk) dots(std::integral_constant<int, kChunk>{}, r0, res + r0);
  for (; r0 + 4 <= m && kChunk > 4; r0 += 4) dots(std::integral_constant<int, 4>{}, r0, res + r0);
  for (; r0 < m; r0++) dots(std::integral_constant<int, 1>{}, r0, res + r0);
}

struct Scratch {
  std::vector<int8_t> q;
  std::vector<float> sc, mn, f;
  Unpacked unpacked(int64_t k) {
    if (static_cast<int64_t>(q.size()) < k) {
      q.resize(k);
      sc.resize(k / 4 + 8);
      mn.resize(k / 32 + 1);
    }
    return {q.data(), sc.data(), mn.data()};
  }
  float* floats(int64_t k) {
    if (static_cast<int64_t>(f.size()) < k) f.resize(k);
    return f.data();
  }
};

Scratch& scratch() {
  static thread_local Scratch s;
  return s;
}

void few_rows(const float* x, const uint8_t* w, float* out, int64_t m, int64_t n, int64_t k, int type,
              int64_t row_bytes) {
  const bool floats = is_float_type(type), off = has_offsets(type);
#if defined(__AVX2__)
  const bool direct = type == kQ8_0 || type == kQ4_0;  // read from the blocks, no unpacking pass
#else
  const bool direct = false;
#endif
  static thread_local std::vector<int8_t> aq;
  static thread_local std::vector<float> ad, as;
  static thread_local std::vector<int32_t> abias;
  QuantActs acts{nullptr, nullptr, nullptr, nullptr};
  if (!floats) {
    const int64_t nb = k / 32;
    aq.resize(m * k);
    ad.resize(m * nb);
    as.resize(m * nb);
    for (int64_t r = 0; r < m; r++) quantize_row(x + r * k, k, aq.data() + r * k, ad.data() + r * nb, as.data() + r * nb);
    acts = {aq.data(), ad.data(), as.data(), nullptr};
#if defined(__AVX512VNNI__)
    if (direct) {
      abias.resize(m * k / 4);
      for (int64_t r = 0; r < m; r++)
        offset_bias(aq.data() + r * k, k, type == kQ8_0 ? 128 : 8, abias.data() + r * k / 4);
      acts.bias = abias.data();
    }
#endif
  }
  // At least ~64K multiply-adds per thread, so small products stay on one thread.
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, k * m));
  parallel_for(n, grain, [&](int64_t j0, int64_t j1) {
    Scratch& s = scratch();
    float res[kRowsMax];
    int64_t j = j0;
#if defined(__AVX2__)
    // Decode (one row of x) on Q8_0/Q4_0: four weight rows per pass.
    if (direct && m == 1)
      for (; j + 4 <= j1; j += 4) {
        if (type == kQ8_0)
          block_dots_rows<kQ8_0, 4>(w + j * row_bytes, row_bytes, acts, k, out + j);
        else
          block_dots_rows<kQ4_0, 4>(w + j * row_bytes, row_bytes, acts, k, out + j);
      }
#endif
    for (; j < j1; j++) {
      const uint8_t* p = w + j * row_bytes;
      if (floats) {
        float* wf = s.floats(k);
        float_row(p, k, type, wf);
        over_rows(m, [&](auto R, int64_t r0, float* rs) { float_dots<decltype(R)::value>(wf, x, k, r0, rs); }, res);
      } else if (direct) {
#if defined(__AVX2__)
        if (type == kQ8_0)
          over_rows(m, [&](auto R, int64_t r0, float* rs) { block_dots<kQ8_0, decltype(R)::value>(p, acts, k, r0, rs); }, res);
        else
          over_rows(m, [&](auto R, int64_t r0, float* rs) { block_dots<kQ4_0, decltype(R)::value>(p, acts, k, r0, rs); }, res);
#endif
      } else {
        const Unpacked u = s.unpacked(k);
        for (int64_t o = 0; o < row_bytes; o += 64) __builtin_prefetch(p + 2 * row_bytes + o);  // two rows ahead
        unpack_row(p, k, type, u);
        over_rows(
            m, [&](auto R, int64_t r0, float* rs) { int8_dots<decltype(R)::value>(u, off, acts, k, r0, rs); }, res);
      }
      for (int64_t r = 0; r < m; r++) out[r * n + j] = res[r];
    }
  });
}

void tiled(const float* x, const uint8_t* w, float* out, int64_t m, int64_t n, int64_t k, int type,
           int64_t row_bytes) {
  // A tile of about 4 MiB of float32 weight rows (L2/L3-sized), at least 16 rows.
  const int64_t rows = std::min<int64_t>(n, std::max<int64_t>(16, (int64_t(1) << 20) / k));
  // The calling thread's buffers; the pool threads reach them through these pointers (a thread_local named
  // inside the lambda would be each thread's own).
  static thread_local std::vector<float> tile_buf, c_buf;
  tile_buf.resize(rows * k);
  c_buf.resize(m * rows);
  float* tile = tile_buf.data();
  float* c = c_buf.data();
  for (int64_t j0 = 0; j0 < n; j0 += rows) {
    const int64_t t = std::min(rows, n - j0);
    parallel_for(t, std::max<int64_t>(1, 8192 / k), [&](int64_t a, int64_t b) {
      const Unpacked u = scratch().unpacked(k);
      for (int64_t j = a; j < b; j++) dequantize_row(w + (j0 + j) * row_bytes, k, type, tile + j * k, u);
    });
    MatmulArgs args{1, m, t, k, false, true, 0, 0, false};
    kernels().matmul(x, tile, c, args);
    for (int64_t r = 0; r < m; r++) std::memcpy(out + r * n + j0, c + r * t, sizeof(float) * t);
  }
}

}  // namespace

void matmul_quant(const float* x, const uint8_t* w, float* out, int64_t m, int64_t n, int64_t k, int type) {
  int64_t elems = 0, bytes = 0;
  if (m <= 0 || n <= 0 || !quant_block(type, &elems, &bytes)) return;
  if (k == 0) {
    std::fill(out, out + m * n, 0.0f);
    return;
  }
  const int64_t row_bytes = k / elems * bytes;
  if (m <= kRowsMax)
    few_rows(x, w, out, m, n, k, type, row_bytes);
  else
    tiled(x, w, out, m, n, k, type, row_bytes);
}

}  // namespace AS_ISA
}  // namespace as
