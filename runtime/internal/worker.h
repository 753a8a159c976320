// Worker: one event-loop thread of the runtime: its run queues, timers, I/O
// and the loop that drives them.
//
// Each worker owns a Boost.Asio io_context (its I/O and the timer that wakes
// it), a TimerWheel, a bounded LocalQueue plus a LIFO slot, and an inbox for
// wake-ups that come from threads outside the runtime. All of it except the
// inbox, the steal end of the local queue, the timer wheel (locked) and
// Unpark() is touched only on the worker's own thread (asserted with
// IsCurrent()).
//
// START-UP PROTOCOL
//  1. The Scheduler constructs every Worker (queues, wheel, io_context, and a
//     work guard that keeps run_one() blocking when there is no I/O) before
//     any thread starts, so that workers can steal from each other and
//     outside threads can inject work from the first moment.
//  2. Each worker thread sets its thread-local context (current worker,
//     scheduler), names itself, records the start of its busy time, and
//     enters the scheduling loop. All workers start unparked and not
//     searching.
//
// SCHEDULING PROTOCOL (one iteration of the loop is a "tick")
//  1. If shutdown was signalled, leave the loop.
//  2. Pick the next task:
//     a. every `global_queue_interval` ticks, the global injection queue
//        first, so that spawned-from-outside work is never starved by a
//        busy local queue;
//     b. move everything in the inbox to the local queue (it becomes
//        stealable there);
//     c. the local queue (FIFO);
//     d. a batch from the global queue (its fair share: len / workers + 1,
//        at most half a local queue), the rest going to the local queue.
//  3. If a task was found: if this worker was searching, it stops; if it
//     was the last searcher, it wakes a parked worker (there may be more
//     work). Run the task (see RUNNING A TASK), then run tasks placed in the
//     LIFO slot by it, at most kMaxLifoPolls in a row; a LIFO task beyond
//     that goes to the back of the local queue. Every `event_interval` ticks,
//     do maintenance (poll I/O without blocking, fire due timers). Loop.
//  4. Otherwise do maintenance; if it produced work, loop.
//  5. Otherwise try to steal, if allowed to search (at most half the workers
//     search): from each other worker in an order starting at a random
//     victim, half of its local queue; then from the global queue. Run what
//     was found as in 3.
//  6. Otherwise park (PARKING PROTOCOL) and loop.
//
// RUNNING A TASK
//  1. NOTIFIED -> RUNNING; record it as the current task (thread-local) and
//     for the stall detector (a sequence number and the task id).
//  2. Resume it where it last suspended. It runs until it suspends or its
//     root coroutine finishes; wake-ups that arrive meanwhile only set
//     NOTIFIED.
//  3. If the root finished: COMPLETE, wake the joiner if one registered,
//     drop the scheduler's references. Otherwise RUNNING -> idle; if it was
//     notified while running (a Yield, or a wake-up that raced with the
//     suspension) put it at the back of the local queue.
//  Wake-ups: a task woken on a worker thread by a running task (or by a task
//  completing) goes to that worker's LIFO slot (the previous occupant moves
//  to the back of the local queue); woken by a timer or I/O completion on a
//  worker thread, to the back of that worker's local queue; woken from a
//  thread outside the runtime, to the inbox of the worker that last ran it,
//  which is unparked if it sleeps. A newly spawned task goes to the back of
//  the spawning worker's local queue, or to the global queue when spawned
//  from outside. Pushing stealable work notifies a parked worker (Idle).
//
// PARKING PROTOCOL
//  1. Register as parked in Idle. If this worker was the last searcher,
//     re-check every worker's local queue and the global queue, and if any
//     has work, notify a parked worker (possibly this one).
//  2. Mark the worker parked (seq_cst, paired with the fence in PushInbox),
//     then check the inbox: work there means no sleep.
//  3. Arm the driver timer for the wheel's next deadline (only if earlier
//     than what is armed) and block in io_context::run_one(), which returns
//     after one handler: an Unpark() post, the driver timer, or an I/O
//     completion.
//  4. Poll the remaining ready handlers and fire due timers. If that made
//     local work, or a notifier took this worker off the sleeper list, or
//     shutdown was signalled, stop parking: unregister from Idle (a worker
//     woken by a notifier counts as searching). Otherwise go to 3.
//
// SHUTDOWN PROTOCOL (driven by Scheduler::Shutdown, in this order)
//  1. Stop admitting: spawns from outside threads complete at once as
//     cancelled. (With the drain policy, wait until every task has finished
//     or the grace period has passed; tasks may still spawn children.)
//  2. Signal shutdown and Unpark() every worker. A worker finishes the task
//     it is running (tasks run to their next suspension; nothing is
//     preempted) and leaves its loop at step 1 of the next tick.
//  3. Join every worker thread and the stall detector.
//  4. Shut down the blocking pool: queued jobs complete as cancelled,
//     running ones are waited for, its threads exit.
//  5. Close and empty every queue (inboxes, LIFO slots, local queues, the
//     global queue), dropping the notification each entry held.
//  6. Close the owned-task list and destroy every unfinished task's frame
//     (its destructors run: timers unlink, JoinHandles drop); each ends
//     complete and cancelled, so a JoinHandle still held outside reports
//     cancellation.
//  7. Destroy the workers (io_contexts, wheels); the process may now exit.
#ifndef AWAITD_RUNTIME_INTERNAL_WORKER_H_
#define AWAITD_RUNTIME_INTERNAL_WORKER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/steady_timer.hpp"
#include "runtime/internal/local_queue.h"
#include "runtime/internal/mutex.h"
#include "runtime/internal/task_header.h"
#include "runtime/internal/task_list.h"
#include "runtime/internal/timer_wheel.h"
#include "runtime/metrics.h"

