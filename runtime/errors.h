// Exception types the runtime raises inside tasks.
//
// Inside coroutines awaitd follows asyncio and uses exceptions: a task's
// failure is stored and rethrown where it is awaited. These are the runtime's
// own; job code may throw anything derived from std::exception.
#ifndef AWAITD_RUNTIME_ERRORS_H_
#define AWAITD_RUNTIME_ERRORS_H_

#include <exception>
#include <stdexcept>
#include <string>

namespace awaitd::runtime {

// asyncio.CancelledError: raised inside a task at the suspension point where
// a cancellation reaches it, carrying the message given to Cancel(); and by
// awaiting a task that ended cancelled (including one the runtime destroyed
// at shutdown). what() is the message, possibly empty.
class CancelledError : public std::runtime_error {
 public:
  explicit CancelledError(const std::string& message = "")
      : std::runtime_error(message) {}
};

namespace internal {
// True if `e` holds a CancelledError. With libstdc++ it reads the thrown
// type without rethrowing (a rethrow costs a microsecond, and the scheduler
// classifies every failed task); elsewhere it rethrows.
bool IsCancelledError(const std::exception_ptr& e) noexcept;
}  // namespace internal

// asyncio.TimeoutError: WaitFor and Timeout scopes raise it when their time
// runs out (after the awaited work has been cancelled).
class TimeoutError : public std::runtime_error {
 public:
  explicit TimeoutError(const std::string& message = "timed out")
      : std::runtime_error(message) {}
};

// The runtime is shutting down and did not take the work.
class RuntimeShutdownError : public std::runtime_error {
 public:
  explicit RuntimeShutdownError(
      const std::string& message = "runtime is shutting down")
      : std::runtime_error(message) {}
};

// ToThread: the work needed a new blocking-pool thread and none could be
// started (the process is out of threads or memory). The work did not run.
// Python's to_thread raises RuntimeError("can't start new thread") there.
class ThreadStartError : public std::runtime_error {
 public:
  explicit ThreadStartError(const std::string& message)
      : std::runtime_error(message) {}
};

}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_ERRORS_H_
