// JobStore: the daemon's durable record of jobs, in RocksDB under
// --data_dir.
//
//   auto store = JobStore::Open({.dir = "/var/lib/awaitd/store"});
//   JobStore::Batch batch;
//   batch.PutJob(record);                       // a StoredJob
//   batch.PutIdempotencyKey("order-17", 42);
//   (*store)->Commit(std::move(batch), [](absl::Status s) { ... });
//
// Group commit: Commit queues the batch and returns; one writer thread takes
// every batch queued meanwhile, writes them as one RocksDB write and syncs
// the log once, then runs each batch's `done`. Concurrent submitters thus
// share one fsync. Commit itself never waits on the disk; a caller that must
// answer only once a change is durable (Submit, Cancel, DeclareLimit) waits
// for its `done` itself, bounded by --store_timeout (JobManager::AwaitCommit).
//
// Durability (--durability): with kSync, `done(OK)` runs only after the
// write-ahead log was fsynced: an acknowledged change survives a crash of
// the process and of the machine. With kAsync, `done(OK)` runs once the log
// was written to the operating system, and the writer syncs it every
// `async_sync_interval`: a crash of the process loses nothing, a crash of the
// machine (power, kernel) loses up to that interval. (kNone, no store at
// all, is the daemon's business: it then never opens one.)
//
// Failures: a full disk fails the group with RESOURCE_EXHAUSTED; the store
// then closes and reopens its database to write again (RocksDB 7.8 cannot
// resume after a failed log write), every `full_retry_interval` at first,
// backing off to every 5 s while the disk stays full. Reads work until the
// first reopen; while a reopen fails (the disk still full) they are
// UNAVAILABLE (the daemon reads from memory, not from here). A batch
// committed with `retry_while_full` (a job's state change, which must not
// be lost and has nobody to refuse) is not failed for a full disk: the
// writer keeps it, in order, and writes it again with each attempt until
// there is space. (Ordinary batches that fail meanwhile are answered at
// once, ahead of the kept ones.) A full disk reported by the sync rather
// than the write leaves the group in doubt: its record may be in the log
// (the append succeeded), and the reopen replays it if so. Such a group's
// ordinary batches are answered only once a reopen tells (the database's
// last sequence number covers the group or not): OK if it reached the log
// (it is then as durable as any), RESOURCE_EXHAUSTED if not; at shutdown
// before that, UNAVAILABLE (a restart finds it or not). So a batch refused
// for a full disk is never in the store, and an idempotency key is never
// stored for a job the daemon forgot. (RocksDB 7.8 drops a write whose sync
// failed: it moves to a new log, and the reopen does not replay the old
// one's failed record, so the answer is RESOURCE_EXHAUSTED; the check keeps
// the answer true should another version replay it.) Any
// other write or sync error is fatal: the group fails with UNAVAILABLE, so
// nothing is acknowledged that may not be on disk, every later Commit fails at
// once, and `on_fatal` is called once (the daemon logs it and exits, so that
// a supervisor restarts it and recovery runs). Open refuses a corrupt store
// with a message naming the directory and the repair path (Repair()).
//
// Layout: "j" + id (8 bytes big-endian) -> StoredJob as accepted; "s" + id
// -> StoredState, its latest state; "c" + id -> the message of a cancel
// that took effect before the job ended; "k" + idempotency key -> id (8
// bytes big-endian); "l" + limit name -> StoredLimit, a limit declared by
// the DeclareLimit RPC (not those from --limit flags).
//
// Thread safety: every method may be called from any thread. `done`
// callbacks run on the writer thread, in commit order among the batches
// that succeed (and among those kept for a full disk), and must not block
// (they may Commit again).
#ifndef AWAITD_SERVER_STORE_STORE_H_
#define AWAITD_SERVER_STORE_STORE_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "awaitd_store.pb.h"          // server/store/awaitd_store.proto
#include "server/store/job_record.h"  // StoredJob, StoredState, StoredLimit

namespace rocksdb {
class DB;
class Status;
class FileSystem;
class Env;
}  // namespace rocksdb

