// Durability (--durability, server/store/store.h) at the level of the daemon:
//   - RecoveryTest: the recovery rules, from records written straight into a
//     store (a running job that is retry-safe runs again, up to
//     JobManager::kMaxAttempts runs; one that is not ends FAILED with an
//     InterruptedError; pending jobs keep their start time; finished ones
//     their outcome; ids continue after the largest).
//   - DurableDaemonTest: a daemon restarted on the same --data_dir.
//   - CrashLoopTest: the awaitd binary killed with SIGKILL at random moments
//     while clients submit, wait and cancel, and restarted, many times; then
//     every acknowledged job exists, every reported outcome is unchanged and
//     no job is in an impossible state.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "runtime/runtime.h"
#include "server/jobs/job_manager.h"
#include "server/store/store.h"
#include "tests/server/daemon_fixture.h"
#include "tests/server/faulty_file_system.h"
#include "tests/server/http_get.h"
#include "tests/support/process.h"

namespace awaitd::server {
namespace {

using testing::DaemonTest;
using ::testing::HasSubstr;
using testing::Input;
using testing::Spec;

std::string FreshDir(const std::string& name) {
  return testing::FreshDir("awaitd_durability", name);
}

google::protobuf::Timestamp Ts(absl::Time t) {
  google::protobuf::Timestamp ts;
  ToProto(t, &ts);
  return ts;
}

// --- Recovery rules
// ------------------------------------------------------------------

// Runs of the "effect" kind (not retry-safe), across the tests.
std::atomic<int> g_effects{0};

runtime::Task<google::protobuf::Value> Effect() {
  g_effects.fetch_add(1);
  google::protobuf::Value v;
  v.set_string_value("charged");
  co_return v;
}

class RecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir(
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    RegisterBuiltinKinds(kinds_);
    // A kind that must not run twice (it has effects outside).
    ASSERT_TRUE(kinds_
                    .Register({.name = "charge",
                               .description = "not retry-safe",
                               .retry_safe = false,
                               .bind = kinds_.Find("echo")->bind})
                    .ok());
    // One whose runs are counted (g_effects).
    ASSERT_TRUE(
        kinds_
            .Register({.name = "effect",
                       .description = "not retry-safe, counted",
                       .retry_safe = false,
                       .bind = [](const google::protobuf::Struct&)
                           -> absl::StatusOr<JobBody> { return Effect(); }})
            .ok());
    g_effects = 0;
  }
  void TearDown() override {
    if (fs_ != nullptr) {
      fs_->no_space = false;
      fs_->ReleaseSyncs();
    }
    if (jobs_ != nullptr) {
      jobs_->StopAccepting();
      jobs_->CancelAll("test over", absl::Now() + absl::Seconds(5));
      jobs_->Stop();
    }
    // As the daemon does: the store's last callbacks publish into jobs_.
    runtime_.reset();
    store_.reset();
    jobs_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Writes `records` (job + state) into a fresh store.
  void Write(const std::vector<std::pair<StoredJob, StoredState>>& records) {
    auto store = JobStore::Open({.dir = dir_});
    ASSERT_TRUE(store.ok()) << store.status();
    JobStore::Batch batch;
    for (const auto& [job, state] : records) {
      batch.PutJob(job);
      if (state.state() != v1::JOB_STATE_UNSPECIFIED)
        batch.PutState(job.id(), state);
      if (!job.spec().idempotency_key().empty())
        batch.PutIdempotencyKey(job.spec().idempotency_key(), job.id());
    }
    ASSERT_TRUE((*store)->CommitAndWait(std::move(batch)).ok());
  }

  // Opens the store and recovers into a new JobManager.
  JobManager::RecoveryStats Recover() {
    auto store = JobStore::Open(
        {.dir = dir_, .full_retry_interval = kRetry, .file_system = fs_});
    EXPECT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    runtime_ = std::make_unique<runtime::Runtime>(
        runtime::RuntimeOptions{.workers = 2});
    jobs_ = std::make_unique<JobManager>(*runtime_, kinds_, limits_,
                                         jobs_options_, logger_);
    jobs_->AttachStore(store_.get());
    auto stats = jobs_->Recover();
    EXPECT_TRUE(stats.ok()) << stats.status();
    jobs_->Start();
    return stats.ok() ? *stats : JobManager::RecoveryStats{};
  }

  v1::Job Snap(std::uint64_t id) {
    auto job = jobs_->Find(id, "id");
    EXPECT_TRUE(job.ok()) << job.status();
    v1::Job out;
    if (job.ok()) (*job)->Snapshot(&out);
    return out;
  }

  // The job's record in the store once its stored state is `state` (state
  // changes are stored asynchronously), or as it is after 10 s.
  StoredJob AwaitStored(std::uint64_t id, v1::JobState state) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    StoredJob r = **store_->GetJob(id);
    while (r.state() != state && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
      r = **store_->GetJob(id);
    }
    return r;
  }

  v1::Job AwaitFinal(std::uint64_t id) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    v1::Job j = Snap(id);
    while (j.state() < v1::JOB_STATE_SUCCEEDED && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
      j = Snap(id);
    }
    return j;
  }

  static StoredJob Record(std::uint64_t id, const std::string& kind,
                          const std::string& args_json = "{}") {
    StoredJob r;
    r.set_id(id);
    r.set_name("Job-" + std::to_string(id));
    *r.mutable_spec() = Spec(kind, args_json);
    *r.mutable_created_at() = Ts(absl::Now() - absl::Minutes(1));
    *r.mutable_scheduled_at() = r.created_at();
    return r;
  }
  static StoredState State(v1::JobState s, std::uint32_t attempt) {
    StoredState st;
    st.set_state(s);
    st.set_attempt(attempt);
    if (attempt > 0) *st.mutable_started_at() = Ts(absl::Now());
    return st;
  }

  static constexpr std::chrono::milliseconds kRetry{10};
  std::string dir_;
  std::shared_ptr<testing::FaultyFileSystem> fs_;  // optional
  JobManagerOptions jobs_options_;                 // for Recover()
  JobKindRegistry kinds_;
  LimitRegistry limits_;
  Logger logger_{LogLevel::kError};
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<runtime::Runtime> runtime_;
  std::unique_ptr<JobManager> jobs_;
};

