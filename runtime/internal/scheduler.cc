// Shared scheduler state and task routing; protocols in worker.h.
#include "runtime/internal/scheduler.h"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "runtime/errors.h"
#include "runtime/internal/context.h"
#include "runtime/internal/fence.h"
#include "runtime/task.h"

namespace awaitd::runtime::internal {

TaskHeader* RequireCurrentTask(const char* what) {
  TaskHeader* t = CurrentTaskHeader();
  if (t == nullptr) {
    std::fprintf(stderr,
                 "awaitd runtime: %s must be awaited inside a task running on "
                 "a Runtime\n",
                 what);
    std::abort();
  }
  return t;
}

// --- OwnedTasks
// -------------------------------------------------------------------

bool Scheduler::OwnedTasks::Insert(TaskHeader* t) {
  Shard& s = shards_[t->id() % kShards];
  MutexLock lock(&s.mu);
  if (s.closed) return false;
  t->owned_prev_ = nullptr;
  t->owned_next_ = s.head;
  if (s.head != nullptr) s.head->owned_prev_ = t;
  s.head = t;
  s.count.store(s.count.load(std::memory_order_relaxed) + 1,
                std::memory_order_relaxed);
  return true;
}

void Scheduler::OwnedTasks::Remove(TaskHeader* t) {
  Shard& s = shards_[t->id() % kShards];
  MutexLock lock(&s.mu);
  if (t->owned_prev_ != nullptr) {
    t->owned_prev_->owned_next_ = t->owned_next_;
  } else {
    s.head = t->owned_next_;
  }
  if (t->owned_next_ != nullptr) t->owned_next_->owned_prev_ = t->owned_prev_;
  t->owned_prev_ = t->owned_next_ = nullptr;
  s.count.store(s.count.load(std::memory_order_relaxed) - 1,
                std::memory_order_relaxed);
}

std::uint64_t Scheduler::OwnedTasks::Count() const {
  std::uint64_t n = 0;
  for (const Shard& s : shards_) n += s.count.load(std::memory_order_relaxed);
  return n;
}

std::vector<TaskHeader*> Scheduler::OwnedTasks::CloseAndTakeAll() {
  std::vector<TaskHeader*> all;
  for (Shard& s : shards_) {
    MutexLock lock(&s.mu);
    s.closed = true;
    for (TaskHeader* t = s.head; t != nullptr;) {
      TaskHeader* next = t->owned_next_;
      t->owned_prev_ = t->owned_next_ = nullptr;
      all.push_back(t);
      t = next;
    }
    s.head = nullptr;
    s.count.store(0, std::memory_order_relaxed);
  }
  return all;
}

// --- Scheduler
// --------------------------------------------------------------------

namespace {

// Live schedulers by index. Slots are written under the mutex and read
// without it: a task's scheduler outlives the task, so a reader always finds
// the slot that was published (with release) before the task was created.
class SchedulerRegistry {
 public:
  static constexpr std::size_t kMax = 1 << 16;
  std::uint16_t Add(Scheduler* s) {
    MutexLock lock(&mu_);
    for (std::size_t i = 0; i < kMax; ++i) {
      const std::size_t slot = (next_ + i) % kMax;
      if (slots_[slot].load(std::memory_order_relaxed) == nullptr) {
        slots_[slot].store(s, std::memory_order_release);
        next_ = slot + 1;
        return static_cast<std::uint16_t>(slot);
      }
    }
    std::fprintf(
        stderr, "awaitd runtime: more than %zu runtimes alive at once\n", kMax);
    std::abort();
  }
  void Remove(std::uint16_t i) {
    MutexLock lock(&mu_);
    slots_[i].store(nullptr, std::memory_order_release);
  }
  Scheduler* Get(std::uint16_t i) const {
    return slots_[i].load(std::memory_order_acquire);
  }

