// Sleep and Yield awaiters.
#include "runtime/time.h"

#include "runtime/errors.h"
#include "runtime/internal/context.h"
#include "runtime/internal/scheduler.h"
#include "runtime/internal/worker.h"

namespace awaitd::runtime {

namespace internal {
std::chrono::steady_clock::time_point DeadlineIn(
    std::chrono::nanoseconds d) noexcept {
  const auto now = std::chrono::steady_clock::now();
  const auto max_ahead =
      std::chrono::nanoseconds(std::chrono::hours(24 * 365 * 100));
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
  if (task != nullptr && worker_ != nullptr && linked)
    worker_->RemoveTimer(this);
}

void SleepAwaiter::await_suspend(std::coroutine_handle<> h) {
  internal::TaskHeader* t = internal::RequireCurrentTask("Sleep");
  t->set_resume_point(h);
  task = t;  // the wait node's task; non-null marks the awaiter as used
  const auto deadline = deadline_;
  if (deadline <= std::chrono::steady_clock::now()) {
    worker_ = nullptr;  // no timer: a yield
    t->Wake();          // already due (Sleep(0) included): behave as Yield
    return;
  }
  worker_ = internal::Worker::Current();
  this->deadline = t->scheduler()->TickFor(deadline);
  fire = &SleepAwaiter::Fire;
  worker_->InsertTimer(this);
  t->SuspendOn(this);
}

void SleepAwaiter::await_resume() {
  const bool cancelled =
      worker_ != nullptr ? task->EndWait(this) : task->TakePendingCancel();
  if (cancelled) throw CancelledError(task->CancelMessage());
}

void SleepAwaiter::Fire(internal::TimerEntry* e) {
  auto* self = static_cast<SleepAwaiter*>(e);
  if (self->TryFire()) self->task->Wake();
}

void SleepAwaiter::OnCancel(internal::WaitNode* n) {
  auto* self = static_cast<SleepAwaiter*>(n);
  self->worker_->RemoveTimer(self);
  self->task->Wake();
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