TEST_F(RecoveryTest, FinishedJobsKeepTheirOutcome) {
  StoredState done = State(v1::JOB_STATE_SUCCEEDED, 1);
  done.mutable_result()->set_string_value("the answer");
  *done.mutable_finished_at() = Ts(absl::FromUnixSeconds(1'765'000'000));
  StoredState failed = State(v1::JOB_STATE_FAILED, 1);
  failed.mutable_error()->set_type("ValueError");
  failed.mutable_error()->set_message("boom");
  ASSERT_NO_FATAL_FAILURE(
      Write({{Record(3, "echo"), done}, {Record(4, "fail"), failed}}));
  JobManager::RecoveryStats stats = Recover();
  EXPECT_EQ(stats.jobs, 2u);
  EXPECT_EQ(stats.finished, 2u);
  v1::Job a = Snap(3);
  EXPECT_EQ(a.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(a.result().string_value(), "the answer");
  EXPECT_EQ(a.finished_at().seconds(), 1'765'000'000);
  v1::Job b = Snap(4);
  EXPECT_EQ(b.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(b.error().type(), "ValueError");
  EXPECT_EQ(b.error().message(), "boom");
  EXPECT_EQ(jobs_->jobs_not_done(), 0u);
}

TEST_F(RecoveryTest, PendingJobsKeepTheirStartTime) {
  StoredJob later = Record(7, "echo", R"({"value": 1})");
  const absl::Time at = absl::Now() + absl::Hours(2);
  *later.mutable_scheduled_at() = Ts(at);
  StoredJob now = Record(8, "echo", R"({"value": 2})");
  ASSERT_NO_FATAL_FAILURE(
      Write({{later, StoredState()}, {now, StoredState()}}));
  JobManager::RecoveryStats stats = Recover();
  EXPECT_EQ(stats.pending, 2u);
  v1::Job j = Snap(7);
  EXPECT_EQ(j.state(), v1::JOB_STATE_PENDING);
  EXPECT_EQ(j.scheduled_at().seconds(), absl::ToUnixSeconds(at));
  v1::Job k = AwaitFinal(8);  // due already: it runs
  EXPECT_EQ(k.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(k.result().number_value(), 2);
  EXPECT_EQ(Snap(7).state(), v1::JOB_STATE_PENDING);
}

TEST_F(RecoveryTest, ARunningRetrySafeJobRunsAgainAsItsNextAttempt) {
  ASSERT_NO_FATAL_FAILURE(Write({{Record(5, "echo", R"({"value": 5})"),
                                  State(v1::JOB_STATE_RUNNING, 1)}}));
  JobManager::RecoveryStats stats = Recover();
  EXPECT_EQ(stats.rerun, 1u);
  v1::Job j = AwaitFinal(5);
  EXPECT_EQ(j.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(j.attempt(), 2u);
  // The new outcome is stored.
  EXPECT_EQ(AwaitStored(5, v1::JOB_STATE_SUCCEEDED).attempt(), 2u);
}

TEST_F(RecoveryTest, ARunningJobOutOfAttemptsIsInterrupted) {
  ASSERT_NO_FATAL_FAILURE(
      Write({{Record(5, "echo", R"({"value": 5})"),
              State(v1::JOB_STATE_RUNNING, JobManager::kMaxAttempts)}}));
  JobManager::RecoveryStats stats = Recover();
  EXPECT_EQ(stats.interrupted, 1u);
  v1::Job j = Snap(5);
  EXPECT_EQ(j.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(j.error().type(), "InterruptedError");
  EXPECT_THAT(j.error().message(), HasSubstr("3 times"));
}

TEST_F(RecoveryTest, ARunningJobThatIsNotRetrySafeIsInterrupted) {
  ASSERT_NO_FATAL_FAILURE(Write({{Record(9, "charge", R"({"value": 1})"),
                                  State(v1::JOB_STATE_RUNNING, 1)}}));
  JobManager::RecoveryStats stats = Recover();
  EXPECT_EQ(stats.interrupted, 1u);
  v1::Job j = Snap(9);
  EXPECT_EQ(j.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(j.error().type(), "InterruptedError");
  EXPECT_THAT(j.error().message(), HasSubstr("not safe to run again"));
  // Stored, so a second restart says the same.
  EXPECT_EQ(AwaitStored(9, v1::JOB_STATE_FAILED).error().type(),
            "InterruptedError");
}

TEST_F(RecoveryTest, APendingJobWhoseKindIsGoneFails) {
  ASSERT_NO_FATAL_FAILURE(Write({{Record(2, "retired_kind"), StoredState()}}));
  JobManager::RecoveryStats stats = Recover();
  EXPECT_EQ(stats.unrunnable, 1u);
  v1::Job j = Snap(2);
  EXPECT_EQ(j.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(j.error().type(), "RecoveryError");
  EXPECT_THAT(j.error().message(), HasSubstr("retired_kind"));
}

TEST_F(RecoveryTest, StoredLimitsAreDeclaredBeforeTheirPendingJobsAreQueued) {
  {
    auto store = JobStore::Open({.dir = dir_});
    ASSERT_TRUE(store.ok()) << store.status();
    JobStore::Batch batch;
    batch.PutLimit("nightly", 2);
    batch.PutLimit("db", 7);  // a --limit flag says 3: the flag wins
    ASSERT_TRUE((*store)->CommitAndWait(std::move(batch)).ok());
  }
  ASSERT_TRUE(limits_.DeclareFromFlag("db:3").ok());
  StoredJob job = Record(4, "echo", R"({"value": 4})");
  job.mutable_spec()->add_limits("nightly");
  job.mutable_spec()->add_limits("db");
  ASSERT_NO_FATAL_FAILURE(Write({{job, StoredState()}}));
  JobManager::RecoveryStats stats = Recover();
  EXPECT_EQ(stats.limits, 1u) << "the conflicting one is not counted";
  EXPECT_EQ(stats.pending, 1u);
  EXPECT_EQ(stats.unrunnable, 0u);
  v1::Job j = AwaitFinal(4);
  EXPECT_EQ(j.state(), v1::JOB_STATE_SUCCEEDED) << j.ShortDebugString();
  EXPECT_THAT(j.limits(), ::testing::ElementsAre("db", "nightly"));
  ASSERT_NE(limits_.Find("nightly"), nullptr);
  EXPECT_EQ(limits_.Find("nightly")->permits(), 2u);
  EXPECT_EQ(limits_.Find("nightly")->origin(), LimitOrigin::kRpc);
  EXPECT_EQ(limits_.Find("db")->permits(), 3u);
  EXPECT_EQ(limits_.Find("db")->origin(), LimitOrigin::kFlag);
}

TEST_F(RecoveryTest, IdsAndIdempotencyKeysCarryOn) {
  StoredJob keyed = Record(40, "sleep", R"({"seconds": 3600})");
  keyed.mutable_spec()->set_idempotency_key("order-17");
  ASSERT_NO_FATAL_FAILURE(
      Write({{Record(12, "echo"), StoredState()}, {keyed, StoredState()}}));
  Recover();
  v1::JobSpec again = Spec("sleep", R"({"seconds": 3600})");
  again.set_idempotency_key("order-17");
  v1::JobSpec fresh = Spec("echo", R"({"value": 1})");
  const v1::JobSpec* specs[] = {&again, &fresh};
  std::vector<bool> existing;
  auto created = jobs_->Submit(specs, "jobs", 0, &existing);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ((*created)[0]->id(), 40u);
  EXPECT_TRUE(existing[0]);
  EXPECT_EQ((*created)[1]->id(), 41u) << "ids continue after the largest";
}

StoredJob GroupRecord(std::uint64_t id, StoredJob::Type type,
                      std::vector<std::uint64_t> children) {
  StoredJob r;
  r.set_id(id);
  r.set_type(type);
  r.set_name("Group-" + std::to_string(id));
  for (std::uint64_t c : children) r.add_children(c);
  *r.mutable_created_at() = Ts(absl::Now() - absl::Minutes(1));
  *r.mutable_scheduled_at() = r.created_at();
  return r;
}

TEST_F(RecoveryTest, ARunningGatherIsRebuiltWithItsChildren) {
  StoredState one = State(v1::JOB_STATE_SUCCEEDED, 1);
  one.mutable_result()->set_number_value(1);
  StoredJob child = Record(3, "echo", R"({"value": 2})");
  child.set_group_id(1);
  ASSERT_NO_FATAL_FAILURE(Write({{GroupRecord(1, StoredJob::GATHER, {2, 3}),
                                  State(v1::JOB_STATE_RUNNING, 1)},
                                 {Record(2, "echo", R"({"value": 1})"), one},
                                 {child, StoredState()}}));
  JobManager::RecoveryStats stats = Recover();
  EXPECT_EQ(stats.groups, 1u);
  EXPECT_EQ(stats.pending, 1u);
  const v1::Job g = AwaitFinal(1);
  EXPECT_EQ(g.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(g.kind(), "gather");
  EXPECT_THAT(g.children(), ::testing::ElementsAre(2, 3));
  ASSERT_EQ(g.result().list_value().values_size(), 2);
  EXPECT_EQ(g.result().list_value().values(0).number_value(), 1);
  EXPECT_EQ(g.result().list_value().values(1).number_value(), 2);
  EXPECT_EQ(Snap(3).group_id(), 1u);
  // Stored by reference: the record lists the children (whose records hold
  // their results), never a copy of their results, so a second restart
  // rebuilds the group's result from them.
  const StoredJob stored = AwaitStored(1, v1::JOB_STATE_SUCCEEDED);
  EXPECT_FALSE(stored.has_result());
  EXPECT_THAT(stored.children(), ::testing::ElementsAre(2, 3));
}

TEST_F(RecoveryTest, ARebuiltTaskGroupSeesAFailureFromBeforeTheCrash) {
  StoredState failed = State(v1::JOB_STATE_FAILED, 1);
  failed.mutable_error()->set_type("ValueError");
  failed.mutable_error()->set_message("bad input");
  StoredJob later = Record(3, "echo", R"({"value": 2})");
  *later.mutable_scheduled_at() = Ts(absl::Now() + absl::Hours(1));
  ASSERT_NO_FATAL_FAILURE(Write({{GroupRecord(1, StoredJob::TASK_GROUP, {2, 3}),
                                  State(v1::JOB_STATE_RUNNING, 1)},
                                 {Record(2, "fail"), failed},
                                 {later, StoredState()}}));
  Recover();
  const v1::Job g = AwaitFinal(1);
  EXPECT_EQ(g.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(g.error().type(), "ExceptionGroup");
  // The sibling still pending is cancelled, as the TaskGroup rules say.
  EXPECT_EQ(AwaitFinal(3).state(), v1::JOB_STATE_CANCELLED);
}

TEST_F(RecoveryTest, ARunningJobWhoseCancelTookEffectEndsCancelled) {
  ASSERT_NO_FATAL_FAILURE(
      Write({{Record(4, "effect"), State(v1::JOB_STATE_RUNNING, 1)}}));
  {
    // Written the way JobManager::Cancel writes it.
    auto store = JobStore::Open({.dir = dir_});
    ASSERT_TRUE(store.ok()) << store.status();
    JobStore::Batch b;
    b.PutCancelRequest(4, "not needed any more");
    ASSERT_TRUE((*store)->CommitAndWait(std::move(b)).ok());
  }
  JobManager::RecoveryStats stats = Recover();
  EXPECT_EQ(stats.cancelled, 1u);
  const v1::Job j = Snap(4);
  EXPECT_EQ(j.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(j.error().type(), "CancelledError");
  EXPECT_EQ(j.error().message(), "not needed any more");
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(g_effects.load(), 0) << "a cancelled job ran again";
  EXPECT_EQ(AwaitStored(4, v1::JOB_STATE_CANCELLED).error().message(),
            "not needed any more");
}

TEST_F(RecoveryTest, ARebuiltGroupKeepsTheCancelThatTookEffect) {
  StoredState cancelled = State(v1::JOB_STATE_CANCELLED, 1);
  cancelled.mutable_error()->set_type("CancelledError");
  cancelled.mutable_error()->set_message("stop");
  StoredState done = State(v1::JOB_STATE_SUCCEEDED, 1);
  done.mutable_result()->set_number_value(3);
  ASSERT_NO_FATAL_FAILURE(
      Write({{GroupRecord(1, StoredJob::TASK_GROUP, {2, 3}),
              State(v1::JOB_STATE_RUNNING, 1)},
             {Record(2, "sleep", R"({"seconds": 60})"), cancelled},
             {Record(3, "echo", R"({"value": 3})"), done}}));
  {
    auto store = JobStore::Open({.dir = dir_});
    ASSERT_TRUE(store.ok()) << store.status();
    JobStore::Batch b;
    b.PutCancelRequest(1, "stop");
    ASSERT_TRUE((*store)->CommitAndWait(std::move(b)).ok());
  }
  Recover();
  // Without the request the TaskGroup would succeed (a cancelled child is
  // not a failure); cancelled, it ends CANCELLED with the cancel's message.
  const v1::Job g = AwaitFinal(1);
  EXPECT_EQ(g.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(g.error().message(), "stop");
  EXPECT_TRUE(g.cancel_requested());
}

TEST_F(RecoveryTest, AFinishedGroupKeepsItsOutcome) {
  StoredState done = State(v1::JOB_STATE_SUCCEEDED, 1);
  done.mutable_result()->mutable_list_value()->add_values()->set_number_value(
      4);
  *done.mutable_finished_at() = Ts(absl::FromUnixSeconds(1'765'000'000));
  StoredState four = State(v1::JOB_STATE_SUCCEEDED, 1);
  four.mutable_result()->set_number_value(4);
  ASSERT_NO_FATAL_FAILURE(
      Write({{GroupRecord(1, StoredJob::GATHER, {2}), done},
             {Record(2, "echo", R"({"value": 4})"), four}}));
  JobManager::RecoveryStats stats = Recover();
  EXPECT_EQ(stats.finished, 2u);
  const v1::Job g = Snap(1);
  EXPECT_EQ(g.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(g.result().list_value().values(0).number_value(), 4);
  EXPECT_EQ(g.finished_at().seconds(), 1'765'000'000);
  EXPECT_EQ(jobs_->jobs_not_done(), 0u);
}

TEST_F(RecoveryTest, AGroupWhoseChildWasForgottenFails) {
  ASSERT_NO_FATAL_FAILURE(
      Write({{GroupRecord(1, StoredJob::GATHER, {2, 3}),
              State(v1::JOB_STATE_RUNNING, 1)},
             {Record(3, "echo", R"({"value": 3})"), StoredState()}}));
  JobManager::RecoveryStats stats = Recover();
  EXPECT_EQ(stats.unrunnable, 1u);
  const v1::Job g = Snap(1);
  EXPECT_EQ(g.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(g.error().type(), "RecoveryError");
  EXPECT_THAT(g.error().message(), HasSubstr("child job 2 was forgotten"));
  EXPECT_EQ(AwaitStored(1, v1::JOB_STATE_FAILED).error().type(),
            "RecoveryError");
}

// --- Stored before reported
// ------------------------------------------------------------------

// A durable job's transitions are stored before anyone hears of them. The
// store is kept from writing (a full disk: state changes wait for space)
// while jobs move on, and what is published is compared with what was
// decided.
class StoreBeforeReportTest : public RecoveryTest {
 protected:
  void SetUp() override {
    RecoveryTest::SetUp();
    fs_ = std::make_shared<testing::FaultyFileSystem>();
    // A Submit waits for a hung disk as long as the test keeps it hung (by
    // default it would answer UNAVAILABLE after 10 s).
    jobs_options_.store_timeout = absl::Hours(1);
    Recover();  // an empty store
  }
  JobPtr SubmitOne(const v1::JobSpec& spec) {
    const v1::JobSpec* specs[] = {&spec};
    auto created = jobs_->Submit(specs, "jobs", 0, nullptr);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? created->front() : nullptr;
  }
  static v1::JobSpec Delayed(const std::string& kind, const std::string& args,
                             int ms) {
    v1::JobSpec spec = Spec(kind, args);
    spec.mutable_delay()->set_seconds(ms / 1000);
    spec.mutable_delay()->set_nanos((ms % 1000) * 1'000'000);
    return spec;
  }
  // The disk is made full within the job's delay of the Submit: kDelayMs,
  // doubled on each of up to kAttempts tries (300 ms ... 4.8 s).
  static constexpr int kDelayMs = 300;
  static constexpr int kAttempts = 5;
  // Submits a job of `kind` with `args`, delayed, and makes the disk full:
  // the job, not yet started (decided PENDING) once the disk is full, so
  // its start and all after it are decided on a full disk. A try that
  // missed that (descheduled past the delay: its job may have started, and
  // that was stored) lets its job finish on a working disk, resets
  // g_effects, and tries again with twice the delay; nullptr, with a
  // failure, if no try was in time.
  JobPtr SubmitAndFillTheDisk(const std::string& kind,
                              const std::string& args) {
    int ms = kDelayMs;
    for (int attempt = 1; attempt <= kAttempts; ++attempt, ms *= 2) {
      JobPtr job = SubmitOne(Delayed(kind, args, ms));
      if (job == nullptr) return nullptr;
      fs_->no_space = true;
      if (job->decided_state() == JobState::kPending) return job;
      fs_->no_space = false;
      const v1::Job done = AwaitFinal(job->id());
      EXPECT_GE(done.state(), v1::JOB_STATE_SUCCEEDED)
          << done.ShortDebugString();
      g_effects = 0;
    }
    ADD_FAILURE() << "the disk was full only after the job's delay in all "
                  << kAttempts << " tries (" << kDelayMs << " ms to " << ms / 2
                  << " ms)";
    return nullptr;
  }
  static bool AwaitDecided(const JobPtr& job, JobState state) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (job->decided_state() != state) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(2));
    }
    return true;
  }
};

TEST_F(StoreBeforeReportTest, AJobIsInvisibleUntilStored) {
  fs_->HangSyncs();  // a hung disk: the Submit waits for its sync until...
  JobPtr job;
  std::atomic<bool> returned{false};
  std::thread submitter([&] {
    job = SubmitOne(Spec("echo", R"({"value": 1})"));
    returned = true;
  });
  // ...the test has looked (released and joined on every way out).
  struct Release {
    testing::FaultyFileSystem& fs;
    std::thread& submitter;
    ~Release() {
      fs.ReleaseSyncs();
      if (submitter.joinable()) submitter.join();
    }
  } release{*fs_, submitter};
  // Admitted (counted, in the table) and waiting for its sync.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (jobs_->jobs_not_done() == 0 && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(1));
  ASSERT_EQ(jobs_->jobs_not_done(), 1u);
  ASSERT_FALSE(returned.load()) << "the Submit returned before its sync";
  // Job 1 is in the table, not yet stored: nobody may see it.
  auto found = jobs_->Find(1, "id");
  EXPECT_EQ(found.status().code(), absl::StatusCode::kNotFound)
      << "an unstored job was visible";
  v1::ListResponse listed;
  ASSERT_TRUE(jobs_->List(v1::ListRequest(), &listed).ok());
  EXPECT_EQ(listed.jobs_size(), 0);
  fs_->ReleaseSyncs();
  submitter.join();
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->id(), 1u);
  EXPECT_TRUE(jobs_->Find(1, "id").ok());
  EXPECT_EQ(AwaitFinal(1).result().number_value(), 1);
}

TEST_F(StoreBeforeReportTest, ACancelThatTakesEffectIsStored) {
  JobPtr job = SubmitOne(Spec("sleep", R"({"seconds": 60})"));
  ASSERT_NE(job, nullptr);
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (job->state() != JobState::kRunning && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(2));
  ASSERT_EQ(job->state(), JobState::kRunning);
  ASSERT_TRUE(jobs_->Cancel(job, "enough"));
  // Recovery needs it should the daemon die before the job ends; the
  // Cancel RPC answers after AwaitStored, so it is there by then.
  ASSERT_TRUE(jobs_->AwaitStored().ok());
  const StoredJob stored = **store_->GetJob(job->id());
  EXPECT_TRUE(stored.cancel_requested());
  EXPECT_EQ(stored.cancel_message(), "enough");
  EXPECT_EQ(AwaitFinal(job->id()).state(), v1::JOB_STATE_CANCELLED);
}

TEST_F(StoreBeforeReportTest, AnOutcomeIsPublishedOnlyOnceStored) {
  JobPtr job = SubmitAndFillTheDisk("echo", R"({"value": 5})");
  ASSERT_NE(job, nullptr);
  ASSERT_TRUE(AwaitDecided(job, JobState::kSucceeded));
  absl::SleepFor(absl::Milliseconds(100));  // about 10 write attempts
  // Neither RUNNING nor the outcome could be stored: nothing was published.
  EXPECT_EQ(job->state(), JobState::kPending);
  EXPECT_FALSE(job->done());
  v1::Job seen = Snap(job->id());
  EXPECT_EQ(seen.state(), v1::JOB_STATE_PENDING);
  EXPECT_FALSE(seen.has_result());
  EXPECT_FALSE(seen.has_started_at());
  EXPECT_FALSE(seen.has_finished_at());
  EXPECT_EQ(seen.attempt(), 0u);
  // Settled all the same: a cancel is too late, as for a done task.
  EXPECT_FALSE(jobs_->Cancel(job, "too late"));
  EXPECT_EQ((**store_->GetJob(job->id())).state(), v1::JOB_STATE_PENDING);

  fs_->no_space = false;
  const v1::Job done = AwaitFinal(job->id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(done.result().number_value(), 5);
  EXPECT_EQ(done.attempt(), 1u);
  // What was reported is what is stored, to the nanosecond.
  const StoredJob stored = **store_->GetJob(job->id());
  EXPECT_EQ(stored.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(stored.result().number_value(), 5);
  EXPECT_EQ(stored.finished_at().seconds(), done.finished_at().seconds());
  EXPECT_EQ(stored.finished_at().nanos(), done.finished_at().nanos());
  EXPECT_EQ(jobs_->jobs_not_done(), 0u);
}

TEST_F(StoreBeforeReportTest, AJobNotRetrySafeRunsOnlyOnceItsRunIsStored) {
  JobPtr job = SubmitAndFillTheDisk("effect", "{}");
  ASSERT_NE(job, nullptr);
  ASSERT_TRUE(AwaitDecided(job, JobState::kRunning));
  absl::SleepFor(absl::Milliseconds(200));
  // A crash now finds it PENDING in the store and runs it: so it must not
  // have run yet.
  EXPECT_EQ(g_effects.load(), 0);
  EXPECT_EQ(job->state(), JobState::kPending);
  EXPECT_EQ(job->decided_state(), JobState::kRunning);

  fs_->no_space = false;
  const v1::Job done = AwaitFinal(job->id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(done.result().string_value(), "charged");
  EXPECT_EQ(g_effects.load(), 1);
  EXPECT_EQ((**store_->GetJob(job->id())).attempt(), 1u);
}

TEST_F(StoreBeforeReportTest, ACancelWhileItsRunIsStoredEndsItUnrun) {
  JobPtr job = SubmitAndFillTheDisk("effect", "{}");
  ASSERT_NE(job, nullptr);
  ASSERT_TRUE(AwaitDecided(job, JobState::kRunning));
  EXPECT_TRUE(jobs_->Cancel(job, "changed my mind"));
  ASSERT_TRUE(AwaitDecided(job, JobState::kCancelled));
  EXPECT_FALSE(job->done());

  fs_->no_space = false;
  const v1::Job done = AwaitFinal(job->id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(done.error().message(), "changed my mind");
  EXPECT_EQ(g_effects.load(), 0) << "the body ran although cancelled";
  EXPECT_EQ((**store_->GetJob(job->id())).state(), v1::JOB_STATE_CANCELLED);
}

// --- A daemon restarted on its data directory
// ------------------------------------------------------------------

class DurableDaemonTest : public testing::DataDirDaemonTest {
 protected:
  DurableDaemonTest() : DataDirDaemonTest("awaitd_durability") {}
  grpc::Status DeclareLimit(const std::string& name, std::uint32_t permits) {
    v1::DeclareLimitRequest req;
    req.set_name(name);
    req.set_permits(permits);
    v1::DeclareLimitResponse resp;
    return stub_->DeclareLimit(Ctx().get(), req, &resp);
  }
};

TEST_F(DurableDaemonTest, ARestartKeepsResultsPendingJobsAndKeys) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable()));
  const std::uint64_t done = SubmitOk({Spec("echo", R"({"value": 7})")})[0];
  const v1::Job done_before = WaitForOk(done);
  v1::JobSpec delayed = Spec("echo", R"({"value": 8})");
  *delayed.mutable_delay() = testing::Seconds(3600);
  delayed.set_idempotency_key("nightly");
  const std::uint64_t later = SubmitOk({delayed})[0];
  const v1::Job later_before = GetOk(later);
  v1::JobSpec doomed = Spec("echo", R"({"value": 9})");
  *doomed.mutable_delay() = testing::Seconds(3600);
  const std::uint64_t cancelled = SubmitOk({doomed})[0];
  {
    v1::CancelRequest req;
    req.add_ids(cancelled);
    v1::CancelResponse resp;
    ASSERT_TRUE(stub_->Cancel(Ctx().get(), req, &resp).ok());
  }
  ASSERT_EQ(AwaitDone(cancelled).state(), v1::JOB_STATE_CANCELLED);
  // A graceful stop: the pending job is not cancelled in the store.
  daemon_->Shutdown();
  StopDaemon();

  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable()));
  const v1::Job done_after = GetOk(done);
  EXPECT_EQ(done_after.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(done_after.result().number_value(), 7);
  EXPECT_EQ(done_after.finished_at().seconds(),
            done_before.finished_at().seconds());
  EXPECT_EQ(done_after.finished_at().nanos(),
            done_before.finished_at().nanos());
  const v1::Job later_after = GetOk(later);
  EXPECT_EQ(later_after.state(), v1::JOB_STATE_PENDING);
  EXPECT_EQ(later_after.scheduled_at().seconds(),
            later_before.scheduled_at().seconds());
  EXPECT_EQ(GetOk(cancelled).state(), v1::JOB_STATE_CANCELLED);
  // The retried Submit returns the same job.
  v1::SubmitResponse resp;
  ASSERT_TRUE(Submit({delayed}, &resp).ok());
  EXPECT_EQ(resp.jobs(0).id(), later);
  EXPECT_TRUE(resp.jobs(0).existing());
  // New ids do not reuse old ones.
  EXPECT_GT(SubmitOk({Spec("echo", R"({"value": 1})")})[0], cancelled);
}

TEST_F(DurableDaemonTest, ALimitDeclaredByRpcSurvivesARestartWithItsJobs) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable()));
  ASSERT_TRUE(DeclareLimit("gate", 1).ok());
  // One job holds the only permit, one waits for it, one waits for its
  // start time: none of them may fail after the restart for want of the
  // limit.
  v1::JobSpec holder = Spec("sleep", R"({"seconds": 3600})");
  holder.add_limits("gate");
  v1::JobSpec waiter = Spec("echo", R"({"value": 2})");
  waiter.add_limits("gate");
  v1::JobSpec delayed = Spec("echo", R"({"value": 3})");
  delayed.add_limits("gate");
  *delayed.mutable_delay() = testing::Seconds(3600);
  const std::vector<std::uint64_t> ids = SubmitOk({holder, waiter, delayed});
  ASSERT_EQ(ids.size(), 3u);
  daemon_->Shutdown();  // SIGTERM's path: the jobs stay in the store
  StopDaemon();

  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable()));
  v1::ListLimitsResponse limits;
  ASSERT_TRUE(
      stub_->ListLimits(Ctx().get(), v1::ListLimitsRequest(), &limits).ok());
  ASSERT_EQ(limits.limits_size(), 1) << limits.ShortDebugString();
  EXPECT_EQ(limits.limits(0).name(), "gate");
  EXPECT_EQ(limits.limits(0).permits(), 1u);
  EXPECT_EQ(GetOk(ids[2]).state(), v1::JOB_STATE_PENDING);
  // The holder (retry-safe) runs again and holds the permit; once it is
  // cancelled the waiter gets it and runs.
  v1::CancelRequest cancel;
  cancel.add_ids(ids[0]);
  v1::CancelResponse cancelled;
  ASSERT_TRUE(stub_->Cancel(Ctx().get(), cancel, &cancelled).ok());
  EXPECT_EQ(AwaitDone(ids[0]).state(), v1::JOB_STATE_CANCELLED);
  const v1::Job ran = AwaitDone(ids[1]);
  EXPECT_EQ(ran.state(), v1::JOB_STATE_SUCCEEDED) << ran.ShortDebugString();
  EXPECT_EQ(ran.result().number_value(), 2);
  EXPECT_EQ(GetOk(ids[2]).state(), v1::JOB_STATE_PENDING);
}

TEST_F(DurableDaemonTest, ALimitDeletedByRpcStaysDeletedAfterARestart) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable()));
  ASSERT_TRUE(DeclareLimit("kept", 2).ok());
  ASSERT_TRUE(DeclareLimit("gone", 3).ok());
  {
    v1::DeleteLimitRequest req;
    req.set_name("gone");
    v1::DeleteLimitResponse resp;
    grpc::Status s = stub_->DeleteLimit(Ctx().get(), req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  daemon_->Shutdown();
  StopDaemon();

  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable()));
  v1::ListLimitsResponse limits;
  ASSERT_TRUE(
      stub_->ListLimits(Ctx().get(), v1::ListLimitsRequest(), &limits).ok());
  ASSERT_EQ(limits.limits_size(), 1) << limits.ShortDebugString();
  EXPECT_EQ(limits.limits(0).name(), "kept");
  v1::JobSpec spec = Spec("echo", R"({"value": 1})");
  spec.add_limits("gone");
  v1::SubmitResponse resp;
  grpc::Status s = Submit({spec}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("unknown limit \"gone\""));
  // Declared again, with another size: a new limit.
  EXPECT_TRUE(DeclareLimit("gone", 5).ok());
}

TEST_F(DurableDaemonTest, AGatherSurvivesARestartAndFinishesAfterIt) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable()));
  v1::GatherRequest req;
  *req.add_jobs()->mutable_spec() = Spec("echo", R"({"value": 1})");
  v1::JobSpec later = Spec("echo", R"({"value": 2})");
  *later.mutable_delay() = testing::Seconds(2.5);
  *req.add_jobs()->mutable_spec() = later;
  req.set_name("nightly");
  {
    // The call ends (its deadline) before the group does; the group, once
    // its id was sent, is acknowledged.
    auto ctx = Ctx(1.0);
    v1::GatherResponse resp;
    grpc::Status s = stub_->Gather(ctx.get(), req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
    auto id = ctx->GetServerInitialMetadata().find("awaitd-group-id");
    ASSERT_NE(id, ctx->GetServerInitialMetadata().end());
    ASSERT_EQ(std::string(id->second.data(), id->second.size()), "1");
  }
  daemon_->Shutdown();
  StopDaemon();

  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable()));
  const v1::Job group = AwaitDone(1);
  EXPECT_EQ(group.name(), "nightly");
  EXPECT_EQ(group.kind(), "gather");
  EXPECT_EQ(group.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_THAT(group.children(), ::testing::ElementsAre(2, 3));
  ASSERT_EQ(group.result().list_value().values_size(), 2);
  EXPECT_EQ(group.result().list_value().values(0).number_value(), 1);
  EXPECT_EQ(group.result().list_value().values(1).number_value(), 2);
  // And once more: the outcome itself was stored.
  daemon_->Shutdown();
  StopDaemon();
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable()));
  const v1::Job again = GetOk(1);
  EXPECT_EQ(again.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(again.finished_at().nanos(), group.finished_at().nanos());
}

TEST_F(DurableDaemonTest, AJobTheShutdownCancelsIsNeitherStoredNorTold) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable()));
  const std::uint64_t id =
      SubmitOk({Spec("sleep", R"({"seconds": 0.6, "result": "slept"})")})[0];
  v1::Job seen = GetOk(id);
  for (int i = 0; i < 2000 && seen.state() != v1::JOB_STATE_RUNNING; ++i) {
    absl::SleepFor(absl::Milliseconds(2));
    seen = GetOk(id);
  }
  ASSERT_EQ(seen.state(), v1::JOB_STATE_RUNNING);
  // A client waits for it while the daemon stops (grace 100 ms: the job is
  // cancelled). It must not hear CANCELLED: the store does not say so.
  v1::WaitForResponse resp;
  grpc::Status status;
  std::thread waiter([&] { status = WaitFor(Input(id), &resp); });
  absl::SleepFor(absl::Milliseconds(50));
  daemon_->Shutdown();
  waiter.join();
  EXPECT_FALSE(status.ok() && resp.job().state() == v1::JOB_STATE_CANCELLED);
  EXPECT_NE(status.error_code(), grpc::StatusCode::CANCELLED)
      << status.error_message();
  StopDaemon();

  // After the restart it was interrupted, and runs again (retry-safe).
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable()));
  const v1::Job after = AwaitDone(id);
  EXPECT_EQ(after.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(after.result().string_value(), "slept");
  EXPECT_EQ(after.attempt(), 2u);
}

