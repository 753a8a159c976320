// WithTimeout: asyncio.timeout() for a piece of a task.
//
//   try {
//     Page p = co_await WithTimeout(std::chrono::seconds(2), Fetch(url));
//   } catch (const TimeoutError&) { ... }
//
// The body runs in the calling task (it is not spawned). When the deadline
// passes, the calling task is cancelled: the body gets CancelledError at its
// current or next suspension point, and once it has unwound, WithTimeout
// raises TimeoutError instead. A body that finishes before the cancellation
// reaches it returns normally (and the pending cancellation is withdrawn).
// A cancellation from elsewhere still raises CancelledError.
//
// Thread safety: await inside a task; the scope's timer may expire on another
// worker, and the handshake with it is internally synchronized.
#ifndef AWAITD_RUNTIME_TIMEOUT_H_
#define AWAITD_RUNTIME_TIMEOUT_H_

#include <chrono>
#include <exception>
#include <type_traits>
#include <utility>

#include "runtime/errors.h"
#include "runtime/task.h"

namespace awaitd::runtime {

namespace internal {

// The timer of one WithTimeout scope; see timeout.cc.
class TimeoutScope {
 public:
  explicit TimeoutScope(std::chrono::nanoseconds timeout);
  TimeoutScope(const TimeoutScope&) = delete;
  TimeoutScope& operator=(const TimeoutScope&) = delete;
  ~TimeoutScope();

  // Ends the scope. Returns true if the timeout's cancellation was delivered
  // to the task (then `body_raised_cancelled` decides: TimeoutError, or a
  // normal return with the request withdrawn).
  bool Close(bool body_raised_cancelled);

 private:
  struct State;
  State* state_;
};

}  // namespace internal

template <typename T>
Task<T> WithTimeout(std::chrono::nanoseconds timeout, Task<T> body) {
  internal::TimeoutScope scope(timeout);
  bool expired = false;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(body);
      scope.Close(false);
      co_return;
    } else {
      T value = co_await std::move(body);
      scope.Close(false);
      co_return value;
    }
  } catch (const CancelledError&) {
    expired = scope.Close(true);
    if (!expired) throw;
  }
  throw TimeoutError("timeout expired");
}

}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_TIMEOUT_H_
