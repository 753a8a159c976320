// Lock: asyncio.Lock for tasks. A mutual-exclusion lock that suspends the
// waiting task instead of blocking its worker thread, and is not tied to a
// thread (a task may release it on another worker than it acquired it on).
//
// Example:
//
//   Task<void> Append(Lock* lock, Log* log, Entry e) {
//     PermitGuard held = co_await lock->Hold();  // released at scope exit
//     co_await log->Write(e);                    // may suspend while holding
//   }
//
// Semantics (asyncio 3.12):
//   - FIFO: waiters get the lock in the order they started waiting; a new
//     Acquire never overtakes a waiter.
//   - Release of an unlocked lock throws std::logic_error (asyncio's
//     RuntimeError("Lock is not acquired.")). As in asyncio, any task may
//     release it; there is no owner check.
//   - Release hands the lock straight to the first waiter, so Locked() stays
//     true across the hand-over. (asyncio clears _locked and lets the woken
//     waiter set it again, so its locked() is briefly false in between, but
//     a new acquire cannot take it then either.)
//   - Cancellation: a waiting Acquire raises CancelledError(message) without
//     the lock; if the lock had been handed to it just before, it is passed
//     to the next waiter (or unlocked) first. An Acquire of a free lock does
//     not suspend and never raises.
//
// Lifetime: the lock must outlive every task waiting on it.
//
// Thread safety: safe for concurrent use from tasks on any worker; Release,
// TryAcquire and Locked may be called from any thread. Each awaiter is used
// once, inside a task.
#ifndef AWAITD_RUNTIME_LOCK_H_
#define AWAITD_RUNTIME_LOCK_H_

#include <cstddef>
#include <stdexcept>

#include "runtime/semaphore.h"

namespace awaitd::runtime {

class Lock {
 public:
  using AcquireAwaiter = internal::PermitPool::AcquireAwaiter;

  Lock() noexcept : pool_(1, 1, "Lock") {}
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  // Takes the lock, suspending the task (FIFO) while it is held. Raises
  // CancelledError if the task is cancelled while waiting.
  AcquireAwaiter Acquire() noexcept { return AcquireAwaiter(&pool_); }
  // Acquire, returning a guard that releases the lock when destroyed.
  HoldAwaiter Hold() noexcept { return HoldAwaiter(&pool_); }
  // Takes the lock if it is free and nobody waits.
  bool TryAcquire() { return pool_.TryAcquire(); }

  // Unlocks, handing the lock to the first waiter if there is one. Throws
  // std::logic_error if the lock is not locked.
  void Release() {
    if (!pool_.Release()) throw std::logic_error("Lock is not acquired.");
  }

  bool Locked() const { return pool_.Locked(); }
  // Tasks waiting in Acquire (a cancelled one may still count for a moment).
  std::size_t Waiting() const { return pool_.Waiting(); }

 private:
  internal::PermitPool pool_;
};

}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_LOCK_H_