TEST_F(DurableDaemonTest, AShutdownUnwindsInlineWaitsAndGroupsItDoesNotStore) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable()));
  // A WaitFor running its job inline, and a TaskGroup, both still running
  // when the grace ends: their cancellation is not stored, yet everything
  // waiting on them inside the daemon must unwind.
  grpc::Status inline_status, group_status;
  std::thread inline_caller([&] {
    v1::WaitForRequest req;
    *req.mutable_job()->mutable_spec() = Spec("sleep", R"({"seconds": 60})");
    v1::WaitForResponse resp;
    inline_status = stub_->WaitFor(Ctx().get(), req, &resp);
  });
  std::thread group_caller([&] {
    v1::RunGroupRequest req;
    *req.add_jobs() = Spec("sleep", R"({"seconds": 60})");
    *req.add_jobs() = Spec("echo", R"({"value": 1})");
    v1::RunGroupResponse resp;
    group_status = stub_->RunGroup(Ctx().get(), req, &resp);
  });
  // Running: the two sleeps (the echo ends at once); not done: the sleeps
  // and the group.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  auto ready = [&] {
    return daemon_->jobs().jobs_running() == 2 &&
           daemon_->jobs().jobs_not_done() == 3;
  };
  while (!ready() && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(2));
  EXPECT_TRUE(ready()) << "running " << daemon_->jobs().jobs_running()
                       << ", not done " << daemon_->jobs().jobs_not_done();
  // (Shut down whatever happened: the callers' threads end with it.)
  daemon_->Shutdown();
  inline_caller.join();
  group_caller.join();
  EXPECT_EQ(inline_status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << inline_status.error_message();
  EXPECT_EQ(group_status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << group_status.error_message();
  EXPECT_EQ(daemon_->jobs().jobs_not_done(), 0u) << "jobs not unwound";
  StopDaemon();

  // Nothing of it was stored as cancelled: the jobs run again, the group is
  // rebuilt and waits for its sleeping child.
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable()));
  v1::ListRequest list;
  v1::ListResponse listed;
  ASSERT_TRUE(stub_->List(Ctx().get(), list, &listed).ok());
  int not_done = 0;
  for (const v1::Job& j : listed.jobs()) {
    EXPECT_NE(j.state(), v1::JOB_STATE_CANCELLED) << j.ShortDebugString();
    if (j.state() < v1::JOB_STATE_SUCCEEDED) ++not_done;
  }
  EXPECT_EQ(not_done, 3) << "the two sleeps and the group";
}

