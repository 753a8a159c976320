// Asio I/O from inside a task.
//
// Each worker owns an io_context. CurrentIoContext() is the one of the worker
// running the calling task: I/O objects created on it complete on that
// worker's thread, which queues the task locally (from where it may be
// stolen). AwaitAsio adapts any Asio asynchronous operation:
//
//   boost::asio::ip::tcp::socket sock(CurrentIoContext());
//   auto [ec] = co_await AwaitAsio<boost::system::error_code>(
//       [&](auto handler) { sock.async_connect(endpoint, std::move(handler)); });
//   auto [ec2, n] = co_await AwaitAsio<boost::system::error_code, std::size_t>(
//       [&](auto handler) { sock.async_read_some(buffer, std::move(handler)); });
//
// Thread safety: await inside a task of a Runtime. An I/O object stays bound
// to the io_context it was created on, and its completions run on that
// worker's thread even after the task moved to another worker; Asio objects
// are not thread-safe, so one task should own each.
#ifndef AWAITD_RUNTIME_IO_H_
#define AWAITD_RUNTIME_IO_H_

#include <coroutine>
#include <functional>
#include <optional>
#include <tuple>
#include <utility>

#include "boost/asio/io_context.hpp"
#include "runtime/internal/context.h"

namespace awaitd::runtime {

// The io_context of the worker running the calling task. Aborts outside a
// task.
boost::asio::io_context& CurrentIoContext();

template <typename... Args>
class [[nodiscard]] AsioAwaiter {
 public:
  template <typename Init>
  explicit AsioAwaiter(Init init) : init_(std::move(init)) {}

  bool await_ready() const noexcept { return false; }

  void await_suspend(std::coroutine_handle<> h) {
    task_ = internal::RequireCurrentTask("AwaitAsio");
    task_->set_resume_point(h);
    init_(Handler{this});
  }

  std::tuple<Args...> await_resume() { return std::move(*result_); }

 private:
  // The completion handler Asio stores and invokes: records the arguments
  // and wakes the task. Movable and cheap.
  struct Handler {
    AsioAwaiter* self;
    void operator()(Args... args) {
      self->result_.emplace(std::move(args)...);
      internal::TaskHeader* task = self->task_;
      task->Wake();  // *self may be gone after this
    }
  };

  std::function<void(Handler)> init_;
  std::optional<std::tuple<Args...>> result_;
  internal::TaskHeader* task_ = nullptr;
};

template <typename... Args, typename Init>
AsioAwaiter<Args...> AwaitAsio(Init init) {
  return AsioAwaiter<Args...>(std::move(init));
}

}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_IO_H_
