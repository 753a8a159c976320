#include "server/jobs/job_manager.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "runtime/internal/context.h"
#include "runtime/internal/task_header.h"
#include "runtime/time.h"
#include "runtime/timeout.h"
#include "server/jobs/job_watcher.h"
#include "common/strings.h"

namespace awaitd::server {

namespace {

constexpr std::size_t kSweepChunk = 4096;
constexpr std::size_t kListScanLimit = 100'000;
constexpr std::string_view kPageTokenPrefix = "after:";

}  // namespace

absl::StatusOr<absl::Duration> DurationFromProto(
    const google::protobuf::Duration& d, absl::Duration max,
    std::string_view field) {
  if (d.seconds() < 0 || d.nanos() < 0 || d.nanos() >= 1'000'000'000) {
    return absl::InvalidArgumentError(
        StrCat(field, ": must be a non-negative duration (got ", d.seconds(),
               "s ", d.nanos(), "ns)"));
  }
  const absl::Duration out =
      absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  if (out > max) {
    return absl::InvalidArgumentError(
        StrCat(field, ": ", absl::FormatDuration(out),
               " exceeds the maximum of ", absl::FormatDuration(max)));
  }
  return out;
}

namespace {

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// Outcome of a leaf job body that returned while a Cancel() was still
// undelivered (see Job::Finish).
bool CurrentTaskCancelPending(const Job&) {
  runtime::internal::TaskHeader* t = runtime::internal::CurrentTaskHeader();
  return t != nullptr && t->IsCancelRequested();
}

// Marks the shielded children not seen yet as seen (no longer waited for).
void ForgetShielded(const std::vector<JobPtr>& children,
                    std::vector<bool>* seen, std::size_t* remaining) {
  for (std::size_t i = 0; i < children.size(); ++i) {
    if (!(*seen)[i] && children[i]->shield()) {
      (*seen)[i] = true;
      --*remaining;
    }
  }
}

}  // namespace

// A validated spec: the body is bound, the attributes filled in except the
// id and the name.
struct JobManager::Prepared {
  JobAttributes attr;
  bool named = false;
  std::size_t args_bytes = 0;
  JobBody body;
};

// A Submit's batch on its way to the store, shared by the Submit (which
// waits at most --store_timeout) and the commit's callback (which takes the
// jobs over once the Submit stopped waiting: AcceptLate).
struct JobManager::Accepting {
  absl::Mutex mu;
  bool committed ABSL_GUARDED_BY(mu) = false;
  bool abandoned ABSL_GUARDED_BY(mu) = false;  // Submit answered UNAVAILABLE
  absl::Status status ABSL_GUARDED_BY(mu);
  // The new jobs and their bodies: the Submit's until it stops waiting,
  // then the callback's.
  std::vector<Starting> jobs;
};

// A durable job's transition, stored and waiting to be published.
struct JobManager::StoredTransition {
  JobPtr job;
  JobState state;
  std::shared_ptr<runtime::Event> started;  // see OnStarted
  StoredTransition* next = nullptr;
};

// Ends a job CANCELLED if its coroutine frame is destroyed before the job
// ended (runtime shutdown destroys unfinished tasks).
class FinishGuard {
 public:
  FinishGuard(std::function<void()> on_destroy) : fn_(std::move(on_destroy)) {}
  ~FinishGuard() { fn_(); }

