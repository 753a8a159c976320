// ASYNCIO_SEMANTICS.md, sections 1-3, row by row, against a real daemon over
// a real channel. Each test names the row it checks ("Row: ..."). Timing
// bounds are generous (a loaded 2-core machine): they tell "at once" from
// "after the long job", never exact times.
#include <grpcpp/generic/generic_stub.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "server/jobs/job.h"
#include "tests/server/daemon_fixture.h"
#include "tests/server/rpc_test_util.h"

namespace awaitd::server::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

// Clearly longer than any test: a job that only ends when cancelled.
constexpr const char* kForever = R"({"seconds": 30})";

class ContractTest : public RpcTest {
 protected:
  grpc::Status Gather(const v1::GatherRequest& req, v1::GatherResponse* resp,
                      double deadline_s = 30) {
    return stub_->Gather(Ctx(deadline_s).get(), req, resp);
  }
  grpc::Status RunGroup(const v1::RunGroupRequest& req,
                        v1::RunGroupResponse* resp) {
    return stub_->RunGroup(Ctx().get(), req, resp);
  }
  grpc::Status Wait(const v1::WaitRequest& req, v1::WaitResponse* resp) {
    return stub_->Wait(Ctx().get(), req, resp);
  }

  static v1::JobSpec Named(v1::JobSpec s, const std::string& name) {
    s.set_name(name);
    return s;
  }
  static v1::JobSpec Shielded(v1::JobSpec s) {
    s.set_shield(true);
    return s;
  }
  static v1::JobSpec Delayed(v1::JobSpec s, double seconds) {
    *s.mutable_delay() = Seconds(seconds);
    return s;
  }
  static v1::JobSpec Keyed(v1::JobSpec s, const std::string& key) {
    s.set_idempotency_key(key);
    return s;
  }
  static v1::JobSpec Limited(v1::JobSpec s, const std::string& limit) {
    s.add_limits(limit);
    return s;
  }
  static v1::JobSpec Sleep(double seconds, const std::string& result = "") {
    std::string json = "{\"seconds\": " + std::to_string(seconds);
    if (!result.empty()) json += ", \"result\": \"" + result + "\"";
    json += "}";
    return Spec("sleep", json);
  }
  static v1::JobSpec Fail(const std::string& type, const std::string& message,
                          double after_seconds = 0) {
    return Spec("fail", "{\"type\": \"" + type + "\", \"message\": \"" +
                            message + "\", \"after_seconds\": " +
                            std::to_string(after_seconds) + "}");
  }
};

// ===== create_task (Submit) ===============================================

// Row: create_task(coro, name=) -- schedules at once, returns a Task with an
// id; default names count Job-1, Job-2, ... per daemon.
TEST_F(ContractTest, SubmitBatchGivesDistinctIdsAndDefaultNamesInOrder) {
  v1::SubmitResponse resp;
  ASSERT_TRUE(
      Submit({Spec("echo", R"({"value": 1})"), Spec("echo", R"({"value": 2})"),
              Spec("echo", R"({"value": 3})")},
             &resp)
          .ok());
  ASSERT_EQ(resp.jobs_size(), 3);
  std::set<std::uint64_t> ids;
  for (int i = 0; i < 3; ++i) {
    EXPECT_NE(resp.jobs(i).id(), 0u);
    EXPECT_FALSE(resp.jobs(i).existing());
    EXPECT_EQ(resp.jobs(i).name(), "Job-" + std::to_string(i + 1));
    ids.insert(resp.jobs(i).id());
  }
  EXPECT_EQ(ids.size(), 3u);
  // In request order: job i returns value i+1.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(WaitForOk(resp.jobs(i).id()).result().number_value(), i + 1);
  }
  // The count goes on across calls.
  v1::SubmitResponse more;
  ASSERT_TRUE(Submit({Spec("echo", R"({"value": 4})")}, &more).ok());
  EXPECT_EQ(more.jobs(0).name(), "Job-4");
}

// Row: create_task(name=) -- a custom name is kept, and (as asyncio's
// Task-N counter) a named job does not use up a default number.
TEST_F(ContractTest, SubmitKeepsCustomNameWithoutUsingADefaultNumber) {
  v1::SubmitResponse resp;
  ASSERT_TRUE(Submit({Named(Spec("echo", R"({"value": 0})"), "fetch-cats"),
                      Spec("echo", R"({"value": 1})")},
                     &resp)
                  .ok());
  EXPECT_EQ(resp.jobs(0).name(), "fetch-cats");
  EXPECT_EQ(resp.jobs(1).name(), "Job-1");
  EXPECT_EQ(GetOk(resp.jobs(0).id()).name(), "fetch-cats");
}

// Row: Submit names jobs per daemon run -- children created inline by a
// combinator count on from the same Job-N; groups are Group-N.
TEST_F(ContractTest, DefaultNamesCountAcrossSubmitAndCombinators) {
  SubmitOk({Spec("echo", R"({"value": 0})")});  // Job-1
  v1::GatherRequest req;
  *req.add_jobs() = Input(Spec("echo", R"({"value": 1})"));
  v1::GatherResponse resp;
  ASSERT_TRUE(Gather(req, &resp).ok());
  EXPECT_EQ(resp.results(0).name(), "Job-2");
  EXPECT_EQ(GetOk(resp.group_id()).name(), "Group-1");
}

