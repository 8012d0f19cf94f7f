// Kernel declarations, mirroring src/backend/backend.ts (read that file for each kernel's semantics).
// matmul.cc and ops.cc are compiled once per instruction set with -DAS_ISA=avx512|avx2|generic; each
// compilation defines these functions in its own namespace, and addon.cc picks one set at load time.
#pragma once
#include <cstdint>

namespace as {

struct MatmulArgs {
  int64_t batch, m, n, k;
  bool transA, transB;
  int64_t strideA, strideB;
  bool accumulate;
  // C is symmetric (m == n; e.g. X·Xᵀ, or a product of commuting symmetric matrices): only the tiles on or
  // above the diagonal are computed and the rest mirrored, about half the work. The caller vouches for it.
  bool symmetric = false;
  // matmul_bf16 only: an operand given as bf16 bits (a released activation's bf16 copy, see releaseStorage)
  // instead of floats, in the same layout; the float pointer for it is then ignored.
  const uint16_t* ah = nullptr;
  const uint16_t* bh = nullptr;
};

struct AttentionShape {
  int64_t batch, tq, tk, heads, kvHeads, headDim;
  float scale;
  bool causal;
  // bf16 score and value products (bf16 mixed precision), where the CPU has AVX-512 BF16; see
  // ops_attention.cc. Ignored elsewhere: attention then runs in float32.
  bool bf16 = false;
};

// Attention of new positions against per-sequence KV caches (attention_cached): S sequences, sequence s
// with counts[s] query rows (packed in order in q and out) and lengths[s] keys at keys[s] / values[s].
struct CachedAttention {
  int64_t sequences, heads, kvHeads, headDim;
  float scale;
  const int32_t* counts;
  const int32_t* lengths;
  const float* const* keys;
  const float* const* values;
};

struct AdamWArgs {
  float lr, beta1, beta2, eps, weightDecay;
  double biasCorrection1, biasCorrection2;
};

#define AS_DECLARE_KERNELS                                                                                    \
  void matmul(const float* a, const float* b, float* c, const MatmulArgs& args);                              \
  void matmul_bf16(const float* a, const float* b, float* c, const MatmulArgs& args);                         \
  void add(const float* a, const float* b, float* out, int64_t n, int64_t bn);                                \
  void mul(const float* a, const float* b, float* out, int64_t n, int64_t bn);                                \
  void scale(const float* a, float s, float* out, int64_t n);                                                 \
  void add_into(float* dst, const float* src, int64_t n);                                                     \
  void fill(float* dst, float value, int64_t n);                                                              \
  void to_bf16(const float* src, uint16_t* dst, int64_t n);                                                   \
  void sum_rows(const float* x, float* out, int64_t rows, int64_t cols);                                      \
  double sum(const float* x, int64_t n);                                                                      \
  double sum_squares(const float* x, int64_t n);                                                              \
  void embedding(const float* table, const int32_t* ids, float* out, int64_t n, int64_t dim);                 \
  void embedding_backward(const float* gOut, const int32_t* ids, float* gTable, int64_t n, int64_t dim,       \
                          int64_t vocab);                                                                     \
  void layer_norm(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd,       \
                  int64_t rows, int64_t dim, float eps);                                                      \
  void layer_norm_backward(const float* gOut, const float* x, const float* w, const float* mean,              \
                           const float* rstd, float* gx, float* gw, float* gb, int64_t rows, int64_t dim);    \
  void rms_norm(const float* x, const float* w, float* out, float* rstd, int64_t rows, int64_t dim,           \
                float eps);                                                                                   \
  void rms_norm_backward(const float* gOut, const float* x, const float* w, const float* rstd, float* gx,      \
                         float* gw, int64_t rows, int64_t dim);                                               \
  void gelu(const float* x, float* out, int64_t n);                                                           \
  void gelu_backward(const float* x, const float* gOut, float* gx, int64_t n);                                \
  void silu(const float* x, float* out, int64_t n);                                                           \
  void silu_backward(const float* x, const float* gOut, float* gx, int64_t n);                                \
  void relu2(const float* x, float* out, int64_t n);                                                          \
  void relu2_backward(const float* x, const float* gOut, float* gx, int64_t n);                               \
  void softcap(const float* x, float* out, int64_t n, float cap);                                             \
  void softcap_backward(const float* x, const float* gOut, float* gx, int64_t n, float cap);                  \
  void exp(const float* x, float* out, int64_t n);                                                            \
  void log_sigmoid(const float* x, float* out, int64_t n);                                                    \
  void log_sigmoid_backward(const float* x, const float* gOut, float* gx, int64_t n);                         \
  void clamp(const float* x, float* out, int64_t n, float lo, float hi);                                      \
  void clamp_backward(const float* x, const float* gOut, float* gx, int64_t n, float lo, float hi);           \
  void minimum(const float* a, const float* b, float* out, int64_t n);                                        \
  void minimum_backward(const float* a, const float* b, const float* gOut, float* ga, float* gb, int64_t n);  \
  void swiglu(const float* gate, const float* up, float* out, int64_t n);                                     \
  void swiglu_backward(const float* gate, const float* up, const float* gOut, float* gGate, float* gUp,       \
                       int64_t n);                                                                            \
  void softmax(const float* x, float* out, int64_t rows, int64_t dim);                                        \
  void softmax_backward(const float* y, const float* gOut, float* gx, int64_t rows, int64_t dim);             \
  void rope(const float* x, float* out, const float* cos, const float* sin, int64_t batch, int64_t t,         \
            int64_t heads, int64_t headDim, int64_t pos0, const int32_t* positions, bool inverse);           \
  void attention(const float* q, const float* k, const float* v, float* out, float* lse,                      \
                 const AttentionShape& s);                                                                    \
  void attention_backward(const float* q, const float* k, const float* v, const float* out, const float* lse, \
                          const float* gOut, float* gq, float* gk, float* gv, const AttentionShape& s);        \
  void attention_cached(const float* q, float* out, const CachedAttention& c);                                \
  void cross_entropy(const float* logits, const int32_t* targets, float* loss, float* lse, int64_t rows,      \
                     int64_t vocab, int32_t ignoreIndex);                                                     \
  void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse, float* gx,       \
                              int64_t rows, int64_t vocab, int32_t ignoreIndex, float gScale);                \
  void token_log_probs_backward(const float* logits, const int32_t* targets, const float* lse,               \
                               const float* gOut, float* gx, int64_t rows, int64_t vocab, int32_t ignoreIndex); \
  void dropout(const float* x, float* out, int64_t n, float p, uint32_t seed);                                \
  void dropout_backward(const float* gOut, float* gx, int64_t n, float p, uint32_t seed);                     \
  void adamw(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWArgs& args);