 private:
  std::function<void()> fn_;
};

JobManager::JobManager(runtime::Runtime& runtime, const JobKindRegistry& kinds,
                       LimitRegistry& limits, JobManagerOptions options,
                       const Logger& logger)
    : runtime_(runtime),
      kinds_(kinds),
      limits_(limits),
      options_(std::move(options)),
      logger_(logger) {}

JobManager::~JobManager() {
  // Transitions stored after the runtime stopped running a drain: nobody is
  // left to hear of them.
  StoredTransition* t = publish_head_.exchange(nullptr);
  while (t != nullptr) delete std::exchange(t, t->next);
}

void JobManager::Start() { sweeper_ = runtime_.Spawn(Sweeper()); }

std::uint64_t JobManager::ReserveId() {
  return next_id_.fetch_add(1, std::memory_order_relaxed);
}

absl::Status JobManager::Validate(const v1::JobSpec& spec,
                                  const std::string& at, Prepared* out) const {
  if (spec.kind().empty()) {
    return absl::InvalidArgumentError(StrCat(at, ".kind: required"));
  }
  const JobKind* kind = kinds_.Find(spec.kind());
  if (kind == nullptr) {
    std::vector<std::string> names;
    for (const JobKind* k : kinds_.List()) names.push_back(k->name);
    return absl::InvalidArgumentError(
        StrCat(at, ".kind: unknown job kind \"", spec.kind().substr(0, 64),
               "\" (known: ", absl::StrJoin(names, ", "), ")"));
  }
  if (spec.name().size() > options_.max_name_length) {
    return absl::InvalidArgumentError(
        StrCat(at, ".name: ", spec.name().size(),
               " bytes exceed --max_name_length=", options_.max_name_length));
  }
  if (spec.idempotency_key().size() > options_.max_name_length) {
    return absl::InvalidArgumentError(
        StrCat(at, ".idempotency_key: ", spec.idempotency_key().size(),
               " bytes exceed --max_name_length=", options_.max_name_length));
  }
  if (spec.has_args()) {
    const std::size_t bytes = spec.args().ByteSizeLong();
    if (bytes > options_.max_args_bytes) {
      return absl::InvalidArgumentError(
          StrCat(at, ".args: ", bytes,
                 " bytes exceed --max_args_bytes=", options_.max_args_bytes));
    }
    std::string path;
    if (StructDepth(spec.args(), kMaxValueDepth, &path) > kMaxValueDepth) {
      if (path.size() > 200) path = StrCat(path.substr(0, 200), "...");
      return absl::InvalidArgumentError(
          StrCat(at, ".args", path, ": nested deeper than ", kMaxValueDepth,
                 " levels of structs and lists (the limit for args and "
                 "results)"));
    }
    out->args_bytes = bytes;
  }
  JobAttributes& a = out->attr;
  a.kind = kind->name;
  a.retry_safe = kind->retry_safe;
  a.type = JobType::kLeaf;
  a.shield = spec.shield();
  a.idempotency_key = spec.idempotency_key();
  a.created_at = absl::Now();
  a.scheduled_at = a.created_at;
  if (spec.has_timeout()) {
    auto t =
        DurationFromProto(spec.timeout(), options_.max_delay, at + ".timeout");
    if (!t.ok()) return t.status();
    a.timeout = *t;
  }
  switch (spec.start_case()) {
    case v1::JobSpec::kDelay: {
      auto d =
          DurationFromProto(spec.delay(), options_.max_delay, at + ".delay");
      if (!d.ok()) return d.status();
      a.scheduled_at = a.created_at + *d;
      break;
    }
    case v1::JobSpec::kStartAt: {
      const auto& ts = spec.start_at();
      if (ts.nanos() < 0 || ts.nanos() >= 1'000'000'000 || ts.seconds() < 0) {
        return absl::InvalidArgumentError(
            StrCat(at, ".start_at: not a valid timestamp"));
      }
      const absl::Time when = FromProto(ts);
      if (when - a.created_at > options_.max_delay) {
        return absl::InvalidArgumentError(
            StrCat(at, ".start_at: more than ",
                   absl::FormatDuration(options_.max_delay), " ahead"));
      }
      // A start time in the past means "now", as loop.call_at does.
      a.scheduled_at = std::max(when, a.created_at);
      a.start_absolute = true;
      break;
    }
    case v1::JobSpec::START_NOT_SET:
      break;
  }
  if (static_cast<std::size_t>(spec.limits_size()) >
      options_.max_limits_per_job) {
    return absl::InvalidArgumentError(
        StrCat(at, ".limits: ", spec.limits_size(),
               " limits exceed the maximum of ", options_.max_limits_per_job));
  }
  for (int i = 0; i < spec.limits_size(); ++i) {
    std::shared_ptr<Limit> l = limits_.Find(spec.limits(i));
    if (l == nullptr) {
      return absl::InvalidArgumentError(
          StrCat(at, ".limits[", i, "]: unknown limit \"",
                 spec.limits(i).substr(0, 64),
                 "\" (declare it with --limit=NAME:N or DeclareLimit)"));
    }
    if (std::find(a.limits.begin(), a.limits.end(), l) != a.limits.end()) {
      return absl::InvalidArgumentError(StrCat(
          at, ".limits[", i, "]: \"", spec.limits(i), "\" is named twice"));
    }
    a.limits.push_back(std::move(l));
  }
  std::sort(
      a.limits.begin(), a.limits.end(),
      [](const std::shared_ptr<Limit>& x, const std::shared_ptr<Limit>& y) {
        return x->name() < y->name();
      });
  static const google::protobuf::Struct kNoArgs;
  absl::StatusOr<JobBody> body =
      kind->bind(spec.has_args() ? spec.args() : kNoArgs);
  if (!body.ok()) {
    return absl::Status(body.status().code(),
                        StrCat(at, ".args.", body.status().message()));
  }
  out->body = *std::move(body);
  if (!spec.name().empty()) {
    a.name = spec.name();
    out->named = true;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<JobPtr>> JobManager::Submit(
    std::span<const v1::JobSpec* const> specs, std::string_view field,
    std::uint64_t group_id, std::vector<bool>* existing,
    std::vector<JobBody>* deferred, std::span<const std::string> spec_fields) {
  if (!accepting()) {
    return absl::UnavailableError("the daemon is shutting down");
  }
  if (specs.size() > options_.max_batch) {
    return absl::ResourceExhaustedError(
        StrCat(field, ": ", specs.size(),
               " jobs in one call exceed --max_batch=", options_.max_batch));
  }
  JobStore* const store = store_.load(std::memory_order_acquire);
  std::vector<Prepared> prepared(specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    absl::Status s = Validate(
        *specs[i],
        i < spec_fields.size() ? spec_fields[i] : StrCat(field, "[", i, "]"),
        &prepared[i]);
    if (!s.ok()) return s;
    prepared[i].attr.group_id = group_id;
    prepared[i].attr.durable = store != nullptr;
  }
  std::vector<JobPtr> out(specs.size());
  std::vector<bool> is_new(specs.size(), true);
  std::size_t hits = 0;
  {
    absl::MutexLock lock(&table_mu_);
    // Checked again under the table lock: StopAccepting takes it too, so a
    // batch is either in the table before shutdown looks (and is cancelled
    // with the rest) or refused.
    if (!accepting()) {
      return absl::UnavailableError("the daemon is shutting down");
    }
    // Idempotency keys first: a retried Submit creates nothing, so it is
    // never refused for lack of room. (A key repeated inside the batch
    // names the batch's first job with it.)
    absl::flat_hash_map<std::string, std::size_t> first_with_key;
    for (std::size_t i = 0; i < prepared.size(); ++i) {
      const std::string& key = prepared[i].attr.idempotency_key;
      if (key.empty()) continue;
      auto it = idempotency_.find(key);
      if (it != idempotency_.end()) {
        auto job = jobs_.find(it->second);
        if (job != jobs_.end() && job->second->state() == JobState::kUnstored) {
          // Its Submit is waiting for the store: not acknowledged yet, and
          // it may still be refused. Nothing is promised about it here.
          return absl::UnavailableError(StrCat(
              field, ": a job with idempotency_key \"", key.substr(0, 64),
              "\" is being accepted by another call; retry"));
        }
        if (job != jobs_.end()) {
          out[i] = job->second;
          is_new[i] = false;
          ++hits;
          continue;
        }
        idempotency_.erase(it);  // its job was forgotten
      }
      auto [first, inserted] = first_with_key.emplace(key, i);
      if (!inserted) {
        is_new[i] = false;
        ++hits;
      }
    }
    // A limit deleted since Validate found it: DeleteLimit looks for the
    // jobs that name it under this lock, so either it saw this batch or
    // this sees the deletion.
    for (std::size_t i = 0; i < prepared.size(); ++i) {
      if (!is_new[i]) continue;
      for (const auto& l : prepared[i].attr.limits) {
        if (!l->removed()) continue;
        return absl::InvalidArgumentError(
            StrCat(i < spec_fields.size() ? spec_fields[i]
                                          : StrCat(field, "[", i, "]"),
                   ".limits: unknown limit \"", l->name(),
                   "\" (deleted while the job was submitted)"));
      }
    }
    // Admission, under the lock so that concurrent batches cannot overshoot
    // (jobs that finish meanwhile only make room).
    const std::size_t fresh = specs.size() - hits;
    const std::size_t before = not_done_.load(std::memory_order_relaxed);
    if (before + fresh > options_.max_pending_jobs) {
      return absl::ResourceExhaustedError(StrCat(
          field, ": ", before, " jobs are not done yet and ", fresh,
          " more would exceed --max_pending_jobs=", options_.max_pending_jobs));
    }
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < prepared.size(); ++i) {
      if (is_new[i]) bytes += kJobBaseBytes + prepared[i].args_bytes;
    }
    if (absl::Status s = CheckMemory(bytes, fresh, field); !s.ok()) return s;
    not_done_.fetch_add(fresh, std::memory_order_relaxed);
    for (std::size_t i = 0; i < prepared.size(); ++i) {
      if (!is_new[i]) continue;
      JobAttributes& a = prepared[i].attr;
      a.id = next_id_.fetch_add(1, std::memory_order_relaxed);
      if (!prepared[i].named) a.name = StrCat("Job-", ++job_names_);
      auto job = std::make_shared<Job>(std::move(a));
      Charge(*job, kJobBaseBytes + prepared[i].args_bytes);
      if (!job->attributes().idempotency_key.empty()) {
        idempotency_.emplace(job->attributes().idempotency_key, job->id());
      }
      jobs_.emplace_hint(jobs_.end(), job->id(), job);
      out[i] = std::move(job);
    }
    // In-batch repeats of a key take the job created for its first use.
    for (std::size_t i = 0; i < prepared.size(); ++i) {
      if (out[i] == nullptr) {
        out[i] = out[first_with_key.at(prepared[i].attr.idempotency_key)];
      }
    }
  }
  if (store != nullptr && out.size() > hits) {
    // Durable before anyone hears of them: one commit for the batch (shared
    // with concurrent Submits by the store's group commit). Nothing has
    // started yet, so a failure takes the batch back out whole.
    JobStore::Batch batch;
    for (std::size_t i = 0; i < out.size(); ++i) {
      if (!is_new[i]) continue;
      const Job& job = *out[i];
      StoredJob record;
      record.set_id(job.id());
      record.set_type(StoredJob::LEAF);
      *record.mutable_spec() = *specs[i];
      record.set_name(job.name());
      record.set_group_id(job.attributes().group_id);
      ToProto(job.attributes().created_at, record.mutable_created_at());
      ToProto(job.attributes().scheduled_at, record.mutable_scheduled_at());
      batch.PutJob(record);
      if (!job.attributes().idempotency_key.empty()) {
        batch.PutIdempotencyKey(job.attributes().idempotency_key, job.id());
      }
    }
    // Waited for at most --store_timeout: past it, the commit's callback
    // takes the new jobs over (AcceptLate) and this call answers
    // UNAVAILABLE.
    auto accepting = std::make_shared<Accepting>();
    for (std::size_t i = 0; i < out.size(); ++i) {
      if (is_new[i])
        accepting->jobs.push_back({out[i], std::move(prepared[i].body)});
    }
    store->Commit(std::move(batch), [this, accepting](absl::Status s) {
      {
        absl::MutexLock lock(&accepting->mu);
        accepting->status = s;
        accepting->committed = true;
        if (!accepting->abandoned) return;
      }
      AcceptLate(std::move(accepting->jobs), s);
    });
    absl::Status s;
    {
      absl::MutexLock lock(&accepting->mu);
      if (!accepting->mu.AwaitWithTimeout(
              absl::Condition(&accepting->committed), options_.store_timeout)) {
        accepting->abandoned = true;
        return StoreTimedOut(StrCat(field, ": not confirmed"));
      }
      s = accepting->status;
    }
    for (std::size_t i = 0, k = 0; i < out.size(); ++i) {
      if (is_new[i]) prepared[i].body = std::move(accepting->jobs[k++].body);
    }
    if (!s.ok()) {
      absl::MutexLock lock(&table_mu_);
      for (std::size_t i = 0; i < out.size(); ++i) {
        if (!is_new[i]) continue;
        EraseKeyLocked(*out[i]);
        jobs_.erase(out[i]->id());
        memory_.fetch_sub(out[i]->charged_bytes.exchange(0),
                          std::memory_order_relaxed);
      }
      not_done_.fetch_sub(out.size() - hits, std::memory_order_relaxed);
      return absl::Status(s.code(),
                          StrCat(field, ": not accepted: ", s.message()));
    }
  }
  std::vector<Starting> starting;
  starting.reserve(out.size() - hits);
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (!is_new[i]) continue;
    stats_.For(out[i]->attributes().kind)->submitted.Add();
    // Stored: from now on it can be seen (Get, List).
    if (store != nullptr) out[i]->Publish(JobState::kPending);
    Publish(out[i], JobState::kPending);
    starting.push_back({out[i], std::move(prepared[i].body)});
  }
  if (deferred != nullptr) {
    for (Starting& st : starting) deferred->push_back(std::move(st.body));
    starting.clear();
  }
  if (starting.size() == 1) {
    Starting& s = starting.front();
    s.job->SetTask(runtime_.Spawn(RunJob(s.job, std::move(s.body))));
  } else if (!starting.empty()) {
    // One hand-off to the runtime for the whole batch: a task that spawns
    // the jobs from a worker (into its local queue, no lock per job; idle
    // workers steal from it) instead of one global-queue push per job.
    runtime_.SpawnDetached(StartJobs(std::move(starting)));
  }
  if (logger_.Enabled(LogLevel::kDebug)) {
    for (std::size_t i = 0; i < out.size(); ++i) {
      if (!is_new[i]) continue;
      logger_.Log(LogLevel::kDebug,
                  "component=jobs event=submitted job_id=", out[i]->id(),
                  " name=", LogQuote(out[i]->name()),
                  " kind=", out[i]->attributes().kind);
    }
  }
  if (existing != nullptr) {
    existing->resize(out.size());
    for (std::size_t i = 0; i < out.size(); ++i) (*existing)[i] = !is_new[i];
  }
  return out;
}

absl::StatusOr<std::vector<JobPtr>> JobManager::Resolve(
    const google::protobuf::RepeatedPtrField<v1::JobInput>& inputs,
    std::string_view field, std::uint64_t group_id) {
  std::vector<JobPtr> out(inputs.size());
  std::vector<const v1::JobSpec*> specs;
  std::vector<int> spec_at;
  for (int i = 0; i < inputs.size(); ++i) {
    const v1::JobInput& in = inputs.Get(i);
    switch (in.input_case()) {
      case v1::JobInput::kId: {
        auto job = Find(in.id(), StrCat(field, "[", i, "].id"));
        if (!job.ok()) return job.status();
        out[i] = *std::move(job);
        break;
      }
      case v1::JobInput::kSpec:
        specs.push_back(&in.spec());
        spec_at.push_back(i);
        break;
      case v1::JobInput::INPUT_NOT_SET:
        return absl::InvalidArgumentError(
            StrCat(field, "[", i, "]: set either id or spec"));
    }
  }
  if (specs.empty()) return out;
  std::vector<std::string> spec_fields;
  spec_fields.reserve(spec_at.size());
  for (int i : spec_at) spec_fields.push_back(StrCat(field, "[", i, "].spec"));
  auto created = Submit(specs, field, group_id, nullptr, nullptr, spec_fields);
  if (!created.ok()) return created.status();
  for (std::size_t k = 0; k < spec_at.size(); ++k) {
    out[spec_at[k]] = std::move((*created)[k]);
  }
  return out;
}

absl::StatusOr<JobPtr> JobManager::Find(std::uint64_t id,
                                        std::string_view field) const {
  if (id == 0) {
    return absl::InvalidArgumentError(StrCat(field, ": job ids start at 1"));
  }
  absl::MutexLock lock(&table_mu_);
  auto it = jobs_.find(id);
  // (A job accepted but not stored yet does not exist for anyone else.)
  if (it == jobs_.end() || it->second->state() == JobState::kUnstored) {
    return absl::NotFoundError(
        StrCat(field, ": job ", id,
               " not found (unknown, or forgotten after --result_ttl)"));
  }
  return it->second;
}

bool JobManager::CancelLeaf(const JobPtr& job, std::string_view message) {
  bool ended = false;
  const bool ok = job->CancelLeaf(message, &ended);
  if (ended) OnFinished(job);
  if (ok && !ended) StoreCancelRequest(*job, message);
  if (ok) {
    logger_.Log(LogLevel::kDebug,
                "component=jobs event=cancel_requested job_id=", job->id(),
                " message=", LogQuote(message));
  }
  return ok;
}

bool JobManager::Cancel(const JobPtr& job, std::string_view message)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  // (The analysis cannot follow the group locks held by the frames of the
  // stack below: each frame holds its group's lock from BeginCancelGroup
  // until its EndCancelGroup, and frames end in reverse order.)
  if (!job->is_group()) return CancelLeaf(job, message);
  // Groups nest (a gather of gathers, to any depth): the walk keeps its own
  // stack instead of recursing. Each group is cancelled under its lock, as
  // asyncio's gather and TaskGroup cancel their children:
  // - a gather (_GatheringFuture.cancel) is cancelled if any child's
  //   cancel() was. A shielded child stands for asyncio's shield() wrapper,
  //   whose cancel() succeeds (the wrapper ends; the job inside runs on):
  //   it counts, untouched;
  // - a TaskGroup cancels its children that are not shielded, and is
  //   cancelled unless it is done.
  struct Frame {
    Job* group;
    std::size_t next = 0;  // the next child to cancel
    bool any = false;      // a child's cancel took effect
  };
  std::vector<Frame> stack;
  // Groups walked already, with their answer: a group listed twice (or
  // reached along two paths: gather(g, g) nested again and again) is
  // cancelled once, so the walk is linear in the groups, not in the paths.
  absl::flat_hash_map<const Job*, bool> walked;
  if (!job->BeginCancelGroup()) return false;
  stack.push_back({job.get()});
  for (;;) {
    Frame& f = stack.back();
    const std::vector<JobPtr>& children = f.group->children();
    if (f.next < children.size()) {
      const JobPtr& c = children[f.next++];
      const bool gather = f.group->type() == JobType::kGather;
      if (gather && c->done()) continue;
      if (c->shield()) {
        if (gather) f.any = true;
        continue;
      }
      if (!c->is_group()) {
        if (CancelLeaf(c, message)) f.any = true;
        continue;
      }
      if (auto w = walked.find(c.get()); w != walked.end()) {
        if (w->second) f.any = true;
        continue;
      }
      if (c->BeginCancelGroup()) {
        stack.push_back({c.get()});
      } else {
        walked.emplace(c.get(), false);  // done: its cancel took no effect
      }
      continue;
    }
    Job* const g = f.group;
    const bool took = g->type() == JobType::kTaskGroup || f.any;
    g->EndCancelGroup(took, message);
    stack.pop_back();
    walked.emplace(g, took);
    if (took) {
      StoreCancelRequest(*g, message);
      g->InterruptTask(message);  // stop waiting for shielded ones
    }
    if (stack.empty()) return took;
    if (took) stack.back().any = true;
  }
}

