// Standalone test/benchmark for matmul.cc without node-gyp (see build.sh):
//   matmul_harness test            random shapes, every ISA, vs a float64 triple loop
//   matmul_harness bench M N K [tA tB [reps]]   GFLOP/s per ISA
//   [THREADS=t] [ISA=name] matmul_harness small M N K tB [reps]   few-row path vs packed vs M GEMVs
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "../src/kernels.h"
#include "../src/threadpool.h"

using namespace as;

// The few-row threshold of each kernel set (matmul.cc); 0 sends 2..16-row products to the packed path.
namespace as {
namespace avx512 { extern int matmul_small_m_max; }
namespace avx2 { extern int matmul_small_m_max; }
namespace generic { extern int matmul_small_m_max; }
}  // namespace as
using MatmulFn = void (*)(const float*, const float*, float*, const MatmulArgs&);

struct Isa {
  const char* name;
  MatmulFn fn;
  bool ok;
  int* small_m_max;
};

static std::vector<Isa> isas() {
  __builtin_cpu_init();
  return {{"avx512", avx512::matmul, (bool)__builtin_cpu_supports("avx512f"), &avx512::matmul_small_m_max},
          {"avx2", avx2::matmul, (bool)__builtin_cpu_supports("avx2"), &avx2::matmul_small_m_max},
          {"generic", generic::matmul, true, &generic::matmul_small_m_max}};
}

static void reference(const float* a, const float* b, float* c, const MatmulArgs& g) {
  for (int64_t bi = 0; bi < g.batch; bi++) {
    const float* A = a + bi * g.strideA;
    const float* B = b + bi * g.strideB;
    float* C = c + bi * g.m * g.n;
    for (int64_t i = 0; i < g.m; i++)
      for (int64_t j = 0; j < g.n; j++) {
        double s = g.accumulate ? C[i * g.n + j] : 0.0;
        for (int64_t p = 0; p < g.k; p++) {
          double av = g.transA ? A[p * g.m + i] : A[i * g.k + p];
          double bv = g.transB ? B[j * g.k + p] : B[p * g.n + j];
          s += av * bv;
        }
        C[i * g.n + j] = (float)s;
      }
  }
}

static int test() {
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> U(-1, 1);
  std::vector<std::vector<int64_t>> shapes = {{1, 1, 1}, {1, 7, 5}, {7, 1, 5}, {3, 4, 1}, {17, 33, 65},
                                              {1, 384, 1024}, {1024, 1, 384}, {2, 3, 300}, {13, 31, 257},
                                              {100, 100, 100}, {12, 32, 256}, {25, 65, 513}, {200, 3100, 20},
                                              {199, 70, 600}, {5, 5000, 3}, {3, 4200, 300}, {60, 70, 200},
                                              {1, 1100, 500}, {1100, 1, 500}, {64, 64, 64}, {1, 100, 1},
                                              {31, 1, 700}, {2, 2, 2}, {300, 40, 9}, {12, 200, 600},
                                              {5, 3100, 300}, {14, 3100, 260}, {2, 1152, 384},
                                              {3, 37, 21}, {5, 1024, 385}, {8, 384, 1024}, {16, 100, 47},
                                              {8, 4096, 384}, {16, 33, 1000}, {9, 4, 3}};
  int fails = 0, runs = 0;
  // Two threads first, then one: the pool is only ever shrunk here (restarting workers is not needed).
  for (int threads : {2, 1}) {
    set_num_threads(threads);
    // Each ISA twice: with the few-row path, then with 2..16-row products sent to the packed path.
    for (auto& isa : isas())
    for (int few : {1, 0}) {
      if (!isa.ok) continue;
      const int saved = *isa.small_m_max;
      if (!few) *isa.small_m_max = 0;
      for (auto& s : shapes)
        for (int t = 0; t < 4; t++)
          for (int variant = 0; variant < 4; variant++) {
            MatmulArgs g{};
            g.m = s[0], g.n = s[1], g.k = s[2];
            g.transA = t & 1, g.transB = t & 2;
            g.batch = variant == 0 ? 1 : 3;
            g.accumulate = variant == 2;
            g.strideA = variant == 3 ? 0 : g.m * g.k + (variant == 1 ? 5 : 0);
            g.strideB = variant == 2 ? 0 : g.k * g.n;
            int64_t na = (g.batch - 1) * g.strideA + g.m * g.k, nb = (g.batch - 1) * g.strideB + g.k * g.n;
            int64_t nc = g.batch * g.m * g.n;
            std::vector<float> a(na), b(nb), c(nc), r(nc);
            for (auto& x : a) x = U(rng);
            for (auto& x : b) x = U(rng);
            for (auto& x : c) x = U(rng);
            r = c;
            reference(a.data(), b.data(), r.data(), g);
            isa.fn(a.data(), b.data(), c.data(), g);
            runs++;
            double maxerr = 0;
            for (int64_t i = 0; i < nc; i++) maxerr = std::max(maxerr, (double)std::fabs(c[i] - r[i]));
            double tol = 1e-5 * (g.k + 2) + 1e-6;
            if (!(maxerr <= tol)) {
              fails++;
              std::printf("FAIL %s%s thr=%d m=%ld n=%ld k=%ld tA=%d tB=%d variant=%d err=%g\n", isa.name,
                          few ? "" : " (packed)", threads, (long)g.m, (long)g.n, (long)g.k, g.transA, g.transB,
                          variant, maxerr);
            }
          }
      *isa.small_m_max = saved;
    }
  }
  std::printf("%d runs, %d failures\n", runs, fails);
  return fails ? 1 : 0;
}