TEST_F(DurableDaemonTest, AStoreInUseIsRefusedNamingTheDirectory) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable()));
  DaemonOptions second = Durable();
  auto d = Daemon::Start(second);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(d.status().message()),
              HasSubstr("--data_dir=" + data_dir_));
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("another awaitd"));
}

TEST_F(DurableDaemonTest, AFullDiskRefusesSubmitsAndKeepsServingReads) {
  auto fs = std::make_shared<testing::FaultyFileSystem>();
  DaemonOptions o = Durable();
  o.store_file_system = fs;
  std::atomic<int> failures{0};
  o.on_store_failure = [&](const absl::Status&) { ++failures; };
  ASSERT_NO_FATAL_FAILURE(StartDaemon(o));
  const std::uint64_t before = SubmitOk({Spec("echo", R"({"value": 1})")})[0];
  ASSERT_EQ(WaitForOk(before).state(), v1::JOB_STATE_SUCCEEDED);

  fs->no_space = true;
  v1::SubmitResponse resp;
  grpc::Status s =
      Submit({Spec("echo", R"({"value": 2})"), Spec("echo", R"({"value": 3})")},
             &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("jobs: not accepted"));
  EXPECT_THAT(s.error_message(), HasSubstr("disk is full"));
  // Nothing of the refused batch exists; what was accepted is still served.
  v1::ListRequest list;
  v1::ListResponse listed;
  ASSERT_TRUE(stub_->List(Ctx().get(), list, &listed).ok());
  EXPECT_EQ(listed.jobs_size(), 1);
  EXPECT_EQ(GetOk(before).result().number_value(), 1);
  EXPECT_EQ(failures.load(), 0) << "a full disk is not fatal";

  // Space comes back: submits are accepted again.
  fs->no_space = false;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  do {
    resp.Clear();
    s = Submit({Spec("echo", R"({"value": 4})")}, &resp);
    if (s.ok()) break;
    absl::SleepFor(absl::Milliseconds(50));
  } while (absl::Now() < deadline);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(WaitForOk(resp.jobs(0).id()).result().number_value(), 4);
}

