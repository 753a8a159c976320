// JobManager: the daemon's table of jobs, and the asyncio semantics behind
// every RPC that creates, cancels or groups them.
//
//   JobManager jobs(runtime, kinds, limits, options, logger);
//   jobs.Start();
//   auto created = jobs.Submit(specs, "jobs", /*group_id=*/0, nullptr);
//   jobs.Cancel(created->front(), "no longer needed");
//   ...
//   jobs.StopAccepting();                  // shutdown, in this order
//   jobs.DrainRunning(deadline);
//   jobs.CancelAll("daemon shutting down", deadline);
//   jobs.Stop();
//
// Each leaf job runs as one runtime task (RunJob): wait for its start time,
// acquire its limits (FIFO, in name order), run the kind's body under its own
// timeout, store the outcome. A group job (Gather, RunGroup) is a task that
// watches its children with asyncio's gather / TaskGroup rules.
//
// Finished jobs are retained for `result_ttl`, and at most
// `max_finished_jobs` of them (the oldest are forgotten first), so memory
// stays bounded under a steady stream of jobs. A background sweep forgets
// them; a forgotten id is NOT_FOUND.
//
// Durable jobs (a store given to Recover): Submit, AwaitStored (which the
// Cancel RPC calls), DeclareLimit and DeleteLimit answer only once their
// change is stored, so they wait for the store's commit, at most
// `store_timeout` (UNAVAILABLE past it; the change still lands). Nothing
// else waits on the disk.
//
// The class is split by concern over several files (job_manager_internal.h
// lists them).
//
// Thread safety: every method is safe from any thread that is not blocked on
// the runtime; apart from the store waits above, none blocks for long (the
// table lock is held for the insertion of one batch at most). Methods called
// from a worker (the jobs' own tasks) never wait.
#ifndef AWAITD_SERVER_JOBS_JOB_MANAGER_H_
#define AWAITD_SERVER_JOBS_JOB_MANAGER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "awaitd/v1/jobs.pb.h"
#include "common/logger.h"
#include "runtime/event.h"
#include "runtime/runtime.h"
#include "server/jobs/job.h"
#include "server/jobs/job_stats.h"
#include "server/jobs/limits.h"
#include "server/kinds/job_kind.h"
#include "server/store/store.h"

namespace awaitd::server {

struct JobManagerOptions {
  // Jobs in one Submit (or inline in one combinator call).
  std::size_t max_batch = 10'000;
  // Jobs not done yet (pending + running), across all clients.
  std::size_t max_pending_jobs = 2'000'000;
  // Serialized size of one job's args.
  std::size_t max_args_bytes = 64 * 1024;
  // Length of a job name and of an idempotency key.
  std::size_t max_name_length = 256;
  // Limits one job may name.
  std::size_t max_limits_per_job = 16;
  // Limits declared at once (LimitRegistry::set_max_limits; the daemon
  // applies it before it declares the --limit flags).
  std::size_t max_limits = LimitRegistry::kDefaultMaxLimits;
  // Longest delay (or start_at distance) and job timeout accepted.
  absl::Duration max_delay = absl::Hours(24 * 366);
  // Retention of finished jobs.
  absl::Duration result_ttl = absl::Hours(1);
  std::size_t max_finished_jobs = 1'000'000;
  // How often the retention sweep runs (it also runs when the count limit
  // is exceeded by an eighth).
  absl::Duration sweep_interval = absl::Seconds(1);
  // Serialized size of one leaf job's result: a bigger one fails the job
  // (ResultTooLargeError) rather than be kept, stored and sent.
  std::size_t max_result_bytes = 16 * 1024 * 1024;
  // What the jobs in the table may hold, in bytes: each job's record and
  // args (kJobBaseBytes + args, for a group + kChildBytes per child) from
  // admission, its outcome (error, or a leaf's result) from its end, until
  // it is forgotten. A Submit, Gather or RunGroup that would pass it is
  // refused (RESOURCE_EXHAUSTED naming --max_memory_bytes). 0: no limit.
  std::size_t max_memory_bytes = 0;
  // With a store: how long a call waits for the store to confirm a write
  // (Submit's batch, Cancel's record) before it answers UNAVAILABLE, so
  // that a hung disk cannot hold gRPC threads (see Submit).
  absl::Duration store_timeout = absl::Seconds(10);
};

// The memory budget's estimate of one job (Job, its table entries, its
// coroutine frame while it runs), and of one child in a group's list.
inline constexpr std::size_t kJobBaseBytes = 1024;
inline constexpr std::size_t kChildBytes = 24;

// One state change, for Watch streams over every job.
struct JobEvent {
  JobPtr job;
  JobState state;
};

// Receives every job's state changes (Watch with no ids). Called on the
// thread that made the change, without any job lock, possibly concurrently:
// must be quick and must not block.
class JobEventListener {
 public:
  virtual void OnJobEvent(const JobPtr& job, JobState state) = 0;

