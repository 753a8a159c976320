// TaskList: a mutex-protected intrusive FIFO of tasks, used for the global
// injection queue and for each worker's inbox.
//
// Both are multi-producer, multi-consumer and touched far less often than the
// local queues (spills, spawns from outside threads, cross-thread wake-ups),
// so a lock around a linked list is the right cost. `Len()` is an atomic
// mirror so that emptiness can be checked without taking the lock.
//
// Thread safety: all methods are safe for concurrent use.
#ifndef AWAITD_RUNTIME_INTERNAL_TASK_LIST_H_
#define AWAITD_RUNTIME_INTERNAL_TASK_LIST_H_

#include <atomic>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "runtime/internal/mutex.h"
#include "runtime/internal/task_header.h"

namespace awaitd::runtime::internal {

class TaskList {
 public:
  TaskList() = default;
  TaskList(const TaskList&) = delete;
  TaskList& operator=(const TaskList&) = delete;

  // Appends the chain first..last (linked by queue_next_, `count` tasks).
  // Returns false, taking nothing, if the list is closed.
  bool PushChain(TaskHeader* first, TaskHeader* last, std::uint32_t count) {
    last->queue_next_ = nullptr;
    MutexLock lock(&mu_);
    if (closed_) return false;
    if (tail_ == nullptr) {
      head_ = first;
    } else {
      tail_->queue_next_ = first;
    }
    tail_ = last;
    len_.store(len_.load(std::memory_order_relaxed) + count, std::memory_order_release);
    return true;
  }
  bool Push(TaskHeader* task) { return PushChain(task, task, 1); }

  // Pops up to `max` tasks; returns the chain head (null if none) and sets
  // *count. The chain is terminated by a null queue_next_.
  TaskHeader* PopChain(std::uint32_t max, std::uint32_t* count) {
    *count = 0;
    if (len_.load(std::memory_order_acquire) == 0) return nullptr;
    MutexLock lock(&mu_);
    TaskHeader* first = head_;
    if (first == nullptr) return nullptr;
    TaskHeader* last = first;
    std::uint32_t n = 1;
    while (n < max && last->queue_next_ != nullptr) {
      last = last->queue_next_;
      ++n;
    }
    head_ = last->queue_next_;
    if (head_ == nullptr) tail_ = nullptr;
    last->queue_next_ = nullptr;
    len_.store(len_.load(std::memory_order_relaxed) - n, std::memory_order_release);
    *count = n;
    return first;
  }

  TaskHeader* Pop() {
    std::uint32_t n;
    return PopChain(1, &n);
  }

  std::uint64_t Len() const { return len_.load(std::memory_order_acquire); }
  bool IsEmpty() const { return Len() == 0; }

  // After Close, pushes fail. Returns everything still queued.
  TaskHeader* CloseAndTakeAll() {
    MutexLock lock(&mu_);
    closed_ = true;
    TaskHeader* all = head_;
    head_ = tail_ = nullptr;
    len_.store(0, std::memory_order_release);
    return all;
  }
  bool IsClosed() const {
    MutexLock lock(&mu_);
    return closed_;
  }

 private:
  mutable Mutex mu_;
  TaskHeader* head_ ABSL_GUARDED_BY(mu_) = nullptr;
  TaskHeader* tail_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<std::uint64_t> len_{0};
};

}  // namespace awaitd::runtime::internal

#endif  // AWAITD_RUNTIME_INTERNAL_TASK_LIST_H_
