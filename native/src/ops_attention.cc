// Causal / full attention with grouped KV heads, forward and flash-style backward.
// Layouts: q, out, gq [batch, tq, heads, hd]; k, v, gk, gv [batch, tk, kvHeads, hd]; lse [batch, heads, tq].
// Query head h reads kv head h / (heads / kvHeads); query i sees keys j <= i + (tk − tq) when causal.
//
// Score rows are computed against a transposed copy of the keys (Kᵀ [hd][keys]), so a score row is a sum
// of hd vector axpys over the keys rather than one horizontal dot-product reduction per key; four query
// rows share each pass over Kᵀ. Units with fewer than four query rows per kv head (decoding one token)
// skip the transpose and take one dot product per key. With AVX-512 the score rows and the weighted sums
// of values keep their accumulators in registers (scores4, weighted_rows4, backward_keys4); the portable
// loops compute the same sums in the same order.
// attention_cached is the forward for several sequences at once, each against its own KV cache (a serving
// step); its decoding rows take every head in one pass over the cache (attention_row_all_heads).
//
// Memory: the forward saves only lse (batch·heads·tq floats); no score matrix is ever stored. Scratch
// (thread-local, reused across calls), with tk' = tk rounded up to 16, plus 16:
// - forward: Kᵀ of every (batch, kv head), batch·kvHeads·hd·tk' floats on the calling thread (transposed
//   once, read by all threads), plus 4 score rows and 4 accumulator rows per thread, 4·tk' + 4·hd floats;
// - backward: Kᵀ and Vᵀ plus 4 probability and 4 dS rows, and the bf16 gradient products' pair words,
//   2·hd·tk' + 16·tk' + 8·hd floats; its key-parallel
//   pass holds Qᵀ and dOᵀ instead (tq in place of tk) plus 2·20·hd accumulators, and that path also keeps
//   D_i = dO_i·O_i for every query row (batch·heads·tq floats, on the calling thread).
#include "ops_common.h"

namespace as {
namespace AS_ISA {
namespace {

void exp_inplace(float* __restrict x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = fast_exp(x[i]);
}

// max of x[0..n) (n >= 1); NaNs are skipped as lane_max skips them.
float row_max(const float* __restrict x, int64_t n) {
#if defined(__AVX512F__)
  __m512 m = _mm512_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) m = _mm512_mask_max_ps(m, __mmask16(0xFFFF), _mm512_loadu_ps(x + i), m);
  if (i < n) {
    const __mmask16 k = __mmask16((1u << (n - i)) - 1);
    m = _mm512_mask_max_ps(m, k, _mm512_maskz_loadu_ps(k, x + i), m);
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, m);
  float r = lanes[0];
  for (int j = 1; j < 16; j++) r = lanes[j] > r ? lanes[j] : r;
  return r;
#else
  return lane_max(x, n);
#endif
}

void zero(float* __restrict x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = 0.0f;
}

void scaled_copy(float* __restrict dst, const float* __restrict src, float s, int64_t n) {
  for (int64_t i = 0; i < n; i++) dst[i] = src[i] * s;
}

// o_r += c_r · m for r < 4.
void fma4(float* __restrict o0, float* __restrict o1, float* __restrict o2, float* __restrict o3,
          const float* __restrict m, float c0, float c1, float c2, float c3, int64_t n) {
  for (int64_t j = 0; j < n; j++) {
    float mj = m[j];
    o0[j] += c0 * mj;
    o1[j] += c1 * mj;
    o2[j] += c2 * mj;
    o3[j] += c3 * mj;
  }
}

// y += a0·x0 + a1·x1 + a2·x2 + a3·x3.
void axpy4(float* __restrict y, const float* __restrict x0, const float* __restrict x1, const float* __restrict x2,
           const float* __restrict x3, float a0, float a1, float a2, float a3, int64_t n) {
  for (int64_t d = 0; d < n; d++) y[d] += a0 * x0[d] + a1 * x1[d] + a2 * x2[d] + a3 * x3[d];
}

// dst[d][j] = rows[j][d] for j < n, d < hd (row j at src + j·stride; dst has leading dimension ld).
// Tiled by 16 keys so each destination cache line is written whole.
void transpose_rows(const float* src, int64_t stride, int64_t n, int64_t hd, float* __restrict dst, int64_t ld) {
  constexpr int64_t kTile = 16;
  for (int64_t j0 = 0; j0 < n; j0 += kTile) {
    const int64_t len = n - j0 < kTile ? n - j0 : kTile;
    for (int64_t d = 0; d < hd; d++) {
      float* __restrict out = dst + d * ld + j0;
      const float* in = src + j0 * stride + d;
      for (int64_t t = 0; t < len; t++) out[t] = in[t * stride];
    }
  }
}

// Leading dimension for n keys: rounded up to whole cache lines, plus one, so the rows of a transposed
// block do not all fall in the same few cache sets (a power-of-two stride would).
inline int64_t padded_ld(int64_t n) { return ((n + 15) / 16) * 16 + 16; }

#if defined(__AVX512BF16__)
// bf16 attention (AttentionShape::bf16, on CPUs with AVX-512 BF16): the score products q·kᵀ and dO·vᵀ and
// the forward's p·v take bf16 operands with float32 accumulation (vdpbf16ps), as PyTorch's CPU flash
// attention does under autocast; softmax, lse and D stay float32. The backward's gradient products (dS·K,
// dSᵀ·Q, Pᵀ·dO) take bf16 operands too on the per-kv-head schedule that training uses (backward_keys4_bf16);
// the key-parallel schedule (few (batch, kv head) pairs) keeps them float32.
// Operands are paired along the product's depth: a word holds bf16(x[2i]) in its low half and bf16(x[2i+1])
// in its high half (vcvtne2ps2bf16 rounds to nearest even and treats float32 denormals as zero).
constexpr bool kBf16Attention = true;

// dst[d2][j] = word(rows[j][2·d2], rows[j][2·d2 + 1]) for j < n, d2 < hd/2: the pair-packed transpose that
// scores4_bf16 reads (row j at src + j·stride; dst words with leading dimension ld). hd is a multiple of 16.
void transpose_rows_pairs(const float* src, int64_t stride, int64_t n, int64_t hd, float* __restrict dst_,
                          int64_t ld) {
  auto* dst = reinterpret_cast<int32_t*>(dst_);
  const int64_t words = hd / 2;
  __m512 r[16];
  for (int64_t j0 = 0; j0 < n; j0 += 16) {
    const int64_t len = n - j0 < 16 ? n - j0 : 16;
    for (int64_t w0 = 0; w0 < words; w0 += 16) {
      const int64_t wn = words - w0 < 16 ? words - w0 : 16;  // 8 (hd 16) or 16
      const __mmask16 lo = static_cast<__mmask16>((1u << (wn < 8 ? 2 * wn : 16)) - 1);
      const __mmask16 hi = static_cast<__mmask16>(wn > 8 ? (1u << (2 * wn - 16)) - 1 : 0);
      for (int t = 0; t < 16; t++) {
        if (t < len) {
          const float* x = src + (j0 + t) * stride + 2 * w0;
          r[t] = reinterpret_cast<__m512>(
              _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, x + 16), _mm512_maskz_loadu_ps(lo, x)));
        } else {
          r[t] = _mm512_setzero_ps();
        }
      }
      transpose16(r);
      const __mmask16 keep = static_cast<__mmask16>((1u << len) - 1);
      for (int64_t w = 0; w < wn; w++)
        _mm512_mask_storeu_epi32(dst + (w0 + w) * ld + j0, keep, _mm512_castps_si512(r[w]));
    }
  }
}

