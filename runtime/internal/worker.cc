// The worker loop; the protocols it implements are listed in worker.h.
#include "runtime/internal/worker.h"

#include <pthread.h>

#include <cassert>
#include <string>

#include "boost/asio/post.hpp"
#include "runtime/errors.h"
#include "runtime/internal/context.h"
#include "runtime/internal/fence.h"
#include "runtime/internal/scheduler.h"
#include "runtime/task.h"

namespace awaitd::runtime::internal {
namespace {

std::int64_t MonoNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void Bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

}  // namespace

Worker::Worker(Scheduler* scheduler, std::uint32_t index)
    : scheduler_(scheduler),
      index_(index),
      io_(1),
      work_guard_(io_.get_executor()),
      driver_(io_),
      rng_(0x9e3779b9u * (index + 1)) {}

Worker* Worker::Current() { return tl_context.worker; }

void Worker::Run() {
  tl_context.worker = this;
  {
    std::string name = scheduler_->options().thread_name.substr(0, 10) + "-" +
                       std::to_string(index_);
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  }
  busy_since_ns_.store(MonoNowNs(), std::memory_order_relaxed);
  while (!scheduler_->shutting_down()) {
    if (TaskHeader* t = NextTask()) {
      RunTask(t);
      continue;
    }
    if (Maintenance()) continue;
    if (TaskHeader* t = Steal()) {
      RunTask(t);
      continue;
    }
    Park();
  }
  if (is_searching_) {
    is_searching_ = false;
    scheduler_->idle().TransitionWorkerFromSearching();
  }
  const std::int64_t since =
      busy_since_ns_.exchange(-1, std::memory_order_relaxed);
  if (since >= 0)
    busy_ns_.fetch_add(MonoNowNs() - since, std::memory_order_relaxed);
  tl_context.worker = nullptr;
}

// --- Queues -----------------------------------------------------------------

void Worker::PushOverflow(TaskHeader* first, TaskHeader* last,
                          std::uint32_t count) {
  Bump(overflows_);
  if (!scheduler_->inject().PushChain(first, last, count)) {
    // Closed: only during shutdown, after every worker stopped. Unreachable
    // from a running worker; drop the notifications defensively.
    for (TaskHeader* t = first; t != nullptr;) {
      TaskHeader* next = t->queue_next_;
      t->Unref();
      t = next;
    }
  }
}

void Worker::PushLocal(TaskHeader* task) {
  run_queue_.PushBack(
      task, [this](TaskHeader* first, TaskHeader* last, std::uint32_t n) {
        PushOverflow(first, last, n);
      });
}

void Worker::NotifyIfStealable() {
  // A searching worker will find the work itself (and chain wake-ups); a
  // single worker has nobody to share with.
  if (is_searching_ || scheduler_->num_workers() == 1) return;
  if (run_queue_.Len() + (lifo_slot_ != nullptr ? 1 : 0) > 1)
    scheduler_->NotifyParked();
}

void Worker::ScheduleLocal(TaskHeader* task) {
  assert(IsCurrent());
  PushLocal(task);
  NotifyIfStealable();
}

void Worker::ScheduleLifo(TaskHeader* task) {
  assert(IsCurrent());
  TaskHeader* prev = lifo_slot_;
  lifo_slot_ = task;
  if (prev == nullptr)
    return;  // the LIFO slot is not stealable: no one to notify
  PushLocal(prev);
  NotifyIfStealable();
}

bool Worker::PushInbox(TaskHeader* task) {
  if (!inbox_.Push(task)) return false;
  // Pairs with the fence in Park(): either the worker sees the task in its
  // inbox before sleeping, or we see it parked and wake it.
  SeqCstFence();
  if (parked_.load(std::memory_order_relaxed)) Unpark();
  return true;
}

void Worker::Unpark() {
  boost::asio::post(io_, [] {});
}

bool Worker::DrainInbox() {
  if (inbox_.IsEmpty()) return false;
  std::uint32_t n;
  TaskHeader* t = inbox_.PopChain(UINT32_MAX, &n);
  if (t == nullptr) return false;
  while (t != nullptr) {
    TaskHeader* next = t->queue_next_;
    t->queue_next_ = nullptr;
    PushLocal(t);
    t = next;
  }
  NotifyIfStealable();
  return true;
}

TaskHeader* Worker::PopGlobalBatch() {
  TaskList& inject = scheduler_->inject();
  if (inject.IsEmpty()) return nullptr;
  // Take a fair share, bounded by the room in the local queue.
  const std::uint64_t len = inject.Len();
  std::uint64_t want = len / scheduler_->num_workers() + 1;
  // Whole chains up to the fair share, bounded by the room in the local
  // queue (plus the one task run at once): a spilled chunk (half a queue
  // plus one) fits into an empty queue and is taken without a walk.
  const std::uint64_t max = std::uint64_t{run_queue_.RemainingSlots()} + 1;
  want = std::min(want, max);
  std::uint32_t n;
  TaskHeader* first = inject.PopChain(static_cast<std::uint32_t>(want),
                                      static_cast<std::uint32_t>(max), &n);
  if (first == nullptr) return nullptr;
  TaskHeader* rest = first->queue_next_;
  first->queue_next_ = nullptr;
  while (rest != nullptr) {
    TaskHeader* next = rest->queue_next_;
    rest->queue_next_ = nullptr;
    PushLocal(rest);
    rest = next;
  }
  return first;
}

TaskHeader* Worker::NextLocalTask() {
  DrainInbox();
  if (TaskHeader* t = run_queue_.Pop()) return t;
  return PopGlobalBatch();
}

TaskHeader* Worker::NextTask() {
  if (tick_ % scheduler_->options().global_queue_interval == 0) {
    if (TaskHeader* t = scheduler_->inject().Pop()) return t;
  }
  return NextLocalTask();
}

bool Worker::HasLocalWork() const {
  return lifo_slot_ != nullptr || !run_queue_.IsEmpty() || !inbox_.IsEmpty();
}

TaskHeader* Worker::Steal() {
  if (!is_searching_) {
    if (!scheduler_->idle().TransitionWorkerToSearching()) return nullptr;
    is_searching_ = true;
  }
  const std::uint32_t n = scheduler_->num_workers();
  const std::uint32_t start = static_cast<std::uint32_t>(rng_() % n);
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::uint32_t victim = (start + i) % n;
    if (victim == index_) continue;
    std::uint32_t stolen = 0;
    if (TaskHeader* t = scheduler_->worker(victim).run_queue().StealInto(
            run_queue_, &stolen)) {
      Bump(steal_operations_);
      Bump(tasks_stolen_, stolen);
      return t;
    }
  }
  return PopGlobalBatch();
}

