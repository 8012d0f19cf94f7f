// JS binding: matmulQuant(x, w, out, m, n, k, type) — out[m, n] = x[m, k]·Wᵀ with W [n, k] in ggml type
// `type` (quant.h) — and quantIsa(), the variant it runs. Chooses the variant that matches the kernel set in
// use (so AFTERSCALE_ISA and selectIsa apply to it too), with VNNI on AVX-512 CPUs that have it.
#include <napi.h>

#include <cstring>
#include <string>

#include "bind.h"
#include "kernels.h"
#include "quant.h"

namespace as {

MatmulQuantFn matmul_quant_kernel(const char** isa) {
  const char* set = kernels().isa;
  MatmulQuantFn fn = generic::matmul_quant;
  const char* name = "generic";
#ifdef AS_HAVE_X86_VARIANTS
  // "avx512" or "avx512bf16" (the AVX-512 set with the bf16 GEMM): both run the AVX-512 variants.
  if (std::strncmp(set, "avx512", 6) == 0) {
    __builtin_cpu_init();
    const bool vnni = __builtin_cpu_supports("avx512vnni");
    fn = vnni ? avx512vnni::matmul_quant : avx512::matmul_quant;
    name = vnni ? "avx512vnni" : "avx512";
  } else if (std::strcmp(set, "avx2") == 0) {
    fn = avx2::matmul_quant;
    name = "avx2";
  }
#else
  (void)set;
#endif
  if (isa) *isa = name;
  return fn;
}

namespace {

Napi::Value MatmulQuant(const Napi::CallbackInfo& info) {
  const int64_t m = int_(info, 3, "m"), n = int_(info, 4, "n"), k = int_(info, 5, "k");
  const int64_t type = int_(info, 6, "type");
  int64_t elems = 0, bytes = 0;
  if (!quant_block(static_cast<int>(type), &elems, &bytes))
    fail(info, "native: matmulQuant: ggml type " + std::to_string(type) + " is not supported");
  if (k % elems != 0)
    fail(info, "native: matmulQuant: row length " + std::to_string(k) + " is not a multiple of the type's block of " +
                   std::to_string(elems));
  const double need = static_cast<double>(n) * (k / elems) * bytes;
  if (info.Length() < 2 || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    fail(info, "native: matmulQuant w must be a Uint8Array");
  auto wa = info[1].As<Napi::Uint8Array>();
  if (static_cast<double>(wa.ElementLength()) < need)
    fail(info, "native: matmulQuant w has " + std::to_string(wa.ElementLength()) + " bytes, needs " +
                   std::to_string(static_cast<int64_t>(need)));
  const float* x = f32(info, 0, m * k, "matmulQuant x");
  float* out = f32(info, 2, m * n, "matmulQuant out");
  matmul_quant_kernel()(x, wa.Data(), out, m, n, k, static_cast<int>(type));
  return info.Env().Undefined();
}

Napi::Value QuantIsa(const Napi::CallbackInfo& info) {
  const char* isa = nullptr;
  matmul_quant_kernel(&isa);
  return Napi::String::New(info.Env(), isa);
}

}  // namespace

void register_quant(Napi::Env env, Napi::Object exports) {
  exports.Set("matmulQuant", Napi::Function::New(env, MatmulQuant));
  exports.Set("quantIsa", Napi::Function::New(env, QuantIsa));
}

}  // namespace as
