// TaskHeader state transitions; see task_header.h for the state machine.
#include "runtime/internal/task_header.h"

#include <cassert>
#include <new>

#include "runtime/internal/frame_allocator.h"
#include "runtime/internal/scheduler.h"

namespace awaitd::runtime::internal {

TaskHeader* TaskHeader::Create(Scheduler* scheduler, std::coroutine_handle<> root,
                               PromiseBase* promise, std::uint64_t id, bool join_interest) {
  // Scheduler reference + the first notification (+ the JoinHandle).
  const std::uint64_t refs = join_interest ? 3 : 2;
  const std::uint64_t state = kNotified | (join_interest ? kJoinInterest : 0) | refs * kRefOne;
  void* mem = FrameAllocator::Allocate(sizeof(TaskHeader));
  return new (mem) TaskHeader(scheduler, root, promise, id, state);
}

bool TaskHeader::TransitionToNotified() noexcept {
  std::uint64_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    if (s & (kComplete | kNotified)) return false;
    if (s & kRunning) {
      // The worker running it sees kNotified in TransitionToIdle and re-queues
      // it with the reference it already holds.
      if (state_.compare_exchange_weak(s, s | kNotified, std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
        return false;
      }
      continue;
    }
    if (state_.compare_exchange_weak(s, (s | kNotified) + kRefOne, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
      return true;
    }
  }
}

void TaskHeader::TransitionToRunning() noexcept {
  // kNotified (bit 1) set and kRunning (bit 0) clear: subtracting 1 flips both.
  [[maybe_unused]] std::uint64_t prev = state_.fetch_sub(kNotified - kRunning, std::memory_order_acquire);
  assert((prev & kNotified) && !(prev & kRunning) && !(prev & kComplete));
}

bool TaskHeader::TransitionToIdle() noexcept {
  std::uint64_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    assert(s & kRunning);
    if (s & kNotified) {
      if (state_.compare_exchange_weak(s, s & ~kRunning, std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
        return true;
      }
      continue;
    }
    // The scheduler's own reference is still held, so this never reaches zero.
    if (state_.compare_exchange_weak(s, (s & ~kRunning) - kRefOne, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
      return false;
    }
  }
}

std::uint64_t TaskHeader::TransitionToComplete(bool cancelled) noexcept {
  const std::uint64_t bits = kRunning | kComplete | (cancelled ? kCancelled : 0);
  std::uint64_t prev = state_.fetch_xor(bits, std::memory_order_acq_rel);
  assert((prev & kRunning) && !(prev & kComplete));
  return prev;
}

std::uint64_t TaskHeader::DestroyUnfinished() noexcept {
  std::uint64_t prev = state_.fetch_or(kComplete | kCancelled, std::memory_order_acq_rel);
  assert(!(prev & kComplete) && !(prev & kRunning));
  if (root_) {
    std::exchange(root_, {}).destroy();
  }
  return prev;
}

bool TaskHeader::SetJoinWaker(TaskHeader* waiter) noexcept {
  waiter->Ref();
  join_waiter_ = waiter;
  std::uint64_t prev = state_.fetch_or(kJoinWaker, std::memory_order_acq_rel);
  if (prev & kComplete) {
    // The completer did not see the waker and never will touch it.
    state_.fetch_and(~kJoinWaker, std::memory_order_relaxed);
    join_waiter_ = nullptr;
    waiter->Unref();
    return false;
  }
  return true;
}

void TaskHeader::DropJoinInterest() noexcept {
  std::uint64_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    // Once complete, the output dies with the frame when the last reference goes.
    if (s & kComplete) return;
    if (state_.compare_exchange_weak(s, s & ~(kJoinInterest | kJoinWaker),
                                     std::memory_order_acq_rel, std::memory_order_acquire)) {
      if (s & kJoinWaker) {
        std::exchange(join_waiter_, nullptr)->Unref();
      }
      return;
    }
  }
}

void TaskHeader::Unref() noexcept { UnrefMany(1); }

void TaskHeader::UnrefMany(std::uint64_t n) noexcept {
  std::uint64_t prev = state_.fetch_sub(n * kRefOne, std::memory_order_acq_rel);
  assert((prev >> 8) >= n);
  if ((prev >> 8) == n) Destroy();
}

void TaskHeader::Destroy() noexcept {
  if (root_) root_.destroy();
  this->~TaskHeader();
  FrameAllocator::Deallocate(this, sizeof(TaskHeader));
}

void TaskHeader::Wake() noexcept {
  if (TransitionToNotified()) scheduler_->Schedule(this);
}

}  // namespace awaitd::runtime::internal