std::uint64_t Worker::NextTaskId() {
  constexpr std::uint64_t kIdBlock = 256;
  if (next_id_ == id_limit_) {
    next_id_ = scheduler_->ReserveTaskIds(kIdBlock);
    id_limit_ = next_id_ + kIdBlock;
  }
  Bump(tasks_spawned_);
  return next_id_++;
}

// --- Running
// ------------------------------------------------------------------

void Worker::RunTask(TaskHeader* task) {
  if (is_searching_) {
    is_searching_ = false;
    if (scheduler_->idle().TransitionWorkerFromSearching())
      scheduler_->NotifyParked();
  }
  RunOne(task);
  for (int polls = 1; lifo_slot_ != nullptr; ++polls) {
    TaskHeader* next = std::exchange(lifo_slot_, nullptr);
    if (polls > kMaxLifoPolls || scheduler_->shutting_down()) {
      // Do not let two tasks ping-ponging through the LIFO slot starve the
      // local queue.
      ScheduleLocal(next);
      break;
    }
    RunOne(next);
  }
  if (tick_ % scheduler_->options().event_interval == 0) Maintenance();
}

void Worker::RunOne(TaskHeader* task) {
  ++tick_;
  Bump(tasks_run_);
  const bool first_run = task->TransitionToRunning();
  task->set_home_worker(index_);
  if (first_run && task->IsCancelRequested()) {
    // asyncio: a task cancelled before it started never runs its body.
    task->promise()->set_exception(
        std::make_exception_ptr(CancelledError(task->CancelMessage())));
    in_task_ = true;
    scheduler_->Complete(task);
    CountCompleted();
    RunDeferred();
    in_task_ = false;
    return;
  }
  run_seq_.store(run_seq_.load(std::memory_order_relaxed) + 1,
                 std::memory_order_relaxed);
  running_task_.store(task->id(), std::memory_order_relaxed);
  tl_context.task = task;
  in_task_ = true;

  task->resume_point().resume();

  tl_context.task = nullptr;
  if (task->root().done()) {
    scheduler_->Complete(task);  // wakes a joiner into the LIFO slot
    CountCompleted();
    RunDeferred();
  } else {
    // First suspension: list the task so that shutdown can find it. Done
    // while it is still RUNNING, so nobody can complete it meanwhile.
    if (!task->registered()) scheduler_->Register(task);
    if (task->TransitionToIdle()) {
      // Notified while running (Yield, or a wake that raced the
      // suspension): back of the queue, so that others get a turn.
      in_task_ = false;
      ScheduleLocal(task);
    }
  }
  in_task_ = false;
  running_task_.store(0, std::memory_order_relaxed);
}

// --- Timers, I/O and parking
// --------------------------------------------------

void Worker::InsertTimer(TimerEntry* e) {
  MutexLock lock(&timers_mu_);
  wheel_.Insert(e);
  timers_pending_.store(wheel_.size(), std::memory_order_relaxed);
  // A timer inserted from another thread (rare: only the runtime itself does
  // it, for a task that runs here) might need an earlier park deadline.
  if (!IsCurrent() && parked_.load(std::memory_order_acquire)) Unpark();
}

