// Sleep and Yield awaiters.
#include "runtime/time.h"

#include "runtime/internal/context.h"
#include "runtime/internal/scheduler.h"
#include "runtime/internal/worker.h"

namespace awaitd::runtime {

SleepAwaiter::~SleepAwaiter() {
  if (timer_.linked) worker_->timers().Remove(&timer_);
}

void SleepAwaiter::await_suspend(std::coroutine_handle<> h) {
  internal::TaskHeader* task = internal::RequireCurrentTask("Sleep");
  task->set_resume_point(h);
  worker_ = internal::Worker::Current();
  internal::Scheduler* scheduler = task->scheduler();
  const std::uint64_t tick = scheduler->TickFor(deadline_);
  if (tick <= scheduler->NowTick()) {
    task->Wake();  // already due: behave as Yield
    return;
  }
  timer_.task = task;
  timer_.deadline = tick;
  timer_.fire = &SleepAwaiter::Fire;
  worker_->timers().Insert(&timer_);
}

void SleepAwaiter::Fire(internal::TimerEntry* e) {
  static_cast<internal::TaskTimer*>(e)->task->Wake();
}

void YieldAwaiter::await_suspend(std::coroutine_handle<> h) {
  internal::TaskHeader* t = internal::RequireCurrentTask("Yield");
  t->set_resume_point(h);
  // The task is running, so this only sets NOTIFIED; the worker requeues it
  // at the back of its local queue when this run ends.
  t->Wake();
}

}  // namespace awaitd::runtime
