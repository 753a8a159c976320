// Job: the daemon's asyncio Task, one record per submitted (or group) job.
//
// A Job holds what a client may ask about a job: its immutable attributes
// (id, name, kind, options), its state, and once it is done its outcome (a
// result Value, or an error). The coroutine that runs a leaf job lives in
// the runtime (JobManager::RunJob); a group job (Gather, RunGroup) has
// children and a coroutine that watches them.
//
// State machine: PENDING -> RUNNING -> SUCCEEDED | FAILED | CANCELLED, or
// PENDING -> CANCELLED (cancelled before it ran). A final state is set once,
// together with the outcome, and never changes (asyncio's Future.set_*).
//
// Watching (add_done_callback): a JobWatch links into the job and is called
// on each state change it asked for, with the job's lock held, on the thread
// that made the change. It must only record the event and wake someone (set
// a runtime Event): it must not lock another job or block. A final state
// unlinks every watch (no event can follow it).
//
// Durable jobs (attributes().durable: the daemon has a job store): a
// transition is first decided (under the lock: MarkRunning, Finish, a
// cancel), which settles it for everyone who changes the job (a later
// cancel is a no-op, as for a done task), then stored, and only then
// published (Publish: state(), watches, Snapshot) by JobManager once the
// store has it. So nobody hears of a state that a crash could take back.
// A job that is not durable publishes each transition as it is decided.
//
// Thread safety: attributes are immutable after construction. The published
// state is atomic; the outcome is written once, before the final state is
// published (release), so a reader that saw done() (acquire) may read
// result() and error() without the lock. Everything else is guarded by
// mu_.
#ifndef AWAITD_SERVER_JOBS_JOB_H_
#define AWAITD_SERVER_JOBS_JOB_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "awaitd/v1/jobs.pb.h"
#include "runtime/join_handle.h"
#include "server/store/job_record.h"  // ToProto, FromProto

namespace awaitd::server {

class Job;
class Limit;
using JobPtr = std::shared_ptr<Job>;

// Same numbers as awaitd.v1.JobState, and kUnstored: a durable job accepted
// but not stored yet, which nobody may see (Find says NOT_FOUND, List skips
// it) until it is published PENDING (a group: RUNNING).
enum class JobState : std::uint8_t {
  kUnstored = 0,
  kPending = 1,
  kRunning = 2,
  kSucceeded = 3,
  kFailed = 4,
  kCancelled = 5,
};

inline bool IsFinal(JobState s) { return s >= JobState::kSucceeded; }
std::string_view JobStateName(JobState s);  // "PENDING", ...
inline v1::JobState ToProto(JobState s) { return static_cast<v1::JobState>(s); }

// How deep args and results may nest: levels of Struct and list values, the
// outermost counting 1. Protobuf parsers (ours, and every client's) refuse
// messages nested past 100 levels, and one Struct level costs three
// (Value, Struct, map entry): 20 levels keep a job's args in a request or a
// stored record, and its result inside a reply with a group around it, well
// within what every parser reads back.
inline constexpr int kMaxValueDepth = 20;
// A group's result lists its children's outcomes (by reference in memory
// and in the store: a group holds its children, never copies of their
// results). A reply inlines them down to this many levels of groups; below
// that, a child group's entry is {"result_ref": {"job_id": <id>}}: its
// result is that job's, to be read with Get. 8 levels are 16 protobuf
// levels, which with a leaf result of kMaxValueDepth stays under 100.
inline constexpr int kMaxInlineGroupDepth = 8;

// The nesting depth of `v` (a scalar is 0, a Struct or list 1 + the deepest
// element), computed without recursion and without looking below `limit` + 1
// (it returns `limit` + 1 there). When `too_deep` is given and the depth
// exceeds `limit`, it receives the path to the first element past the limit
// (".a.b[3].c").
int ValueDepth(const google::protobuf::Value& v, int limit,
               std::string* too_deep = nullptr);
int StructDepth(const google::protobuf::Struct& s, int limit,
                std::string* too_deep = nullptr);

// One watcher's link into one job (intrusive; owned by the watcher, which
// must Unwatch it, or see a final event, before freeing it).
struct JobWatch {
  // Called with the job's lock held; see the file comment.
  void (*fn)(JobWatch* self, Job& job, JobState state) = nullptr;
  // Only the final state (the default), or every change.
  bool final_only = true;
  // Guarded by the job's lock.
  JobWatch* prev = nullptr;
  JobWatch* next = nullptr;
  bool linked = false;
};

// What kind of job: a leaf runs a registered kind's body; a group watches its
// children (asyncio.gather or a TaskGroup).
enum class JobType : std::uint8_t { kLeaf, kGather, kTaskGroup };

struct JobAttributes {
  std::uint64_t id = 0;
  std::string name;
  // The kind's name (owned by the registry, or a literal for groups:
  // "gather", "group").
  std::string_view kind;
  // (The small fields sit together: there is one of these per job.)
  JobType type = JobType::kLeaf;
  bool shield = false;
  // scheduled_at came from start_at (call_at: wall clock) rather than from
  // a delay (call_later: a runtime duration, scaled in tests).
  bool start_absolute = false;
  bool return_exceptions = false;  // gather groups
  // Transitions are stored before they are published (see the file
  // comment).
  bool durable = false;
  // The kind may run again from the start after a crash (JobKind).
  bool retry_safe = false;
  absl::Duration timeout = absl::ZeroDuration();  // zero: none
  absl::Time created_at;
  absl::Time scheduled_at;  // when it may start (== created_at if no delay)
  // Sorted by name (the acquisition order). Shared: a limit deleted by RPC
  // lives on while a job that named it is kept.
  std::vector<std::shared_ptr<Limit>> limits;
  std::string idempotency_key;
  std::uint64_t group_id = 0;  // the group that created it, if any
};

class Job {
 public:
  explicit Job(JobAttributes attributes)
      : attr_(std::move(attributes)),
        state_(attr_.durable ? JobState::kUnstored : JobState::kPending) {}
  // Frees a chain of groups (each holding the next) iteratively: the
  // children of every Job destroyed on this thread meanwhile are released
  // by the outermost destructor's loop, not by nested destructors.
  ~Job();
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  const JobAttributes& attributes() const noexcept { return attr_; }
  std::uint64_t id() const noexcept { return attr_.id; }
  const std::string& name() const noexcept { return attr_.name; }
  JobType type() const noexcept { return attr_.type; }
  bool is_group() const noexcept { return attr_.type != JobType::kLeaf; }
  bool shield() const noexcept { return attr_.shield; }

