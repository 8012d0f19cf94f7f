// Products with weights kept in a ggml type (matmul_quant.cc; semantics in src/backend/backend.ts,
// matmulQuant): out[m, n] = x[m, k] · Wᵀ, W [n, k] stored row after row in ggml's block layout, as a GGUF
// file holds it. matmul_quant.cc is compiled with the other kernels (generic, avx2, avx512) and once more
// with AVX-512 VNNI (avx512vnni); matmul_quant_kernel() picks the one for the kernel set in use.
#pragma once
#include <cstdint>

namespace as {

// ggml_type ids (ggml.h) of the weight types the kernel reads.
enum QuantType : int {
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kBF16 = 30,
};

// Elements and bytes per block of a type (F16/BF16: one element); false for a type the kernel does not read.
inline bool quant_block(int type, int64_t* elems, int64_t* bytes) {
  switch (type) {
    case kF16: case kBF16: *elems = 1; *bytes = 2; return true;
    case kQ4_0: *elems = 32; *bytes = 18; return true;
    case kQ4_1: *elems = 32; *bytes = 20; return true;
    case kQ5_0: *elems = 32; *bytes = 22; return true;
    case kQ5_1: *elems = 32; *bytes = 24; return true;
    case kQ8_0: *elems = 32; *bytes = 34; return true;
    case kQ4_K: *elems = 256; *bytes = 144; return true;
    case kQ5_K: *elems = 256; *bytes = 176; return true;
    case kQ6_K: *elems = 256; *bytes = 210; return true;
    default: return false;
  }
}

#define AS_DECLARE_QUANT_KERNELS \
  void matmul_quant(const float* x, const uint8_t* w, float* out, int64_t m, int64_t n, int64_t k, int type);

namespace generic { AS_DECLARE_QUANT_KERNELS }
namespace avx2 { AS_DECLARE_QUANT_KERNELS }
namespace avx512 { AS_DECLARE_QUANT_KERNELS }
namespace avx512vnni { AS_DECLARE_QUANT_KERNELS }

using MatmulQuantFn = void (*)(const float*, const uint8_t*, float*, int64_t, int64_t, int64_t, int);
// The variant for the kernel set in use (kernels().isa), with VNNI where the CPU has it; its name in `isa`.
MatmulQuantFn matmul_quant_kernel(const char** isa = nullptr);

}  // namespace as