 private:
  Mutex mu_;
  std::size_t next_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<Scheduler*> slots_[kMax] = {};
};

SchedulerRegistry& Registry() {
  static SchedulerRegistry* r =
      new SchedulerRegistry();  // outlives every scheduler
  return *r;
}

std::uint32_t ResolveWorkers(std::uint32_t n) {
  if (n != 0) return n;
  return std::max(1u, std::thread::hardware_concurrency());
}
BlockingPool::Options PoolOptions(const RuntimeOptions& o) {
  BlockingPool::Options p;
  p.min_threads = o.blocking_min_threads;
  p.max_threads = std::max(1u, o.blocking_max_threads);
  p.keep_alive = o.blocking_keep_alive;
  p.start_thread = o.blocking_start_thread;
  p.thread_name = o.thread_name.substr(0, 10) + "-blk";
  return p;
}
}  // namespace

Scheduler::Scheduler(RuntimeOptions options)
    : options_([&] {
        options.workers = ResolveWorkers(options.workers);
        options.global_queue_interval =
            std::max(1u, options.global_queue_interval);
        options.event_interval = std::max(1u, options.event_interval);
        if (!options.log_sink) options.log_sink = StderrLogSink;
        return options;
      }()),
      registry_index_(Registry().Add(this)),
      origin_(std::chrono::steady_clock::now()),
      idle_(options_.workers),
      blocking_(PoolOptions(options_)) {
  workers_.reserve(options_.workers);
  for (std::uint32_t i = 0; i < options_.workers; ++i) {
    workers_.push_back(std::make_unique<Worker>(this, i));
  }
}

// Marks a thread outside the runtime as waking a worker (outside_wakers_).
class Scheduler::OutsideWaker {
 public:
  explicit OutsideWaker(Scheduler* s) : s_(s) {
    s_->outside_wakers_.fetch_add(1, std::memory_order_relaxed);
  }
  ~OutsideWaker() {
    s_->outside_wakers_.fetch_sub(1, std::memory_order_release);
  }
  OutsideWaker(const OutsideWaker&) = delete;
  OutsideWaker& operator=(const OutsideWaker&) = delete;

 private:
  Scheduler* const s_;
};

Scheduler::~Scheduler() {
  Shutdown(options_.shutdown_policy, options_.shutdown_grace);
  // A waker's increment happens before its task was queued, so before the
  // task ran and before this destructor was called: it is visible here.
  while (outside_wakers_.load(std::memory_order_acquire) != 0) {
    std::this_thread::yield();
  }
  workers_.clear();  // io_contexts and wheels, while the index still resolves
  Registry().Remove(registry_index_);
}

Scheduler* Scheduler::FromIndex(std::uint16_t index) {
  return Registry().Get(index);
}

void Scheduler::Start() {
  threads_.reserve(workers_.size());
  for (auto& w : workers_) threads_.emplace_back([w = w.get()] { w->Run(); });
  if (options_.stall_threshold.count() > 0) {
    stall_thread_ = std::thread([this] { StallDetectorMain(); });
  }
}

std::uint64_t Scheduler::NowTick() const {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::steady_clock::now() - origin_)
          .count());
}

std::uint64_t Scheduler::TickFor(
    std::chrono::steady_clock::time_point t) const {
  if (t <= origin_) return 0;
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(t - origin_).count();
  return static_cast<std::uint64_t>((ns + 999) /
                                    1000);  // round up: never early
}

std::chrono::steady_clock::time_point Scheduler::TimeOfTick(
    std::uint64_t tick) const {
  return origin_ + std::chrono::microseconds(static_cast<std::int64_t>(
                       std::min<std::uint64_t>(tick, std::uint64_t{1} << 62)));
}

void Scheduler::Log(LogLevel level, std::string_view message) const {
  options_.log_sink(level, message);
}

TaskHeader* Scheduler::Spawn(std::coroutine_handle<> root, PromiseBase* promise,
                             bool join_interest) {
  Worker* w = Worker::Current();
  const bool local = IsOwnWorker(w);
  const std::uint64_t id = local ? w->NextTaskId() : ReserveTaskIds(1);
  TaskHeader* t = TaskHeader::Create(this, root, promise, id, join_interest);
  if (!local && !accepting_.load(std::memory_order_acquire)) {
    CompleteCancelledUnstarted(t);
    return t;
  }
  if (local) {
    t->set_home_worker(w->index());
    w->ScheduleLocal(t);
    return t;
  }
  tasks_spawned_outside_.fetch_add(1, std::memory_order_relaxed);
  t->set_home_worker(static_cast<std::uint32_t>(id % workers_.size()));
  OutsideWaker waking(this);
  if (!inject_.Push(t)) {
    // Shutdown closed the queue meanwhile: the task will never run.
    CompleteCancelledUnstarted(t);
    return t;
  }
  NotifyParked();
  return t;
}