std::vector<bool> JobManager::Cancel(std::span<const JobPtr> jobs,
                                     std::string_view message) {
  // Leaves that have not started first (a running job's end can free a
  // limit one of them waits for: it must not start in between, as in
  // asyncio, where a whole list is cancelled before any task runs again),
  // then running leaves, then groups. The order is fixed once, before any
  // cancel: a job cancelled first may start before it ends, and must not be
  // cancelled twice.
  std::vector<int> rank(jobs.size());
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    rank[i] = jobs[i]->is_group() ? 2 : jobs[i]->started() ? 1 : 0;
  }
  std::vector<bool> took(jobs.size(), false);
  for (int r = 0; r < 3; ++r) {
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      if (rank[i] == r) took[i] = Cancel(jobs[i], message);
    }
  }
  return took;
}

absl::Status JobManager::AwaitStored() {
  JobStore* const store = store_.load(std::memory_order_acquire);
  if (store == nullptr) return absl::OkStatus();
  // The store runs commits in order; a full disk fails this one at once,
  // while what it follows waits for space (it is not lost): its own answer
  // does not matter, only that it came.
  if (AwaitCommit(*CommitTracked(*store, JobStore::Batch())).has_value()) {
    return absl::OkStatus();
  }
  // (Not StoreTimedOut: there is no job to retry for, and a retried cancel
  // answers false, as for any cancel that took effect before.)
  return absl::UnavailableError(StrCat("the change took effect, but ",
                                       NotConfirmed(),
                                       "; it is stored once the disk answers"));
}

