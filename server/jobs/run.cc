// JobManager, running: starting leaves (start time, limits), running their
// bodies, and storing each transition before it is published.
#include <utility>

#include "absl/time/clock.h"
#include "runtime/internal/context.h"
#include "runtime/internal/task_header.h"
#include "runtime/time.h"
#include "runtime/timeout.h"
#include "server/jobs/job_manager.h"
#include "server/jobs/job_manager_internal.h"
#include "server/store/job_record.h"

namespace awaitd::server {

namespace {

// Outcome of a leaf job body that returned while a Cancel() was still
// undelivered (see Job::Finish).
bool CurrentTaskCancelPending(const Job&) {
  runtime::internal::TaskHeader* t = runtime::internal::CurrentTaskHeader();
  return t != nullptr && t->IsCancelRequested();
}

}  // namespace

void JobManager::OnStarted(const JobPtr& job,
                           std::shared_ptr<runtime::Event> stored) {
  // Groups are not counted: they only wait (shutdown drains running leaves).
  if (!job->is_group()) running_.fetch_add(1, std::memory_order_relaxed);
  KindStats* k = stats_.For(job->attributes().kind);
  k->started.Add();
  k->queue_wait.Observe(absl::Now() - job->attributes().scheduled_at);
  if (!job->attributes().durable) {
    Publish(job, JobState::kRunning);  // the job published it already
    return;
  }
  StoreThenPublish(job, JobState::kRunning, std::move(stored));
}

void JobManager::OnFinished(const JobPtr& job) {
  const JobState s = job->decided_state();
  if (!job->attributes().durable) {
    Ended(job, s, /*published=*/true);  // the job published it already
    return;
  }
  if (shutdown_cancel_.load(std::memory_order_acquire) &&
      (s == JobState::kCancelled || job->is_group())) {
    // What the shutdown's cancellation ends is not stored: after a restart
    // those jobs run again (pending), count as interrupted (running) or are
    // rebuilt (groups, whose children may have been cancelled here). It is
    // published for the jobs and calls still waiting inside the daemon; the
    // service tells clients nothing from now on (see BeginShutdownCancel).
    PublishStored(job, s, nullptr);
    return;
  }
  StoreThenPublish(job, s, nullptr);
}

void JobManager::StoreThenPublish(const JobPtr& job, JobState state,
                                  std::shared_ptr<runtime::Event> started) {
  JobStore* const store = store_.load(std::memory_order_acquire);
  // Committed in decision order per job (a job's transitions are decided by
  // one task at a time, each storing before the next is decided); the store
  // runs its callbacks in commit order, and one drain at a time publishes
  // them in that order: RUNNING is published before the outcome.
  JobStore::Batch batch;
  PutState(*job, &batch);
  auto node = std::make_unique<StoredTransition>(
      StoredTransition{job, state, std::move(started)});
  store->Commit(
      std::move(batch),
      [this, node = std::move(node)](absl::Status s) mutable {
        if (!s.ok()) {
          // Not stored: the store failed for good and the daemon is
          // stopping (StoreOptions::on_fatal). Nobody may hear of this
          // state; an end still counts, so that the shutdown does not wait
          // for it. (A job not retry-safe never starts its body.)
          if (IsFinal(node->state))
            Ended(node->job, node->state, /*published=*/false);
          return;
        }
        QueuePublish(node.release());
      },
      /*retry_while_full=*/true);
}

void JobManager::QueuePublish(StoredTransition* t) {
  // Called on the store's writer thread: it only queues, so that the
  // publishing (waking watchers, bookkeeping) happens on a worker, in bulk,
  // and the writer goes back to the disk.
  StoredTransition* head = publish_head_.load(std::memory_order_relaxed);
  do {
    t->next = head;
  } while (
      !publish_head_.compare_exchange_weak(head, t, std::memory_order_seq_cst));
  if (publish_scheduled_.exchange(true)) return;  // a drain will see it
  absl::MutexLock lock(&publish_mu_);
  // After Stop() the runtime runs no more tasks and the server is gone:
  // what is queued is dropped by the destructor.
  if (!runtime_stopped_) runtime_.SpawnDetached(PublishTask());
}

runtime::Task<void> JobManager::PublishTask() {
  DrainPublishes();
  co_return;
}

void JobManager::DrainPublishes() {
  // Whoever set publish_scheduled_ drains; one at a time, so that the
  // transitions are published in commit order.
  for (;;) {
    StoredTransition* list = publish_head_.exchange(nullptr);
    if (list == nullptr) {
      publish_scheduled_.store(false);
      // A transition queued since the exchange found the flag set and left
      // it to this drain: take it on, unless another drain already did.
      if (publish_head_.load() == nullptr || publish_scheduled_.exchange(true))
        return;
      continue;
    }
    StoredTransition* fifo = nullptr;  // the stack is newest first
    while (list != nullptr) {
      StoredTransition* next = list->next;
      list->next = fifo;
      fifo = list;
      list = next;
    }
    while (fifo != nullptr) {
      std::unique_ptr<StoredTransition> t(fifo);
      fifo = fifo->next;
      PublishStored(t->job, t->state, t->started.get());
    }
  }
}

void JobManager::PublishStored(const JobPtr& job, JobState state,
                               runtime::Event* started) {
  // (Publish refuses a state at or before the one published, which stored
  // transitions published in commit order never are.)
  const bool published = job->Publish(state);
  if (state == JobState::kRunning) {
    if (published) Publish(job, JobState::kRunning);
    if (started != nullptr) started->Set();
  } else {
    Ended(job, state, published);
  }
}

void JobManager::Ended(const JobPtr& job, JobState s, bool published) {
  {
    KindStats* k = stats_.For(job->attributes().kind);
    k->finished[static_cast<std::size_t>(
                    s == JobState::kSucceeded ? JobOutcome::kSucceeded
                    : s == JobState::kFailed  ? JobOutcome::kFailed
                                              : JobOutcome::kCancelled)]
        .Add();
    if (job->started()) {
      k->run_time.Observe(job->run_time());
    } else {
      k->finished_unstarted.Add();
    }
  }
  if (logger_.Enabled(LogLevel::kDebug)) {
    logger_.Log(
        LogLevel::kDebug, "component=jobs event=finished job_id=", job->id(),
        " state=", JobStateName(s),
        " error_type=", job->error() != nullptr ? job->error()->type() : "");
  }
  // Its outcome is held until it is forgotten (a group's result is its
  // children's, held by them).
  if (!(job->is_group() && s == JobState::kSucceeded))
    Charge(*job, job->outcome_bytes());
  if (published) Publish(job, s);
  PushFinished(job.get());
  // not_done_ first: a shutdown that wakes when running_ reaches zero then
  // counts only jobs that never ran (pending ones), not this one.
  if (not_done_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    absl::MutexLock lock(&idle_mu_);
    idle_cv_.SignalAll();
  }
  if (job->started() && !job->is_group()) {
    if (running_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      absl::MutexLock lock(&idle_mu_);
      idle_cv_.SignalAll();
    }
  }
}

void JobManager::Publish(const JobPtr& job, JobState state) {
  if (listener_count_.load(std::memory_order_acquire) == 0) return;
  absl::MutexLock lock(&listen_mu_);
  for (JobEventListener* l : listeners_) l->OnJobEvent(job, state);
}

void JobManager::AddListener(JobEventListener* listener) {
  absl::MutexLock lock(&listen_mu_);
  listeners_.push_back(listener);
  listener_count_.fetch_add(1, std::memory_order_release);
}

void JobManager::RemoveListener(JobEventListener* listener) {
  absl::MutexLock lock(&listen_mu_);
  auto it = std::find(listeners_.begin(), listeners_.end(), listener);
  if (it == listeners_.end()) return;
  listeners_.erase(it);
  listener_count_.fetch_sub(1, std::memory_order_release);
}

runtime::Task<void> JobManager::StartJobs(std::vector<Starting> jobs) {
  for (Starting& s : jobs) {
    s.job->SetTask(runtime::Spawn(RunJob(s.job, std::move(s.body))));
  }
  co_return;
}

// Ends a job CANCELLED if its task's frame is destroyed before the job ended
// (runtime shutdown destroys unfinished tasks). Small on purpose: it lives in
// every job's frame.
class JobManager::EndGuard {
 public:
  EndGuard(JobManager* m, const JobPtr* job) : m_(m), job_(job) {}
  EndGuard(const EndGuard&) = delete;
  EndGuard& operator=(const EndGuard&) = delete;
  ~EndGuard() {
    const JobPtr& job = *job_;
    if (job->done()) return;  // the common case: it finished normally
    if (job->Finish(
            JobState::kCancelled, nullptr,
            MakeError("CancelledError",
                      "the daemon shut down before the job finished"))) {
      m_->OnFinished(job);
    }
  }

