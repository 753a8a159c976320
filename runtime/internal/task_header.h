// TaskHeader: the scheduler's record of one spawned task, and its state
// machine.
//
// A spawned Task<T> is driven through a TaskHeader: the header owns the root
// coroutine, remembers where the task is suspended (`resume_point`), and holds
// one atomic word with the task's lifecycle bits and reference count. Every
// queue holds TaskHeader pointers.
//
// State word (bits):
//   kRunning         a worker is resuming the task right now (exclusive).
//   kNotified        the task is in a run queue, or must be re-queued when the
//                    current run ends. A task is queued at most once.
//   kComplete        the root coroutine finished; its result is published.
//   kCancelled       the task ended by cancellation: its body raised
//                    CancelledError, or the runtime destroyed it at shutdown.
//   kJoinInterest    a JoinHandle for the task exists.
//   kLock            a spin lock guarding the done callbacks, the current
//                    wait and the cancellation message (held briefly).
//   kCancelRequested Cancel() was called and the CancelledError has not been
//                    raised in the task yet (asyncio's _must_cancel).
//   kObserved        someone other than a JoinHandle reports the task's
//                    outcome (a TaskGroup): a failure is not logged as
//                    never retrieved.
//   kRegistered      the task is in the scheduler's owned-task list (it has
//                    suspended at least once).
//   kHasMessage      a cancellation message is stored for it (kept in a side
//                    table: cancellation is rare, headers are many).
//   kStarted         the body has been entered (set at the first run).
//   bits 11..63      reference count.
//
// References are held by: the scheduler, from spawn until completion; each
// queued notification (at most one at a time); the JoinHandle; and anyone
// who needs the header to outlive a call (a canceller forwarding to it). The
// last Unref destroys the root frame and frees the header.
//
// Invariants:
//   - kRunning is set by exactly one worker at a time, only after it popped
//     the task from a queue (so it holds the notification reference).
//   - kComplete is set once, under the lock, by the worker that ran the body
//     to its end (or by shutdown), and never cleared; done callbacks are
//     invoked in the same critical section, so after kComplete no callback
//     is ever added or invoked.
//   - The result in the root promise is written before kComplete (release)
//     and read only after observing kComplete (acquire).
//   - A suspended task is resumed only by the winner of its current
//     WaitNode (see wait_node.h), or by the worker itself for Yield.
//
// Thread safety: the state word is atomic and may be touched from any thread;
// `resume_point_` is accessed only by the thread that has the task running;
// the done-callback list, `current_wait_` and the cancel message only with
// the lock held.
#ifndef AWAITD_RUNTIME_INTERNAL_TASK_HEADER_H_
#define AWAITD_RUNTIME_INTERNAL_TASK_HEADER_H_

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <string>
#include <string_view>

namespace awaitd::runtime::internal {

class PromiseBase;
class Scheduler;
class TaskHeader;
class WaitNode;

// A completion callback registered on a task (intrusive, owned by the caller).
struct DoneCallback {
  void (*fn)(DoneCallback* self, TaskHeader* done) = nullptr;
  DoneCallback* prev = nullptr;
  DoneCallback* next = nullptr;
  bool linked = false;
};

class TaskHeader {
 public:
  static constexpr std::uint64_t kRunning = 1u << 0;
  static constexpr std::uint64_t kNotified = 1u << 1;
  static constexpr std::uint64_t kComplete = 1u << 2;
  static constexpr std::uint64_t kCancelled = 1u << 3;
  static constexpr std::uint64_t kJoinInterest = 1u << 4;
  static constexpr std::uint64_t kLock = 1u << 5;
  static constexpr std::uint64_t kCancelRequested = 1u << 6;
  static constexpr std::uint64_t kObserved = 1u << 7;
  static constexpr std::uint64_t kRegistered = 1u << 8;
  static constexpr std::uint64_t kHasMessage = 1u << 9;
  static constexpr std::uint64_t kStarted = 1u << 10;
  static constexpr int kRefShift = 11;
  static constexpr std::uint64_t kRefOne = std::uint64_t{1} << kRefShift;

  // Creates a header holding `initial_refs` references, in state
  // kNotified | (join_interest ? kJoinInterest : 0): a new task is about to be
  // queued for its first run.
  static TaskHeader* Create(Scheduler* scheduler, std::coroutine_handle<> root,
                            PromiseBase* promise, std::uint64_t id,
                            bool join_interest);

  TaskHeader(const TaskHeader&) = delete;
  TaskHeader& operator=(const TaskHeader&) = delete;

  std::uint64_t id() const noexcept { return id_; }
  Scheduler* scheduler() const noexcept;
  std::coroutine_handle<> root() const noexcept { return root_; }
  // The root's promise; null once the root was destroyed (shutdown).
  PromiseBase* promise() const noexcept {
    if (!root_) return nullptr;
    return reinterpret_cast<PromiseBase*>(static_cast<char*>(root_.address()) +
                                          promise_offset_);
  }

  // Runtime shutdown only, with every worker stopped: destroys the suspended
  // root frame now (running its destructors) and marks the task complete and
  // cancelled. Returns the prior state.
  std::uint64_t DestroyUnfinished() noexcept;

  // Where the next run resumes. Set by an awaiter while the task is running,
  // just before it publishes a way to wake the task.
  void set_resume_point(std::coroutine_handle<> h) noexcept {
    resume_point_ = h;
  }
  std::coroutine_handle<> resume_point() const noexcept {
    return resume_point_;
  }