// Row: Submit -- a batch is admitted whole or not at all (the API's error
// rule): a bad spec fails the call, names the field and creates nothing.
TEST_F(ContractTest, SubmitWithOneBadSpecCreatesNothing) {
  v1::SubmitResponse resp;
  grpc::Status s =
      Submit({Spec("echo", R"({"value": 1})"), Spec("no-such-kind")}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << CodeName(s.error_code());
  EXPECT_THAT(s.error_message(), StartsWith("jobs[1].kind"));
  EXPECT_TRUE(ListAll().empty());
  // And no default number was used up.
  v1::SubmitResponse ok;
  ASSERT_TRUE(Submit({Spec("echo", R"({"value": 1})")}, &ok).ok());
  EXPECT_EQ(ok.jobs(0).name(), "Job-1");
}

// Row: Submit idempotency_key -- a key seen before returns the existing job.
TEST_F(ContractTest, IdempotencyKeyReturnsTheExistingJob) {
  v1::SubmitResponse first;
  ASSERT_TRUE(
      Submit({Keyed(Spec("echo", R"({"value": "first"})"), "k1")}, &first)
          .ok());
  v1::SubmitResponse again;
  ASSERT_TRUE(
      Submit({Keyed(Spec("echo", R"({"value": "second"})"), "k1")}, &again)
          .ok());
  EXPECT_FALSE(first.jobs(0).existing());
  EXPECT_TRUE(again.jobs(0).existing());
  EXPECT_EQ(again.jobs(0).id(), first.jobs(0).id());
  EXPECT_EQ(again.jobs(0).name(), first.jobs(0).name());
  EXPECT_EQ(WaitForOk(first.jobs(0).id()).result().string_value(), "first");
  EXPECT_EQ(ListAll().size(), 1u);
}

// Row: Submit idempotency_key -- also within one batch.
TEST_F(ContractTest, IdempotencyKeyRepeatedWithinOneBatch) {
  v1::SubmitResponse resp;
  ASSERT_TRUE(Submit({Keyed(Spec("echo", R"({"value": "a"})"), "same"),
                      Keyed(Spec("echo", R"({"value": "b"})"), "same"),
                      Spec("echo", R"({"value": "c"})")},
                     &resp)
                  .ok());
  ASSERT_EQ(resp.jobs_size(), 3);
  EXPECT_FALSE(resp.jobs(0).existing());
  EXPECT_TRUE(resp.jobs(1).existing());
  EXPECT_FALSE(resp.jobs(2).existing());
  EXPECT_EQ(resp.jobs(1).id(), resp.jobs(0).id());
  EXPECT_NE(resp.jobs(2).id(), resp.jobs(0).id());
  EXPECT_EQ(resp.jobs(2).name(), "Job-2");
  EXPECT_EQ(WaitForOk(resp.jobs(0).id()).result().string_value(), "a");
  EXPECT_EQ(ListAll().size(), 2u);
}

// ===== Task life cycle =====================================================

// Row: Task life cycle -- created -> scheduled -> running -> done, observed
// through Get and a Watch; timestamps in order; attempt 1.
TEST_F(ContractTest, LifecyclePendingRunningSucceededWithOrderedTimestamps) {
  auto ids = SubmitOk({Delayed(Sleep(0.1, "ok"), 0.4)});
  ASSERT_EQ(ids.size(), 1u);
  v1::WatchRequest wreq;
  wreq.add_ids(ids[0]);
  StreamCollector<v1::WatchResponse> watch(
      [&](grpc::ClientContext* c) { return stub_->Watch(c, wreq); });

  v1::Job pending = GetOk(ids[0]);
  EXPECT_EQ(StateName(pending.state()), "PENDING");
  EXPECT_FALSE(pending.has_started_at());
  EXPECT_FALSE(pending.has_result());  // InvalidStateError: not done yet
  EXPECT_EQ(pending.attempt(), 0u);

  ASSERT_TRUE(watch.WaitDone(10));
  EXPECT_TRUE(watch.status().ok()) << watch.status().error_message();
  std::vector<std::string> states;
  for (const auto& m : watch.messages()) states.push_back(StateName(m.state()));
  EXPECT_THAT(states, ElementsAre("PENDING", "RUNNING", "SUCCEEDED"));

  v1::Job done = GetOk(ids[0]);
  EXPECT_EQ(StateName(done.state()), "SUCCEEDED");
  EXPECT_EQ(done.result().string_value(), "ok");
  EXPECT_FALSE(done.has_error());
  EXPECT_EQ(done.attempt(), 1u);
  EXPECT_LE(Secs(done.created_at()), Secs(done.scheduled_at()));
  EXPECT_LE(Secs(done.scheduled_at()), Secs(done.started_at()));
  EXPECT_LE(Secs(done.started_at()), Secs(done.finished_at()));
  EXPECT_GE(Secs(done.finished_at()) - Secs(done.started_at()), 0.099);
}

// ===== Task.cancel =========================================================

// Row: Task.cancel(msg) -- returns True; the job ends CANCELLED with
// CancelledError carrying the message; cancelled() distinguishes it.
TEST_F(ContractTest, CancelRunningJobReturnsTrueAndReportsTheMessage) {
  auto ids = SubmitOk({Spec("sleep", kForever)});
  ASSERT_EQ(StateName(AwaitState(ids[0], v1::JOB_STATE_RUNNING).state()),
            "RUNNING");
  v1::CancelResult r = CancelOne(ids[0], "no longer needed");
  EXPECT_EQ(r.id(), ids[0]);
  EXPECT_TRUE(r.cancelled());
  v1::Job j = AwaitDone(ids[0]);
  EXPECT_EQ(StateName(j.state()), "CANCELLED");
  EXPECT_EQ(j.error().type(), "CancelledError");
  EXPECT_EQ(j.error().message(), "no longer needed");
  EXPECT_TRUE(j.cancel_requested());
  EXPECT_FALSE(j.has_result());
}

// Row: Task.cancel -- CancelledError is thrown in at the next suspension: a
// job waiting on a timer stops at once (ASYNCIO_SEMANTICS section 2).
TEST_F(ContractTest, CancelSleepingJobEndsPromptly) {
  auto ids = SubmitOk({Spec("sleep", kForever)});
  AwaitState(ids[0], v1::JOB_STATE_RUNNING);
  Stopwatch sw;
  ASSERT_TRUE(CancelOne(ids[0]).cancelled());
  v1::Job j = AwaitDone(ids[0]);
  EXPECT_LT(sw.Elapsed(), 1.0);
  EXPECT_EQ(StateName(j.state()), "CANCELLED");
  EXPECT_LT(Secs(j.finished_at()) - Secs(j.started_at()), 5.0);
}

// Row: Task.cancel -- returns False if the task is already done, and the
// outcome does not change.
TEST_F(ContractTest, CancelDoneJobReturnsFalseAndKeepsTheResult) {
  auto ids = SubmitOk({Spec("echo", R"({"value": 7})")});
  WaitForOk(ids[0]);
  v1::CancelResult r = CancelOne(ids[0], "too late");
  EXPECT_FALSE(r.cancelled());
  EXPECT_EQ(StateName(r.state()), "SUCCEEDED");
  v1::Job j = GetOk(ids[0]);
  EXPECT_EQ(StateName(j.state()), "SUCCEEDED");
  EXPECT_EQ(j.result().number_value(), 7);
  EXPECT_FALSE(j.has_error());
  EXPECT_FALSE(j.cancel_requested());
}

// Row: Task.cancel before the task ever ran (call_later handle cancelled):
// CANCELLED, never started.
TEST_F(ContractTest, CancelBeforeStartEndsCancelledWithoutRunning) {
  auto ids = SubmitOk({Delayed(Sleep(0.01), 10)});
  EXPECT_EQ(StateName(GetOk(ids[0]).state()), "PENDING");
  EXPECT_TRUE(CancelOne(ids[0], "never mind").cancelled());
  v1::Job j = AwaitDone(ids[0]);
  EXPECT_EQ(StateName(j.state()), "CANCELLED");
  EXPECT_EQ(j.error().type(), "CancelledError");
  EXPECT_EQ(j.error().message(), "never mind");
  EXPECT_FALSE(j.has_started_at());
  EXPECT_EQ(j.attempt(), 0u);
}

// Row: to_thread -- a cancelled job inside to_thread work is told through a
// stop token; the job ends promptly (section 2, Cancel).
TEST_F(ContractTest, CancelBlockingJobEndsPromptly) {
  auto ids = SubmitOk({Spec("blocking", kForever)});
  ASSERT_EQ(StateName(AwaitState(ids[0], v1::JOB_STATE_RUNNING).state()),
            "RUNNING");
  Stopwatch sw;
  ASSERT_TRUE(CancelOne(ids[0], "stop the thread").cancelled());
  v1::Job j = AwaitDone(ids[0]);
  EXPECT_LT(sw.Elapsed(), 1.0);
  EXPECT_EQ(StateName(j.state()), "CANCELLED");
  EXPECT_EQ(j.error().type(), "CancelledError");
  EXPECT_EQ(j.error().message(), "stop the thread");
}

// Row: Task.cancel -- delivered at the next suspension point: a job burning
// CPU on the event loop (yielding every millisecond) stops at its next yield.
TEST_F(ContractTest, CancelSpinningJobEndsAtItsNextYield) {
  auto ids = SubmitOk({Spec("spin", R"({"cpu_ms": 20000})")});
  AwaitState(ids[0], v1::JOB_STATE_RUNNING);
  Stopwatch sw;
  ASSERT_TRUE(CancelOne(ids[0]).cancelled());
  v1::Job j = AwaitDone(ids[0]);
  EXPECT_LT(sw.Elapsed(), 1.0);
  EXPECT_EQ(StateName(j.state()), "CANCELLED");
}

// Row: Cancel -- an unknown id is NOT_FOUND (naming it), and every id is
// checked before anything is cancelled.
TEST_F(ContractTest, CancelWithAnUnknownIdIsNotFoundAndCancelsNothing) {
  auto ids = SubmitOk({Spec("sleep", kForever)});
  AwaitState(ids[0], v1::JOB_STATE_RUNNING);
  v1::CancelRequest req;
  req.add_ids(ids[0]);
  req.add_ids(987654321);
  v1::CancelResponse resp;
  grpc::Status s = stub_->Cancel(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND)
      << CodeName(s.error_code());
  EXPECT_THAT(s.error_message(), HasSubstr("ids[1]"));
  EXPECT_THAT(s.error_message(), HasSubstr("987654321"));
  v1::Job j = GetOk(ids[0]);
  EXPECT_EQ(StateName(j.state()), "RUNNING");
  EXPECT_FALSE(j.cancel_requested());
}

// ===== Task.result() / exception() / cancelled() (Get) ====================

// Row: Task.result() -- the value.
TEST_F(ContractTest, GetReturnsTheResultValue) {
  auto ids = SubmitOk({Spec("echo", R"({"value": {"a": [1, "two"]}})")});
  WaitForOk(ids[0]);
  v1::Job j = GetOk(ids[0]);
  EXPECT_EQ(StateName(j.state()), "SUCCEEDED");
  const auto& fields = j.result().struct_value().fields();
  ASSERT_EQ(fields.count("a"), 1u);
  const auto& list = fields.at("a").list_value();
  ASSERT_EQ(list.values_size(), 2);
  EXPECT_EQ(list.values(0).number_value(), 1);
  EXPECT_EQ(list.values(1).string_value(), "two");
}

// Row: Task.result() re-raises the task's exception -- as a value (section
// 3): type and message as raised.
TEST_F(ContractTest, GetReportsTheRaisedErrorTypeAndMessage) {
  auto ids = SubmitOk({Fail("ValueError", "bad input")});
  v1::Job j = AwaitDone(ids[0]);
  EXPECT_EQ(StateName(j.state()), "FAILED");
  EXPECT_EQ(j.error().type(), "ValueError");
  EXPECT_EQ(j.error().message(), "bad input");
  EXPECT_FALSE(j.has_result());
  EXPECT_FALSE(j.cancel_requested());
}

// Row: cancelled() is true only if the task ended by CancelledError --
// CANCELLED and FAILED are distinct states with distinct error types.
TEST_F(ContractTest, GetDistinguishesCancelledFromFailed) {
  auto ids =
      SubmitOk({Spec("sleep", kForever), Fail("KeyError", "missing", 0.05)});
  AwaitState(ids[0], v1::JOB_STATE_RUNNING);
  CancelOne(ids[0], "stop");
  AwaitAll(ids);
  auto jobs = GetAll(ids);
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(StateName(jobs[0].state()), "CANCELLED");
  EXPECT_EQ(jobs[0].error().type(), "CancelledError");
  EXPECT_EQ(StateName(jobs[1].state()), "FAILED");
  EXPECT_EQ(jobs[1].error().type(), "KeyError");
}

// Row: section 3 -- TimeoutError is distinguishable: a job whose own
// timeout passes ends FAILED with TimeoutError (not CANCELLED).
TEST_F(ContractTest, OwnTimeoutEndsFailedWithTimeoutError) {
  v1::JobSpec spec = Spec("sleep", kForever);
  *spec.mutable_timeout() = Seconds(0.1);
  auto ids = SubmitOk({spec});
  Stopwatch sw;
  v1::Job j = AwaitDone(ids[0]);
  EXPECT_LT(sw.Elapsed(), 2.0);
  EXPECT_EQ(StateName(j.state()), "FAILED");
  EXPECT_EQ(j.error().type(), "TimeoutError");
  EXPECT_GE(Secs(j.finished_at()) - Secs(j.started_at()), 0.099);
}

// Row: JobSpec.timeout is "counted from when it starts running": time spent
// PENDING (a delay) does not count against it.
TEST_F(ContractTest, OwnTimeoutDoesNotCountTheDelay) {
  v1::JobSpec spec = Delayed(Sleep(0.05, "made it"), 0.3);
  *spec.mutable_timeout() = Seconds(0.2);
  auto ids = SubmitOk({spec});
  v1::Job j = AwaitDone(ids[0]);
  EXPECT_EQ(StateName(j.state()), "SUCCEEDED") << j.error().type();
  EXPECT_EQ(j.result().string_value(), "made it");
}

// Row: Get -- an unknown id is NOT_FOUND.
TEST_F(ContractTest, GetUnknownIdIsNotFound) {
  v1::GetRequest req;
  req.add_ids(424242);
  v1::GetResponse resp;
  grpc::Status s = stub_->Get(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND)
      << CodeName(s.error_code());
}

// ===== gather ==============================================================

// Row: gather -- results come back in input order, not completion order.
TEST_F(ContractTest, GatherResultsInInputOrderNotCompletionOrder) {
  v1::GatherRequest req;
  *req.add_jobs() = Input(Sleep(0.3, "a"));
  *req.add_jobs() = Input(Sleep(0.1, "b"));
  *req.add_jobs() = Input(Sleep(0.2, "c"));
  v1::GatherResponse resp;
  grpc::Status s = Gather(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.results_size(), 3);
  EXPECT_EQ(resp.results(0).result().string_value(), "a");
  EXPECT_EQ(resp.results(1).result().string_value(), "b");
  EXPECT_EQ(resp.results(2).result().string_value(), "c");
  // They did complete in another order.
  EXPECT_LT(Secs(resp.results(1).finished_at()),
            Secs(resp.results(2).finished_at()));
  EXPECT_LT(Secs(resp.results(2).finished_at()),
            Secs(resp.results(0).finished_at()));
  for (const v1::Job& j : resp.results()) {
    EXPECT_EQ(StateName(j.state()), "SUCCEEDED");
    EXPECT_EQ(j.group_id(), resp.group_id());
  }
}

// Row: gather(*aws) takes tasks and coroutines mixed -- ids and inline
// specs; an existing job stays its own (no group), inline ones belong to
// the group.
TEST_F(ContractTest, GatherMixesExistingIdsAndInlineSpecs) {
  auto ids = SubmitOk({Sleep(0.1, "existing")});
  v1::GatherRequest req;
  *req.add_jobs() = Input(Spec("echo", R"({"value": "inline"})"));
  *req.add_jobs() = Input(ids[0]);
  v1::GatherResponse resp;
  grpc::Status s = Gather(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.results_size(), 2);
  EXPECT_EQ(resp.results(0).result().string_value(), "inline");
  EXPECT_EQ(resp.results(0).group_id(), resp.group_id());
  EXPECT_EQ(resp.results(1).id(), ids[0]);
  EXPECT_EQ(resp.results(1).result().string_value(), "existing");
  EXPECT_EQ(resp.results(1).group_id(), 0u);
  v1::Job group = GetOk(resp.group_id());
  EXPECT_EQ(group.kind(), "gather");
  EXPECT_THAT(group.children(),
              ElementsAre(resp.results(0).id(), resp.results(1).id()));
}

// Row: gather -- the same task given twice is awaited twice (asyncio's
// gather(t, t) returns [r, r]).
TEST_F(ContractTest, GatherOfTheSameIdTwiceReturnsItTwice) {
  auto ids = SubmitOk({Sleep(0.05, "x")});
  v1::GatherRequest req;
  *req.add_jobs() = Input(ids[0]);
  *req.add_jobs() = Input(ids[0]);
  v1::GatherResponse resp;
  grpc::Status s = Gather(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.results_size(), 2);
  EXPECT_EQ(resp.results(0).id(), ids[0]);
  EXPECT_EQ(resp.results(1).id(), ids[0]);
  EXPECT_EQ(resp.results(1).result().string_value(), "x");
}

// Row: gather(return_exceptions=False) -- the first exception propagates to
// the awaiter at once (ABORTED, with the error as details).
TEST_F(ContractTest, GatherWithoutReturnExceptionsFailsAtTheFirstError) {
  v1::GatherRequest req;
  *req.add_jobs() = Input(Sleep(1.0, "a"));
  *req.add_jobs() = Input(Fail("ValueError", "boom", 0.05));
  *req.add_jobs() = Input(Sleep(1.0, "c"));
  v1::GatherResponse resp;
  Stopwatch sw;
  grpc::Status s = Gather(req, &resp);
  EXPECT_LT(sw.Elapsed(), 0.9);  // before the sleeps end
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED)
      << CodeName(s.error_code()) << ": " << s.error_message();
  v1::ErrorDetails d = Details(s);
  EXPECT_EQ(d.error().type(), "ValueError");
  EXPECT_EQ(d.error().message(), "boom");
  EXPECT_THAT(s.error_message(), HasSubstr("boom"));
}

