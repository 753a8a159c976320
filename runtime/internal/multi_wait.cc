// MultiWait; see multi_wait.h.
#include "runtime/internal/multi_wait.h"

#include "runtime/errors.h"
#include "runtime/internal/context.h"
#include "runtime/internal/scheduler.h"
#include "runtime/internal/worker.h"
#include "runtime/task.h"

namespace awaitd::runtime::internal {

bool TaskFailed(TaskHeader* t, bool cancel_counts) noexcept {
  const std::uint64_t s = t->LoadState();
  if (s & TaskHeader::kCancelled) return cancel_counts;
  return t->promise() != nullptr && t->root() && t->promise()->has_exception();
}

MultiWait::MultiWait(std::vector<TaskHeader*> targets, Options options)
    : targets_(std::move(targets)),
      options_(options),
      callbacks_(new Callback[targets_.size()]),
      remaining_(targets_.size()),
      node_(this, options.forward_cancel) {
  for (std::size_t i = 0; i < targets_.size(); ++i) {
    callbacks_[i].owner = this;
    callbacks_[i].index = i;
    callbacks_[i].fn = &MultiWait::OnDone;
  }
  timer_.node = &node_;
  timer_.fire = &MultiWait::OnTimer;
}

MultiWait::~MultiWait() { Cleanup(); }

bool MultiWait::ConditionMet() const noexcept {
  std::size_t done = 0;
  for (TaskHeader* t : targets_) {
    if (!t->IsComplete()) continue;
    ++done;
    if (options_.until == Until::kFirstCompleted) return true;
    if (options_.until == Until::kFirstFailure &&
        TaskFailed(t, options_.cancel_counts_as_failure)) {
      return true;
    }
  }
  return done == targets_.size();
}

bool MultiWait::await_ready() noexcept {
  // A pre-check only: the callbacks decide for real once registered.
  if (!ConditionMet()) return false;
  // No callback will run, so none records the failure: the targets already
  // done finished in an order nobody saw, so the first failed one by index
  // stands for "first".
  for (std::size_t i = 0; i < targets_.size(); ++i) {
    if (targets_[i]->IsComplete() &&
        TaskFailed(targets_[i], options_.cancel_counts_as_failure)) {
      first_failure_.store(i, std::memory_order_relaxed);
      break;
    }
  }
  return true;
}

bool MultiWait::Account(std::size_t i) noexcept {
  if (callbacks_[i].done.exchange(true, std::memory_order_acq_rel))
    return false;
  const bool failed =
      TaskFailed(targets_[i], options_.cancel_counts_as_failure);
  if (failed) {
    std::size_t none = SIZE_MAX;
    first_failure_.compare_exchange_strong(none, i, std::memory_order_acq_rel);
  }
  const bool last = remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1;
  switch (options_.until) {
    case Until::kFirstCompleted:
      return true;
    case Until::kFirstFailure:
      return failed || last;
    case Until::kAllCompleted:
      return last;
  }
  return last;
}

bool MultiWait::await_suspend(std::coroutine_handle<> h) {
  task_ = RequireCurrentTask("MultiWait");
  task_->set_resume_point(h);
  node_.task = task_;
  bool met = false;
  for (std::size_t i = 0; i < targets_.size(); ++i) {
    if (!targets_[i]->AddDoneCallback(&callbacks_[i])) met |= Account(i);
  }
  if (met || targets_.empty()) {
    // Already satisfied while registering: nobody will fire the node.
    Cleanup();
    return false;
  }
  if (options_.deadline) {
    Scheduler* s = task_->scheduler();
    timer_.deadline = s->TickFor(*options_.deadline);
    timer_worker_ = Worker::Current();
    timer_worker_->InsertTimer(&timer_);
  }
  published_ = true;
  task_->SuspendOn(&node_);
  return true;
}

void MultiWait::await_resume() {
  const bool cancelled = published_ && task_->EndWait(&node_);
  Cleanup();
  if (cancelled) throw CancelledError(task_->CancelMessage());
}

std::optional<std::size_t> MultiWait::first_failure() const noexcept {
  const std::size_t i = first_failure_.load(std::memory_order_acquire);
  if (i == SIZE_MAX) return std::nullopt;
  return i;
}

void MultiWait::Cleanup() noexcept {
  for (std::size_t i = 0; i < targets_.size(); ++i) {
    if (!callbacks_[i].done.load(std::memory_order_acquire)) {
      targets_[i]->RemoveDoneCallback(&callbacks_[i]);
    }
  }
  if (timer_worker_ != nullptr) {
    timer_worker_->RemoveTimer(&timer_);
    timer_worker_ = nullptr;
  }
}

void MultiWait::OnDone(DoneCallback* cb, TaskHeader*) {
  auto* c = static_cast<Callback*>(cb);
  MultiWait* self = c->owner;
  if (self->Account(c->index) && self->node_.TryFire())
    self->node_.task->Wake();
}

void MultiWait::OnTimer(TimerEntry* e) {
  WaitNode* n = static_cast<WaitTimer*>(e)->node;
  MultiWait* self = static_cast<Node*>(n)->owner;
  if (n->TryFire()) {
    self->timed_out_ = true;  // read by the task only after the wake
    n->task->Wake();
  }
}

void MultiWait::OnCancel(WaitNode* n) {
  MultiWait* self = static_cast<Node*>(n)->owner;
  // The wait is over; the task's await_resume removes the callbacks and the
  // timer (both removals are safe from any thread).
  (void)self;
  n->task->Wake();
}

void MultiWait::Forward(WaitNode* n, std::vector<TaskHeader*>* out) {
  MultiWait* self = static_cast<Node*>(n)->owner;
  for (TaskHeader* t : self->targets_) {
    if (!t->IsComplete()) {
      t->Ref();
      out->push_back(t);
    }
  }
}

}  // namespace awaitd::runtime::internal