void Scheduler::CompleteCancelledUnstarted(TaskHeader* t) {
  // Never ran (so never listed): mark it cancelled, destroying the body
  // unrun, and drop the scheduler's and the notification's references.
  t->DestroyUnfinished();
  t->UnrefMany(2);
  tasks_dropped_.fetch_add(1, std::memory_order_relaxed);
}

void Scheduler::Register(TaskHeader* task) {
  [[maybe_unused]] const bool ok = owned_.Insert(task);
  assert(ok);  // the list closes only after every worker stopped
  task->set_registered();
}

void Scheduler::Schedule(TaskHeader* task) {
  Worker* w = Worker::Current();
  if (IsOwnWorker(w)) {
    if (w->in_task()) {
      w->ScheduleLifo(task);
    } else {
      w->ScheduleLocal(task);
    }
    return;
  }
  // From outside the runtime: the inbox of the worker that last ran it.
  OutsideWaker waking(this);
  if (!workers_[task->home_worker() % workers_.size()]->PushInbox(task)) {
    task->Unref();  // shutting down: the task will be destroyed with the rest
  }
}

void Scheduler::NotifyParked() {
  if (std::optional<std::uint32_t> w = idle_.WorkerToNotify())
    workers_[*w]->Unpark();
}

void Scheduler::NotifyIfWorkPending() {
  // Pairs with the fence in Idle::WorkerToNotify (see there).
  SeqCstFence();
  for (auto& w : workers_) {
    if (!w->run_queue().IsEmpty()) {
      NotifyParked();
      return;
    }
  }
  if (!inject_.IsEmpty()) NotifyParked();
}

void Scheduler::Complete(TaskHeader* task) {
  PromiseBase* promise = task->promise();
  bool cancelled = false;
  const std::uint64_t prev = task->Complete(&cancelled);  // runs done callbacks
  const bool failed = promise->has_exception();
  if (failed && !cancelled &&
      !(prev & (TaskHeader::kJoinInterest | TaskHeader::kObserved))) {
    // asyncio's "Task exception was never retrieved".
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(promise->exception());
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    Log(LogLevel::kWarning,
        absl::StrCat("component=runtime event=detached_task_failed task_id=",
                     task->id(), " error=\"", what, "\""));
  }
  if (task->registered()) owned_.Remove(task);
  task->UnrefMany(2);  // the scheduler's reference and this run's notification
}