namespace generic { AS_DECLARE_KERNELS }
namespace avx2 { AS_DECLARE_KERNELS }
namespace avx512 { AS_DECLARE_KERNELS }
// matmul.cc and ops_attention.cc compiled once more with -mavx512bf16: the bf16 GEMM and bf16 attention for
// CPUs with AVX-512 BF16 (Zen 4 and later, Intel Cooper Lake and later). Every other kernel comes from the
// avx512 set.
namespace avx512bf16 {
void matmul(const float* a, const float* b, float* c, const MatmulArgs& args);
void matmul_bf16(const float* a, const float* b, float* c, const MatmulArgs& args);
void attention(const float* q, const float* k, const float* v, float* out, float* lse, const AttentionShape& s);
void attention_backward(const float* q, const float* k, const float* v, const float* out, const float* lse,
                        const float* gOut, float* gq, float* gk, float* gv, const AttentionShape& s);
}

// The set chosen for this CPU (see cpu.cc). Kernels are called through these function pointers.
struct KernelTable {
  const char* isa;
  decltype(&generic::matmul) matmul;
  // C = bf16(op(A))·bf16(op(B)) with float32 accumulation: the products of bf16 mixed precision.
  decltype(&generic::matmul_bf16) matmul_bf16;
  decltype(&generic::add) add;
  decltype(&generic::mul) mul;
  decltype(&generic::scale) scale;
  decltype(&generic::add_into) add_into;
  decltype(&generic::fill) fill;
  decltype(&generic::to_bf16) to_bf16;
  decltype(&generic::sum_rows) sum_rows;
  decltype(&generic::sum) sum;
  decltype(&generic::sum_squares) sum_squares;
  decltype(&generic::embedding) embedding;
  decltype(&generic::embedding_backward) embedding_backward;
  decltype(&generic::layer_norm) layer_norm;
  decltype(&generic::layer_norm_backward) layer_norm_backward;
  decltype(&generic::rms_norm) rms_norm;
  decltype(&generic::rms_norm_backward) rms_norm_backward;
  decltype(&generic::gelu) gelu;
  decltype(&generic::gelu_backward) gelu_backward;
  decltype(&generic::silu) silu;
  decltype(&generic::silu_backward) silu_backward;
  decltype(&generic::relu2) relu2;
  decltype(&generic::relu2_backward) relu2_backward;
  decltype(&generic::softcap) softcap;
  decltype(&generic::softcap_backward) softcap_backward;
  decltype(&generic::exp) exp;
  decltype(&generic::log_sigmoid) log_sigmoid;
  decltype(&generic::log_sigmoid_backward) log_sigmoid_backward;
  decltype(&generic::clamp) clamp;
  decltype(&generic::clamp_backward) clamp_backward;
  decltype(&generic::minimum) minimum;
  decltype(&generic::minimum_backward) minimum_backward;
  decltype(&generic::swiglu) swiglu;
  decltype(&generic::swiglu_backward) swiglu_backward;
  decltype(&generic::softmax) softmax;
  decltype(&generic::softmax_backward) softmax_backward;
  decltype(&generic::rope) rope;
  decltype(&generic::attention) attention;
  decltype(&generic::attention_backward) attention_backward;
  decltype(&generic::attention_cached) attention_cached;
  decltype(&generic::cross_entropy) cross_entropy;
  decltype(&generic::cross_entropy_backward) cross_entropy_backward;
  decltype(&generic::token_log_probs_backward) token_log_probs_backward;
  decltype(&generic::dropout) dropout;
  decltype(&generic::dropout_backward) dropout_backward;
  decltype(&generic::adamw) adamw;
};

const KernelTable& kernels();
// Forces an instruction set ("avx512bf16", "avx512", "avx2", "generic") if this CPU supports it; returns false otherwise.
bool select_isa(const char* isa);

}  // namespace as

// Inside matmul.cc / ops.cc: `namespace as { namespace AS_ISA { ... } }` defines this compilation's set.
#ifndef AS_ISA
#define AS_ISA generic
#endif