 private:
  JobManager* m_;
  const JobPtr* job_;
};

// The rare part of a job's start, in its own (short-lived) frame so that the
// frame every job keeps while it runs stays small: wait for the start time,
// then take the limits in name order.
runtime::Task<void> JobManager::Admit(
    const Job* job, std::vector<runtime::PermitGuard>* permits) {
  const JobAttributes& a = job->attributes();
  if (a.scheduled_at > a.created_at) {
    if (a.start_absolute) {
      co_await runtime::SleepUntil(
          std::chrono::steady_clock::now() +
          absl::ToChronoNanoseconds(a.scheduled_at - absl::Now()));
    } else {
      co_await runtime::Sleep(
          absl::ToChronoNanoseconds(a.scheduled_at - a.created_at));
    }
  }
  permits->reserve(a.limits.size());
  for (const auto& l : a.limits) {
    permits->push_back(co_await l->semaphore().Hold());
  }
}

runtime::Task<void> JobManager::RunJob(JobPtr job, JobBody body) {
  EndGuard guard(this, &job);
  if (!job->EnterBody()) co_return;  // cancelled before it started
  const JobAttributes& a = job->attributes();
  JobState state = JobState::kSucceeded;
  std::unique_ptr<google::protobuf::Value> result;
  std::unique_ptr<v1::JobError> error;
  try {
    std::vector<runtime::PermitGuard> permits;
    if (a.scheduled_at > a.created_at || !a.limits.empty()) {
      co_await Admit(job.get(), &permits);
    }
    if (job->MarkRunning()) {
      if (a.durable && !a.retry_safe) {
        // Its kind must not run twice: the body starts once RUNNING is
        // stored, so that a crash from here on ends it InterruptedError
        // instead of running it again. (A cancel meanwhile ends it
        // CANCELLED without running it.)
        auto stored = std::make_shared<runtime::Event>();
        OnStarted(job, stored);
        co_await stored->Wait();
      } else {
        OnStarted(job);
      }
    }
    if (a.timeout > absl::ZeroDuration()) {
      result = std::make_unique<google::protobuf::Value>(
          co_await runtime::WithTimeout(absl::ToChronoNanoseconds(a.timeout),
                                        std::move(body)));
    } else {
      result =
          std::make_unique<google::protobuf::Value>(co_await std::move(body));
    }
  } catch (const runtime::CancelledError& e) {
    state = JobState::kCancelled;
    error = MakeError("CancelledError", e.what());
  } catch (const runtime::TimeoutError&) {
    state = JobState::kFailed;
    error = MakeError("TimeoutError",
                      StrCat("the job ran longer than its timeout of ",
                             absl::FormatDuration(a.timeout)));
  } catch (const runtime::RuntimeShutdownError& e) {
    state = JobState::kCancelled;
    error = MakeError("CancelledError", e.what());
  } catch (const runtime::ThreadStartError& e) {
    // Python's name for it (to_thread: "can't start new thread").
    state = JobState::kFailed;
    error = MakeError("RuntimeError", e.what());
  } catch (const JobFailure& f) {
    state = JobState::kFailed;
    error = MakeError(f.type(), f.message());
    if (f.details().fields_size() > 0) *error->mutable_details() = f.details();
  } catch (const std::exception& e) {
    state = JobState::kFailed;
    error = MakeError("InternalError", e.what());
  } catch (...) {
    state = JobState::kFailed;
    error =
        MakeError("InternalError", "the job raised a non-standard exception");
  }
  if (result != nullptr) {
    // What is kept, stored and sent must be readable back by every
    // protobuf parser, and fit a reply.
    std::string path;
    if (ValueDepth(*result, kMaxValueDepth, &path) > kMaxValueDepth) {
      if (path.size() > 200) path = StrCat(path.substr(0, 200), "...");
      state = JobState::kFailed;
      error = MakeError(
          "ValueError",
          StrCat("the job's result is nested deeper than ", kMaxValueDepth,
                 " levels of structs and lists (at result", path, ")"));
      result.reset();
    } else if (const std::size_t bytes = result->ByteSizeLong();
               bytes > options_.max_result_bytes) {
      state = JobState::kFailed;
      error = MakeError("ResultTooLargeError",
                        StrCat("the job's result is ", bytes,
                               " bytes, more than --max_result_bytes=",
                               options_.max_result_bytes));
      result.reset();
    }
  }
  if (job->Finish(state, std::move(result), std::move(error),
                  &CurrentTaskCancelPending)) {
    OnFinished(job);
  }
}

void JobManager::PutState(const Job& job, JobStore::Batch* batch,
                          bool forgotten) {
  v1::Job snap;
  job.SnapshotDecided(&snap);
  batch->PutState(job.id(), StateRecord(snap, forgotten));
}

}  // namespace awaitd::server