// A commit whose answer someone waits for, for at most --store_timeout; the
// store's callback owns it too, so it may come after the waiter gave up.
struct JobManager::PendingCommit {
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  absl::Status status ABSL_GUARDED_BY(mu);
};

std::shared_ptr<JobManager::PendingCommit> JobManager::CommitTracked(
    JobStore& store, JobStore::Batch batch) {
  auto pending = std::make_shared<PendingCommit>();
  store.Commit(std::move(batch), [pending](absl::Status s) {
    absl::MutexLock lock(&pending->mu);
    pending->status = std::move(s);
    pending->done = true;
  });
  return pending;
}

std::optional<absl::Status> JobManager::AwaitCommit(
    PendingCommit& pending) const {
  absl::MutexLock lock(&pending.mu);
  if (!pending.mu.AwaitWithTimeout(absl::Condition(&pending.done),
                                   options_.store_timeout)) {
    return std::nullopt;
  }
  return pending.status;
}

absl::Status JobManager::AwaitLimitCommit(PendingCommit& pending) const {
  std::optional<absl::Status> s = AwaitCommit(pending);
  if (s.has_value()) return *std::move(s);
  return absl::UnavailableError(
      StrCat(NotConfirmed(), "; it is stored once the disk answers"));
}

std::string JobManager::NotConfirmed() const {
  return StrCat(
      "the job store did not confirm the write within "
      "--store_timeout=",
      absl::FormatDuration(options_.store_timeout), "; the disk may be hung");
}

absl::Status JobManager::StoreTimedOut(std::string_view what) const {
  return absl::UnavailableError(StrCat(
      what, ": ", NotConfirmed(), "; retry with the same idempotency key"));
}

void JobManager::AcceptLate(std::vector<Starting> jobs,
                            const absl::Status& status) {
  if (!status.ok()) {
    // Refused after all: forgotten, as Submit does when told in time.
    // (One that the shutdown's CancelAll ended meanwhile was counted out
    // by Ended.)
    std::size_t forgotten = 0;
    absl::MutexLock lock(&table_mu_);
    for (const Starting& st : jobs) {
      EraseKeyLocked(*st.job);
      jobs_.erase(st.job->id());
      memory_.fetch_sub(st.job->charged_bytes.exchange(0),
                        std::memory_order_relaxed);
      if (!st.job->done()) ++forgotten;
    }
    not_done_.fetch_sub(forgotten, std::memory_order_relaxed);
    logger_.Log(LogLevel::kWarning,
                "component=jobs event=late_batch_refused jobs=", jobs.size(),
                " error=", LogQuote(std::string(status.message())));
    return;
  }
  // Stored: they exist now, as a restart would find them.
  std::vector<Starting> starting;
  starting.reserve(jobs.size());
  for (Starting& st : jobs) {
    stats_.For(st.job->attributes().kind)->submitted.Add();
    // Refused only for a job the shutdown's CancelAll ended meanwhile.
    if (!st.job->Publish(JobState::kPending)) continue;
    Publish(st.job, JobState::kPending);
    starting.push_back(std::move(st));
  }
  logger_.Log(LogLevel::kWarning,
              "component=jobs event=late_batch_stored jobs=", jobs.size());
  absl::MutexLock lock(&publish_mu_);
  // After Stop() nothing runs them here: stored, they run after a restart.
  if (!runtime_stopped_ && !starting.empty())
    runtime_.SpawnDetached(StartJobs(std::move(starting)));
}

void JobManager::StoreCancelRequest(const Job& job, std::string_view message) {
  JobStore* const store = store_.load(std::memory_order_acquire);
  if (store == nullptr || !job.attributes().durable) return;
  // The shutdown's own cancels are not stored (see BeginShutdownCancel).
  if (shutdown_cancel_.load(std::memory_order_acquire)) return;
  // Not waited for: the cancel's effects (the job's end) are stored as they
  // happen; this record only tells recovery, should the daemon die first,
  // that the cancel took effect (see Recover).
  JobStore::Batch batch;
  batch.PutCancelRequest(job.id(), message);
  store->Commit(
      std::move(batch), [](absl::Status) {}, /*retry_while_full=*/true);
}

bool JobManager::CancelSibling(const JobPtr& job, std::string_view message) {
  if (job->type() != JobType::kLeaf) return Cancel(job, message);
  return job->CancelAfterStart(message);
}

void JobManager::Charge(Job& job, std::size_t bytes) {
  job.charged_bytes.fetch_add(bytes, std::memory_order_relaxed);
  memory_.fetch_add(bytes, std::memory_order_relaxed);
}

absl::Status JobManager::CheckMemory(std::size_t bytes, std::size_t jobs,
                                     std::string_view field) const {
  const std::size_t max = options_.max_memory_bytes;
  if (max == 0) return absl::OkStatus();
  const std::size_t used = memory_.load(std::memory_order_relaxed);
  if (used <= max && bytes <= max - used) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      StrCat(field, ": the daemon holds ", used, " bytes for its jobs and ",
             jobs, jobs == 1 ? " more job" : " more jobs", " (", bytes,
             " bytes) would exceed --max_memory_bytes=", max,
             "; retry once jobs finish and are forgotten (--result_ttl)"));
}

absl::Status JobManager::AdmitGroup(std::size_t children,
                                    std::string_view field) const {
  const std::size_t before = not_done_.load(std::memory_order_relaxed);
  if (before + 1 > options_.max_pending_jobs) {
    return absl::ResourceExhaustedError(
        StrCat(field, ": ", before,
               " jobs are not done yet and a group would exceed "
               "--max_pending_jobs=",
               options_.max_pending_jobs));
  }
  return CheckMemory(kJobBaseBytes + kChildBytes * children, 1, field);
}

JobPtr JobManager::StartGather(std::uint64_t id, std::string name,
                               std::vector<JobPtr> children,
                               bool return_exceptions) {
  JobAttributes a;
  a.kind = "gather";
  a.type = JobType::kGather;
  a.return_exceptions = return_exceptions;
  return StartGroup(id, std::move(name), std::move(a), std::move(children));
}

JobPtr JobManager::StartTaskGroup(std::uint64_t id, std::string name,
                                  std::vector<JobPtr> children) {
  JobAttributes a;
  a.kind = "group";
  a.type = JobType::kTaskGroup;
  return StartGroup(id, std::move(name), std::move(a), std::move(children));
}

