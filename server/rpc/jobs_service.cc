#include "server/rpc/jobs_service.h"

#include <algorithm>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "common/strings.h"
#include "common/wire.h"
#include "runtime/event.h"
#include "runtime/timeout.h"
#include "server/jobs/job_watcher.h"
#include "server/rpc/auth.h"
#include "server/rpc/rpc_status.h"

namespace awaitd::server {

namespace {

// Longest explicit timeout of a waiting call.
constexpr absl::Duration kMaxCallTimeout = absl::Hours(24 * 366);

absl::Status CheckIdCount(std::size_t n, std::size_t max,
                          std::string_view field, bool allow_empty) {
  if (n == 0 && !allow_empty) {
    return absl::InvalidArgumentError(
        StrCat(field, ": at least one is required"));
  }
  if (n > max) {
    return absl::ResourceExhaustedError(StrCat(
        field, ": ", n, " entries exceed the limit of ", max, " per call"));
  }
  return absl::OkStatus();
}

// Sizes a reply before it is built: RESOURCE_EXHAUSTED unless the
// snapshots of `jobs` (repeats counted each time: each is a copy) fit in
// `max` bytes. Job::SnapshotBytes is an upper bound read without copying.
absl::Status CheckReplyBytes(std::span<const JobPtr> jobs, std::size_t max,
                             std::string_view what) {
  std::size_t bytes = 0;
  for (const JobPtr& j : jobs) {
    bytes += j->SnapshotBytes();
    if (bytes > max) {
      return absl::ResourceExhaustedError(StrCat(
          what, ": the reply would take more than ", max,
          " bytes (--max_message_bytes) with ", jobs.size(),
          jobs.size() == 1 ? " job" : " jobs",
          " in it; ask for fewer jobs, or fewer repeats of one, at a time"));
    }
  }
  return absl::OkStatus();
}

// The optional timeout of a waiting call.
absl::StatusOr<std::optional<absl::Duration>> CallTimeout(
    bool has, const google::protobuf::Duration& d) {
  if (!has) return std::optional<absl::Duration>();
  auto t = DurationFromProto(d, kMaxCallTimeout, "timeout");
  if (!t.ok()) return t.status();
  return std::optional<absl::Duration>(*t);
}

std::chrono::nanoseconds Chrono(absl::Duration d) {
  return absl::ToChronoNanoseconds(d);
}

// Waits until every job watched is done (remaining reaches 0), or, with
// `first_completed`, any; with `first_exception`, one that FAILED.
runtime::Task<void> WaitJobs(JobWatcher* w, std::size_t remaining,
                             v1::ReturnWhen mode) {
  while (remaining > 0) {
    co_await w->Changed();
    for (const JobWatcher::Change& c : w->Take()) {
      --remaining;
      if (mode == v1::FIRST_COMPLETED) co_return;
      if (mode == v1::FIRST_EXCEPTION && c.state == JobState::kFailed)
        co_return;
    }
  }
}

// How every refusal for a daemon that is shutting down reads.
constexpr char kShuttingDown[] = "the daemon is shutting down";
absl::Status ShuttingDownError() {
  return absl::UnavailableError(kShuttingDown);
}

// A stream that fails before its first message.
template <typename Response>
class FailedStream final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit FailedStream(const absl::Status& status) {
    this->Finish(ToGrpcStatus(status));
  }
  void OnDone() override { delete this; }
};

std::vector<const v1::JobSpec*> SpecPointers(
    const google::protobuf::RepeatedPtrField<v1::JobSpec>& specs) {
  std::vector<const v1::JobSpec*> out;
  out.reserve(specs.size());
  for (const v1::JobSpec& s : specs) out.push_back(&s);
  return out;
}

// Removes repeated jobs, keeping the first of each (asyncio.wait takes a set).
std::vector<JobPtr> Unique(std::vector<JobPtr> jobs) {
  absl::flat_hash_set<const Job*> seen;
  std::vector<JobPtr> out;
  out.reserve(jobs.size());
  for (JobPtr& j : jobs) {
    if (seen.insert(j.get()).second) out.push_back(std::move(j));
  }
  return out;
}

}  // namespace

// --- Calls that wait, as runtime tasks -----------------------------------

// A call that waits: a reactor whose answer comes from one runtime task.
// JobsService::Unary and ::Stream create it (the handler's body `new`s it),
// then Start() it; the task runs BeginTask, then Run (the call's own part),
// and Run finishes the call with FinishWith.
//
// Reference counting: one reference for gRPC (dropped in OnDone), one for the
// call's task (dropped when its frame is destroyed), one held by Start.
class CallBase {
 public:
  explicit CallBase(JobsService* service) : service_(service) {}
  virtual ~CallBase() {
    if (registered_) service_->Unregister(this);
  }
  CallBase(const CallBase&) = delete;
  CallBase& operator=(const CallBase&) = delete;

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Registers the call (so Shutdown can end it) and spawns its task; once
  // the daemon is shutting down, finishes it with UNAVAILABLE instead. Once
  // per call, after it is constructed, on the thread that created it. The
  // task may finish the call (and gRPC then delete it) before Start returns
  // to the handler, so the caller touches the call no more, except to
  // return it to gRPC (whose reference keeps it until OnDone).
  void Start();

