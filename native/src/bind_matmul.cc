// JS bindings: matmul / matmulBf16(a, b, c, batch, m, n, k, transA, transB, strideA, strideB, accumulate[,
// symmetric]). matmulBf16 also takes a or b as a Uint16Array of bf16 bits.
#include <napi.h>

#include "bind.h"
#include "kernels.h"

namespace as {
namespace {

int64_t elems(double need) { return need > 4e18 ? int64_t(4e18) : static_cast<int64_t>(need); }

bool is_u16(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() && info[i].IsTypedArray() &&
         info[i].As<Napi::TypedArray>().TypedArrayType() == napi_uint16_array;
}

template <bool Bf16>
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  MatmulArgs args;
  args.batch = int_(info, 3, "batch");
  args.m = int_(info, 4, "m");
  args.n = int_(info, 5, "n");
  args.k = int_(info, 6, "k");
  args.transA = flag(info, 7);
  args.transB = flag(info, 8);
  args.strideA = int_(info, 9, "strideA");
  args.strideB = int_(info, 10, "strideB");
  args.accumulate = flag(info, 11);
  args.symmetric = flag(info, 12);
  if (args.symmetric && args.m != args.n) throw Napi::RangeError::New(info.Env(), "matmul: symmetric needs m == n");
  // Each operand must hold its last batch item: (batch-1)·stride + one matrix. Empty products need nothing.
  // Sizes are computed in double so absurd arguments fail the length check instead of overflowing.
  const bool empty = args.batch == 0 || args.m == 0 || args.n == 0;
  const double bm1 = static_cast<double>(args.batch) - 1, m = args.m, n = args.n, k = args.k;
  const double needA = empty || args.k == 0 ? 0 : bm1 * args.strideA + m * k;
  const double needB = empty || args.k == 0 ? 0 : bm1 * args.strideB + k * n;
  const float* a = nullptr;
  const float* b = nullptr;
  if (Bf16 && is_u16(info, 0))
    args.ah = u16(info, 0, elems(needA), "matmul a");
  else
    a = f32(info, 0, elems(needA), "matmul a");
  if (Bf16 && is_u16(info, 1))
    args.bh = u16(info, 1, elems(needB), "matmul b");
  else
    b = f32(info, 1, elems(needB), "matmul b");
  float* c = f32(info, 2, elems((bm1 + 1) * m * n), "matmul c");
  if (!empty) (Bf16 ? kernels().matmul_bf16 : kernels().matmul)(a, b, c, args);
  return info.Env().Undefined();
}

}  // namespace

void register_matmul(Napi::Env env, Napi::Object exports) {
  exports.Set("matmul", Napi::Function::New(env, Matmul<false>));
  exports.Set("matmulBf16", Napi::Function::New(env, Matmul<true>));
}

}  // namespace as