// dst[j2][d] = word(rows[2·j2][d], rows[2·j2 + 1][d]) for j2 < ceil(n/2), d < hd: values paired along the
// keys for weighted_rows4_bf16 (an odd last key is paired with zero). hd is a multiple of 16.
void pack_value_pairs(const float* src, int64_t stride, int64_t n, int64_t hd, float* __restrict dst_) {
  const __m512i idx = pair_interleave_index();
  auto* dst = reinterpret_cast<int32_t*>(dst_);
  for (int64_t j = 0; j < n; j += 2) {
    const float* r0 = src + j * stride;
    const float* r1 = j + 1 < n ? r0 + stride : nullptr;
    for (int64_t d = 0; d < hd; d += 16) {
      const __m512 a = _mm512_loadu_ps(r0 + d), b = r1 ? _mm512_loadu_ps(r1 + d) : _mm512_setzero_ps();
      const __m512i h = _mm512_permutexvar_epi16(idx, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(b, a)));
      _mm512_storeu_si512(dst + (j / 2) * hd + d, h);
    }
  }
}

// words[i] = word(x[2i], x[2i + 1]) for i < ceil(n/2), x[n] read as zero when n is odd.
void to_pairs(const float* x, int64_t n, int32_t* words) {
  for (int64_t i = 0; i < n; i += 32) {
    const int64_t w = n - i < 32 ? n - i : 32;
    const __mmask16 lo = static_cast<__mmask16>((1u << (w < 16 ? w : 16)) - 1);
    const __mmask16 hi = static_cast<__mmask16>(w > 16 ? (1u << (w - 16)) - 1 : 0);
    const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, x + i + 16), _mm512_maskz_loadu_ps(lo, x + i));
    const __mmask16 keep = static_cast<__mmask16>((1u << ((w + 1) / 2)) - 1);
    _mm512_mask_storeu_epi32(words + i / 2, keep, reinterpret_cast<__m512i>(h));
  }
}

// words[i] = word(a[i], b[i]) for i < n, n a multiple of 16: two rows paired element by element (the
// backward's gradient products pair two query rows along their shared depth).
void cross_pairs(const float* a, const float* b, int64_t n, int32_t* words) {
  const __m512i idx = pair_interleave_index();
  for (int64_t i = 0; i < n; i += 16) {
    const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(b + i), _mm512_loadu_ps(a + i));
    _mm512_storeu_si512(words + i, _mm512_permutexvar_epi16(idx, reinterpret_cast<__m512i>(h)));
  }
}

// out[r][j] = s · Σ_d bf16(a[r][d])·bf16(m[j][d]) for r < 4, j < n, with mt the pair-packed transpose of m
// (transpose_rows_pairs, leading dimension ld words): scores4 with half the multiply-add instructions.
void scores4_bf16(const float* const a[4], const float* mt_, int64_t ld, int64_t n, int64_t hd, float s,
                  float* out) {
  const auto* mt = reinterpret_cast<const int32_t*>(mt_);
  const int64_t words = hd / 2;
  alignas(64) int32_t aw[4][32];
  for (int r = 0; r < 4; r++) to_pairs(a[r], hd, aw[r]);
  const __m512 sv = _mm512_set1_ps(s);
  int64_t j = 0;
  for (; j + 64 <= n; j += 64) {
    __m512 c[4][4];
    for (int r = 0; r < 4; r++)
      for (int t = 0; t < 4; t++) c[r][t] = _mm512_setzero_ps();
    for (int64_t w = 0; w < words; w++) {
      const int32_t* m = mt + w * ld + j;
      __m512bh mv[4];
      for (int t = 0; t < 4; t++) mv[t] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(m + 16 * t));
      for (int r = 0; r < 4; r++) {
        const __m512bh ar = reinterpret_cast<__m512bh>(_mm512_set1_epi32(aw[r][w]));
        for (int t = 0; t < 4; t++) c[r][t] = _mm512_dpbf16_ps(c[r][t], ar, mv[t]);
      }
    }
    for (int r = 0; r < 4; r++)
      for (int t = 0; t < 4; t++) _mm512_storeu_ps(out + r * ld + j + 16 * t, _mm512_mul_ps(c[r][t], sv));
  }
  for (; j < n; j += 16) {
    const __mmask16 k = n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j)) - 1);
    __m512 c[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t w = 0; w < words; w++) {
      const __m512bh m = reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi32(k, mt + w * ld + j));
      for (int r = 0; r < 4; r++)
        c[r] = _mm512_dpbf16_ps(c[r], reinterpret_cast<__m512bh>(_mm512_set1_epi32(aw[r][w])), m);
    }
    for (int r = 0; r < 4; r++) _mm512_mask_storeu_ps(out + r * ld + j, k, _mm512_mul_ps(c[r], sv));
  }
}

// acc[r][:] = Σ_{j < n} bf16(p[r][j])·bf16(v[j][:]) for r < 4: p rows as pair words (pw, leading dimension
// ldw words, zero past n), v pair-packed along the keys (pack_value_pairs). hd is 16, 32, 48 or 64.
void weighted_rows4_bf16(const int32_t* pw, int64_t ldw, const float* vw_, int64_t n, int64_t hd,
                         float* __restrict acc) {
  const auto* vw = reinterpret_cast<const int32_t*>(vw_);
  const int nv = static_cast<int>(hd / 16);
  __m512 o[4][4];
  for (int r = 0; r < 4; r++)
    for (int t = 0; t < 4; t++) o[r][t] = _mm512_setzero_ps();
  for (int64_t j2 = 0; j2 < (n + 1) / 2; j2++) {
    __m512bh x[4];
    for (int t = 0; t < nv; t++) x[t] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(vw + j2 * hd + 16 * t));
    for (int r = 0; r < 4; r++) {
      const __m512bh pr = reinterpret_cast<__m512bh>(_mm512_set1_epi32(pw[r * ldw + j2]));
      for (int t = 0; t < nv; t++) o[r][t] = _mm512_dpbf16_ps(o[r][t], pr, x[t]);
    }
  }
  for (int r = 0; r < 4; r++)
    for (int t = 0; t < nv; t++) _mm512_storeu_ps(acc + r * hd + 16 * t, o[r][t]);
}

// The operands of one quad's gradient products in bf16 pair words (BwdPairs::prepare):
// - p01 / p23 [n]: word(p_0[j], p_1[j]) and word(p_2[j], p_3[j]); ds01 / ds23 likewise for dS;
// - dsk [4][ldw]: each row of dS paired along the keys, word(dS_r[2i], dS_r[2i + 1]);
// - o01, o23, q01, q23 [hd]: dO and q of the row pairs, word(x_0[d], x_1[d]).
struct BwdPairs {
  int32_t *p01, *p23, *ds01, *ds23, *dsk, *o01, *o23, *q01, *q23;
  int64_t ldw;
  // Carves the words out of `buf` (8·ld + 4·hd words, ld ≥ nmax rounded up to 16).
  BwdPairs(float* buf, int64_t ld, int64_t hd) {
    auto* w = reinterpret_cast<int32_t*>(buf);
    p01 = w, p23 = w + ld, ds01 = w + 2 * ld, ds23 = w + 3 * ld, dsk = w + 4 * ld;
    ldw = ld;  // dsk rows (ceil(n/2) words each) keep the float rows' spacing
    o01 = w + 8 * ld, o23 = o01 + hd, q01 = o23 + hd, q23 = q01 + hd;
  }
  void prepare(const float* p, const float* ds, int64_t ld, const float* const qr[4], const float* const orow[4],
               int64_t n, int64_t hd) {
    const int64_t n16 = (n + 15) / 16 * 16;
    cross_pairs(p, p + ld, n16, p01);
    cross_pairs(p + 2 * ld, p + 3 * ld, n16, p23);
    cross_pairs(ds, ds + ld, n16, ds01);
    cross_pairs(ds + 2 * ld, ds + 3 * ld, n16, ds23);
    for (int r = 0; r < 4; r++) to_pairs(ds + r * ld, n, dsk + r * ldw);
    cross_pairs(orow[0], orow[1], hd, o01);
    cross_pairs(orow[2], orow[3], hd, o23);
    cross_pairs(qr[0], qr[1], hd, q01);
    cross_pairs(qr[2], qr[3], hd, q23);
  }
};

