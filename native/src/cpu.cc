// Picks the kernel set for this CPU at load time: AVX-512 where the CPU and OS support it (with the bf16
// GEMM where it has AVX-512 BF16), then AVX2+FMA, then the portable build. AFTERSCALE_ISA=avx512bf16|avx512|
// avx2|generic forces a (supported) choice.
#include <cstdlib>
#include <cstring>

#include "kernels.h"

namespace as {
namespace {

#define AS_TABLE(ns)                                                                                      \
  KernelTable {                                                                                           \
    #ns, ns::matmul, ns::matmul_bf16, ns::add, ns::mul, ns::scale, ns::add_into, ns::fill, ns::to_bf16, ns::sum_rows, ns::sum,          \
        ns::sum_squares, ns::embedding, ns::embedding_backward, ns::layer_norm, ns::layer_norm_backward,  \
        ns::rms_norm, ns::rms_norm_backward, ns::gelu, ns::gelu_backward, ns::silu, ns::silu_backward,    \
        ns::relu2, ns::relu2_backward, ns::softcap, ns::softcap_backward, ns::exp, ns::log_sigmoid,       \
        ns::log_sigmoid_backward, ns::clamp, ns::clamp_backward, ns::minimum, ns::minimum_backward,       \
        ns::swiglu, ns::swiglu_backward, ns::softmax, ns::softmax_backward, ns::rope, ns::attention,      \
        ns::attention_backward, ns::attention_cached, ns::cross_entropy, ns::cross_entropy_backward,      \
        ns::token_log_probs_backward, ns::dropout, ns::dropout_backward, ns::adamw                        \
  }

const KernelTable generic_table = AS_TABLE(generic);
#ifdef AS_HAVE_X86_VARIANTS
const KernelTable avx2_table = AS_TABLE(avx2);
const KernelTable avx512_table = AS_TABLE(avx512);
// The avx512 set with the bf16 GEMM and attention (their float32 paths are the same code as avx512's).
const KernelTable avx512bf16_table = [] {
  KernelTable t = AS_TABLE(avx512);
  t.isa = "avx512bf16";
  t.matmul_bf16 = avx512bf16::matmul_bf16;
  t.attention = avx512bf16::attention;
  t.attention_backward = avx512bf16::attention_backward;
  return t;
}();

bool has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
}
bool has_avx512bf16() { return has_avx512() && __builtin_cpu_supports("avx512bf16"); }
bool has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
#endif

const KernelTable* table_for(const char* isa) {
  if (std::strcmp(isa, "generic") == 0) return &generic_table;
#ifdef AS_HAVE_X86_VARIANTS
  if (std::strcmp(isa, "avx2") == 0 && has_avx2()) return &avx2_table;
  if (std::strcmp(isa, "avx512") == 0 && has_avx512()) return &avx512_table;
  if (std::strcmp(isa, "avx512bf16") == 0 && has_avx512bf16()) return &avx512bf16_table;
#endif
  return nullptr;
}

const KernelTable* best() {
  if (const char* forced = std::getenv("AFTERSCALE_ISA")) {
    if (const KernelTable* t = table_for(forced)) return t;
  }
#ifdef AS_HAVE_X86_VARIANTS
  if (has_avx512bf16()) return &avx512bf16_table;
  if (has_avx512()) return &avx512_table;
  if (has_avx2()) return &avx2_table;
#endif
  return &generic_table;
}

const KernelTable* current = nullptr;

}  // namespace

const KernelTable& kernels() {
  if (!current) current = best();
  return *current;
}

bool select_isa(const char* isa) {
  const KernelTable* t = table_for(isa);
  if (!t) return false;
  current = t;
  return true;
}

}  // namespace as
