// TaskList: a mutex-protected FIFO of intrusive task chains, used for the
// global injection queue and for each worker's inbox.
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
#include <deque>

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
  // Returns false, taking nothing, if the list is closed. O(1): the chain is
  // kept whole, so a spill of half a local queue costs one lock.
  bool PushChain(TaskHeader* first, TaskHeader* last, std::uint32_t count) {
    last->queue_next_ = nullptr;
    MutexLock lock(&mu_);
    if (closed_) return false;
    chains_.push_back(Chain{first, last, count});
    len_.store(len_.load(std::memory_order_relaxed) + count,
               std::memory_order_release);
    return true;
  }
  bool Push(TaskHeader* task) { return PushChain(task, task, 1); }

  // Pops up to `max` tasks (at least one if any are queued); returns the
  // chain head (null if none) and sets *count. Whole chains are taken in
  // O(1); only a chain longer than `max` is walked, to cut it. The returned
  // chain is terminated by a null queue_next_.
  TaskHeader* PopChain(std::uint32_t max, std::uint32_t* count) {
    return PopChain(max, max, count);
  }

  // Like PopChain(max), but stops taking whole chains once `want` tasks are
  // taken, and cuts a chain only where it would exceed `max`: a consumer
  // asking for its fair share gets whole spilled chunks without a walk.
  TaskHeader* PopChain(std::uint32_t want, std::uint32_t max,
                       std::uint32_t* count) {
    *count = 0;
    if (max == 0 || len_.load(std::memory_order_acquire) == 0) return nullptr;
    MutexLock lock(&mu_);
    TaskHeader* first = nullptr;
    TaskHeader* last = nullptr;
    std::uint32_t n = 0;
    while (!chains_.empty() && n < want && n < max) {
      Chain& c = chains_.front();
      Chain take = c;
      if (c.count > max - n) {
        // Cut the front of this chain.
        const std::uint32_t want = max - n;
        TaskHeader* cut = c.first;
        for (std::uint32_t i = 1; i < want; ++i) cut = cut->queue_next_;
        take = Chain{c.first, cut, want};
        c.first = cut->queue_next_;
        c.count -= want;
        cut->queue_next_ = nullptr;
      } else {
        chains_.pop_front();
      }
      if (last == nullptr) {
        first = take.first;
      } else {
        last->queue_next_ = take.first;
      }
      last = take.last;
      n += take.count;
    }
    len_.store(len_.load(std::memory_order_relaxed) - n,
               std::memory_order_release);
    *count = n;
    return first;
  }

  TaskHeader* Pop() {
    std::uint32_t n;
    return PopChain(1, &n);
  }

  std::uint64_t Len() const { return len_.load(std::memory_order_acquire); }
  bool IsEmpty() const { return Len() == 0; }

  // After Close, pushes fail. Returns everything still queued, as one chain.
  TaskHeader* CloseAndTakeAll() {
    MutexLock lock(&mu_);
    closed_ = true;
    TaskHeader* first = nullptr;
    TaskHeader* last = nullptr;
    for (const Chain& c : chains_) {
      if (last == nullptr) {
        first = c.first;
      } else {
        last->queue_next_ = c.first;
      }
      last = c.last;
    }
    chains_.clear();
    len_.store(0, std::memory_order_release);
    return first;
  }
  bool IsClosed() const {
    MutexLock lock(&mu_);
    return closed_;
  }

 private:
  struct Chain {
    TaskHeader* first;
    TaskHeader* last;
    std::uint32_t count;
  };

  mutable Mutex mu_;
  std::deque<Chain> chains_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<std::uint64_t> len_{0};
};

}  // namespace awaitd::runtime::internal

#endif  // AWAITD_RUNTIME_INTERNAL_TASK_LIST_H_