// backward_keys4 on vdpbf16ps: gv_j += Σ_r bf16(p_r[j])·bf16(dO_r), gk_j += Σ_r bf16(dS_r[j])·bf16(q_r) (the
// caller applies the scale to gk once at the end), acc_r = Σ_j bf16(dS_r[j])·bf16(k_j) with kw the keys
// paired along the keys (pack_value_pairs). Each instruction adds two products: two query rows for gv and
// gk, two keys for acc. float32 accumulation throughout, gk and gv included.
template <int NV>
void backward_keys4_bf16(const BwdPairs& w, const float* kw_, float* gkb, float* gvb, int64_t stride, int64_t n,
                         float* acc) {
  const auto* kw = reinterpret_cast<const int32_t*>(kw_);
  constexpr int64_t hd = 16 * NV;
  auto bh = [](const int32_t* x) { return reinterpret_cast<__m512bh>(_mm512_loadu_si512(x)); };
  auto bcast = [](int32_t x) { return reinterpret_cast<__m512bh>(_mm512_set1_epi32(x)); };
  __m512 a[4][NV];
  for (int r = 0; r < 4; r++)
    for (int t = 0; t < NV; t++) a[r][t] = _mm512_setzero_ps();
  for (int64_t j2 = 0; j2 < (n + 1) / 2; j2++) {
    for (int64_t j = 2 * j2; j < 2 * j2 + 2 && j < n; j++) {
      const __m512bh p0 = bcast(w.p01[j]), p1 = bcast(w.p23[j]), d0 = bcast(w.ds01[j]), d1 = bcast(w.ds23[j]);
      float* gv = gvb + j * stride;
      float* gk = gkb + j * stride;
      for (int t = 0; t < NV; t++) {
        const __m512 v = _mm512_dpbf16_ps(_mm512_loadu_ps(gv + 16 * t), p0, bh(w.o01 + 16 * t));
        _mm512_storeu_ps(gv + 16 * t, _mm512_dpbf16_ps(v, p1, bh(w.o23 + 16 * t)));
        const __m512 k = _mm512_dpbf16_ps(_mm512_loadu_ps(gk + 16 * t), d0, bh(w.q01 + 16 * t));
        _mm512_storeu_ps(gk + 16 * t, _mm512_dpbf16_ps(k, d1, bh(w.q23 + 16 * t)));
      }
    }
    for (int t = 0; t < NV; t++) {
      const __m512bh k2 = bh(kw + j2 * hd + 16 * t);
      for (int r = 0; r < 4; r++) a[r][t] = _mm512_dpbf16_ps(a[r][t], bcast(w.dsk[r * w.ldw + j2]), k2);
    }
  }
  for (int r = 0; r < 4; r++)
    for (int t = 0; t < NV; t++) _mm512_storeu_ps(acc + r * hd + 16 * t, a[r][t]);
}

void backward_keys4_bf16(const BwdPairs& w, const float* kw, float* gkb, float* gvb, int64_t stride, int64_t n,
                         int64_t hd, float* acc) {
  switch (hd) {
    case 16: return backward_keys4_bf16<1>(w, kw, gkb, gvb, stride, n, acc);
    case 32: return backward_keys4_bf16<2>(w, kw, gkb, gvb, stride, n, acc);
    case 48: return backward_keys4_bf16<3>(w, kw, gkb, gvb, stride, n, acc);
    default: return backward_keys4_bf16<4>(w, kw, gkb, gvb, stride, n, acc);
  }
}
#else
constexpr bool kBf16Attention = false;
#endif

// out[r][j] = s · Σ_d a[r][d] · mt[d][j] for r < 4, j < n (out and mt have leading dimension ld).
void scores4(const float* const a[4], const float* mt, int64_t ld, int64_t n, int64_t hd, float s, float* out) {
#if defined(__AVX512F__)
  // Register-blocked: 4 rows × 64 keys of accumulators stay in 16 registers over the whole d loop (the
  // portable version below streams all four score rows through memory once per d). Same products, same
  // order of additions, so the same results.
  int64_t j = 0;
  for (; j + 64 <= n; j += 64) {
    __m512 c[4][4];
    for (int r = 0; r < 4; r++)
      for (int t = 0; t < 4; t++) c[r][t] = _mm512_setzero_ps();
    for (int64_t d = 0; d < hd; d++) {
      const float* m = mt + d * ld + j;
      const __m512 m0 = _mm512_loadu_ps(m), m1 = _mm512_loadu_ps(m + 16), m2 = _mm512_loadu_ps(m + 32),
                   m3 = _mm512_loadu_ps(m + 48);
      for (int r = 0; r < 4; r++) {
        const __m512 ar = _mm512_set1_ps(a[r][d] * s);
        c[r][0] = _mm512_fmadd_ps(ar, m0, c[r][0]);
        c[r][1] = _mm512_fmadd_ps(ar, m1, c[r][1]);
        c[r][2] = _mm512_fmadd_ps(ar, m2, c[r][2]);
        c[r][3] = _mm512_fmadd_ps(ar, m3, c[r][3]);
      }
    }
    for (int r = 0; r < 4; r++)
      for (int t = 0; t < 4; t++) _mm512_storeu_ps(out + r * ld + j + 16 * t, c[r][t]);
  }
  for (; j < n; j += 16) {
    const __mmask16 k = n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j)) - 1);
    __m512 c[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t d = 0; d < hd; d++) {
      const __m512 m = _mm512_maskz_loadu_ps(k, mt + d * ld + j);
      for (int r = 0; r < 4; r++) c[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r][d] * s), m, c[r]);
    }
    for (int r = 0; r < 4; r++) _mm512_mask_storeu_ps(out + r * ld + j, k, c[r]);
  }
#else
  float* o[4] = {out, out + ld, out + 2 * ld, out + 3 * ld};
  for (int r = 0; r < 4; r++) zero(o[r], n);
  for (int64_t d = 0; d < hd; d++)
    fma4(o[0], o[1], o[2], o[3], mt + d * ld, a[0][d] * s, a[1][d] * s, a[2][d] * s, a[3][d] * s, n);
#endif
}

// acc[r][:] = Σ_{j < n} p[r][j] · rows[j][:] for r < 4 (p has leading dimension ld, row j of `rows` at
// rows + j·stride, acc is [4][hd]): the probability-weighted sum of values (or keys) for a quad of rows.
void weighted_rows4(const float* p, int64_t ld, const float* rows, int64_t stride, int64_t n, int64_t hd,
                    float* __restrict acc) {
#if defined(__AVX512F__)
  if (hd == 16 || hd == 32 || hd == 64) {
    // The accumulators (4 rows × hd) stay in registers across all n keys.
    const int nv = static_cast<int>(hd / 16);
    __m512 o[4][4];
    for (int r = 0; r < 4; r++)
      for (int t = 0; t < 4; t++) o[r][t] = _mm512_setzero_ps();
    if (nv == 2) {
      for (int64_t j = 0; j < n; j++) {
        const float* x = rows + j * stride;
        const __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
        for (int r = 0; r < 4; r++) {
          const __m512 pr = _mm512_set1_ps(p[r * ld + j]);
          o[r][0] = _mm512_fmadd_ps(pr, x0, o[r][0]);
          o[r][1] = _mm512_fmadd_ps(pr, x1, o[r][1]);
        }
      }
    } else if (nv == 4) {
      for (int64_t j = 0; j < n; j++) {
        const float* x = rows + j * stride;
        const __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16), x2 = _mm512_loadu_ps(x + 32),
                     x3 = _mm512_loadu_ps(x + 48);
        for (int r = 0; r < 4; r++) {
          const __m512 pr = _mm512_set1_ps(p[r * ld + j]);
          o[r][0] = _mm512_fmadd_ps(pr, x0, o[r][0]);
          o[r][1] = _mm512_fmadd_ps(pr, x1, o[r][1]);
          o[r][2] = _mm512_fmadd_ps(pr, x2, o[r][2]);
          o[r][3] = _mm512_fmadd_ps(pr, x3, o[r][3]);
        }
      }
    } else {
      for (int64_t j = 0; j < n; j++) {
        const __m512 x0 = _mm512_loadu_ps(rows + j * stride);
        for (int r = 0; r < 4; r++) o[r][0] = _mm512_fmadd_ps(_mm512_set1_ps(p[r * ld + j]), x0, o[r][0]);
      }
    }
    for (int r = 0; r < 4; r++)
      for (int t = 0; t < nv; t++) _mm512_storeu_ps(acc + r * hd + 16 * t, o[r][t]);
    return;
  }