static double cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int bench(int64_t m, int64_t n, int64_t k, bool tA, bool tB, int reps) {
  std::vector<float> a(m * k), b(k * n), c(m * n);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> U(-1, 1);
  for (auto& x : a) x = U(rng);
  for (auto& x : b) x = U(rng);
  MatmulArgs g{1, m, n, k, tA, tB, 0, 0, false};
  const char* only = std::getenv("ISA");
  for (auto& isa : isas()) {
    if (!isa.ok || (only && std::strcmp(only, isa.name))) continue;
    for (int w = 0; w < 3; w++) isa.fn(a.data(), b.data(), c.data(), g);
    // Wall time, and process CPU time (robust to preemption on a shared machine when single-threaded).
    std::vector<double> ts, cs;
    for (int r = 0; r < reps; r++) {
      double c0 = cpu_seconds();
      auto t0 = std::chrono::steady_clock::now();
      isa.fn(a.data(), b.data(), c.data(), g);
      ts.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      cs.push_back(cpu_seconds() - c0);
    }
    std::sort(ts.begin(), ts.end());
    std::sort(cs.begin(), cs.end());
    double med = ts[ts.size() / 2], cmed = cs[cs.size() / 2], best = ts[0];
    std::printf("%-8s %5ldx%5ldx%5ld tA=%d tB=%d  %7.1f wall %7.1f best %7.1f cpu GFLOP/s (%.3f ms)\n", isa.name,
                (long)m, (long)n, (long)k, tA, tB, 2.0 * m * n * k / med / 1e9, 2.0 * m * n * k / best / 1e9,
                2.0 * m * n * k / cmed / 1e9, med * 1e3);
  }
  return 0;
}

// Few-row products (batched decode), per ISA (ISA=name for one), THREADS threads: per repetition the
// few-row path, the packed path and M separate matrix-vector products run back to back, plus one GEMV
// (m = 1, the same weights); reports median times and the medians of the per-repetition ratios.
static int bench_small(int64_t m, int64_t n, int64_t k, bool tB, int reps) {
  std::vector<float> a(m * k), b(k * n), c(m * n);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> U(-1, 1);
  for (auto& x : a) x = U(rng);
  for (auto& x : b) x = U(rng);
  const char* only = std::getenv("ISA");
  for (auto& isa : isas()) {
    if (!isa.ok || (only && std::strcmp(only, isa.name))) continue;
    const int saved = *isa.small_m_max;
    MatmulArgs g{1, m, n, k, false, tB, 0, 0, false}, g1{1, 1, n, k, false, tB, 0, 0, false};
    auto time = [&](auto&& f) {
      auto t0 = std::chrono::steady_clock::now();
      f();
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    auto fast = [&] { isa.fn(a.data(), b.data(), c.data(), g); };
    auto packed = [&] {
      *isa.small_m_max = 0;
      isa.fn(a.data(), b.data(), c.data(), g);
      *isa.small_m_max = saved;
    };
    auto gemvs = [&] {
      for (int64_t i = 0; i < m; i++) isa.fn(a.data() + i * k, b.data(), c.data() + i * n, g1);
    };
    auto one = [&] { isa.fn(a.data(), b.data(), c.data(), g1); };
    for (int w = 0; w < 3; w++) fast(), packed(), gemvs(), one();
    std::vector<double> tf, tp, tg, t1, rp, rg, r1;
    for (int r = 0; r < reps; r++) {
      double f = time(fast), p = time(packed), v = time(gemvs), o = time(one);
      tf.push_back(f), tp.push_back(p), tg.push_back(v), t1.push_back(o);
      rp.push_back(p / f), rg.push_back(v / f), r1.push_back(f / o);
    }
    auto med = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    std::printf("%-7s %2ldx%5ldx%5ld tB=%d  few-row %7.1f us  packed %7.1f us  %ld GEMVs %7.1f us  1 GEMV %6.1f us"
                "  | packed/few %5.2f  GEMVs/few %5.2f  few/GEMV %5.2f\n",
                isa.name, (long)m, (long)n, (long)k, tB, med(tf) * 1e6, med(tp) * 1e6, (long)m, med(tg) * 1e6,
                med(t1) * 1e6, med(rp), med(rg), med(r1));
  }
  return 0;
}

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "test";
  if (mode == "test") return test();
  if (mode == "bench" && argc >= 5) {
    int64_t m = atol(argv[2]), n = atol(argv[3]), k = atol(argv[4]);
    bool tA = argc > 5 && atoi(argv[5]), tB = argc > 6 && atoi(argv[6]);
    int reps = argc > 7 ? atoi(argv[7]) : 20;
    return bench(m, n, k, tA, tB, reps);
  }
  if (mode == "small" && argc >= 6) {
    if (const char* t = std::getenv("THREADS")) set_num_threads(atoi(t));
    return bench_small(atol(argv[2]), atol(argv[3]), atol(argv[4]), atoi(argv[5]), argc > 6 ? atoi(argv[6]) : 50);
  }
  std::fprintf(stderr, "usage: %s test | bench M N K [tA tB [reps]] | small M N K tB [reps]\n", argv[0]);
  return 2;
}
