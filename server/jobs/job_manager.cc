// JobManager: construction, lookup, cancel, store commits, List, limits and
// shutdown. The rest of the class is in the files job_manager_internal.h lists.
#include "server/jobs/job_manager.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/strings.h"
#include "runtime/time.h"
#include "runtime/timeout.h"
#include "server/jobs/job_manager_internal.h"
#include "server/jobs/job_watcher.h"

namespace awaitd::server {

namespace {

constexpr std::size_t kListScanLimit = 100'000;
constexpr std::string_view kPageTokenPrefix = "after:";

}  // namespace

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

}  // namespace awaitd::server