  // The published state (what clients may be told).
  JobState state() const noexcept {
    return state_.load(std::memory_order_acquire);
  }
  bool done() const noexcept { return IsFinal(state()); }
  // The latest decided state (ahead of state() while a durable job's
  // transition is being stored).
  JobState decided_state() const ABSL_LOCKS_EXCLUDED(mu_);
  // Durable jobs: publishes `s` (a decided state, once stored) unless the
  // job already published it or a later state; returns whether it did.
  // Wakes the watches.
  bool Publish(JobState s) ABSL_LOCKS_EXCLUDED(mu_);
  // Whether it ever reached RUNNING (decided).
  bool started() const noexcept {
    return started_.load(std::memory_order_acquire);
  }

  // The outcome; valid (and immutable) once done(). result() is null unless
  // a leaf SUCCEEDED (a group's result is its children's: see
  // AppendResult), error() null if SUCCEEDED.
  const google::protobuf::Value* result() const noexcept {
    return result_.get();
  }
  const v1::JobError* error() const noexcept { return error_.get(); }

  // Once done(): an upper bound of the bytes the outcome takes in a reply
  // (the result with every group below inlined, or the error; a group's
  // elements counted at what a Value costs in memory, not only on the
  // wire), saturating at SIZE_MAX / 4. A group's is computed from its
  // children's when it ends, so that a reply is sized without walking anything.
  std::size_t outcome_bytes() const noexcept { return outcome_bytes_; }
  // For a group that SUCCEEDED: the bound of its result's bytes when its
  // list is built at group depth `depth` (AppendResult); outcome_bytes()
  // is the one at depth 0.
  std::size_t group_result_bytes(int depth) const noexcept;
  // An upper bound of the bytes Snapshot() writes, once done().
  std::size_t SnapshotBytes() const noexcept;
  // The result of a SUCCEEDED job, into `out`: a leaf's value, or a group's
  // list of its children's outcomes (see OutcomeValue), with groups
  // `group_depth` levels down or more given by reference (see
  // kMaxInlineGroupDepth). The recursion is bounded by that depth.
  void AppendResult(google::protobuf::Value* out, int group_depth = 0) const;

  // A group's children, in input order (set before the group is published;
  // immutable afterwards). Empty for leaves.
  const std::vector<JobPtr>& children() const noexcept { return children_; }
  void set_children(std::vector<JobPtr> children) {
    children_ = std::move(children);
  }