 protected:
  ~JobEventListener() = default;
};

class JobManager {
 public:
  JobManager(runtime::Runtime& runtime, const JobKindRegistry& kinds,
             LimitRegistry& limits, JobManagerOptions options,
             const Logger& logger);
  // Requires Stop() (or that Start() was never called).
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  const JobManagerOptions& options() const { return options_; }
  const JobKindRegistry& kinds() const { return kinds_; }
  LimitRegistry& limits() { return limits_; }

  // The DeclareLimit RPC: LimitRegistry::Declare (within --max_limits) and,
  // with a store, the declaration stored before it returns, so that jobs
  // naming it still run after a restart (Recover declares stored limits
  // before it queues jobs). A limit from a --limit flag is returned as it
  // is and not stored (the flag declares it at every start). If the store
  // fails, the limit stays declared (jobs may already use it) and the error
  // (the store's code) says it is not stored; a retry stores it. Blocks on
  // the store: not from a worker.
  absl::StatusOr<std::shared_ptr<Limit>> DeclareLimit(std::string_view name,
                                                      std::uint32_t permits)
      ABSL_LOCKS_EXCLUDED(limit_changes_mu_, table_mu_);
  // The DeleteLimit RPC. NOT_FOUND if `name` is not declared.
  // FAILED_PRECONDITION if it came from a --limit flag, or while it is in
  // use: some job that is not done names it (it holds a permit, waits for
  // one, or is pending and will), the first ids named; jobs already done
  // keep it in their spec and do not count. Otherwise the name is freed at
  // once (a Submit naming it gets INVALID_ARGUMENT, unknown limit) and, with
  // a store, the deletion is stored before it returns; if that fails, the
  // error says a restart would declare it again. Looks at every kept job
  // under the table lock (O(jobs kept)); blocks on the store: not from a
  // worker.
  absl::Status DeleteLimit(std::string_view name)
      ABSL_LOCKS_EXCLUDED(limit_changes_mu_, table_mu_);

  // Durability (server/store/store.h): from now on, jobs accepted by Submit are
  // in the store before Submit returns, their transitions are stored before
  // they are published, and forgotten jobs are deleted from it. Call before
  // Recover() and Start(); `store` must outlive this manager's jobs, and
  // its commits must all have run (its destructor runs them) before the
  // manager is destroyed.
  void AttachStore(JobStore* store) {
    store_.store(store, std::memory_order_release);
  }
  // Shutdown, after DrainRunning and before CancelAll, once the service
  // tells clients nothing more (JobsService::StopReporting): from now on a
  // job that ends CANCELLED (and any group) is published (for what waits
  // inside the daemon) but not stored, so the jobs the shutdown cancels
  // stay in the store as they were (pending ones run after the restart,
  // running ones count as interrupted, groups are rebuilt); cancel requests
  // are not stored either. Other outcomes (a job that finishes anyway) are
  // stored first, as usual.
  void BeginShutdownCancel() {
    shutdown_cancel_.store(true, std::memory_order_release);
  }

