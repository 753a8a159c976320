// JobStore; see store.h.
#include "server/store/store.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "common/logger.h"
#include "common/strings.h"
#include "google/protobuf/io/coded_stream.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "rocksdb/memtablerep.h"
#include "rocksdb/options.h"
#include "rocksdb/perf_level.h"
#include "rocksdb/write_batch.h"

namespace awaitd::server {
namespace {

constexpr char kJobPrefix = 'j';
constexpr char kKeyPrefix = 'k';
constexpr char kStatePrefix = 's';
constexpr char kCancelPrefix = 'c';
constexpr char kLimitPrefix = 'l';

void Store64(char* out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

std::uint64_t Load64(const char* in) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}

std::string IdKey(char prefix, std::uint64_t id) {
  std::string key(9, '\0');
  key[0] = prefix;
  Store64(key.data() + 1, id);
  return key;
}

std::string JobKey(std::uint64_t id) { return IdKey(kJobPrefix, id); }
std::string StateKey(std::uint64_t id) { return IdKey(kStatePrefix, id); }
std::string CancelKey(std::uint64_t id) { return IdKey(kCancelPrefix, id); }

// Copies a stored state into the job's state fields.
void Merge(StoredState&& st, StoredJob* job) {
  job->set_state(st.state());
  job->set_attempt(st.attempt());
  if (st.has_started_at()) *job->mutable_started_at() = st.started_at();
  if (st.has_finished_at()) *job->mutable_finished_at() = st.finished_at();
  if (st.has_result()) job->mutable_result()->Swap(st.mutable_result());
  if (st.has_error()) job->mutable_error()->Swap(st.mutable_error());
  job->set_forgotten(st.forgotten());
}

// Records are read with a deeper recursion limit than protobuf's default
// of 100: a daemon from before results by reference stored a group's
// result with its children's inside, two levels per level of groups, and
// refused its own store at start-up past about 50. The daemon writes
// nothing that deep any more (server/jobs/job.h: kMaxValueDepth); this reads
// what an older one wrote. Still bounded: the parser recurses.
constexpr int kRecordRecursionLimit = 2000;

bool ParseRecord(std::string_view bytes, google::protobuf::Message* out) {
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const std::uint8_t*>(bytes.data()),
      static_cast<int>(bytes.size()));
  in.SetRecursionLimit(kRecordRecursionLimit);
  return out->ParseFromCodedStream(&in) && in.ConsumedEntireMessage();
}

bool ParseRecord(const rocksdb::Slice& bytes, google::protobuf::Message* out) {
  return ParseRecord(std::string_view(bytes.data(), bytes.size()), out);
}

std::string IdempotencyKey(std::string_view k) {
  std::string key;
  key.reserve(1 + k.size());
  key.push_back(kKeyPrefix);
  key.append(k);
  return key;
}

std::string LimitKey(std::string_view name) {
  std::string key;
  key.reserve(1 + name.size());
  key.push_back(kLimitPrefix);
  key.append(name);
  return key;
}

std::string EncodeId(std::uint64_t id) {
  std::string v(8, '\0');
  Store64(v.data(), id);
  return v;
}

std::string_view View(const rocksdb::Slice& s) {
  return std::string_view(s.data(), s.size());
}

}  // namespace

absl::StatusOr<Durability> ParseDurability(std::string_view text) {
  if (text == "sync") return Durability::kSync;
  if (text == "async") return Durability::kAsync;
  if (text == "none") return Durability::kNone;
  return absl::InvalidArgumentError(StrCat(
      "--durability=", text, ": must be sync (the default), async or none"));
}

std::string_view DurabilityName(Durability d) {
  switch (d) {
    case Durability::kSync:
      return "sync";
    case Durability::kAsync:
      return "async";
    case Durability::kNone:
      return "none";
  }
  return "?";
}

// --- Batch
// ------------------------------------------------------------------

JobStore::Batch::Batch() = default;
JobStore::Batch::~Batch() = default;
JobStore::Batch::Batch(Batch&&) noexcept = default;
JobStore::Batch& JobStore::Batch::operator=(Batch&&) noexcept = default;

void JobStore::Batch::PutJob(const StoredJob& job) {
  Op op{JobKey(job.id()), job.SerializeAsString()};
  bytes_ += op.key.size() + op.value->size();
  ops_.push_back(std::move(op));
}