namespace awaitd::server {

enum class Durability { kSync, kAsync, kNone };
// "sync", "async", "none"; INVALID_ARGUMENT naming --durability otherwise.
absl::StatusOr<Durability> ParseDurability(std::string_view text);
std::string_view DurabilityName(Durability d);

struct StoreOptions {
  // The RocksDB directory; created (with parents) if missing.
  std::string dir;
  // kSync or kAsync (kNone is refused: no store is opened then).
  Durability durability = Durability::kSync;
  // kAsync: how often the writer syncs the log.
  std::chrono::milliseconds async_sync_interval{100};
  // How often batches kept for a full disk are written again.
  std::chrono::milliseconds full_retry_interval{100};
  // At most this many bytes of batches go into one group write.
  std::size_t max_group_bytes = 8 << 20;
  // Called once, on the writer thread, when a write or sync failed in a way
  // that is not a full disk. Optional.
  std::function<void(const absl::Status&)> on_fatal;
  // Tests: the file system RocksDB works through (fault injection).
  std::shared_ptr<rocksdb::FileSystem> file_system;
};

// Counters since Open (for metrics and the group-commit tests).
struct StoreStats {
  std::uint64_t commits = 0;  // batches committed (OK)
  std::uint64_t groups = 0;   // RocksDB writes (one per group)
  std::uint64_t syncs = 0;    // log syncs
  std::uint64_t bytes = 0;    // batch bytes written
  std::uint64_t failed_commits = 0;
};

class JobStore {
 public:
  // A set of changes, applied all or none.
  class Batch {
   public:
    Batch();
    ~Batch();
    Batch(Batch&&) noexcept;
    Batch& operator=(Batch&&) noexcept;

    // The job as accepted (its state fields are not stored here: see
    // PutState).
    void PutJob(const StoredJob& job);
    // Job `id`'s state and outcome, replacing the previous one.
    void PutState(std::uint64_t id, const StoredState& state);
    void PutIdempotencyKey(std::string_view key, std::uint64_t id);
    // Task.cancel(message) took effect on job `id`, which has not ended yet
    // (a final state stored later wins).
    void PutCancelRequest(std::uint64_t id, std::string_view message);
    // Forgets a job, its state (and its idempotency key, if it has one).
    void DeleteJob(std::uint64_t id, std::string_view idempotency_key);
    // Forgets an idempotency key alone (its job's record stays, for the
    // groups that list it).
    void DeleteIdempotencyKey(std::string_view key);
    // A limit declared by RPC (replacing one of the same name), and its
    // deletion.
    void PutLimit(std::string_view name, std::uint32_t permits);
    void DeleteLimit(std::string_view name);

    bool empty() const { return ops_.empty(); }
    std::size_t size() const { return ops_.size(); }
    std::size_t bytes() const { return bytes_; }

   private:
    friend class JobStore;
    struct Op {
      std::string key;
      std::optional<std::string> value;  // none: delete
    };
    std::vector<Op> ops_;
    std::size_t bytes_ = 0;
  };

  // Opens (creating if needed) the store in options.dir.
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(StoreOptions options);
  // Rebuilds a damaged store's metadata from what can be read (RocksDB's
  // RepairDB); what could not be read is lost. Run with the daemon stopped.
  static absl::Status Repair(const std::string& dir);

  // Runs the queued commits, stops the writer, syncs and closes.
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // Queues `batch`; `done` runs once it is durable (see the file comment),
  // or with the error that kept it from being so (never RESOURCE_EXHAUSTED
  // with `retry_while_full`: such a batch waits for space instead).
  void Commit(Batch batch, absl::AnyInvocable<void(absl::Status) &&> done,
              bool retry_while_full = false);
  // Commit, and wait for `done`.
  absl::Status CommitAndWait(Batch batch);