// Row: gather(return_exceptions=False) -- the details name the job that
// raised. jobs.proto: ErrorDetails.job_id is "the job whose outcome failed
// the call (a group for RunGroup)", so for Gather: the failing child.
TEST_F(ContractTest, GatherErrorDetailsNameTheFailingChild) {
  auto ids = SubmitOk({Fail("ValueError", "boom", 0.05)});
  v1::GatherRequest req;
  *req.add_jobs() = Input(Sleep(0.05));
  *req.add_jobs() = Input(ids[0]);
  v1::GatherResponse resp;
  auto ctx = Ctx();
  grpc::Status s = stub_->Gather(ctx.get(), req, &resp);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::ABORTED)
      << CodeName(s.error_code());
  v1::ErrorDetails d = Details(s);
  EXPECT_EQ(d.job_id(), ids[0])
      << "ErrorDetails.job_id names job " << d.job_id()
      << " (the gather group?) instead of the child that raised";
  EXPECT_EQ(d.error().type(), "ValueError");
}

// Row: gather(return_exceptions=False) -- the other awaitables are NOT
// cancelled: they keep running and succeed.
TEST_F(ContractTest, GatherFirstErrorDoesNotCancelTheOtherChildren) {
  v1::GatherRequest req;
  *req.add_jobs() = Input(Sleep(0.3, "a"));
  *req.add_jobs() = Input(Fail("ValueError", "boom"));
  *req.add_jobs() = Input(Sleep(0.3, "c"));
  v1::GatherResponse resp;
  auto ctx = Ctx();
  grpc::Status s = stub_->Gather(ctx.get(), req, &resp);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::ABORTED)
      << CodeName(s.error_code());
  const std::uint64_t group = GroupIdOf(*ctx);
  ASSERT_NE(group, 0u);
  v1::Job g = GetOk(group);
  EXPECT_EQ(StateName(g.state()), "FAILED");
  EXPECT_EQ(g.error().type(), "ValueError");
  ASSERT_EQ(g.children_size(), 3);
  std::vector<std::uint64_t> siblings = {g.children(0), g.children(2)};
  for (const v1::Job& j : GetAll(siblings)) {
    EXPECT_FALSE(j.cancel_requested()) << j.name();
  }
  AwaitAll(siblings);
  auto done = GetAll(siblings);
  EXPECT_EQ(StateName(done[0].state()), "SUCCEEDED");
  EXPECT_EQ(done[0].result().string_value(), "a");
  EXPECT_EQ(StateName(done[1].state()), "SUCCEEDED");
  EXPECT_EQ(done[1].result().string_value(), "c");
}

// Row: gather(return_exceptions=True) -- exceptions (and cancellations, as
// CancelledError) come back in place of results; the call succeeds.
TEST_F(ContractTest, GatherReturnExceptionsReturnsErrorsInPlace) {
  auto victim = SubmitOk({Spec("sleep", kForever)});
  v1::GatherRequest req;
  req.set_return_exceptions(true);
  *req.add_jobs() = Input(Sleep(0.1, "ok"));
  *req.add_jobs() = Input(Fail("KeyError", "k"));
  *req.add_jobs() = Input(victim[0]);
  InFlight<v1::GatherResponse> call;
  stub_->async()->Gather(call.ctx(), &req, call.response(), &call);
  call.StartCall();
  AwaitState(victim[0], v1::JOB_STATE_RUNNING);
  EXPECT_FALSE(call.Done(0.2));  // still waiting for the victim
  CancelOne(victim[0], "cut short");
  grpc::Status s = call.Await();
  ASSERT_TRUE(s.ok()) << CodeName(s.error_code()) << ": " << s.error_message();
  const auto& r = call.response()->results();
  ASSERT_EQ(r.size(), 3);
  EXPECT_EQ(StateName(r[0].state()), "SUCCEEDED");
  EXPECT_EQ(r[0].result().string_value(), "ok");
  EXPECT_EQ(StateName(r[1].state()), "FAILED");
  EXPECT_EQ(r[1].error().type(), "KeyError");
  EXPECT_EQ(r[1].error().message(), "k");
  EXPECT_EQ(StateName(r[2].state()), "CANCELLED");
  EXPECT_EQ(r[2].error().type(), "CancelledError");
  EXPECT_EQ(r[2].error().message(), "cut short");
  // The group itself succeeded (it was not cancelled).
  v1::Job g = GetOk(call.response()->group_id());
  EXPECT_EQ(StateName(g.state()), "SUCCEEDED");
  EXPECT_FALSE(g.cancel_requested());
  // Its result is the list, exceptions as {"error": {type, message}}.
  const auto& list = g.result().list_value();
  ASSERT_EQ(list.values_size(), 3);
  EXPECT_EQ(list.values(0).string_value(), "ok");
  const auto& err = list.values(1).struct_value().fields();
  ASSERT_EQ(err.count("error"), 1u);
  EXPECT_EQ(err.at("error").struct_value().fields().at("type").string_value(),
            "KeyError");
}

// Row: gather -- "If a child is cancelled, that counts as it raising
// CancelledError; the gather is not cancelled": the group job FAILS with
// CancelledError (it is not CANCELLED), and the other children run on.
TEST_F(ContractTest, GatherCancelledChildCountsAsCancelledError) {
  auto ids = SubmitOk({Spec("sleep", kForever), Sleep(0.3, "b")});
  v1::GatherRequest req;
  *req.add_jobs() = Input(ids[0]);
  *req.add_jobs() = Input(ids[1]);
  InFlight<v1::GatherResponse> call;
  stub_->async()->Gather(call.ctx(), &req, call.response(), &call);
  call.StartCall();
  const std::uint64_t group = call.MetadataId("awaitd-group-id");
  ASSERT_NE(group, 0u);
  AwaitState(ids[0], v1::JOB_STATE_RUNNING);
  CancelOne(ids[0], "child cancelled");
  grpc::Status s = call.Await();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED)
      << CodeName(s.error_code()) << ": " << s.error_message();
  EXPECT_EQ(Details(s).error().type(), "CancelledError");
  v1::Job g = GetOk(group);
  EXPECT_EQ(StateName(g.state()), "FAILED");
  EXPECT_EQ(g.error().type(), "CancelledError");
  EXPECT_FALSE(g.cancel_requested());
  v1::Job other = AwaitDone(ids[1]);
  EXPECT_EQ(StateName(other.state()), "SUCCEEDED");
}

// Row: Gather -- the group id is sent at once as initial metadata
// "awaitd-group-id" (while the call still waits), equal to group_id.
TEST_F(ContractTest, GatherSendsTheGroupIdAsInitialMetadataAtOnce) {
  v1::GatherRequest req;
  *req.add_jobs() = Input(Sleep(0.8, "late"));
  InFlight<v1::GatherResponse> call;
  stub_->async()->Gather(call.ctx(), &req, call.response(), &call);
  call.StartCall();
  const std::uint64_t group = call.MetadataId("awaitd-group-id", 2);
  ASSERT_NE(group, 0u);
  EXPECT_FALSE(call.Done());  // the metadata came before the result
  v1::Job g = GetOk(group);
  EXPECT_EQ(StateName(g.state()), "RUNNING");
  EXPECT_EQ(g.kind(), "gather");
  EXPECT_EQ(g.children_size(), 1);
  ASSERT_TRUE(call.Await().ok());
  EXPECT_EQ(call.response()->group_id(), group);
}

// Row: gather -- "If the gather itself is cancelled, every child not yet
// done is cancelled": Cancel(group id) cancels the children still running
// (not those done); the group ends CANCELLED; the call returns CANCELLED.
TEST_F(ContractTest, CancelGatherGroupCancelsEveryChildNotDone) {
  v1::GatherRequest req;
  *req.add_jobs() = Input(Spec("echo", R"({"value": "done early"})"));
  *req.add_jobs() = Input(Spec("sleep", kForever));
  *req.add_jobs() = Input(Spec("sleep", kForever));
  InFlight<v1::GatherResponse> call;
  stub_->async()->Gather(call.ctx(), &req, call.response(), &call);
  call.StartCall();
  const std::uint64_t group = call.MetadataId("awaitd-group-id");
  ASSERT_NE(group, 0u);
  v1::Job g = GetOk(group);
  ASSERT_EQ(g.children_size(), 3);
  std::vector<std::uint64_t> kids(g.children().begin(), g.children().end());
  AwaitDone(kids[0]);
  v1::CancelResult r = CancelOne(group, "gather cancelled");
  EXPECT_TRUE(r.cancelled());
  grpc::Status s = call.Await();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED)
      << CodeName(s.error_code()) << ": " << s.error_message();
  g = AwaitDone(group);
  EXPECT_EQ(StateName(g.state()), "CANCELLED");
  EXPECT_EQ(g.error().type(), "CancelledError");
  AwaitAll(kids);
  auto jobs = GetAll(kids);
  EXPECT_EQ(StateName(jobs[0].state()), "SUCCEEDED");
  EXPECT_FALSE(jobs[0].cancel_requested());
  for (int i : {1, 2}) {
    EXPECT_EQ(StateName(jobs[i].state()), "CANCELLED");
    EXPECT_EQ(jobs[i].error().message(), "gather cancelled");
  }
}

// Row: shield -- group cancellation of the awaiter never cancels a
// shielded job: Cancel(gather group) spares the shielded child.
TEST_F(ContractTest, CancelGatherGroupSparesAShieldedChild) {
  v1::GatherRequest req;
  *req.add_jobs() = Input(Shielded(Sleep(0.3, "shielded")));
  *req.add_jobs() = Input(Spec("sleep", kForever));
  InFlight<v1::GatherResponse> call;
  stub_->async()->Gather(call.ctx(), &req, call.response(), &call);
  call.StartCall();
  const std::uint64_t group = call.MetadataId("awaitd-group-id");
  ASSERT_NE(group, 0u);
  v1::Job g = GetOk(group);
  ASSERT_EQ(g.children_size(), 2);
  EXPECT_TRUE(CancelOne(group).cancelled());
  EXPECT_EQ(call.Await().error_code(), grpc::StatusCode::CANCELLED);
  v1::Job shielded = AwaitDone(g.children(0));
  EXPECT_EQ(StateName(shielded.state()), "SUCCEEDED");
  EXPECT_EQ(shielded.result().string_value(), "shielded");
  EXPECT_FALSE(shielded.cancel_requested());
  EXPECT_EQ(StateName(AwaitDone(g.children(1)).state()), "CANCELLED");
}

