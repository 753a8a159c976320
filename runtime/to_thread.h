// ToThread: run blocking work on the blocking pool and await its result.
//
//   std::string body = co_await ToThread([path] { return ReadWholeFile(path); });
//
// The function runs on a BlockingPool thread (never on an event loop) while
// the awaiting task is suspended; when it returns, the task is woken on the
// worker that last ran it (through that worker's inbox) and gets the value,
// or the exception the function threw. If the runtime shuts down before a
// pool thread picks the call up, it is not run and RuntimeShutdownError is
// raised instead.
//
// Thread safety: `fn` runs on another thread; whatever it captures must be
// safe to use from there. Must be awaited inside a task of a Runtime.
#ifndef AWAITD_RUNTIME_TO_THREAD_H_
#define AWAITD_RUNTIME_TO_THREAD_H_

#include <coroutine>
#include <exception>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

#include "runtime/blocking_pool.h"
#include "runtime/errors.h"
#include "runtime/internal/context.h"
#include "runtime/internal/scheduler.h"

namespace awaitd::runtime {

template <typename F>
class [[nodiscard]] ToThreadAwaiter : private BlockingPool::Job {
 public:
  using Result = std::invoke_result_t<F&>;

  explicit ToThreadAwaiter(F fn) : fn_(std::move(fn)) {}
  ToThreadAwaiter(const ToThreadAwaiter&) = delete;
  ToThreadAwaiter& operator=(const ToThreadAwaiter&) = delete;

  bool await_ready() const noexcept { return false; }

  bool await_suspend(std::coroutine_handle<> h) {
    task_ = internal::RequireCurrentTask("ToThread");
    task_->set_resume_point(h);
    this->run = &ToThreadAwaiter::RunJob;
    this->complete = &ToThreadAwaiter::CompleteJob;
    if (!task_->scheduler()->blocking_pool().Submit(this)) {
      error_ = std::make_exception_ptr(RuntimeShutdownError());
      return false;
    }
    return true;
  }

  Result await_resume() {
    if (error_) std::rethrow_exception(error_);
    if constexpr (!std::is_void_v<Result>) return std::move(*value_);
  }

 private:
  static void RunJob(BlockingPool::Job* job) {
    auto* self = static_cast<ToThreadAwaiter*>(job);
    try {
      if constexpr (std::is_void_v<Result>) {
        std::invoke(self->fn_);
      } else {
        self->value_.emplace(std::invoke(self->fn_));
      }
    } catch (...) {
      self->error_ = std::current_exception();
    }
  }

  static void CompleteJob(BlockingPool::Job* job, bool cancelled) {
    auto* self = static_cast<ToThreadAwaiter*>(job);
    if (cancelled) self->error_ = std::make_exception_ptr(RuntimeShutdownError());
    // After Wake the task may resume and destroy *self at any moment.
    internal::TaskHeader* task = self->task_;
    task->Wake();
  }

  F fn_;
  std::optional<std::conditional_t<std::is_void_v<Result>, bool, Result>> value_;
  std::exception_ptr error_;
  internal::TaskHeader* task_ = nullptr;
};

template <typename F>
ToThreadAwaiter<std::decay_t<F>> ToThread(F&& fn) {
  return ToThreadAwaiter<std::decay_t<F>>(std::forward<F>(fn));
}

}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_TO_THREAD_H_