TEST_F(DurableDaemonTest, WaitForOfAnInlineJobAnswersOnceItsOutcomeIsStored) {
  auto fs = std::make_shared<testing::FaultyFileSystem>();
  DaemonOptions o = Durable();
  o.store_file_system = fs;
  ASSERT_NO_FATAL_FAILURE(StartDaemon(o));
  // WaitFor of a spec without a timeout runs the job in the call's own task
  // (RunInline): the answer must still wait for the store.
  std::atomic<bool> answered{false};
  grpc::Status status;
  v1::WaitForResponse resp;
  std::thread caller;
  struct Join {  // on every way out: the call ends once the disk works
    testing::FaultyFileSystem& fs;
    std::thread& caller;
    ~Join() {
      fs.no_space = false;
      if (caller.joinable()) caller.join();
    }
  } join{*fs, caller};
  // The disk fills up while the job runs, within its run time of the test
  // seeing it RUNNING. A try that missed that (descheduled past the job's
  // end: its outcome may have been stored) lets the call end, and tries
  // again with a job that runs twice as long (1 s ... 8 s).
  std::uint64_t id = 0;
  JobPtr job;
  for (int seconds = 1; seconds <= 8; seconds *= 2) {
    v1::WaitForRequest req;
    *req.mutable_job()->mutable_spec() = Spec(
        "sleep", absl::StrCat(R"({"seconds": )", seconds, R"(, "result": 6})"));
    answered = false;
    caller = std::thread([&, req] {
      status = stub_->WaitFor(Ctx().get(), req, &resp);
      answered = true;
    });
    // Accepted and RUNNING (both stored); then the disk fills up.
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    bool running = false;
    while (!running && absl::Now() < deadline) {
      v1::ListRequest list;
      list.set_state(v1::JOB_STATE_RUNNING);
      v1::ListResponse listed;
      running = stub_->List(Ctx().get(), list, &listed).ok() &&
                listed.jobs_size() == 1;
      if (running) id = listed.jobs(0).id();
      if (!running) absl::SleepFor(absl::Milliseconds(2));
    }
    ASSERT_TRUE(running);
    fs->no_space = true;
    job = daemon_->jobs().Find(id, "id").value();
    if (job->decided_state() == JobState::kRunning) break;
    job = nullptr;
    fs->no_space = false;
    caller.join();
  }
  ASSERT_NE(job, nullptr) << "the disk was full only after the job's end in "
                             "all tries (jobs of 1 s to 8 s)";
  // The job ends on the full disk; then a wrong answer is given time.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (job->decided_state() == JobState::kRunning && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(2));
  ASSERT_EQ(job->decided_state(), JobState::kSucceeded);
  absl::SleepFor(absl::Milliseconds(400));  // it ended about 0.4 s ago
  EXPECT_FALSE(answered.load()) << "answered before the outcome was stored";
  EXPECT_EQ(GetOk(id).state(), v1::JOB_STATE_RUNNING);
  fs->no_space = false;
  caller.join();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(resp.job().state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(resp.job().result().number_value(), 6);
}

TEST_F(DurableDaemonTest, ACancelTooLateAnswersOnceTheOutcomeIsStored) {
  auto fs = std::make_shared<testing::FaultyFileSystem>();
  DaemonOptions o = Durable();
  o.store_file_system = fs;
  ASSERT_NO_FATAL_FAILURE(StartDaemon(o));
  // The disk is made full within the job's delay of the Submit. A try that
  // missed that (descheduled past the delay: the job may have run, and that
  // was stored) lets its job finish on a working disk, and tries again with
  // twice the delay (300 ms ... 4.8 s).
  std::uint64_t id = 0;
  JobPtr job;
  for (int ms = 300; ms <= 4800; ms *= 2) {
    v1::JobSpec spec = Spec("echo", R"({"value": 8})");
    spec.mutable_delay()->set_seconds(ms / 1000);
    spec.mutable_delay()->set_nanos((ms % 1000) * 1'000'000);
    id = SubmitOk({spec})[0];
    fs->no_space = true;
    job = daemon_->jobs().Find(id, "id").value();
    if (job->decided_state() == JobState::kPending) break;
    job = nullptr;
    fs->no_space = false;
    ASSERT_EQ(WaitForOk(id).state(), v1::JOB_STATE_SUCCEEDED);
  }
  ASSERT_NE(job, nullptr) << "the disk was full only after the job's delay "
                             "in all tries (300 ms to 4.8 s)";
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (job->decided_state() != JobState::kSucceeded &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  ASSERT_EQ(job->decided_state(), JobState::kSucceeded);
  // Too late to cancel, but nobody was told it is done: Task.cancel()
  // answers false only for a done task, so the answer waits for the store.
  std::atomic<bool> answered{false};
  v1::CancelResponse resp;
  grpc::Status status;
  std::thread canceller([&] {
    v1::CancelRequest req;
    req.add_ids(id);
    status = stub_->Cancel(Ctx().get(), req, &resp);
    answered = true;
  });
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_FALSE(answered.load()) << "answered for a job not known to be done";
  fs->no_space = false;
  canceller.join();
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(resp.results_size(), 1);
  EXPECT_FALSE(resp.results(0).cancelled());
  EXPECT_EQ(resp.results(0).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(GetOk(id).result().number_value(), 8);
}

TEST_F(DurableDaemonTest, AFailingSyncStopsAcknowledging) {
  auto fs = std::make_shared<testing::FaultyFileSystem>();
  DaemonOptions o = Durable();
  o.store_file_system = fs;
  std::atomic<int> failures{0};
  o.on_store_failure = [&](const absl::Status&) { ++failures; };
  ASSERT_NO_FATAL_FAILURE(StartDaemon(o));
  const std::uint64_t before = SubmitOk({Spec("echo", R"({"value": 1})")})[0];
  ASSERT_EQ(WaitForOk(before).state(), v1::JOB_STATE_SUCCEEDED);
  // Job 2 too is stored and reported (published once stored) before the
  // syncs fail: nothing is in flight.
  ASSERT_EQ(WaitForOk(SubmitOk({Spec("echo", R"({"value": 0})")})[0]).state(),
            v1::JOB_STATE_SUCCEEDED);

  fs->fail_sync = true;
  v1::SubmitResponse resp;
  grpc::Status s = Submit({Spec("echo", R"({"value": 2})")}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("must restart"));
  EXPECT_EQ(failures.load(), 1);
  // Never an acknowledgement after a failed sync, even once syncs work.
  fs->fail_sync = false;
  s = Submit({Spec("echo", R"({"value": 3})")}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_EQ(GetOk(before).result().number_value(), 1);
  daemon_->Shutdown();
  StopDaemon();

  // A restart recovers everything acknowledged. The batch whose sync
  // failed may be there too (its write may have reached the disk; the client
  // was told UNAVAILABLE and retries with its idempotency key); nothing
  // after the failure was written at all.
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable()));
  EXPECT_EQ(GetOk(before).result().number_value(), 1);
  v1::ListRequest list;
  v1::ListResponse listed;
  ASSERT_TRUE(stub_->List(Ctx().get(), list, &listed).ok());
  std::vector<std::uint64_t> ids;
  for (const v1::Job& j : listed.jobs()) ids.push_back(j.id());
  EXPECT_THAT(ids, ::testing::AnyOf(::testing::ElementsAre(1, 2),
                                    ::testing::ElementsAre(1, 2, 3)));
}

// --- A hung disk, and a full disk reported by the sync
// ------------------------------------------------------------------

class DiskFaultTest : public DurableDaemonTest {
 protected:
  DaemonOptions Faulty() {
    DaemonOptions o = Durable();
    o.store_file_system = fs_;
    o.jobs.store_timeout = absl::Milliseconds(300);
    o.metrics_listen = "127.0.0.1:0";
    return o;
  }
  void TearDown() override {
    fs_->ReleaseSyncs();  // a daemon closes its store only once it answers
    DurableDaemonTest::TearDown();
  }
  // Submits `spec` until the answer is not "being accepted" (a timed-out
  // batch still on its way to the disk).
  grpc::Status SubmitSettled(const v1::JobSpec& spec,
                             v1::SubmitResponse* resp) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    grpc::Status s;
    do {
      resp->Clear();
      s = Submit({spec}, resp);
      if (s.error_code() != grpc::StatusCode::UNAVAILABLE) break;
      absl::SleepFor(absl::Milliseconds(20));
    } while (absl::Now() < deadline);
    return s;
  }
  std::vector<std::uint64_t> ListedIds() {
    v1::ListRequest list;
    v1::ListResponse listed;
    EXPECT_TRUE(stub_->List(Ctx().get(), list, &listed).ok());
    std::vector<std::uint64_t> ids;
    for (const v1::Job& j : listed.jobs()) ids.push_back(j.id());
    return ids;
  }
  std::shared_ptr<testing::FaultyFileSystem> fs_ =
      std::make_shared<testing::FaultyFileSystem>();
};

TEST_F(DiskFaultTest, AHungDiskFailsSubmitAndCancelInTimeWhileReadsAnswer) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Faulty()));
  v1::JobSpec later = Spec("echo", R"({"value": 1})");
  *later.mutable_delay() = testing::Seconds(3600);
  const std::uint64_t id = SubmitOk({later})[0];

  fs_->HangSyncs();
  v1::SubmitResponse resp;
  grpc::Status s = Submit({Spec("echo", R"({"value": 2})")}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("jobs: not confirmed"));
  EXPECT_THAT(s.error_message(), HasSubstr("--store_timeout=300ms"));
  EXPECT_THAT(s.error_message(), HasSubstr("same idempotency key"));
  fs_->AwaitHungSyncs(1);

  // What lives in memory keeps answering: Get, List, health, metrics.
  EXPECT_EQ(GetOk(id).state(), v1::JOB_STATE_PENDING);
  EXPECT_THAT(ListedIds(), ::testing::ElementsAre(id));
  {
    auto health = grpc::health::v1::Health::NewStub(channel_);
    grpc::health::v1::HealthCheckResponse h;
    ASSERT_TRUE(
        health->Check(Ctx().get(), grpc::health::v1::HealthCheckRequest(), &h)
            .ok());
    EXPECT_EQ(h.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
  const std::optional<std::string> scrape =
      testing::HttpGet(daemon_->metrics_port(), "/metrics");
  ASSERT_TRUE(scrape.has_value());
  EXPECT_THAT(*scrape, HasSubstr("awaitd_"));

  // A cancel that takes effect waits for its record, also at most the bound.
  v1::CancelRequest cancel;
  cancel.add_ids(id);
  v1::CancelResponse cancelled;
  s = stub_->Cancel(Ctx().get(), cancel, &cancelled);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("--store_timeout=300ms"));

  // So do DeclareLimit and DeleteLimit, whose changes are stored too.
  v1::DeclareLimitRequest declare;
  declare.set_name("hung");
  declare.set_permits(2);
  v1::DeclareLimitResponse declared;
  s = stub_->DeclareLimit(Ctx().get(), declare, &declared);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("--store_timeout=300ms"));
  v1::DeleteLimitRequest remove;
  remove.set_name("hung");
  v1::DeleteLimitResponse removed;
  s = stub_->DeleteLimit(Ctx().get(), remove, &removed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("--store_timeout=300ms"));

  // The disk answers again: what was cancelled is stored and told.
  fs_->ReleaseSyncs();
  EXPECT_EQ(AwaitDone(id).state(), v1::JOB_STATE_CANCELLED);
}