  // --- Runner side (the job's own coroutine) ---

  // Gives the job its task (before the task can run). Leaf jobs only.
  void SetTask(runtime::JoinHandle<void> task) ABSL_LOCKS_EXCLUDED(mu_);
  // At the start of the body: false if the job was already cancelled (then
  // the body must return at once). Otherwise it is running its coroutine.
  bool EnterBody() ABSL_LOCKS_EXCLUDED(mu_);
  // PENDING -> RUNNING (attempt + 1, started_at now). False unless it was
  // PENDING (decided).
  bool MarkRunning() ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the job with its outcome (exactly one of result / error, by state)
  // unless it already ended; returns whether this call ended it. A SUCCEEDED
  // outcome becomes CANCELLED if a Cancel() took effect that the body never
  // saw (`cancel_pending` tells, for leaves: asyncio's __step runs
  // super().cancel() when the coroutine returns with _must_cancel set).
  bool Finish(JobState final_state,
              std::unique_ptr<google::protobuf::Value> result,
              std::unique_ptr<v1::JobError> error,
              bool (*cancel_pending)(const Job&) = nullptr)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Recovery (JobManager::Recover), before the job is published: the state
  // it had when the daemon stopped. A final `state` comes with its outcome
  // and times; PENDING with the number of runs a crash interrupted (the
  // next run is attempt `attempts` + 1).
  void Restore(JobState state, std::uint32_t attempts, absl::Time started_at,
               absl::Time finished_at,
               std::unique_ptr<google::protobuf::Value> result,
               std::unique_ptr<v1::JobError> error) ABSL_LOCKS_EXCLUDED(mu_);

  // Recovery of a group, before it starts: a cancel had taken effect.
  void RestoreCancel(std::string message) ABSL_LOCKS_EXCLUDED(mu_);

  // --- Cancellation (JobManager::Cancel) ---

  // Leaf: Task.cancel(msg). Delivered to the body at its next suspension, or
  // if the body has not started yet, ends the job CANCELLED now (*ended is
  // then set). Returns false if the job is already done.
  bool CancelLeaf(std::string_view message, bool* ended)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Leaf: a cancel that lets a job that has not started yet take its first
  // step (run until its first suspension) before CancelledError, as asyncio
  // does for a task scheduled before the cancel: a TaskGroup's siblings all
  // start, and those that fail at once are reported, even if one failure
  // is seen before the others ran. Otherwise as CancelLeaf.
  bool CancelAfterStart(std::string_view message) ABSL_LOCKS_EXCLUDED(mu_);
  // Group cancel, in two steps, so that JobManager::Cancel walks a chain of
  // groups with a stack of its own rather than by recursion. The group's
  // lock is held in between (so the group's own completion cannot
  // interleave) while the caller cancels the children. BeginCancelGroup
  // returns false (not locked) if the group is done, else true, locked;
  // EndCancelGroup then records the request for the group's coroutine if
  // `record` (a cancel that took effect), and unlocks.
  bool BeginCancelGroup() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true, mu_);
  void EndCancelGroup(bool record, std::string_view message)
      ABSL_UNLOCK_FUNCTION(mu_);
  // Group completion: under the lock, `decide(cancel_requested, message,
  // &state, &result, &error)` picks the outcome. False if already done.
  template <typename F>
  bool FinishGroup(F decide) ABSL_LOCKS_EXCLUDED(mu_) {
    // The group's task holds the group (its coroutine's parameter): the
    // handle must go, or the two keep each other alive. Released after the
    // lock, like every handle.
    runtime::JoinHandle<void> task;
    absl::MutexLock lock(&mu_);
    if (IsFinal(decided_)) return false;
    JobState s = JobState::kSucceeded;
    static const std::string kNone;
    decide(cancel_requested_, cancel_message_ ? *cancel_message_ : kNone, &s,
           &result_, &error_);
    task = std::move(task_);
    EndLocked(s);
    return true;
  }
  // Group: cancels the group's own task if its body has started (it waits on
  // its children and must re-evaluate); before that, the body sees
  // cancel_requested() when it starts.
  void InterruptTask(std::string_view message) ABSL_LOCKS_EXCLUDED(mu_);
  bool cancel_requested() const ABSL_LOCKS_EXCLUDED(mu_);
  std::string cancel_message() const ABSL_LOCKS_EXCLUDED(mu_);

  // --- Watching ---