  // Cancels the call's task (client gone, deadline, daemon shutdown). A task
  // that has not started yet sees it in BeginTask instead: a runtime task
  // cancelled before it starts never runs, and the call must still finish.
  void CancelTask(std::string_view message) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (cancelled_ || job_owns_task_) return;
    cancelled_ = true;
    cancel_message_ = std::string(message);
    if (started_ && task_.valid()) task_.Cancel(message);
  }

 protected:
  // The call's own part of its task (RunTask runs it after BeginTask): waits,
  // and finishes the call with FinishWith, exactly once.
  virtual runtime::Task<void> Run() = 0;

  // Finishes the call (exactly once, from its task) and lets go of the
  // task's handle, which would otherwise keep the frame, and so this call,
  // alive.
  void FinishWith(grpc::Status status) ABSL_LOCKS_EXCLUDED(mu_) {
    // Once the service has shut down, nothing more is told: with a store,
    // the shutdown's cancellations are not stored, so they must not reach
    // a client either (JobManager::BeginShutdownCancel).
    if (service_->shutting_down()) status = ShuttingDownStatus();
    SendFinish(std::move(status));
    runtime::JoinHandle<void> drop;
    absl::MutexLock lock(&mu_);
    finished_ = true;
    drop = std::move(task_);
  }
  void FinishWith(const absl::Status& status) {
    FinishWith(ToGrpcStatus(status));
  }

  // Finishes with `job`'s snapshot in `out`, if it fits a reply.
  void FinishWithSnapshot(const JobPtr& job, v1::Job* out) {
    if (absl::Status s =
            CheckReplyBytes(std::span<const JobPtr>(&job, 1),
                            service_->options().max_reply_bytes,
                            StrCat("job ", job->id(), " succeeded, but"));
        !s.ok()) {
      FinishWith(s);
      return;
    }
    job->Snapshot(out);
    FinishWith(grpc::Status::OK);
  }

  // The status for a task that was cancelled.
  grpc::Status CancelledStatus() const {
    if (service_->shutting_down()) return ShuttingDownStatus();
    return grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled");
  }
  static grpc::Status ShuttingDownStatus() {
    return ToGrpcStatus(ShuttingDownError());
  }

  virtual void SendFinish(grpc::Status status) = 0;

  JobsService* const service_;
  // Set (before Start) by a call whose task runs `job_` inline.
  bool job_owns_task_ = false;
  JobPtr job_;

 private:
  // Held by the task (a coroutine parameter, so it is released even when the
  // runtime destroys a task that never started).
  class TaskRef {
   public:
    explicit TaskRef(CallBase* c) : c_(c) {}
    TaskRef(TaskRef&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
    TaskRef(const TaskRef&) = delete;
    TaskRef& operator=(const TaskRef&) = delete;
    ~TaskRef() {
      if (c_ != nullptr) c_->Unref();
    }

   private:
    CallBase* c_;
  };

  // The call's task: BeginTask, then Run.
  runtime::Task<void> RunTask(TaskRef ref);
  // The first thing the task does: false if the call was cancelled before
  // the task started (the task then finishes the call at once).
  bool BeginTask() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    started_ = true;
    return !cancelled_;
  }

  std::atomic<int> refs_{2};
  bool registered_ = false;
  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::string cancel_message_ ABSL_GUARDED_BY(mu_);
  runtime::JoinHandle<void> task_ ABSL_GUARDED_BY(mu_);
};

void CallBase::Start() {
  Ref();  // Start's own
  registered_ = service_->Register(this);
  if (!registered_) {
    Unref();  // the task's: it never exists
    FinishWith(ShuttingDownStatus());
    Unref();
    return;
  }
  runtime::JoinHandle<void> h =
      service_->runtime().Spawn(RunTask(TaskRef(this)));
  if (job_owns_task_) {
    // The task runs a job inline: the job's Cancel must reach it, and the
    // call's end (client gone, shutdown) must not.
    job_->SetTask(std::move(h));
    Unref();
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    // Cancelled after the task started but before it had its handle.
    if (cancelled_ && started_) h.Cancel(cancel_message_);
    if (!finished_) task_ = std::move(h);
  }
  Unref();
}

runtime::Task<void> CallBase::RunTask(TaskRef ref) {
  (void)ref;
  if (!BeginTask()) {
    FinishWith(CancelledStatus());
    co_return;
  }
  co_await Run();
}

class UnaryCall : public grpc::ServerUnaryReactor, public CallBase {
 public:
  explicit UnaryCall(JobsService* s) : CallBase(s) {}
  void OnCancel() override { CancelTask("the client cancelled the call"); }
  void OnDone() override { Unref(); }

 protected:
  void SendFinish(grpc::Status status) override { Finish(std::move(status)); }
};

// A server stream. It holds one stream admitted by JobsService::OpenStream
// for `peer`, released when the call is destroyed (after gRPC's OnDone).
template <typename Response>
class StreamCall : public grpc::ServerWriteReactor<Response>, public CallBase {
 public:
  StreamCall(JobsService* s, std::string peer)
      : CallBase(s), peer_(std::move(peer)) {}
  ~StreamCall() override { service_->CloseStream(peer_); }
  void OnCancel() override { CancelTask("the client cancelled the call"); }
  void OnDone() override { Unref(); }
  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&write_mu_);
    write_ok_ = ok;
    write_done_.Set();
  }

 protected:
  void SendFinish(grpc::Status status) override {
    this->Finish(std::move(status));
  }

  // Writes `out_` and waits for it to be sent; false if the stream broke or
  // was dropped (then a write may still be outstanding: write no more, only
  // finish).
  runtime::Task<bool> WriteOut() {
    // Nothing more is told once the service shut down (see FinishWith).
    if (service_->shutting_down()) co_return false;
    {
      absl::MutexLock lock(&write_mu_);
      if (dropped_) co_return false;
      write_done_.Clear();
    }
    this->StartWrite(&out_);
    co_await write_done_.Wait();
    absl::MutexLock lock(&write_mu_);
    co_return write_ok_ && !dropped_;
  }

  // Ends a wait in WriteOut at once, and fails every later one: the stream
  // is being ended (a slow reader), whether or not the client ever takes
  // the message being written. Any thread; never blocks (the job path calls
  // it).
  void Drop() ABSL_LOCKS_EXCLUDED(write_mu_) {
    {
      absl::MutexLock lock(&write_mu_);
      dropped_ = true;
    }
    write_done_.Set();
  }

  // The message being written: a member, so it outlives a write that the
  // task stops waiting for.
  Response out_;

 private:
  const std::string peer_;
  absl::Mutex write_mu_;
  bool write_ok_ ABSL_GUARDED_BY(write_mu_) = true;
  bool dropped_ ABSL_GUARDED_BY(write_mu_) = false;
  // Set by OnWriteDone, or by Drop.
  runtime::Event write_done_;
};