#endif
  zero(acc, 4 * hd);
  for (int64_t j = 0; j < n; j++)
    fma4(acc, acc + hd, acc + 2 * hd, acc + 3 * hd, rows + j * stride, p[j], p[ld + j], p[2 * ld + j],
         p[3 * ld + j], hd);
}

struct Geometry {
  int64_t B, tq, tk, H, Hkv, hd, group, offset, kstride;
  float scale;
  bool causal;
  bool bf16 = false;  // the bf16 score and value products (set by use_bf16 at each entry point)
  explicit Geometry(const AttentionShape& s)
      : B(s.batch),
        tq(s.tq),
        tk(s.tk),
        H(s.heads),
        Hkv(s.kvHeads),
        hd(s.headDim),
        group(s.heads / s.kvHeads),
        offset(s.tk - s.tq),
        kstride(s.kvHeads * s.headDim),
        scale(s.scale),
        causal(s.causal) {}
  // Keys visible to query row i.
  int64_t keys(int64_t i) const { return causal ? i + offset + 1 : tk; }
  // First query row that sees key j.
  int64_t first_query(int64_t j) const { return causal && j - offset > 0 ? j - offset : 0; }
  // Element offset of query row (b, i, h) in q / out / gq / gOut.
  int64_t qoff(int64_t b, int64_t i, int64_t h) const { return ((b * tq + i) * H + h) * hd; }
  // Element offset of key 0 of kv head g in batch b in k / v / gk / gv (key j adds j·kstride).
  int64_t koff(int64_t b, int64_t g) const { return (b * tk * Hkv + g) * hd; }
  // Rough flop count of one call, to decide how many threads to wake.
  int64_t work() const { return B * H * tq * (causal ? tk - tq / 2 : tk) * hd; }
};

// The transposed operand of the score products (Kᵀ, Vᵀ, Qᵀ or dOᵀ): float32 rows, or bf16 pair words.
void transpose_for_scores(const Geometry& g, const float* src, int64_t stride, int64_t n, float* dst, int64_t ld) {
#if defined(__AVX512BF16__)
  if (g.bf16) {
    transpose_rows_pairs(src, stride, n, g.hd, dst, ld);
    return;
  }
#endif
  transpose_rows(src, stride, n, g.hd, dst, ld);
}

// Four score rows against a transposed operand from transpose_for_scores.
void scores4_for(const Geometry& g, const float* const a[4], const float* mt, int64_t ld, int64_t n, float s,
                 float* out) {
#if defined(__AVX512BF16__)
  if (g.bf16) {
    scores4_bf16(a, mt, ld, n, g.hd, s, out);
    return;
  }
#endif
  scores4(a, mt, ld, n, g.hd, s, out);
}

constexpr int64_t kWorkGrain = 1 << 16;
// Query rows (per head) / keys handled by one scheduling unit.
constexpr int64_t kQueryBlock = 64;
constexpr int64_t kKeyBlock = 16;

// Runs f(unit) for unit in [0, units), dealt round-robin over up to nt threads (round-robin spreads the
// causal units, whose cost grows along the sequence, evenly).
template <class F>
void deal(int64_t units, int nt, F&& f) {
  if (nt > units) nt = static_cast<int>(units);
  auto body = [&](int tid, int ntt) {
    for (int64_t u = tid; u < units; u += ntt) f(u);
  };
  if (nt <= 1)
    body(0, 1);
  else
    parallel([&](int tid, int ntt) { body(tid, ntt); }, nt);
}

// Up to four query rows (i .. i + count − 1) of head h, padded by repeating the last row so the 4-row
// kernels can always run; padded rows get zero probabilities and their results are dropped.
struct RowQuad {
  int count;
  int64_t off[4];  // qoff of each row
  int64_t n[4];    // visible keys of each row
  int64_t nmax;
  RowQuad(const Geometry& g, int64_t b, int64_t h, int64_t i, int64_t end) {
    count = static_cast<int>(end - i < 4 ? end - i : 4);
    for (int r = 0; r < 4; r++) {
      int64_t ir = i + (r < count ? r : count - 1);
      off[r] = g.qoff(b, ir, h);
      n[r] = r < count ? g.keys(ir) : 0;
    }
    nmax = g.keys(i + count - 1);
  }
};

// One query row the direct way (a dot product per key), for units with too few rows to pay for Kᵀ
// (decoding one token with few query heads per kv head). sc: n floats, acc: hd floats.
void attention_row_direct(const Geometry& g, const float* __restrict qi, const float* kb, const float* vb,
                          int64_t n, float* __restrict sc, float* __restrict acc, float* __restrict out,
                          float& lse) {
  for (int64_t j = 0; j < n; j++) sc[j] = lane_dot(qi, kb + j * g.kstride, g.hd) * g.scale;
  const float mx = lane_max(sc, n);
  for (int64_t j = 0; j < n; j++) sc[j] -= mx;
  exp_inplace(sc, n);
  const float sum = lane_sum(sc, n);
  zero(acc, g.hd);
  for (int64_t j = 0; j < n; j++) {
    const float* __restrict vj = vb + j * g.kstride;
    const float p = sc[j];
    for (int64_t d = 0; d < g.hd; d++) acc[d] += p * vj[d];
  }
  scaled_copy(out, acc, 1.0f / sum, g.hd);
  lse = mx + std::log(sum);
}

