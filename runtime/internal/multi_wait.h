// MultiWait: the awaiter core for waiting on several tasks at once, with an
// optional deadline. Gather, Wait, WaitFor and TaskGroup are built on it.
//
// It registers a done callback on every target and, if there is a deadline,
// a timer on the current worker; the wait ends when the condition holds
// (first completed / first failure / all completed), when the deadline passes
// (timed_out() is then true), or — for a non-forwarding wait — when the
// waiting task is cancelled (CancelledError). A forwarding wait instead
// cancels the targets when the waiting task is cancelled and keeps waiting
// (forwarded() is then true), as asyncio.gather and `await task` do.
//
// Thread safety: owned by one awaiting task; callbacks and the timer run on
// other threads under the protocol of wait_node.h.
#ifndef AWAITD_RUNTIME_INTERNAL_MULTI_WAIT_H_
#define AWAITD_RUNTIME_INTERNAL_MULTI_WAIT_H_

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

#include "runtime/internal/task_header.h"
#include "runtime/internal/wait_node.h"
#include "runtime/time.h"

namespace awaitd::runtime::internal {

class Worker;

// Whether a finished task counts as failed: it raised, or (if
// `cancel_counts`) it was cancelled.
bool TaskFailed(TaskHeader* t, bool cancel_counts) noexcept;

class MultiWait {
 public:
  enum class Until { kFirstCompleted, kFirstFailure, kAllCompleted };

  struct Options {
    Until until = Until::kAllCompleted;
    bool cancel_counts_as_failure = false;  // for kFirstFailure
    bool forward_cancel = false;
    std::optional<std::chrono::steady_clock::time_point> deadline;
  };

  MultiWait(std::vector<TaskHeader*> targets, Options options);
  MultiWait(const MultiWait&) = delete;
  MultiWait& operator=(const MultiWait&) = delete;
  ~MultiWait();

  // Also records first_failure() when the condition already holds.
  bool await_ready() noexcept;
  bool await_suspend(std::coroutine_handle<> h);
  // Raises CancelledError if the (non-forwarding) wait was cancelled.
  void await_resume();

  bool timed_out() const noexcept { return timed_out_; }
  bool forwarded() const noexcept { return node_.forwarded; }
  // Index of the first target seen failing, if any (completion order).
  std::optional<std::size_t> first_failure() const noexcept;

 private:
  struct Callback : DoneCallback {
    MultiWait* owner = nullptr;
    std::size_t index = 0;
    std::atomic<bool> done{false};
  };
  struct Node : WaitNode {
    Node(MultiWait* o, bool forward)
        : WaitNode(forward ? nullptr : &MultiWait::OnCancel,
                   forward ? &MultiWait::Forward : nullptr),
          owner(o) {}
    MultiWait* owner;
  };

  bool ConditionMet() const noexcept;
  // Accounts for target `i` having finished; true if the wait should end.
  bool Account(std::size_t i) noexcept;
  void Cleanup() noexcept;
  static void OnDone(DoneCallback* cb, TaskHeader* done);
  static void OnTimer(TimerEntry* e);
  static void OnCancel(WaitNode* n);
  static void Forward(WaitNode* n, std::vector<TaskHeader*>* out);

  std::vector<TaskHeader*> targets_;
  const Options options_;
  std::unique_ptr<Callback[]> callbacks_;
  std::atomic<std::size_t> remaining_;
  std::atomic<std::size_t> first_failure_{SIZE_MAX};
  Node node_;
  WaitTimer timer_;
  Worker* timer_worker_ = nullptr;
  TaskHeader* task_ = nullptr;
  bool published_ = false;
  bool timed_out_ = false;
};

}  // namespace awaitd::runtime::internal

#endif  // AWAITD_RUNTIME_INTERNAL_MULTI_WAIT_H_
