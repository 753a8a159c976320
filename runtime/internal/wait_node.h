// WaitNode: one suspension of a task on one event source, and the rule that
// exactly one party resumes it.
//
// Every awaiter that suspends a task for an event (a timer, a child task, a
// semaphore, blocking work, I/O) embeds a WaitNode and publishes it as the
// task's current wait. Two parties may then try to end the wait: the event
// source (TryFire) and a cancellation (TryCancel). The node's atomic state
// lets exactly one of them win; only the winner wakes the task, so a task is
// never resumed twice for one suspension (a stale wake-up would resume it at
// whatever point it suspends next).
//
// Protocol for an awaiter:
//   await_suspend: record the resume point, set node.task (the source may
//     fire from another thread as soon as it is registered), register with
//     the source, then task->SuspendOn(&node) — which also handles a
//     cancellation that is already pending — and return true (suspend). If the
//     source reports that the event already happened before registering, return
//     false instead without publishing.
//   source: if (node.TryFire()) node.task->Wake();
//   on_cancel (called by the canceller after it won TryCancel): unregister
//     from the source, then wake the task (or arrange for the source to).
//   await_resume: if (node.task->EndWait(&node)) raise CancelledError, after
//     undoing whatever the source did if the node had fired (a permit...).
//
// Lifetime rule: a node stays alive until its task is woken by the winner.
// A source that lost (TryFire failed) may touch the node only while holding
// a lock that on_cancel also takes before it wakes the task; otherwise the
// task may resume and free the node under it.
//
// Forwarding nodes (awaiting child tasks: a JoinHandle, Gather, TaskGroup)
// do not end the wait on cancellation; like asyncio, cancelling the awaiter
// cancels the awaited tasks, and the awaiter keeps waiting for them. Their
// `forward` hook lists the tasks to cancel (taking a reference on each) and
// is called with the waiting task's lock held.
//
// Thread safety: TryFire/TryCancel from any thread; the other fields are set
// by the awaiter before publication and read after.
#ifndef AWAITD_RUNTIME_INTERNAL_WAIT_NODE_H_
#define AWAITD_RUNTIME_INTERNAL_WAIT_NODE_H_

#include <atomic>
#include <cstdint>
#include <vector>

namespace awaitd::runtime::internal {

class TaskHeader;

class WaitNode {
 public:
  enum State : std::uint32_t { kWaiting = 0, kFired = 1, kCancelled = 2 };
  using CancelFn = void (*)(WaitNode* node);
  using ForwardFn = void (*)(WaitNode* node, std::vector<TaskHeader*>* targets);

  WaitNode(CancelFn on_cancel, ForwardFn forward) noexcept
      : on_cancel(on_cancel), forward(forward) {}
  WaitNode(const WaitNode&) = delete;
  WaitNode& operator=(const WaitNode&) = delete;

  // The event source ends the wait. True if it won (it must wake the task).
  bool TryFire() noexcept {
    std::uint32_t expected = kWaiting;
    return state_.compare_exchange_strong(
        expected, kFired, std::memory_order_acq_rel, std::memory_order_acquire);
  }
  // A cancellation ends the wait. True if it won (it must call on_cancel).
  bool TryCancel() noexcept {
    std::uint32_t expected = kWaiting;
    return state_.compare_exchange_strong(expected, kCancelled,
                                          std::memory_order_acq_rel,
                                          std::memory_order_acquire);
  }
  State state() const noexcept {
    return static_cast<State>(state_.load(std::memory_order_acquire));
  }
  // Re-arms a node for another suspension (it must not be published).
  void Reset() noexcept { state_.store(kWaiting, std::memory_order_relaxed); }

  TaskHeader* task = nullptr;
  const CancelFn on_cancel;
  const ForwardFn forward;
  // Set (under the task's lock) when a cancellation was forwarded.
  bool forwarded = false;

 private:
  std::atomic<std::uint32_t> state_{kWaiting};
};

}  // namespace awaitd::runtime::internal

#endif  // AWAITD_RUNTIME_INTERNAL_WAIT_NODE_H_
