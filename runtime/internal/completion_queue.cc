// CompletionQueue; see completion_queue.h.
#include "runtime/internal/completion_queue.h"

#include "runtime/errors.h"
#include "runtime/internal/context.h"
#include "runtime/internal/scheduler.h"
#include "runtime/internal/worker.h"

namespace awaitd::runtime::internal {

CompletionQueue::CompletionQueue(
    std::vector<TaskHeader*> targets,
    std::optional<std::chrono::steady_clock::time_point> deadline)
    : targets_(std::move(targets)),
      deadline_(deadline),
      callbacks_(new Callback[targets_.size()]) {
  for (std::size_t i = 0; i < targets_.size(); ++i) {
    Callback& c = callbacks_[i];
    c.owner = this;
    c.index = i;
    c.fn = &CompletionQueue::OnDone;
    if (!targets_[i]->AddDoneCallback(&c)) {
      c.done.store(true, std::memory_order_relaxed);
      MutexLock lock(&mu_);
      ready_.push_back(i);
    }
  }
}

CompletionQueue::~CompletionQueue() {
  for (std::size_t i = 0; i < targets_.size(); ++i) {
    if (!callbacks_[i].done.load(std::memory_order_acquire)) {
      targets_[i]->RemoveDoneCallback(&callbacks_[i]);
    }
  }
}

void CompletionQueue::OnDone(DoneCallback* cb, TaskHeader*) {
  auto* c = static_cast<Callback*>(cb);
  CompletionQueue* self = c->owner;
  TaskHeader* wake = nullptr;
  {
    MutexLock lock(&self->mu_);
    self->ready_.push_back(c->index);
    WaitNode* n = std::exchange(self->armed_, nullptr);
    // Under mu_: the awaiter cannot finish (and free the node) meanwhile.
    if (n != nullptr && n->TryFire()) wake = n->task;
  }
  // The last touch of *c and *self: a destructor that sees `done` frees
  // both without waiting (one that does not waits for this callback in
  // RemoveDoneCallback). Set first, it let ~CompletionQueue free the queue
  // while this still locked its mutex (TSan: heap-use-after-free).
  c->done.store(true, std::memory_order_release);
  if (wake != nullptr) wake->Wake();
}

std::optional<std::size_t> CompletionQueue::PopLocked() {
  if (ready_.empty()) return std::nullopt;
  std::size_t i = ready_.front();
  ready_.pop_front();
  ++returned_;
  return i;
}

CompletionQueue::NextAwaiter::~NextAwaiter() { Disarm(); }

bool CompletionQueue::NextAwaiter::await_ready() {
  MutexLock lock(&q_->mu_);
  return !q_->ready_.empty() || q_->returned_ == q_->targets_.size();
}

bool CompletionQueue::NextAwaiter::await_suspend(std::coroutine_handle<> h) {
  task_ = RequireCurrentTask("AsCompleted");
  task_->set_resume_point(h);
  if (q_->deadline_ && std::chrono::steady_clock::now() >= *q_->deadline_) {
    timed_out_ = true;
    return false;
  }
  {
    MutexLock lock(&q_->mu_);
    if (!q_->ready_.empty()) return false;
    node_.task = task_;
    q_->armed_ = &node_;
  }
  if (q_->deadline_) {
    timer_.node = &node_;
    timer_.fire = &NextAwaiter::OnTimer;
    timer_.deadline = task_->scheduler()->TickFor(*q_->deadline_);
    timer_worker_ = Worker::Current();
    timer_worker_->InsertTimer(&timer_);
  }
  published_ = true;
  task_->SuspendOn(&node_);
  return true;
}

void CompletionQueue::NextAwaiter::Disarm() {
  {
    MutexLock lock(&q_->mu_);
    if (q_->armed_ == &node_) q_->armed_ = nullptr;
  }
  if (timer_worker_ != nullptr) {
    timer_worker_->RemoveTimer(&timer_);
    timer_worker_ = nullptr;
  }
}

std::optional<std::size_t> CompletionQueue::NextAwaiter::await_resume() {
  Disarm();
  if (published_ && task_->EndWait(&node_))
    throw CancelledError(task_->CancelMessage());
  MutexLock lock(&q_->mu_);
  // A result that is already in beats a deadline that passed meanwhile.
  if (std::optional<std::size_t> i = q_->PopLocked()) return i;
  if (q_->returned_ == q_->targets_.size()) return std::nullopt;
  if (timed_out_ ||
      (q_->deadline_ && std::chrono::steady_clock::now() >= *q_->deadline_)) {
    throw TimeoutError("as_completed timed out");
  }
  return std::nullopt;  // unreachable: woken only by a result or the deadline
}

void CompletionQueue::NextAwaiter::OnCancel(WaitNode* n) {
  NextAwaiter* self = static_cast<Node*>(n)->owner;
  self->Disarm();
  n->task->Wake();
}

void CompletionQueue::NextAwaiter::OnTimer(TimerEntry* e) {
  WaitNode* n = static_cast<WaitTimer*>(e)->node;
  NextAwaiter* self = static_cast<Node*>(n)->owner;
  if (n->TryFire()) {
    self->timed_out_ = true;
    n->task->Wake();
  }
}

}  // namespace awaitd::runtime::internal
