// Configuration of a Runtime.
#ifndef AWAITD_RUNTIME_RUNTIME_OPTIONS_H_
#define AWAITD_RUNTIME_RUNTIME_OPTIONS_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <system_error>

#include "runtime/log.h"

namespace awaitd::runtime {

// What Shutdown does with tasks that have not finished.
enum class ShutdownPolicy {
  // Destroy them at their current suspension point (their destructors run;
  // JoinHandles report cancellation).
  kCancel,
  // Wait for them to finish, up to the grace period, then cancel the rest.
  kDrain,
};

struct RuntimeOptions {
  // Event-loop threads. 0 means one per core
  // (std::thread::hardware_concurrency).
  std::uint32_t workers = 0;

  // Blocking pool bounds (ToThread). Threads idle for `blocking_keep_alive`
  // retire, down to `blocking_min_threads`.
  std::uint32_t blocking_min_threads = 0;
  std::uint32_t blocking_max_threads = 512;
  std::chrono::nanoseconds blocking_keep_alive = std::chrono::seconds(10);
  // Tests: how the blocking pool starts a thread (BlockingPool::Options::
  // start_thread); null: std::thread.
  std::function<std::error_code(std::function<void()>)> blocking_start_thread;

  // A task that runs longer than this without suspending is counted as a
  // stall and logged with its id. Zero disables the detector.
  std::chrono::nanoseconds stall_threshold = std::chrono::milliseconds(100);

  // Scheduler tuning (tokio's defaults): how often a worker looks at the
  // global queue before its local one, and how often it polls I/O and timers
  // while it has tasks to run. Both count tasks run.
  std::uint32_t global_queue_interval = 61;
  std::uint32_t event_interval = 61;

  // Multiplies every relative duration given to the runtime (Sleep, and the
  // timeouts of Wait, WaitFor, AsCompleted): 0.01 makes a Sleep(1s) take
  // 10 ms. For tests of timing-dependent behaviour (the seeds' examples) that
  // should run fast; 1.0 in production. Absolute deadlines (SleepUntil) are
  // not scaled.
  double time_scale = 1.0;

  ShutdownPolicy shutdown_policy = ShutdownPolicy::kCancel;
  std::chrono::nanoseconds shutdown_grace = std::chrono::seconds(5);

  // Prefix of thread names ("<prefix>-<n>"); at most 10 characters are kept.
  std::string thread_name = "awaitd-w";

  // Receives the runtime's log lines; null means StderrLogSink.
  LogSink log_sink;
};

}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_RUNTIME_OPTIONS_H_
