// asyncio's combinators over spawned tasks: Gather, Wait, WaitFor,
// AsCompleted, Shield and TaskGroup.
//
// They follow ../shared/ASYNCIO_SEMANTICS.md section 1 to the letter:
//
//   std::vector<JoinHandle<long>> hs;
//   for (long n : {2, 3, 4}) hs.push_back(Spawn(Factorial(n)));
//   std::vector<long> r = co_await Gather(std::move(hs));     // input order
//
//   auto [done, pending] = co_await Wait(hs, ReturnWhen::kFirstCompleted);
//   long v = co_await WaitFor(h, std::chrono::seconds(1));   // TimeoutError
//
//   AsCompleted ac(hs, std::chrono::seconds(5));
//   while (auto i = co_await ac.Next()) Use(co_await hs[*i]);
//
//   TaskGroup g;
//   g.Spawn(A()); g.Spawn(B());
//   co_await g.Join();     // first failure cancels the rest; ExceptionGroup
//
// Cancellation of the awaiting task: Gather, WaitFor and TaskGroup::Join
// cancel the tasks they wait for and keep waiting until those finished, then
// raise CancelledError (asyncio); Wait and AsCompleted raise CancelledError
// at once and leave the tasks alone; Shield raises at once and leaves its task
// alone.
//
// Lifetimes: functions taking `std::vector<JoinHandle<T>>&` or
// `JoinHandle<T>&` keep the reference across suspensions: await them where
// the handles live (co_await Wait(hs, ...) with `hs` a local).
//
// Thread safety: these are awaited inside tasks; each call is used by one
// task.
#ifndef AWAITD_RUNTIME_COMBINATORS_H_
#define AWAITD_RUNTIME_COMBINATORS_H_

#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "runtime/errors.h"
#include "runtime/internal/completion_queue.h"
#include "runtime/internal/multi_wait.h"
#include "runtime/join_handle.h"
#include "runtime/runtime.h"
#include "runtime/task.h"

namespace awaitd::runtime {

// A finished task's result or exception: the items of Gather with
// kReturnExceptions (asyncio's return_exceptions=True).
template <typename T>
class Outcome {
 public:
  explicit Outcome(T value) : value_(std::move(value)) {}
  explicit Outcome(std::exception_ptr error) : error_(std::move(error)) {}

  bool ok() const noexcept { return error_ == nullptr; }
  // True if the exception is a CancelledError.
  bool cancelled() const noexcept { return IsCancelled(error_); }
  const std::exception_ptr& error() const noexcept { return error_; }
  // The value, or rethrows the exception.
  T& value() & {
    if (error_) std::rethrow_exception(error_);
    return *value_;
  }
  T value() && {
    if (error_) std::rethrow_exception(error_);
    return std::move(*value_);
  }

  static bool IsCancelled(const std::exception_ptr& e) noexcept {
    return internal::IsCancelledError(e);
  }

