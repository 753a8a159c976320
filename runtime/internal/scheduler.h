// Scheduler: the state the workers share (global queue, idle set, owned
// tasks, blocking pool, stall detector) and the operations that route a task
// to the right queue.
//
// The Runtime class is the public face; it owns one Scheduler. Start-up,
// scheduling and shutdown protocols are written at the top of worker.h.
//
// Thread safety: Spawn, Schedule, Metrics and the accessors are safe from any
// thread. Start and Shutdown are called once each, by the owner, from a
// thread that is not a worker.
#ifndef AWAITD_RUNTIME_INTERNAL_SCHEDULER_H_
#define AWAITD_RUNTIME_INTERNAL_SCHEDULER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "runtime/blocking_pool.h"
#include "runtime/internal/idle.h"
#include "runtime/internal/mutex.h"
#include "runtime/internal/task_header.h"
#include "runtime/internal/task_list.h"
#include "runtime/internal/worker.h"
#include "runtime/log.h"
#include "runtime/metrics.h"
#include "runtime/runtime_options.h"

namespace awaitd::runtime::internal {

class PromiseBase;

class Scheduler {
 public:
  explicit Scheduler(RuntimeOptions options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  void Start();

  // Task headers name their scheduler by this index (2 bytes instead of a
  // pointer). Indices are reused after a scheduler is destroyed.
  std::uint16_t registry_index() const { return registry_index_; }
  static Scheduler* FromIndex(std::uint16_t index);
  // Returns false if it had already run.
  bool Shutdown(ShutdownPolicy policy, std::chrono::nanoseconds grace);

  // Creates the header for `root` and queues its first run. With
  // `join_interest` the caller receives a reference for its JoinHandle.
  // After shutdown began (for outside threads) the task is completed as
  // cancelled without running.
  TaskHeader* Spawn(std::coroutine_handle<> root, PromiseBase* promise,
                    bool join_interest);

  // Queues a woken task (TransitionToNotified returned true).
  void Schedule(TaskHeader* task);

  // Wakes a parked worker if stealable work may be waiting for one.
  void NotifyParked();
  // Tokio's notify_if_work_pending: called by the last searcher to park.
  void NotifyIfWorkPending();

  // The task finished its run with its root done.
  void Complete(TaskHeader* task);
  // Adds a running task to the owned-task list (its first suspension).
  void Register(TaskHeader* task);

  Idle& idle() { return idle_; }
  TaskList& inject() { return inject_; }
  std::uint32_t num_workers() const {
    return static_cast<std::uint32_t>(workers_.size());
  }
  Worker& worker(std::uint32_t i) { return *workers_[i]; }
  // Reserves `n` consecutive task ids; returns the first.
  std::uint64_t ReserveTaskIds(std::uint64_t n) {
    return next_task_id_.fetch_add(n, std::memory_order_relaxed);
  }
  const RuntimeOptions& options() const { return options_; }
  BlockingPool& blocking_pool() { return blocking_; }
  bool shutting_down() const {
    return shutdown_.load(std::memory_order_acquire);
  }
  // True on one of this scheduler's worker threads.
  bool OnWorkerThread() const { return IsOwnWorker(Worker::Current()); }

  // Monotonic time of the runtime, in wheel ticks (microseconds since start).
  std::uint64_t NowTick() const;
  // Ticks for an absolute time point, rounded up.
  std::uint64_t TickFor(std::chrono::steady_clock::time_point t) const;
  std::chrono::steady_clock::time_point TimeOfTick(std::uint64_t tick) const;

  void Log(LogLevel level, std::string_view message) const;

  RuntimeMetrics Metrics() const;
  std::uint64_t TasksAlive() const;

 private:
  // Every task not yet finished, so that shutdown can find the suspended
  // ones. Sharded by task id to spread lock traffic.
  class OwnedTasks {
   public:
    // False if closed.
    bool Insert(TaskHeader* t);
    void Remove(TaskHeader* t);
    // Closes the list and returns all tasks in it.
    std::vector<TaskHeader*> CloseAndTakeAll();
    // Sum over the shards: approximate while tasks come and go.
    std::uint64_t Count() const;

   private:
    static constexpr int kShards = 64;
    struct alignas(64) Shard {
      Mutex mu;
      TaskHeader* head ABSL_GUARDED_BY(mu) = nullptr;
      bool closed ABSL_GUARDED_BY(mu) = false;
      // Written under `mu`, read without it by Count().
      std::atomic<std::uint64_t> count{0};
    };
    Shard shards_[kShards];
  };

  bool IsOwnWorker(const Worker* w) const {
    return w != nullptr && w->index() < workers_.size() &&
           workers_[w->index()].get() == w;
  }
  void StallDetectorMain();
  void CompleteCancelledUnstarted(TaskHeader* task);
  std::uint64_t TasksSpawned() const;

  const RuntimeOptions options_;
  const std::uint16_t registry_index_;
  const std::chrono::steady_clock::time_point origin_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  TaskList inject_;
  Idle idle_;
  OwnedTasks owned_;
  BlockingPool blocking_;
  // Task ids are handed to workers in blocks so that spawning on a worker
  // does not contend on one counter.
  std::atomic<std::uint64_t> next_task_id_{1};
  std::atomic<std::uint64_t> tasks_spawned_outside_{0};
  // Tasks that ended without running on a worker (refused or dropped at
  // shutdown), so that spawned - completed - dropped = alive.
  std::atomic<std::uint64_t> tasks_dropped_{0};
  std::atomic<bool> accepting_{true};
  std::atomic<bool> shutdown_{false};
  std::atomic<bool> shutdown_started_{false};
  // Threads outside the runtime between making a task runnable and waking a
  // worker for it. Once queued, the task may run and finish and its owner
  // destroy the runtime (a BlockOn returning) while that thread has still to
  // post the wake-up to the worker's io_context: ~Scheduler waits for them.
  std::atomic<std::uint32_t> outside_wakers_{0};
  class OutsideWaker;

  Mutex stall_mu_;
  CondVar stall_cv_;
  bool stall_stop_ ABSL_GUARDED_BY(stall_mu_) = false;
  std::thread stall_thread_;
};

}  // namespace awaitd::runtime::internal

#endif  // AWAITD_RUNTIME_INTERNAL_SCHEDULER_H_