TEST_F(DiskFaultTest, ASubmitTimedOutOnAHungDiskMakesOneJobForItsKey) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Faulty()));
  v1::JobSpec spec = Spec("echo", R"({"value": 5})");
  spec.set_idempotency_key("order-5");

  fs_->HangSyncs();
  v1::SubmitResponse resp;
  grpc::Status s = Submit({spec}, &resp);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  // Its batch is still on its way: a retry neither answers for it nor
  // creates another job.
  s = Submit({spec}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("being accepted by another call"));
  EXPECT_THAT(ListedIds(), ::testing::IsEmpty());

  // The write lands after all: the job exists (and runs), and the retry gets
  // it.
  fs_->ReleaseSyncs();
  s = SubmitSettled(spec, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.jobs_size(), 1);
  const std::uint64_t id = resp.jobs(0).id();
  EXPECT_TRUE(resp.jobs(0).existing());
  EXPECT_EQ(AwaitDone(id).result().number_value(), 5);
  EXPECT_THAT(ListedIds(), ::testing::ElementsAre(id));

  StopDaemon();
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable()));
  EXPECT_THAT(ListedIds(), ::testing::ElementsAre(id));
  resp.Clear();
  ASSERT_TRUE(Submit({spec}, &resp).ok());
  EXPECT_EQ(resp.jobs(0).id(), id);
  EXPECT_TRUE(resp.jobs(0).existing());
}

