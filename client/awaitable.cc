// The Co* functions: a callback-form call whose answer sets a runtime Event
// that the awaiting task waits on.
//
// Each Co* function is a coroutine, so (like every Task) it starts the call
// only when awaited. Its parameters live in its frame; the answer lives in
// a shared Pending<T>, which the gRPC callback keeps alive, so a task that
// stops waiting (cancelled, or destroyed at runtime shutdown) leaves the
// callback nothing dangling to write to.
#include "client/awaitable.h"

#include <exception>
#include <memory>
#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "runtime/errors.h"
#include "runtime/event.h"

namespace awaitd::client {

namespace {

// The answer of one call, handed from a gRPC thread to the awaiting task.
//
// Thread safety: the callback writes `result` and sets `ready` with `mu`
// held; the task takes `mu` after its wait ends (however it ends) before it
// reads `result` or finishes. That also keeps the task from finishing while
// the callback is still inside ready.Set(): Set wakes the task by pushing it
// onto a worker's queue and then nudging that worker, and a task that ran
// and finished in between could let its runtime be destroyed under the
// nudge.
template <typename T>
struct Pending {
  absl::Mutex mu;
  runtime::Event ready;
  std::optional<absl::StatusOr<T>> result ABSL_GUARDED_BY(mu);

  // The callback to give the call. It holds the state.
  static client::Callback<T> MakeCallback(std::shared_ptr<Pending> self) {
    return [self = std::move(self)](absl::StatusOr<T> r) {
      absl::MutexLock lock(&self->mu);
      self->result.emplace(std::move(r));
      self->ready.Set();
    };
  }
};

// Waits for the answer. Cancelling the awaiting task cancels the call (not
// the jobs) and raises CancelledError here.
template <typename T>
runtime::Task<absl::StatusOr<T>> Await(std::shared_ptr<Pending<T>> pending,
                                       CallHandle handle) {
  std::exception_ptr cancelled;
  try {
    co_await pending->ready.Wait();
  } catch (const runtime::CancelledError&) {
    cancelled = std::current_exception();
  }
  std::optional<absl::StatusOr<T>> result;
  {
    // Held only while a callback finishes Set() (see Pending).
    absl::MutexLock lock(&pending->mu);
    if (!cancelled) result = std::move(pending->result);
  }
  if (cancelled) {
    handle.Cancel();
    std::rethrow_exception(cancelled);
  }
  co_return *std::move(result);
}

}  // namespace

// Each function below names its callback before any co_await: GCC 12
// destroys a capturing lambda temporary inside a co_await expression twice.

runtime::Task<absl::StatusOr<std::vector<JobRef>>> CoSubmit(
    Client& client, std::vector<Spec> specs, CallOptions call) {
  auto pending = std::make_shared<Pending<std::vector<JobRef>>>();
  Callback<std::vector<JobRef>> done =
      Pending<std::vector<JobRef>>::MakeCallback(pending);
  CallHandle handle =
      client.SubmitAsync(std::move(specs), std::move(done), call);
  co_return co_await Await(std::move(pending), std::move(handle));
}

runtime::Task<absl::StatusOr<std::vector<v1::Job>>> CoGet(
    Client& client, std::vector<std::uint64_t> ids, CallOptions call) {
  auto pending = std::make_shared<Pending<std::vector<v1::Job>>>();
  Callback<std::vector<v1::Job>> done =
      Pending<std::vector<v1::Job>>::MakeCallback(pending);
  CallHandle handle = client.GetAsync(std::move(ids), std::move(done), call);
  co_return co_await Await(std::move(pending), std::move(handle));
}

runtime::Task<absl::StatusOr<std::vector<v1::CancelResult>>> CoCancel(
    Client& client, std::vector<std::uint64_t> ids, std::string message,
    CallOptions call) {
  auto pending = std::make_shared<Pending<std::vector<v1::CancelResult>>>();
  Callback<std::vector<v1::CancelResult>> done =
      Pending<std::vector<v1::CancelResult>>::MakeCallback(pending);
  CallHandle handle = client.CancelAsync(std::move(ids), std::move(message),
                                         std::move(done), call);
  co_return co_await Await(std::move(pending), std::move(handle));
}

runtime::Task<absl::StatusOr<WaitResult>> CoWait(Client& client,
                                                 std::vector<Input> inputs,
                                                 WaitOptions options,
                                                 CallOptions call) {
  auto pending = std::make_shared<Pending<WaitResult>>();
  Callback<WaitResult> done = Pending<WaitResult>::MakeCallback(pending);
  CallHandle handle = client.WaitAsync(std::move(inputs), std::move(options),
                                       std::move(done), call);
  co_return co_await Await(std::move(pending), std::move(handle));
}

runtime::Task<absl::StatusOr<GatherResult>> CoGather(Client& client,
                                                     std::vector<Input> inputs,
                                                     GatherOptions options,
                                                     CallOptions call) {
  auto pending = std::make_shared<Pending<GatherResult>>();
  Callback<GatherResult> done = Pending<GatherResult>::MakeCallback(pending);
  CallHandle handle = client.GatherAsync(std::move(inputs), std::move(options),
                                         std::move(done), call);
  co_return co_await Await(std::move(pending), std::move(handle));
}

runtime::Task<absl::StatusOr<v1::Job>> CoWaitFor(
    Client& client, Input input, std::optional<absl::Duration> timeout,
    CallOptions call) {
  auto pending = std::make_shared<Pending<v1::Job>>();
  Callback<v1::Job> done = Pending<v1::Job>::MakeCallback(pending);
  CallHandle handle =
      client.WaitForAsync(std::move(input), timeout, std::move(done), call);
  co_return co_await Await(std::move(pending), std::move(handle));
}

runtime::Task<absl::StatusOr<GroupResult>> CoRunGroup(Client& client,
                                                      std::vector<Spec> specs,
                                                      GroupOptions options,
                                                      CallOptions call) {
  auto pending = std::make_shared<Pending<GroupResult>>();
  Callback<GroupResult> done = Pending<GroupResult>::MakeCallback(pending);
  CallHandle handle = client.RunGroupAsync(std::move(specs), std::move(options),
                                           std::move(done), call);
  co_return co_await Await(std::move(pending), std::move(handle));
}

}  // namespace awaitd::client
