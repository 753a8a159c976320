// What the files of JobManager share and nobody else needs: the private
// types it declares in job_manager.h, and a few helpers. JobManager is one
// class in several files, one per concern:
//   job_manager.cc  construction, lookup, cancel, store commits, List,
//                   limits, shutdown
//   submit.cc       Validate and Submit: specs into accepted jobs
//   run.cc          starting and running leaves, storing then publishing
//                   their transitions
//   groups.cc       Gather and TaskGroup: starting and running groups
//   retention.cc    forgetting finished jobs (--result_ttl,
//                   --max_finished_jobs)
//   recovery.cc     rebuilding jobs, groups and limits from the store
//
// Thread safety: as JobManager's (job_manager.h).
#ifndef AWAITD_SERVER_JOBS_JOB_MANAGER_INTERNAL_H_
#define AWAITD_SERVER_JOBS_JOB_MANAGER_INTERNAL_H_

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/strings.h"
#include "runtime/event.h"
#include "server/jobs/job.h"
#include "server/jobs/job_manager.h"

namespace awaitd::server {

// A validated spec: the body is bound, the attributes filled in except the
// id and the name.
struct JobManager::Prepared {
  JobAttributes attr;
  bool named = false;
  std::size_t args_bytes = 0;
  JobBody body;
};

// One Submit's batch, through Submit's phases (InsertBatch, StoreBatch,
// StartBatch): `out[i]` is the job for `specs[i]`, new or found by its
// idempotency key (then `is_new[i]` is false; `hits` counts those).
struct JobManager::SubmitBatch {
  std::span<const v1::JobSpec* const> specs;
  std::string_view field;
  std::span<const std::string> spec_fields;
  std::vector<Prepared> prepared;
  std::vector<JobPtr> out;
  std::vector<bool> is_new;
  std::size_t hits = 0;

  std::size_t fresh() const { return out.size() - hits; }
  // Where specs[i] came from, for messages ("jobs[3]").
  std::string SpecField(std::size_t i) const {
    return i < spec_fields.size() ? spec_fields[i] : StrCat(field, "[", i, "]");
  }
};

// What Recover gathers while it reads the store (RecoverLeaf, RecoverGroup).
struct JobManager::Recovery {
  RecoveryStats stats;
  std::uint64_t max_id = 0;
  std::vector<Starting> starting;  // leaves to run again
  std::vector<JobPtr> ended;      // state changed by the recovery: stored again
  std::vector<StoredJob> groups;  // rebuilt once their children are back
  std::vector<JobPtr> rerun_groups;
  // Forgotten jobs kept for the groups that list them: not in the table.
  absl::flat_hash_map<std::uint64_t, JobPtr> hidden;
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

}  // namespace awaitd::server

#endif  // AWAITD_SERVER_JOBS_JOB_MANAGER_INTERNAL_H_