// Row: gather + shield -- the cancelled gather (the awaiter) ends at once
// even with return_exceptions=True; only the shielded job runs on. (In
// asyncio, gather(shield(t), ..., return_exceptions=True).cancel() ends the
// gather with CancelledError without waiting for t.)
TEST_F(ContractTest, CancelGatherWithReturnExceptionsDoesNotWaitForShielded) {
  v1::GatherRequest req;
  req.set_return_exceptions(true);
  *req.add_jobs() = Input(Shielded(Sleep(1.5, "shielded")));
  *req.add_jobs() = Input(Spec("sleep", kForever));
  InFlight<v1::GatherResponse> call;
  stub_->async()->Gather(call.ctx(), &req, call.response(), &call);
  call.StartCall();
  const std::uint64_t group = call.MetadataId("awaitd-group-id");
  ASSERT_NE(group, 0u);
  Stopwatch sw;
  EXPECT_TRUE(CancelOne(group).cancelled());
  grpc::Status s = call.Await();
  EXPECT_LT(sw.Elapsed(), 1.0)
      << "the cancelled gather waited for its shielded child";
  EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED)
      << CodeName(s.error_code());
}

// Row: gather() of nothing returns [].
TEST_F(ContractTest, GatherOfZeroJobsReturnsEmptyResults) {
  v1::GatherRequest req;
  v1::GatherResponse resp;
  grpc::Status s = Gather(req, &resp);
  ASSERT_TRUE(s.ok()) << CodeName(s.error_code()) << ": " << s.error_message();
  EXPECT_EQ(resp.results_size(), 0);
  EXPECT_NE(resp.group_id(), 0u);
  EXPECT_EQ(StateName(GetOk(resp.group_id()).state()), "SUCCEEDED");
}

// ===== wait ================================================================

// Row: wait(ALL_COMPLETED) -- returns once all are done, whatever their
// outcome; done in input order.
TEST_F(ContractTest, WaitAllCompletedReturnsWhenEveryJobIsDone) {
  auto ids = SubmitOk({Sleep(0.2), Fail("ValueError", "x"), Sleep(0.1)});
  v1::WaitRequest req;
  for (auto id : ids) *req.add_jobs() = Input(id);
  req.set_return_when(v1::ALL_COMPLETED);
  v1::WaitResponse resp;
  ASSERT_TRUE(Wait(req, &resp).ok());
  EXPECT_THAT(resp.done(), ElementsAreArray(ids));
  EXPECT_EQ(resp.pending_size(), 0);
  for (const v1::Job& j : GetAll(ids)) {
    EXPECT_GE(static_cast<int>(j.state()), v1::JOB_STATE_SUCCEEDED);
  }
}

// Row: wait(FIRST_COMPLETED) -- returns when any finishes; the others are
// pending and not cancelled.
TEST_F(ContractTest, WaitFirstCompletedReturnsWhenOneFinishes) {
  auto ids =
      SubmitOk({Spec("sleep", kForever), Sleep(0.05), Spec("sleep", kForever)});
  v1::WaitRequest req;
  for (auto id : ids) *req.add_jobs() = Input(id);
  req.set_return_when(v1::FIRST_COMPLETED);
  v1::WaitResponse resp;
  Stopwatch sw;
  ASSERT_TRUE(Wait(req, &resp).ok());
  EXPECT_LT(sw.Elapsed(), 1.5);
  EXPECT_THAT(resp.done(), ElementsAre(ids[1]));
  EXPECT_THAT(resp.pending(), ElementsAre(ids[0], ids[2]));
  for (const v1::Job& j : GetAll({ids[0], ids[2]})) {
    EXPECT_EQ(StateName(j.state()), "RUNNING");
    EXPECT_FALSE(j.cancel_requested());
  }
}

// Row: wait(FIRST_COMPLETED) -- "when any finishes or is cancelled".
TEST_F(ContractTest, WaitFirstCompletedCountsACancellation) {
  auto ids = SubmitOk({Spec("sleep", kForever), Spec("sleep", kForever)});
  v1::WaitRequest req;
  for (auto id : ids) *req.add_jobs() = Input(id);
  req.set_return_when(v1::FIRST_COMPLETED);
  InFlight<v1::WaitResponse> call;
  stub_->async()->Wait(call.ctx(), &req, call.response(), &call);
  call.StartCall();
  EXPECT_FALSE(call.Done(0.1));
  CancelOne(ids[1]);
  ASSERT_TRUE(call.Await().ok());
  EXPECT_THAT(call.response()->done(), ElementsAre(ids[1]));
  EXPECT_THAT(call.response()->pending(), ElementsAre(ids[0]));
}

// Row: wait(FIRST_EXCEPTION) -- returns when any raises.
TEST_F(ContractTest, WaitFirstExceptionReturnsAtTheFirstFailure) {
  auto ids = SubmitOk({Spec("sleep", kForever), Fail("OSError", "io", 0.1),
                       Spec("sleep", kForever)});
  v1::WaitRequest req;
  for (auto id : ids) *req.add_jobs() = Input(id);
  req.set_return_when(v1::FIRST_EXCEPTION);
  v1::WaitResponse resp;
  Stopwatch sw;
  ASSERT_TRUE(Wait(req, &resp).ok());
  EXPECT_LT(sw.Elapsed(), 1.5);
  EXPECT_THAT(resp.done(), ElementsAre(ids[1]));
  EXPECT_THAT(resp.pending(), ElementsAre(ids[0], ids[2]));
}

// Row: wait(FIRST_EXCEPTION) -- "if none raises, same as ALL_COMPLETED".
TEST_F(ContractTest, WaitFirstExceptionWithoutFailureWaitsForAll) {
  auto ids = SubmitOk({Sleep(0.05), Sleep(0.25)});
  v1::WaitRequest req;
  for (auto id : ids) *req.add_jobs() = Input(id);
  req.set_return_when(v1::FIRST_EXCEPTION);
  v1::WaitResponse resp;
  ASSERT_TRUE(Wait(req, &resp).ok());
  EXPECT_THAT(resp.done(), ElementsAreArray(ids));
  EXPECT_EQ(resp.pending_size(), 0);
}

// Row: wait(FIRST_EXCEPTION) -- a cancelled job did not raise an exception
// (asyncio skips cancelled futures), so it does not end the wait.
TEST_F(ContractTest, WaitFirstExceptionIgnoresACancelledJob) {
  auto ids = SubmitOk({Spec("sleep", kForever), Sleep(0.3, "last")});
  AwaitState(ids[0], v1::JOB_STATE_RUNNING);
  CancelOne(ids[0]);
  AwaitDone(ids[0]);
  v1::WaitRequest req;
  for (auto id : ids) *req.add_jobs() = Input(id);
  req.set_return_when(v1::FIRST_EXCEPTION);
  v1::WaitResponse resp;
  ASSERT_TRUE(Wait(req, &resp).ok());
  EXPECT_THAT(resp.done(), ElementsAreArray(ids));
  EXPECT_EQ(resp.pending_size(), 0);
}

// Row: wait(timeout=) -- never raises, never cancels: returns (done,
// pending) and the pending job is still running.
TEST_F(ContractTest, WaitTimeoutReturnsDoneAndPendingAndCancelsNothing) {
  auto ids =
      SubmitOk({Spec("echo", R"({"value": 1})"), Spec("sleep", kForever)});
  v1::WaitRequest req;
  for (auto id : ids) *req.add_jobs() = Input(id);
  *req.mutable_timeout() = Seconds(0.2);
  v1::WaitResponse resp;
  Stopwatch sw;
  grpc::Status s = Wait(req, &resp);
  ASSERT_TRUE(s.ok()) << CodeName(s.error_code()) << ": " << s.error_message();
  EXPECT_GE(sw.Elapsed(), 0.19);
  EXPECT_LT(sw.Elapsed(), 1.5);
  EXPECT_THAT(resp.done(), ElementsAre(ids[0]));
  EXPECT_THAT(resp.pending(), ElementsAre(ids[1]));
  v1::Job j = GetOk(ids[1]);
  EXPECT_EQ(StateName(j.state()), "RUNNING");
  EXPECT_FALSE(j.cancel_requested());
}

// Row: wait takes a set -- a job given twice is reported once.
TEST_F(ContractTest, WaitKeepsDuplicatesOnce) {
  auto ids = SubmitOk({Spec("echo", R"({"value": 1})"), Sleep(0.05)});
  v1::WaitRequest req;
  *req.add_jobs() = Input(ids[1]);
  *req.add_jobs() = Input(ids[0]);
  *req.add_jobs() = Input(ids[1]);
  v1::WaitResponse resp;
  ASSERT_TRUE(Wait(req, &resp).ok());
  EXPECT_THAT(resp.done(), ElementsAre(ids[1], ids[0]));
  EXPECT_EQ(resp.pending_size(), 0);
}

// Row: wait() of an empty set raises ValueError -> INVALID_ARGUMENT.
TEST_F(ContractTest, WaitWithNoJobsIsInvalidArgument) {
  v1::WaitRequest req;
  v1::WaitResponse resp;
  grpc::Status s = Wait(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << CodeName(s.error_code());
  EXPECT_THAT(s.error_message(), HasSubstr("jobs"));
}

// ===== wait_for ============================================================

// Row: wait_for(aw, timeout) -- the result when it finishes in time.
TEST_F(ContractTest, WaitForReturnsTheResult) {
  v1::WaitForResponse resp;
  grpc::Status s = WaitFor(Input(Sleep(0.05, "in time")), &resp, 5);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(StateName(resp.job().state()), "SUCCEEDED");
  EXPECT_EQ(resp.job().result().string_value(), "in time");
}

// Row: wait_for -- the job's exception propagates: ABORTED, with details.
TEST_F(ContractTest, WaitForFailedJobIsAbortedWithDetails) {
  auto ids = SubmitOk({Fail("ZeroDivisionError", "division by zero", 0.05)});
  v1::WaitForResponse resp;
  grpc::Status s = WaitFor(Input(ids[0]), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED)
      << CodeName(s.error_code());
  v1::ErrorDetails d = Details(s);
  EXPECT_EQ(d.job_id(), ids[0]);
  EXPECT_EQ(d.error().type(), "ZeroDivisionError");
  EXPECT_EQ(d.error().message(), "division by zero");
}

// Row: wait_for -- a job cancelled (by someone else) raises CancelledError
// at the awaiter: CANCELLED, with details.
TEST_F(ContractTest, WaitForJobCancelledElsewhereIsCancelled) {
  auto ids = SubmitOk({Spec("sleep", kForever)});
  v1::WaitForRequest req;
  *req.mutable_job() = Input(ids[0]);
  InFlight<v1::WaitForResponse> call;
  stub_->async()->WaitFor(call.ctx(), &req, call.response(), &call);
  call.StartCall();
  AwaitState(ids[0], v1::JOB_STATE_RUNNING);
  EXPECT_FALSE(call.Done(0.1));
  CancelOne(ids[0], "elsewhere");
  grpc::Status s = call.Await();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED)
      << CodeName(s.error_code());
  EXPECT_EQ(Details(s).error().type(), "CancelledError");
  EXPECT_EQ(Details(s).job_id(), ids[0]);
}

