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

// Work items are claimed, not assigned: a job of nt items publishes a ticket (job id, nt, next item) and
// every participant — the caller first, with item 0 — takes the next item with a compare-and-swap until none
// is left. A worker that is slow to wake (asleep, or descheduled on a busy machine) therefore never holds the
// caller up: the caller runs the unclaimed items itself. Item t computes the same thing whichever thread
// runs it, so results do not depend on who claimed what.
struct Pool {
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable cv;
  // Held by the caller for a whole parallel region (run) and while resizing.
  std::mutex callers;
  // A job is published by bumping `generation` (to the job's id) after writing fn, ctx and the ticket.
  std::atomic<uint64_t> generation{0};
  // (job id << 32) | (nt << 16) | next item.
  std::atomic<uint64_t> ticket{0};
  // Items finished by threads other than the caller.
  std::atomic<int> done{0};
  ThreadFn fn = nullptr;
  void* ctx = nullptr;
  uint64_t jobs = 0;
  bool stop = false;
  std::atomic<int> size{1};  // read without the lock by run()'s fast path

  static uint64_t make_ticket(uint64_t job, int nt, int next) {
    return (job << 32) | (static_cast<uint64_t>(nt) << 16) | static_cast<uint64_t>(next);
  }

  // Claims the next item of job `job`; false when the job is finished or superseded.
  bool claim(uint64_t job, int& item, int& nt) {
    uint64_t v = ticket.load(std::memory_order_acquire);
    for (;;) {
      const int next = static_cast<int>(v & 0xFFFF), n = static_cast<int>((v >> 16) & 0xFFFF);
      if ((v >> 32) != (job & 0xFFFFFFFFu) || next >= n) return false;
      if (ticket.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        item = next;
        nt = n;
        return true;
      }
    }
  }

  void start(int n) {
    size = n < 1 ? 1 : n;
    for (int t = 1; t < size.load(); t++) workers.emplace_back([this] { loop(); });
  }
  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
      generation.store(++jobs);  // generation stays equal to the last job id, so the next job is seen
    }
    cv.notify_all();
    for (auto& w : workers) w.join();
    workers.clear();
    stop = false;
  }
  void loop() {
    uint64_t seen = 0;  // a job published before this thread started is still seen (generation != 0)
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
      int item = 0, nt = 0;
      while (claim(g, item, nt)) {
        // fn and ctx were written before the ticket was published, and cannot change before this item is
        // done (the caller waits for it).
        in_parallel = true;
        fn(ctx, item, nt);
        in_parallel = false;
        done.fetch_add(1, std::memory_order_acq_rel);
      }
    }
  }
  void run(ThreadFn f, void* c, int nt) {
    if (std::min(nt, size.load()) <= 1 || in_parallel) {
      f(c, 0, 1);
      return;
    }
    // One job at a time: JS threads (a server's inference worker, the main thread) take turns.
    std::lock_guard<std::mutex> region(callers);
    nt = std::min(nt, size.load());
    const uint64_t job = ++jobs;
    fn = f;
    ctx = c;
    done.store(0, std::memory_order_relaxed);
    ticket.store(make_ticket(job, nt, 1), std::memory_order_release);  // item 0 is the caller's
    {
      std::lock_guard<std::mutex> lk(mu);
      generation.store(job, std::memory_order_release);
    }
    cv.notify_all();
    in_parallel = true;
    f(c, 0, nt);
    int item = 0, n = 0;
    int mine = 0;
    while (claim(job, item, n)) {
      f(c, item, nt);
      mine++;
    }
    in_parallel = false;
    // Wait for the items other threads claimed. Spin while they are likely running; yield once they seem
    // descheduled (an oversubscribed machine), so the caller does not burn the core a worker needs.
    const int others = nt - 1 - mine;
    for (int spin = 0; done.load(std::memory_order_acquire) != others; spin++) {
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
  std::lock_guard<std::mutex> region(p.callers);
  if (want == p.size) return;
  p.shutdown();
  p.start(want);
}

void run_parallel(ThreadFn fn, void* ctx, int nthreads) { pool().run(fn, ctx, nthreads); }

}  // namespace as
