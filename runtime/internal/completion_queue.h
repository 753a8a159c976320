// CompletionQueue: the finished tasks of a set, in the order they finished
// (the engine of AsCompleted).
//
// Done callbacks on every target push the target's index into a queue; a
// consumer awaits Next() for the next index. One consumer at a time.
//
// Thread safety: callbacks run on completing threads; Next() is awaited by
// one task at a time. State shared between them is guarded by `mu_`.
#ifndef AWAITD_RUNTIME_INTERNAL_COMPLETION_QUEUE_H_
#define AWAITD_RUNTIME_INTERNAL_COMPLETION_QUEUE_H_

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "runtime/internal/mutex.h"
#include "runtime/internal/task_header.h"
#include "runtime/internal/wait_node.h"
#include "runtime/time.h"

namespace awaitd::runtime::internal {

class Worker;

class CompletionQueue {
 public:
  CompletionQueue(
      std::vector<TaskHeader*> targets,
      std::optional<std::chrono::steady_clock::time_point> deadline);
  CompletionQueue(const CompletionQueue&) = delete;
  CompletionQueue& operator=(const CompletionQueue&) = delete;
  ~CompletionQueue();

  std::size_t size() const { return targets_.size(); }

  // Awaits the index of the next target to finish; nullopt once every index
  // was returned. Raises TimeoutError if the deadline passes first (nothing
  // is cancelled), CancelledError if the awaiting task is cancelled.
  class NextAwaiter {
   public:
    explicit NextAwaiter(CompletionQueue* q) : q_(q), node_(this) {}
    NextAwaiter(const NextAwaiter&) = delete;
    NextAwaiter& operator=(const NextAwaiter&) = delete;
    ~NextAwaiter();
    bool await_ready();
    bool await_suspend(std::coroutine_handle<> h);
    std::optional<std::size_t> await_resume();

   private:
    struct Node : WaitNode {
      explicit Node(NextAwaiter* o)
          : WaitNode(&NextAwaiter::OnCancel, nullptr), owner(o) {}
      NextAwaiter* owner;
    };
    static void OnCancel(WaitNode* n);
    static void OnTimer(TimerEntry* e);
    void Disarm();

    CompletionQueue* q_;
    Node node_;
    WaitTimer timer_;
    Worker* timer_worker_ = nullptr;
    TaskHeader* task_ = nullptr;
    bool published_ = false;
    bool timed_out_ = false;
  };
  NextAwaiter Next() { return NextAwaiter(this); }

 private:
  struct Callback : DoneCallback {
    CompletionQueue* owner = nullptr;
    std::size_t index = 0;
    std::atomic<bool> done{false};
  };
  static void OnDone(DoneCallback* cb, TaskHeader* done);
  // Pops the next ready index, if any. Requires mu_.
  std::optional<std::size_t> PopLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::vector<TaskHeader*> targets_;
  const std::optional<std::chrono::steady_clock::time_point> deadline_;
  std::unique_ptr<Callback[]> callbacks_;
  Mutex mu_;
  std::deque<std::size_t> ready_ ABSL_GUARDED_BY(mu_);
  std::size_t returned_ ABSL_GUARDED_BY(mu_) = 0;
  WaitNode* armed_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace awaitd::runtime::internal

#endif  // AWAITD_RUNTIME_INTERNAL_COMPLETION_QUEUE_H_
