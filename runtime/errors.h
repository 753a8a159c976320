// Exception types the runtime raises inside tasks.
//
// Inside coroutines awaitd follows asyncio and uses exceptions: a task's
// failure is stored and rethrown where it is awaited. These are the runtime's
// own; job code may throw anything derived from std::exception.
#ifndef AWAITD_RUNTIME_ERRORS_H_
#define AWAITD_RUNTIME_ERRORS_H_

#include <stdexcept>
#include <string>

namespace awaitd::runtime {

// The awaited task was cancelled (asyncio.CancelledError). Also raised by a
// JoinHandle whose task the runtime destroyed at shutdown.
class CancelledError : public std::runtime_error {
 public:
  explicit CancelledError(const std::string& message = "cancelled")
      : std::runtime_error(message) {}
};

// The runtime is shutting down and did not take the work.
class RuntimeShutdownError : public std::runtime_error {
 public:
  explicit RuntimeShutdownError(const std::string& message = "runtime is shutting down")
      : std::runtime_error(message) {}
};

}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_ERRORS_H_