// One query row, every head, against its n visible keys in the cache layout [n][kvHeads][hd] (decoding a
// token): no Kᵀ to build, and on AVX-512 four keys share each horizontal reduction, where one dot product
// per key (attention_row_direct) spends most of its time reducing. Keys and values are swept in blocks of
// kKeyRun whole rows, every head working on a block while it is in L1, so each row of the cache is read
// from memory once and in order (a pass per head over one head's slice of every row was half as fast).
// q / out: the row's [heads][hd]; lse[h·lseStride]; sc: heads rows of ld ≥ n + 4 floats; acc: heads·hd + heads.
void attention_row_all_heads(const Geometry& g, const float* __restrict q, const float* kb, const float* vb,
                             int64_t n, float* __restrict sc, int64_t ld, float* __restrict acc,
                             float* __restrict out, float* lse, int64_t lseStride) {
#if defined(__AVX512F__)
  if (g.hd % 16 == 0 && g.hd <= 256) {
    constexpr int64_t kKeyRun = 32;
    const int64_t nv = g.hd / 16, rowBytes = g.Hkv * g.hd * static_cast<int64_t>(sizeof(float));
    // The next run's rows are fetched while this one computes (the sweep is memory-bound: without it the
    // hardware saw one head's slice of each row at a time and brought in 10-16 GB/s).
    auto prefetch_run = [&](const float* base, int64_t r0) {
      const int64_t r1 = r0 + kKeyRun < n ? r0 + kKeyRun : n;
      for (int64_t r = r0; r < r1; r++)
        for (int64_t b = 0; b < rowBytes; b += 64)
          __builtin_prefetch(reinterpret_cast<const char*>(base + r * g.kstride) + b, 0, 3);
    };
    prefetch_run(kb, 0);
    for (int64_t j0 = 0; j0 < n; j0 += kKeyRun) {
      const int64_t j1 = j0 + kKeyRun < n ? j0 + kKeyRun : n;
      if (j1 < n) prefetch_run(kb, j1);
      else prefetch_run(vb, 0);
      for (int64_t h = 0; h < g.H; h++) {
        const float* qh = q + h * g.hd;
        const float* kh = kb + (h / g.group) * g.hd;
        for (int64_t j = j0; j < j1; j += 4) {
          // Keys past n repeat key n − 1; their scores land in the padding and are never read.
          const float* k0 = kh + j * g.kstride;
          const float* k1 = kh + (j + 1 < n ? j + 1 : n - 1) * g.kstride;
          const float* k2 = kh + (j + 2 < n ? j + 2 : n - 1) * g.kstride;
          const float* k3 = kh + (j + 3 < n ? j + 3 : n - 1) * g.kstride;
          __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
          for (int64_t c = 0; c < nv; c++) {
            const __m512 qv = _mm512_loadu_ps(qh + 16 * c);
            a0 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + 16 * c), a0);
            a1 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k1 + 16 * c), a1);
            a2 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k2 + 16 * c), a2);
            a3 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k3 + 16 * c), a3);
          }
          _mm_storeu_ps(sc + h * ld + j, hsum4(a0, a1, a2, a3));
        }
      }
    }
    float* inv = acc + g.H * g.hd;
    for (int64_t h = 0; h < g.H; h++) {
      float* row = sc + h * ld;
      for (int64_t j = 0; j < n; j++) row[j] *= g.scale;
      const float mx = row_max(row, n);
      for (int64_t j = 0; j < n; j++) row[j] = fast_exp(row[j] - mx);
      const float sum = lane_sum(row, n);
      lse[h * lseStride] = mx + std::log(sum);
      inv[h] = 1.0f / sum;
    }
    // acc_h = Σ_j p_hj · v_j, block by block; within a block a head's accumulators stay in registers.
    for (int64_t j0 = 0; j0 < n; j0 += kKeyRun) {
      const int64_t j1 = j0 + kKeyRun < n ? j0 + kKeyRun : n;
      if (j1 < n) prefetch_run(vb, j1);
      for (int64_t h = 0; h < g.H; h++) {
        const float* row = sc + h * ld;
        const float* vh = vb + (h / g.group) * g.hd;
        float* ah = acc + h * g.hd;
        for (int64_t c0 = 0; c0 < nv; c0 += 4) {
          const int64_t cn = nv - c0 < 4 ? nv - c0 : 4;
          __m512 o[2][4];
          for (int64_t t = 0; t < 4; t++) {
            o[0][t] = j0 == 0 || t >= cn ? _mm512_setzero_ps() : _mm512_loadu_ps(ah + 16 * (c0 + t));
            o[1][t] = _mm512_setzero_ps();
          }
          int64_t j = j0;
          for (; j + 2 <= j1; j += 2) {
            const __m512 p0 = _mm512_set1_ps(row[j]), p1 = _mm512_set1_ps(row[j + 1]);
            const float* v0 = vh + j * g.kstride + 16 * c0;
            const float* v1 = v0 + g.kstride;
            for (int64_t t = 0; t < cn; t++) {
              o[0][t] = _mm512_fmadd_ps(p0, _mm512_loadu_ps(v0 + 16 * t), o[0][t]);
              o[1][t] = _mm512_fmadd_ps(p1, _mm512_loadu_ps(v1 + 16 * t), o[1][t]);
            }
          }
          if (j < j1) {
            const __m512 p0 = _mm512_set1_ps(row[j]);
            const float* v0 = vh + j * g.kstride + 16 * c0;
            for (int64_t t = 0; t < cn; t++) o[0][t] = _mm512_fmadd_ps(p0, _mm512_loadu_ps(v0 + 16 * t), o[0][t]);
          }
          for (int64_t t = 0; t < cn; t++) _mm512_storeu_ps(ah + 16 * (c0 + t), _mm512_add_ps(o[0][t], o[1][t]));
        }
      }
    }
    for (int64_t h = 0; h < g.H; h++) {
      const __m512 s = _mm512_set1_ps(inv[h]);
      for (int64_t c = 0; c < nv; c++)
        _mm512_storeu_ps(out + h * g.hd + 16 * c, _mm512_mul_ps(_mm512_loadu_ps(acc + h * g.hd + 16 * c), s));
    }
    return;
  }
#endif
  for (int64_t h = 0; h < g.H; h++)
    attention_row_direct(g, q + h * g.hd, kb + (h / g.group) * g.hd, vb + (h / g.group) * g.hd, n, sc, acc,
                         out + h * g.hd, lse[h * lseStride]);
}

// Forward for query rows [i0, i1) of every query head that reads kv head kvh, in batch item b. kt is that
// (b, kvh)'s Kᵀ with leading dimension ldk, or null where the rows are too few to pay for it (decoding):
// those take one dot product per key.
// With g.bf16, kt holds pair words (transpose_for_scores) and vw the values paired along the keys; every
// unit then takes the quad path (the direct one computes in float32).
void forward_block(const Geometry& g, const float* q, const float* k, const float* v, float* out, float* lse,
                   const float* kt, int64_t ldk, const float* vw, int64_t b, int64_t kvh, int64_t i0, int64_t i1) {
  const int64_t ld = kt ? ldk : padded_ld(g.keys(i1 - 1));
  const int64_t ldw = ld / 2 + 16;  // a row of probability pair words
  thread_local std::vector<float> buf;
  float* sc = scratch(buf, 4 * ld + 4 * g.hd + (g.bf16 ? 4 * ldw : 0));
  float* acc = sc + 4 * ld;
  const float* kb = k + g.koff(b, kvh);
  const float* vb = v + g.koff(b, kvh);
  if (!kt || (!g.bf16 && g.group * (i1 - i0) < 4)) {
    for (int64_t h = kvh * g.group; h < (kvh + 1) * g.group; h++)
      for (int64_t i = i0; i < i1; i++)
        attention_row_direct(g, q + g.qoff(b, i, h), kb, vb, g.keys(i), sc, acc, out + g.qoff(b, i, h),
                             lse[(b * g.H + h) * g.tq + i]);
    return;
  }
  for (int64_t h = kvh * g.group; h < (kvh + 1) * g.group; h++) {
    for (int64_t i = i0; i < i1; i += 4) {
      const RowQuad rq(g, b, h, i, i1);
      const float* a[4] = {q + rq.off[0], q + rq.off[1], q + rq.off[2], q + rq.off[3]};
      scores4_for(g, a, kt, ld, rq.nmax, g.scale, sc);
      float inv[4];
      for (int r = 0; r < 4; r++) {
        float* row = sc + r * ld;
        const int64_t n = rq.n[r];
        if (n == 0) {
          zero(row, rq.nmax);
          continue;
        }
        const float mx = row_max(row, n);
        for (int64_t j = 0; j < n; j++) row[j] = fast_exp(row[j] - mx);
        zero(row + n, rq.nmax - n);
        const float sum = lane_sum(row, n);
        inv[r] = 1.0f / sum;
        lse[(b * g.H + h) * g.tq + i + r] = mx + std::log(sum);
      }
      // acc_r = Σ_j p_r[j] · v_j, sharing each load of v_j between the four rows.
#if defined(__AVX512BF16__)
      if (g.bf16) {
        auto* pw = reinterpret_cast<int32_t*>(acc + 4 * g.hd);
        for (int r = 0; r < 4; r++) to_pairs(sc + r * ld, rq.nmax, pw + r * ldw);
        weighted_rows4_bf16(pw, ldw, vw, rq.nmax, g.hd, acc);
      } else
#endif
        weighted_rows4(sc, ld, vb, g.kstride, rq.nmax, g.hd, acc);
      for (int r = 0; r < rq.count; r++) scaled_copy(out + rq.off[r], acc + r * g.hd, inv[r], g.hd);
    }
  }
}

// Units with fewer than four query rows per kv head (decoding) take the direct path; the others read Kᵀ.
inline bool uses_transpose(const Geometry& g) { return g.group * (g.tq < kQueryBlock ? g.tq : kQueryBlock) >= 4; }

// bf16 products where asked for, the CPU has AVX-512 BF16, the head size fits the register tiles (16, 32,
// 48 or 64) and the rows are many enough for the transposed path; float32 otherwise. The forward and the
// backward decide alike, so the backward recomputes exactly the forward's scores.
inline bool use_bf16(const Geometry& g, const AttentionShape& s) {
  return kBf16Attention && s.bf16 && g.hd % 16 == 0 && g.hd <= 64 && uses_transpose(g);
}

}  // namespace

