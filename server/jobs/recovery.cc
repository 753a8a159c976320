// JobManager, recovery: at start-up, the jobs, groups and limits the store
// holds are rebuilt; unfinished leaves run again (or fail, when not
// retry_safe and interrupted), groups wait for their children again.
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "common/status.h"
#include "common/strings.h"
#include "server/jobs/job_manager.h"
#include "server/jobs/job_manager_internal.h"
#include "server/store/job_record.h"

namespace awaitd::server {

namespace {

// A stored final state and outcome, back into `job`.
void RestoreFinished(Job& job, StoredJob& r) {
  StoredOutcome o = TakeOutcome(r);
  job.Restore(static_cast<JobState>(o.state), o.attempt, o.started_at,
              o.finished_at, std::move(o.result), std::move(o.error));
}

}  // namespace

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
  JobStore* const store = store_.load(std::memory_order_acquire);
  if (store == nullptr) return RecoveryStats();
  const absl::Time start = absl::Now();
  Recovery rec;
  // Declared limits before the jobs: a pending job naming one that is not
  // declared yet would be failed as unrunnable.
  AWAITD_RETURN_IF_ERROR(RestoreLimits(*store, &rec.stats));
  AWAITD_RETURN_IF_ERROR(store->ForEachJob([&](StoredJob&& r) {
    ++rec.stats.jobs;
    rec.max_id = std::max(rec.max_id, r.id());
    if (r.type() == StoredJob::LEAF) {
      RecoverLeaf(std::move(r), rec);
    } else {
      rec.groups.push_back(std::move(r));
    }
    return absl::OkStatus();
  }));
  if (rec.max_id >= next_id_.load(std::memory_order_relaxed))
    next_id_.store(rec.max_id + 1, std::memory_order_relaxed);
  // Groups, by increasing id: a group's children are leaves (any id) or
  // older groups, all in the table by now.
  for (StoredJob& r : rec.groups) RecoverGroup(r, rec);
  if (!rec.ended.empty()) {
    // What recovery decided is stored before anyone can ask.
    JobStore::Batch batch;
    for (const JobPtr& j : rec.ended) PutState(*j, &batch);
    if (absl::Status s = store->CommitAndWait(std::move(batch)); !s.ok()) {
      return absl::Status(
          s.code(), StrCat("storing the jobs recovery ended: ", s.message()));
    }
  }
  if (!rec.starting.empty())
    runtime_.SpawnDetached(StartJobs(std::move(rec.starting)));
  // Each group's coroutine starts over: children that ended are seen at
  // once, the others are waited for (gather and TaskGroup rules alike).
  for (const JobPtr& g : rec.rerun_groups) StartGroupTask(g);
  rec.stats.took = absl::Now() - start;
  return rec.stats;
}

// A stored leaf, back into the table: finished as it was, failed or
// cancelled as the restart decides, or to run again.
void JobManager::RecoverLeaf(StoredJob&& r, Recovery& rec) {
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
    ++rec.stats.finished;
    RestoreFinished(*job, r);
  } else if (!valid.ok()) {
    ++rec.stats.unrunnable;
    job->Restore(
        JobState::kFailed, r.attempt(), absl::Time(), absl::Now(), nullptr,
        MakeError(
            "RecoveryError",
            StrCat("cannot run it again after a restart: ", valid.message())));
    rec.ended.push_back(job);
  } else if (r.cancel_requested()) {
    // A cancel took effect (while it ran, or while it waited for its start
    // time or a limit); the daemon died before it ended: it ends as the
    // cancel would have had it (not run again).
    ++rec.stats.cancelled;
    job->Restore(JobState::kCancelled, r.attempt(), FromProto(r.started_at()),
                 absl::Now(), nullptr,
                 MakeError("CancelledError", r.cancel_message()));
    rec.ended.push_back(job);
  } else if (state == JobState::kRunning &&
             !(kind->retry_safe && r.attempt() < kMaxAttempts)) {
    ++rec.stats.interrupted;
    job->Restore(
        JobState::kFailed, r.attempt(), FromProto(r.started_at()), absl::Now(),
        nullptr,
        MakeError(
            "InterruptedError",
            kind->retry_safe
                ? StrCat("the daemon stopped while it ran, ", r.attempt(),
                         " times; not run again")
                : StrCat("the daemon stopped while it ran; its kind \"",
                         r.spec().kind(), "\" is not safe to run again")));
    rec.ended.push_back(job);
  } else {
    if (state == JobState::kRunning) {
      ++rec.stats.rerun;
    } else {
      ++rec.stats.pending;
    }
    job->Restore(JobState::kPending, r.attempt(), absl::Time(), absl::Time(),
                 nullptr, nullptr);
    run = true;
  }
  if (r.forgotten() && IsFinal(state)) {
    // Only its groups know it (see ForgetStoredLocked).
    job->forgotten_with_referrers = true;
    rec.hidden.emplace(job->id(), job);
    return;
  }
  Charge(*job, kJobBaseBytes + r.spec().args().ByteSizeLong() +
                   (run ? 0 : job->outcome_bytes()));
  Adopt(job, /*not_done=*/run);
  if (run) rec.starting.push_back({job, std::move(p.body)});
}

// A stored group, once every leaf is back: its children found again by id.
void JobManager::RecoverGroup(StoredJob& r, Recovery& rec) {
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
      } else if (auto h = rec.hidden.find(c); h != rec.hidden.end()) {
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
    rec.hidden.emplace(job->id(), std::move(job));
    return;
  }
  Charge(*job, base);
  if (IsFinal(state) && !(state == JobState::kSucceeded && !missing.empty())) {
    ++rec.stats.finished;
    r.clear_result();  // (a record from before results by reference)
    RestoreFinished(*job, r);
    Charge(*job, state == JobState::kSucceeded ? 0 : job->outcome_bytes());
  } else if (IsFinal(state)) {
    // Its result is its children's, and one of them is gone (a group
    // made with an id the sweep was forgetting at that very moment):
    // say so rather than answer a partial list.
    ++rec.stats.unrunnable;
    job->Restore(
        JobState::kFailed, r.attempt(), FromProto(r.started_at()),
        FromProto(r.finished_at()), nullptr,
        MakeError(
            "RecoveryError",
            StrCat("the group succeeded, but its child job ", missing.front(),
                   " was forgotten: its result cannot be rebuilt")));
    rec.ended.push_back(job);
  } else if (!missing.empty()) {
    // A child finished and was forgotten (--result_ttl) while the group
    // waited for the others: the group's result cannot be made whole.
    ++rec.stats.unrunnable;
    job->Restore(
        JobState::kFailed, r.attempt(), FromProto(r.started_at()), absl::Now(),
        nullptr,
        MakeError("RecoveryError",
                  StrCat("cannot rebuild the group after a "
                         "restart: its child job ",
                         missing.front(), " was forgotten (--result_ttl)")));
    rec.ended.push_back(job);
  } else {
    ++rec.stats.groups;
    job->Restore(JobState::kPending, r.attempt(), absl::Time(), absl::Time(),
                 nullptr, nullptr);
    // A cancel that took effect: the group's coroutine sees it at once.
    if (r.cancel_requested()) job->RestoreCancel(r.cancel_message());
    run = true;
  }
  Adopt(job, /*not_done=*/run);
  if (run) rec.rerun_groups.push_back(std::move(job));
}

}  // namespace awaitd::server