  // Links `w`. Returns false (not linking) if the job is already final; the
  // caller then treats it as done.
  bool Watch(JobWatch* w) ABSL_LOCKS_EXCLUDED(mu_);
  // After it returns, `w` is not linked and its fn is not running.
  void Unwatch(JobWatch* w) ABSL_LOCKS_EXCLUDED(mu_);

  // Fills `out` with a consistent snapshot of what was published.
  void Snapshot(v1::Job* out) const ABSL_LOCKS_EXCLUDED(mu_);
  // Only the decided state, attempt, times and outcome (what the store
  // keeps of a transition): no attributes copied.
  void SnapshotDecided(v1::Job* out) const ABSL_LOCKS_EXCLUDED(mu_);
  // Final state, error and finish time only (cheap; for events).
  absl::Time finished_at() const ABSL_LOCKS_EXCLUDED(mu_);
  // From RUNNING to its final state (zero unless both happened).
  absl::Duration run_time() const ABSL_LOCKS_EXCLUDED(mu_);

  // Retention bookkeeping (JobManager only): the next job in the lock-free
  // stack of jobs that finished since the last sweep.
  Job* finished_next_ = nullptr;
  // Memory budget (JobManager only): the bytes this job counts against
  // --max_memory_bytes (its record and args from admission, its outcome
  // from its end), given back when it is forgotten.
  std::atomic<std::size_t> charged_bytes{0};
  // Store retention (JobManager only): the groups that list this job as a
  // child and whose records are still stored. Its own record is deleted
  // only once it is forgotten and this count is zero, so that a stored
  // group's children can always be read back.
  std::atomic<std::uint32_t> referrers{0};
  // Forgotten from the table, its record kept for its referrers (guarded
  // by JobManager's sweep lock).
  bool forgotten_with_referrers = false;

 private:
  void NotifyLocked(JobState state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The published view, or the decided one.
  void OutcomeLocked(v1::Job* out, bool decided) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Decides the final state `s` (outcome already set: its size is taken)
  // and stamps finished_at; publishes it unless the job is durable.
  void EndLocked(JobState s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool PublishLocked(JobState s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // outcome_bytes_ for a job that ends `s` with the outcome in place.
  void SetOutcomeBytesLocked(JobState s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const JobAttributes attr_;
  std::vector<JobPtr> children_;
  std::atomic<JobState> state_;  // published
  std::atomic<bool> started_{false};
  mutable absl::Mutex mu_;
  JobState decided_ ABSL_GUARDED_BY(mu_) = JobState::kPending;
  // Written under mu_ before the final state is published; read-only after.
  std::unique_ptr<google::protobuf::Value> result_;
  std::unique_ptr<v1::JobError> error_;
  std::size_t outcome_bytes_ = 0;
  // A succeeded group's result bounds by depth (see group_result_bytes).
  std::vector<std::size_t> group_bytes_;

  runtime::JoinHandle<void> task_ ABSL_GUARDED_BY(mu_);
  absl::Time started_at_ ABSL_GUARDED_BY(mu_);
  absl::Time finished_at_ ABSL_GUARDED_BY(mu_);
  std::uint32_t attempt_ ABSL_GUARDED_BY(mu_) = 0;
  bool body_entered_ ABSL_GUARDED_BY(mu_) = false;
  bool cancel_at_first_step_ ABSL_GUARDED_BY(mu_) = false;
  bool cancel_requested_ ABSL_GUARDED_BY(mu_) = false;
  // A cancel took effect while the body ran without its task's handle (see
  // CancelLeaf); cleared once SetTask delivers it.
  bool cancel_undelivered_ ABSL_GUARDED_BY(mu_) = false;
  // Rare: allocated by the first Cancel.
  std::unique_ptr<std::string> cancel_message_ ABSL_GUARDED_BY(mu_);
  JobWatch* watches_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// A child's outcome as an element of a group's result list: its result, or
// {"error": {"type": ..., "message": ..., "job_id": ...}} (a gather with
// return_exceptions). `group_depth`: see Job::AppendResult.
void AppendOutcomeValue(const Job& child, google::protobuf::Value* out,
                        int group_depth = 0);

// Builds a JobError.
std::unique_ptr<v1::JobError> MakeError(std::string_view type,
                                        std::string_view message);

// A protobuf Duration as an absl::Duration: INVALID_ARGUMENT naming `field`
// unless it is non-negative, normalized and at most `max`.
absl::StatusOr<absl::Duration> DurationFromProto(
    const google::protobuf::Duration& d, absl::Duration max,
    std::string_view field);

}  // namespace awaitd::server

#endif  // AWAITD_SERVER_JOBS_JOB_H_