 private:
  std::optional<T> value_;
  std::exception_ptr error_;
};

template <>
class Outcome<void> {
 public:
  Outcome() = default;
  explicit Outcome(std::exception_ptr error) : error_(std::move(error)) {}
  bool ok() const noexcept { return error_ == nullptr; }
  bool cancelled() const noexcept { return Outcome<int>::IsCancelled(error_); }
  const std::exception_ptr& error() const noexcept { return error_; }
  void value() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::exception_ptr error_;
};

struct ReturnExceptionsTag {};
// Pass to Gather for asyncio's return_exceptions=True.
inline constexpr ReturnExceptionsTag kReturnExceptions{};

enum class ReturnWhen { kFirstCompleted, kFirstException, kAllCompleted };

// Indices into the handles given to Wait.
struct WaitResult {
  std::vector<std::size_t> done;
  std::vector<std::size_t> pending;
};

namespace internal {

template <typename T>
std::vector<TaskHeader*> Headers(const std::vector<JoinHandle<T>>& hs) {
  std::vector<TaskHeader*> out;
  out.reserve(hs.size());
  for (const auto& h : hs) out.push_back(h.header());
  return out;
}

inline std::optional<std::chrono::steady_clock::time_point> DeadlineAfter(
    std::optional<std::chrono::nanoseconds> timeout) {
  if (!timeout) return std::nullopt;
  return DeadlineIn(*timeout);
}

// The waiting part of gather: until every target finished or, unless
// `return_exceptions`, the first one failed (a cancelled one counts).
// Returns the index of that first failure. If the awaiting task is cancelled
// meanwhile, the targets are cancelled, all are waited for, and
// CancelledError is raised.
Task<std::optional<std::size_t>> GatherWait(std::vector<TaskHeader*> targets,
                                            bool return_exceptions);

}  // namespace internal

// asyncio.gather(*handles): the results in input order. The first exception
// (in completion order; a cancelled child counts as raising CancelledError)
// propagates at once and the other tasks keep running. If the awaiting task
// is cancelled, every child not yet done is cancelled and CancelledError is
// raised once they all finished.
template <typename T>
Task<std::vector<T>> Gather(std::vector<JoinHandle<T>> handles) {
  if (std::optional<std::size_t> i =
          co_await internal::GatherWait(internal::Headers(handles), false)) {
    co_await handles[*i];  // rethrows its exception
  }
  std::vector<T> results;
  results.reserve(handles.size());
  for (auto& h : handles) results.push_back(co_await h);
  co_return results;
}

inline Task<void> Gather(std::vector<JoinHandle<void>> handles) {
  if (std::optional<std::size_t> i =
          co_await internal::GatherWait(internal::Headers(handles), false)) {
    co_await handles[*i];  // rethrows its exception
  }
  for (auto& h : handles) co_await h;
}

// asyncio.gather(*handles, return_exceptions=True): every outcome, in input
// order, exceptions (including CancelledError) in place of results.
template <typename T>
Task<std::vector<Outcome<T>>> Gather(std::vector<JoinHandle<T>> handles,
                                     ReturnExceptionsTag) {
  co_await internal::GatherWait(internal::Headers(handles), true);
  std::vector<Outcome<T>> out;
  out.reserve(handles.size());
  for (auto& h : handles) {
    try {
      if constexpr (std::is_void_v<T>) {
        co_await h;
        out.emplace_back();
      } else {
        out.emplace_back(co_await h);
      }
    } catch (...) {
      out.emplace_back(std::current_exception());
    }
  }
  co_return out;
}

// asyncio.wait(handles, timeout, return_when): (done, pending) as indices.
// Never raises TimeoutError and never cancels anything. kFirstException
// returns when a task raises (a cancelled task does not count), or when all
// completed if none does.
template <typename T>
Task<WaitResult> Wait(
    std::vector<JoinHandle<T>>& handles,
    ReturnWhen return_when = ReturnWhen::kAllCompleted,
    std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
  using Until = internal::MultiWait::Until;
  const Until until =
      return_when == ReturnWhen::kFirstCompleted   ? Until::kFirstCompleted
      : return_when == ReturnWhen::kFirstException ? Until::kFirstFailure
                                                   : Until::kAllCompleted;
  internal::MultiWait w(
      internal::Headers(handles),
      {.until = until, .deadline = internal::DeadlineAfter(timeout)});
  co_await w;
  WaitResult r;
  for (std::size_t i = 0; i < handles.size(); ++i) {
    (handles[i].IsFinished() ? r.done : r.pending).push_back(i);
  }
  co_return r;
}

// asyncio.wait_for(handle, timeout): the result; on timeout the task is
// cancelled, waited for until it finished, and TimeoutError is raised (unless
// it finished with a result after all). Cancelling the awaiter cancels the
// task too. No timeout waits forever.
template <typename T>
Task<T> WaitFor(JoinHandle<T>& handle,
                std::optional<std::chrono::nanoseconds> timeout) {
  if (timeout) {
    internal::MultiWait w({handle.header()},
                          {.until = internal::MultiWait::Until::kAllCompleted,
                           .forward_cancel = true,
                           .deadline = internal::DeadlineAfter(timeout)});
    co_await w;
    if (w.timed_out()) {
      handle.Cancel();
      internal::MultiWait rest(
          {handle.header()},
          {.until = internal::MultiWait::Until::kAllCompleted,
           .forward_cancel = true});
      co_await rest;
      if (handle.Cancelled()) throw TimeoutError("wait_for timed out");
    }
  }
  co_return co_await handle;
}

// asyncio.shield(handle): awaits the task's result; if the awaiting task is
// cancelled, CancelledError is raised there at once and the task runs on.
template <typename T>
auto Shield(JoinHandle<T>& handle) {
  return handle.Shielded();
}

// asyncio.as_completed(handles, timeout): indices of `handles` in the order
// the tasks finish. Next() yields nullopt after the last one; if the timeout
// passes first it raises TimeoutError and nothing is cancelled.
class AsCompleted {
 public:
  template <typename T>
  explicit AsCompleted(
      const std::vector<JoinHandle<T>>& handles,
      std::optional<std::chrono::nanoseconds> timeout = std::nullopt)
      : queue_(std::make_unique<internal::CompletionQueue>(
            internal::Headers(handles), internal::DeadlineAfter(timeout))) {}

  internal::CompletionQueue::NextAwaiter Next() { return queue_->Next(); }
  std::size_t size() const { return queue_->size(); }

 private:
  std::unique_ptr<internal::CompletionQueue> queue_;
};

// Every failure of a TaskGroup, raised together (asyncio's ExceptionGroup).
class ExceptionGroup : public std::exception {
 public:
  explicit ExceptionGroup(std::vector<std::exception_ptr> errors);
  const std::vector<std::exception_ptr>& exceptions() const noexcept {
    return errors_;
  }
  const char* what() const noexcept override { return what_.c_str(); }

 private:
  std::vector<std::exception_ptr> errors_;
  std::string what_;
};

// asyncio.TaskGroup: structured concurrency. Tasks spawned into the group are
// all awaited by Join(). The first task that fails with an exception other
// than CancelledError cancels every other task of the group (at once, even
// before Join is reached) and no more tasks are accepted (a later Spawn is
// cancelled immediately); Join then raises an ExceptionGroup with every
// failure. Cancelling the task that awaits Join cancels the group's tasks and
// raises CancelledError once they finished.
//
// Unlike asyncio, a failure does not cancel the body of the task that owns
// the group (C++ has no `async with` exit to catch it in): that task notices
// at Join(). Always await Join(); a group destroyed without it cancels its
// remaining tasks and detaches them. Construct it inside a task.
//
// Thread safety: owned by one task. The group's bookkeeping shared with
// completion callbacks is internally synchronized.
class TaskGroup {
 public:
  TaskGroup();
  ~TaskGroup();
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  // Spawns `task` into the group (on the calling task's runtime). The
  // returned handle may be awaited or dropped; the group tracks the task
  // either way.
  template <typename T>
  [[nodiscard(
      "the group tracks the task; drop the handle with Detach() or "
      "(void)")]] JoinHandle<T>
  Spawn(Task<T> task) {
    JoinHandle<T> h = runtime::Spawn(std::move(task));
    Add(h.header());
    return h;
  }

  // Waits for every task; see the class comment.
  Task<void> Join();

  std::size_t size() const;

 private:
  struct State;
  void Add(internal::TaskHeader* t);
  std::shared_ptr<State> state_;
};

}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_COMBINATORS_H_