void JobStore::Batch::PutState(std::uint64_t id, const StoredState& state) {
  Op op{StateKey(id), state.SerializeAsString()};
  bytes_ += op.key.size() + op.value->size();
  ops_.push_back(std::move(op));
}

void JobStore::Batch::PutIdempotencyKey(std::string_view key,
                                        std::uint64_t id) {
  Op op{IdempotencyKey(key), EncodeId(id)};
  bytes_ += op.key.size() + op.value->size();
  ops_.push_back(std::move(op));
}

void JobStore::Batch::PutCancelRequest(std::uint64_t id,
                                       std::string_view message) {
  Op op{CancelKey(id), std::string(message)};
  bytes_ += op.key.size() + op.value->size();
  ops_.push_back(std::move(op));
}

void JobStore::Batch::DeleteJob(std::uint64_t id,
                                std::string_view idempotency_key) {
  ops_.push_back(Op{JobKey(id), std::nullopt});
  ops_.push_back(Op{StateKey(id), std::nullopt});
  ops_.push_back(Op{CancelKey(id), std::nullopt});
  bytes_ += 27;
  if (!idempotency_key.empty()) {
    ops_.push_back(Op{IdempotencyKey(idempotency_key), std::nullopt});
    bytes_ += 1 + idempotency_key.size();
  }
}

void JobStore::Batch::DeleteIdempotencyKey(std::string_view key) {
  ops_.push_back(Op{IdempotencyKey(key), std::nullopt});
  bytes_ += 1 + key.size();
}

void JobStore::Batch::PutLimit(std::string_view name, std::uint32_t permits) {
  StoredLimit limit;
  limit.set_permits(permits);
  Op op{LimitKey(name), limit.SerializeAsString()};
  bytes_ += op.key.size() + op.value->size();
  ops_.push_back(std::move(op));
}

void JobStore::Batch::DeleteLimit(std::string_view name) {
  ops_.push_back(Op{LimitKey(name), std::nullopt});
  bytes_ += 1 + name.size();
}

// --- Open, Repair, close
// ------------------------------------------------------------------

namespace {

// RocksDB's own log, kept off the store's disk: its file logger trips an
// assertion (Debian builds RocksDB with them) on the first line after a
// failed write, which a full disk makes certain. Warnings and errors go to
// stderr, in the daemon's key=value form.
class RocksDbLog final : public rocksdb::Logger {
 public:
  RocksDbLog() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    char line[1024];
    std::vsnprintf(line, sizeof line, format, ap);
    std::fprintf(stderr, "component=store event=rocksdb_log message=%s\n",
                 LogQuote(line).c_str());
  }
};

// Counts the failed syncs of the write-ahead log, so that a full disk
// reported by a sync (the group's record was appended, and may be replayed)
// can be told from one reported by an append (the record is torn at worst,
// and recovery drops it).
class LogSyncWatch final : public rocksdb::FileSystemWrapper {
 public:
  LogSyncWatch(std::shared_ptr<rocksdb::FileSystem> target,
               std::shared_ptr<std::atomic<std::uint64_t>> failures)
      : FileSystemWrapper(std::move(target)), failures_(std::move(failures)) {}
  const char* Name() const override { return "AwaitdLogSyncWatch"; }

  rocksdb::IOStatus NewWritableFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override {
    return Wrap(name, target()->NewWritableFile(name, options, result, dbg),
                result);
  }
  rocksdb::IOStatus ReopenWritableFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override {
    return Wrap(name, target()->ReopenWritableFile(name, options, result, dbg),
                result);
  }

 private:
  class File final : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> f,
         std::atomic<std::uint64_t>* failures)
        : FSWritableFileOwnerWrapper(std::move(f)), failures_(failures) {}
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
      return Count(target()->Sync(options, dbg));
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* dbg) override {
      return Count(target()->Fsync(options, dbg));
    }

   private:
    rocksdb::IOStatus Count(rocksdb::IOStatus s) {
      if (!s.ok()) failures_->fetch_add(1, std::memory_order_relaxed);
      return s;
    }
    std::atomic<std::uint64_t>* const failures_;
  };

  rocksdb::IOStatus Wrap(const std::string& name, rocksdb::IOStatus s,
                         std::unique_ptr<rocksdb::FSWritableFile>* result) {
    if (s.ok() && name.size() > 4 && name.substr(name.size() - 4) == ".log") {
      *result = std::make_unique<File>(std::move(*result), failures_.get());
    }
    return s;
  }

  const std::shared_ptr<std::atomic<std::uint64_t>> failures_;
};

}  // namespace