void attention(const float* q, const float* k, const float* v, float* out, float* lse, const AttentionShape& s) {
  Geometry g(s);
  g.bf16 = use_bf16(g, s);
  if (g.B * g.H * g.tq == 0) return;
  const int nt = threads_for(g.work(), kWorkGrain);
  const int64_t qblocks = (g.tq + kQueryBlock - 1) / kQueryBlock;
  const int64_t pairs = g.B * g.Hkv;
  // Kᵀ is transposed once per (batch, kv head) up front and shared by every query block (a per-block
  // transpose of the visible prefix cost about a third of the kernel's time).
  const bool transposed = uses_transpose(g);
  const int64_t ldk = padded_ld(g.tk);
  thread_local std::vector<float> ktbuf;  // the calling thread's; the workers only read it
  float* ktAll = transposed ? scratch(ktbuf, pairs * g.hd * ldk) : nullptr;
  // With bf16 each (batch, kv head) slot holds Kᵀ as pair words (half the slot) and then the values paired
  // along the keys (at most tk/2 + 1 rows of hd words, which fit the other half: ldk > tk + 1).
  if (transposed) {
    deal(pairs, nt, [&](int64_t u) {
      const int64_t b = u / g.Hkv, kvh = u % g.Hkv;
      float* slot = ktAll + u * g.hd * ldk;
      transpose_for_scores(g, k + g.koff(b, kvh), g.kstride, g.tk, slot, ldk);
#if defined(__AVX512BF16__)
      if (g.bf16) pack_value_pairs(v + g.koff(b, kvh), g.kstride, g.tk, g.hd, slot + g.hd / 2 * ldk);
#endif
    });
  }
  // A unit: one (batch, kv head) and a block of query rows, for every query head reading that kv head.
  deal(pairs * qblocks, nt, [&](int64_t u) {
    const int64_t qb = u % qblocks, kvh = (u / qblocks) % g.Hkv, b = u / (qblocks * g.Hkv);
    const int64_t i0 = qb * kQueryBlock, i1 = i0 + kQueryBlock < g.tq ? i0 + kQueryBlock : g.tq;
    const float* kt = transposed ? ktAll + (b * g.Hkv + kvh) * g.hd * ldk : nullptr;
    forward_block(g, q, k, v, out, lse, kt, ldk, g.bf16 ? kt + g.hd / 2 * ldk : nullptr, b, kvh, i0, i1);
  });
}

// Each sequence is its own one-item causal geometry (its new rows are the last of its keys); the units of
// all sequences — (sequence, kv head, query block) — are dealt to the threads together, so a batch of
// decoding sequences costs one parallel region instead of one call each.
void attention_cached(const float* q, float* out, const CachedAttention& c) {
  struct Seq {
    int64_t row0, kt, unit0;  // first row in q / out, offset of its Kᵀ (−1: the direct path), first unit
    AttentionShape shape;
  };
  thread_local std::vector<Seq> seqbuf;
  thread_local std::vector<int32_t> unitbuf;
  thread_local std::vector<float> ktbuf, lsebuf;
  seqbuf.resize(static_cast<size_t>(c.sequences));
  Seq* seqs = seqbuf.data();
  int64_t rows = 0, ktSize = 0, units = 0, work = 0;
  for (int64_t s = 0; s < c.sequences; s++) {
    const AttentionShape shape{1, c.counts[s], c.lengths[s], c.heads, c.kvHeads, c.headDim, c.scale, true};
    const Geometry g(shape);
    const bool transposed = uses_transpose(g);
    seqs[s] = {rows, transposed ? ktSize : -1, units, shape};
    rows += g.tq;
    if (transposed) ktSize += g.Hkv * g.hd * padded_ld(g.tk);
    // A direct (decoding) sequence is one unit, all heads; the others one per kv head and query block.
    if (g.tq > 0) units += transposed ? g.Hkv * ((g.tq + kQueryBlock - 1) / kQueryBlock) : 1;
    work += g.work();
  }
  if (units == 0) return;
  unitbuf.resize(static_cast<size_t>(units));
  int32_t* unitSeq = unitbuf.data();
  for (int64_t s = 0, u = 0; s < c.sequences; s++)
    for (; u < (s + 1 < c.sequences ? seqs[s + 1].unit0 : units); u++) unitSeq[u] = static_cast<int32_t>(s);
  float* ktAll = scratch(ktbuf, static_cast<size_t>(ktSize));
  float* lse = scratch(lsebuf, static_cast<size_t>(rows * c.heads));  // not returned: no backward
  const int nt = threads_for(work, kWorkGrain);
  if (ktSize > 0) {
    deal(c.sequences * c.kvHeads, nt, [&](int64_t u) {
      const Seq& sq = seqs[u / c.kvHeads];
      if (sq.kt < 0) return;
      const Geometry g(sq.shape);
      const int64_t kvh = u % c.kvHeads, ldk = padded_ld(g.tk);
      transpose_rows(c.keys[u / c.kvHeads] + g.koff(0, kvh), g.kstride, g.tk, g.hd,
                     ktAll + sq.kt + kvh * g.hd * ldk, ldk);
    });
  }
  deal(units, nt, [&](int64_t u) {
    const int64_t s = unitSeq[u];
    const Seq& sq = seqs[s];
    const Geometry g(sq.shape);
    const int64_t off = sq.row0 * g.H * g.hd;
    if (sq.kt < 0) {
      const int64_t ld = padded_ld(g.tk);
      thread_local std::vector<float> buf;
      float* sc = scratch(buf, static_cast<size_t>(g.H * ld + g.H * g.hd + g.H));
      for (int64_t i = 0; i < g.tq; i++)
        attention_row_all_heads(g, q + off + i * g.H * g.hd, c.keys[s], c.values[s], g.keys(i), sc, ld,
                                sc + g.H * ld, out + off + i * g.H * g.hd, lse + sq.row0 * g.H + i, g.tq);
      return;
    }
    const int64_t qblocks = (g.tq + kQueryBlock - 1) / kQueryBlock, local = u - sq.unit0;
    const int64_t qb = local % qblocks, kvh = local / qblocks;
    const int64_t i0 = qb * kQueryBlock, i1 = i0 + kQueryBlock < g.tq ? i0 + kQueryBlock : g.tq;
    const int64_t ldk = padded_ld(g.tk);
    forward_block(g, q + off, c.keys[s], c.values[s], out + off, lse + sq.row0 * g.H, ktAll + sq.kt + kvh * g.hd * ldk,
                  ldk, nullptr, 0, kvh, i0, i1);
  });
}

