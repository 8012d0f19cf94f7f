// A fixed pool of worker threads for the kernels. The calling (JS) thread takes part as thread 0,
// so a pool of N threads starts N-1 workers. Work is handed out SPMD-style: every thread runs the
// same function with its own index and partitions the work itself, which keeps dispatch to one
// wake-up per kernel call.
#pragma once
#include <cstdint>
#include <algorithm>
#include <type_traits>

namespace as {

// Number of threads kernels may use (AFTERSCALE_THREADS, else the hardware's core count).
int num_threads();
// Resize the pool (used by benchmarks and tests); n < 1 means "the default".
void set_num_threads(int n);

using ThreadFn = void (*)(void* ctx, int tid, int nthreads);
// Runs fn(ctx, tid, nthreads) once on each of `nthreads` threads (capped at the pool size) and returns
// when all are done. Called from inside a parallel region it runs serially on the caller.
void run_parallel(ThreadFn fn, void* ctx, int nthreads);

// f(tid, nthreads) on every pool thread.
template <class F>
inline void parallel(F&& f, int nthreads = 0) {
  using Fn = std::remove_reference_t<F>;
  if (nthreads <= 0) nthreads = num_threads();
  run_parallel([](void* c, int tid, int nt) { (*static_cast<Fn*>(c))(tid, nt); }, const_cast<void*>(static_cast<const void*>(&f)), nthreads);
}

// f(begin, end) over a static partition of [0, n); at least `grain` items per thread, so small
// problems stay on one thread.
template <class F>
inline void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  int64_t g = grain < 1 ? 1 : grain;
  int nt = static_cast<int>(std::min<int64_t>(num_threads(), (n + g - 1) / g));
  if (nt <= 1) {
    f(int64_t(0), n);
    return;
  }
  parallel(
      [&](int tid, int ntt) {
        int64_t chunk = (n + ntt - 1) / ntt;
        int64_t b = std::min<int64_t>(n, chunk * tid), e = std::min<int64_t>(n, b + chunk);
        if (b < e) f(b, e);
      },
      nt);
}

}  // namespace as
