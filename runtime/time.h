// Sleeping and yielding inside a task.
//
//   co_await Sleep(std::chrono::milliseconds(10));
//   co_await SleepUntil(deadline);
//   co_await Yield();   // let other ready tasks run first
//
// A sleep registers a timer on the worker the task is running on (its
// TimerWheel, no allocation); when it fires, that worker queues the task at
// the back of its local queue, from where an idle worker may steal it. A
// deadline that has already passed (including Sleep(0)) behaves as Yield(),
// like asyncio.sleep(0). Timers never fire early; they are rounded up to the
// next microsecond. A cancelled sleep ends at once with CancelledError.
//
// Thread safety: the awaiters must be awaited inside a task running on a
// Runtime; each is used once.
#ifndef AWAITD_RUNTIME_TIME_H_
#define AWAITD_RUNTIME_TIME_H_

#include <chrono>
#include <coroutine>

#include "runtime/internal/task_header.h"
#include "runtime/internal/timer_wheel.h"
#include "runtime/internal/wait_node.h"

namespace awaitd::runtime {

namespace internal {
class Worker;

// A timer that ends a wait.
struct WaitTimer : TimerEntry {
  WaitNode* node = nullptr;
};
}  // namespace internal

// The awaiter is its own timer entry and wait node: a sleeping task's frame
// carries nothing else (the million-sleepers benchmark counts every byte).
class [[nodiscard]] SleepAwaiter : private internal::TimerEntry,
                                   private internal::WaitNode {
 public:
  explicit SleepAwaiter(std::chrono::steady_clock::time_point deadline) noexcept
      : WaitNode(&SleepAwaiter::OnCancel, nullptr), deadline_(deadline) {}
  SleepAwaiter(const SleepAwaiter&) = delete;
  SleepAwaiter& operator=(const SleepAwaiter&) = delete;
  // Unlinks the timer if the frame is destroyed mid-sleep (runtime shutdown).
  ~SleepAwaiter();

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h);
  // Raises CancelledError if the task was cancelled while sleeping.
  void await_resume();

 private:
  static void Fire(internal::TimerEntry* e);
  static void OnCancel(internal::WaitNode* n);

  // Before await_suspend: the deadline. After it: the worker whose wheel
  // holds the timer (null if the sleep was a yield).
  union {
    std::chrono::steady_clock::time_point deadline_;
    internal::Worker* worker_;
  };
};

class [[nodiscard]] YieldAwaiter {
 public:
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h);
  // Raises CancelledError if a cancellation arrived meanwhile.
  void await_resume();

 private:
  internal::TaskHeader* task_ = nullptr;
};

// Suspends the task until `deadline`.
inline SleepAwaiter SleepUntil(
    std::chrono::steady_clock::time_point deadline) noexcept {
  return SleepAwaiter(deadline);
}

namespace internal {
// now + d, scaled by the current runtime's time_scale (RuntimeOptions) and
// saturated far in the future instead of overflowing.
std::chrono::steady_clock::time_point DeadlineIn(
    std::chrono::nanoseconds d) noexcept;
}  // namespace internal

// Suspends the task for `d` (asyncio.sleep); non-positive durations yield.
template <typename Rep, typename Period>
SleepAwaiter Sleep(std::chrono::duration<Rep, Period> d) noexcept {
  if (d <= d.zero()) return SleepAwaiter(std::chrono::steady_clock::now());
  const auto max_ahead = std::chrono::hours(24 * 365 * 100);
  if (d >= max_ahead) return SleepAwaiter(internal::DeadlineIn(max_ahead));
  return SleepAwaiter(internal::DeadlineIn(
      std::chrono::duration_cast<std::chrono::nanoseconds>(d)));
}

// Requeues the running task behind every task already ready on its worker.
inline YieldAwaiter Yield() noexcept { return {}; }

}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_TIME_H_
