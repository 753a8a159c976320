// JobManager, submit: Validate and Submit turn specs into accepted jobs
// (validation, idempotency keys, memory admission, the store commit, and
// jobs accepted after their Submit stopped waiting).
#include <algorithm>
#include <utility>

#include "absl/time/clock.h"
#include "common/status.h"
#include "common/strings.h"
#include "server/jobs/job_manager.h"
#include "server/jobs/job_manager_internal.h"
#include "server/store/job_record.h"

namespace awaitd::server {

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
  SubmitBatch b{.specs = specs, .field = field, .spec_fields = spec_fields};
  b.prepared.resize(specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    AWAITD_RETURN_IF_ERROR(Validate(*specs[i], b.SpecField(i), &b.prepared[i]));
    b.prepared[i].attr.group_id = group_id;
    b.prepared[i].attr.durable = store != nullptr;
  }
  AWAITD_RETURN_IF_ERROR(InsertBatch(b));
  if (store != nullptr && b.fresh() > 0) {
    AWAITD_RETURN_IF_ERROR(StoreBatch(b, *store));
  }
  StartBatch(b, store != nullptr, deferred);
  if (existing != nullptr) {
    existing->resize(b.out.size());
    for (std::size_t i = 0; i < b.out.size(); ++i)
      (*existing)[i] = !b.is_new[i];
  }
  return std::move(b.out);
}

absl::Status JobManager::InsertBatch(SubmitBatch& b) {
  const std::size_t n = b.prepared.size();
  b.out.assign(n, nullptr);
  b.is_new.assign(n, true);
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
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& key = b.prepared[i].attr.idempotency_key;
    if (key.empty()) continue;
    auto it = idempotency_.find(key);
    if (it != idempotency_.end()) {
      auto job = jobs_.find(it->second);
      if (job != jobs_.end() && job->second->state() == JobState::kUnstored) {
        // Its Submit is waiting for the store: not acknowledged yet, and
        // it may still be refused. Nothing is promised about it here.
        return absl::UnavailableError(StrCat(
            b.field, ": a job with idempotency_key \"", key.substr(0, 64),
            "\" is being accepted by another call; retry"));
      }
      if (job != jobs_.end()) {
        b.out[i] = job->second;
        b.is_new[i] = false;
        ++b.hits;
        continue;
      }
      idempotency_.erase(it);  // its job was forgotten
    }
    auto [first, inserted] = first_with_key.emplace(key, i);
    if (!inserted) {
      b.is_new[i] = false;
      ++b.hits;
    }
  }
  // A limit deleted since Validate found it: DeleteLimit looks for the
  // jobs that name it under this lock, so either it saw this batch or
  // this sees the deletion.
  for (std::size_t i = 0; i < n; ++i) {
    if (!b.is_new[i]) continue;
    for (const auto& l : b.prepared[i].attr.limits) {
      if (!l->removed()) continue;
      return absl::InvalidArgumentError(
          StrCat(b.SpecField(i), ".limits: unknown limit \"", l->name(),
                 "\" (deleted while the job was submitted)"));
    }
  }
  // Admission, under the lock so that concurrent batches cannot overshoot
  // (jobs that finish meanwhile only make room).
  const std::size_t fresh = b.fresh();
  const std::size_t before = not_done_.load(std::memory_order_relaxed);
  if (before + fresh > options_.max_pending_jobs) {
    return absl::ResourceExhaustedError(StrCat(
        b.field, ": ", before, " jobs are not done yet and ", fresh,
        " more would exceed --max_pending_jobs=", options_.max_pending_jobs));
  }
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (b.is_new[i]) bytes += kJobBaseBytes + b.prepared[i].args_bytes;
  }
  AWAITD_RETURN_IF_ERROR(CheckMemory(bytes, fresh, b.field));
  not_done_.fetch_add(fresh, std::memory_order_relaxed);
  for (std::size_t i = 0; i < n; ++i) {
    if (!b.is_new[i]) continue;
    JobAttributes& a = b.prepared[i].attr;
    a.id = next_id_.fetch_add(1, std::memory_order_relaxed);
    if (!b.prepared[i].named) a.name = StrCat("Job-", ++job_names_);
    auto job = std::make_shared<Job>(std::move(a));
    Charge(*job, kJobBaseBytes + b.prepared[i].args_bytes);
    if (!job->attributes().idempotency_key.empty()) {
      idempotency_.emplace(job->attributes().idempotency_key, job->id());
    }
    jobs_.emplace_hint(jobs_.end(), job->id(), job);
    b.out[i] = std::move(job);
  }
  // In-batch repeats of a key take the job created for its first use.
  for (std::size_t i = 0; i < n; ++i) {
    if (b.out[i] == nullptr) {
      b.out[i] = b.out[first_with_key.at(b.prepared[i].attr.idempotency_key)];
    }
  }
  return absl::OkStatus();
}