// Row: wait_for -- on timeout it cancels aw, waits until the cancellation
// has finished (the job is CANCELLED when the call returns), then raises
// TimeoutError (DEADLINE_EXCEEDED).
TEST_F(ContractTest, WaitForTimeoutCancelsAndWaitsForTheCancellation) {
  auto ids = SubmitOk({Spec("sleep", kForever)});
  v1::WaitForResponse resp;
  Stopwatch sw;
  grpc::Status s = WaitFor(Input(ids[0]), &resp, 0.1);
  EXPECT_LT(sw.Elapsed(), 1.5);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << CodeName(s.error_code());
  EXPECT_EQ(Details(s).error().type(), "TimeoutError");
  EXPECT_EQ(Details(s).job_id(), ids[0]);
  v1::Job j = GetOk(ids[0]);  // no wait: already done
  EXPECT_EQ(StateName(j.state()), "CANCELLED");
  EXPECT_EQ(j.error().type(), "CancelledError");
}

// Row: wait_for on a blocking (to_thread) job -- same rule: the job is
// CANCELLED by the time the call returns.
TEST_F(ContractTest, WaitForTimeoutCancelsABlockingJob) {
  auto ids = SubmitOk({Spec("blocking", kForever)});
  v1::WaitForResponse resp;
  Stopwatch sw;
  grpc::Status s = WaitFor(Input(ids[0]), &resp, 0.1);
  EXPECT_LT(sw.Elapsed(), 1.5);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << CodeName(s.error_code());
  EXPECT_EQ(StateName(GetOk(ids[0]).state()), "CANCELLED");
}

// Row: shield -- a wait_for timeout does not cancel a shielded job: the call
// still fails DEADLINE_EXCEEDED; the job runs on and succeeds.
TEST_F(ContractTest, WaitForTimeoutSparesAShieldedJob) {
  auto ids = SubmitOk({Shielded(Sleep(0.8, "survived"))});
  v1::WaitForResponse resp;
  grpc::Status s = WaitFor(Input(ids[0]), &resp, 0.1);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << CodeName(s.error_code());
  EXPECT_EQ(Details(s).error().type(), "TimeoutError");
  v1::Job j = GetOk(ids[0]);
  EXPECT_EQ(StateName(j.state()), "RUNNING");
  EXPECT_FALSE(j.cancel_requested());
  j = AwaitDone(ids[0]);
  EXPECT_EQ(StateName(j.state()), "SUCCEEDED");
  EXPECT_EQ(j.result().string_value(), "survived");
}

// Section 2: a client whose deadline passes ends only its own call; the job
// keeps running and succeeds (only WaitFor's own timeout cancels).
TEST_F(ContractTest, WaitForClientDeadlineEndsOnlyTheCall) {
  auto ids = SubmitOk({Sleep(0.8, "still ran")});
  v1::WaitForRequest req;
  *req.mutable_job() = Input(ids[0]);
  v1::WaitForResponse resp;
  grpc::Status s = stub_->WaitFor(Ctx(0.1).get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << CodeName(s.error_code());
  v1::Job j = GetOk(ids[0]);
  EXPECT_EQ(StateName(j.state()), "RUNNING");
  EXPECT_FALSE(j.cancel_requested());
  j = AwaitDone(ids[0]);
  EXPECT_EQ(StateName(j.state()), "SUCCEEDED");
  EXPECT_EQ(j.result().string_value(), "still ran");
}

// ===== as_completed ========================================================

// Row: as_completed -- first the ids in input order, then each job as it
// completes (completion order), then the stream ends OK.
TEST_F(ContractTest, AsCompletedYieldsInCompletionOrder) {
  v1::AsCompletedRequest req;
  *req.add_jobs() = Input(Sleep(0.3, "0"));
  *req.add_jobs() = Input(Sleep(0.1, "1"));
  *req.add_jobs() = Input(Sleep(0.2, "2"));
  StreamCollector<v1::AsCompletedResponse> stream(
      [&](grpc::ClientContext* c) { return stub_->AsCompleted(c, req); });
  ASSERT_TRUE(stream.WaitDone(10));
  ASSERT_TRUE(stream.status().ok()) << stream.status().error_message();
  auto msgs = stream.messages();
  ASSERT_EQ(msgs.size(), 4u);
  ASSERT_EQ(msgs[0].ids_size(), 3);
  EXPECT_FALSE(msgs[0].has_job());
  std::vector<std::uint32_t> order;
  for (std::size_t i = 1; i < msgs.size(); ++i) {
    order.push_back(msgs[i].index());
    EXPECT_EQ(msgs[i].job().id(), msgs[0].ids(msgs[i].index()));
    EXPECT_EQ(StateName(msgs[i].job().state()), "SUCCEEDED");
    EXPECT_EQ(msgs[i].job().result().string_value(),
              std::to_string(msgs[i].index()));
  }
  EXPECT_THAT(order, ElementsAre(1u, 2u, 0u));
}

// Row: section 3 -- failures and cancellations are items of as_completed,
// distinguishable by state and error type.
TEST_F(ContractTest, AsCompletedYieldsFailedAndCancelledJobsAsItems) {
  auto victim = SubmitOk({Spec("sleep", kForever)});
  AwaitState(victim[0], v1::JOB_STATE_RUNNING);
  CancelOne(victim[0], "gone");
  v1::AsCompletedRequest req;
  *req.add_jobs() = Input(victim[0]);
  *req.add_jobs() = Input(Fail("TypeError", "t", 0.05));
  StreamCollector<v1::AsCompletedResponse> stream(
      [&](grpc::ClientContext* c) { return stub_->AsCompleted(c, req); });
  ASSERT_TRUE(stream.WaitDone(10));
  ASSERT_TRUE(stream.status().ok()) << stream.status().error_message();
  auto msgs = stream.messages();
  ASSERT_EQ(msgs.size(), 3u);
  EXPECT_EQ(msgs[1].index(), 0u);
  EXPECT_EQ(StateName(msgs[1].job().state()), "CANCELLED");
  EXPECT_EQ(msgs[1].job().error().type(), "CancelledError");
  EXPECT_EQ(msgs[2].index(), 1u);
  EXPECT_EQ(StateName(msgs[2].job().state()), "FAILED");
  EXPECT_EQ(msgs[2].job().error().type(), "TypeError");
}

// Row: as_completed(timeout=) -- on timeout the stream ends with
// DEADLINE_EXCEEDED (TimeoutError) and the remaining jobs are not cancelled.
TEST_F(ContractTest, AsCompletedTimeoutEndsTheStreamAndCancelsNothing) {
  v1::AsCompletedRequest req;
  *req.add_jobs() = Input(Spec("sleep", kForever));
  *req.add_jobs() = Input(Spec("echo", R"({"value": "quick"})"));
  *req.mutable_timeout() = Seconds(0.2);
  StreamCollector<v1::AsCompletedResponse> stream(
      [&](grpc::ClientContext* c) { return stub_->AsCompleted(c, req); });
  ASSERT_TRUE(stream.WaitDone(10));
  EXPECT_EQ(stream.status().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << CodeName(stream.status().error_code());
  auto msgs = stream.messages();
  ASSERT_EQ(msgs.size(), 2u);
  ASSERT_EQ(msgs[0].ids_size(), 2);
  EXPECT_EQ(msgs[1].index(), 1u);
  v1::Job slow = GetOk(msgs[0].ids(0));
  EXPECT_EQ(StateName(slow.state()), "RUNNING");
  EXPECT_FALSE(slow.cancel_requested());
}

// ===== TaskGroup (RunGroup) ================================================

// Row: TaskGroup -- waits for all its tasks; results in input order.
TEST_F(ContractTest, RunGroupReturnsAllResultsOnSuccess) {
  v1::RunGroupRequest req;
  *req.add_jobs() = Sleep(0.2, "slow");
  *req.add_jobs() = Spec("echo", R"({"value": "fast"})");
  v1::RunGroupResponse resp;
  grpc::Status s = RunGroup(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.results_size(), 2);
  EXPECT_EQ(resp.results(0).result().string_value(), "slow");
  EXPECT_EQ(resp.results(1).result().string_value(), "fast");
  for (const v1::Job& j : resp.results()) {
    EXPECT_EQ(StateName(j.state()), "SUCCEEDED");
    EXPECT_EQ(j.group_id(), resp.group_id());
  }
  v1::Job g = GetOk(resp.group_id());
  EXPECT_EQ(StateName(g.state()), "SUCCEEDED");
  EXPECT_EQ(g.kind(), "group");
}

// Row: TaskGroup -- the first failure cancels all remaining tasks; the
// failure is raised as an ExceptionGroup (ABORTED; details list it).
TEST_F(ContractTest, RunGroupFirstFailureCancelsTheSiblings) {
  v1::RunGroupRequest req;
  *req.add_jobs() = Spec("sleep", kForever);
  *req.add_jobs() = Fail("ValueError", "first", 0.05);
  *req.add_jobs() = Spec("blocking", kForever);
  v1::RunGroupResponse resp;
  auto ctx = Ctx();
  Stopwatch sw;
  grpc::Status s = stub_->RunGroup(ctx.get(), req, &resp);
  EXPECT_LT(sw.Elapsed(), 1.5);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::ABORTED)
      << CodeName(s.error_code()) << ": " << s.error_message();
  v1::ErrorDetails d = Details(s);
  EXPECT_EQ(d.error().type(), "ExceptionGroup");
  ASSERT_EQ(d.failures_size(), 1);
  EXPECT_EQ(d.failures(0).error().type(), "ValueError");
  EXPECT_EQ(d.failures(0).error().message(), "first");
  const std::uint64_t group = GroupIdOf(*ctx);
  ASSERT_NE(group, 0u);
  EXPECT_EQ(d.job_id(), group);  // "a group for RunGroup"
  v1::Job g = GetOk(group);
  EXPECT_EQ(StateName(g.state()), "FAILED");
  EXPECT_EQ(g.error().type(), "ExceptionGroup");
  ASSERT_EQ(g.children_size(), 3);
  EXPECT_EQ(d.failures(0).job_id(), g.children(1));
  auto kids = GetAll({g.children(0), g.children(2)});
  for (const v1::Job& k : kids) {
    EXPECT_EQ(StateName(k.state()), "CANCELLED") << k.kind();
    EXPECT_EQ(k.error().type(), "CancelledError");
  }
}

// Row: TaskGroup -- all the failures are raised together: children that
// fail at once, before the group could cancel them, are all members of the
// ExceptionGroup. asyncio runs every task's first step before the first
// done-callback, so tg.create_task(fail()) x 8 always raises 8 exceptions.
TEST_F(ContractTest, RunGroupReportsEveryFailure) {
  constexpr int kFailing = 8;
  v1::RunGroupRequest req;
  for (int i = 0; i < kFailing; ++i) {
    *req.add_jobs() = Fail("ValueError", "failure " + std::to_string(i));
  }
  *req.add_jobs() = Spec("sleep", kForever);
  v1::RunGroupResponse resp;
  grpc::Status s = RunGroup(req, &resp);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::ABORTED)
      << CodeName(s.error_code()) << ": " << s.error_message();
  v1::ErrorDetails d = Details(s);
  EXPECT_EQ(d.error().type(), "ExceptionGroup");
  std::set<std::string> messages;
  for (const auto& f : d.failures()) {
    EXPECT_EQ(f.error().type(), "ValueError");
    EXPECT_NE(f.job_id(), 0u);
    EXPECT_THAT(f.job_name(), StartsWith("Job-"));
    messages.insert(f.error().message());
  }
  EXPECT_EQ(d.failures_size(), kFailing)
      << "siblings that failed at once were cancelled by the first failure "
         "instead of being reported";
  EXPECT_EQ(messages.size(), static_cast<std::size_t>(d.failures_size()));
}