JobPtr JobManager::StartGroup(std::uint64_t id, std::string name,
                              JobAttributes a, std::vector<JobPtr> children) {
  a.id = id;
  a.name = name.empty() ? StrCat("Group-", ++group_names_) : std::move(name);
  a.created_at = a.scheduled_at = absl::Now();
  JobStore* const store = store_.load(std::memory_order_acquire);
  a.durable = store != nullptr;
  if (store != nullptr) {
    // Stored before the caller hears of it (see below), with its
    // children's ids: recovery rebuilds it.
    StoredJob record;
    record.set_id(a.id);
    record.set_type(a.type == JobType::kGather ? StoredJob::GATHER
                                               : StoredJob::TASK_GROUP);
    record.set_name(a.name);
    record.set_return_exceptions(a.return_exceptions);
    for (const JobPtr& c : children) record.add_children(c->id());
    ToProto(a.created_at, record.mutable_created_at());
    ToProto(a.scheduled_at, record.mutable_scheduled_at());
    JobStore::Batch batch;
    batch.PutJob(record);
    // Not waited for: the group's own transitions are committed after this
    // (commit order) and published only then, and the caller acknowledges
    // the group (sends its id) once it is published RUNNING. A full disk
    // delays it, like any state change.
    store->Commit(
        std::move(batch), [](absl::Status) {}, /*retry_while_full=*/true);
  }
  auto group = std::make_shared<Job>(std::move(a));
  if (store != nullptr) {
    // Its record lists them: theirs stay while it does.
    for (const JobPtr& c : children)
      c->referrers.fetch_add(1, std::memory_order_relaxed);
  }
  Charge(*group, kJobBaseBytes + kChildBytes * children.size());
  group->set_children(std::move(children));
  Adopt(group, /*not_done=*/true);
  // A durable group is told of once stored: its RUNNING is the first event.
  if (!group->attributes().durable) Publish(group, JobState::kPending);
  StartGroupTask(group);
  return group;
}

void JobManager::StartGroupTask(const JobPtr& group) {
  group->MarkRunning();
  OnStarted(group);
  group->SetTask(runtime_.Spawn(group->type() == JobType::kGather
                                    ? RunGather(group)
                                    : RunTaskGroup(group)));
}

void JobManager::Adopt(const JobPtr& job, bool not_done) {
  {
    absl::MutexLock lock(&table_mu_);
    // (Recovery adopts in id order: a key's newest job is the one it
    // names.)
    if (!job->attributes().idempotency_key.empty())
      idempotency_.insert_or_assign(job->attributes().idempotency_key,
                                    job->id());
    jobs_.emplace_hint(jobs_.end(), job->id(), job);
  }
  if (not_done) {
    not_done_.fetch_add(1, std::memory_order_relaxed);
    stats_.For(job->attributes().kind)->submitted.Add();
  } else {
    PushFinished(job.get());  // retained like any finished job
  }
}

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

void JobManager::PushFinished(Job* job) {
  // Retention: onto the finished stack (the table keeps the job alive).
  Job* head = finished_head_.load(std::memory_order_relaxed);
  do {
    job->finished_next_ = head;
  } while (!finished_head_.compare_exchange_weak(
      head, job, std::memory_order_release, std::memory_order_relaxed));
  finished_unswept_.fetch_add(1, std::memory_order_relaxed);
}