// Cancel, when a job it could not cancel is not done yet as far as anyone
// was told: its outcome is settled and being stored. Task.cancel() answers
// false only for a done task, so the answer waits until those jobs are
// published (stored), and reports the states they then have.
class CancelCall final : public UnaryCall {
 public:
  CancelCall(JobsService* s, std::vector<JobPtr> jobs,
             std::vector<JobPtr> settled, v1::CancelResponse* response)
      : UnaryCall(s),
        jobs_(std::move(jobs)),
        settled_(Unique(std::move(settled))),
        response_(response) {}

 private:
  runtime::Task<void> Run() override {
    try {
      JobWatcher w(settled_, /*all_changes=*/false);
      co_await WaitJobs(&w, settled_.size(), v1::ALL_COMPLETED);
    } catch (const runtime::CancelledError&) {
      FinishWith(CancelledStatus());
      co_return;
    }
    for (std::size_t i = 0; i < jobs_.size(); ++i) {
      response_->mutable_results(static_cast<int>(i))
          ->set_state(ToProto(jobs_[i]->state()));
    }
    FinishWith(grpc::Status::OK);
  }

  const std::vector<JobPtr> jobs_;  // in request order
  std::vector<JobPtr> settled_;
  v1::CancelResponse* const response_;
};

// asyncio.wait.
class WaitCall final : public UnaryCall {
 public:
  WaitCall(JobsService* s, std::vector<JobPtr> jobs, v1::ReturnWhen mode,
           std::optional<absl::Duration> timeout, v1::WaitResponse* response)
      : UnaryCall(s),
        jobs_(Unique(std::move(jobs))),
        mode_(mode),
        timeout_(timeout),
        response_(response) {}

 private:
  runtime::Task<void> Run() override {
    try {
      JobWatcher w(jobs_, /*all_changes=*/false);
      if (timeout_.has_value()) {
        try {
          co_await runtime::WithTimeout(Chrono(*timeout_),
                                        WaitJobs(&w, jobs_.size(), mode_));
        } catch (const runtime::TimeoutError&) {
          // asyncio.wait: a timeout returns (done, pending); nothing raised.
        }
      } else {
        co_await WaitJobs(&w, jobs_.size(), mode_);
      }
    } catch (const runtime::CancelledError&) {
      FinishWith(CancelledStatus());
      co_return;
    }
    for (const JobPtr& j : jobs_) {
      if (j->done()) {
        response_->add_done(j->id());
      } else {
        response_->add_pending(j->id());
      }
    }
    FinishWith(grpc::Status::OK);
  }

  std::vector<JobPtr> jobs_;
  const v1::ReturnWhen mode_;
  const std::optional<absl::Duration> timeout_;
  v1::WaitResponse* const response_;
};

// asyncio.wait_for.
class WaitForCall final : public UnaryCall {
 public:
  WaitForCall(JobsService* s, JobPtr job, std::optional<absl::Duration> timeout,
              v1::WaitForResponse* response)
      : UnaryCall(s),
        job_(std::move(job)),
        timeout_(timeout),
        response_(response) {}

 private:
  runtime::Task<void> Run() override {
    std::vector<JobPtr> one{job_};
    bool timed_out = false;
    try {
      JobWatcher w(one, /*all_changes=*/false);
      if (timeout_.has_value()) {
        try {
          co_await runtime::WithTimeout(Chrono(*timeout_),
                                        WaitJobs(&w, 1, v1::ALL_COMPLETED));
        } catch (const runtime::TimeoutError&) {
          timed_out = true;
        }
        if (timed_out) {
          if (job_->shield()) {
            FinishWith(TimeoutStatus(/*cancelled=*/false));
            co_return;
          }
          // wait_for: cancel, wait until the cancellation has finished.
          service_->jobs().Cancel(job_,
                                  StrCat("wait_for timed out after ",
                                         absl::FormatDuration(*timeout_)));
          if (!job_->done()) co_await WaitJobs(&w, 1, v1::ALL_COMPLETED);
        }
      } else {
        co_await WaitJobs(&w, 1, v1::ALL_COMPLETED);
      }
    } catch (const runtime::CancelledError&) {
      FinishWith(CancelledStatus());
      co_return;
    }
    if (timed_out && job_->state() == JobState::kCancelled) {
      FinishWith(TimeoutStatus(/*cancelled=*/true));
      co_return;
    }
    if (job_->state() != JobState::kSucceeded) {
      FinishWith(JobErrorStatus(*job_));
      co_return;
    }
    FinishWithSnapshot(job_, response_->mutable_job());
  }

  grpc::Status TimeoutStatus(bool cancelled) const {
    v1::ErrorDetails d;
    d.set_job_id(job_->id());
    d.mutable_error()->set_type("TimeoutError");
    const std::string msg = StrCat(
        "wait_for: job ", job_->id(), " (", job_->name(),
        ") did not finish within ", absl::FormatDuration(*timeout_),
        cancelled ? "; it was cancelled" : "; it is shielded and runs on");
    d.mutable_error()->set_message(msg);
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, msg,
                        d.SerializeAsString());
  }

  JobPtr job_;
  const std::optional<absl::Duration> timeout_;
  v1::WaitForResponse* const response_;
};

// WaitFor of an inline spec without a timeout: the call's task runs the job
// itself (RunInline), then reports it. The job is independent of the call: a
// client that leaves does not stop it (the task runs on and finishes a call
// nobody reads), while Cancel on the job reaches it through this task.
class RunAndWaitCall final : public UnaryCall {
 public:
  RunAndWaitCall(JobsService* s, JobPtr job, JobBody body,
                 v1::WaitForResponse* response)
      : UnaryCall(s), body_(std::move(body)), response_(response) {
    job_owns_task_ = true;
    job_ = std::move(job);
  }

