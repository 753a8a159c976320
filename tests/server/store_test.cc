// JobStore (server/store/store.h): records round-trip through a restart, group
// commit shares syncs, a crash (SIGKILL) loses nothing acknowledged, and the
// failure policy: a full disk is RESOURCE_EXHAUSTED with reads going on, a
// failing sync is fatal and acknowledges nothing, a damaged store is refused
// with the repair path.
#include "server/store/store.h"

#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/file_system.h"
#include "tests/server/faulty_file_system.h"

namespace awaitd::server {
namespace {

using testing::FaultyFileSystem;

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// A fresh directory, removed at the end.
class TempDir {
 public:
  TempDir() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "awaitd-store-test-XXXXXX")
            .string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

StoredJob MakeJob(std::uint64_t id, std::string kind = "sleep") {
  StoredJob job;
  job.set_id(id);
  job.set_name("Job-" + std::to_string(id));
  job.mutable_spec()->set_kind(kind);
  (*job.mutable_spec()->mutable_args()->mutable_fields())["n"].set_number_value(
      static_cast<double>(id));
  job.set_state(v1::JOB_STATE_PENDING);
  return job;
}

absl::Status PutJobs(JobStore& store, std::uint64_t first, std::uint64_t n) {
  JobStore::Batch batch;
  for (std::uint64_t id = first; id < first + n; ++id)
    batch.PutJob(MakeJob(id));
  return store.CommitAndWait(std::move(batch));
}

std::vector<StoredJob> AllJobs(const JobStore& store) {
  std::vector<StoredJob> out;
  absl::Status s = store.ForEachJob([&](StoredJob&& j) {
    out.push_back(std::move(j));
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

TEST(StoreTest, DurabilityFlagParses) {
  EXPECT_EQ(*ParseDurability("sync"), Durability::kSync);
  EXPECT_EQ(*ParseDurability("async"), Durability::kAsync);
  EXPECT_EQ(*ParseDurability("none"), Durability::kNone);
  absl::StatusOr<Durability> bad = ParseDurability("fsync");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("--durability=fsync"));
}

TEST(StoreTest, RecordsSurviveAReopenInIdOrder) {
  TempDir dir;
  {
    auto store = JobStore::Open({.dir = dir.Sub("store")});
    ASSERT_TRUE(store.ok()) << store.status();
    // Ids across a byte boundary: big-endian keys keep numeric order.
    JobStore::Batch batch;
    for (std::uint64_t id : {300, 2, 256, 1, 255}) batch.PutJob(MakeJob(id));
    batch.PutIdempotencyKey("order-17", 256);
    ASSERT_TRUE((*store)->CommitAndWait(std::move(batch)).ok());
    StoredState running;
    running.set_state(v1::JOB_STATE_RUNNING);
    running.set_attempt(1);
    StoredState done;
    done.set_state(v1::JOB_STATE_SUCCEEDED);
    done.set_attempt(1);
    done.mutable_result()->set_string_value("ok");
    JobStore::Batch update;
    update.PutState(2, running);
    update.PutState(300, running);
    update.PutState(2, done);  // the later one wins
    ASSERT_TRUE((*store)->CommitAndWait(std::move(update)).ok());
  }
  auto store = JobStore::Open({.dir = dir.Sub("store")});
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<StoredJob> jobs = AllJobs(**store);
  std::vector<std::uint64_t> ids;
  for (const StoredJob& j : jobs) ids.push_back(j.id());
  EXPECT_EQ(ids, (std::vector<std::uint64_t>{1, 2, 255, 256, 300}));
  EXPECT_EQ(jobs[0].state(), v1::JOB_STATE_PENDING) << "no state stored";
  EXPECT_EQ(jobs[1].state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(jobs[1].attempt(), 1u);
  EXPECT_EQ(jobs[1].result().string_value(), "ok");
  EXPECT_EQ(jobs[4].state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ((*(*store)->GetJob(2))->result().string_value(), "ok");
  EXPECT_EQ(jobs[3].spec().args().fields().at("n").number_value(), 256);
  EXPECT_EQ(*(*store)->FindIdempotencyKey("order-17"), 256u);
  EXPECT_EQ(*(*store)->FindIdempotencyKey("order-18"), std::nullopt);

  JobStore::Batch forget;
  forget.DeleteJob(256, "order-17");
  forget.DeleteJob(2, "");
  ASSERT_TRUE((*store)->CommitAndWait(std::move(forget)).ok());
  EXPECT_EQ(*(*store)->GetJob(2), std::nullopt);
  EXPECT_EQ(*(*store)->GetJob(256), std::nullopt);
  EXPECT_EQ(*(*store)->FindIdempotencyKey("order-17"), std::nullopt);
  EXPECT_EQ(AllJobs(**store).size(), 3u);
  // A job stored again under a forgotten id starts without the old state.
  ASSERT_TRUE(PutJobs(**store, 2, 1).ok());
  EXPECT_EQ((*(*store)->GetJob(2))->state(), v1::JOB_STATE_PENDING);
}

TEST(StoreTest, ACancelRequestIsMergedAndForgottenWithItsJob) {
  TempDir dir;
  auto store = JobStore::Open({.dir = dir.Sub("store")});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(PutJobs(**store, 1, 3).ok());
  JobStore::Batch b;
  b.PutCancelRequest(2, "enough");
  ASSERT_TRUE((*store)->CommitAndWait(std::move(b)).ok());
  std::vector<StoredJob> all = AllJobs(**store);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_FALSE(all[0].cancel_requested());
  EXPECT_TRUE(all[1].cancel_requested());
  EXPECT_EQ(all[1].cancel_message(), "enough");
  EXPECT_FALSE(all[2].cancel_requested());
  EXPECT_EQ((**(*store)->GetJob(2)).cancel_message(), "enough");
  JobStore::Batch forget;
  forget.DeleteJob(2, "");
  ASSERT_TRUE((*store)->CommitAndWait(std::move(forget)).ok());
  // A job stored again under that id (never, in the daemon) would not
  // inherit the request.
  ASSERT_TRUE(PutJobs(**store, 2, 1).ok());
  EXPECT_FALSE((**(*store)->GetJob(2)).cancel_requested());
}

TEST(StoreTest, LimitDeclarationsAreStoredReplacedAndDeletedApartFromJobs) {
  TempDir dir;
  {
    auto store = JobStore::Open({.dir = dir.Sub("store")});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE(PutJobs(**store, 1, 2).ok());
    JobStore::Batch b;
    b.PutLimit("http", 50);
    b.PutLimit("db", 10);
    b.PutLimit("api", 1);
    ASSERT_TRUE((*store)->CommitAndWait(std::move(b)).ok());
    JobStore::Batch change;
    change.PutLimit("db", 12);  // the last declaration wins
    change.DeleteLimit("api");
    ASSERT_TRUE((*store)->CommitAndWait(std::move(change)).ok());
  }
  auto store = JobStore::Open({.dir = dir.Sub("store")});
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<std::pair<std::string, std::uint32_t>> limits;
  ASSERT_TRUE(
      (*store)
          ->ForEachLimit([&](std::string_view name, const StoredLimit& l) {
            limits.emplace_back(std::string(name), l.permits());
            return absl::OkStatus();
          })
          .ok());
  EXPECT_THAT(limits, ::testing::ElementsAre(::testing::Pair("db", 12u),
                                             ::testing::Pair("http", 50u)));
  // The limits are no jobs, and the jobs no limits.
  EXPECT_EQ(AllJobs(**store).size(), 2u);
}

TEST(StoreTest, ConcurrentCommitsShareSyncs) {
  TempDir dir;
  auto fs = std::make_shared<FaultyFileSystem>();
  fs->sync_delay_ms = 2;  // a slow disk: commits queue behind each sync
  auto store = JobStore::Open({.dir = dir.Sub("store"), .file_system = fs});
  ASSERT_TRUE(store.ok()) << store.status();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 50;
  std::atomic<int> acked{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::uint64_t id = 1 + t * kPerThread + i;
        JobStore::Batch b;
        b.PutJob(MakeJob(id));
        if ((*store)->CommitAndWait(std::move(b)).ok()) acked.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  const StoreStats stats = (*store)->stats();
  EXPECT_EQ(acked.load(), kThreads * kPerThread);
  EXPECT_EQ(stats.commits, static_cast<std::uint64_t>(kThreads * kPerThread));
  // Every group is one write and one sync; 8 committers waiting on each
  // sync make groups of several.
  EXPECT_EQ(stats.syncs, stats.groups);
  EXPECT_LT(stats.groups, stats.commits / 2) << "no group commit";
  EXPECT_EQ(AllJobs(**store).size(),
            static_cast<std::size_t>(kThreads * kPerThread));
}

TEST(StoreTest, CallbacksRunInCommitOrder) {
  TempDir dir;
  auto store = JobStore::Open({.dir = dir.Sub("store")});
  ASSERT_TRUE(store.ok()) << store.status();
  absl::Mutex mu;
  std::vector<int> order;
  for (int i = 0; i < 100; ++i) {
    JobStore::Batch b;
    b.PutJob(MakeJob(i + 1));
    (*store)->Commit(std::move(b), [&, i](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      absl::MutexLock lock(&mu);
      order.push_back(i);
    });
  }
  ASSERT_TRUE(PutJobs(**store, 1000, 1).ok());  // after all of the above
  absl::MutexLock lock(&mu);
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
}

TEST(StoreTest, AsyncDurabilitySyncsInTheBackground) {
  TempDir dir;
  auto store = JobStore::Open({.dir = dir.Sub("store"),
                               .durability = Durability::kAsync,
                               .async_sync_interval = 20ms});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(PutJobs(**store, 1, 10).ok());
  EXPECT_EQ((*store)->stats().groups, 1u);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((*store)->stats().syncs == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ((*store)->stats().syncs, 1u) << "the interval's sync";
}

TEST(StoreTest, NoneIsNotAStore) {
  TempDir dir;
  auto store = JobStore::Open(
      {.dir = dir.Sub("store"), .durability = Durability::kNone});
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(StoreTest, AFullDiskIsResourceExhaustedAndReadsGoOn) {
  TempDir dir;
  auto fs = std::make_shared<FaultyFileSystem>();
  std::atomic<int> fatal{0};
  auto store =
      JobStore::Open({.dir = dir.Sub("store"),
                      .on_fatal = [&](const absl::Status&) { ++fatal; },
                      .file_system = fs});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(PutJobs(**store, 1, 3).ok());

  fs->no_space = true;
  absl::Status s = PutJobs(**store, 10, 1);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("disk is full"));
  EXPECT_EQ(PutJobs(**store, 11, 1).code(),
            absl::StatusCode::kResourceExhausted);
  // What was stored before is still there to read.
  EXPECT_EQ(AllJobs(**store).size(), 3u);
  ASSERT_TRUE((*store)->GetJob(2)->has_value());
  EXPECT_EQ(fatal.load(), 0);
  EXPECT_FALSE((*store)->failed());
  EXPECT_EQ(*(*store)->GetJob(10), std::nullopt) << "a refused job was stored";

  // Space is freed: commits succeed again once RocksDB has noticed (it
  // polls for free space) or the store's own resume got through.
  fs->no_space = false;
  const auto start = std::chrono::steady_clock::now();
  do {
    s = PutJobs(**store, 12, 1);
    if (s.ok()) break;
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
    std::this_thread::sleep_for(50ms);
  } while (std::chrono::steady_clock::now() - start < 60s);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(AllJobs(**store).size(), 4u);
}

TEST(StoreTest, ACommitThatRetriesWhileFullWaitsForSpaceInOrder) {
  TempDir dir;
  auto fs = std::make_shared<FaultyFileSystem>();
  auto store = JobStore::Open({.dir = dir.Sub("store"),
                               .full_retry_interval = 10ms,
                               .file_system = fs});
  ASSERT_TRUE(store.ok()) << store.status();
  fs->no_space = true;
  absl::Mutex mu;
  std::vector<std::pair<int, absl::Status>> done;
  auto record = [&](int i) {
    return [&, i](absl::Status s) {
      absl::MutexLock lock(&mu);
      done.emplace_back(i, std::move(s));
    };
  };
  for (int i = 1; i <= 3; ++i) {
    JobStore::Batch b;
    b.PutJob(MakeJob(i));
    (*store)->Commit(std::move(b), record(i), /*retry_while_full=*/true);
  }
  // An ordinary commit meanwhile is refused at once, whatever is kept.
  EXPECT_EQ(PutJobs(**store, 10, 1).code(),
            absl::StatusCode::kResourceExhausted);
  std::this_thread::sleep_for(100ms);  // about 10 retries
  {
    absl::MutexLock lock(&mu);
    EXPECT_TRUE(done.empty()) << "a kept commit was answered on a full disk";
  }
  EXPECT_EQ(AllJobs(**store).size(), 0u);

  fs->no_space = false;
  {
    absl::MutexLock lock(&mu);
    EXPECT_TRUE(mu.AwaitWithTimeout(
        absl::Condition(
            +[](std::vector<std::pair<int, absl::Status>>* d) {
              return d->size() == 3;
            },
            &done),
        absl::Seconds(60)));
    ASSERT_EQ(done.size(), 3u);
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(done[i].first, i + 1) << "out of commit order";
      EXPECT_TRUE(done[i].second.ok()) << done[i].second;
    }
  }
  EXPECT_EQ(AllJobs(**store).size(), 3u);
}

// A real full disk: the store on a 4 MiB tmpfs, filled up by a file. Needs
// the right to mount (root in CI); skipped, saying so, elsewhere.
class RealDiskFullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mount_ = dir_.Sub("tmpfs");
    std::filesystem::create_directories(mount_);
    if (mount("tmpfs", mount_.c_str(), "tmpfs", 0, "size=4m") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno)
                   << "): the full disk is only injected elsewhere";
    }
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) umount2(mount_.c_str(), MNT_DETACH);
  }
  // Writes a file until the disk is full; returns its path.
  std::string Fill() {
    const std::string path = mount_ + "/filler";
    std::FILE* f = std::fopen(path.c_str(), "w");
    EXPECT_NE(f, nullptr);
    std::vector<char> chunk(4096, 'x');
    while (std::fwrite(chunk.data(), 1, chunk.size(), f) == chunk.size() &&
           std::fflush(f) == 0) {
    }
    std::fclose(f);
    return path;
  }
  TempDir dir_;
  std::string mount_;
  bool mounted_ = false;
};

TEST_F(RealDiskFullTest, AFullTmpfsRefusesThenRecoversWithNothingLost) {
  const std::string store_dir = mount_ + "/store";
  {
    std::atomic<int> fatal{0};
    auto store =
        JobStore::Open({.dir = store_dir,
                        .full_retry_interval = 20ms,
                        .on_fatal = [&](const absl::Status&) { ++fatal; }});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE(PutJobs(**store, 1, 3).ok());
    const std::string filler = Fill();

    // A batch bigger than any slack left in the log's last page.
    absl::Status s = PutJobs(**store, 10, 200);
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
    absl::Notification kept_done;
    absl::Status kept_status;
    {
      JobStore::Batch b;
      for (std::uint64_t id = 20; id < 220; ++id) b.PutJob(MakeJob(id));
      (*store)->Commit(
          std::move(b),
          [&](absl::Status st) {
            kept_status = std::move(st);
            kept_done.Notify();
          },
          /*retry_while_full=*/true);
    }
    EXPECT_FALSE(kept_done.WaitForNotificationWithTimeout(absl::Seconds(0.3)))
        << "a kept commit was answered on a full disk: " << kept_status;
    EXPECT_EQ(fatal.load(), 0) << "a full disk is not fatal";

    std::filesystem::remove(filler);
    ASSERT_TRUE(kept_done.WaitForNotificationWithTimeout(absl::Seconds(60)));
    EXPECT_TRUE(kept_status.ok()) << kept_status;
    EXPECT_TRUE(PutJobs(**store, 300, 1).ok());
    EXPECT_EQ(fatal.load(), 0);
  }
  // Reopened: everything acknowledged, nothing refused.
  auto store = JobStore::Open({.dir = store_dir});
  ASSERT_TRUE(store.ok()) << store.status();
  std::set<std::uint64_t> ids;
  for (const StoredJob& j : AllJobs(**store)) ids.insert(j.id());
  EXPECT_EQ(ids.size(), 3u + 200u + 1u);
  EXPECT_TRUE(ids.count(1) && ids.count(20) && ids.count(219) &&
              ids.count(300));
  EXPECT_FALSE(ids.count(10)) << "a refused batch was stored";
}

TEST(StoreTest, AFailingSyncIsFatalAndAcknowledgesNothing) {
  TempDir dir;
  auto fs = std::make_shared<FaultyFileSystem>();
  std::atomic<int> fatal{0};
  std::string fatal_message;
  auto store = JobStore::Open({.dir = dir.Sub("store"),
                               .on_fatal =
                                   [&](const absl::Status& s) {
                                     ++fatal;
                                     fatal_message = std::string(s.message());
                                   },
                               .file_system = fs});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(PutJobs(**store, 1, 3).ok());

  fs->fail_sync = true;
  absl::Status s = PutJobs(**store, 10, 1);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(fatal.load(), 1);
  EXPECT_THAT(fatal_message, HasSubstr("must restart"));
  EXPECT_TRUE((*store)->failed());
  // Nothing after a failed sync is acknowledged, even once syncs work again.
  fs->fail_sync = false;
  EXPECT_EQ(PutJobs(**store, 11, 1).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(fatal.load(), 1) << "on_fatal runs once";
  EXPECT_EQ((*store)->stats().failed_commits, 2u);
}

TEST(StoreTest, AFullDiskReportedByTheSyncAnswersWhatTheLogHolds) {
  TempDir dir;
  auto fs = std::make_shared<FaultyFileSystem>();
  std::atomic<int> fatal{0};
  const std::string path = dir.Sub("store");
  bool accepted = false;
  {
    auto store =
        JobStore::Open({.dir = path,
                        .full_retry_interval = 20ms,
                        .on_fatal = [&](const absl::Status&) { ++fatal; },
                        .file_system = fs});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE(PutJobs(**store, 1, 3).ok());

    // The record is appended (and synced), then the fsync reports ENOSPC:
    // whether the store holds it is for the reopen to tell (RocksDB 7.8
    // drops a write that failed: the log it went to is made obsolete), and
    // the answer says what it holds, never "nothing was accepted" for a
    // record the store keeps.
    fs->HangSyncs();
    JobStore::Batch batch;
    batch.PutJob(MakeJob(10));
    batch.PutIdempotencyKey("order-10", 10);
    absl::Notification answered;
    absl::Status status;
    (*store)->Commit(std::move(batch), [&](absl::Status s) {
      status = std::move(s);
      answered.Notify();
    });
    fs->AwaitHungSyncs(1);  // appended; its sync now fails
    fs->sync_no_space = true;
    const std::uint64_t groups = (*store)->stats().groups;
    fs->ReleaseSyncs();
    while ((*store)->stats().groups == groups)
      absl::SleepFor(absl::Milliseconds(1));
    fs->sync_no_space = false;
    ASSERT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(30)));
    accepted = status.ok();
    if (!accepted) {
      EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
    }
    EXPECT_EQ(fatal.load(), 0) << "a full disk is not fatal";
    auto key = (*store)->FindIdempotencyKey("order-10");
    ASSERT_TRUE(key.ok()) << key.status();
    EXPECT_EQ(*key, accepted ? std::optional<std::uint64_t>(10) : std::nullopt)
        << "answered " << status;
    // Writes go on after it.
    EXPECT_TRUE(PutJobs(**store, 11, 1).ok());

    // A full disk reported by the append: nothing reached the log, and the
    // answer is at once RESOURCE_EXHAUSTED.
    fs->no_space = true;
    EXPECT_EQ(PutJobs(**store, 20, 1).code(),
              absl::StatusCode::kResourceExhausted);
    fs->no_space = false;
  }
  auto store = JobStore::Open({.dir = path});
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<std::uint64_t> ids;
  for (const StoredJob& j : AllJobs(**store)) ids.push_back(j.id());
  // What a restart finds is what the commit was told.
  if (accepted) {
    EXPECT_THAT(ids, ::testing::ElementsAre(1, 2, 3, 10, 11));
  } else {
    EXPECT_THAT(ids, ::testing::ElementsAre(1, 2, 3, 11));
  }
}

TEST(StoreTest, ASecondOpenOfTheSameDirectoryIsRefused) {
  TempDir dir;
  auto first = JobStore::Open({.dir = dir.Sub("store")});
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = JobStore::Open({.dir = dir.Sub("store")});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr("another awaitd"));
}

TEST(StoreTest, ADamagedStoreIsRefusedWithTheRepairPath) {
  TempDir dir;
  const std::string path = dir.Sub("store");
  {
    auto store = JobStore::Open({.dir = path});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE(PutJobs(**store, 1, 5).ok());
  }
  // CURRENT names the manifest; point it at one that does not parse.
  std::string manifest;
  for (const auto& e : std::filesystem::directory_iterator(path)) {
    if (e.path().filename().string().rfind("MANIFEST-", 0) == 0)
      manifest = e.path().filename().string();
  }
  ASSERT_FALSE(manifest.empty());
  {
    std::ofstream out(path + "/" + manifest, std::ios::trunc);
    out << "this is not a manifest";
  }
  auto store = JobStore::Open({.dir = path});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
      << store.status();
  const std::string message(store.status().message());
  EXPECT_THAT(message, HasSubstr(path));
  EXPECT_THAT(message, HasSubstr(manifest)) << "the damaged file is named";
  EXPECT_THAT(message, HasSubstr("--repair_store"));

  ASSERT_TRUE(JobStore::Repair(path).ok());
  auto repaired = JobStore::Open({.dir = path});
  ASSERT_TRUE(repaired.ok()) << repaired.status();
  EXPECT_EQ(AllJobs(**repaired).size(), 5u) << "the log still held them";
}

// A child process commits jobs one at a time and reports each acknowledged
// id through a pipe; it is killed with SIGKILL mid-stream, several times
// over the same store. Every acknowledged job must be there afterwards.
// (A process crash: the page cache survives it. What a sync adds, surviving
// a machine crash, is RocksDB's fsync, which the failing-sync test covers
// from the other side: no acknowledgement without a successful sync.)
TEST(StoreTest, AcknowledgedJobsSurviveSigkill) {
  TempDir dir;
  const std::string path = dir.Sub("store");
  std::set<std::uint64_t> acknowledged;
  std::uint64_t next_id = 1;
  for (int round = 0; round < 5; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const std::uint64_t first = next_id;
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      auto store = JobStore::Open({.dir = path});
      if (!store.ok()) _exit(3);
      // Four committers, so groups form as they would in the daemon.
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
          for (std::uint64_t id = first + t;; id += 4) {
            JobStore::Batch b;
            b.PutJob(MakeJob(id));
            if (!(*store)->CommitAndWait(std::move(b)).ok()) _exit(4);
            if (write(fds[1], &id, sizeof id) != sizeof id) _exit(5);
          }
        });
      }
      for (auto& t : threads) t.join();
      _exit(0);
    }
    close(fds[1]);
    std::uint64_t id;
    int read_ids = 0;
    const int kill_after = 50 + 37 * round;
    while (read_ids < kill_after && read(fds[0], &id, sizeof id) == sizeof id) {
      acknowledged.insert(id);
      ++read_ids;
    }
    kill(pid, SIGKILL);
    // Ids written to the pipe before the kill were acknowledged too.
    while (read(fds[0], &id, sizeof id) == sizeof id) acknowledged.insert(id);
    close(fds[0]);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child exited " << status;
    ASSERT_EQ(read_ids, kill_after);

    auto store = JobStore::Open({.dir = path});
    ASSERT_TRUE(store.ok()) << "round " << round << ": " << store.status();
    std::set<std::uint64_t> stored;
    for (const StoredJob& j : AllJobs(**store)) stored.insert(j.id());
    for (std::uint64_t a : acknowledged)
      ASSERT_TRUE(stored.count(a)) << "round " << round << ": job " << a
                                   << " was acknowledged and is lost";
    next_id = *stored.rbegin() + 1;
  }
  EXPECT_GE(acknowledged.size(), 5u * 50u);
}

}  // namespace
}  // namespace awaitd::server