TEST_F(DiskFaultTest, AFullDiskReportedByTheSyncNeverMakesASecondJobForAKey) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Faulty()));
  const std::uint64_t before = SubmitOk({Spec("echo", R"({"value": 1})")})[0];
  ASSERT_EQ(WaitForOk(before).state(), v1::JOB_STATE_SUCCEEDED);
  v1::JobSpec spec = Spec("echo", R"({"value": 6})");
  spec.set_idempotency_key("order-6");

  // The append reaches the log, then its fsync reports ENOSPC.
  fs_->sync_no_space = true;
  v1::SubmitResponse first;
  const grpc::Status s = Submit({spec}, &first);
  fs_->sync_no_space = false;
  // Whatever it was told, a client retries with its key until answered.
  v1::SubmitResponse resp;
  const grpc::Status retried = SubmitSettled(spec, &resp);
  ASSERT_TRUE(retried.ok()) << retried.error_message();
  const std::uint64_t id = resp.jobs(0).id();
  if (s.ok()) {
    EXPECT_EQ(first.jobs(0).id(), id);
    EXPECT_TRUE(resp.jobs(0).existing());
  } else {
    // Never "nothing was accepted" for a batch that is in the log.
    EXPECT_THAT(s.error_code(),
                ::testing::AnyOf(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                 grpc::StatusCode::UNAVAILABLE))
        << s.error_message();
  }
  EXPECT_EQ(AwaitDone(id).result().number_value(), 6);
  EXPECT_THAT(ListedIds(), ::testing::ElementsAre(before, id));

  // What the log holds is what the daemon told: one job for the key.
  StopDaemon();
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable()));
  EXPECT_THAT(ListedIds(), ::testing::ElementsAre(before, id));
  resp.Clear();
  ASSERT_TRUE(Submit({spec}, &resp).ok());
  EXPECT_EQ(resp.jobs(0).id(), id);
  EXPECT_TRUE(resp.jobs(0).existing());
}

TEST_F(DiskFaultTest, AShutdownOnAHungDiskReturnsWithinItsBounds) {
  DaemonOptions o = Faulty();
  o.shutdown_grace = absl::Milliseconds(100);
  o.cancel_grace = absl::Milliseconds(200);
  ASSERT_NO_FATAL_FAILURE(StartDaemon(o));
  const std::uint64_t id = SubmitOk({Spec("sleep", R"({"seconds": 60})")})[0];
  fs_->HangSyncs();
  grpc::Status submitted;
  std::thread submitter([&] {
    v1::SubmitResponse resp;
    submitted = Submit({Spec("echo", R"({"value": 2})")}, &resp);
  });
  fs_->AwaitHungSyncs(1);
  const absl::Time start = absl::Now();
  daemon_->Shutdown();  // the store's writer still waits for the disk
  const absl::Duration took = absl::Now() - start;
  submitter.join();
  EXPECT_EQ(submitted.error_code(), grpc::StatusCode::UNAVAILABLE);
  // The graces, the store timeout, and the server's own stop: far below
  // the 30 s a call's deadline would otherwise have taken.
  EXPECT_LT(took, absl::Seconds(5)) << id;
  fs_->ReleaseSyncs();
}

// --- The binary, killed and restarted
// ------------------------------------------------------------------

// What the clients were told, to compare with what the daemon says after
// each restart.
struct ClientLog {
  std::mutex mu;
  std::map<std::uint64_t, std::string> acknowledged;  // id -> idempotency key
  std::map<std::uint64_t, v1::Job> reported;          // final outcomes seen
  int groups = 0;                                     // Gathers acknowledged
  int groups_reported = 0;  // ... that answered with their children
};

