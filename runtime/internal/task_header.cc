// TaskHeader state transitions; see task_header.h for the state machine.
#include "runtime/internal/task_header.h"

#include <cassert>
#include <new>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/errors.h"
#include "runtime/internal/frame_allocator.h"
#include "runtime/internal/mutex.h"
#include "runtime/internal/scheduler.h"
#include "runtime/internal/wait_node.h"
#include "runtime/task.h"

namespace awaitd::runtime::internal {

TaskHeader* TaskHeader::Create(Scheduler* scheduler,
                               std::coroutine_handle<> root,
                               PromiseBase* promise, std::uint64_t id,
                               bool join_interest) {
  // Scheduler reference + the first notification (+ the JoinHandle).
  const std::uint64_t refs = join_interest ? 3 : 2;
  const std::uint64_t state =
      kNotified | (join_interest ? kJoinInterest : 0) | refs * kRefOne;
  const std::ptrdiff_t offset =
      reinterpret_cast<char*>(promise) - static_cast<char*>(root.address());
  assert(offset >= 0 && offset <= UINT16_MAX);
  void* mem = FrameAllocator::Allocate(sizeof(TaskHeader));
  return new (mem) TaskHeader(scheduler->registry_index(), root,
                              static_cast<std::uint16_t>(offset), id, state);
}

bool TaskHeader::TransitionToNotified() noexcept {
  std::uint64_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    if (s & (kComplete | kNotified)) return false;
    if (s & kRunning) {
      // The worker running it sees kNotified in TransitionToIdle and re-queues
      // it with the reference it already holds.
      if (state_.compare_exchange_weak(s, s | kNotified,
                                       std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
        return false;
      }
      continue;
    }
    if (state_.compare_exchange_weak(s, (s | kNotified) + kRefOne,
                                     std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
      return true;
    }
  }
}

bool TaskHeader::TransitionToRunning() noexcept {
  // kNotified (bit 1) set and kRunning (bit 0) clear: subtracting 1 flips both.
  const std::uint64_t prev =
      state_.fetch_sub(kNotified - kRunning, std::memory_order_acquire);
  assert((prev & kNotified) && !(prev & kRunning) && !(prev & kComplete));
  if (prev & kStarted) return false;
  state_.fetch_or(kStarted, std::memory_order_relaxed);
  return true;
}

bool TaskHeader::TransitionToIdle() noexcept {
  std::uint64_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    assert(s & kRunning);
    if (s & kNotified) {
      if (state_.compare_exchange_weak(s, s & ~kRunning,
                                       std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
        return true;
      }
      continue;
    }
    // The scheduler's own reference is still held, so this never reaches zero.
    if (state_.compare_exchange_weak(s, (s & ~kRunning) - kRefOne,
                                     std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
      return false;
    }
  }
}

void TaskHeader::Lock() noexcept {
  int spins = 0;
  while (state_.fetch_or(kLock, std::memory_order_acquire) & kLock) {
    // Held only for a few instructions (or a callback's wake): spin, then
    // give the holder the CPU.
    if (++spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    } else {
      std::this_thread::yield();
    }
  }
}

void TaskHeader::Unlock() noexcept {
  state_.fetch_and(~kLock, std::memory_order_release);
}

std::uint64_t TaskHeader::Complete(bool* cancelled) {
  PromiseBase* p = promise();
  Lock();
  if (!p->has_exception() &&
      (state_.load(std::memory_order_relaxed) & kCancelRequested)) {
    p->set_exception(
        std::make_exception_ptr(CancelledError(CancelMessageLocked())));
  }
  *cancelled = p->has_exception() && IsCancelledError(p->exception());
  const std::uint64_t bits =
      kRunning | kComplete | (*cancelled ? kCancelled : 0);
  std::uint64_t prev = state_.fetch_xor(bits, std::memory_order_acq_rel);
  assert((prev & kRunning) && !(prev & kComplete));
  DoneCallback* cb = std::exchange(callbacks_, nullptr);
  while (cb != nullptr) {
    DoneCallback* next = cb->next;
    cb->prev = cb->next = nullptr;
    cb->linked = false;
    cb->fn(cb, this);  // may not touch *cb afterwards: its owner may free it
    cb = next;
  }
  Unlock();
  return prev;
}

std::uint64_t TaskHeader::DestroyUnfinished() noexcept {
  Lock();
  std::uint64_t prev =
      state_.fetch_or(kComplete | kCancelled, std::memory_order_acq_rel);
  assert(!(prev & kComplete) && !(prev & kRunning));
  // Everything that waits on this task is being destroyed as well (shutdown):
  // detach the callbacks without invoking them.
  for (DoneCallback* cb = std::exchange(callbacks_, nullptr); cb != nullptr;) {
    DoneCallback* next = cb->next;
    cb->prev = cb->next = nullptr;
    cb->linked = false;
    cb = next;
  }
  Unlock();
  if (root_) {
    std::exchange(root_, {}).destroy();
  }
  return prev;
}

bool TaskHeader::AddDoneCallback(DoneCallback* cb) noexcept {
  Lock();
  if (state_.load(std::memory_order_relaxed) & kComplete) {
    Unlock();
    return false;
  }
  // Appended, so callbacks run in registration order (as asyncio's do).
  cb->next = nullptr;
  cb->linked = true;
  if (callbacks_ == nullptr) {
    cb->prev = cb;  // the head's prev points at the tail
    callbacks_ = cb;
  } else {
    DoneCallback* tail = callbacks_->prev;
    tail->next = cb;
    cb->prev = tail;
    callbacks_->prev = cb;
  }
  Unlock();
  return true;
}

void TaskHeader::RemoveDoneCallback(DoneCallback* cb) noexcept {
  Lock();
  if (cb->linked) {
    if (cb == callbacks_) {
      callbacks_ = cb->next;
      if (callbacks_ != nullptr) callbacks_->prev = cb->prev;
    } else {
      cb->prev->next = cb->next;
      if (cb->next != nullptr) {
        cb->next->prev = cb->prev;
      } else {
        callbacks_->prev = cb->prev;  // cb was the tail
      }
    }
    cb->prev = cb->next = nullptr;
    cb->linked = false;
  }
  Unlock();
}

void TaskHeader::DropJoinInterest() noexcept {
  state_.fetch_and(~kJoinInterest, std::memory_order_acq_rel);
}

bool TaskHeader::RequestCancel(std::string_view message) {
  Lock();
  if (state_.load(std::memory_order_relaxed) & kComplete) {
    Unlock();
    return false;
  }
  SetCancelMessageLocked(message);  // asyncio keeps the last cancel()'s message
  WaitNode* node = current_wait_;
  if (node != nullptr && node->forward != nullptr) {
    // Awaiting other tasks: cancel them instead and keep waiting for them.
    std::vector<TaskHeader*> targets;
    node->forward(node, &targets);
    node->forwarded = true;
    Unlock();
    bool any = false;
    for (TaskHeader* t : targets) {
      any |= t->RequestCancel(message);
      t->Unref();
    }
    if (!any) {
      // Nothing left to cancel there: raise in this task when it resumes.
      state_.fetch_or(kCancelRequested, std::memory_order_acq_rel);
    }
    return true;
  }
  state_.fetch_or(kCancelRequested, std::memory_order_acq_rel);
  const bool won = node != nullptr && node->TryCancel();
  Unlock();
  if (won) node->on_cancel(node);
  return true;
}

void TaskHeader::SuspendOn(WaitNode* node) {
  assert(node->task == this);  // set before registering with the source
  Lock();
  current_wait_ = node;
  if (!(state_.load(std::memory_order_relaxed) & kCancelRequested)) {
    Unlock();
    return;
  }
  // Cancelled while running: deliver it to this wait now.
  if (node->forward != nullptr) {
    std::vector<TaskHeader*> targets;
    node->forward(node, &targets);
    node->forwarded = true;
    state_.fetch_and(~kCancelRequested, std::memory_order_acq_rel);
    const std::string message = CancelMessageLocked();
    Unlock();
    bool any = false;
    for (TaskHeader* t : targets) {
      any |= t->RequestCancel(message);
      t->Unref();
    }
    if (!any) state_.fetch_or(kCancelRequested, std::memory_order_acq_rel);
    return;
  }
  const bool won = node->TryCancel();
  Unlock();
  // The task is still running: the wake sets kNotified and the worker
  // re-queues it when this run ends; it then resumes and raises.
  if (won) node->on_cancel(node);
}

bool TaskHeader::EndWait(WaitNode* node) noexcept {
  Lock();
  if (current_wait_ == node) current_wait_ = nullptr;
  const bool cancel =
      node->state() == WaitNode::kCancelled ||
      (state_.load(std::memory_order_relaxed) & kCancelRequested);
  if (cancel) state_.fetch_and(~kCancelRequested, std::memory_order_acq_rel);
  Unlock();
  return cancel;
}

bool TaskHeader::TakePendingCancel() noexcept {
  if (!(state_.load(std::memory_order_acquire) & kCancelRequested))
    return false;
  return (state_.fetch_and(~kCancelRequested, std::memory_order_acq_rel) &
          kCancelRequested) != 0;
}

namespace {

// Cancellation messages, by task. Sharded by address; each shard's mutex is
// a leaf lock (taken with a task's lock held, never the other way).
class CancelMessages {
 public:
  void Set(const TaskHeader* t, std::string_view m) {
    Shard& s = ShardOf(t);
    MutexLock lock(&s.mu);
    s.messages[t].assign(m);
  }
  std::string Get(const TaskHeader* t) {
    Shard& s = ShardOf(t);
    MutexLock lock(&s.mu);
    auto it = s.messages.find(t);
    return it == s.messages.end() ? std::string() : it->second;
  }
  void Erase(const TaskHeader* t) {
    Shard& s = ShardOf(t);
    MutexLock lock(&s.mu);
    s.messages.erase(t);
  }

 private:
  struct Shard {
    Mutex mu;
    std::unordered_map<const TaskHeader*, std::string> messages
        ABSL_GUARDED_BY(mu);
  };
  Shard& ShardOf(const TaskHeader* t) {
    return shards_[(reinterpret_cast<std::uintptr_t>(t) >> 7) % kShards];
  }
  static constexpr std::size_t kShards = 16;
  Shard shards_[kShards];
};

CancelMessages& Messages() {
  static CancelMessages* m = new CancelMessages();  // outlives every task
  return *m;
}

}  // namespace

void TaskHeader::SetCancelMessageLocked(std::string_view message) {
  if (message.empty() &&
      !(state_.load(std::memory_order_relaxed) & kHasMessage))
    return;
  Messages().Set(this, message);
  state_.fetch_or(kHasMessage, std::memory_order_relaxed);
}

std::string TaskHeader::CancelMessageLocked() {
  if (!(state_.load(std::memory_order_relaxed) & kHasMessage))
    return std::string();
  return Messages().Get(this);
}

std::string TaskHeader::CancelMessage() {
  Lock();
  std::string m = CancelMessageLocked();
  Unlock();
  return m;
}

Scheduler* TaskHeader::scheduler() const noexcept {
  return Scheduler::FromIndex(scheduler_index_);
}

void TaskHeader::Unref() noexcept { UnrefMany(1); }

void TaskHeader::UnrefMany(std::uint64_t n) noexcept {
  std::uint64_t prev = state_.fetch_sub(n * kRefOne, std::memory_order_acq_rel);
  assert((prev >> kRefShift) >= n);
  if ((prev >> kRefShift) == n) Destroy();
}

void TaskHeader::Destroy() noexcept {
  if (root_) root_.destroy();
  if (state_.load(std::memory_order_relaxed) & kHasMessage)
    Messages().Erase(this);
  this->~TaskHeader();
  FrameAllocator::Deallocate(this, sizeof(TaskHeader));
}

void TaskHeader::Wake() noexcept {
  if (TransitionToNotified()) scheduler()->Schedule(this);
}

}  // namespace awaitd::runtime::internal
