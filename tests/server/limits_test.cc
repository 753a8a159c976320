// Named limits over RPC: the --max_limits cap, and DeleteLimit (what
// "unused" means, flags' limits, names freed). Their survival across a
// restart is in durability_test.cc (DurableDaemonTest, RecoveryTest).
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/daemon_fixture.h"

namespace awaitd::server {
namespace {

using ::testing::HasSubstr;
using testing::Spec;
using Code = grpc::StatusCode;

class LimitsTest : public testing::DaemonTest {
 protected:
  LimitsTest() { start_in_setup_ = false; }
  void SetUp() override {
    DaemonOptions o = DefaultOptions();
    o.limits = {"flagged:1"};
    o.jobs.max_limits = 3;
    StartDaemon(std::move(o));
  }

  grpc::Status DeclareLimit(const std::string& name, std::uint32_t permits) {
    v1::DeclareLimitRequest req;
    req.set_name(name);
    req.set_permits(permits);
    v1::DeclareLimitResponse resp;
    return stub_->DeclareLimit(Ctx().get(), req, &resp);
  }
  grpc::Status DeleteLimit(const std::string& name) {
    v1::DeleteLimitRequest req;
    req.set_name(name);
    v1::DeleteLimitResponse resp;
    return stub_->DeleteLimit(Ctx().get(), req, &resp);
  }
  std::vector<std::string> LimitNames() {
    v1::ListLimitsResponse resp;
    EXPECT_TRUE(
        stub_->ListLimits(Ctx().get(), v1::ListLimitsRequest(), &resp).ok());
    std::vector<std::string> names;
    for (const v1::Limit& l : resp.limits()) names.push_back(l.name());
    return names;
  }
  void CancelOk(const std::vector<std::uint64_t>& ids) {
    v1::CancelRequest req;
    for (std::uint64_t id : ids) req.add_ids(id);
    v1::CancelResponse resp;
    grpc::Status s = stub_->Cancel(Ctx().get(), req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  static v1::JobSpec Naming(const std::string& limit, double delay_s = 0) {
    v1::JobSpec spec = Spec("echo", R"({"value": 1})");
    spec.add_limits(limit);
    if (delay_s > 0) *spec.mutable_delay() = testing::Seconds(delay_s);
    return spec;
  }
};

::testing::AssertionResult HasStatus(const grpc::Status& s, Code code,
                                     const std::string& text) {
  if (s.error_code() == code &&
      s.error_message().find(text) != std::string::npos) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "got code " << s.error_code() << ": " << s.error_message();
}

TEST_F(LimitsTest, ANewLimitBeyondMaxLimitsIsResourceExhaustedNamingTheFlag) {
  // The flag's limit counts: 1 + 2 = 3.
  ASSERT_TRUE(DeclareLimit("a", 1).ok());
  ASSERT_TRUE(DeclareLimit("b", 1).ok());
  EXPECT_TRUE(HasStatus(DeclareLimit("c", 1), Code::RESOURCE_EXHAUSTED,
                        "3 limits are declared; a new one would exceed "
                        "--max_limits=3"));
  EXPECT_TRUE(DeclareLimit("a", 1).ok()) << "an existing one is no new one";
  EXPECT_THAT(LimitNames(), ::testing::ElementsAre("a", "b", "flagged"));
  // Deleting one makes room.
  ASSERT_TRUE(DeleteLimit("a").ok());
  EXPECT_TRUE(DeclareLimit("c", 1).ok());
}

TEST_F(LimitsTest, MoreLimitFlagsThanMaxLimitsRefuseToStart) {
  DaemonOptions o = DefaultOptions();
  o.limits = {"a:1", "b:1", "c:1"};
  o.jobs.max_limits = 2;
  auto d = Daemon::Start(std::move(o));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(d.status().message(), HasSubstr("--limit=c:1"));
  EXPECT_THAT(d.status().message(), HasSubstr("--max_limits=2"));
}

TEST_F(LimitsTest, ALongNameIsRefusedWithoutBeingEchoedWhole) {
  grpc::Status s = DeclareLimit(std::string(100'000, 'x'), 1);
  EXPECT_TRUE(HasStatus(s, Code::INVALID_ARGUMENT, "100000 characters"));
  EXPECT_LT(s.error_message().size(), 400u);
}

TEST_F(LimitsTest, DeletingAnUnusedLimitFreesItsName) {
  ASSERT_TRUE(DeclareLimit("api", 2).ok());
  const std::uint64_t done = SubmitOk({Naming("api")})[0];
  ASSERT_EQ(AwaitDone(done).state(), v1::JOB_STATE_SUCCEEDED);
  // A job that is done does not use it.
  grpc::Status s = DeleteLimit("api");
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(LimitNames(), ::testing::ElementsAre("flagged"));
  // The done job keeps the name in its spec.
  EXPECT_THAT(GetOk(done).limits(), ::testing::ElementsAre("api"));
  // The name may be declared again, with another size.
  EXPECT_TRUE(DeclareLimit("api", 5).ok());
}

TEST_F(LimitsTest, DeletingALimitThatJobsNotDoneNameIsFailedPrecondition) {
  ASSERT_TRUE(DeclareLimit("gate", 1).ok());
  v1::JobSpec holder = Spec("sleep", R"({"seconds": 3600})");
  holder.add_limits("gate");
  // One holds the permit, one waits for it, one waits for its start time.
  const std::vector<std::uint64_t> ids =
      SubmitOk({holder, Naming("gate"), Naming("gate", 3600)});
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_TRUE(HasStatus(DeleteLimit("gate"), Code::FAILED_PRECONDITION,
                        "limit gate is in use: 3 jobs not done name it"));
  EXPECT_TRUE(HasStatus(DeleteLimit("gate"), Code::FAILED_PRECONDITION,
                        "jobs " + std::to_string(ids[0]) + ", " +
                            std::to_string(ids[1]) + ", " +
                            std::to_string(ids[2])));
  EXPECT_THAT(LimitNames(), ::testing::Contains("gate"));
  // Refused, it changed nothing: the waiter still runs once the holder
  // is gone.
  ASSERT_NO_FATAL_FAILURE(CancelOk({ids[0]}));
  EXPECT_EQ(AwaitDone(ids[1]).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_TRUE(HasStatus(DeleteLimit("gate"), Code::FAILED_PRECONDITION,
                        "1 jobs not done name it"));
  ASSERT_NO_FATAL_FAILURE(CancelOk({ids[2]}));
  ASSERT_EQ(AwaitDone(ids[2]).state(), v1::JOB_STATE_CANCELLED);
  grpc::Status s = DeleteLimit("gate");
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(LimitsTest, DeletingALimitFromAFlagIsFailedPrecondition) {
  EXPECT_TRUE(HasStatus(DeleteLimit("flagged"), Code::FAILED_PRECONDITION,
                        "declared by --limit=flagged:1"));
  EXPECT_THAT(LimitNames(), ::testing::Contains("flagged"));
}

TEST_F(LimitsTest, DeletingAnUnknownLimitIsNotFound) {
  EXPECT_TRUE(HasStatus(DeleteLimit("never"), Code::NOT_FOUND,
                        "no limit \"never\" is declared"));
  ASSERT_TRUE(DeclareLimit("once", 1).ok());
  ASSERT_TRUE(DeleteLimit("once").ok());
  EXPECT_TRUE(HasStatus(DeleteLimit("once"), Code::NOT_FOUND, "once"));
}

TEST_F(LimitsTest, ASubmitNamingADeletedLimitIsInvalidAsForAnUnknownOne) {
  ASSERT_TRUE(DeclareLimit("old", 1).ok());
  ASSERT_TRUE(DeleteLimit("old").ok());
  v1::SubmitResponse resp;
  EXPECT_TRUE(HasStatus(Submit({Naming("old")}, &resp), Code::INVALID_ARGUMENT,
                        "jobs[0].limits[0]: unknown limit \"old\""));
}

// A Submit racing a DeleteLimit of the limit it names: either the job is
// accepted and the deletion refused, or the deletion wins and the job is
// refused; never both accepted (a job whose limit is gone, which a restart
// would fail).
TEST_F(LimitsTest, ASubmitRacingADeleteNeverLeavesAJobWithoutItsLimit) {
  for (int round = 0; round < 120; ++round) {
    ASSERT_TRUE(DeclareLimit("race", 1).ok());
    std::atomic<bool> go{false};
    grpc::Status submitted;
    v1::SubmitResponse resp;
    std::thread submitter([&] {
      while (!go.load()) std::this_thread::yield();
      // A batch: validating it takes a while after its first job found
      // the limit, which widens the window a deletion can fall into.
      submitted =
          Submit(std::vector<v1::JobSpec>(500, Naming("race", 3600)), &resp);
    });
    go.store(true);
    // Rounds start the deletion at different points of the Submit (from
    // before it arrives to after it is answered): spreads them over the
    // window rather than betting on one timing.
    const absl::Time until =
        absl::Now() + absl::Microseconds(50 * (round % 40));
    while (absl::Now() < until) std::this_thread::yield();
    const grpc::Status deletion = DeleteLimit("race");
    submitter.join();
    ASSERT_NE(submitted.ok(), deletion.ok())
        << "round " << round << ": submit " << submitted.error_message()
        << "; delete " << deletion.error_message();
    if (submitted.ok()) {
      EXPECT_EQ(deletion.error_code(), Code::FAILED_PRECONDITION);
      std::vector<std::uint64_t> ids;
      for (const v1::JobRef& j : resp.jobs()) ids.push_back(j.id());
      ASSERT_NO_FATAL_FAILURE(CancelOk(ids));
      for (std::uint64_t id : ids) {
        ASSERT_EQ(AwaitDone(id).state(), v1::JOB_STATE_CANCELLED);
      }
      ASSERT_TRUE(DeleteLimit("race").ok());
    } else {
      EXPECT_EQ(submitted.error_code(), Code::INVALID_ARGUMENT)
          << submitted.error_message();
    }
  }
}

}  // namespace
}  // namespace awaitd::server
