// ToThread: run blocking work on the blocking pool and await its result.
//
//   std::string body = co_await ToThread([path] { return ReadWholeFile(path);
//   }); co_await ToThread([](std::stop_token stop) { while
//   (!stop.stop_requested()) Poll(); });
//
// The function runs on a BlockingPool thread (never on an event loop) while
// the awaiting task is suspended; when it returns, the task is woken on the
// worker that last ran it (through that worker's inbox) and gets the value,
// or the exception the function threw. If the runtime shuts down before a
// pool thread picks the call up, it is not run and RuntimeShutdownError is
// raised instead; if it needed a new pool thread and none could be started,
// it is not run either and ThreadStartError is raised (the task and the
// runtime go on).
//
// Cancellation (asyncio.to_thread): cancelling the awaiting task ends the
// await at once with CancelledError. The thread cannot be interrupted: it
// runs on, its stop token (if `fn` takes a std::stop_token) reports
// stop_requested(), and its result is discarded.
//
// Thread safety: `fn` runs on another thread; whatever it captures must be
// safe to use from there, and must outlive the call even if the awaiting
// task is cancelled (capture by value). Must be awaited inside a task.
#ifndef AWAITD_RUNTIME_TO_THREAD_H_
#define AWAITD_RUNTIME_TO_THREAD_H_

#include <atomic>
#include <coroutine>
#include <exception>
#include <functional>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "runtime/blocking_pool.h"
#include "runtime/errors.h"
#include "runtime/internal/context.h"
#include "runtime/internal/scheduler.h"
#include "runtime/internal/wait_node.h"

namespace awaitd::runtime {

namespace internal {

template <typename F>
constexpr bool kTakesStopToken = std::is_invocable_v<F&, std::stop_token>;

template <typename F>
using ToThreadResult =
    typename std::conditional_t<kTakesStopToken<F>,
                                std::invoke_result<F&, std::stop_token>,
                                std::invoke_result<F&>>::type;

// Shared by the awaiting task and the pool thread; the last to let go frees
// it, so a cancelled awaiter may leave while the function still runs.
template <typename F>
struct ToThreadCall final : BlockingPool::Job {
  using Result = ToThreadResult<F>;

  explicit ToThreadCall(F f) : fn(std::move(f)), node(this) {}

  struct Node : WaitNode {
    explicit Node(ToThreadCall* o)
        : WaitNode(&ToThreadCall::OnCancel, nullptr), owner(o) {}
    ToThreadCall* owner;
  };

  // On a pool thread: the work (skipped if the awaiter already gave up).
  static void Run(BlockingPool::Job* job) {
    auto* self = static_cast<ToThreadCall*>(job);
    if (self->stop.stop_requested()) return;
    try {
      if constexpr (std::is_void_v<Result>) {
        Invoke(*self);
      } else {
        self->value.emplace(Invoke(*self));
      }
    } catch (...) {
      self->error = std::current_exception();
    }
  }

  // Then (pool lock held): publish and wake, unless a cancellation won.
  static void Complete(BlockingPool::Job* job, bool cancelled) {
    auto* self = static_cast<ToThreadCall*>(job);
    if (cancelled)
      self->error = std::make_exception_ptr(RuntimeShutdownError());
    if (self->node.TryFire()) self->node.task->Wake();
    self->Unref();
  }

  static decltype(auto) Invoke(ToThreadCall& c) {
    if constexpr (kTakesStopToken<F>) {
      return std::invoke(c.fn, c.stop.get_token());
    } else {
      return std::invoke(c.fn);
    }
  }

  static void OnCancel(WaitNode* n) {
    static_cast<Node*>(n)->owner->stop.request_stop();
    n->task->Wake();
  }

  void Unref() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  F fn;
  std::stop_source stop;
  std::optional<std::conditional_t<std::is_void_v<Result>, bool, Result>> value;
  std::exception_ptr error;
  Node node;
  std::atomic<int> refs{2};  // the awaiter and the pool
};

}  // namespace internal

template <typename F>
class [[nodiscard]] ToThreadAwaiter {
 public:
  using Result = internal::ToThreadResult<F>;

  explicit ToThreadAwaiter(F fn)
      : call_(new internal::ToThreadCall<F>(std::move(fn))) {}
  ToThreadAwaiter(const ToThreadAwaiter&) = delete;
  ToThreadAwaiter& operator=(const ToThreadAwaiter&) = delete;
  ~ToThreadAwaiter() {
    if (call_ == nullptr) return;
    if (!submitted_) call_->Unref();  // the pool never got its reference
    call_->Unref();
  }

  bool await_ready() const noexcept { return false; }

  bool await_suspend(std::coroutine_handle<> h) {
    task_ = internal::RequireCurrentTask("ToThread");
    task_->set_resume_point(h);
    call_->node.task = task_;
    call_->run = &internal::ToThreadCall<F>::Run;
    call_->complete = &internal::ToThreadCall<F>::Complete;
    if (BlockingPool::SubmitResult r =
            task_->scheduler()->blocking_pool().Submit(call_);
        !r) {
      call_->error = r.refusal == BlockingPool::Refusal::kNoThread
                         ? std::make_exception_ptr(ThreadStartError(
                               "can't start new thread (" + r.error + ")"))
                         : std::make_exception_ptr(RuntimeShutdownError());
      return false;
    }
    submitted_ = true;
    task_->SuspendOn(&call_->node);
    return true;
  }

  Result await_resume() {
    if (submitted_ && task_->EndWait(&call_->node)) {
      throw CancelledError(task_->CancelMessage());
    }
    // Move the outcome out of the shared call, so that whatever it holds is
    // destroyed on this thread, not by the pool thread's last reference (an
    // exception's own reference count is invisible to ThreadSanitizer).
    if (call_->error)
      std::rethrow_exception(std::exchange(call_->error, nullptr));
    if constexpr (!std::is_void_v<Result>) return std::move(*call_->value);
  }

 private:
  internal::ToThreadCall<F>* call_;
  internal::TaskHeader* task_ = nullptr;
  bool submitted_ = false;
};

template <typename F>
ToThreadAwaiter<std::decay_t<F>> ToThread(F&& fn) {
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
  // GCC 12 destroys a lambda temporary that appears inside a co_await
  // expression twice (reproduced with a plain coroutine, independent of this
  // library): a capture with a destructor (a shared_ptr, a string...) is then
  // released twice. Binding the callable to a local first avoids it.
  static_assert(
      std::is_lvalue_reference_v<F> ||
          std::is_trivially_destructible_v<std::decay_t<F>>,
      "GCC < 13: pass ToThread a named callable (auto fn = [..]{..}; "
      "co_await ToThread(fn);) when it captures objects with destructors");
#endif
  return ToThreadAwaiter<std::decay_t<F>>(std::forward<F>(fn));
}

}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_TO_THREAD_H_