namespace {

// For a quad of query rows against keys [0, nmax): p (4 rows of ld) = exp(scale·q·k − lse), ds = p·(dO·v − D),
// zero beyond each row's visible keys. kt / vt are Kᵀ and Vᵀ [hd][ld]. D[r] = dO_r·O_r.
void quad_probs_and_ds(const Geometry& g, const RowQuad& rq, const float* q, const float* gOut, const float* lseRow,
                       const float* D, const float* kt, const float* vt, int64_t ld, float* p, float* ds) {
  const float* a[4] = {q + rq.off[0], q + rq.off[1], q + rq.off[2], q + rq.off[3]};
  const float* o[4] = {gOut + rq.off[0], gOut + rq.off[1], gOut + rq.off[2], gOut + rq.off[3]};
  scores4_for(g, a, kt, ld, rq.nmax, g.scale, p);
  scores4_for(g, o, vt, ld, rq.nmax, 1.0f, ds);
  for (int r = 0; r < 4; r++) {
    float* pr = p + r * ld;
    float* dr = ds + r * ld;
    const int64_t n = rq.n[r];
    const float l = n > 0 ? lseRow[r] : 0.0f, dd = D[r];
    for (int64_t j = 0; j < n; j++) {
      const float e = fast_exp(pr[j] - l);
      pr[j] = e;
      dr[j] = e * (dr[j] - dd);
    }
    zero(pr + n, rq.nmax - n);
    zero(dr + n, rq.nmax - n);
  }
}

#if defined(__AVX512F__)
// One pass over the keys for a quad of rows. (Three register-resident passes, one per output, measured
// slower: they read p / dS three times and the gk / gv rows twice.)
template <int NV>
void backward_keys4_avx512(const float* p, const float* ds, int64_t ld, const float* const qr[4],
                           const float* const orow[4], const float* kb, float* gkb, float* gvb, int64_t stride,
                           int64_t n, float scale, float* acc) {
  __m512 a[4][NV];
  for (int r = 0; r < 4; r++)
    for (int t = 0; t < NV; t++) a[r][t] = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j++) {
    __m512 pr[4], dr[4], dsr[4];
    for (int r = 0; r < 4; r++) {
      pr[r] = _mm512_set1_ps(p[r * ld + j]);
      const float d = ds[r * ld + j];
      dr[r] = _mm512_set1_ps(d);
      dsr[r] = _mm512_set1_ps(d * scale);
    }
    float* gv = gvb + j * stride;
    float* gk = gkb + j * stride;
    const float* kj = kb + j * stride;
    for (int t = 0; t < NV; t++) {
      // Same association as axpy4: y + (((a0·x0 + a1·x1) + a2·x2) + a3·x3).
      __m512 sv = _mm512_mul_ps(pr[0], _mm512_loadu_ps(orow[0] + 16 * t));
      __m512 sk = _mm512_mul_ps(dsr[0], _mm512_loadu_ps(qr[0] + 16 * t));
      for (int r = 1; r < 4; r++) {
        sv = _mm512_fmadd_ps(pr[r], _mm512_loadu_ps(orow[r] + 16 * t), sv);
        sk = _mm512_fmadd_ps(dsr[r], _mm512_loadu_ps(qr[r] + 16 * t), sk);
      }
      _mm512_storeu_ps(gv + 16 * t, _mm512_add_ps(_mm512_loadu_ps(gv + 16 * t), sv));
      _mm512_storeu_ps(gk + 16 * t, _mm512_add_ps(_mm512_loadu_ps(gk + 16 * t), sk));
      const __m512 kv = _mm512_loadu_ps(kj + 16 * t);
      for (int r = 0; r < 4; r++) a[r][t] = _mm512_fmadd_ps(dr[r], kv, a[r][t]);
    }
  }
  for (int r = 0; r < 4; r++)
    for (int t = 0; t < NV; t++) _mm512_storeu_ps(acc + r * 16 * NV + 16 * t, a[r][t]);
}
#endif

// The group path's loop over keys for a quad of rows: gv_j += Σ_r p_r[j]·dO_r, gk_j += Σ_r scale·dS_r[j]·q_r,
// acc_r = Σ_j dS_r[j]·k_j. Returns false when there is no specialised version for this head size (the caller
// then runs the portable loop).
bool backward_keys4(const float* p, const float* ds, int64_t ld, const float* q0, const float* q1, const float* q2,
                    const float* q3, const float* o0, const float* o1, const float* o2, const float* o3,
                    const float* kb, float* gkb, float* gvb, int64_t stride, int64_t n, int64_t hd, float scale,
                    float* acc) {
#if defined(__AVX512F__)
  const float* qr[4] = {q0, q1, q2, q3};
  const float* orow[4] = {o0, o1, o2, o3};
  switch (hd) {
    case 16:
      backward_keys4_avx512<1>(p, ds, ld, qr, orow, kb, gkb, gvb, stride, n, scale, acc);
      return true;
    case 32:
      backward_keys4_avx512<2>(p, ds, ld, qr, orow, kb, gkb, gvb, stride, n, scale, acc);
      return true;
    case 64:
      backward_keys4_avx512<4>(p, ds, ld, qr, orow, kb, gkb, gvb, stride, n, scale, acc);
      return true;
    default:
      return false;
  }
#else
  (void)p, (void)ds, (void)ld, (void)q0, (void)q1, (void)q2, (void)q3, (void)o0, (void)o1, (void)o2, (void)o3;
  (void)kb, (void)gkb, (void)gvb, (void)stride, (void)n, (void)hd, (void)scale, (void)acc;
  return false;
#endif
}

}  // namespace

