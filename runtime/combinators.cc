// Gather's cancellation tail, ExceptionGroup and TaskGroup.
#include "runtime/combinators.h"

#include <deque>

#include "absl/strings/str_cat.h"
#include "runtime/internal/mutex.h"
#include "runtime/internal/scheduler.h"
#include "runtime/internal/worker.h"

namespace awaitd::runtime {

namespace internal {

Task<std::optional<std::size_t>> GatherWait(std::vector<TaskHeader*> targets,
                                            bool return_exceptions) {
  MultiWait w(targets,
              {.until = return_exceptions ? MultiWait::Until::kAllCompleted
                                          : MultiWait::Until::kFirstFailure,
               .cancel_counts_as_failure = true,
               .forward_cancel = true});
  co_await w;
  if (w.forwarded()) {
    // asyncio: a cancelled gather cancels its children (done by forwarding),
    // waits for all of them, then raises CancelledError.
    MultiWait rest(
        std::move(targets),
        {.until = MultiWait::Until::kAllCompleted, .forward_cancel = true});
    co_await rest;
    throw CancelledError(RequireCurrentTask("Gather")->CancelMessage());
  }
  co_return return_exceptions ? std::nullopt : w.first_failure();
}

}  // namespace internal

ExceptionGroup::ExceptionGroup(std::vector<std::exception_ptr> errors)
    : errors_(std::move(errors)) {
  what_ = absl::StrCat("unhandled errors in a TaskGroup (", errors_.size(),
                       " sub-exception", errors_.size() == 1 ? "" : "s", ")");
  for (const auto& e : errors_) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      absl::StrAppend(&what_, "; ", x.what());
    } catch (...) {
      absl::StrAppend(&what_, "; unknown exception");
    }
  }
}

// Shared with completion callbacks and deferred aborts, hence reference
// counted: it lives until the group and every pending abort let go.
struct TaskGroup::State : std::enable_shared_from_this<TaskGroup::State> {
  struct Callback : internal::DoneCallback {
    State* owner = nullptr;
  };

  internal::Scheduler* scheduler = nullptr;
  internal::Mutex mu;
  // Each entry holds a reference on the task.
  std::vector<internal::TaskHeader*> tasks ABSL_GUARDED_BY(mu);
  std::deque<Callback> callbacks ABSL_GUARDED_BY(mu);  // stable addresses
  std::atomic<bool> aborted{false};

  std::vector<internal::TaskHeader*> Snapshot(bool pending_only) {
    internal::MutexLock lock(&mu);
    std::vector<internal::TaskHeader*> out;
    for (internal::TaskHeader* t : tasks) {
      if (!pending_only || !t->IsComplete()) out.push_back(t);
    }
    return out;
  }

  // Cancels every task not done. No locks held by the caller.
  void CancelAll() {
    std::vector<internal::TaskHeader*> all;
    {
      internal::MutexLock lock(&mu);
      for (internal::TaskHeader* t : tasks) {
        t->Ref();
        all.push_back(t);
      }
    }
    for (internal::TaskHeader* t : all) {
      t->RequestCancel("");
      t->Unref();
    }
  }

  static Task<void> Abort(std::shared_ptr<State> state) {
    state->CancelAll();
    co_return;
  }

  // The abort runs as a task queued behind the tasks already ready (asyncio
  // schedules it with call_soon): a sibling that is about to raise on its
  // own does so, and its failure is reported, before it is cancelled.
  static void DeferredAbort(void* arg) {
    auto* keep = static_cast<std::shared_ptr<State>*>(arg);
    internal::Scheduler* scheduler = (*keep)->scheduler;
    auto h = Abort(std::move(*keep)).Release();
    delete keep;
    scheduler->Spawn(h, &h.promise(), /*join_interest=*/false);
  }

  // Runs under the finished task's lock: it may not cancel tasks itself, so
  // the abort is deferred to when the worker has released it.
  static void OnChildDone(internal::DoneCallback* cb,
                          internal::TaskHeader* done) {
    State* self = static_cast<Callback*>(cb)->owner;
    if (!internal::TaskFailed(done, /*cancel_counts=*/false)) return;
    if (self->aborted.exchange(true, std::memory_order_acq_rel)) return;
    internal::Worker::Current()->Defer(
        &State::DeferredAbort,
        new std::shared_ptr<State>(self->shared_from_this()));
  }
};

TaskGroup::TaskGroup() : state_(std::make_shared<State>()) {
  state_->scheduler = internal::RequireCurrentTask("TaskGroup")->scheduler();
}

TaskGroup::~TaskGroup() {
  std::vector<internal::TaskHeader*> tasks;
  {
    internal::MutexLock lock(&state_->mu);
    tasks.swap(state_->tasks);
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      tasks[i]->RemoveDoneCallback(&state_->callbacks[i]);
    }
  }
  for (internal::TaskHeader* t : tasks) {
    t->RequestCancel("task group destroyed");  // false if it already finished
    t->Unref();
  }
}

std::size_t TaskGroup::size() const {
  internal::MutexLock lock(&state_->mu);
  return state_->tasks.size();
}

void TaskGroup::Add(internal::TaskHeader* t) {
  t->Ref();
  t->MarkObserved();
  bool failed_already = false;
  {
    internal::MutexLock lock(&state_->mu);
    state_->tasks.push_back(t);
    State::Callback& cb = state_->callbacks.emplace_back();
    cb.owner = state_.get();
    cb.fn = &State::OnChildDone;
    if (!t->AddDoneCallback(&cb))
      failed_already = internal::TaskFailed(t, false);
  }
  if (failed_already && !state_->aborted.exchange(true)) {
    state_->CancelAll();
  } else if (state_->aborted.load(std::memory_order_acquire)) {
    t->RequestCancel("task group is aborting");  // no new work after a failure
  }
}

Task<void> TaskGroup::Join() {
  std::shared_ptr<State> st = state_;
  bool cancelled = false;
  // Loop: tasks may add more tasks to the group while it is being joined.
  for (;;) {
    std::vector<internal::TaskHeader*> pending =
        st->Snapshot(/*pending_only=*/true);
    if (pending.empty()) break;
    internal::MultiWait w(std::move(pending),
                          {.until = internal::MultiWait::Until::kAllCompleted,
                           .forward_cancel = true});
    co_await w;
    cancelled |= w.forwarded();
  }
  std::vector<std::exception_ptr> errors;
  for (internal::TaskHeader* t : st->Snapshot(/*pending_only=*/false)) {
    if (t->root() && internal::TaskFailed(t, /*cancel_counts=*/false)) {
      errors.push_back(t->promise()->exception());
    }
  }
  if (!errors.empty()) throw ExceptionGroup(std::move(errors));
  if (cancelled)
    throw CancelledError(
        internal::RequireCurrentTask("TaskGroup")->CancelMessage());
}

}  // namespace awaitd::runtime
