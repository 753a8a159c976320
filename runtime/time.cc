// Sleep and Yield awaiters.
#include "runtime/time.h"

#include "runtime/errors.h"
#include "runtime/internal/context.h"
#include "runtime/internal/scheduler.h"
#include "runtime/internal/worker.h"

namespace awaitd::runtime {

namespace internal {
std::chrono::steady_clock::time_point DeadlineIn(std::chrono::nanoseconds d) noexcept {
  const auto now = std::chrono::steady_clock::now();
  const auto max_ahead = std::chrono::nanoseconds(std::chrono::hours(24 * 365 * 100));
  if (d <= d.zero()) return now;
  if (TaskHeader* t = CurrentTaskHeader()) {
    const double scale = t->scheduler()->options().time_scale;
    if (scale != 1.0 && scale > 0) {
      const double scaled = static_cast<double>(d.count()) * scale;
      d = scaled >= static_cast<double>(max_ahead.count())
              ? max_ahead
              : std::chrono::nanoseconds(static_cast<std::int64_t>(scaled));
    }
  }
  return now + std::min(d, max_ahead);
}
}  // namespace internal

SleepAwaiter::~SleepAwaiter() {
  // Linked only if the frame is destroyed mid-sleep (runtime shutdown).
  if (published_ && timer_.linked) worker_->RemoveTimer(&timer_);
}

void SleepAwaiter::await_suspend(std::coroutine_handle<> h) {
  task_ = internal::RequireCurrentTask("Sleep");
  task_->set_resume_point(h);
  internal::Scheduler* scheduler = task_->scheduler();
  const std::uint64_t tick = scheduler->TickFor(deadline_);
  if (tick <= scheduler->NowTick()) {
    task_->Wake();  // already due: behave as Yield
    return;
  }
  worker_ = internal::Worker::Current();
  timer_.node = &node_;
  timer_.deadline = tick;
  timer_.fire = &SleepAwaiter::Fire;
  published_ = true;
  worker_->InsertTimer(&timer_);
  task_->SuspendOn(&node_);
}

void SleepAwaiter::await_resume() {
  const bool cancelled = published_ ? task_->EndWait(&node_) : task_->TakePendingCancel();
  if (cancelled) throw CancelledError(task_->CancelMessage());
}

void SleepAwaiter::Fire(internal::TimerEntry* e) {
  internal::WaitNode* node = static_cast<internal::WaitTimer*>(e)->node;
  if (node->TryFire()) node->task->Wake();
}

void SleepAwaiter::OnCancel(internal::WaitNode* n) {
  SleepAwaiter* self = static_cast<Node*>(n)->owner;
  self->worker_->RemoveTimer(&self->timer_);
  n->task->Wake();
}

void YieldAwaiter::await_suspend(std::coroutine_handle<> h) {
  task_ = internal::RequireCurrentTask("Yield");
  task_->set_resume_point(h);
  // The task is running, so this only sets NOTIFIED; the worker requeues it
  // at the back of its local queue when this run ends.
  task_->Wake();
}

void YieldAwaiter::await_resume() {
  if (task_->TakePendingCancel()) throw CancelledError(task_->CancelMessage());
}

}  // namespace awaitd::runtime