 private:
  runtime::Task<void> Run() override {
    co_await service_->jobs().RunInline(job_, std::move(body_));
    // A durable job's outcome is decided but may not be stored yet: it is
    // reported once it is (published). The service's shutdown cannot cancel
    // this task (it is the job's), so the wait looks at it now and then: a
    // job whose store failed is never published.
    while (!job_->done() && !service_->shutting_down()) {
      try {
        std::vector<JobPtr> one{job_};
        JobWatcher w(one, /*all_changes=*/false);
        co_await runtime::WithTimeout(std::chrono::milliseconds(100),
                                      WaitJobs(&w, 1, v1::ALL_COMPLETED));
      } catch (const runtime::TimeoutError&) {
      } catch (const runtime::CancelledError&) {
        FinishWith(CancelledStatus());
        co_return;
      }
    }
    if (!job_->done()) {
      FinishWith(ShuttingDownStatus());
      co_return;
    }
    if (job_->state() != JobState::kSucceeded) {
      FinishWith(JobErrorStatus(*job_));
      co_return;
    }
    FinishWithSnapshot(job_, response_->mutable_job());
  }

  JobBody body_;
  v1::WaitForResponse* const response_;
};

// Gather and RunGroup: wait for the group job, then report its children.
class GroupCall final : public UnaryCall {
 public:
  // `results` points into the response.
  GroupCall(JobsService* s, grpc::CallbackServerContext* ctx, JobPtr group,
            google::protobuf::RepeatedPtrField<v1::Job>* results)
      : UnaryCall(s), group_(std::move(group)), results_(results) {
    ctx->AddInitialMetadata(kGroupIdHeader, std::to_string(group_->id()));
  }

 private:
  runtime::Task<void> Run() override {
    std::vector<JobPtr> one{group_};
    try {
      // The group's id goes out once the group is published (with a store:
      // stored), which is what acknowledges it.
      if (group_->state() < JobState::kRunning) {
        JobWatcher started(one, /*all_changes=*/true);
        while (group_->state() < JobState::kRunning) {
          co_await started.Changed();
          started.Take();
        }
      }
      StartSendInitialMetadata();
      JobWatcher w(one, /*all_changes=*/false);
      co_await WaitJobs(&w, 1, v1::ALL_COMPLETED);
    } catch (const runtime::CancelledError&) {
      FinishWith(CancelledStatus());
      co_return;
    }
    if (group_->state() != JobState::kSucceeded) {
      FinishWith(JobErrorStatus(FailingJob()));
      co_return;
    }
    // One copy of each child's result per input (gather(t, t) returns t's
    // twice), sized before any is made.
    if (absl::Status s = CheckReplyBytes(
            group_->children(), service_->options().max_reply_bytes,
            StrCat("group ", group_->id(), " succeeded, but"));
        !s.ok()) {
      FinishWith(s);
      co_return;
    }
    results_->Reserve(static_cast<int>(group_->children().size()));
    for (const JobPtr& c : group_->children()) c->Snapshot(results_->Add());
    FinishWith(grpc::Status::OK);
  }

  // Whose failure the call reports: for a gather that failed, the child
  // whose exception propagated (the group's error names it); otherwise the
  // group (a TaskGroup's ExceptionGroup, or a cancelled group).
  const Job& FailingJob() const {
    if (group_->type() != JobType::kGather ||
        group_->state() != JobState::kFailed || group_->error() == nullptr) {
      return *group_;
    }
    const auto& f = group_->error()->details().fields();
    auto it = f.find("index");
    if (it == f.end()) return *group_;
    const auto index = static_cast<std::size_t>(it->second.number_value());
    if (index >= group_->children().size()) return *group_;
    return *group_->children()[index];
  }

  JobPtr group_;
  google::protobuf::RepeatedPtrField<v1::Job>* const results_;
};

// asyncio.as_completed.
class AsCompletedCall final : public StreamCall<v1::AsCompletedResponse> {
 public:
  AsCompletedCall(JobsService* s, std::string peer, std::vector<JobPtr> jobs,
                  std::optional<absl::Duration> timeout)
      : StreamCall(s, std::move(peer)),
        jobs_(std::move(jobs)),
        timeout_(timeout) {}

 private:
  runtime::Task<void> Run() override {
    grpc::Status status = grpc::Status::OK;
    try {
      if (timeout_.has_value()) {
        try {
          co_await runtime::WithTimeout(Chrono(*timeout_), Stream());
        } catch (const runtime::TimeoutError&) {
          status = grpc::Status(
              grpc::StatusCode::DEADLINE_EXCEEDED,
              StrCat("as_completed: ", jobs_.size() - written_, " of ",
                     jobs_.size(), " jobs did not finish within ",
                     absl::FormatDuration(*timeout_),
                     " (they were not cancelled)"));
        }
      } else {
        co_await Stream();
      }
    } catch (const runtime::CancelledError&) {
      status = CancelledStatus();
    }
    if (broken_)
      status = grpc::Status(grpc::StatusCode::CANCELLED, "the stream broke");
    if (too_large_.has_value()) status = *std::move(too_large_);
    FinishWith(std::move(status));
  }

  runtime::Task<void> Stream() {
    out_.Clear();
    for (const JobPtr& j : jobs_) out_.add_ids(j->id());
    if (!co_await WriteOut()) {
      broken_ = true;
      co_return;
    }
    JobWatcher w(jobs_, /*all_changes=*/false);
    while (written_ < jobs_.size()) {
      co_await w.Changed();
      for (const JobWatcher::Change& c : w.Take()) {
        out_.Clear();
        const JobPtr& job = jobs_[c.slot];
        if (absl::Status s =
                CheckReplyBytes(std::span<const JobPtr>(&job, 1),
                                service_->options().max_reply_bytes,
                                StrCat("as_completed: job ", job->id()));
            !s.ok()) {
          too_large_ = ToGrpcStatus(s);
          co_return;
        }
        job->Snapshot(out_.mutable_job());
        out_.set_index(c.slot);
        if (!co_await WriteOut()) {
          broken_ = true;
          co_return;
        }
        ++written_;
      }
    }
  }

  std::vector<JobPtr> jobs_;
  const std::optional<absl::Duration> timeout_;
  std::size_t written_ = 0;
  bool broken_ = false;
  std::optional<grpc::Status> too_large_;  // a job too big for a message
};

void FillEvent(const Job& job, JobState state, v1::WatchResponse* out) {
  out->Clear();
  out->set_id(job.id());
  out->set_name(job.name());
  out->set_kind(std::string(job.attributes().kind));
  out->set_state(ToProto(state));
  ToProto(IsFinal(state) ? job.finished_at() : absl::Now(),
          out->mutable_time());
  if (IsFinal(state) && job.error() != nullptr)
    *out->mutable_error() = *job.error();
}