bool Scheduler::Shutdown(ShutdownPolicy policy,
                         std::chrono::nanoseconds grace) {
  if (shutdown_started_.exchange(true)) return false;
  assert(Worker::Current() == nullptr);
  // 1. Stop admitting from outside; optionally drain.
  accepting_.store(false, std::memory_order_release);
  if (policy == ShutdownPolicy::kDrain && !threads_.empty()) {
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (TasksAlive() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (TasksAlive() > 0) {
      Log(LogLevel::kWarning,
          absl::StrCat("component=runtime event=shutdown_grace_expired "
                       "tasks_cancelled=",
                       TasksAlive()));
    }
  }
  // 2. Signal and unpark every worker.
  shutdown_.store(true, std::memory_order_release);
  for (auto& w : workers_) w->Unpark();
  // 3. Join the workers and the stall detector.
  for (auto& t : threads_) t.join();
  threads_.clear();
  if (stall_thread_.joinable()) {
    {
      MutexLock lock(&stall_mu_);
      stall_stop_ = true;
    }
    stall_cv_.SignalAll();
    stall_thread_.join();
  }
  // 4. The blocking pool: queued jobs cancelled, running ones waited for.
  blocking_.Shutdown();
  // 5. Empty every queue, dropping the notification references. A queued
  //    task that never ran is in no other list: destroy it here.
  auto drop_chain = [this](TaskHeader* t) {
    while (t != nullptr) {
      TaskHeader* next = t->queue_next_;
      t->queue_next_ = nullptr;
      if (!t->registered() && !t->IsComplete()) {
        CompleteCancelledUnstarted(t);
      } else {
        t->Unref();
      }
      t = next;
    }
  };
  for (auto& w : workers_) drop_chain(w->CloseAndTakeAllQueued());
  drop_chain(inject_.CloseAndTakeAll());
  // 6. Destroy every unfinished task. All stay referenced (the scheduler's
  //    reference) until every frame is gone, so destructors that touch other
  //    tasks (JoinHandles) always find them alive.
  std::vector<TaskHeader*> unfinished = owned_.CloseAndTakeAll();
  for (TaskHeader* t : unfinished) t->DestroyUnfinished();
  for (TaskHeader* t : unfinished) t->Unref();
  tasks_dropped_.fetch_add(unfinished.size(), std::memory_order_relaxed);
  // 7. Workers (io_contexts, wheels) are destroyed with the Scheduler.
  return true;
}

void Scheduler::StallDetectorMain() {
  pthread_setname_np(pthread_self(),
                     (options_.thread_name.substr(0, 10) + "-stall").c_str());
  const auto threshold = options_.stall_threshold;
  const auto period = std::max<std::chrono::nanoseconds>(
      threshold / 4, std::chrono::milliseconds(1));
  struct Seen {
    std::uint64_t seq = 0;
    std::chrono::steady_clock::time_point since;
    bool reported = false;
  };
  std::vector<Seen> seen(workers_.size());
  MutexLock lock(&stall_mu_);
  while (!stall_stop_) {
    stall_cv_.WaitUntil(&stall_mu_, std::chrono::steady_clock::now() + period);
    const auto now = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      Worker& w = *workers_[i];
      const std::uint64_t task = w.running_task_id();
      const std::uint64_t seq = w.run_seq();
      if (task == 0 || seq != seen[i].seq) {
        seen[i] = Seen{seq, now, false};
        continue;
      }
      if (!seen[i].reported && now - seen[i].since >= threshold) {
        seen[i].reported = true;
        w.CountStall();
        Log(LogLevel::kWarning,
            absl::StrCat("component=runtime event=stall worker=", i,
                         " task_id=", task, " running_for_ms_at_least=",
                         std::chrono::duration_cast<std::chrono::milliseconds>(
                             now - seen[i].since)
                             .count()));
      }
    }
  }
}

std::uint64_t Scheduler::TasksSpawned() const {
  std::uint64_t n = tasks_spawned_outside_.load(std::memory_order_relaxed);
  for (const auto& w : workers_) n += w->Metrics().tasks_spawned;
  return n;
}

std::uint64_t Scheduler::TasksAlive() const {
  // Read the finished side first: a snapshot may then over-count, never
  // under-count (a drain must not stop early).
  std::uint64_t finished = tasks_dropped_.load(std::memory_order_acquire);
  for (const auto& w : workers_) finished += w->Metrics().tasks_completed;
  const std::uint64_t spawned = TasksSpawned();
  return spawned > finished ? spawned - finished : 0;
}

RuntimeMetrics Scheduler::Metrics() const {
  RuntimeMetrics m;
  m.workers.reserve(workers_.size());
  for (const auto& w : workers_) {
    m.workers.push_back(w->Metrics());
    m.stalls += m.workers.back().stalls;
  }
  m.global_queue_depth = inject_.Len();
  m.tasks_spawned = tasks_spawned_outside_.load(std::memory_order_relaxed);
  std::uint64_t finished = tasks_dropped_.load(std::memory_order_relaxed);
  for (const auto& w : m.workers) {
    m.tasks_spawned += w.tasks_spawned;
    finished += w.tasks_completed;
  }
  m.tasks_alive = m.tasks_spawned > finished ? m.tasks_spawned - finished : 0;
  m.searching_workers = const_cast<Idle&>(idle_).NumSearching();
  m.unparked_workers = const_cast<Idle&>(idle_).NumUnparked();
  m.blocking = blocking_.Metrics();
  return m;
}

}  // namespace awaitd::runtime::internal