absl::Status JobManager::StoreBatch(SubmitBatch& b, JobStore& store) {
  // Durable before anyone hears of them: one commit for the batch (shared
  // with concurrent Submits by the store's group commit). Nothing has
  // started yet, so a failure takes the batch back out whole.
  JobStore::Batch batch;
  for (std::size_t i = 0; i < b.out.size(); ++i) {
    if (!b.is_new[i]) continue;
    const Job& job = *b.out[i];
    batch.PutJob(LeafRecord({.id = job.id(),
                             .name = job.name(),
                             .group_id = job.attributes().group_id,
                             .created_at = job.attributes().created_at,
                             .scheduled_at = job.attributes().scheduled_at},
                            *b.specs[i]));
    if (!job.attributes().idempotency_key.empty()) {
      batch.PutIdempotencyKey(job.attributes().idempotency_key, job.id());
    }
  }
  // Waited for at most --store_timeout: past it, the commit's callback
  // takes the new jobs over (AcceptLate) and this call answers
  // UNAVAILABLE.
  auto accepting = std::make_shared<Accepting>();
  for (std::size_t i = 0; i < b.out.size(); ++i) {
    if (b.is_new[i])
      accepting->jobs.push_back({b.out[i], std::move(b.prepared[i].body)});
  }
  store.Commit(std::move(batch), [this, accepting](absl::Status s) {
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
    if (!accepting->mu.AwaitWithTimeout(absl::Condition(&accepting->committed),
                                        options_.store_timeout)) {
      accepting->abandoned = true;
      return StoreTimedOut(StrCat(b.field, ": not confirmed"));
    }
    s = accepting->status;
  }
  for (std::size_t i = 0, k = 0; i < b.out.size(); ++i) {
    if (b.is_new[i]) b.prepared[i].body = std::move(accepting->jobs[k++].body);
  }
  if (s.ok()) return s;
  absl::MutexLock lock(&table_mu_);
  for (std::size_t i = 0; i < b.out.size(); ++i) {
    if (!b.is_new[i]) continue;
    EraseKeyLocked(*b.out[i]);
    jobs_.erase(b.out[i]->id());
    memory_.fetch_sub(b.out[i]->charged_bytes.exchange(0),
                      std::memory_order_relaxed);
  }
  not_done_.fetch_sub(b.fresh(), std::memory_order_relaxed);
  return absl::Status(s.code(),
                      StrCat(b.field, ": not accepted: ", s.message()));
}

void JobManager::StartBatch(SubmitBatch& b, bool durable,
                            std::vector<JobBody>* deferred) {
  std::vector<Starting> starting;
  starting.reserve(b.fresh());
  for (std::size_t i = 0; i < b.out.size(); ++i) {
    if (!b.is_new[i]) continue;
    stats_.For(b.out[i]->attributes().kind)->submitted.Add();
    // Stored: from now on it can be seen (Get, List).
    if (durable) b.out[i]->Publish(JobState::kPending);
    Publish(b.out[i], JobState::kPending);
    starting.push_back({b.out[i], std::move(b.prepared[i].body)});
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
    for (std::size_t i = 0; i < b.out.size(); ++i) {
      if (!b.is_new[i]) continue;
      logger_.Log(LogLevel::kDebug,
                  "component=jobs event=submitted job_id=", b.out[i]->id(),
                  " name=", LogQuote(b.out[i]->name()),
                  " kind=", b.out[i]->attributes().kind);
    }
  }
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

}  // namespace awaitd::server