  // Every stored job, by increasing id, with its last stored state merged in
  // (PENDING if none). Stops at the first error `fn` returns; DATA_LOSS for a
  // record that does not parse.
  absl::Status ForEachJob(
      absl::FunctionRef<absl::Status(StoredJob&&)> fn) const;
  // Every stored limit declaration, by name. Stops at the first error `fn`
  // returns; DATA_LOSS for a record that does not parse.
  absl::Status ForEachLimit(
      absl::FunctionRef<absl::Status(std::string_view name,
                                     const StoredLimit& limit)>
          fn) const;
  // The id an idempotency key names, if stored.
  absl::StatusOr<std::optional<std::uint64_t>> FindIdempotencyKey(
      std::string_view key) const;
  // One job, if stored.
  absl::StatusOr<std::optional<StoredJob>> GetJob(std::uint64_t id) const;

  StoreStats stats() const;
  const StoreOptions& options() const { return options_; }
  // Whether a fatal error has stopped the writer.
  bool failed() const { return failed_.load(std::memory_order_acquire); }

 private:
  struct Pending {
    Batch batch;
    absl::AnyInvocable<void(absl::Status) &&> done;
    bool retry_while_full = false;
  };

  JobStore(StoreOptions options, std::unique_ptr<rocksdb::Env> env,
           std::shared_ptr<std::atomic<std::uint64_t>> log_sync_failures,
           rocksdb::DB* db);
  void WriterMain() ABSL_LOCKS_EXCLUDED(mu_);
  // Writes and (per durability) syncs one group; the status for all of it.
  absl::Status WriteGroup(std::vector<Pending>& group);
  bool stopping() ABSL_LOCKS_EXCLUDED(mu_);
  // The database with this store's options.
  static rocksdb::Status OpenDb(const std::string& dir, rocksdb::Env* env,
                                rocksdb::DB** db);
  // After a full disk: a new log (see the .cc), or RESOURCE_EXHAUSTED.
  absl::Status ReopenAfterFullDisk() ABSL_LOCKS_EXCLUDED(db_mu_);
  absl::Status DiskFull(const rocksdb::Status& s) const;
  absl::Status Reopening() const;
  // kAsync: syncs what was written since the last sync.
  void SyncLog();
  // Stops the store for good after a write or sync error.
  void Fail(std::string_view what, const absl::Status& cause);
  // After a reopen: answers the batches of the group in doubt (see the
  // file comment).
  void SettleDoubt();
  // While a group is in doubt and nothing else is queued: reopens if it is
  // time to, then settles it.
  void ReopenForDoubt();
  // Answers `p` with `status`, counting it.
  void Answer(Pending& p, const absl::Status& status);

  const StoreOptions options_;
  // Wraps options_.file_system (or the default one) to count the failed
  // syncs of the log in log_sync_failures_.
  std::unique_ptr<rocksdb::Env> env_;
  const std::shared_ptr<std::atomic<std::uint64_t>> log_sync_failures_;
  // Owned. Replaced (by the writer, under the writer lock) when a full disk
  // makes it reopen the database; null if that reopening failed. Readers
  // and the writer's writes hold the reader lock.
  mutable absl::Mutex db_mu_;
  rocksdb::DB* db_ ABSL_GUARDED_BY(db_mu_);

  bool WorkOrStopLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || stopping_;
  }

  absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::atomic<bool> failed_{false};
  absl::Status fatal_status_;  // written by the writer before failed_
  // Writer thread only.
  absl::Time last_reopen_;
  absl::Duration reopen_backoff_;
  bool disk_full_ = false;
  bool unsynced_ = false;
  // Batches kept for a full disk (retry_while_full), oldest first.
  std::vector<Pending> retry_;
  // The ordinary batches of the group in doubt (see the file comment), and
  // the last sequence number the database has if that group reached it.
  std::vector<Pending> doubt_;
  std::uint64_t doubt_sequence_ = 0;
  bool in_doubt_ = false;  // set by WriteGroup for the group it failed

  std::atomic<std::uint64_t> commits_{0};
  std::atomic<std::uint64_t> groups_{0};
  std::atomic<std::uint64_t> syncs_{0};
  std::atomic<std::uint64_t> bytes_{0};
  std::atomic<std::uint64_t> failed_commits_{0};

  std::thread writer_;  // last: starts once the rest exists
};

}  // namespace awaitd::server

#endif  // AWAITD_SERVER_STORE_STORE_H_
