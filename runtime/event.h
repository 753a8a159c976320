// Event: asyncio.Event for tasks. A flag that tasks can wait for without
// blocking a worker thread.
//
// Example:
//
//   Event ready;
//   Task<void> Consumer(Event* ready) {
//     co_await ready->Wait();  // returns at once if already set
//     ...
//   }
//   // elsewhere (any thread): ready.Set();
//
// Semantics (asyncio 3.12):
//   - Set() sets the flag and wakes every task waiting at that moment; they
//     all return from Wait() even if Clear() runs before they resume.
//   - Wait() returns at once (without suspending) while the flag is set.
//   - Clear() resets the flag; later Wait()s suspend until the next Set().
//   - Cancellation: a task cancelled while waiting raises
//     CancelledError(message) from Wait(), also if a Set() had already woken
//     it (there is nothing to give back).
//
// Lifetime: the event must outlive every task waiting on it.
//
// Thread safety: safe for concurrent use; Set, Clear and IsSet may be called
// from any thread, inside the runtime or not. Wait must be awaited inside a
// task; each awaiter is used once.
#ifndef AWAITD_RUNTIME_EVENT_H_
#define AWAITD_RUNTIME_EVENT_H_

#include <coroutine>
#include <cstddef>

#include "absl/base/thread_annotations.h"
#include "runtime/errors.h"
#include "runtime/internal/context.h"
#include "runtime/internal/mutex.h"
#include "runtime/internal/sync_waiter.h"

namespace awaitd::runtime {

class Event {
 public:
  class [[nodiscard]] WaitAwaiter {
   public:
    explicit WaitAwaiter(Event* event) noexcept : event_(event) {}
    WaitAwaiter(const WaitAwaiter&) = delete;
    WaitAwaiter& operator=(const WaitAwaiter&) = delete;

    bool await_ready() const { return event_->IsSet(); }

    bool await_suspend(std::coroutine_handle<> h) {
      internal::TaskHeader* task = internal::RequireCurrentTask("Event");
      task->set_resume_point(h);
      {
        internal::MutexLock lock(&event_->mu_);
        if (event_->set_) return false;  // set meanwhile
        wait_.Enqueue(task, &event_->mu_, &event_->waiters_);
      }
      wait_.Suspend();
      return true;
    }

    void await_resume() { wait_.EndOrRaise(); }

   private:
    Event* const event_;
    internal::SyncWait<> wait_;
  };

  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() {
    internal::MutexLock lock(&mu_);
    waiters_.DetachAll();  // frames the runtime destroys at shutdown
  }

  // Suspends the task until the flag is set. Raises CancelledError if the
  // task is cancelled while waiting.
  WaitAwaiter Wait() noexcept { return WaitAwaiter(this); }

  // Sets the flag and wakes every waiting task.
  void Set() ABSL_LOCKS_EXCLUDED(mu_) {
    internal::WakeList wakes;  // wakes after the unlock
    internal::MutexLock lock(&mu_);
    if (set_) return;  // nobody waits while set
    set_ = true;
    wakes.Reserve(waiters_.size());
    while (internal::SyncWaiter* w = waiters_.PopFired()) wakes.Add(w->task);
  }

  void Clear() ABSL_LOCKS_EXCLUDED(mu_) {
    internal::MutexLock lock(&mu_);
    set_ = false;
  }

  bool IsSet() const ABSL_LOCKS_EXCLUDED(mu_) {
    internal::MutexLock lock(&mu_);
    return set_;
  }

  // Tasks waiting (a cancelled one may still count for a moment).
  std::size_t Waiting() const ABSL_LOCKS_EXCLUDED(mu_) {
    internal::MutexLock lock(&mu_);
    return waiters_.size();
  }

 private:
  mutable internal::Mutex mu_;
  bool set_ ABSL_GUARDED_BY(mu_) = false;
  internal::SyncWaiterList waiters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_EVENT_H_