  struct RecoveryStats {
    std::size_t jobs = 0;         // records read
    std::size_t finished = 0;     // kept with their outcome
    std::size_t pending = 0;      // queued again with their start times
    std::size_t rerun = 0;        // were running; retry-safe: run again
    std::size_t interrupted = 0;  // were running: now FAILED
    std::size_t unrunnable = 0;   // pending, but their kind or limit is gone
                                  // (or a group's child was forgotten)
    std::size_t groups = 0;       // groups not done: rebuilt and waiting
    std::size_t cancelled = 0;    // were running, cancel took effect: ended
    std::size_t limits = 0;       // declared by RPC: declared again
    absl::Duration took;
  };
  // Rebuilds the job table from the attached store, before Start() and
  // before any Submit. First the limits declared by RPC are declared again
  // (past --max_limits; a --limit flag of the same name and another size
  // wins, with a warning), so the jobs that name them can run. Then the
  // jobs: finished jobs keep their outcome; pending ones are
  // queued again with their start times; a job that was running when the
  // daemon died runs again if its kind is retry-safe and it has had fewer
  // than kMaxAttempts runs, else ends FAILED with an InterruptedError; one
  // whose cancel had taken effect ends CANCELLED. A group not done is
  // rebuilt with its children (and its cancel request, if any) and waits
  // for them again.
  // New ids continue after the largest stored one.
  absl::StatusOr<RecoveryStats> Recover();
  static constexpr std::uint32_t kMaxAttempts = 3;

  // With a store: waits until everything committed so far is durable (an
  // empty group commit behind it), at most `store_timeout`: UNAVAILABLE
  // naming --store_timeout if the store did not answer by then (what was
  // committed stays queued and is written when the disk answers). Not from
  // a worker.
  absl::Status AwaitStored();

  // Starts the retention sweep.
  void Start();

  // asyncio.create_task for a batch: validates every spec, then creates and
  // schedules all of them, or none (INVALID_ARGUMENT naming the field as
  // "<field>[i].<name>"; RESOURCE_EXHAUSTED past max_pending_jobs or
  // max_batch; UNAVAILABLE once shutting down). A spec whose idempotency key
  // is known returns that job instead (`existing`, if given, says which).
  //
  // With a store, the batch is committed before Submit returns, waiting at
  // most `store_timeout`; past it Submit answers UNAVAILABLE (retry with the
  // same idempotency key) and the batch is left to its commit: if the store
  // writes it later, the new jobs are published and run then (the store is
  // the truth: a restart would recover and run them too), and a retry with
  // the same key gets them (meanwhile it is UNAVAILABLE, "being accepted");
  // if the store refuses it, they are forgotten. Jobs submitted without a
  // key may thus run although their Submit failed, as with any ambiguous
  // timeout. (The late jobs are started as ordinary jobs: neither a
  // group_id's group nor `deferred` is told of them.)
  absl::StatusOr<std::vector<JobPtr>> Submit(
      std::span<const v1::JobSpec* const> specs, std::string_view field,
      std::uint64_t group_id, std::vector<bool>* existing,
      std::vector<JobBody>* deferred = nullptr,
      std::span<const std::string> spec_fields = {});
  // `spec_fields`, if given, names each spec in error messages instead of
  // "<field>[i]" (a combinator's "jobs[5].spec", WaitFor's "job.spec").
  // With `deferred`, new jobs are created but not started: their bodies are
  // returned there (in order, one per new job) and the caller must run each
  // one as `co_await RunInline(job, body)` inside a task whose JoinHandle it
  // gives to job->SetTask (so that Cancel reaches the job). WaitFor uses it
  // to run a job and report it from one task: one hand-off to the runtime
  // per call instead of two.
  runtime::Task<void> RunInline(JobPtr job, JobBody body) {
    return RunJob(std::move(job), std::move(body));
  }

  // Combinator inputs, in order: ids are looked up and specs created (all or
  // none; an unknown id fails before anything is created).
  absl::StatusOr<std::vector<JobPtr>> Resolve(
      const google::protobuf::RepeatedPtrField<v1::JobInput>& inputs,
      std::string_view field, std::uint64_t group_id = 0);

  // NOT_FOUND (naming the id) for an unknown or forgotten job; `field` names
  // where the id came from.
  absl::StatusOr<JobPtr> Find(std::uint64_t id, std::string_view field) const;