// Watch over given ids: current states, then changes, until all are done.
class WatchIdsCall final : public StreamCall<v1::WatchResponse> {
 public:
  WatchIdsCall(JobsService* s, std::string peer, std::vector<JobPtr> jobs)
      : StreamCall(s, std::move(peer)), jobs_(Unique(std::move(jobs))) {}

 private:
  runtime::Task<void> Run() override {
    grpc::Status status = grpc::Status::OK;
    try {
      co_await Stream();
    } catch (const runtime::CancelledError&) {
      status = CancelledStatus();
    }
    if (broken_)
      status = grpc::Status(grpc::StatusCode::CANCELLED, "the stream broke");
    FinishWith(std::move(status));
  }

  runtime::Task<void> Stream() {
    JobWatcher w(jobs_, /*all_changes=*/true);  // before reading the states
    std::vector<JobState> sent(jobs_.size(), JobState{0});
    std::size_t remaining = jobs_.size();
    for (std::size_t i = 0; i < jobs_.size(); ++i) {
      const JobState s = jobs_[i]->state();
      sent[i] = s;
      FillEvent(*jobs_[i], s, &out_);
      if (!co_await WriteOut()) {
        broken_ = true;
        co_return;
      }
    }
    while (remaining > 0) {
      co_await w.Changed();
      for (const JobWatcher::Change& c : w.Take()) {
        if (IsFinal(c.state)) --remaining;
        if (static_cast<int>(c.state) <= static_cast<int>(sent[c.slot]))
          continue;
        sent[c.slot] = c.state;
        FillEvent(*jobs_[c.slot], c.state, &out_);
        if (!co_await WriteOut()) {
          broken_ = true;
          co_return;
        }
      }
    }
  }

  std::vector<JobPtr> jobs_;
  bool broken_ = false;
};

// Watch over every job, from now on.
class WatchAllCall final : public StreamCall<v1::WatchResponse>,
                           public JobEventListener {
 public:
  WatchAllCall(JobsService* s, std::string peer)
      : StreamCall(s, std::move(peer)),
        max_backlog_(s->options().max_watch_backlog) {}
  ~WatchAllCall() override { FreeBacklog(); }

  // The job path: never waits for the reader. A full backlog drops the
  // stream: its task is woken (also from a write the client never takes),
  // frees the events and ends the call.
  void OnJobEvent(const JobPtr& job, JobState state) override {
    {
      absl::MutexLock lock(&mu_);
      if (overflow_) return;
      if (backlog_.size() >= max_backlog_) {
        overflow_ = true;
      } else {
        backlog_.push_back({job, state});
        service_->AddBacklog(1);
      }
      ready_.Set();
      if (!overflow_) return;
    }
    Drop();
  }

 private:
  // Unsubscribes when the frame ends, whichever way it ends.
  struct Subscription {
    JobManager& jobs;
    JobEventListener* l;
    Subscription(JobManager& j, JobEventListener* listener)
        : jobs(j), l(listener) {
      jobs.AddListener(l);
    }
    ~Subscription() { jobs.RemoveListener(l); }
  };

  runtime::Task<void> Run() override {
    grpc::Status status = grpc::Status::OK;
    bool cancelled = false;
    try {
      Subscription sub(service_->jobs(), this);
      // Initial metadata tells the client it is subscribed: every job event
      // from now on reaches it (jobs.proto, Watch).
      StartSendInitialMetadata();
      for (;;) {
        co_await ready_.Wait();
        {
          absl::MutexLock lock(&mu_);
          ready_.Clear();
          if (overflow_) break;
          sending_.swap(backlog_);  // sending_ is empty here
        }
        bool ok = true;
        while (!sending_.empty()) {
          FillEvent(*sending_.front().job, sending_.front().state, &out_);
          if (!co_await WriteOut()) {
            ok = false;
            break;
          }
          sending_.pop_front();
          service_->AddBacklog(-1);
        }
        if (!ok) {
          status =
              grpc::Status(grpc::StatusCode::CANCELLED, "the stream broke");
          break;
        }
      }
    } catch (const runtime::CancelledError&) {
      status = CancelledStatus();
      cancelled = true;
    }
    bool overflow;
    {
      absl::MutexLock lock(&mu_);
      overflow = overflow_;
    }
    FreeBacklog();
    if (overflow && !cancelled) {
      service_->CountDroppedSlow();
      status = grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          StrCat("watch: the client fell more than ", max_backlog_,
                 " events behind (--max_watch_backlog) and was dropped; "
                 "watch fewer jobs (by id) or read faster"));
    }
    FinishWith(std::move(status));
  }

  // Lets go of every event not sent (and of the jobs they hold).
  void FreeBacklog() ABSL_LOCKS_EXCLUDED(mu_) {
    std::deque<JobEvent> queued;
    {
      absl::MutexLock lock(&mu_);
      queued.swap(backlog_);
    }
    service_->AddBacklog(
        -static_cast<std::ptrdiff_t>(queued.size() + sending_.size()));
    sending_.clear();
  }

  const std::size_t max_backlog_;
  runtime::Event ready_;
  absl::Mutex mu_;
  std::deque<JobEvent> backlog_ ABSL_GUARDED_BY(mu_);
  bool overflow_ ABSL_GUARDED_BY(mu_) = false;
  // The events being written; the task's own.
  std::deque<JobEvent> sending_;
};

// --- The call wrapper: what every handler does ---------------------------

namespace {

// What a handler's body answers: a status, sent at once (OK included), or a
// call it created (not started yet), which answers from its task. Any
// absl::Status converts to it, so AWAITD_RETURN_IF_ERROR works in a body.
template <typename Call>
class Reply {
 public:
  Reply(absl::Status status) : status_(std::move(status)) {}  // NOLINT
  Reply(Call* call) : call_(call) {}                          // NOLINT

  Call* call() const { return call_; }
  const absl::Status& status() const { return status_; }