  // Whether the task is in the scheduler's owned-task list. A task is listed
  // only once it has suspended (a task that finishes within its first run
  // never touches the list); read and written only by the thread that has
  // the task running, or by shutdown.
  bool registered() const noexcept {
    return (LoadState(std::memory_order_relaxed) & kRegistered) != 0;
  }
  void set_registered() noexcept {
    state_.fetch_or(kRegistered, std::memory_order_relaxed);
  }

  std::uint32_t home_worker() const noexcept {
    return home_worker_.load(std::memory_order_relaxed);
  }
  void set_home_worker(std::uint32_t w) noexcept {
    home_worker_.store(w, std::memory_order_relaxed);
  }

  std::uint64_t LoadState(
      std::memory_order order = std::memory_order_acquire) const noexcept {
    return state_.load(order);
  }
  bool IsComplete() const noexcept { return (LoadState() & kComplete) != 0; }

  // --- Transitions (see the class comment for who may call each) ---

  // Wake-up: marks the task notified. Returns true if the caller must queue
  // it (a notification reference was added); false if it is already queued,
  // running (the runner re-queues it), or complete.
  bool TransitionToNotified() noexcept;

  // Called by a worker holding a notification it popped: NOTIFIED -> RUNNING.
  // Returns true the first time (the body has not been entered yet).
  bool TransitionToRunning() noexcept;

  // After a run that suspended. Returns true if the task was notified while
  // running: the caller keeps the notification reference and must re-queue
  // it. Otherwise the notification reference is dropped here.
  bool TransitionToIdle() noexcept;

  // Completion (by the worker that ran the body to its end): marks the task
  // complete and invokes the done callbacks, all under the lock. A body that
  // returned normally while a cancellation was pending ends cancelled
  // (asyncio's __step): decided under the same lock that Cancel() takes, so
  // a Cancel() that returned true always takes effect. Returns the prior
  // state; *cancelled tells whether the task ended cancelled.
  std::uint64_t Complete(bool* cancelled);

  // Done callbacks (asyncio's add_done_callback). AddDoneCallback returns
  // false, not adding, if the task is already complete. After
  // RemoveDoneCallback returns, the callback is not running and never will.
  // Callbacks run on the completing thread with this task's lock held: they
  // must be short and must not lock another task (fire a WaitNode and Wake).
  bool AddDoneCallback(DoneCallback* cb) noexcept;
  void RemoveDoneCallback(DoneCallback* cb) noexcept;

  // JoinHandle destruction: clears kJoinInterest.
  void DropJoinInterest() noexcept;
  void MarkObserved() noexcept {
    state_.fetch_or(kObserved, std::memory_order_relaxed);
  }

  // --- Cancellation (see wait_node.h) ---

  // Task.cancel(msg): false if the task is already complete. Otherwise the
  // cancellation is delivered to the current wait (ending it, or forwarded
  // to the tasks it awaits) or left pending for the next suspension.
  bool RequestCancel(std::string_view message);

  // Called by an awaiter at the end of await_suspend, after registering with
  // its source: publishes `node` as the current wait and delivers a pending
  // cancellation to it. The awaiter then suspends unconditionally.
  void SuspendOn(WaitNode* node);

  // Called by an awaiter in await_resume: withdraws the current wait. Returns
  // true if the awaiter must raise CancelledError (its node was cancelled or
  // a cancellation is pending); the request is then consumed.
  bool EndWait(WaitNode* node) noexcept;

  // Consumes a pending cancellation outside any wait (Yield). Same meaning as
  // EndWait's result.
  bool TakePendingCancel() noexcept;

  // The message of the last Cancel() (empty if none).
  std::string CancelMessage();

  bool IsCancelRequested() const noexcept {
    return (LoadState() & kCancelRequested) != 0;
  }

  void Ref() noexcept { state_.fetch_add(kRefOne, std::memory_order_relaxed); }
  void Unref() noexcept;
  // Drops `n` references at once.
  void UnrefMany(std::uint64_t n) noexcept;

  // Wakes the task: TransitionToNotified and, if needed, schedules it.
  void Wake() noexcept;

  // Intrusive links. queue_next_ is guarded by whichever mutex-protected list
  // holds the task; owned_* by the owned-task shard lock.
  TaskHeader* queue_next_ = nullptr;
  TaskHeader* owned_prev_ = nullptr;
  TaskHeader* owned_next_ = nullptr;

 private:
  TaskHeader(std::uint16_t scheduler_index, std::coroutine_handle<> root,
             std::uint16_t promise_offset, std::uint64_t id,
             std::uint64_t state) noexcept
      : state_(state),
        root_(root),
        resume_point_(root),
        id_(id),
        scheduler_index_(scheduler_index),
        promise_offset_(promise_offset) {}
  ~TaskHeader() = default;
  void Destroy() noexcept;

  void Lock() noexcept;
  void Unlock() noexcept;
  void SetCancelMessageLocked(std::string_view message);
  std::string CancelMessageLocked();

  // 80 bytes in all: a million sleeping tasks is the design point, so every
  // field earns its place (the scheduler is an index into a registry, the
  // promise an offset into the root frame, the cancel message a side table).
  std::atomic<std::uint64_t> state_;
  std::coroutine_handle<> root_;  // null once destroyed early (shutdown)
  std::coroutine_handle<> resume_point_;
  const std::uint64_t id_;
  std::atomic<std::uint32_t> home_worker_{0};
  const std::uint16_t scheduler_index_;
  const std::uint16_t promise_offset_;
  // Guarded by kLock.
  DoneCallback* callbacks_ = nullptr;
  WaitNode* current_wait_ = nullptr;
};

}  // namespace awaitd::runtime::internal

#endif  // AWAITD_RUNTIME_INTERNAL_TASK_HEADER_H_