// Row: TaskGroup + shield -- a sibling's failure never cancels a shielded
// job: it runs to the end.
TEST_F(ContractTest, RunGroupFailureSparesAShieldedSibling) {
  v1::RunGroupRequest req;
  *req.add_jobs() = Shielded(Sleep(0.3, "kept"));
  *req.add_jobs() = Fail("ValueError", "boom", 0.05);
  v1::RunGroupResponse resp;
  auto ctx = Ctx();
  grpc::Status s = stub_->RunGroup(ctx.get(), req, &resp);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::ABORTED)
      << CodeName(s.error_code());
  EXPECT_EQ(Details(s).failures_size(), 1);
  v1::Job g = GetOk(Details(s).job_id());
  ASSERT_EQ(g.children_size(), 2);
  v1::Job kept = AwaitDone(g.children(0));
  EXPECT_EQ(StateName(kept.state()), "SUCCEEDED");
  EXPECT_EQ(kept.result().string_value(), "kept");
  EXPECT_FALSE(kept.cancel_requested());
}

// Row: TaskGroup + shield -- asyncio's TaskGroup holds the shield()
// wrapper, which a sibling's failure cancels at once: the group raises
// without waiting for the shielded job, which runs on.
TEST_F(ContractTest, RunGroupFailureDoesNotWaitForAShieldedSibling) {
  v1::RunGroupRequest req;
  *req.add_jobs() = Shielded(Sleep(1.5, "kept"));
  *req.add_jobs() = Fail("ValueError", "boom", 0.05);
  v1::RunGroupResponse resp;
  Stopwatch sw;
  grpc::Status s = RunGroup(req, &resp);
  EXPECT_LT(sw.Elapsed(), 1.0);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::ABORTED)
      << CodeName(s.error_code());
  v1::Job g = GetOk(Details(s).job_id());
  ASSERT_EQ(g.children_size(), 2);
  v1::Job kept = GetOk(g.children(0));
  EXPECT_EQ(StateName(kept.state()), "RUNNING");
  EXPECT_FALSE(kept.cancel_requested());
}

// Row: TaskGroup cancelled (section 2: cancelling a group job cancels its
// children) -- Cancel(group id) cancels every child; the call is CANCELLED.
TEST_F(ContractTest, CancelRunGroupCancelsItsChildren) {
  v1::RunGroupRequest req;
  *req.add_jobs() = Spec("sleep", kForever);
  *req.add_jobs() = Spec("blocking", kForever);
  InFlight<v1::RunGroupResponse> call;
  stub_->async()->RunGroup(call.ctx(), &req, call.response(), &call);
  call.StartCall();
  const std::uint64_t group = call.MetadataId("awaitd-group-id");
  ASSERT_NE(group, 0u);
  EXPECT_TRUE(CancelOne(group, "group cancelled").cancelled());
  grpc::Status s = call.Await();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED)
      << CodeName(s.error_code()) << ": " << s.error_message();
  v1::Job g = AwaitDone(group);
  EXPECT_EQ(StateName(g.state()), "CANCELLED");
  ASSERT_EQ(g.children_size(), 2);
  for (const v1::Job& k : GetAll({g.children(0), g.children(1)})) {
    EXPECT_EQ(StateName(k.state()), "CANCELLED") << k.kind();
    EXPECT_EQ(k.error().message(), "group cancelled");
  }
}

// ===== shield ==============================================================