// dS = P∘(dP − D) with P = exp(S − lse), dP = dO·Vᵀ, D_i = dO_i·O_i; gq = scale·dS·K, gk = scale·dSᵀ·Q,
// gv = Pᵀ·dO. Two schedules, both race-free and deterministic for a given thread count:
// - group path: one thread owns a (batch, kv head) pair and every query head reading it, so it adds into
//   gk / gv directly. Used when there are at least as many such pairs as threads.
// - key-parallel path (few pairs, e.g. batch 1 with one kv head): pass 1 splits query rows and writes gq,
//   pass 2 splits keys and writes gk / gv; P and dP are recomputed in each pass (~1.4x the flops).
void attention_backward(const float* q, const float* k, const float* v, const float* out, const float* lse,
                        const float* gOut, float* gq, float* gk, float* gv, const AttentionShape& s) {
  Geometry g(s);
  g.bf16 = use_bf16(g, s);
  const int64_t pairs = g.B * g.Hkv;
  if (pairs == 0 || g.tk == 0) return;
  const int nt = threads_for(g.work(), kWorkGrain);

  if (pairs >= nt) {
    deal(pairs, nt, [&](int64_t u) {
      const int64_t b = u / g.Hkv, kvh = u % g.Hkv, ld = padded_ld(g.tk);
      thread_local std::vector<float> buf;
      // Kᵀ, Vᵀ, 4 rows each of p and dS, 4 accumulator rows, and room for the bf16 kernel's pair words.
      float* kt = scratch(buf, 2 * g.hd * ld + 16 * ld + 8 * g.hd);
      float* vt = kt + g.hd * ld;
      float* p = vt + g.hd * ld;
      float* ds = p + 4 * ld;
      float* acc = ds + 4 * ld;
      const float* kb = k + g.koff(b, kvh);
      const float* vb = v + g.koff(b, kvh);
      float* gkb = gk + g.koff(b, kvh);
      float* gvb = gv + g.koff(b, kvh);
      transpose_for_scores(g, kb, g.kstride, g.tk, kt, ld);
      transpose_for_scores(g, vb, g.kstride, g.tk, vt, ld);
#if defined(__AVX512BF16__)
      // bf16: the keys paired along the keys fill the half of Kᵀ's slot its pair words leave (ld > tk + 1).
      const float* kw = g.bf16 ? kt + g.hd / 2 * ld : nullptr;
      if (kw) pack_value_pairs(kb, g.kstride, g.tk, g.hd, kt + g.hd / 2 * ld);
      BwdPairs pairs(acc + 4 * g.hd, ld, g.hd);
#endif
      for (int64_t j = 0; j < g.tk; j++) {
        zero(gkb + j * g.kstride, g.hd);
        zero(gvb + j * g.kstride, g.hd);
      }
      for (int64_t h = kvh * g.group; h < (kvh + 1) * g.group; h++) {
        for (int64_t i = 0; i < g.tq; i += 4) {
          const RowQuad rq(g, b, h, i, g.tq);
          float D[4], L[4];
          for (int r = 0; r < 4; r++) {
            D[r] = lane_dot(gOut + rq.off[r], out + rq.off[r], g.hd);
            L[r] = lse[(b * g.H + h) * g.tq + i + (r < rq.count ? r : rq.count - 1)];
          }
          quad_probs_and_ds(g, rq, q, gOut, L, D, kt, vt, ld, p, ds);
          const float *q0 = q + rq.off[0], *q1 = q + rq.off[1], *q2 = q + rq.off[2], *q3 = q + rq.off[3];
          const float *o0 = gOut + rq.off[0], *o1 = gOut + rq.off[1], *o2 = gOut + rq.off[2],
                      *o3 = gOut + rq.off[3];
#if defined(__AVX512BF16__)
          if (kw) {
            const float* qr[4] = {q0, q1, q2, q3};
            const float* orow[4] = {o0, o1, o2, o3};
            pairs.prepare(p, ds, ld, qr, orow, rq.nmax, g.hd);
            backward_keys4_bf16(pairs, kw, gkb, gvb, g.kstride, rq.nmax, g.hd, acc);
          } else
#endif
          if (!backward_keys4(p, ds, ld, q0, q1, q2, q3, o0, o1, o2, o3, kb, gkb, gvb, g.kstride, rq.nmax, g.hd,
                              g.scale, acc)) {
            zero(acc, 4 * g.hd);
            for (int64_t j = 0; j < rq.nmax; j++) {
              const float p0 = p[j], p1 = p[ld + j], p2 = p[2 * ld + j], p3 = p[3 * ld + j];
              const float d0 = ds[j], d1 = ds[ld + j], d2 = ds[2 * ld + j], d3 = ds[3 * ld + j];
              axpy4(gvb + j * g.kstride, o0, o1, o2, o3, p0, p1, p2, p3, g.hd);
              axpy4(gkb + j * g.kstride, q0, q1, q2, q3, d0 * g.scale, d1 * g.scale, d2 * g.scale,
                    d3 * g.scale, g.hd);
              fma4(acc, acc + g.hd, acc + 2 * g.hd, acc + 3 * g.hd, kb + j * g.kstride, d0, d1, d2, d3, g.hd);
            }
          }
          for (int r = 0; r < rq.count; r++) scaled_copy(gq + rq.off[r], acc + r * g.hd, g.scale, g.hd);
        }
      }
#if defined(__AVX512BF16__)
      if (kw)  // the bf16 kernel summed dSᵀ·Q unscaled
        for (int64_t j = 0; j < g.tk; j++)
          for (int64_t d = 0; d < g.hd; d++) gkb[j * g.kstride + d] *= g.scale;
#endif
    });
    return;
  }

  // Key-parallel path. Pass 1: blocks of query rows → gq, and D for pass 2.
  thread_local std::vector<float> dbuf;
  float* Dall = scratch(dbuf, g.B * g.H * g.tq);
  const int64_t qblocks = (g.tq + kQueryBlock - 1) / kQueryBlock;
  deal(pairs * qblocks, nt, [&](int64_t u) {
    const int64_t qb = u % qblocks, kvh = (u / qblocks) % g.Hkv, b = u / (qblocks * g.Hkv);
    const int64_t i0 = qb * kQueryBlock, i1 = i0 + kQueryBlock < g.tq ? i0 + kQueryBlock : g.tq;
    const int64_t nkeys = g.keys(i1 - 1), ld = padded_ld(nkeys);
    thread_local std::vector<float> buf;
    float* kt = scratch(buf, 2 * g.hd * ld + 8 * ld + 4 * g.hd);
    float* vt = kt + g.hd * ld;
    float* p = vt + g.hd * ld;
    float* ds = p + 4 * ld;
    float* acc = ds + 4 * ld;
    const float* kb = k + g.koff(b, kvh);
    transpose_for_scores(g, kb, g.kstride, nkeys, kt, ld);
    transpose_for_scores(g, v + g.koff(b, kvh), g.kstride, nkeys, vt, ld);
    for (int64_t h = kvh * g.group; h < (kvh + 1) * g.group; h++) {
      for (int64_t i = i0; i < i1; i += 4) {
        const RowQuad rq(g, b, h, i, i1);
        const int64_t lrow = (b * g.H + h) * g.tq + i;
        float D[4];
        for (int r = 0; r < 4; r++) D[r] = lane_dot(gOut + rq.off[r], out + rq.off[r], g.hd);
        for (int r = 0; r < rq.count; r++) Dall[lrow + r] = D[r];
        float L[4];
        for (int r = 0; r < 4; r++) L[r] = lse[lrow + (r < rq.count ? r : rq.count - 1)];
        quad_probs_and_ds(g, rq, q, gOut, L, D, kt, vt, ld, p, ds);
        weighted_rows4(ds, ld, kb, g.kstride, rq.nmax, g.hd, acc);
        for (int r = 0; r < rq.count; r++) scaled_copy(gq + rq.off[r], acc + r * g.hd, g.scale, g.hd);
      }
    }
  });

  // Pass 2: blocks of keys → gk, gv. The roles flip: four keys at a time against the transposed query and
  // upstream-gradient rows (Qᵀ, dOᵀ [hd][rows]) of every head in the group.
  const int64_t kblocks = (g.tk + kKeyBlock - 1) / kKeyBlock;
  deal(pairs * kblocks, nt, [&](int64_t u) {
    const int64_t kbk = u % kblocks, kvh = (u / kblocks) % g.Hkv, b = u / (kblocks * g.Hkv);
    const int64_t j0 = kbk * kKeyBlock, j1 = j0 + kKeyBlock < g.tk ? j0 + kKeyBlock : g.tk;
    const int64_t i0 = g.first_query(j0), m = g.tq - i0, ld = padded_ld(m);
    thread_local std::vector<float> buf;
    const int64_t accRows = kKeyBlock + 4;  // the block's keys plus room for a padded quad
    float* qt = scratch(buf, 2 * g.hd * ld + 8 * ld + 2 * accRows * g.hd);
    float* ot = qt + g.hd * ld;
    float* p = ot + g.hd * ld;
    float* ds = p + 4 * ld;
    float* accK = ds + 4 * ld;  // [accRows][hd], key j at (j − j0)·hd
    float* accV = accK + accRows * g.hd;
    const float* kb = k + g.koff(b, kvh);
    const float* vb = v + g.koff(b, kvh);
    zero(accK, 2 * accRows * g.hd);
    for (int64_t h = kvh * g.group; h < (kvh + 1) * g.group && m > 0; h++) {
      // Qᵀ and dOᵀ of this head's rows i0..tq−1, shared by the block's keys.
      transpose_for_scores(g, q + g.qoff(b, i0, h), g.H * g.hd, m, qt, ld);
      transpose_for_scores(g, gOut + g.qoff(b, i0, h), g.H * g.hd, m, ot, ld);
      const float* lrow = lse + (b * g.H + h) * g.tq + i0;
      const float* drow = Dall + (b * g.H + h) * g.tq + i0;
      for (int64_t j = j0; j < j1; j += 4) {
        const int cnt = static_cast<int>(j1 - j < 4 ? j1 - j : 4);
        const float* kr[4];
        const float* vr[4];
        for (int r = 0; r < 4; r++) {
          const int64_t jr = j + (r < cnt ? r : cnt - 1);
          kr[r] = kb + jr * g.kstride;
          vr[r] = vb + jr * g.kstride;
        }
        scores4_for(g, kr, qt, ld, m, g.scale, p);
        scores4_for(g, vr, ot, ld, m, 1.0f, ds);
        for (int r = 0; r < 4; r++) {
          float* pr = p + r * ld;
          float* dr = ds + r * ld;
          // Rows before first_query(j + r) do not see this key; padded keys see nothing.
          const int64_t skip = r < cnt ? g.first_query(j + r) - i0 : m;
          for (int64_t t = 0; t < m; t++) pr[t] -= lrow[t];
          exp_inplace(pr, m);
          for (int64_t t = 0; t < m; t++) dr[t] = pr[t] * (dr[t] - drow[t]);
          zero(pr, skip);
          zero(dr, skip);
        }
        // Padded keys (r >= cnt) have zero p and ds and land in the spare rows past the block.
        float* aK[4];
        float* aV[4];
        for (int r = 0; r < 4; r++) {
          aK[r] = accK + (j - j0 + r) * g.hd;
          aV[r] = accV + (j - j0 + r) * g.hd;
        }
        for (int64_t t = 0; t < m; t++) {
          const float* qi = q + g.qoff(b, i0 + t, h);
          const float* oi = gOut + g.qoff(b, i0 + t, h);
          fma4(aV[0], aV[1], aV[2], aV[3], oi, p[t], p[ld + t], p[2 * ld + t], p[3 * ld + t], g.hd);
          fma4(aK[0], aK[1], aK[2], aK[3], qi, ds[t], ds[ld + t], ds[2 * ld + t], ds[3 * ld + t], g.hd);
        }
      }
    }
    for (int64_t j = j0; j < j1; j++) {
      scaled_copy(gk + g.koff(b, kvh) + j * g.kstride, accK + (j - j0) * g.hd, g.scale, g.hd);
      scaled_copy(gv + g.koff(b, kvh) + j * g.kstride, accV + (j - j0) * g.hd, 1.0f, g.hd);
    }
  });
}

}  // namespace AS_ISA
}  // namespace as
