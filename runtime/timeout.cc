// TimeoutScope: the timer of WithTimeout and its handshake with the task.
#include "runtime/timeout.h"

#include <atomic>
#include <thread>

#include "runtime/internal/context.h"
#include "runtime/internal/scheduler.h"
#include "runtime/internal/timer_wheel.h"
#include "runtime/internal/worker.h"
#include "runtime/time.h"

namespace awaitd::runtime::internal {

// Shared by the scope (in the task's frame) and the timer's worker, which may
// still be delivering after the scope ended: reference counted.
//
// Phases: kArmed -> kFired (the timer expired, delivery deferred out of the
// wheel's lock) -> kDelivering -> kDelivered (the task was cancelled); or
// kArmed/kFired -> kClosed (the scope ended first; nothing is delivered).
struct TimeoutScope::State : TimerEntry {
  enum Phase : int { kArmed, kFired, kDelivering, kDelivered, kClosed };

  std::atomic<int> phase{kArmed};
  std::atomic<int> refs{1};
  TaskHeader* task = nullptr;  // holds a reference
  Worker* worker = nullptr;

  void Unref() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      task->Unref();
      delete this;
    }
  }

  // Runs on the timer's worker with the wheel locked: only hand off.
  static void Fire(TimerEntry* e) {
    auto* s = static_cast<State*>(e);
    int expected = kArmed;
    if (!s->phase.compare_exchange_strong(expected, kFired,
                                          std::memory_order_acq_rel))
      return;
    s->refs.fetch_add(1, std::memory_order_relaxed);
    Worker::Current()->Defer(&State::Deliver, s);
  }

  // Runs on the same worker once the wheel's lock is released.
  static void Deliver(void* arg) {
    auto* s = static_cast<State*>(arg);
    int expected = kFired;
    if (s->phase.compare_exchange_strong(expected, kDelivering,
                                         std::memory_order_acq_rel)) {
      s->task->RequestCancel("timeout");
      s->phase.store(kDelivered, std::memory_order_release);
    }
    s->Unref();
  }
};

TimeoutScope::TimeoutScope(std::chrono::nanoseconds timeout)
    : state_(new State()) {
  TaskHeader* t = RequireCurrentTask("WithTimeout");
  t->Ref();
  state_->task = t;
  state_->worker = Worker::Current();
  state_->deadline = t->scheduler()->TickFor(DeadlineIn(timeout));
  state_->fire = &State::Fire;
  state_->worker->InsertTimer(state_);
}

TimeoutScope::~TimeoutScope() {
  Close(false);
  state_->Unref();
}

bool TimeoutScope::Close(bool body_raised_cancelled) {
  for (;;) {
    int p = state_->phase.load(std::memory_order_acquire);
    switch (p) {
      case State::kArmed:
      case State::kFired:
        if (state_->phase.compare_exchange_weak(p, State::kClosed,
                                                std::memory_order_acq_rel)) {
          if (p == State::kArmed) state_->worker->RemoveTimer(state_);
          return false;
        }
        continue;
      case State::kDelivering:
        std::this_thread::yield();  // the other worker is inside RequestCancel
        continue;
      case State::kDelivered:
        state_->phase.store(State::kClosed, std::memory_order_relaxed);
        // The body finished before the cancellation reached a suspension:
        // withdraw it (asyncio's uncancel) so it does not leak out.
        if (!body_raised_cancelled) state_->task->TakePendingCancel();
        return true;
      default:  // kClosed
        return false;
    }
  }
}

}  // namespace awaitd::runtime::internal