namespace awaitd::runtime::internal {

class Scheduler;

class Worker {
 public:
  static constexpr int kMaxLifoPolls = 3;

  Worker(Scheduler* scheduler, std::uint32_t index);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // The thread body. Returns when shutdown is signalled.
  void Run();

  std::uint32_t index() const { return index_; }
  boost::asio::io_context& io_context() { return io_; }

  // The worker whose loop runs on the calling thread, or null.
  static Worker* Current();
  bool IsCurrent() const { return Current() == this; }

  // --- Owner thread only ---
  // Queues a task woken by the task now running (LIFO slot).
  void ScheduleLifo(TaskHeader* task);
  // Queues a task at the back of the local queue (spawn, timer, I/O, yield).
  void ScheduleLocal(TaskHeader* task);
  // True while a task is being run or completed on this worker.
  bool in_task() const { return in_task_; }
  // Runs fn(arg) on this worker as soon as the critical section it is called
  // from (a done callback during a task's completion, a timer expiry) has
  // released its locks. For callbacks that must cancel a task, which takes
  // locks they may not take.
  void Defer(void (*fn)(void*), void* arg);
  // A fresh task id for a task spawned on this worker (counted as a spawn).
  std::uint64_t NextTaskId();
  // Counts a task completed on this worker.
  void CountCompleted() {
    tasks_completed_.store(tasks_completed_.load(std::memory_order_relaxed) + 1,
                           std::memory_order_relaxed);
  }

  // --- Any thread ---
  // Timers of this worker's wheel. The wheel is locked because a timer may be
  // removed by a cancellation or by its task after it moved to another
  // worker; expiry callbacks run on this worker with the lock held and must
  // only fire a WaitNode and wake a task.
  void InsertTimer(TimerEntry* e);
  void RemoveTimer(TimerEntry* e);
  // Queues a wake-up from outside the runtime and unparks the worker if it
  // sleeps. Returns false if the inbox is closed (shutdown).
  bool PushInbox(TaskHeader* task);
  // Makes a parked worker return from its park (a no-op handler post).
  void Unpark();
  LocalQueue& run_queue() { return run_queue_; }
  WorkerMetrics Metrics() const;

  // Stall detector (any thread): a sequence number bumped at every task
  // start, and the id of the running task (0 when none).
  std::uint64_t run_seq() const {
    return run_seq_.load(std::memory_order_relaxed);
  }
  std::uint64_t running_task_id() const {
    return running_task_.load(std::memory_order_relaxed);
  }
  void CountStall() { stalls_.fetch_add(1, std::memory_order_relaxed); }

  // --- Shutdown (step 5), with the thread joined ---
  // Returns every queued task (chain by queue_next_) and closes the inbox.
  TaskHeader* CloseAndTakeAllQueued();

 private:
  TaskHeader* NextTask();
  TaskHeader* NextLocalTask();
  TaskHeader* PopGlobalBatch();
  TaskHeader* Steal();
  void RunTask(TaskHeader* task);
  void RunOne(TaskHeader* task);
  bool HasLocalWork() const;
  bool DrainInbox();
  // Polls ready I/O and fires due timers. Returns true if there is local work.
  bool Maintenance();
  void FireTimers();
  void Park();
  void ArmDriver(std::uint64_t deadline_tick);
  void RunDeferred();
  // Back of the local queue; a full queue spills half to the global queue.
  void PushLocal(TaskHeader* task);
  void PushOverflow(TaskHeader* first, TaskHeader* last, std::uint32_t count);
  void NotifyIfStealable();

  Scheduler* const scheduler_;
  const std::uint32_t index_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type>
      work_guard_;
  boost::asio::steady_timer driver_;
  std::optional<std::uint64_t> driver_armed_;  // tick the driver is armed for
  Mutex timers_mu_;
  TimerWheel wheel_ ABSL_GUARDED_BY(timers_mu_);
  LocalQueue run_queue_;
  TaskList inbox_;
  TaskHeader* lifo_slot_ = nullptr;
  std::vector<std::pair<void (*)(void*), void*>> deferred_;
  bool is_searching_ = false;
  bool in_task_ = false;
  std::uint64_t tick_ = 0;
  std::minstd_rand rng_;

  std::atomic<bool> parked_{false};
  std::atomic<std::uint64_t> run_seq_{0};
  std::atomic<std::uint64_t> running_task_{0};

  // Counters: written by the owner with relaxed stores, read by anyone.
  std::uint64_t next_id_ = 0;  // ids [next_id_, id_limit_) are reserved here
  std::uint64_t id_limit_ = 0;
  std::atomic<std::uint64_t> tasks_spawned_{0};
  std::atomic<std::uint64_t> tasks_completed_{0};
  std::atomic<std::uint64_t> tasks_run_{0};
  std::atomic<std::uint64_t> steal_operations_{0};
  std::atomic<std::uint64_t> tasks_stolen_{0};
  std::atomic<std::uint64_t> parks_{0};
  std::atomic<std::uint64_t> overflows_{0};
  std::atomic<std::uint64_t> timers_fired_{0};
  std::atomic<std::uint64_t> timers_pending_{0};
  std::atomic<std::uint64_t> stalls_{0};
  std::atomic<std::int64_t> busy_ns_{0};  // closed busy intervals
  std::atomic<std::int64_t> busy_since_ns_{
      -1};  // open interval start, -1 if parked
};

}  // namespace awaitd::runtime::internal

#endif  // AWAITD_RUNTIME_INTERNAL_WORKER_H_
