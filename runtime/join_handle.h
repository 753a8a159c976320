// JoinHandle<T>: the awaitable result of a spawned task.
//
// `co_await handle` suspends until the task has finished and yields its
// result, rethrowing its exception; a task that ended cancelled (or that the
// runtime destroyed at shutdown) raises CancelledError. A handle's result is
// taken at most once (it is moved out). Cancel() is asyncio's Task.cancel().
//
// Destroying a handle without awaiting it detaches the task, which keeps
// running (as an asyncio Task does when its reference is dropped); Detach()
// says so explicitly. A detached task that fails is logged.
//
// Thread safety: a JoinHandle is externally synchronized (one owner), but it
// may be moved to and awaited from any task on any worker; IsFinished() may
// be called from any thread.
#ifndef AWAITD_RUNTIME_JOIN_HANDLE_H_
#define AWAITD_RUNTIME_JOIN_HANDLE_H_

#include <coroutine>
#include <cstdint>
#include <string_view>
#include <utility>

#include "runtime/errors.h"
#include "runtime/internal/context.h"
#include "runtime/internal/join_wait.h"
#include "runtime/internal/task_header.h"
#include "runtime/task.h"

namespace awaitd::runtime {

template <typename T>
class [[nodiscard]] JoinHandle {
 public:
  JoinHandle() noexcept = default;
  JoinHandle(JoinHandle&& other) noexcept
      : header_(std::exchange(other.header_, nullptr)) {}
  JoinHandle& operator=(JoinHandle&& other) noexcept {
    if (this != &other) {
      Reset();
      header_ = std::exchange(other.header_, nullptr);
    }
    return *this;
  }
  JoinHandle(const JoinHandle&) = delete;
  JoinHandle& operator=(const JoinHandle&) = delete;
  ~JoinHandle() { Reset(); }

  bool valid() const noexcept { return header_ != nullptr; }
  // The task's id (as CurrentTaskId() reports inside it). Requires valid().
  std::uint64_t id() const noexcept { return header_->id(); }

  // True once the task finished (returned, raised, or was destroyed).
  bool IsFinished() const noexcept { return header_->IsComplete(); }

  // Lets the task run on without anyone awaiting it.
  void Detach() noexcept { Reset(); }

  // Task.cancel(msg): requests cancellation; CancelledError(message) is
  // raised inside the task at its next suspension point (at once if it is
  // suspended). Returns false if the task is already done.
  bool Cancel(std::string_view message = {}) {
    return header_->RequestCancel(message);
  }

  // Task.cancelled(): true once the task ended by CancelledError.
  bool Cancelled() const noexcept {
    const std::uint64_t s = header_->LoadState();
    return (s & internal::TaskHeader::kComplete) &&
           (s & internal::TaskHeader::kCancelled);
  }

  class Awaiter {
   public:
    Awaiter(internal::TaskHeader* h, bool forward_cancel) noexcept
        : header_(h), wait_(h, forward_cancel) {}
    bool await_ready() const noexcept { return wait_.await_ready(); }
    bool await_suspend(std::coroutine_handle<> h) {
      return wait_.await_suspend(h);
    }
    T await_resume() {
      wait_.Resume();
      return TakeResult(header_);
    }

   private:
    internal::TaskHeader* header_;
    internal::JoinWait wait_;
  };

  // Moves the finished task's result out, or rethrows its exception.
  static T TakeResult(internal::TaskHeader* header) {
    if (!header->root())
      throw CancelledError("task was destroyed at runtime shutdown");
    using Handle = std::coroutine_handle<internal::Promise<T>>;
    return Handle::from_address(header->root().address())
        .promise()
        .TakeResult();
  }

  // Requires valid().
  // Cancelling the awaiting task cancels this task too, and the awaiter keeps
  // waiting for it (asyncio's `await task`); see Shield for the alternative.
  Awaiter operator co_await() & noexcept {
    return Awaiter(header_, /*forward_cancel=*/true);
  }
  Awaiter operator co_await() && noexcept {
    return Awaiter(header_, /*forward_cancel=*/true);
  }

  // asyncio.shield: an awaitable for the result that, if the awaiting task is
  // cancelled, raises CancelledError there at once and leaves this task
  // running. (Cancel() on the task itself still cancels it.)
  Awaiter Shielded() & noexcept {
    return Awaiter(header_, /*forward_cancel=*/false);
  }

 private:
  friend class Runtime;
  template <typename U>
  friend JoinHandle<U> Spawn(Task<U> task);

 public:
  // Takes over a reference with join interest (runtime internal).
  explicit JoinHandle(internal::TaskHeader* h) noexcept : header_(h) {}
  internal::TaskHeader* header() const noexcept { return header_; }

 private:
  void Reset() noexcept {
    if (header_ != nullptr) {
      header_->DropJoinInterest();
      std::exchange(header_, nullptr)->Unref();
    }
  }

  internal::TaskHeader* header_ = nullptr;
};

}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_JOIN_HANDLE_H_
