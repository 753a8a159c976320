// Asio I/O from inside a task.
//
// Each worker owns an io_context. CurrentIoContext() is the one of the worker
// running the calling task: I/O objects created on it complete on that
// worker's thread, which queues the task locally (from where it may be
// stolen). AwaitAsio adapts any Asio asynchronous operation:
//
//   boost::asio::ip::tcp::socket sock(CurrentIoContext());
//   auto [ec] = co_await AwaitAsio<boost::system::error_code>(
//       [&](auto handler) { sock.async_connect(endpoint, std::move(handler));
//       });
//   auto [ec2, n] = co_await AwaitAsio<boost::system::error_code, std::size_t>(
//       [&](auto handler) { sock.async_read_some(buffer, std::move(handler));
//       });
//
// Cancellation uses Asio's per-operation cancellation slots: cancelling the
// task emits a terminal cancellation on the operation's slot (on the thread
// of the io_context the operation runs on); the operation completes with
// operation_aborted and the awaiter raises CancelledError. An operation that
// does not support per-operation cancellation ends the wait only when it
// completes.
//
// Thread safety: await inside a task of a Runtime. `io` must be the
// io_context the operation's I/O object was created on (by default the
// current worker's). An I/O object stays bound to its io_context, and its
// completions run on that worker's thread even after the task moved to
// another worker; Asio objects are not thread-safe, so one task should own
// each.
#ifndef AWAITD_RUNTIME_IO_H_
#define AWAITD_RUNTIME_IO_H_

#include <atomic>
#include <coroutine>
#include <optional>
#include <tuple>
#include <utility>

#include "boost/asio/bind_cancellation_slot.hpp"
#include "boost/asio/cancellation_signal.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/post.hpp"
#include "runtime/errors.h"
#include "runtime/internal/context.h"
#include "runtime/internal/wait_node.h"

namespace awaitd::runtime {

// The io_context of the worker running the calling task. Aborts outside a
// task.
boost::asio::io_context& CurrentIoContext();

template <typename Init, typename... Args>
class [[nodiscard]] AsioAwaiter {
 public:
  AsioAwaiter(Init init, boost::asio::io_context* io)
      : init_(std::move(init)), io_(io) {}
  AsioAwaiter(const AsioAwaiter&) = delete;
  AsioAwaiter& operator=(const AsioAwaiter&) = delete;

  bool await_ready() const noexcept { return false; }

  void await_suspend(std::coroutine_handle<> h) {
    task_ = internal::RequireCurrentTask("AwaitAsio");
    task_->set_resume_point(h);
    if (io_ == nullptr) io_ = &CurrentIoContext();
    node_.task = task_;
    init_(boost::asio::bind_cancellation_slot(signal_.slot(), Handler{this}));
    task_->SuspendOn(&node_);
  }

  // The completion arguments; raises CancelledError if the task was
  // cancelled meanwhile (the operation has completed by then).
  std::tuple<Args...> await_resume() {
    if (task_->EndWait(&node_)) throw CancelledError(task_->CancelMessage());
    return std::move(*result_);
  }

 private:
  struct Handler {
    AsioAwaiter* self;
    void operator()(Args... args) {
      self->result_.emplace(std::move(args)...);
      if (self->node_.TryFire()) {
        self->node_.task->Wake();  // *self may be gone after this
      } else {
        self->Release();  // cancelled: the last of handler and emitter wakes
      }
    }
  };
  struct Node : internal::WaitNode {
    explicit Node(AsioAwaiter* o)
        : WaitNode(&AsioAwaiter::OnCancel, nullptr), owner(o) {}
    AsioAwaiter* owner;
  };

  // After a cancellation won the wait: emit on the io_context's own thread
  // (cancellation signals are not thread-safe), and wake the task only when
  // both the emission and the handler are done with *this.
  static void OnCancel(internal::WaitNode* n) {
    AsioAwaiter* self = static_cast<Node*>(n)->owner;
    boost::asio::post(*self->io_, [self] {
      self->signal_.emit(boost::asio::cancellation_type::terminal);
      self->Release();
    });
  }
  void Release() {
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1)
      node_.task->Wake();
  }

  Init init_;
  boost::asio::io_context* io_;
  boost::asio::cancellation_signal signal_;
  Node node_{this};
  std::atomic<int> pending_{2};
  std::optional<std::tuple<Args...>> result_;
  internal::TaskHeader* task_ = nullptr;
};

// `init(handler)` starts the operation with `handler` as its completion
// handler. `io` is the io_context of the operation's I/O object (default:
// the current worker's).
template <typename... Args, typename Init>
AsioAwaiter<Init, Args...> AwaitAsio(Init init,
                                     boost::asio::io_context* io = nullptr) {
  return AsioAwaiter<Init, Args...>(std::move(init), io);
}

}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_IO_H_