// Row: shield -- cancelling the shielded job itself still cancels it.
TEST_F(ContractTest, CancelOnAShieldedJobsOwnIdCancelsIt) {
  auto ids = SubmitOk({Shielded(Spec("sleep", kForever))});
  AwaitState(ids[0], v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(CancelOne(ids[0], "direct").cancelled());
  v1::Job j = AwaitDone(ids[0]);
  EXPECT_EQ(StateName(j.state()), "CANCELLED");
  EXPECT_TRUE(j.shield());
  EXPECT_EQ(j.error().message(), "direct");
}

// ===== Semaphore (concurrency limits) ======================================

class ContractLimitsTest : public ContractTest {
 protected:
  ContractLimitsTest() { start_in_setup_ = false; }
  void SetUp() override {
    DaemonOptions o = DefaultOptions();
    o.limits = {"db:2"};
    StartDaemon(std::move(o));
  }
};

// Row: Semaphore(n) -- at most n holders: 6 jobs behind db:2 never run more
// than 2 at a time (holders polled; started_at waves agree), all succeed.
TEST_F(ContractLimitsTest, AtMostNHoldersRunAtOnce) {
  LimitPoller poller(stub_.get(), "db");
  std::vector<v1::JobSpec> specs(6, Limited(Sleep(0.2), "db"));
  Stopwatch sw;
  auto ids = SubmitOk(specs);
  AwaitAll(ids);
  const double elapsed = sw.Elapsed();
  poller.Stop();
  EXPECT_GT(poller.polls(), 0);
  EXPECT_EQ(poller.max_holders(), 2u);
  EXPECT_GE(poller.max_waiters(), 1u);
  EXPECT_GE(elapsed, 0.58);  // three waves of 0.2 s
  auto jobs = GetAll(ids);
  std::vector<double> starts;
  for (const v1::Job& j : jobs) {
    EXPECT_EQ(StateName(j.state()), "SUCCEEDED");
    starts.push_back(Secs(j.started_at()));
  }
  std::sort(starts.begin(), starts.end());
  // Any three starts span at least one sleep: a third holder had to wait.
  for (std::size_t i = 2; i < starts.size(); ++i) {
    EXPECT_GE(starts[i] - starts[i - 2], 0.19) << "start #" << i;
  }
  v1::Limit l = GetLimit("db");
  EXPECT_EQ(l.holders(), 0u);
  EXPECT_EQ(l.waiters(), 0u);
}

// Row: Semaphore -- waiters are served first in, first out: jobs that start
// waiting one after another get the permit in that order.
TEST_F(ContractLimitsTest, WaitersAreServedFirstInFirstOut) {
  v1::DeclareLimitRequest declare;
  declare.set_name("one");
  declare.set_permits(1);
  v1::DeclareLimitResponse declared;
  ASSERT_TRUE(stub_->DeclareLimit(Ctx().get(), declare, &declared).ok());
  auto holder = SubmitOk({Limited(Spec("sleep", kForever), "one")});
  AwaitState(holder[0], v1::JOB_STATE_RUNNING);
  std::vector<std::uint64_t> waiters;
  for (std::uint32_t i = 0; i < 4; ++i) {
    waiters.push_back(SubmitOk({Limited(Sleep(0.02), "one")})[0]);
    // The next one only once this one is queued.
    Stopwatch sw;
    while (GetLimit("one").waiters() < i + 1 && sw.Elapsed() < 5) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_EQ(GetLimit("one").waiters(), i + 1);
  }
  CancelOne(holder[0]);
  AwaitAll(waiters);
  auto jobs = GetAll(waiters);
  for (std::size_t i = 1; i < jobs.size(); ++i) {
    EXPECT_LT(Secs(jobs[i - 1].started_at()), Secs(jobs[i].started_at()))
        << "waiter " << i - 1 << " started after waiter " << i;
  }
}

// Row: Semaphore FIFO, applied to one batch: jobs submitted in one call
// acquire a limit in submit order (asyncio: tasks created in order start in
// order, so gather(*(fetch(u) for u in urls)) under a Semaphore serves the
// urls in order). With 1 permit, started_at gives the acquisition order
// exactly. The daemon acquires limits inside each job's own task, so the
// order is whichever worker reaches the semaphore first: an inversion shows
// in only some batches (none on 1 CPU), hence several rounds.
//
// KNOWN DEVIATION, disabled until fixed: limits are taken inside each job's
// task, so within one batch the order is whichever worker reaches the
// semaphore first (waiters already queued are served FIFO:
// WaitersAreServedFirstInFirstOut). The fix is to take each job's place in
// the limit's queue at Submit time, in id order.
TEST_F(ContractLimitsTest, DISABLED_OneBatchAcquiresTheLimitInSubmitOrder) {
  v1::DeclareLimitRequest declare;
  declare.set_name("one");
  declare.set_permits(1);
  v1::DeclareLimitResponse declared;
  ASSERT_TRUE(stub_->DeclareLimit(Ctx().get(), declare, &declared).ok());
  for (int round = 0; round < 15; ++round) {
    std::vector<v1::JobSpec> specs(100, Limited(Sleep(0.001), "one"));
    auto ids = SubmitOk(specs);
    AwaitAll(ids);
    auto jobs = GetAll(ids);
    std::vector<std::size_t> by_start(ids.size());
    for (std::size_t i = 0; i < by_start.size(); ++i) by_start[i] = i;
    std::stable_sort(
        by_start.begin(), by_start.end(), [&](std::size_t a, std::size_t b) {
          return Secs(jobs[a].started_at()) < Secs(jobs[b].started_at());
        });
    std::vector<std::size_t> submit_order(ids.size());
    for (std::size_t i = 0; i < submit_order.size(); ++i) submit_order[i] = i;
    ASSERT_EQ(by_start, submit_order)
        << "round " << round << ": jobs started out of submit order";
  }
}

// Row: DeclareLimit, then use it: a limit of 1 serializes its jobs.
TEST_F(ContractLimitsTest, DeclareLimitThenUseIt) {
  v1::DeclareLimitRequest req;
  req.set_name("api");
  req.set_permits(1);
  v1::DeclareLimitResponse resp;
  grpc::Status s = stub_->DeclareLimit(Ctx().get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.limit().name(), "api");
  EXPECT_EQ(resp.limit().permits(), 1u);
  EXPECT_EQ(resp.limit().holders(), 0u);
  auto ids = SubmitOk(
      {Limited(Sleep(0.15, "a"), "api"), Limited(Sleep(0.15, "b"), "api")});
  AwaitAll(ids);
  auto jobs = GetAll(ids);
  const double gap =
      std::abs(Secs(jobs[1].started_at()) - Secs(jobs[0].started_at()));
  EXPECT_GE(gap, 0.14);
  EXPECT_THAT(jobs[0].limits(), ElementsAre("api"));
}

// Row: DeclareLimit -- the same name and size again is a no-op.
TEST_F(ContractLimitsTest, DeclareLimitWithTheSameSizeIsANoOp) {
  v1::DeclareLimitRequest req;
  req.set_name("db");
  req.set_permits(2);
  v1::DeclareLimitResponse resp;
  grpc::Status s = stub_->DeclareLimit(Ctx().get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.limit().permits(), 2u);
  v1::ListLimitsResponse list;
  ASSERT_TRUE(
      stub_->ListLimits(Ctx().get(), v1::ListLimitsRequest(), &list).ok());
  ASSERT_EQ(list.limits_size(), 1);
  EXPECT_EQ(list.limits(0).name(), "db");
}

// Row: DeclareLimit -- another size for an existing name is
// FAILED_PRECONDITION, and the limit is unchanged.
TEST_F(ContractLimitsTest, DeclareLimitWithAnotherSizeFailsPrecondition) {
  v1::DeclareLimitRequest req;
  req.set_name("db");
  req.set_permits(3);
  v1::DeclareLimitResponse resp;
  grpc::Status s = stub_->DeclareLimit(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << CodeName(s.error_code());
  EXPECT_EQ(GetLimit("db").permits(), 2u);
}

// Row: limits -- naming an undeclared limit is INVALID_ARGUMENT naming the
// field, and nothing is created.
TEST_F(ContractLimitsTest, UnknownLimitInASpecIsInvalidArgument) {
  v1::SubmitResponse resp;
  grpc::Status s = Submit({Limited(Sleep(0.01), "nope")}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << CodeName(s.error_code());
  EXPECT_THAT(s.error_message(), StartsWith("jobs[0].limits[0]"));
  EXPECT_THAT(s.error_message(), HasSubstr("nope"));
  EXPECT_TRUE(ListAll().empty());
}

// Row: limits -- a job waiting for a permit is PENDING; cancelling it works
// (it never runs) and leaks no permit.
TEST_F(ContractLimitsTest, JobWaitingForALimitIsPendingAndCancellable) {
  auto holders = SubmitOk({Limited(Spec("sleep", kForever), "db"),
                           Limited(Spec("sleep", kForever), "db")});
  // Jobs queue for a limit in the order they reach it, which for jobs of
  // different submissions is not always the order they were submitted in
  // (each starts on whichever event loop is free): the holders must hold
  // before the waiter comes.
  for (auto id : holders) AwaitState(id, v1::JOB_STATE_RUNNING);
  auto waiter = SubmitOk({Limited(Sleep(0.01), "db")});
  Stopwatch sw;
  while (GetLimit("db").waiters() < 1 && sw.Elapsed() < 5) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  v1::Job w = GetOk(waiter[0]);
  EXPECT_EQ(StateName(w.state()), "PENDING");
  EXPECT_EQ(GetLimit("db").holders(), 2u);
  EXPECT_TRUE(CancelOne(waiter[0], "gave up").cancelled());
  w = AwaitDone(waiter[0]);
  EXPECT_EQ(StateName(w.state()), "CANCELLED");
  EXPECT_EQ(w.error().message(), "gave up");
  EXPECT_FALSE(w.has_started_at());
  EXPECT_EQ(GetLimit("db").waiters(), 0u);
  EXPECT_EQ(GetLimit("db").holders(), 2u);
  // Cancelled holders give their permits back too: two new jobs both run.
  for (auto id : holders) CancelOne(id);
  AwaitAll(holders);
  auto after = SubmitOk({Limited(Spec("sleep", kForever), "db"),
                         Limited(Spec("sleep", kForever), "db")});
  for (auto id : after) {
    EXPECT_EQ(StateName(AwaitState(id, v1::JOB_STATE_RUNNING).state()),
              "RUNNING");
  }
  for (auto id : after) CancelOne(id);
  AwaitAll(after);
  v1::Limit l = GetLimit("db");
  EXPECT_EQ(l.holders(), 0u);
  EXPECT_EQ(l.waiters(), 0u);
}

// Row: JobSpec.timeout is counted from when the job starts running: time
// spent waiting for a limit does not count against it.
TEST_F(ContractLimitsTest, OwnTimeoutDoesNotCountTheWaitForALimit) {
  auto holders = SubmitOk({Limited(Spec("sleep", kForever), "db"),
                           Limited(Spec("sleep", kForever), "db")});
  for (auto id : holders) AwaitState(id, v1::JOB_STATE_RUNNING);
  v1::JobSpec spec = Limited(Sleep(0.05, "made it"), "db");
  *spec.mutable_timeout() = Seconds(0.2);
  auto waiter = SubmitOk({spec});
  // Keep it waiting longer than its timeout (a Wait that times out).
  v1::WaitRequest req;
  *req.add_jobs() = Input(waiter[0]);
  *req.mutable_timeout() = Seconds(0.3);
  v1::WaitResponse resp;
  ASSERT_TRUE(stub_->Wait(Ctx().get(), req, &resp).ok());
  EXPECT_THAT(resp.pending(), ElementsAre(waiter[0]));
  EXPECT_EQ(StateName(GetOk(waiter[0]).state()), "PENDING");
  CancelOne(holders[0]);
  v1::Job j = AwaitDone(waiter[0]);
  EXPECT_EQ(StateName(j.state()), "SUCCEEDED") << j.error().type();
  EXPECT_EQ(j.result().string_value(), "made it");
}

// ===== call_later / call_at (delay, start_at) ==============================

// Row: call_later(delay) -- the job is PENDING until created + delay.
TEST_F(ContractTest, DelayedJobIsPendingThenStartsAfterTheDelay) {
  auto ids = SubmitOk({Delayed(Spec("echo", R"({"value": 1})"), 0.3)});
  v1::Job j = GetOk(ids[0]);
  EXPECT_EQ(StateName(j.state()), "PENDING");
  EXPECT_NEAR(Secs(j.scheduled_at()) - Secs(j.created_at()), 0.3, 0.001);
  j = AwaitDone(ids[0]);
  EXPECT_EQ(StateName(j.state()), "SUCCEEDED");
  EXPECT_GE(Secs(j.started_at()), Secs(j.created_at()) + 0.299);
}

// Row: call_at(when) -- a start time in the past runs at once.
TEST_F(ContractTest, StartAtInThePastRunsAtOnce) {
  v1::JobSpec spec = Spec("echo", R"({"value": "now"})");
  *spec.mutable_start_at() = TimestampAt(WallNow() - 3600);
  auto ids = SubmitOk({spec});
  Stopwatch sw;
  v1::Job j = AwaitDone(ids[0]);
  EXPECT_LT(sw.Elapsed(), 1.0);
  EXPECT_EQ(StateName(j.state()), "SUCCEEDED");
  EXPECT_LT(Secs(j.started_at()) - Secs(j.created_at()), 0.5);
}

// Row: call_at(when) -- a start time ahead is waited for.
TEST_F(ContractTest, StartAtInTheFutureWaitsForIt) {
  const double when = WallNow() + 0.3;
  v1::JobSpec spec = Spec("echo", R"({"value": "later"})");
  *spec.mutable_start_at() = TimestampAt(when);
  auto ids = SubmitOk({spec});
  EXPECT_EQ(StateName(GetOk(ids[0]).state()), "PENDING");
  v1::Job j = AwaitDone(ids[0]);
  EXPECT_EQ(StateName(j.state()), "SUCCEEDED");
  EXPECT_GE(Secs(j.started_at()), when - 0.001);
}

// Row: call_later -- the handle can be cancelled before it fires: the job
// goes PENDING -> CANCELLED and is never RUNNING (seen by a Watch).
TEST_F(ContractTest, DelayedJobCancelledBeforeItFiresIsNeverRunning) {
  auto ids = SubmitOk({Delayed(Spec("echo", R"({"value": 1})"), 0.5)});
  v1::WatchRequest wreq;
  wreq.add_ids(ids[0]);
  StreamCollector<v1::WatchResponse> watch(
      [&](grpc::ClientContext* c) { return stub_->Watch(c, wreq); });
  ASSERT_TRUE(watch.WaitUntil([](const auto& m) { return !m.empty(); }));
  EXPECT_TRUE(CancelOne(ids[0]).cancelled());
  ASSERT_TRUE(watch.WaitDone(10));
  std::vector<std::string> states;
  for (const auto& m : watch.messages()) states.push_back(StateName(m.state()));
  EXPECT_THAT(states, ElementsAre("PENDING", "CANCELLED"));
  // And it stays that way past its start time (a probe with the same delay,
  // submitted later, has run by then).
  auto probe = SubmitOk({Delayed(Spec("echo", R"({"value": 2})"), 0.5)});
  EXPECT_EQ(StateName(AwaitDone(probe[0]).state()), "SUCCEEDED");
  v1::Job j = GetOk(ids[0]);
  EXPECT_EQ(StateName(j.state()), "CANCELLED");
  EXPECT_FALSE(j.has_started_at());
}

// ===== add_done_callback (Watch) ===========================================

// Row: add_done_callback -- Watch by ids: the current state first, then each
// change, then the stream ends OK once all are done.
TEST_F(ContractTest, WatchByIdsStreamsStatesThenEnds) {
  auto ids = SubmitOk({Delayed(Sleep(0.1, "w"), 0.3)});
  v1::WatchRequest req;
  req.add_ids(ids[0]);
  StreamCollector<v1::WatchResponse> watch(
      [&](grpc::ClientContext* c) { return stub_->Watch(c, req); });
  ASSERT_TRUE(watch.WaitDone(10));
  EXPECT_TRUE(watch.status().ok()) << watch.status().error_message();
  auto msgs = watch.messages();
  ASSERT_EQ(msgs.size(), 3u);
  EXPECT_EQ(StateName(msgs[0].state()), "PENDING");
  EXPECT_EQ(StateName(msgs[1].state()), "RUNNING");
  EXPECT_EQ(StateName(msgs[2].state()), "SUCCEEDED");
  for (const auto& m : msgs) {
    EXPECT_EQ(m.id(), ids[0]);
    EXPECT_EQ(m.name(), "Job-1");
    EXPECT_EQ(m.kind(), "sleep");
  }
  v1::Job j = GetOk(ids[0]);
  EXPECT_DOUBLE_EQ(Secs(msgs[2].time()), Secs(j.finished_at()));
}

// Row: add_done_callback runs also if the task is already done: the final
// state at once, then the end.
TEST_F(ContractTest, WatchOfADoneJobSendsItsFinalStateAndEnds) {
  auto ids = SubmitOk({Fail("RuntimeError", "already")});
  AwaitDone(ids[0]);
  v1::WatchRequest req;
  req.add_ids(ids[0]);
  StreamCollector<v1::WatchResponse> watch(
      [&](grpc::ClientContext* c) { return stub_->Watch(c, req); });
  ASSERT_TRUE(watch.WaitDone(10));
  EXPECT_TRUE(watch.status().ok()) << watch.status().error_message();
  auto msgs = watch.messages();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(StateName(msgs[0].state()), "FAILED");
  EXPECT_EQ(msgs[0].error().type(), "RuntimeError");
  EXPECT_EQ(msgs[0].error().message(), "already");
}

// Row: Watch -- an unknown id is NOT_FOUND.
TEST_F(ContractTest, WatchOfAnUnknownIdIsNotFound) {
  v1::WatchRequest req;
  req.add_ids(31337);
  StreamCollector<v1::WatchResponse> watch(
      [&](grpc::ClientContext* c) { return stub_->Watch(c, req); });
  ASSERT_TRUE(watch.WaitDone(10));
  EXPECT_EQ(watch.status().error_code(), grpc::StatusCode::NOT_FOUND)
      << CodeName(watch.status().error_code());
  EXPECT_TRUE(watch.messages().empty());
}

// Row: Watch with no ids -- every job from now on: a job submitted after the
// stream started is seen PENDING, RUNNING, SUCCEEDED. (The stream gives no
// sign when it is subscribed, so probe jobs are submitted until one shows.)
TEST_F(ContractTest, WatchAllSeesAJobSubmittedAfterItStarted) {
  StreamCollector<v1::WatchResponse> watch([&](grpc::ClientContext* c) {
    return stub_->Watch(c, v1::WatchRequest());
  });
  Stopwatch sw;
  bool subscribed = false;
  while (!subscribed && sw.Elapsed() < 5) {
    SubmitOk({Named(Spec("echo", R"({"value": 0})"), "probe")});
    subscribed =
        watch.WaitUntil([](const auto& m) { return !m.empty(); }, 0.05);
  }
  ASSERT_TRUE(subscribed);
  auto ids = SubmitOk({Named(Sleep(0.05, "seen"), "target")});
  auto target_states = [&](const auto& msgs) {
    std::vector<std::string> s;
    for (const auto& m : msgs) {
      if (m.id() == ids[0]) s.push_back(StateName(m.state()));
    }
    return s;
  };
  ASSERT_TRUE(watch.WaitUntil(
      [&](const auto& m) { return target_states(m).size() >= 3; }, 10));
  EXPECT_THAT(target_states(watch.messages()),
              ElementsAre("PENDING", "RUNNING", "SUCCEEDED"));
  EXPECT_FALSE(watch.done());  // it runs until the client leaves
  watch.Cancel();
  ASSERT_TRUE(watch.WaitDone(10));
  EXPECT_EQ(watch.status().error_code(), grpc::StatusCode::CANCELLED)
      << CodeName(watch.status().error_code());
}

// Row: Watch with no ids -- the stream's initial metadata means it is
// subscribed: a job submitted right after it arrived is always reported.
// Repeated, because a missed subscription is a race.
TEST_F(ContractTest, WatchAllIsSubscribedOnceItsInitialMetadataArrives) {
  for (int round = 0; round < 10; ++round) {
    auto ctx = Ctx(10);
    auto reader = stub_->Watch(ctx.get(), v1::WatchRequest());
    reader->WaitForInitialMetadata();
    auto ids = SubmitOk({Named(Sleep(0.001, "seen"), "target")});
    std::vector<std::string> states;
    v1::WatchResponse r;
    while (states.size() < 3 && reader->Read(&r)) {
      if (r.id() == ids[0]) states.push_back(StateName(r.state()));
    }
    EXPECT_THAT(states, ElementsAre("PENDING", "RUNNING", "SUCCEEDED"))
        << "round " << round;
    ctx->TryCancel();
    (void)reader->Finish();
  }
}

// ===== all_tasks (List) ====================================================

// Row: all_tasks -- List filters by state.
TEST_F(ContractTest, ListFiltersByState) {
  auto done = SubmitOk(
      {Spec("echo", R"({"value": 1})"), Spec("echo", R"({"value": 2})")});
  auto failed = SubmitOk({Fail("ValueError", "x")});
  auto running = SubmitOk({Spec("sleep", kForever)});
  AwaitAll({done[0], done[1], failed[0]});
  AwaitState(running[0], v1::JOB_STATE_RUNNING);
  auto ids = [](const std::vector<v1::Job>& jobs) {
    std::vector<std::uint64_t> out;
    for (const auto& j : jobs) out.push_back(j.id());
    return out;
  };
  EXPECT_THAT(ids(ListAll(v1::JOB_STATE_SUCCEEDED)), ElementsAreArray(done));
  EXPECT_THAT(ids(ListAll(v1::JOB_STATE_FAILED)), ElementsAreArray(failed));
  EXPECT_THAT(ids(ListAll(v1::JOB_STATE_RUNNING)), ElementsAreArray(running));
  EXPECT_TRUE(ListAll(v1::JOB_STATE_CANCELLED).empty());
  EXPECT_EQ(ListAll().size(), 4u);
}

// Row: all_tasks -- List filters by kind and by name prefix.
TEST_F(ContractTest, ListFiltersByKindAndNamePrefix) {
  auto a = SubmitOk({Named(Spec("echo", R"({"value": 1})"), "fetch-1"),
                     Named(Sleep(0.01), "fetch-2"),
                     Named(Spec("echo", R"({"value": 3})"), "store-1")});
  AwaitAll(a);
  auto names = [](const std::vector<v1::Job>& jobs) {
    std::vector<std::string> out;
    for (const auto& j : jobs) out.push_back(j.name());
    return out;
  };
  EXPECT_THAT(names(ListAll(v1::JOB_STATE_UNSPECIFIED, "echo")),
              ElementsAre("fetch-1", "store-1"));
  EXPECT_THAT(names(ListAll(v1::JOB_STATE_UNSPECIFIED, "", "fetch-")),
              ElementsAre("fetch-1", "fetch-2"));
  EXPECT_THAT(names(ListAll(v1::JOB_STATE_UNSPECIFIED, "echo", "fetch-")),
              ElementsAre("fetch-1"));
  EXPECT_TRUE(ListAll(v1::JOB_STATE_UNSPECIFIED, "hash").empty());
}

// Row: all_tasks -- pages: page_size and next_page_token cover every job
// exactly once, by increasing id; the last page has no token.
TEST_F(ContractTest, ListPagesCoverEveryJobExactlyOnce) {
  std::vector<v1::JobSpec> specs;
  for (int i = 0; i < 25; ++i) {
    specs.push_back(i % 3 == 0 ? Spec("echo", R"({"value": 0})") : Sleep(0.01));
  }
  auto ids = SubmitOk(specs);
  AwaitAll(ids);
  std::vector<std::uint64_t> seen;
  std::string token;
  int pages = 0;
  do {
    v1::ListRequest req;
    req.set_page_size(7);
    req.set_page_token(token);
    v1::ListResponse resp;
    ASSERT_TRUE(stub_->List(Ctx().get(), req, &resp).ok());
    EXPECT_LE(resp.jobs_size(), 7);
    for (const auto& j : resp.jobs()) seen.push_back(j.id());
    token = resp.next_page_token();
    ASSERT_LT(++pages, 20);
  } while (!token.empty());
  EXPECT_EQ(pages, 4);
  EXPECT_THAT(seen, ElementsAreArray(ids));
  // With a filter as well.
  std::vector<std::uint64_t> echo_ids;
  for (std::size_t i = 0; i < ids.size(); i += 3) echo_ids.push_back(ids[i]);
  std::vector<std::uint64_t> echo_seen;
  for (const auto& j : ListAll(v1::JOB_STATE_UNSPECIFIED, "echo", "", 2)) {
    echo_seen.push_back(j.id());
  }
  EXPECT_THAT(echo_seen, ElementsAreArray(echo_ids));
}

// Row: List -- a malformed page_token is INVALID_ARGUMENT naming it.
TEST_F(ContractTest, ListWithABadPageTokenIsInvalidArgument) {
  v1::ListRequest req;
  req.set_page_token("not-a-token");
  v1::ListResponse resp;
  grpc::Status s = stub_->List(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << CodeName(s.error_code());
  EXPECT_THAT(s.error_message(), HasSubstr("page_token"));
}

// ===== retention: a forgotten job is freed =================================

// JobManager's contract ("memory stays bounded under a steady stream of
// jobs"): once a finished job is forgotten, nothing keeps it alive. Checked
// in process: a weak_ptr to the job, taken while it runs, must expire after
// the sweep forgets it (result_ttl = 0) and the call that awaited it ended.
class ContractRetentionTest : public ContractTest {
 protected:
  ContractRetentionTest() { start_in_setup_ = false; }
  void SetUp() override {
    DaemonOptions o = DefaultOptions();
    o.jobs.result_ttl = absl::ZeroDuration();
    StartDaemon(std::move(o));
  }
  std::weak_ptr<Job> Weak(std::uint64_t id) {
    auto job = daemon_->jobs().Find(id, "test");
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? std::weak_ptr<Job>(*job) : std::weak_ptr<Job>();
  }
  // Sweeps until `weak` expires (the call that awaited it may still be
  // letting go of it for a moment); false if it never does.
  bool FreedAfterSweep(const std::weak_ptr<Job>& weak) {
    Stopwatch sw;
    do {
      daemon_->jobs().SweepNow();
      if (weak.expired()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    } while (sw.Elapsed() < 1);
    return false;
  }
  // Whether Get says the job was forgotten.
  bool Forgotten(std::uint64_t id) {
    v1::GetRequest req;
    req.add_ids(id);
    v1::GetResponse resp;
    return stub_->Get(Ctx().get(), req, &resp).error_code() ==
           grpc::StatusCode::NOT_FOUND;
  }
};

TEST_F(ContractRetentionTest, ForgottenLeafJobIsFreed) {
  auto ids = SubmitOk({Sleep(0.1, "x")});
  std::weak_ptr<Job> job = Weak(ids[0]);
  ASSERT_FALSE(job.expired());
  WaitForOk(ids[0]);
  EXPECT_TRUE(FreedAfterSweep(job));
  EXPECT_TRUE(Forgotten(ids[0]));
}

TEST_F(ContractRetentionTest, ForgottenGatherGroupIsFreed) {
  v1::GatherRequest req;
  *req.add_jobs() = Input(Sleep(0.1, "x"));
  InFlight<v1::GatherResponse> call;
  stub_->async()->Gather(call.ctx(), &req, call.response(), &call);
  call.StartCall();
  const std::uint64_t group = call.MetadataId("awaitd-group-id");
  ASSERT_NE(group, 0u);
  std::weak_ptr<Job> g = Weak(group);
  std::weak_ptr<Job> child = Weak(GetOk(group).children(0));
  ASSERT_TRUE(call.Await().ok());
  EXPECT_TRUE(FreedAfterSweep(g))
      << "the forgotten gather group is still alive (a reference cycle?)";
  EXPECT_TRUE(Forgotten(group));
  EXPECT_TRUE(FreedAfterSweep(child))
      << "the forgotten gather's child is still alive";
}

TEST_F(ContractRetentionTest, ForgottenTaskGroupIsFreed) {
  v1::RunGroupRequest req;
  *req.add_jobs() = Sleep(0.1, "x");
  InFlight<v1::RunGroupResponse> call;
  stub_->async()->RunGroup(call.ctx(), &req, call.response(), &call);
  call.StartCall();
  const std::uint64_t group = call.MetadataId("awaitd-group-id");
  ASSERT_NE(group, 0u);
  std::weak_ptr<Job> g = Weak(group);
  ASSERT_TRUE(call.Await().ok());
  EXPECT_TRUE(FreedAfterSweep(g))
      << "the forgotten task group is still alive (a reference cycle?)";
  EXPECT_TRUE(Forgotten(group));
}

// ===== kinds and health ====================================================

// Row: the registered kinds (the coroutine functions): the seven built-ins;
// the to_thread ones are marked blocking.
TEST_F(ContractTest, ListKindsListsTheSevenBuiltins) {
  v1::ListKindsResponse resp;
  ASSERT_TRUE(
      stub_->ListKinds(Ctx().get(), v1::ListKindsRequest(), &resp).ok());
  std::vector<std::string> names;
  std::vector<std::string> blocking;
  for (const auto& k : resp.kinds()) {
    names.push_back(k.name());
    if (k.blocking()) blocking.push_back(k.name());
    EXPECT_FALSE(k.description().empty()) << k.name();
  }
  EXPECT_THAT(names, UnorderedElementsAre("sleep", "echo", "fail", "factorial",
                                          "spin", "blocking", "hash"));
  EXPECT_THAT(blocking, UnorderedElementsAre("blocking", "hash"));
}

// The daemon serves grpc.health.v1 and reports SERVING. No generated health
// client is installed, so the call is made with a GenericStub on raw bytes:
// an empty HealthCheckRequest, and HealthCheckResponse{status: SERVING (1)}
// is the two bytes 08 01.
TEST_F(ContractTest, HealthCheckReportsServing) {
  grpc::GenericStub generic(channel_);
  grpc::Slice empty(std::string{});
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                    &request, &response, [&](grpc::Status s) {
                      std::lock_guard lock(mu);
                      status = std::move(s);
                      done = true;
                      cv.notify_all();
                    });
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done; });
  }
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const auto& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));
}

}  // namespace
}  // namespace awaitd::server::testing