  // Task.cancel(msg): see ASYNCIO_SEMANTICS.md. For a gather group: cancels
  // each child that is not shielded, true if any took effect. For a
  // TaskGroup: cancels the children that are not shielded; true unless the
  // group is done.
  bool Cancel(const JobPtr& job, std::string_view message);
  // Cancel of each of `jobs` (repeats allowed); whether each took effect,
  // in input order. Jobs that have not started are cancelled first, then
  // running leaves, then groups (see the .cc).
  std::vector<bool> Cancel(std::span<const JobPtr> jobs,
                           std::string_view message);

  // Admission of a group with `children` children, before its inline
  // children are created: RESOURCE_EXHAUSTED (naming `field`) past
  // --max_pending_jobs or --max_memory_bytes, as for a Submit of one job.
  absl::Status AdmitGroup(std::size_t children, std::string_view field) const;

  // Group jobs. The id comes from ReserveId() so that children created from
  // inline specs can name their group; `children` are resolved already.
  // With a store, the group is stored with its children's ids (recovery
  // rebuilds it) before it is published RUNNING: a caller acknowledges it
  // once state() is past PENDING.
  std::uint64_t ReserveId();
  JobPtr StartGather(std::uint64_t id, std::string name,
                     std::vector<JobPtr> children, bool return_exceptions);
  JobPtr StartTaskGroup(std::uint64_t id, std::string name,
                        std::vector<JobPtr> children);

  // asyncio.all_tasks with filters, by increasing id, paged. A page ends
  // early (with a next_page_token) where the next job would take the reply
  // past `max_bytes`; RESOURCE_EXHAUSTED if not even the first one fits.
  absl::Status List(const v1::ListRequest& request, v1::ListResponse* response,
                    std::size_t max_bytes = SIZE_MAX) const;

  // Watch with no ids.
  void AddListener(JobEventListener* listener) ABSL_LOCKS_EXCLUDED(listen_mu_);
  // After it returns, the listener is not running and never will.
  void RemoveListener(JobEventListener* listener)
      ABSL_LOCKS_EXCLUDED(listen_mu_);

  // --- Shutdown, in this order ---
  // New Submits fail with UNAVAILABLE.
  void StopAccepting();
  bool accepting() const { return accepting_.load(std::memory_order_acquire); }
  // Waits until no job is running (pending ones are not waited for), or the
  // deadline. Returns whether none runs.
  bool DrainRunning(absl::Time deadline);
  // Cancels every job not done and waits for all to end, up to the
  // deadline. Returns whether all ended.
  bool CancelAll(std::string_view message, absl::Time deadline);
  // Stops the sweep. Call before the runtime shuts down.
  void Stop();

  // Gauges.
  std::size_t jobs_not_done() const {
    return not_done_.load(std::memory_order_relaxed);
  }
  std::size_t jobs_running() const {
    return running_.load(std::memory_order_relaxed);
  }
  std::size_t jobs_retained() const ABSL_LOCKS_EXCLUDED(table_mu_);
  // Bytes counted against --max_memory_bytes now.
  std::size_t memory_charged() const {
    return memory_.load(std::memory_order_relaxed);
  }
  // Per-kind counters and histograms (the metrics endpoint reads them).
  const JobStats& stats() const { return stats_; }

  // Forces a retention sweep now (tests).
  void SweepNow() ABSL_LOCKS_EXCLUDED(sweep_mu_);

 private:
  struct Prepared;
  // Task.cancel() of a leaf.
  bool CancelLeaf(const JobPtr& job, std::string_view message);
  struct Accepting;
  // With a store, records that Cancel took effect on `job` (not ended yet).
  void StoreCancelRequest(const Job& job, std::string_view message);
  // A TaskGroup's cancellation of a sibling (see Job::CancelAfterStart).
  bool CancelSibling(const JobPtr& job, std::string_view message);
  class EndGuard;
  struct Starting {
    JobPtr job;
    JobBody body;
  };
  runtime::Task<void> StartJobs(std::vector<Starting> jobs);
  // On the store's writer thread: a batch whose Submit stopped waiting was
  // committed with `status` (see Submit).
  void AcceptLate(std::vector<Starting> jobs, const absl::Status& status);
  // UNAVAILABLE for a store that did not answer in time; `what` names the
  // write ("jobs: not accepted").
  absl::Status StoreTimedOut(std::string_view what) const;
  runtime::Task<void> RunJob(JobPtr job, JobBody body);
  runtime::Task<void> Admit(const Job* job,
                            std::vector<runtime::PermitGuard>* permits);
  runtime::Task<void> RunGather(JobPtr group);
  runtime::Task<void> RunTaskGroup(JobPtr group);
  runtime::Task<void> Sweeper();