void CheckAgainst(v1::Jobs::Stub& stub, ClientLog& log, int round) {
  std::lock_guard<std::mutex> lock(log.mu);
  if (log.acknowledged.empty()) return;
  v1::GetRequest req;
  for (const auto& [id, key] : log.acknowledged) req.add_ids(id);
  v1::GetResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::Status s = stub.Get(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << "round " << round << ": an acknowledged job is "
                      << "missing: " << s.error_message();
  ASSERT_EQ(resp.jobs_size(), req.ids_size());
  for (const v1::Job& j : resp.jobs()) {
    ASSERT_GE(j.state(), v1::JOB_STATE_PENDING) << j.ShortDebugString();
    ASSERT_LE(j.state(), v1::JOB_STATE_CANCELLED) << j.ShortDebugString();
    if (j.state() == v1::JOB_STATE_SUCCEEDED) {
      EXPECT_TRUE(j.has_result())
          << "round " << round << ": " << j.ShortDebugString();
      EXPECT_FALSE(j.has_error()) << j.ShortDebugString();
    }
    if (j.state() == v1::JOB_STATE_FAILED ||
        j.state() == v1::JOB_STATE_CANCELLED) {
      EXPECT_TRUE(j.has_error())
          << "round " << round << ": " << j.ShortDebugString();
    }
    if (j.state() >= v1::JOB_STATE_SUCCEEDED) {
      EXPECT_TRUE(j.has_finished_at()) << j.ShortDebugString();
    }
    auto it = log.reported.find(j.id());
    if (it != log.reported.end()) {
      // A reported outcome never changes.
      EXPECT_EQ(j.state(), it->second.state())
          << "round " << round << ": job " << j.id() << " was reported as "
          << it->second.ShortDebugString() << ", now " << j.ShortDebugString();
      EXPECT_EQ(j.result().ShortDebugString(),
                it->second.result().ShortDebugString());
      EXPECT_EQ(j.finished_at().seconds(), it->second.finished_at().seconds());
      EXPECT_EQ(j.finished_at().nanos(), it->second.finished_at().nanos());
    }
  }
}

TEST(CrashLoopTest, KilledAndRestartedFiftyTimesLosesNothingAcknowledged) {
  const std::string awaitd = testing::AwaitdBinaryPath();
  ASSERT_TRUE(std::filesystem::exists(awaitd)) << awaitd;
  const std::string dir = FreshDir("crash_loop");
  const std::string data_dir = dir + "/data";
  ClientLog log;
  std::mt19937 rng(12345);
  std::atomic<std::uint64_t> key_seq{0};
  constexpr int kRounds = 50;
  for (int round = 0; round < kRounds; ++round) {
    const std::string port_file = dir + "/port" + std::to_string(round);
    // Killed and reaped at the end of the round, whatever happens below (an
    // ASSERT returns early).
    ::awaitd::testing::Process daemon({
        .argv = {awaitd, "--listen=127.0.0.1:0", "--port_file=" + port_file,
                 "--metrics_listen=", "--workers=2", "--log_level=warning",
                 "--durability=sync", "--data_dir=" + data_dir},
        .stdout_to = ::awaitd::testing::Output::Inherit(),
        .stderr_to = ::awaitd::testing::Output::Append(dir + "/stderr"),
    });
    ASSERT_TRUE(daemon.started()) << daemon.error();
    std::string address;
    for (int i = 0; i < 2000 && address.empty(); ++i) {
      std::ifstream in(port_file);
      std::getline(in, address);
      if (address.empty())
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_FALSE(address.empty()) << "round " << round << ": no port file";
    auto channel =
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    auto stub = v1::Jobs::NewStub(channel);

    // After a restart, everything acknowledged so far is there, unchanged.
    ASSERT_NO_FATAL_FAILURE(CheckAgainst(*stub, log, round));
    if (::testing::Test::HasFailure()) break;

    // Three clients: submit (some with keys, some delayed, some retried),
    // wait for some, cancel some; the daemon is killed while they do.
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int c = 0; c < 3; ++c) {
      clients.emplace_back([&, c] {
        std::mt19937 r(round * 10 + c);
        while (!stop.load()) {
          v1::SubmitRequest req;
          for (int i = 0; i < 5; ++i) {
            v1::JobSpec* s = req.add_jobs();
            switch (r() % 4) {
              case 0:
                *s = Spec("echo",
                          "{\"value\": " + std::to_string(r() % 100) + "}");
                break;
              case 1:
                *s = Spec("sleep", R"({"seconds": 0.02, "result": "slept"})");
                break;
              case 2:
                *s = Spec("echo", R"({"value": 1})");
                *s->mutable_delay() = testing::Seconds(3600);
                break;
              default:
                *s = Spec("fail", R"({"type": "ValueError", "message": "no"})");
                break;
            }
            if (r() % 3 == 0)
              s->set_idempotency_key("k" + std::to_string(key_seq++));
          }
          v1::SubmitResponse resp;
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::seconds(5));
          if (!stub->Submit(&ctx, req, &resp).ok()) break;  // killed
          std::vector<std::uint64_t> ids;
          {
            std::lock_guard<std::mutex> lock(log.mu);
            for (int i = 0; i < resp.jobs_size(); ++i) {
              log.acknowledged[resp.jobs(i).id()] =
                  req.jobs(i).idempotency_key();
              ids.push_back(resp.jobs(i).id());
            }
          }
          if (r() % 2 == 0) {
            v1::CancelRequest creq;
            creq.add_ids(ids[r() % ids.size()]);
            v1::CancelResponse cresp;
            grpc::ClientContext cctx;
            cctx.set_deadline(std::chrono::system_clock::now() +
                              std::chrono::seconds(5));
            (void)stub->Cancel(&cctx, creq, &cresp);
          }
          // Wait for the first one; remember a final outcome it reported.
          v1::WaitForRequest wreq;
          wreq.mutable_job()->set_id(ids[0]);
          *wreq.mutable_timeout() = testing::Seconds(0.2);
          v1::WaitForResponse wresp;
          grpc::ClientContext wctx;
          wctx.set_deadline(std::chrono::system_clock::now() +
                            std::chrono::seconds(5));
          // Its outcome, if any, is read back with Get below: a final state
          // there is what a client would have been told.
          (void)stub->WaitFor(&wctx, wreq, &wresp);
          v1::GetRequest greq;
          greq.add_ids(ids[0]);
          v1::GetResponse gresp;
          grpc::ClientContext gctx;
          gctx.set_deadline(std::chrono::system_clock::now() +
                            std::chrono::seconds(5));
          if (stub->Get(&gctx, greq, &gresp).ok() &&
              gresp.jobs(0).state() >= v1::JOB_STATE_SUCCEEDED) {
            std::lock_guard<std::mutex> lock(log.mu);
            log.reported[ids[0]] = gresp.jobs(0);
          }
          if (r() % 3 != 0) continue;
          // A group: acknowledged once its id came back (the header); its
          // outcome, if the call got one, reported.
          v1::GatherRequest gather;
          *gather.add_jobs()->mutable_spec() = Spec("echo", R"({"value": 3})");
          *gather.add_jobs()->mutable_spec() =
              Spec("sleep", R"({"seconds": 0.05, "result": 4})");
          gather.add_jobs()->set_id(ids[1]);
          gather.set_return_exceptions(true);
          v1::GatherResponse gathered;
          grpc::ClientContext rctx;
          rctx.set_deadline(std::chrono::system_clock::now() +
                            std::chrono::milliseconds(100 + r() % 200));
          const grpc::Status gs = stub->Gather(&rctx, gather, &gathered);
          const auto& headers = rctx.GetServerInitialMetadata();
          auto h = headers.find("awaitd-group-id");
          if (h == headers.end()) continue;
          const std::uint64_t group =
              std::stoull(std::string(h->second.data(), h->second.size()));
          std::lock_guard<std::mutex> lock(log.mu);
          log.acknowledged[group] = "";
          ++log.groups;
          if (gs.ok()) {
            ++log.groups_reported;
            // The children's outcomes, as reported in the response.
            for (const v1::Job& child : gathered.results()) {
              log.acknowledged[child.id()] = "";
              log.reported[child.id()] = child;
            }
          }
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 200));
    const std::optional<::awaitd::testing::ProcessResult> exited =
        daemon.Wait(std::chrono::milliseconds(0));
    ASSERT_FALSE(exited.has_value())
        << "round " << round << ": awaitd exited by itself, "
        << exited->Describe();
    daemon.Signal(SIGKILL);
    stop = true;
    for (auto& t : clients) t.join();
  }
  {
    std::lock_guard<std::mutex> lock(log.mu);
    EXPECT_GT(log.acknowledged.size(), 500u) << "too little traffic to tell";
    EXPECT_GT(log.reported.size(), 50u);
    EXPECT_GT(log.groups, 20);
    EXPECT_GT(log.groups_reported, 5);
    std::printf(
        "crash loop: %zu jobs acknowledged, %zu outcomes reported, "
        "%d groups acknowledged, %d answered\n",
        log.acknowledged.size(), log.reported.size(), log.groups,
        log.groups_reported);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace awaitd::server
