// Semaphore and BoundedSemaphore: asyncio.Semaphore / asyncio.BoundedSemaphore
// for tasks. They limit how many tasks hold a permit at once, without ever
// blocking a worker thread: a task that must wait is suspended.
//
// Example (the seeds' "at most 10 fetches at a time"):
//
//   Task<Page> Fetch(Semaphore* limit, Url url) {
//     PermitGuard permit = co_await limit->Hold();  // released at scope exit
//     co_return co_await Download(url);
//   }
//
//   // or, by hand:
//   co_await sem.Acquire();
//   ...
//   sem.Release();
//
// Semantics (asyncio 3.12):
//   - The value starts at `n`; Acquire takes a permit, waiting while none is
//     free; Release gives one back.
//   - FIFO: waiters are served in the order they started waiting, and a new
//     Acquire never overtakes a waiter, even when a permit is free. A Release
//     hands its permit straight to the first waiter, so while anyone waits
//     Value() is 0 and Locked() is true (asyncio decrements _value when it
//     wakes a waiter, too).
//   - Cancellation: cancelling a task waiting in Acquire raises
//     CancelledError(message) there and the task gets no permit. If the
//     cancellation arrives after a permit was handed to it but before it ran,
//     the permit is passed on (to the next waiter, or back to the value)
//     before CancelledError is raised, as asyncio's acquire does. An Acquire
//     that does not have to wait does not suspend and so never raises; a
//     pending cancellation is raised at the task's next suspension.
//   - Semaphore::Release may raise the value above `n` (asyncio allows it).
//     BoundedSemaphore::Release throws std::invalid_argument there: this is
//     asyncio's ValueError("BoundedSemaphore released too many times")
//     (std::invalid_argument is the standard "bad value" exception).
//
// Lifetime: a semaphore must outlive every task waiting on it. Awaiters must
// be awaited inside a task (a task on any worker); TryAcquire, Release and the
// queries may be called from any thread, inside the runtime or not.
//
// Thread safety: safe for concurrent use; each awaiter is used once.
#ifndef AWAITD_RUNTIME_SEMAPHORE_H_
#define AWAITD_RUNTIME_SEMAPHORE_H_

#include <coroutine>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "runtime/errors.h"
#include "runtime/internal/context.h"
#include "runtime/internal/mutex.h"
#include "runtime/internal/sync_waiter.h"

namespace awaitd::runtime {

class PermitGuard;

namespace internal {

// The permit counter with a FIFO of waiters behind Semaphore,
// BoundedSemaphore and Lock.
//
// Invariant (under mu_): value_ > 0 implies waiters_ is empty. Every change
// that makes a permit free hands it to the first live waiter at once, so a
// free permit and a queued waiter never coexist.
class PermitPool {
 public:
  static constexpr std::size_t kUnbounded =
      std::numeric_limits<std::size_t>::max();

  // `name` is used in the message when an awaiter is used outside a task.
  PermitPool(std::size_t value, std::size_t bound, const char* name) noexcept
      : name_(name), bound_(bound), value_(value) {}
  PermitPool(const PermitPool&) = delete;
  PermitPool& operator=(const PermitPool&) = delete;
  ~PermitPool() {
    // Anyone still linked is a frame the runtime destroys at shutdown.
    MutexLock lock(&mu_);
    waiters_.DetachAll();
  }

  class [[nodiscard]] AcquireAwaiter {
   public:
    explicit AcquireAwaiter(PermitPool* pool) noexcept : pool_(pool) {}
    AcquireAwaiter(const AcquireAwaiter&) = delete;
    AcquireAwaiter& operator=(const AcquireAwaiter&) = delete;

    bool await_ready() { return pool_->TryAcquire(); }

    bool await_suspend(std::coroutine_handle<> h) {
      TaskHeader* task = RequireCurrentTask(pool_->name_);
      task->set_resume_point(h);
      {
        MutexLock lock(&pool_->mu_);
        if (pool_->TryAcquireLocked()) return false;  // freed meanwhile
        wait_.Enqueue(task, &pool_->mu_, &pool_->waiters_);
      }
      wait_.Suspend();
      return true;
    }

    void await_resume() {
      if (!wait_.published() || !wait_.End()) return;
      // Cancelled. A permit handed over before the cancellation won goes on.
      if (wait_.fired()) pool_->GiveBack();
      throw CancelledError(wait_.task()->CancelMessage());
    }

   private:
    PermitPool* const pool_;
    SyncWait<> wait_;
  };

  bool TryAcquire() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return TryAcquireLocked();
  }

  // Returns a permit. False, changing nothing, if the value is at the bound.
  bool Release() ABSL_LOCKS_EXCLUDED(mu_) {
    WakeList wakes;  // wakes after the unlock
    MutexLock lock(&mu_);
    if (value_ >= bound_) return false;
    ++value_;
    HandOutLocked(&wakes);
    return true;
  }