void JobManager::EraseKeyLocked(const Job& job) {
  const std::string& key = job.attributes().idempotency_key;
  if (key.empty()) return;
  auto k = idempotency_.find(key);
  if (k != idempotency_.end() && k->second == job.id()) idempotency_.erase(k);
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

runtime::Task<void> JobManager::RunGather(JobPtr group) {
  FinishGuard guard([this, &group] {
    if (group->done()) return;
    if (group->FinishGroup(
            [](bool, const std::string&, JobState* s, auto*, auto* e) {
              *s = JobState::kCancelled;
              *e = MakeError("CancelledError",
                             "the daemon shut down before the group finished");
            })) {
      OnFinished(group);
    }
  });
  if (!group->EnterBody()) co_return;
  const std::vector<JobPtr>& children = group->children();
  const bool return_exceptions = group->attributes().return_exceptions;
  JobWatcher watcher(children, /*all_changes=*/false);
  std::vector<bool> seen(children.size(), false);
  std::size_t remaining = children.size();
  int first_error = -1;
  // Cancel() on the group interrupts this wait (Job::InterruptTask), or, if
  // it came first, is seen here.
  bool cancelled = group->cancel_requested();
  for (;;) {
    if (cancelled) {
      // A cancelled gather's outer future ends at its first cancelled child
      // (at once); with return_exceptions it waits for its children, except
      // shielded ones, whose shield() wrappers ended when cancelled.
      if (!return_exceptions) break;
      ForgetShielded(children, &seen, &remaining);
    }
    if (remaining == 0 || first_error >= 0) break;
    try {
      co_await watcher.Changed();
    } catch (const runtime::CancelledError&) {
      cancelled = true;
      continue;
    }
    for (const JobWatcher::Change& c : watcher.Take()) {
      if (seen[c.slot]) continue;
      seen[c.slot] = true;
      --remaining;
      if (!return_exceptions && c.state != JobState::kSucceeded) {
        first_error = static_cast<int>(c.slot);
        break;
      }
    }
  }
  const bool ended =
      group->FinishGroup([&](bool cancel_requested, const std::string& msg,
                             JobState* s, auto* /*result*/, auto* error) {
        if (cancel_requested) {
          // The gather itself was cancelled (and so were its children).
          *s = JobState::kCancelled;
          *error = MakeError("CancelledError", msg);
          return;
        }
        if (first_error >= 0) {
          // The first exception propagates; the other children run on. A child
          // that was cancelled counts as having raised CancelledError: the
          // group fails with it but is not itself cancelled.
          const Job& child = *children[first_error];
          *s = JobState::kFailed;
          *error = std::make_unique<v1::JobError>(*child.error());
          auto& d = *(*error)->mutable_details()->mutable_fields();
          d["job_id"].set_number_value(static_cast<double>(child.id()));
          d["index"].set_number_value(first_error);
          return;
        }
        // Its result is its children's, by reference (Job::AppendResult).
        *s = JobState::kSucceeded;
      });
  if (ended) OnFinished(group);
}

runtime::Task<void> JobManager::RunTaskGroup(JobPtr group) {
  FinishGuard guard([this, &group] {
    if (group->done()) return;
    if (group->FinishGroup(
            [](bool, const std::string&, JobState* s, auto*, auto* e) {
              *s = JobState::kCancelled;
              *e = MakeError("CancelledError",
                             "the daemon shut down before the group finished");
            })) {
      OnFinished(group);
    }
  });
  if (!group->EnterBody()) co_return;
  const std::vector<JobPtr>& children = group->children();
  JobWatcher watcher(children, /*all_changes=*/false);
  std::vector<bool> seen(children.size(), false);
  std::size_t remaining = children.size();
  std::vector<std::uint32_t> failures;
  bool cancelled = group->cancel_requested();
  for (;;) {
    // Once the group is cancelled, or a child failed, shielded children are
    // no longer waited for (their shield() wrappers were cancelled).
    if (cancelled || !failures.empty()) {
      ForgetShielded(children, &seen, &remaining);
    }
    if (remaining == 0) break;
    try {
      co_await watcher.Changed();
    } catch (const runtime::CancelledError&) {
      cancelled = true;
      continue;
    }
    for (const JobWatcher::Change& c : watcher.Take()) {
      if (seen[c.slot]) continue;
      seen[c.slot] = true;
      --remaining;
      if (c.state != JobState::kFailed) continue;
      failures.push_back(c.slot);
      if (failures.size() == 1) {
        // The first failure cancels every other child (except shielded ones).
        const std::string msg =
            StrCat("TaskGroup ", group->name(), ": sibling ",
                   children[c.slot]->name(), " failed");
        for (std::uint32_t i = 0; i < children.size(); ++i) {
          if (i != c.slot && !children[i]->shield() && !children[i]->done()) {
            CancelSibling(children[i], msg);
          }
        }
      }
    }
  }
  const bool ended = group->FinishGroup([&](bool cancel_requested,
                                            const std::string& msg, JobState* s,
                                            auto* /*result*/, auto* error) {
    if (!failures.empty()) {
      *s = JobState::kFailed;
      *error =
          MakeError("ExceptionGroup",
                    StrCat("unhandled errors in a TaskGroup (", failures.size(),
                           failures.size() == 1 ? " sub-exception)"
                                                : " sub-exceptions)"));
      auto* list =
          (*(*error)->mutable_details()->mutable_fields())["exceptions"]
              .mutable_list_value();
      for (std::uint32_t slot : failures) {
        const Job& child = *children[slot];
        auto& f = *list->add_values()->mutable_struct_value()->mutable_fields();
        f["job_id"].set_number_value(static_cast<double>(child.id()));
        f["name"].set_string_value(child.name());
        f["index"].set_number_value(slot);
        f["type"].set_string_value(child.error()->type());
        f["message"].set_string_value(child.error()->message());
      }
      return;
    }
    if (cancel_requested) {
      *s = JobState::kCancelled;
      *error = MakeError("CancelledError", msg);
      return;
    }
    *s = JobState::kSucceeded;  // by reference, as for a gather
  });
  if (ended) OnFinished(group);
}

absl::Status JobManager::List(const v1::ListRequest& request,
                              v1::ListResponse* response,
                              std::size_t max_bytes) const {
  int page_size = request.page_size();
  if (page_size < 0 || page_size > 1000) {
    return absl::InvalidArgumentError(
        StrCat("page_size: must be in 0..1000 (got ", page_size, ")"));
  }
  if (page_size == 0) page_size = 100;
  if (request.state() < 0 || request.state() > v1::JOB_STATE_CANCELLED) {
    return absl::InvalidArgumentError(
        StrCat("state: unknown value ", request.state()));
  }
  std::uint64_t start = 0;
  if (!request.page_token().empty()) {
    std::string_view tok = request.page_token();
    if (tok.rfind(kPageTokenPrefix, 0) != 0 ||
        !SimpleAtoi(tok.substr(kPageTokenPrefix.size()), &start)) {
      return absl::InvalidArgumentError(
          "page_token: malformed (pass next_page_token from a previous "
          "response)");
    }
  }
  std::vector<JobPtr> page;
  std::uint64_t next = 0;
  {
    absl::MutexLock lock(&table_mu_);
    std::size_t scanned = 0;
    std::size_t bytes = 0;
    auto it = jobs_.upper_bound(start);
    for (; it != jobs_.end(); ++it) {
      if (page.size() == static_cast<std::size_t>(page_size) ||
          ++scanned > kListScanLimit) {
        break;
      }
      const Job& j = *it->second;
      if (j.state() == JobState::kUnstored) continue;  // see Find
      if (request.state() != v1::JOB_STATE_UNSPECIFIED &&
          ToProto(j.state()) != request.state()) {
        continue;
      }
      if (!request.kind().empty() && j.attributes().kind != request.kind())
        continue;
      if (!request.name_prefix().empty() &&
          j.name().rfind(request.name_prefix(), 0) != 0) {
        continue;
      }
      const std::size_t b = j.SnapshotBytes();
      if (b > max_bytes - std::min(bytes, max_bytes)) {
        if (page.empty()) {
          return absl::ResourceExhaustedError(StrCat(
              "page: job ", j.id(), " alone takes up to ", b,
              " bytes, more than a reply may (--max_message_bytes=", max_bytes,
              "); read it with Get"));
        }
        break;  // the page ends here; the next one starts with this job
      }
      bytes += b;
      page.push_back(it->second);
    }
    // Stopped early (a full page, or the scan limit): continue after the
    // last entry examined.
    if (it != jobs_.end()) next = std::prev(it)->first;
  }
  for (const JobPtr& j : page) j->Snapshot(response->add_jobs());
  if (next != 0) response->set_next_page_token(StrCat(kPageTokenPrefix, next));
  return absl::OkStatus();
}

std::size_t JobManager::jobs_retained() const {
  absl::MutexLock lock(&table_mu_);
  return jobs_.size();
}

void JobManager::StopAccepting() {
  absl::MutexLock lock(&table_mu_);  // see Submit
  accepting_.store(false, std::memory_order_release);
}

bool JobManager::DrainRunning(absl::Time deadline) {
  absl::MutexLock lock(&idle_mu_);
  while (running_.load(std::memory_order_acquire) != 0) {
    if (idle_cv_.WaitWithDeadline(&idle_mu_, deadline)) {
      return running_.load(std::memory_order_acquire) == 0;
    }
  }
  return true;
}

bool JobManager::CancelAll(std::string_view message, absl::Time deadline) {
  std::vector<JobPtr> live;
  {
    absl::MutexLock lock(&table_mu_);
    for (const auto& [id, job] : jobs_) {
      if (!job->done()) live.push_back(job);
    }
  }
  Cancel(live, message);
  absl::MutexLock lock(&idle_mu_);
  while (not_done_.load(std::memory_order_acquire) != 0) {
    if (idle_cv_.WaitWithDeadline(&idle_mu_, deadline)) {
      return not_done_.load(std::memory_order_acquire) == 0;
    }
  }
  return true;
}

void JobManager::Stop() {
  {
    // From now on stored transitions are not published: the runtime is
    // about to stop running tasks (and the server has stopped).
    absl::MutexLock lock(&publish_mu_);
    runtime_stopped_ = true;
  }
  sweeping_stopped_.store(true, std::memory_order_release);
  if (sweeper_.valid()) sweeper_.Cancel("job manager stopping");
}

runtime::Task<void> JobManager::Sweeper() {
  absl::Time last = absl::Now();
  while (!sweeping_stopped_.load(std::memory_order_acquire)) {
    co_await runtime::Sleep(std::chrono::milliseconds(50));
    const bool over_count = finished_unswept_.load(std::memory_order_relaxed) >
                            options_.max_finished_jobs / 8;
    const absl::Time now = absl::Now();
    if (!over_count && now - last < options_.sweep_interval) continue;
    last = now;
    while (SweepSome(now, kSweepChunk)) co_await runtime::Yield();
  }
}

void JobManager::SweepNow() {
  const absl::Time now = absl::Now();
  while (SweepSome(now, kSweepChunk)) {
  }
}

bool JobManager::SweepSome(absl::Time now, std::size_t max_evictions) {
  std::vector<JobPtr> doomed;  // destroyed after the locks
  {
    absl::MutexLock sweep_lock(&sweep_mu_);
    // Take the jobs that finished since the last sweep, oldest first.
    Job* head = finished_head_.exchange(nullptr, std::memory_order_acquire);
    std::vector<Job*> fresh;
    for (Job* j = head; j != nullptr; j = j->finished_next_) fresh.push_back(j);
    finished_unswept_.fetch_sub(fresh.size(), std::memory_order_relaxed);
    for (auto it = fresh.rbegin(); it != fresh.rend(); ++it) {
      retained_.push_back({*it, now});
    }
    const absl::Time expired_before = now - options_.result_ttl;
    std::size_t evict = 0;
    while (evict < retained_.size() && evict < max_evictions &&
           (retained_.size() - evict > options_.max_finished_jobs ||
            retained_[evict].finished_seen <= expired_before)) {
      ++evict;
    }
    if (evict == 0) return false;
    doomed.reserve(evict);
    {
      absl::MutexLock lock(&table_mu_);
      for (std::size_t i = 0; i < evict; ++i) {
        Job* j = retained_[i].job;
        auto it = jobs_.find(j->id());
        if (it == jobs_.end()) continue;
        EraseKeyLocked(*j);
        doomed.push_back(std::move(it->second));
        jobs_.erase(it);
      }
    }
    retained_.erase(retained_.begin(), retained_.begin() + evict);
    for (const JobPtr& j : doomed) {
      memory_.fetch_sub(j->charged_bytes.exchange(0),
                        std::memory_order_relaxed);
    }
    if (JobStore* store = store_.load(std::memory_order_acquire);
        store != nullptr) {
      JobStore::Batch forget;
      for (const JobPtr& j : doomed) ForgetStoredLocked(j.get(), &forget);
      if (!forget.empty()) {
        store->Commit(
            std::move(forget), [](absl::Status) {}, /*retry_while_full=*/true);
      }
    }
  }
  // `doomed` goes last, after the locks: a group frees its children (and a
  // chain of groups its whole chain, see ~Job) here.
  return true;
}

void JobManager::ForgetStoredLocked(Job* job, JobStore::Batch* batch) {
  if (!job->attributes().idempotency_key.empty()) {
    batch->DeleteIdempotencyKey(job->attributes().idempotency_key);
  }
  std::vector<Job*> work{job};
  while (!work.empty()) {
    Job* j = work.back();
    work.pop_back();
    if (j->referrers.load(std::memory_order_acquire) > 0) {
      // Its last referrer deletes it; until then recovery rebuilds it for
      // them alone.
      j->forgotten_with_referrers = true;
      PutState(*j, batch, /*forgotten=*/true);
      continue;
    }
    batch->DeleteJob(j->id(), /*idempotency_key=*/"");
    for (const JobPtr& c : j->children()) {
      if (c->referrers.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
          c->forgotten_with_referrers) {
        c->forgotten_with_referrers = false;
        work.push_back(c.get());
      }
    }
  }
}

void JobManager::PutState(const Job& job, JobStore::Batch* batch,
                          bool forgotten) {
  v1::Job snap;
  job.SnapshotDecided(&snap);
  StoredState st;
  st.set_state(snap.state());
  st.set_attempt(snap.attempt());
  if (snap.has_started_at()) *st.mutable_started_at() = snap.started_at();
  if (snap.has_finished_at()) *st.mutable_finished_at() = snap.finished_at();
  if (snap.has_result()) st.mutable_result()->Swap(snap.mutable_result());
  if (snap.has_error()) st.mutable_error()->Swap(snap.mutable_error());
  st.set_forgotten(forgotten);
  batch->PutState(job.id(), st);
}

namespace {

// A stored final state and outcome, back into `job`.
void RestoreFinished(Job& job, StoredJob& r) {
  job.Restore(static_cast<JobState>(r.state()), r.attempt(),
              FromProto(r.started_at()), FromProto(r.finished_at()),
              r.has_result() ? std::make_unique<google::protobuf::Value>(
                                   std::move(*r.mutable_result()))
                             : nullptr,
              r.has_error() ? std::make_unique<v1::JobError>(
                                  std::move(*r.mutable_error()))
                            : nullptr);
}

}  // namespace

absl::StatusOr<std::shared_ptr<Limit>> JobManager::DeclareLimit(
    std::string_view name, std::uint32_t permits) {
  JobStore* const store = store_.load(std::memory_order_acquire);
  std::shared_ptr<PendingCommit> pending;
  std::shared_ptr<Limit> limit;
  {
    absl::MutexLock lock(&limit_changes_mu_);
    absl::StatusOr<std::shared_ptr<Limit>> declared =
        limits_.Declare(name, permits, LimitOrigin::kRpc);
    if (!declared.ok()) return declared.status();
    limit = *std::move(declared);
    if (store == nullptr || limit->origin() == LimitOrigin::kFlag) {
      return limit;
    }
    // Stored again when it existed: idempotent, and a declaration whose
    // first store failed gets another chance.
    JobStore::Batch batch;
    batch.PutLimit(limit->name(), limit->permits());
    pending = CommitTracked(*store, std::move(batch));
  }
  if (absl::Status status = AwaitLimitCommit(*pending); !status.ok()) {
    return absl::Status(
        status.code(),
        StrCat("limit ", limit->name(),
               " is declared but not stored (a restart would forget it; "
               "retry): ",
               status.message()));
  }
  return limit;
}

absl::Status JobManager::DeleteLimit(std::string_view name) {
  JobStore* const store = store_.load(std::memory_order_acquire);
  std::shared_ptr<PendingCommit> pending;
  std::string limit_name;
  {
    absl::MutexLock lock(&limit_changes_mu_);
    std::shared_ptr<Limit> limit = limits_.Find(name);
    if (limit == nullptr) {
      return absl::NotFoundError(
          StrCat("name: no limit \"",
                 CHexEscape(name.substr(0, LimitRegistry::kMaxNameLength)),
                 "\" is declared"));
    }
    limit_name = limit->name();
    if (limit->origin() == LimitOrigin::kFlag) {
      return absl::FailedPreconditionError(StrCat(
          "limit ", limit_name, " is declared by --limit=", limit_name, ":",
          limit->permits(),
          "; remove it from the flag and restart the daemon to delete it"));
    }
    {
      // Under the table lock, which Submit holds while it checks that its
      // limits were not removed and inserts its jobs: a job is either seen
      // here or refused there.
      absl::MutexLock table(&table_mu_);
      std::size_t users = 0;
      std::vector<std::uint64_t> first;
      for (const auto& [id, job] : jobs_) {
        if (job->done()) continue;
        const auto& named = job->attributes().limits;
        if (std::find(named.begin(), named.end(), limit) == named.end()) {
          continue;
        }
        if (++users <= 3) first.push_back(id);
      }
      if (users > 0) {
        return absl::FailedPreconditionError(StrCat(
            "limit ", limit_name, " is in use: ", users,
            " jobs not done name it (", limit->holders(), " hold a permit, ",
            limit->waiters(), " wait for one; jobs ",
            absl::StrJoin(first, ", "), users > first.size() ? ", ..." : "",
            "); cancel them or let them finish first"));
      }
      limits_.Remove(limit);
    }
    if (store == nullptr) return absl::OkStatus();
    JobStore::Batch batch;
    batch.DeleteLimit(limit_name);
    pending = CommitTracked(*store, std::move(batch));
  }
  if (absl::Status status = AwaitLimitCommit(*pending); !status.ok()) {
    return absl::Status(
        status.code(),
        StrCat("limit ", limit_name,
               " is deleted but the deletion is not stored (a restart would "
               "declare it again): ",
               status.message()));
  }
  return absl::OkStatus();
}

absl::Status JobManager::RestoreLimits(const JobStore& store,
                                       RecoveryStats* stats) {
  return store.ForEachLimit([&](std::string_view name, const StoredLimit& l) {
    absl::StatusOr<std::shared_ptr<Limit>> limit =
        limits_.Restore(name, l.permits());
    if (!limit.ok()) {
      // Another size from a --limit flag (which wins), or a record no
      // daemon would write: jobs naming it run with the flag's, or fail.
      logger_.Log(LogLevel::kWarning,
                  "component=limits event=stored_limit_ignored name=",
                  LogQuote(CHexEscape(name.substr(0, 256))),
                  " permits=", l.permits(),
                  " error=", LogQuote(limit.status().ToString()));
      return absl::OkStatus();
    }
    ++stats->limits;
    return absl::OkStatus();
  });
}

absl::StatusOr<JobManager::RecoveryStats> JobManager::Recover() {
  RecoveryStats stats;
  JobStore* const store = store_.load(std::memory_order_acquire);
  if (store == nullptr) return stats;
  const absl::Time start = absl::Now();
  std::uint64_t max_id = 0;
  std::vector<Starting> starting;
  std::vector<JobPtr> ended;      // state changed by the recovery: stored again
  std::vector<StoredJob> groups;  // rebuilt once their children are back
  // Forgotten jobs kept for the groups that list them: not in the table.
  absl::flat_hash_map<std::uint64_t, JobPtr> hidden;
  // Declared limits before the jobs: a pending job naming one that is not
  // declared yet would be failed as unrunnable.
  if (absl::Status s = RestoreLimits(*store, &stats); !s.ok()) return s;
  absl::Status status = store->ForEachJob([&](StoredJob&& r) {
    ++stats.jobs;
    max_id = std::max(max_id, r.id());
    if (r.type() != StoredJob::LEAF) {
      groups.push_back(std::move(r));
      return absl::OkStatus();
    }
    const JobState state = static_cast<JobState>(r.state());
    const std::string at = StrCat("stored job ", r.id());
    Prepared p;
    absl::Status valid = Validate(r.spec(), at, &p);
    JobAttributes& a = p.attr;
    if (!valid.ok()) {
      // Its kind or a limit is gone (or a bound changed): keep what is
      // known, without a body.
      a = JobAttributes();
      const JobKind* kind = kinds_.Find(r.spec().kind());
      a.kind = kind != nullptr ? std::string_view(kind->name)
                               : std::string_view("unknown");
      a.shield = r.spec().shield();
      a.idempotency_key = r.spec().idempotency_key();
    }
    a.id = r.id();
    a.name = r.name();
    a.group_id = r.group_id();
    a.created_at = FromProto(r.created_at());
    a.scheduled_at = FromProto(r.scheduled_at());
    a.start_absolute = true;  // a wall-clock time now, whatever it was
    a.durable = true;
    auto job = std::make_shared<Job>(std::move(a));
    // Set when `valid`: the kind is registered.
    const JobKind* kind = valid.ok() ? kinds_.Find(r.spec().kind()) : nullptr;
    bool run = false;
    if (IsFinal(state)) {
      ++stats.finished;
      RestoreFinished(*job, r);
    } else if (!valid.ok()) {
      ++stats.unrunnable;
      job->Restore(JobState::kFailed, r.attempt(), absl::Time(), absl::Now(),
                   nullptr,
                   MakeError("RecoveryError",
                             StrCat("cannot run it again after a restart: ",
                                    valid.message())));
      ended.push_back(job);
    } else if (r.cancel_requested()) {
      // A cancel took effect (while it ran, or while it waited for its start
      // time or a limit); the daemon died before it ended: it ends as the
      // cancel would have had it (not run again).
      ++stats.cancelled;
      job->Restore(JobState::kCancelled, r.attempt(), FromProto(r.started_at()),
                   absl::Now(), nullptr,
                   MakeError("CancelledError", r.cancel_message()));
      ended.push_back(job);
    } else if (state == JobState::kRunning &&
               !(kind->retry_safe && r.attempt() < kMaxAttempts)) {
      ++stats.interrupted;
      job->Restore(
          JobState::kFailed, r.attempt(), FromProto(r.started_at()),
          absl::Now(), nullptr,
          MakeError(
              "InterruptedError",
              kind->retry_safe
                  ? StrCat("the daemon stopped while it ran, ", r.attempt(),
                           " times; not run again")
                  : StrCat("the daemon stopped while it ran; its kind \"",
                           r.spec().kind(), "\" is not safe to run again")));
      ended.push_back(job);
    } else {
      if (state == JobState::kRunning) {
        ++stats.rerun;
      } else {
        ++stats.pending;
      }
      job->Restore(JobState::kPending, r.attempt(), absl::Time(), absl::Time(),
                   nullptr, nullptr);
      run = true;
    }
    if (r.forgotten() && IsFinal(state)) {
      // Only its groups know it (see ForgetStoredLocked).
      job->forgotten_with_referrers = true;
      hidden.emplace(job->id(), job);
      return absl::OkStatus();
    }
    Charge(*job, kJobBaseBytes + r.spec().args().ByteSizeLong() +
                     (run ? 0 : job->outcome_bytes()));
    Adopt(job, /*not_done=*/run);
    if (run) starting.push_back({job, std::move(p.body)});
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  if (max_id >= next_id_.load(std::memory_order_relaxed))
    next_id_.store(max_id + 1, std::memory_order_relaxed);
  // Groups, by increasing id: a group's children are leaves (any id) or
  // older groups, all in the table by now.
  std::vector<JobPtr> rerun_groups;
  for (StoredJob& r : groups) {
    JobAttributes a;
    a.id = r.id();
    a.name = r.name();
    a.type =
        r.type() == StoredJob::GATHER ? JobType::kGather : JobType::kTaskGroup;
    a.kind = a.type == JobType::kGather ? "gather" : "group";
    a.return_exceptions = r.return_exceptions();
    a.group_id = r.group_id();
    a.created_at = FromProto(r.created_at());
    a.scheduled_at = FromProto(r.scheduled_at());
    a.durable = true;
    std::vector<JobPtr> children;
    std::vector<std::uint64_t> missing;
    {
      absl::MutexLock lock(&table_mu_);
      for (std::uint64_t c : r.children()) {
        if (auto it = jobs_.find(c); it != jobs_.end()) {
          children.push_back(it->second);
        } else if (auto h = hidden.find(c); h != hidden.end()) {
          children.push_back(h->second);
        } else {
          missing.push_back(c);
        }
      }
    }
    const JobState state = static_cast<JobState>(r.state());
    auto job = std::make_shared<Job>(std::move(a));
    // Its record lists them: theirs stay while it does.
    for (const JobPtr& c : children)
      c->referrers.fetch_add(1, std::memory_order_relaxed);
    const std::size_t base = kJobBaseBytes + kChildBytes * children.size();
    job->set_children(std::move(children));
    bool run = false;
    if (r.forgotten() && IsFinal(state)) {
      r.clear_result();
      RestoreFinished(*job, r);
      job->forgotten_with_referrers = true;
      hidden.emplace(job->id(), std::move(job));
      continue;
    }
    Charge(*job, base);
    if (IsFinal(state) &&
        !(state == JobState::kSucceeded && !missing.empty())) {
      ++stats.finished;
      r.clear_result();  // (a record from before results by reference)
      RestoreFinished(*job, r);
      Charge(*job, state == JobState::kSucceeded ? 0 : job->outcome_bytes());
    } else if (IsFinal(state)) {
      // Its result is its children's, and one of them is gone (a group
      // made with an id the sweep was forgetting at that very moment):
      // say so rather than answer a partial list.
      ++stats.unrunnable;
      job->Restore(
          JobState::kFailed, r.attempt(), FromProto(r.started_at()),
          FromProto(r.finished_at()), nullptr,
          MakeError(
              "RecoveryError",
              StrCat("the group succeeded, but its child job ", missing.front(),
                     " was forgotten: its result cannot be rebuilt")));
      ended.push_back(job);
    } else if (!missing.empty()) {
      // A child finished and was forgotten (--result_ttl) while the group
      // waited for the others: the group's result cannot be made whole.
      ++stats.unrunnable;
      job->Restore(
          JobState::kFailed, r.attempt(), FromProto(r.started_at()),
          absl::Now(), nullptr,
          MakeError("RecoveryError",
                    StrCat("cannot rebuild the group after a "
                           "restart: its child job ",
                           missing.front(), " was forgotten (--result_ttl)")));
      ended.push_back(job);
    } else {
      ++stats.groups;
      job->Restore(JobState::kPending, r.attempt(), absl::Time(), absl::Time(),
                   nullptr, nullptr);
      // A cancel that took effect: the group's coroutine sees it at once.
      if (r.cancel_requested()) job->RestoreCancel(r.cancel_message());
      run = true;
    }
    Adopt(job, /*not_done=*/run);
    if (run) rerun_groups.push_back(std::move(job));
  }
  if (!ended.empty()) {
    // What recovery decided is stored before anyone can ask.
    JobStore::Batch batch;
    for (const JobPtr& j : ended) PutState(*j, &batch);
    if (absl::Status s = store->CommitAndWait(std::move(batch)); !s.ok()) {
      return absl::Status(
          s.code(), StrCat("storing the jobs recovery ended: ", s.message()));
    }
  }
  if (!starting.empty()) runtime_.SpawnDetached(StartJobs(std::move(starting)));
  // Each group's coroutine starts over: children that ended are seen at
  // once, the others are waited for (gather and TaskGroup rules alike).
  for (const JobPtr& g : rerun_groups) StartGroupTask(g);
  stats.took = absl::Now() - start;
  return stats;
}

}  // namespace awaitd::server