rocksdb::Status JobStore::OpenDb(const std::string& dir, rocksdb::Env* env,
                                 rocksdb::DB** db) {
  rocksdb::Options db_options;
  db_options.info_log = std::make_shared<RocksDbLog>();
  db_options.create_if_missing = true;
  db_options.paranoid_checks = true;
  // After a crash the log ends at the last whole record: what was written
  // but not synced may be cut off, and nothing after a damaged record is
  // replayed (a sync acknowledged everything before it).
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  // Writes are one thread's appends and the daemon reads only at recovery:
  // an unsorted vector memtable (sorted once, on flush or iteration) takes
  // inserts far cheaper than the default skip list.
  db_options.memtable_factory = std::make_shared<rocksdb::VectorRepFactory>();
  db_options.allow_concurrent_memtable_write = false;
  db_options.max_background_jobs = 2;
  db_options.keep_log_file_num = 4;
  if (env != nullptr) db_options.env = env;
  return rocksdb::DB::Open(db_options, dir, db);
}

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(StoreOptions options) {
  if (options.durability == Durability::kNone) {
    return absl::InvalidArgumentError(
        "--durability=none: no store is opened without durability");
  }
  if (options.dir.empty()) {
    return absl::InvalidArgumentError("--data_dir: must not be empty");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        StrCat("--data_dir: cannot create ", options.dir, ": ", ec.message()));
  }

  auto log_sync_failures = std::make_shared<std::atomic<std::uint64_t>>(0);
  std::unique_ptr<rocksdb::Env> env =
      rocksdb::NewCompositeEnv(std::make_shared<LogSyncWatch>(
          options.file_system != nullptr ? options.file_system
                                         : rocksdb::FileSystem::Default(),
          log_sync_failures));
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = OpenDb(options.dir, env.get(), &db);
  if (!s.ok()) {
    if (s.IsCorruption()) {
      return absl::DataLossError(StrCat(
          "the job store in ", options.dir, " is damaged (", s.ToString(),
          "); to start anyway, stop awaitd and run `awaitd "
          "--data_dir=<the same "
          "directory> "
          "--repair_store` (keeps what can be read), or move ",
          options.dir, " aside (starts empty)"));
    }
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return absl::FailedPreconditionError(StrCat(
          "the job store in ", options.dir, " is in use by another process (",
          s.ToString(), "): is another awaitd running with this --data_dir?"));
    }
    return absl::FailedPreconditionError(StrCat(
        "cannot open the job store in ", options.dir, ": ", s.ToString()));
  }
  return std::unique_ptr<JobStore>(new JobStore(
      std::move(options), std::move(env), std::move(log_sync_failures), db));
}

absl::Status JobStore::Repair(const std::string& dir) {
  rocksdb::Options options;
  rocksdb::Status s = rocksdb::RepairDB(dir, options);
  if (!s.ok()) {
    return absl::DataLossError(
        StrCat("repair of the job store in ", dir, " failed: ", s.ToString()));
  }
  return absl::OkStatus();
}

JobStore::JobStore(
    StoreOptions options, std::unique_ptr<rocksdb::Env> env,
    std::shared_ptr<std::atomic<std::uint64_t>> log_sync_failures,
    rocksdb::DB* db)
    : options_(std::move(options)),
      env_(std::move(env)),
      log_sync_failures_(std::move(log_sync_failures)),
      db_(db),
      reopen_backoff_(absl::FromChrono(options_.full_retry_interval)),
      writer_([this] { WriterMain(); }) {}

JobStore::~JobStore() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  writer_.join();
  absl::MutexLock lock(&db_mu_);
  if (db_ == nullptr) return;  // a reopen after a full disk failed
  if (!failed()) {
    if (unsynced_) db_->SyncWAL();
  }
  db_->Close();
  delete db_;
}

// --- Writing
// ------------------------------------------------------------------

void JobStore::Commit(Batch batch,
                      absl::AnyInvocable<void(absl::Status) &&> done,
                      bool retry_while_full) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.push_back(
          Pending{std::move(batch), std::move(done), retry_while_full});
      return;
    }
  }
  // Only a caller racing the destructor gets here.
  std::move(done)(absl::UnavailableError("the job store is closing"));
}

