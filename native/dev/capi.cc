// C entry point for native/dev/compare.py: the avx512/avx2/generic matmul through ctypes, so numpy and
// afterscale can be timed call-by-call in one process.
#include <cstring>

#include "../src/kernels.h"
#include "../src/threadpool.h"

extern "C" int as_dev_matmul(const char* isa, const float* a, const float* b, float* c, long batch, long m, long n,
                             long k, int transA, int transB, long strideA, long strideB, int accumulate) {
  as::MatmulArgs g{batch, m, n, k, transA != 0, transB != 0, strideA, strideB, accumulate != 0};
  if (!std::strcmp(isa, "avx512")) as::avx512::matmul(a, b, c, g);
  else if (!std::strcmp(isa, "avx2")) as::avx2::matmul(a, b, c, g);
  else if (!std::strcmp(isa, "generic")) as::generic::matmul(a, b, c, g);
  else return -1;
  return 0;
}

extern "C" void as_dev_set_threads(int n) { as::set_num_threads(n); }

// Same signature, no work: compare.py subtracts the ctypes call overhead it measures with this.
extern "C" int as_dev_noop(const char*, const float*, const float*, float*, long, long, long, long, int, int, long,
                           long, int) {
  return 0;
}
