#include "threadpool.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace as {
namespace {

thread_local bool in_parallel = false;

struct Pool {
  std::vector<std::thread> workers;
  std::mutex mu;
  std::mutex run_mu;
  std::condition_variable cv;
  // A job is published by bumping `generation`; workers whose tid < active take part.
  std::atomic<uint64_t> generation{0};
  std::atomic<int> remaining{0};
  ThreadFn fn = nullptr;
  void* ctx = nullptr;
  int active = 0;
  bool stop = false;
  int size = 1;

  void start(int n) {
    size = n < 1 ? 1 : n;
    // Workers start from the current generation, so a restarted pool never reruns a finished job.
    const uint64_t g0 = generation.load(std::memory_order_acquire);
    for (int t = 1; t < size; t++) workers.emplace_back([this, t, g0] { loop(t, g0); });
  }
  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
      generation.fetch_add(1);
    }
    cv.notify_all();
    for (auto& w : workers) w.join();
    workers.clear();
    stop = false;
    active = 0;  // new workers must not rerun the last job
  }
  void loop(int tid, uint64_t seen) {
    for (;;) {
      // Spin briefly: back-to-back kernel calls arrive microseconds apart in a training step.
      uint64_t g = generation.load(std::memory_order_acquire);
      for (int spin = 0; g == seen && spin < 20000; spin++) {
#if defined(__x86_64__) || defined(_M_X64)
        __builtin_ia32_pause();
#endif
        g = generation.load(std::memory_order_acquire);
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return generation.load(std::memory_order_acquire) != seen; });
        g = generation.load(std::memory_order_acquire);
      }
      seen = g;
      if (stop) return;
      if (tid < active) {
        in_parallel = true;
        fn(ctx, tid, active);
        in_parallel = false;
        remaining.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }
  void run(ThreadFn f, void* c, int nt) {
    nt = std::min(nt, size);
    if (nt <= 1 || in_parallel) {
      f(c, 0, 1);
      return;
    }
    // One parallel region at a time: kernels may be called from several JS threads (worker_threads).
    std::lock_guard<std::mutex> region(run_mu);
    fn = f;
    ctx = c;
    active = nt;
    remaining.store(nt - 1, std::memory_order_release);
    {
      std::lock_guard<std::mutex> lk(mu);
      generation.fetch_add(1, std::memory_order_acq_rel);
    }
    cv.notify_all();
    in_parallel = true;
    f(c, 0, nt);
    in_parallel = false;
    // Spin while the workers are likely running; yield once they seem descheduled (an oversubscribed
    // machine), so the caller does not burn the core a worker needs.
    for (int spin = 0; remaining.load(std::memory_order_acquire) != 0; spin++) {
      if (spin < 4000) {
#if defined(__x86_64__) || defined(_M_X64)
        __builtin_ia32_pause();
#endif
      } else {
        std::this_thread::yield();
      }
    }
  }
};

int default_threads() {
  if (const char* e = std::getenv("AFTERSCALE_THREADS")) {
    int n = std::atoi(e);
    if (n > 0) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

Pool& pool() {
  static Pool* p = [] {
    auto* q = new Pool();
    q->start(default_threads());
    return q;
  }();
  return *p;
}

}  // namespace

int num_threads() { return pool().size; }

void set_num_threads(int n) {
  Pool& p = pool();
  int want = n < 1 ? default_threads() : n;
  if (want == p.size) return;
  p.shutdown();
  p.start(want);
}

void run_parallel(ThreadFn fn, void* ctx, int nthreads) { pool().run(fn, ctx, nthreads); }

}  // namespace as
