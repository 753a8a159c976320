// Runtime: awaitd's work-stealing coroutine runtime.
//
// A Runtime runs Task<T> coroutines on N worker threads (default: one per
// core). Each worker is an event loop with its own Boost.Asio io_context,
// timer wheel and run queues; idle workers steal half of a busy worker's
// queue. Blocking work goes to a separate elastic pool (ToThread), so the
// event loops stay responsive. How a task moves between queues, and how
// workers start, park and stop, is specified in internal/worker.h.
//
// Example:
//
//   Runtime rt({.workers = 4});
//   int sum = rt.BlockOn([]() -> Task<int> {
//     std::vector<JoinHandle<int>> hs;
//     for (int i = 0; i < 10; ++i) hs.push_back(Spawn(Square(i)));
//     int s = 0;
//     for (auto& h : hs) s += co_await h;
//     co_return s;
//   }());
//
// Inside a task, use the free functions: Spawn, Sleep, SleepUntil, Yield,
// ToThread, CurrentTaskId (time.h, to_thread.h).
//
// Thread safety: Spawn, BlockOn and Metrics may be called from any thread
// that is not a worker of this runtime (BlockOn would deadlock there).
// Shutdown and the destructor must be called from outside the runtime.
#ifndef AWAITD_RUNTIME_RUNTIME_H_
#define AWAITD_RUNTIME_RUNTIME_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <latch>
#include <memory>
#include <optional>
#include <type_traits>

#include "runtime/errors.h"
#include "runtime/internal/context.h"
#include "runtime/internal/scheduler.h"
#include "runtime/join_handle.h"
#include "runtime/metrics.h"
#include "runtime/runtime_options.h"
#include "runtime/task.h"

namespace awaitd::runtime {

class Runtime {
 public:
  explicit Runtime(RuntimeOptions options = {});
  // Shuts down with the configured policy if Shutdown was not called.
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Schedules `task` to start on a worker. From outside the runtime it goes
  // through the global queue. After shutdown began, the task is not run and
  // its handle reports CancelledError.
  template <typename T>
  JoinHandle<T> Spawn(Task<T> task) {
    auto handle = task.Release();
    return JoinHandle<T>(
        scheduler_->Spawn(handle, &handle.promise(), /*join_interest=*/true));
  }

  // Like Spawn, for a task nobody will await: cheaper than Spawn(...).Detach().
  void SpawnDetached(Task<void> task) {
    auto handle = task.Release();
    internal::TaskHeader* t =
        scheduler_->Spawn(handle, &handle.promise(), false);
    (void)t;
  }

  // Runs `task` on the runtime and blocks the calling thread (which must not
  // be one of this runtime's workers) until it finishes; returns its result
  // or rethrows its exception.
  template <typename T>
  T BlockOn(Task<T> task);

  // Stops the runtime following the shutdown protocol (internal/worker.h).
  // Returns false if it was already shut down.
  bool Shutdown() { return Shutdown(policy_, grace_); }
  bool Shutdown(ShutdownPolicy policy, std::chrono::nanoseconds grace);

  std::uint32_t num_workers() const { return scheduler_->num_workers(); }
  RuntimeMetrics Metrics() const { return scheduler_->Metrics(); }
  // Spawned tasks not yet finished (asyncio's len(all_tasks())).
  std::uint64_t TasksAlive() const { return scheduler_->TasksAlive(); }

 private:
  std::unique_ptr<internal::Scheduler> scheduler_;
  const ShutdownPolicy policy_;
  const std::chrono::nanoseconds grace_;
};

// Spawns `task` on the runtime of the calling task (it must run inside one).
template <typename T>
JoinHandle<T> Spawn(Task<T> task) {
  internal::TaskHeader* self = internal::RequireCurrentTask("Spawn");
  auto handle = task.Release();
  return JoinHandle<T>(
      self->scheduler()->Spawn(handle, &handle.promise(), true));
}

// Spawns a task nobody will await (asyncio's fire-and-forget create_task);
// cheaper than Spawn(task).Detach(). Must run inside a task.
inline void SpawnDetached(Task<void> task) {
  internal::TaskHeader* self = internal::RequireCurrentTask("SpawnDetached");
  auto handle = task.Release();
  self->scheduler()->Spawn(handle, &handle.promise(), false);
}

// The id of the task running on this thread, or 0 outside any task.
inline std::uint64_t CurrentTaskId() {
  internal::TaskHeader* t = internal::CurrentTaskHeader();
  return t == nullptr ? 0 : t->id();
}

// --- Implementation
// ---------------------------------------------------------------

namespace internal {

template <typename T>
struct BlockOnState {
  std::latch done{1};
  std::optional<std::conditional_t<std::is_void_v<T>, bool, T>> value;
  std::exception_ptr error;
};

// Counts the latch down when the wrapper's frame goes away: on completion,
// and also if the runtime destroys the wrapper, even before it started (it
// is a parameter, so it lives in the frame from the moment of the call).
class LatchGuard {
 public:
  explicit LatchGuard(std::latch* latch) : latch_(latch) {}
  LatchGuard(LatchGuard&& other) noexcept
      : latch_(std::exchange(other.latch_, nullptr)) {}
  LatchGuard& operator=(LatchGuard&&) = delete;
  ~LatchGuard() {
    if (latch_ != nullptr) latch_->count_down();
  }

 private:
  std::latch* latch_;
};

template <typename T>
Task<void> BlockOnWrapper(Task<T> task, BlockOnState<T>* state,
                          [[maybe_unused]] LatchGuard guard) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(task);
      state->value.emplace(true);
    } else {
      state->value.emplace(co_await std::move(task));
    }
  } catch (...) {
    state->error = std::current_exception();
  }
}

}  // namespace internal

template <typename T>
T Runtime::BlockOn(Task<T> task) {
  if (scheduler_->OnWorkerThread()) {
    std::fprintf(stderr,
                 "awaitd runtime: BlockOn called on a worker thread (it would "
                 "deadlock)\n");
    std::abort();
  }
  internal::BlockOnState<T> state;
  SpawnDetached(internal::BlockOnWrapper(std::move(task), &state,
                                         internal::LatchGuard(&state.done)));
  state.done.wait();
  if (state.error) std::rethrow_exception(state.error);
  if (!state.value)
    throw CancelledError("runtime shut down before the task finished");
  if constexpr (!std::is_void_v<T>) return std::move(*state.value);
}

}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_RUNTIME_H_