 private:
  absl::Status status_;
  Call* call_ = nullptr;
};

using UnaryReply = Reply<UnaryCall>;
template <typename Response>
using StreamReply = Reply<StreamCall<Response>>;

}  // namespace

template <typename Body>
grpc::ServerUnaryReactor* JobsService::Unary(grpc::CallbackServerContext* ctx,
                                             AfterShutdown after, Body body) {
  absl::Status status = CallAuthVerdict(*ctx);
  // Nothing more is told once the service shut down (see FinishWith).
  if (status.ok() && after == AfterShutdown::kUnavailable && shutting_down())
    status = ShuttingDownError();
  if (status.ok()) {
    UnaryReply reply = body();
    if (UnaryCall* call = reply.call()) {
      call->Start();
      return call;
    }
    status = reply.status();
  }
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

template <typename Response, typename Body>
grpc::ServerWriteReactor<Response>* JobsService::Stream(
    grpc::CallbackServerContext* ctx, Body body) {
  absl::Status status = CallAuthVerdict(*ctx);
  if (status.ok()) {
    StreamReply<Response> reply = body();
    if (StreamCall<Response>* call = reply.call()) {
      call->Start();
      return call;
    }
    status = reply.status();
  }
  return new FailedStream<Response>(status);
}

// --- JobsService ------------------------------------------------------------

JobsService::JobsService(runtime::Runtime& runtime, JobManager& jobs,
                         JobsServiceOptions options, const Logger& logger)
    : runtime_(runtime), jobs_(jobs), options_(options), logger_(logger) {}

JobsService::~JobsService() {
  absl::MutexLock lock(&mu_);
  shutting_down_ = true;
  while (!calls_.empty()) calls_empty_.Wait(&mu_);
}

bool JobsService::shutting_down() const {
  absl::MutexLock lock(&mu_);
  return shutting_down_;
}

bool JobsService::Register(CallBase* call) {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return false;
  calls_.insert(call);
  return true;
}

void JobsService::Unregister(CallBase* call) {
  absl::MutexLock lock(&mu_);
  calls_.erase(call);
  if (calls_.empty()) calls_empty_.SignalAll();
}

namespace {

// A TCP peer ("ipv4:10.0.0.7:41234", "ipv6:[::1]:41234") names one
// connection; every client of a Unix socket has the same peer ("unix:").
bool PeerIsOneConnection(std::string_view peer) {
  return peer.starts_with("ipv4:") || peer.starts_with("ipv6:");
}

}  // namespace

absl::Status JobsService::OpenStream(const std::string& peer) {
  absl::MutexLock lock(&mu_);
  if (open_streams_ >= options_.max_streams) {
    return absl::ResourceExhaustedError(
        StrCat("streams: ", open_streams_,
               " Watch and AsCompleted streams are open, the most "
               "--max_streams=",
               options_.max_streams, " allows; end one first"));
  }
  if (PeerIsOneConnection(peer)) {
    std::size_t& n = streams_by_peer_[peer];
    if (n >= options_.max_streams_per_connection) {
      const std::size_t open = n;
      if (n == 0) streams_by_peer_.erase(peer);
      return absl::ResourceExhaustedError(
          StrCat("streams: ", open,
                 " Watch and AsCompleted streams are open on this connection "
                 "(",
                 peer, "), the most --max_streams_per_connection=",
                 options_.max_streams_per_connection,
                 " allows; end one first or open another connection"));
    }
    ++n;
  }
  ++open_streams_;
  return absl::OkStatus();
}

void JobsService::CloseStream(const std::string& peer) {
  absl::MutexLock lock(&mu_);
  --open_streams_;
  if (PeerIsOneConnection(peer)) {
    auto it = streams_by_peer_.find(peer);
    if (it != streams_by_peer_.end() && --it->second == 0)
      streams_by_peer_.erase(it);
  }
}

JobsService::StreamStats JobsService::stream_stats() const {
  StreamStats out;
  {
    absl::MutexLock lock(&mu_);
    out.open = open_streams_;
  }
  out.dropped_slow = dropped_slow_.load(std::memory_order_relaxed);
  out.backlog_events =
      static_cast<std::size_t>(backlog_events_.load(std::memory_order_relaxed));
  return out;
}

void JobsService::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutting_down_ = true;
  for (CallBase* c : calls_) c->CancelTask(kShuttingDown);
}

