// BlockingPool: the threads that run blocking work (`ToThread`) so that event
// loops never do.
//
// Elastic: it starts `min_threads` threads, adds a thread whenever a job
// arrives and no thread is idle (up to `max_threads`; beyond that jobs
// queue), and a thread that stays idle for `keep_alive` retires unless that
// would take the pool below `min_threads`.
//
// Jobs are intrusive (the ToThread awaiter, living in the awaiting
// coroutine's frame, is the job), so submitting allocates nothing.
//
// A thread that cannot be started (the process is out of threads or
// memory: pthread_create's EAGAIN) fails only the job that needed it:
// Submit refuses that job with kNoThread and the reason, and the pool goes
// on with the threads it has. (It is refused rather than queued behind busy
// threads, which may block for as long as their work does.) A thread of
// `min_threads` that cannot be started is simply missing.
//
// Shutdown: Shutdown() stops admission, completes every queued job with
// `cancelled = true` without running it, waits for running jobs to return
// (blocking work cannot be interrupted; it may poll its stop token), and
// waits for every thread to exit.
//
// Thread safety: all methods are safe for concurrent use. Job callbacks run on
// pool threads (or on the thread calling Shutdown, for cancelled jobs).
#ifndef AWAITD_RUNTIME_BLOCKING_POOL_H_
#define AWAITD_RUNTIME_BLOCKING_POOL_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <system_error>

#include "absl/base/thread_annotations.h"
#include "runtime/internal/mutex.h"
#include "runtime/metrics.h"

namespace awaitd::runtime {

class BlockingPool {
 public:
  struct Options {
    std::uint32_t min_threads = 0;
    std::uint32_t max_threads = 512;
    std::chrono::nanoseconds keep_alive = std::chrono::seconds(10);
    std::string thread_name = "awaitd-blocking";
    // Starts a detached thread that runs `body`, or returns why it could
    // not (then `body` never runs). Null: std::thread. Tests inject thread
    // start failures here.
    std::function<std::error_code(std::function<void()> body)> start_thread;
  };

  // Why Submit did not take a job.
  enum class Refusal {
    kNone,
    kShutdown,  // Shutdown began
    kNoThread,  // the job needed a new thread, which could not be started
  };
  struct SubmitResult {
    Refusal refusal = Refusal::kNone;
    // For kNoThread: what failed ("cannot start a blocking-pool thread:
    // Resource temporarily unavailable (8 threads, at most 512)").
    std::string error;
    explicit operator bool() const { return refusal == Refusal::kNone; }
  };

  // A unit of blocking work, in two steps. `run(job)` does the work on a
  // pool thread, without the pool's lock. Then `complete(job, false)` is
  // called on the same thread with the pool's lock held, after the thread
  // already counts as available again: a job submitted by whoever `complete`
  // wakes reuses this thread instead of starting a new one. `complete` must
  // be short (publish the result, wake a task) and must not call into the
  // pool. If the pool shuts down before the job started, only
  // `complete(job, true)` is called (without the lock). The job must stay
  // alive until `complete` returns.
  struct Job {
    void (*run)(Job* job) = nullptr;
    void (*complete)(Job* job, bool cancelled) = nullptr;
    Job* next = nullptr;
  };

  explicit BlockingPool(Options options);
  ~BlockingPool();  // calls Shutdown()
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // Queues `job`, and true. False (the job is not taken: neither of its
  // functions is called) after Shutdown began, or when the job needed a new
  // thread and none could be started.
  SubmitResult Submit(Job* job);

  void Shutdown();

  BlockingPoolMetrics Metrics() const;

 private:
  // Starts a thread (counted in `threads_` once started), or returns why
  // it could not.
  std::error_code SpawnThreadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ThreadMain();

  const Options options_;
  mutable internal::Mutex mu_;
  internal::CondVar work_cv_;  // jobs queued, or shutdown
  internal::CondVar exit_cv_;  // a thread exited
  Job* head_ ABSL_GUARDED_BY(mu_) = nullptr;
  Job* tail_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::uint64_t queued_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint32_t threads_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint32_t idle_ ABSL_GUARDED_BY(mu_) = 0;
  // Wake-ups handed to idle threads but not yet consumed, so that two
  // submits do not both count on the same idle thread.
  std::uint32_t pending_wakeups_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t completed_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t retired_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_BLOCKING_POOL_H_