  // `at` names the spec in messages ("jobs[3]").
  absl::Status Validate(const v1::JobSpec& spec, const std::string& at,
                        Prepared* out) const;
  // Submit's phases, in order, over one batch: the new jobs go into the
  // table (idempotency keys, admission), are stored (with a store), then
  // published PENDING and started.
  struct SubmitBatch;
  // Recover's two passes: leaves as the store lists them, then groups.
  struct Recovery;
  void RecoverLeaf(StoredJob&& r, Recovery& rec);
  void RecoverGroup(StoredJob& r, Recovery& rec);
  absl::Status InsertBatch(SubmitBatch& b) ABSL_LOCKS_EXCLUDED(table_mu_);
  absl::Status StoreBatch(SubmitBatch& b, JobStore& store)
      ABSL_LOCKS_EXCLUDED(table_mu_);
  void StartBatch(SubmitBatch& b, bool durable, std::vector<JobBody>* deferred);
  JobPtr StartGroup(std::uint64_t id, std::string name, JobAttributes a,
                    std::vector<JobPtr> children);
  // MarkRunning, OnStarted and the group's coroutine.
  void StartGroupTask(const JobPtr& group);
  // Into the table (with its idempotency key), counted as not done, or
  // retained as finished.
  void Adopt(const JobPtr& job, bool not_done) ABSL_LOCKS_EXCLUDED(table_mu_);
  // Forgets up to `max_evictions` expired jobs; true if it forgot any.
  bool SweepSome(absl::Time now, std::size_t max_evictions)
      ABSL_LOCKS_EXCLUDED(sweep_mu_, table_mu_);
  // After a job's transition to RUNNING was decided (MarkRunning): stores
  // it, publishes it, then sets `stored` if given.
  void OnStarted(const JobPtr& job,
                 std::shared_ptr<runtime::Event> stored = nullptr);
  // After a job's end was decided (whoever ended it): stores it, publishes
  // it, then does the bookkeeping (Ended).
  void OnFinished(const JobPtr& job);
  // A durable job's decided `state` is committed to the store; the store's
  // callback queues it, and a drain task publishes it (PublishStored). With
  // the store detached, published at once. Never waits.
  struct StoredTransition;
  void StoreThenPublish(const JobPtr& job, JobState state,
                        std::shared_ptr<runtime::Event> started);
  void QueuePublish(StoredTransition* t) ABSL_LOCKS_EXCLUDED(publish_mu_);
  runtime::Task<void> PublishTask();
  void DrainPublishes();
  void PublishStored(const JobPtr& job, JobState state,
                     runtime::Event* started);
  // Bookkeeping for a job that ended `s` (listeners hear of it only if
  // `published`).
  void Ended(const JobPtr& job, JobState s, bool published);
  void Publish(const JobPtr& job, JobState state)
      ABSL_LOCKS_EXCLUDED(listen_mu_);
  // Adds the job's decided state to `batch` (marked forgotten: see
  // ForgetStoredLocked).
  static void PutState(const Job& job, JobStore::Batch* batch,
                       bool forgotten = false);
  // A store commit waited for with a bound: queued by CommitTracked (under
  // whatever lock orders the commits), awaited by AwaitCommit for at most
  // --store_timeout (nullopt past it: the commit still lands, or fails, on
  // its own), or by AwaitLimitCommit (UNAVAILABLE past it).
  struct PendingCommit;
  std::shared_ptr<PendingCommit> CommitTracked(JobStore& store,
                                               JobStore::Batch batch);
  std::optional<absl::Status> AwaitCommit(PendingCommit& pending) const;
  absl::Status AwaitLimitCommit(PendingCommit& pending) const;
  // "the job store did not confirm the write within --store_timeout=...".
  std::string NotConfirmed() const;
  // Recover's first step: the stored limit declarations, declared again.
  absl::Status RestoreLimits(const JobStore& store, RecoveryStats* stats);
  // Onto the stack of jobs finished since the last sweep.
  void PushFinished(Job* job);
  // Counts `bytes` more against the memory budget, for `job`.
  void Charge(Job& job, std::size_t bytes);
  // RESOURCE_EXHAUSTED (naming `field`) unless `bytes` more fit the budget.
  absl::Status CheckMemory(std::size_t bytes, std::size_t jobs,
                           std::string_view field) const;
  // The store's side of forgetting `job` (see Job::referrers): its record
  // is deleted now if no stored group lists it, else when the last one is
  // deleted; deleting a group may so delete its children's records, walked
  // without recursion. Its idempotency key goes now in any case.
  void ForgetStoredLocked(Job* job, JobStore::Batch* batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(sweep_mu_);
  // Drops `job`'s idempotency key if it still names `job`.
  void EraseKeyLocked(const Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(table_mu_);

  runtime::Runtime& runtime_;
  const JobKindRegistry& kinds_;
  LimitRegistry& limits_;
  const JobManagerOptions options_;
  const Logger& logger_;
  std::atomic<JobStore*> store_{nullptr};  // optional
  std::atomic<bool> shutdown_cancel_{false};

  std::atomic<bool> accepting_{true};
  std::atomic<std::uint64_t> next_id_{1};
  // Default names count per daemon run: Job-1, Job-2, ...; Group-1, ...
  std::atomic<std::uint64_t> job_names_{0};
  std::atomic<std::uint64_t> group_names_{0};
  std::atomic<std::size_t> not_done_{0};
  std::atomic<std::size_t> running_{0};
  std::atomic<std::size_t> memory_{0};  // see max_memory_bytes
  JobStats stats_;

  // Orders limit declarations and deletions with their store commits (the
  // store applies commits in the order they are queued). Taken before
  // table_mu_.
  absl::Mutex limit_changes_mu_ ABSL_ACQUIRED_BEFORE(table_mu_);
  mutable absl::Mutex table_mu_;
  absl::btree_map<std::uint64_t, JobPtr> jobs_ ABSL_GUARDED_BY(table_mu_);
  absl::flat_hash_map<std::string, std::uint64_t> idempotency_
      ABSL_GUARDED_BY(table_mu_);

  // Jobs that finished since the last sweep: a lock-free stack (the table
  // keeps them alive; only the sweep removes from the table).
  std::atomic<Job*> finished_head_{nullptr};
  std::atomic<std::size_t> finished_unswept_{0};
  absl::Mutex sweep_mu_;  // one sweep at a time
  struct Retained {
    Job* job;
    absl::Time finished_seen;  // when a sweep first saw it finished
  };
  std::deque<Retained> retained_ ABSL_GUARDED_BY(sweep_mu_);  // oldest first
  std::atomic<bool> sweeping_stopped_{false};
  runtime::JoinHandle<void> sweeper_;

  // Done: not_done_ reached zero, or running_ reached zero (shutdown).
  absl::Mutex idle_mu_;
  absl::CondVar idle_cv_;

  // Stored transitions waiting to be published: a lock-free stack (newest
  // first), drained by one task at a time (whoever set publish_scheduled_).
  std::atomic<StoredTransition*> publish_head_{nullptr};
  std::atomic<bool> publish_scheduled_{false};
  absl::Mutex publish_mu_;
  bool runtime_stopped_ ABSL_GUARDED_BY(publish_mu_) = false;

  std::atomic<int> listener_count_{0};
  absl::Mutex listen_mu_;
  std::vector<JobEventListener*> listeners_ ABSL_GUARDED_BY(listen_mu_);
};

}  // namespace awaitd::server

#endif  // AWAITD_SERVER_JOBS_JOB_MANAGER_H_