grpc::ServerUnaryReactor* JobsService::Submit(grpc::CallbackServerContext* ctx,
                                              const v1::SubmitRequest* request,
                                              v1::SubmitResponse* response) {
  return Unary(ctx, AfterShutdown::kAnswer, [&]() -> absl::Status {
    if (request->jobs_size() == 0)
      return absl::InvalidArgumentError(
          "jobs: at least one job spec is required");
    std::vector<const v1::JobSpec*> specs = SpecPointers(request->jobs());
    std::vector<bool> existing;
    auto created = jobs_.Submit(specs, "jobs", 0, &existing);
    if (!created.ok()) return created.status();
    response->mutable_jobs()->Reserve(static_cast<int>(created->size()));
    for (std::size_t i = 0; i < created->size(); ++i) {
      v1::JobRef* ref = response->add_jobs();
      ref->set_id((*created)[i]->id());
      ref->set_name((*created)[i]->name());
      ref->set_existing(existing[i]);
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<JobPtr>> JobsService::FindAll(
    const google::protobuf::RepeatedField<std::uint64_t>& ids) const {
  AWAITD_RETURN_IF_ERROR(CheckIdCount(ids.size(), options_.max_ids_per_call,
                                      "ids", /*allow_empty=*/false));
  std::vector<JobPtr> jobs;
  jobs.reserve(ids.size());
  for (int i = 0; i < ids.size(); ++i) {
    auto j = jobs_.Find(ids[i], StrCat("ids[", i, "]"));
    if (!j.ok()) return j.status();
    jobs.push_back(*std::move(j));
  }
  return jobs;
}

grpc::ServerUnaryReactor* JobsService::Get(grpc::CallbackServerContext* ctx,
                                           const v1::GetRequest* request,
                                           v1::GetResponse* response) {
  return Unary(ctx, AfterShutdown::kUnavailable, [&]() -> absl::Status {
    auto jobs = FindAll(request->ids());
    if (!jobs.ok()) return jobs.status();
    // Sized before any copy is made (a repeated id is a copy each time).
    AWAITD_RETURN_IF_ERROR(
        CheckReplyBytes(*jobs, options_.max_reply_bytes, "ids"));
    response->mutable_jobs()->Reserve(static_cast<int>(jobs->size()));
    for (const JobPtr& j : *jobs) j->Snapshot(response->add_jobs());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* JobsService::Cancel(grpc::CallbackServerContext* ctx,
                                              const v1::CancelRequest* request,
                                              v1::CancelResponse* response) {
  return Unary(ctx, AfterShutdown::kUnavailable, [&]() -> UnaryReply {
    // Every id is checked before anything is cancelled.
    auto jobs = FindAll(request->ids());
    if (!jobs.ok()) return jobs.status();
    if (request->message().size() > options_.max_message_length) {
      return absl::InvalidArgumentError(
          StrCat("message: ", request->message().size(),
                 " bytes exceed the limit of ", options_.max_message_length));
    }
    const std::vector<bool> cancelled = jobs_.Cancel(*jobs, request->message());
    // A cancel that took effect is answered once it is stored (with a store:
    // recovery then ends the job CANCELLED rather than running it again), or
    // UNAVAILABLE once --store_timeout passed (it took effect in memory, and
    // is stored when the disk answers).
    if (std::find(cancelled.begin(), cancelled.end(), true) !=
        cancelled.end()) {
      AWAITD_RETURN_IF_ERROR(jobs_.AwaitStored());
    }
    std::vector<JobPtr> settled;  // not cancelled, yet not done (published)
    for (std::size_t i = 0; i < jobs->size(); ++i) {
      const JobPtr& j = (*jobs)[i];
      v1::CancelResult* r = response->add_results();
      r->set_id(j->id());
      r->set_cancelled(cancelled[i]);
      r->set_state(ToProto(j->state()));
      if (!r->cancelled() && !j->done()) settled.push_back(j);
    }
    if (settled.empty()) return absl::OkStatus();
    return new CancelCall(this, *std::move(jobs), std::move(settled), response);
  });
}

grpc::ServerUnaryReactor* JobsService::Wait(grpc::CallbackServerContext* ctx,
                                            const v1::WaitRequest* request,
                                            v1::WaitResponse* response) {
  return Unary(ctx, AfterShutdown::kAnswer, [&]() -> UnaryReply {
    AWAITD_RETURN_IF_ERROR(CheckIdCount(request->jobs_size(),
                                        options_.max_ids_per_call, "jobs",
                                        /*allow_empty=*/false));
    if (!v1::ReturnWhen_IsValid(request->return_when())) {
      return absl::InvalidArgumentError(
          StrCat("return_when: unknown value ", request->return_when()));
    }
    auto timeout = CallTimeout(request->has_timeout(), request->timeout());
    if (!timeout.ok()) return timeout.status();
    auto jobs = jobs_.Resolve(request->jobs(), "jobs");
    if (!jobs.ok()) return jobs.status();
    return new WaitCall(this, *std::move(jobs), request->return_when(),
                        *timeout, response);
  });
}

grpc::ServerUnaryReactor* JobsService::WaitFor(
    grpc::CallbackServerContext* ctx, const v1::WaitForRequest* request,
    v1::WaitForResponse* response) {
  return Unary(ctx, AfterShutdown::kAnswer, [&]() -> UnaryReply {
    if (!request->has_job()) return absl::InvalidArgumentError("job: required");
    auto timeout = CallTimeout(request->has_timeout(), request->timeout());
    if (!timeout.ok()) return timeout.status();
    const v1::JobInput& in = request->job();
    switch (in.input_case()) {
      case v1::JobInput::kId: {
        auto job = jobs_.Find(in.id(), "job.id");
        if (!job.ok()) return job.status();
        return new WaitForCall(this, *std::move(job), *timeout, response);
      }
      case v1::JobInput::kSpec: {
        static const std::string kField = "job.spec";
        const v1::JobSpec* spec[] = {&in.spec()};
        // Without a timeout the call's task runs the job itself.
        const bool run_inline = !timeout->has_value();
        std::vector<JobBody> bodies;
        auto created = jobs_.Submit(spec, "job", 0, nullptr,
                                    run_inline ? &bodies : nullptr,
                                    std::span<const std::string>(&kField, 1));
        if (!created.ok()) return created.status();
        if (bodies.size() == 1) {
          return new RunAndWaitCall(this, std::move((*created)[0]),
                                    std::move(bodies[0]), response);
        }
        // A timeout, or an idempotency key that matched an existing job.
        return new WaitForCall(this, std::move((*created)[0]), *timeout,
                               response);
      }
      case v1::JobInput::INPUT_NOT_SET:
        break;
    }
    return absl::InvalidArgumentError("job: set either id or spec");
  });
}

namespace {

// What Gather and RunGroup check before a group's children are created, in
// this order: its name, that jobs are still accepted, and the group itself
// (its own count and bytes: JobManager::AdmitGroup).
absl::Status AdmitGroup(const JobManager& jobs, const std::string& name,
                        std::size_t children) {
  if (name.size() > jobs.options().max_name_length) {
    return absl::InvalidArgumentError(
        StrCat("name: longer than --max_name_length=",
               jobs.options().max_name_length));
  }
  if (!jobs.accepting()) return ShuttingDownError();
  return jobs.AdmitGroup(children, "jobs");
}

}  // namespace

grpc::ServerUnaryReactor* JobsService::Gather(grpc::CallbackServerContext* ctx,
                                              const v1::GatherRequest* request,
                                              v1::GatherResponse* response) {
  return Unary(ctx, AfterShutdown::kAnswer, [&]() -> UnaryReply {
    // The group is admitted before its inline children are created. Its id
    // is reserved (used up) whether or not it is admitted.
    absl::Status admitted =
        CheckIdCount(request->jobs_size(), options_.max_ids_per_call, "jobs",
                     /*allow_empty=*/true);
    if (admitted.ok())
      admitted = AdmitGroup(jobs_, request->name(), request->jobs_size());
    const std::uint64_t group_id = jobs_.ReserveId();
    AWAITD_RETURN_IF_ERROR(admitted);
    auto children = jobs_.Resolve(request->jobs(), "jobs", group_id);
    if (!children.ok()) return children.status();
    JobPtr group =
        jobs_.StartGather(group_id, request->name(), *std::move(children),
                          request->return_exceptions());
    response->set_group_id(group_id);
    return new GroupCall(this, ctx, std::move(group),
                         response->mutable_results());
  });
}

grpc::ServerUnaryReactor* JobsService::RunGroup(
    grpc::CallbackServerContext* ctx, const v1::RunGroupRequest* request,
    v1::RunGroupResponse* response) {
  return Unary(ctx, AfterShutdown::kAnswer, [&]() -> UnaryReply {
    // As in Gather: the id is reserved whether or not the group is admitted.
    const absl::Status admitted =
        AdmitGroup(jobs_, request->name(), request->jobs_size());
    const std::uint64_t group_id = jobs_.ReserveId();
    AWAITD_RETURN_IF_ERROR(admitted);
    std::vector<const v1::JobSpec*> specs = SpecPointers(request->jobs());
    absl::StatusOr<std::vector<JobPtr>> children =
        specs.empty() ? std::vector<JobPtr>{}
                      : jobs_.Submit(specs, "jobs", group_id, nullptr);
    if (!children.ok()) return children.status();
    JobPtr group =
        jobs_.StartTaskGroup(group_id, request->name(), *std::move(children));
    response->set_group_id(group_id);
    return new GroupCall(this, ctx, std::move(group),
                         response->mutable_results());
  });
}

grpc::ServerWriteReactor<v1::AsCompletedResponse>* JobsService::AsCompleted(
    grpc::CallbackServerContext* ctx, const v1::AsCompletedRequest* request) {
  using Response = v1::AsCompletedResponse;
  return Stream<Response>(ctx, [&]() -> StreamReply<Response> {
    AWAITD_RETURN_IF_ERROR(CheckIdCount(request->jobs_size(),
                                        options_.max_ids_per_call, "jobs",
                                        /*allow_empty=*/true));
    auto timeout = CallTimeout(request->has_timeout(), request->timeout());
    if (!timeout.ok()) return timeout.status();
    auto jobs = jobs_.Resolve(request->jobs(), "jobs");
    if (!jobs.ok()) return jobs.status();
    std::string peer = ctx->peer();
    AWAITD_RETURN_IF_ERROR(OpenStream(peer));
    return new AsCompletedCall(this, std::move(peer), *std::move(jobs),
                               *timeout);
  });
}

grpc::ServerWriteReactor<v1::WatchResponse>* JobsService::Watch(
    grpc::CallbackServerContext* ctx, const v1::WatchRequest* request) {
  using Response = v1::WatchResponse;
  return Stream<Response>(ctx, [&]() -> StreamReply<Response> {
    std::vector<JobPtr> jobs;
    if (request->ids_size() > 0) {
      auto found = FindAll(request->ids());
      if (!found.ok()) return found.status();
      jobs = *std::move(found);
    }
    std::string peer = ctx->peer();
    AWAITD_RETURN_IF_ERROR(OpenStream(peer));
    if (request->ids_size() == 0)
      return new WatchAllCall(this, std::move(peer));
    return new WatchIdsCall(this, std::move(peer), std::move(jobs));
  });
}

grpc::ServerUnaryReactor* JobsService::List(grpc::CallbackServerContext* ctx,
                                            const v1::ListRequest* request,
                                            v1::ListResponse* response) {
  return Unary(ctx, AfterShutdown::kUnavailable, [&] {
    return jobs_.List(*request, response, options_.max_reply_bytes);
  });
}

namespace {
void FillLimit(const Limit& l, v1::Limit* out) {
  out->set_name(l.name());
  out->set_permits(l.permits());
  out->set_holders(l.holders());
  out->set_waiters(l.waiters());
}
}  // namespace

grpc::ServerUnaryReactor* JobsService::DeclareLimit(
    grpc::CallbackServerContext* ctx, const v1::DeclareLimitRequest* request,
    v1::DeclareLimitResponse* response) {
  return Unary(ctx, AfterShutdown::kAnswer, [&]() -> absl::Status {
    // Answered once stored, with a store (JobManager::DeclareLimit).
    auto limit = jobs_.DeclareLimit(request->name(), request->permits());
    if (!limit.ok()) return limit.status();
    FillLimit(**limit, response->mutable_limit());
    logger_.Log(LogLevel::kInfo,
                "component=limits event=declared name=", (*limit)->name(),
                " permits=", (*limit)->permits());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* JobsService::ListLimits(
    grpc::CallbackServerContext* ctx, const v1::ListLimitsRequest*,
    v1::ListLimitsResponse* response) {
  return Unary(ctx, AfterShutdown::kAnswer, [&] {
    for (const auto& l : jobs_.limits().List()) {
      FillLimit(*l, response->add_limits());
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* JobsService::DeleteLimit(
    grpc::CallbackServerContext* ctx, const v1::DeleteLimitRequest* request,
    v1::DeleteLimitResponse*) {
  return Unary(ctx, AfterShutdown::kAnswer, [&] {
    absl::Status s = jobs_.DeleteLimit(request->name());
    if (s.ok()) {
      logger_.Log(LogLevel::kInfo,
                  "component=limits event=deleted name=", request->name());
    }
    return s;
  });
}

grpc::ServerUnaryReactor* JobsService::ListKinds(
    grpc::CallbackServerContext* ctx, const v1::ListKindsRequest*,
    v1::ListKindsResponse* response) {
  return Unary(ctx, AfterShutdown::kAnswer, [&] {
    for (const JobKind* k : jobs_.kinds().List()) {
      v1::Kind* out = response->add_kinds();
      out->set_name(k->name);
      out->set_description(k->description);
      out->set_blocking(k->blocking);
    }
    return absl::OkStatus();
  });
}

}  // namespace awaitd::server