  std::size_t Value() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return value_;
  }
  // asyncio's locked(): no permit can be taken without waiting. (By the
  // invariant, live waiters imply value_ == 0.)
  bool Locked() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return value_ == 0;
  }
  std::size_t Waiting() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return waiters_.size();
  }

 private:
  bool TryAcquireLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // FIFO: a queued waiter goes first (by the invariant it also means
    // value_ == 0; the check keeps it so if the invariant ever breaks).
    if (value_ == 0 || !waiters_.empty()) return false;
    --value_;
    return true;
  }

  // A permit handed to a waiter that was cancelled before it resumed.
  void GiveBack() ABSL_LOCKS_EXCLUDED(mu_) {
    WakeList wakes;
    MutexLock lock(&mu_);
    ++value_;
    HandOutLocked(&wakes);
  }

  void HandOutLocked(WakeList* wakes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (value_ > 0) {
      SyncWaiter* w = waiters_.PopFired();
      if (w == nullptr) break;
      --value_;
      wakes->Add(w->task);
    }
  }

  const char* const name_;
  const std::size_t bound_;
  mutable Mutex mu_;
  std::size_t value_ ABSL_GUARDED_BY(mu_);
  SyncWaiterList waiters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace internal

// Owns one permit of a Semaphore, BoundedSemaphore or Lock and releases it
// when destroyed (or at Release()). Returned by their Hold(); move-only.
// Like the primitive, it may be released from any thread.
class [[nodiscard]] PermitGuard {
 public:
  PermitGuard() noexcept = default;
  PermitGuard(PermitGuard&& other) noexcept
      : pool_(std::exchange(other.pool_, nullptr)) {}
  PermitGuard& operator=(PermitGuard&& other) noexcept {
    if (this != &other) {
      Release();
      pool_ = std::exchange(other.pool_, nullptr);
    }
    return *this;
  }
  PermitGuard(const PermitGuard&) = delete;
  PermitGuard& operator=(const PermitGuard&) = delete;
  ~PermitGuard() { Release(); }

  // Releases the permit now; later calls do nothing.
  void Release() noexcept {
    // Cannot fail unless the permit was also released by hand (a bug that a
    // destructor cannot report by throwing).
    if (pool_ != nullptr)
      static_cast<void>(std::exchange(pool_, nullptr)->Release());
  }
  bool owns_permit() const noexcept { return pool_ != nullptr; }

 private:
  friend class HoldAwaiter;
  explicit PermitGuard(internal::PermitPool* pool) noexcept : pool_(pool) {}

  internal::PermitPool* pool_ = nullptr;
};

// `co_await x.Hold()`: Acquire, then a PermitGuard for the permit.
class [[nodiscard]] HoldAwaiter {
 public:
  explicit HoldAwaiter(internal::PermitPool* pool) noexcept
      : pool_(pool), acquire_(pool) {}
  HoldAwaiter(const HoldAwaiter&) = delete;
  HoldAwaiter& operator=(const HoldAwaiter&) = delete;

  bool await_ready() { return acquire_.await_ready(); }
  bool await_suspend(std::coroutine_handle<> h) {
    return acquire_.await_suspend(h);
  }
  PermitGuard await_resume() {
    acquire_.await_resume();
    return PermitGuard(pool_);
  }

 private:
  internal::PermitPool* const pool_;
  internal::PermitPool::AcquireAwaiter acquire_;
};

class Semaphore {
 public:
  using AcquireAwaiter = internal::PermitPool::AcquireAwaiter;

  // asyncio.Semaphore(value=1).
  explicit Semaphore(std::size_t value = 1) noexcept
      : pool_(value, internal::PermitPool::kUnbounded, "Semaphore") {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  // Takes a permit, suspending the task (FIFO) while none is free. Raises
  // CancelledError if the task is cancelled while waiting (no permit is
  // then held).
  AcquireAwaiter Acquire() noexcept { return AcquireAwaiter(&pool_); }
  // Acquire, returning a guard that releases the permit when destroyed.
  HoldAwaiter Hold() noexcept { return HoldAwaiter(&pool_); }
  // Takes a permit if that needs no wait (a free permit and no waiter).
  bool TryAcquire() { return pool_.TryAcquire(); }

  // Returns a permit, handing it to the first waiter if there is one.
  // BoundedSemaphore: throws std::invalid_argument above the initial value.
  void Release() {
    if (!pool_.Release()) {
      throw std::invalid_argument("BoundedSemaphore released too many times");
    }
  }

  // True if Acquire would have to wait (asyncio's locked()).
  bool Locked() const { return pool_.Locked(); }
  // Free permits (asyncio's _value).
  std::size_t Value() const { return pool_.Value(); }
  // Tasks waiting in Acquire (a cancelled one may still count for a moment).
  std::size_t Waiting() const { return pool_.Waiting(); }

 protected:
  Semaphore(std::size_t value, std::size_t bound, const char* name) noexcept
      : pool_(value, bound, name) {}

 private:
  internal::PermitPool pool_;
};

// asyncio.BoundedSemaphore: a Semaphore whose Release throws
// std::invalid_argument (asyncio's ValueError) if it would raise the value
// above the initial one.
class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(std::size_t value = 1) noexcept
      : Semaphore(value, value, "BoundedSemaphore") {}
};

}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_SEMAPHORE_H_