absl::Status JobStore::CommitAndWait(Batch batch) {
  absl::Mutex mu;
  bool finished = false;
  absl::Status result;
  Commit(std::move(batch), [&](absl::Status s) {
    absl::MutexLock lock(&mu);
    result = std::move(s);
    finished = true;
  });
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&finished));
  return result;
}

void JobStore::WriterMain() {
  // RocksDB's per-operation counters cost a thread-local lookup per key.
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  const absl::Duration interval =
      absl::FromChrono(options_.async_sync_interval);
  const absl::Duration retry_interval =
      absl::FromChrono(options_.full_retry_interval);
  for (;;) {
    // Batches kept for a full disk go first: they were committed first.
    std::vector<Pending> group;
    {
      absl::MutexLock lock(&mu_);
      const absl::Condition ready(this, &JobStore::WorkOrStopLocked);
      if (!retry_.empty()) {
        mu_.AwaitWithTimeout(ready, retry_interval);
        group = std::move(retry_);
        retry_.clear();
      } else if (!doubt_.empty()) {
        mu_.AwaitWithTimeout(ready, retry_interval);
      } else if (unsynced_) {
        mu_.AwaitWithTimeout(ready, interval);
      } else {
        mu_.Await(ready);
      }
      std::size_t bytes = 0;
      for (const Pending& p : group) bytes += p.batch.bytes();
      while (!queue_.empty() &&
             (group.empty() || bytes + queue_.front().batch.bytes() <=
                                   options_.max_group_bytes)) {
        bytes += queue_.front().batch.bytes();
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (group.empty() && stopping_) break;
    }
    if (group.empty()) {
      if (!doubt_.empty()) {
        ReopenForDoubt();
      } else {
        SyncLog();  // kAsync: the interval passed with nothing new
      }
      continue;
    }
    in_doubt_ = false;
    const absl::Status status = WriteGroup(group);
    // A full disk at shutdown fails what is kept: nobody writes it later.
    const bool keep = absl::IsResourceExhausted(status) && !stopping();
    for (Pending& p : group) {
      if (keep && p.retry_while_full) {
        // Written again after the reopen (harmless if it reached the log).
        retry_.push_back(std::move(p));
      } else if (in_doubt_) {
        doubt_.push_back(std::move(p));  // answered by SettleDoubt
      } else {
        Answer(p, status);
      }
    }
  }
  // Stopping: a group still in doubt stays so (a restart finds it or not).
  for (Pending& p : std::exchange(doubt_, {})) {
    Answer(p, absl::UnavailableError(StrCat(
                  "the job store in ", options_.dir,
                  " closed before it could tell whether this write, whose "
                  "sync found the disk full, reached its log; a restart "
                  "finds it if it did: retry with the same idempotency key")));
  }
}

void JobStore::Answer(Pending& p, const absl::Status& status) {
  if (status.ok()) {
    commits_.fetch_add(1, std::memory_order_relaxed);
  } else {
    failed_commits_.fetch_add(1, std::memory_order_relaxed);
  }
  std::move(p.done)(status);
}

void JobStore::ReopenForDoubt() {
  if (failed()) {
    for (Pending& p : std::exchange(doubt_, {})) Answer(p, fatal_status_);
    return;
  }
  if (!disk_full_) return;
  const absl::Status s = ReopenAfterFullDisk();
  if (s.ok()) {
    SettleDoubt();
  } else if (!absl::IsResourceExhausted(s)) {
    Fail("reopen", s);
    for (Pending& p : std::exchange(doubt_, {})) Answer(p, fatal_status_);
  }
}

void JobStore::SettleDoubt() {
  if (doubt_.empty()) return;
  bool landed;
  {
    absl::ReaderMutexLock lock(&db_mu_);
    // Nothing was written since the failed group (the disk was full), and
    // the reopen replayed the log: the group is there iff the sequence
    // numbers reach its last operation.
    landed = db_->GetLatestSequenceNumber() >= doubt_sequence_;
  }
  const absl::Status status =
      landed ? absl::OkStatus()
             : DiskFull(rocksdb::Status::NoSpace(
                   "the sync failed, and the write had not reached the log"));
  std::fprintf(stderr,
               "component=store event=doubt_settled reached_log=%s "
               "batches=%zu\n",
               landed ? "true" : "false", doubt_.size());
  for (Pending& p : std::exchange(doubt_, {})) Answer(p, status);
}

bool JobStore::stopping() {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

absl::Status JobStore::WriteGroup(std::vector<Pending>& group) {
  if (failed()) return fatal_status_;
  if (disk_full_) {
    absl::Status s = ReopenAfterFullDisk();
    if (absl::IsResourceExhausted(s)) return s;
    if (!s.ok()) {
      Fail("reopen", s);
      for (Pending& p : std::exchange(doubt_, {})) Answer(p, fatal_status_);
      return fatal_status_;
    }
    SettleDoubt();  // before this group writes anything
  }
  absl::ReaderMutexLock lock(&db_mu_);
  // A job's state is often written twice in one group (RUNNING, then its
  // outcome, for a short job): only the last write of each state key goes
  // to RocksDB, whose memtable insertions are the writer's main cost.
  absl::flat_hash_map<std::string_view, const Batch::Op*> last_state;
  for (const Pending& p : group) {
    for (const Batch::Op& op : p.batch.ops_) {
      if (!op.key.empty() && op.key[0] == kStatePrefix)
        last_state[op.key] = &op;
    }
  }
  rocksdb::WriteBatch batch;
  std::size_t bytes = 0;
  for (const Pending& p : group) {
    bytes += p.batch.bytes();
    for (const Batch::Op& op : p.batch.ops_) {
      if (!op.key.empty() && op.key[0] == kStatePrefix &&
          last_state[op.key] != &op) {
        continue;  // superseded later in this group
      }
      if (op.value) {
        batch.Put(op.key, *op.value);
      } else {
        batch.Delete(op.key);
      }
    }
  }
  rocksdb::WriteOptions write_options;
  write_options.sync = options_.durability == Durability::kSync;
  const std::uint64_t sequence = db_->GetLatestSequenceNumber();
  const std::uint64_t sync_failures =
      log_sync_failures_->load(std::memory_order_relaxed);
  const rocksdb::Status s = db_->Write(write_options, &batch);
  groups_.fetch_add(1, std::memory_order_relaxed);
  if (write_options.sync) syncs_.fetch_add(1, std::memory_order_relaxed);
  if (s.ok()) {
    disk_full_ = false;
    reopen_backoff_ = absl::FromChrono(options_.full_retry_interval);
    unsynced_ = !write_options.sync;
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
    return absl::OkStatus();
  }
  if (s.IsNoSpace()) {
    disk_full_ = true;
    last_reopen_ = absl::Now();
    // Reported by the sync: the record was appended (see the file comment).
    in_doubt_ =
        log_sync_failures_->load(std::memory_order_relaxed) != sync_failures;
    if (in_doubt_) doubt_sequence_ = sequence + batch.Count();
    return DiskFull(s);
  }
  Fail(write_options.sync ? "write and sync" : "write",
       absl::InternalError(s.ToString()));
  return fatal_status_;
}

absl::Status JobStore::DiskFull(const rocksdb::Status& s) const {
  return absl::ResourceExhaustedError(StrCat(
      "the job store's disk is full (", options_.dir,
      "): nothing was accepted; free space, then retry (", s.ToString(), ")"));
}

absl::Status JobStore::ReopenAfterFullDisk() {
  // RocksDB 7.8 cannot be resumed reliably after a failed append to its
  // log: with an empty memtable, DB::Resume keeps the log that failed, and
  // the next write fails for good or trips an assertion (RocksDB issues
  // 11643 and 12998, fixed in 9.x). Closing and opening the database again
  // starts a new log (the old one ends at its last whole record, which
  // holds everything acknowledged). Tried every full_retry_interval at
  // first, then less and less often (up to every 5 s) while it fails.
  const absl::Time now = absl::Now();
  if (now - last_reopen_ < reopen_backoff_) {
    return DiskFull(rocksdb::Status::NoSpace("not retried yet"));
  }
  last_reopen_ = now;
  reopen_backoff_ = std::min(reopen_backoff_ * 2, absl::Seconds(5));
  absl::MutexLock lock(&db_mu_);
  if (db_ != nullptr) {
    db_->Close();  // the error that stopped it, or OK: nothing to act on
    delete db_;
    db_ = nullptr;
  }
  rocksdb::DB* db = nullptr;
  const rocksdb::Status s = OpenDb(options_.dir, env_.get(), &db);
  if (s.IsNoSpace()) return DiskFull(s);
  if (!s.ok()) return absl::InternalError(s.ToString());
  db_ = db;
  disk_full_ = false;
  return absl::OkStatus();
}

void JobStore::SyncLog() {
  if (!unsynced_ || failed()) return;
  absl::ReaderMutexLock lock(&db_mu_);
  if (db_ == nullptr) return;
  const rocksdb::Status s = db_->SyncWAL();
  syncs_.fetch_add(1, std::memory_order_relaxed);
  if (s.ok()) {
    unsynced_ = false;
  } else {
    Fail("sync", absl::InternalError(s.ToString()));
  }
}

void JobStore::Fail(std::string_view what, const absl::Status& cause) {
  if (failed()) return;
  fatal_status_ = absl::UnavailableError(
      StrCat("the job store in ", options_.dir, " failed to ", what, " (",
             cause.message(),
             "): nothing more is accepted, and the daemon must restart"));
  failed_.store(true, std::memory_order_release);
  if (options_.on_fatal) options_.on_fatal(fatal_status_);
}

// --- Reading
// ------------------------------------------------------------------

absl::Status JobStore::Reopening() const {
  return absl::UnavailableError(
      StrCat("the job store in ", options_.dir,
             " is closed until its disk has space again"));
}

absl::Status JobStore::ForEachJob(
    absl::FunctionRef<absl::Status(StoredJob&&)> fn) const {
  // Three ordered ranges walked side by side: "j", "s" and "c" ids. A state
  // or cancel request without its job (never written by JobStore, but
  // harmless) is skipped.
  auto range = [this](char prefix, std::string* upper, rocksdb::Slice* slice)
                   ABSL_SHARED_LOCKS_REQUIRED(db_mu_) {
                     rocksdb::ReadOptions read_options;
                     read_options.fill_cache = false;
                     *upper = std::string(1, static_cast<char>(prefix + 1));
                     *slice = rocksdb::Slice(*upper);
                     read_options.iterate_upper_bound = slice;
                     std::unique_ptr<rocksdb::Iterator> it(
                         db_->NewIterator(read_options));
                     it->Seek(std::string(1, prefix));
                     return it;
                   };
  absl::ReaderMutexLock lock(&db_mu_);
  if (db_ == nullptr) return Reopening();
  std::string jobs_upper, states_upper, cancels_upper;
  rocksdb::Slice jobs_slice, states_slice, cancels_slice;
  std::unique_ptr<rocksdb::Iterator> jobs =
      range(kJobPrefix, &jobs_upper, &jobs_slice);
  std::unique_ptr<rocksdb::Iterator> states =
      range(kStatePrefix, &states_upper, &states_slice);
  std::unique_ptr<rocksdb::Iterator> cancels =
      range(kCancelPrefix, &cancels_upper, &cancels_slice);
  auto unreadable = [this](const rocksdb::Slice& key) {
    return absl::DataLossError(StrCat("the job store in ", options_.dir,
                                      " has an unreadable record (key ",
                                      CHexEscape(View(key)), ")"));
  };
  for (; jobs->Valid(); jobs->Next()) {
    StoredJob job;
    if (jobs->key().size() != 9 || !ParseRecord(jobs->value(), &job)) {
      return unreadable(jobs->key());
    }
    const std::uint64_t id = Load64(jobs->key().data() + 1);
    job.set_state(v1::JOB_STATE_PENDING);
    for (; states->Valid(); states->Next()) {
      if (states->key().size() != 9) return unreadable(states->key());
      if (Load64(states->key().data() + 1) >= id) break;
    }
    if (states->Valid() && Load64(states->key().data() + 1) == id) {
      StoredState st;
      if (!ParseRecord(states->value(), &st)) {
        return unreadable(states->key());
      }
      Merge(std::move(st), &job);
      states->Next();
    }
    for (; cancels->Valid(); cancels->Next()) {
      if (cancels->key().size() != 9) return unreadable(cancels->key());
      if (Load64(cancels->key().data() + 1) >= id) break;
    }
    if (cancels->Valid() && Load64(cancels->key().data() + 1) == id) {
      job.set_cancel_requested(true);
      job.set_cancel_message(std::string(View(cancels->value())));
      cancels->Next();
    }
    absl::Status s = fn(std::move(job));
    if (!s.ok()) return s;
  }
  for (rocksdb::Iterator* it : {jobs.get(), states.get(), cancels.get()}) {
    if (!it->status().ok()) {
      return absl::DataLossError(StrCat("reading the job store in ",
                                        options_.dir, ": ",
                                        it->status().ToString()));
    }
  }
  return absl::OkStatus();
}

absl::Status JobStore::ForEachLimit(
    absl::FunctionRef<absl::Status(std::string_view, const StoredLimit&)> fn)
    const {
  absl::ReaderMutexLock lock(&db_mu_);
  if (db_ == nullptr) return Reopening();
  rocksdb::ReadOptions read_options;
  read_options.fill_cache = false;
  const std::string upper(1, static_cast<char>(kLimitPrefix + 1));
  const rocksdb::Slice upper_slice(upper);
  read_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options));
  for (it->Seek(std::string(1, kLimitPrefix)); it->Valid(); it->Next()) {
    StoredLimit limit;
    if (!limit.ParseFromArray(it->value().data(),
                              static_cast<int>(it->value().size()))) {
      return absl::DataLossError(StrCat("the job store in ", options_.dir,
                                        " has an unreadable record (key ",
                                        CHexEscape(View(it->key())), ")"));
    }
    absl::Status s = fn(View(it->key()).substr(1), limit);
    if (!s.ok()) return s;
  }
  if (!it->status().ok()) {
    return absl::DataLossError(StrCat("reading the job store in ", options_.dir,
                                      ": ", it->status().ToString()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::uint64_t>> JobStore::FindIdempotencyKey(
    std::string_view key) const {
  absl::ReaderMutexLock lock(&db_mu_);
  if (db_ == nullptr) return Reopening();
  std::string value;
  const rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), IdempotencyKey(key), &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok() || value.size() != 8) {
    return absl::DataLossError(
        StrCat("reading idempotency key from the job store in ", options_.dir,
               ": ", s.ok() ? "a record of the wrong size" : s.ToString()));
  }
  return Load64(value.data());
}

absl::StatusOr<std::optional<StoredJob>> JobStore::GetJob(
    std::uint64_t id) const {
  absl::ReaderMutexLock lock(&db_mu_);
  if (db_ == nullptr) return Reopening();
  std::string value;
  const rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), JobKey(id), &value);
  if (s.IsNotFound()) return std::nullopt;
  StoredJob job;
  if (!s.ok() || !ParseRecord(std::string_view(value), &job)) {
    return absl::DataLossError(
        StrCat("reading job ", id, " from the job store in ", options_.dir,
               ": ", s.ok() ? "the record does not parse" : s.ToString()));
  }
  job.set_state(v1::JOB_STATE_PENDING);
  const rocksdb::Status ss =
      db_->Get(rocksdb::ReadOptions(), StateKey(id), &value);
  if (ss.ok()) {
    StoredState st;
    if (!ParseRecord(std::string_view(value), &st)) {
      return absl::DataLossError(StrCat("reading the state of job ", id,
                                        " from the job store in ", options_.dir,
                                        ": the record does not parse"));
    }
    Merge(std::move(st), &job);
  } else if (!ss.IsNotFound()) {
    return absl::DataLossError(StrCat("reading the state of job ", id,
                                      " from the job store in ", options_.dir,
                                      ": ", ss.ToString()));
  }
  const rocksdb::Status cs =
      db_->Get(rocksdb::ReadOptions(), CancelKey(id), &value);
  if (cs.ok()) {
    job.set_cancel_requested(true);
    job.set_cancel_message(value);
  } else if (!cs.IsNotFound()) {
    return absl::DataLossError(StrCat("reading the cancel request of job ", id,
                                      " from the job store in ", options_.dir,
                                      ": ", cs.ToString()));
  }
  return job;
}

StoreStats JobStore::stats() const {
  StoreStats s;
  s.commits = commits_.load(std::memory_order_relaxed);
  s.groups = groups_.load(std::memory_order_relaxed);
  s.syncs = syncs_.load(std::memory_order_relaxed);
  s.bytes = bytes_.load(std::memory_order_relaxed);
  s.failed_commits = failed_commits_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace awaitd::server
