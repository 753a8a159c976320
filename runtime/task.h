// Task<T>: the lazy coroutine type every awaitd job and helper is written in.
//
// A Task<T> is a coroutine that starts suspended and runs only when awaited
// (`co_await std::move(task)`) or spawned on a Runtime (`Spawn(std::move(t))`).
// Awaiting transfers control to the child directly (symmetric transfer), and
// the child's completion transfers straight back to the awaiter, so chains of
// nested tasks use no stack depth and no scheduler round trip. (That relies
// on the compiler emitting the transfer as a tail call, which GCC and Clang do
// in optimized builds but not under ASan or TSan instrumentation: there, very
// deep chains of synchronously completing awaits can exhaust the stack.)
//
// An exception that escapes the coroutine body is stored in the task and
// rethrown at the point where it is awaited. Task<void> is supported.
//
// Example:
//
//   Task<int> Add(int a, int b) { co_return a + b; }
//   Task<int> Sum3() {
//     int x = co_await Add(1, 2);
//     co_return x + co_await Add(3, 4);
//   }
//
// Frames come from FrameAllocator: a spawn on the hot path does not call
// malloc.
//
// Thread safety: a Task object is externally synchronized (one owner). It is
// move-only; destroying an unstarted or finished task frees its frame.
// Destroying a task that is suspended mid-way is only done by the runtime
// (shutdown), never by user code while it runs.
//
// Lifetime: arguments of a coroutine are copied into its frame, but references
// and the captures of a lambda coroutine are not: a lambda coroutine must not
// outlive the lambda object (pass state as parameters instead).
#ifndef AWAITD_RUNTIME_TASK_H_
#define AWAITD_RUNTIME_TASK_H_

#include <coroutine>
#include <cstddef>
#include <exception>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

#include "runtime/internal/frame_allocator.h"

namespace awaitd::runtime {

template <typename T = void>
class Task;

namespace internal {

class TaskHeader;

// State shared by every Task promise: where to go when the body finishes, and
// the exception it ended with, if any.
class PromiseBase {
 public:
  static void* operator new(std::size_t size) {
    return FrameAllocator::Allocate(size);
  }
  static void operator delete(void* p, std::size_t size) noexcept {
    FrameAllocator::Deallocate(p, size);
  }

  std::suspend_always initial_suspend() noexcept { return {}; }

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <typename Promise>
    std::coroutine_handle<> await_suspend(
        std::coroutine_handle<Promise> h) noexcept {
      // A root task (spawned) has no continuation: control returns to the
      // worker, which sees the root done().
      std::coroutine_handle<> next = h.promise().continuation_;
      return next ? next : std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }

  void unhandled_exception() noexcept { exception_ = std::current_exception(); }

  void set_continuation(std::coroutine_handle<> c) noexcept {
    continuation_ = c;
  }
  bool has_exception() const noexcept { return exception_ != nullptr; }
  const std::exception_ptr& exception() const noexcept { return exception_; }
  void set_exception(std::exception_ptr e) noexcept {
    exception_ = std::move(e);
  }

 protected:
  void RethrowIfFailed() const {
    if (exception_) std::rethrow_exception(exception_);
  }

 private:
  std::coroutine_handle<> continuation_;
  std::exception_ptr exception_;
};

template <typename T>
class Promise final : public PromiseBase {
 public:
  Task<T> get_return_object() noexcept;

  template <typename U>
  requires std::is_convertible_v<U&&, T>
  void return_value(U&& value) noexcept(
      std::is_nothrow_constructible_v<T, U&&>) {
    value_.emplace(std::forward<U>(value));
  }

  // Moves the result out (or rethrows). Call once, after the body finished.
  T TakeResult() {
    RethrowIfFailed();
    return std::move(*value_);
  }

 private:
  std::optional<T> value_;
};

template <>
class Promise<void> final : public PromiseBase {
 public:
  Task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void TakeResult() { RethrowIfFailed(); }
};

}  // namespace internal

template <typename T>
class [[nodiscard]] Task {
 public:
  static_assert(!std::is_reference_v<T>,
                "Task<T&> is not supported; return a pointer");
  using promise_type = internal::Promise<T>;
  using Handle = std::coroutine_handle<promise_type>;
  using value_type = T;

  Task() noexcept = default;
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      Reset();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { Reset(); }

  // True if this object owns a coroutine.
  bool valid() const noexcept { return static_cast<bool>(handle_); }

  // Awaiting runs the task to completion and yields its result (or rethrows).
  // Only rvalues can be awaited: a task runs once.
  auto operator co_await() && noexcept {
    struct Awaiter {
      Handle child;
      bool await_ready() const noexcept { return false; }
      std::coroutine_handle<> await_suspend(
          std::coroutine_handle<> parent) noexcept {
        child.promise().set_continuation(parent);
        return child;  // symmetric transfer: no stack growth
      }
      T await_resume() { return child.promise().TakeResult(); }
    };
    return Awaiter{handle_};
  }

  // Gives up ownership of the coroutine (used by the runtime when spawning).
  Handle Release() noexcept { return std::exchange(handle_, {}); }

 private:
  friend class internal::Promise<T>;
  explicit Task(Handle h) noexcept : handle_(h) {}

  void Reset() noexcept {
    if (handle_) std::exchange(handle_, {}).destroy();
  }

  Handle handle_;
};

namespace internal {

template <typename T>
Task<T> Promise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Task<void> Promise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}

}  // namespace internal
}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_TASK_H_