void Worker::RemoveTimer(TimerEntry* e) {
  MutexLock lock(&timers_mu_);
  wheel_.Remove(e);
  timers_pending_.store(wheel_.size(), std::memory_order_relaxed);
}

void Worker::FireTimers() {
  if (timers_pending_.load(std::memory_order_relaxed) == 0) return;
  {
    MutexLock lock(&timers_mu_);
    const std::size_t fired = wheel_.Advance(scheduler_->NowTick());
    if (fired > 0) Bump(timers_fired_, fired);
    timers_pending_.store(wheel_.size(), std::memory_order_relaxed);
  }
  RunDeferred();
}

void Worker::Defer(void (*fn)(void*), void* arg) {
  assert(IsCurrent());
  deferred_.emplace_back(fn, arg);
}

void Worker::RunDeferred() {
  // An action may defer more (it runs outside every lock, so it rarely does).
  while (!deferred_.empty()) {
    std::vector<std::pair<void (*)(void*), void*>> batch;
    batch.swap(deferred_);
    for (auto& [fn, arg] : batch) fn(arg);
  }
}

bool Worker::Maintenance() {
  io_.poll();
  FireTimers();
  DrainInbox();
  return HasLocalWork();
}

void Worker::ArmDriver(std::uint64_t deadline_tick) {
  if (driver_armed_ && *driver_armed_ <= deadline_tick) return;
  driver_armed_ = deadline_tick;
  driver_.expires_at(scheduler_->TimeOfTick(deadline_tick));
  driver_.async_wait(
      [this, deadline_tick](const boost::system::error_code& ec) {
        if (!ec && driver_armed_ == deadline_tick) driver_armed_.reset();
      });
}

void Worker::Park() {
  Idle& idle = scheduler_->idle();
  const bool was_searching = std::exchange(is_searching_, false);
  if (idle.TransitionWorkerToParked(index_, was_searching)) {
    scheduler_->NotifyIfWorkPending();
  }
  Bump(parks_);
  const std::int64_t since =
      busy_since_ns_.exchange(-1, std::memory_order_relaxed);
  if (since >= 0)
    busy_ns_.fetch_add(MonoNowNs() - since, std::memory_order_relaxed);

  parked_.store(true, std::memory_order_relaxed);
  SeqCstFence();
  for (;;) {
    if (!inbox_.IsEmpty() || scheduler_->shutting_down()) break;
    std::optional<std::uint64_t> next;
    {
      MutexLock lock(&timers_mu_);
      next = wheel_.NextDeadline();
    }
    if (next) ArmDriver(*next);
    io_.run_one();
    io_.poll();
    FireTimers();
    if (HasLocalWork() || idle.IsNotified(index_) ||
        scheduler_->shutting_down())
      break;
  }
  parked_.store(false, std::memory_order_relaxed);
  busy_since_ns_.store(MonoNowNs(), std::memory_order_relaxed);
  is_searching_ = idle.UnparkSelf(index_);
}

// --- Introspection and shutdown
// -------------------------------------------------

WorkerMetrics Worker::Metrics() const {
  WorkerMetrics m;
  m.tasks_spawned = tasks_spawned_.load(std::memory_order_relaxed);
  m.tasks_completed = tasks_completed_.load(std::memory_order_relaxed);
  m.tasks_run = tasks_run_.load(std::memory_order_relaxed);
  m.steal_operations = steal_operations_.load(std::memory_order_relaxed);
  m.tasks_stolen = tasks_stolen_.load(std::memory_order_relaxed);
  m.parks = parks_.load(std::memory_order_relaxed);
  m.overflows = overflows_.load(std::memory_order_relaxed);
  m.timers_fired = timers_fired_.load(std::memory_order_relaxed);
  m.timers_pending = timers_pending_.load(std::memory_order_relaxed);
  m.stalls = stalls_.load(std::memory_order_relaxed);
  std::int64_t busy = busy_ns_.load(std::memory_order_relaxed);
  const std::int64_t since = busy_since_ns_.load(std::memory_order_relaxed);
  if (since >= 0) busy += MonoNowNs() - since;
  m.busy_ns = static_cast<std::uint64_t>(busy);
  m.local_queue_depth = run_queue_.Len();
  m.inbox_depth = inbox_.Len();
  return m;
}

TaskHeader* Worker::CloseAndTakeAllQueued() {
  TaskHeader* head = inbox_.CloseAndTakeAll();
  auto prepend = [&head](TaskHeader* t) {
    t->queue_next_ = head;
    head = t;
  };
  if (lifo_slot_ != nullptr) prepend(std::exchange(lifo_slot_, nullptr));
  while (TaskHeader* t = run_queue_.Pop()) prepend(t);
  return head;
}

}  // namespace awaitd::runtime::internal
