// The course notes' asyncio examples (../shared/seeds/), run over RPC
// against a real daemon, asserting what the notes say each one shows. Their
// seconds are scaled down (1 s -> 0.1-0.2 s); bounds are loose enough for a
// loaded 2-core machine and still tell "concurrent" from "one after another".
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/daemon_fixture.h"
#include "tests/server/rpc_test_util.h"

namespace awaitd::server::testing {
namespace {

using ::testing::ElementsAre;

class SeedsTest : public RpcTest {
 protected:
  static v1::JobSpec Sleep(double seconds, const std::string& result) {
    return Spec("sleep", "{\"seconds\": " + std::to_string(seconds) +
                             ", \"result\": \"" + result + "\"}");
  }
  static v1::JobSpec Factorial(const std::string& name, int n, double step) {
    v1::JobSpec s = Spec(
        "factorial", "{\"n\": " + std::to_string(n) +
                         ", \"step_seconds\": " + std::to_string(step) + "}");
    s.set_name(name);
    return s;
  }
};

// 002, "gather": factorial("A", 2), ("B", 3), ("C", 4) scheduled
// concurrently: the steps interleave (all three are computing before the
// first is done, and the whole takes about the longest, not the sum), and
// the results come back in input order [2, 6, 24].
TEST_F(SeedsTest, FactorialGatherInterleavesAndReturnsInInputOrder) {
  constexpr double kStep = 0.15;
  v1::GatherRequest req;
  *req.add_jobs() = Input(Factorial("A", 2, kStep));
  *req.add_jobs() = Input(Factorial("B", 3, kStep));
  *req.add_jobs() = Input(Factorial("C", 4, kStep));
  v1::GatherResponse resp;
  grpc::Status s = stub_->Gather(Ctx().get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.results_size(), 3);
  std::vector<double> results;
  std::vector<std::string> names;
  for (const v1::Job& j : resp.results()) {
    results.push_back(j.result().number_value());
    names.push_back(j.name());
  }
  EXPECT_THAT(results, ElementsAre(2, 6, 24));
  EXPECT_THAT(names, ElementsAre("A", "B", "C"));
  const v1::Job& a = resp.results(0);
  const v1::Job& b = resp.results(1);
  const v1::Job& c = resp.results(2);
  // "Task A: Compute factorial(2)... Task B: ... Task C: ..." before "Task A:
  // factorial(2) = 2": every task started before the first one finished.
  for (const v1::Job& j : resp.results()) {
    EXPECT_LT(Secs(j.started_at()), Secs(a.finished_at())) << j.name();
  }
  // A (1 step) ends before B (2 steps) before C (3 steps).
  EXPECT_LT(Secs(a.finished_at()), Secs(b.finished_at()));
  EXPECT_LT(Secs(b.finished_at()), Secs(c.finished_at()));
  // About 3 steps in all, not 1 + 2 + 3 = 6.
  const double span = Secs(c.finished_at()) - Secs(a.started_at());
  EXPECT_GE(span, 3 * kStep - 0.01);
  EXPECT_LT(span, 5 * kStep);
}

// 002, "gather" with return: factorial("A", 4), ("B", 3), ("C", 2) -- "the
// result will always be [24, 6, 2]", though C finishes first.
TEST_F(SeedsTest, FactorialGatherResultIsAlways24_6_2) {
  v1::GatherRequest req;
  *req.add_jobs() = Input(Factorial("A", 4, 0.05));
  *req.add_jobs() = Input(Factorial("B", 3, 0.05));
  *req.add_jobs() = Input(Factorial("C", 2, 0.05));
  v1::GatherResponse resp;
  grpc::Status s = stub_->Gather(Ctx().get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.results_size(), 3);
  EXPECT_EQ(resp.results(0).result().number_value(), 24);
  EXPECT_EQ(resp.results(1).result().number_value(), 6);
  EXPECT_EQ(resp.results(2).result().number_value(), 2);
  EXPECT_LT(Secs(resp.results(2).finished_at()),
            Secs(resp.results(0).finished_at()));
}

// 002, "create_tasks", first version: await say_after(1, 'hello,') then
// await say_after(2, 'world') -- one after the other, the sum (3 s).
TEST_F(SeedsTest, SayAfterAwaitedInTurnTakesTheSum) {
  v1::WaitForResponse hello;
  ASSERT_TRUE(WaitFor(Input(Sleep(0.1, "hello,")), &hello).ok());
  v1::WaitForResponse world;
  ASSERT_TRUE(WaitFor(Input(Sleep(0.2, "world")), &world).ok());
  EXPECT_EQ(hello.job().result().string_value(), "hello,");
  EXPECT_EQ(world.job().result().string_value(), "world");
  EXPECT_GE(Secs(world.job().started_at()), Secs(hello.job().finished_at()));
  EXPECT_GE(Secs(world.job().finished_at()) - Secs(hello.job().started_at()),
            0.299);
}

// 002, "create_tasks", second version: task1 = create_task(say_after(1)),
// task2 = create_task(say_after(2)); await task1; await task2 -- "about 2
// seconds": the two run side by side.
TEST_F(SeedsTest, SayAfterAsTasksTakesTheLongestNotTheSum) {
  auto ids = SubmitOk({Sleep(0.2, "hello,"), Sleep(0.4, "world")});
  v1::Job t1 = WaitForOk(ids[0]);
  v1::Job t2 = WaitForOk(ids[1]);
  EXPECT_EQ(t1.result().string_value(), "hello,");
  EXPECT_EQ(t2.result().string_value(), "world");
  EXPECT_LT(Secs(t2.started_at()), Secs(t1.finished_at()));
  const double span = Secs(t2.finished_at()) - Secs(t1.started_at());
  EXPECT_GE(span, 0.399);
  EXPECT_LT(span, 0.55);  // the sum would be 0.6
}

// 003, "create_task": task.done() is False until the task is awaited, then
// True, and task.result() is 'Hello World!'.
TEST_F(SeedsTest, CreateTaskIsNotDoneUntilAwaited) {
  auto ids = SubmitOk({Sleep(0.1, "Hello World!")});
  v1::Job before = GetOk(ids[0]);
  EXPECT_LT(static_cast<int>(before.state()), v1::JOB_STATE_SUCCEEDED);
  EXPECT_FALSE(before.has_result());
  v1::Job after = WaitForOk(ids[0]);
  EXPECT_EQ(StateName(after.state()), "SUCCEEDED");
  EXPECT_EQ(after.result().string_value(), "Hello World!");
}

// 001, "Base": three tasks of sleep(1), awaited with asyncio.wait -- they
// run at the same time, so the whole takes about one sleep.
TEST_F(SeedsTest, ThreeTasksAwaitedWithWaitRunTogether) {
  auto ids =
      SubmitOk({Sleep(0.2, "taskA"), Sleep(0.2, "taskB"), Sleep(0.2, "taskC")});
  v1::WaitRequest req;
  for (auto id : ids) *req.add_jobs() = Input(id);
  v1::WaitResponse resp;
  ASSERT_TRUE(stub_->Wait(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.done_size(), 3);
  auto jobs = GetAll(ids);
  double first_start = 1e300, last_finish = 0;
  for (const auto& j : jobs) {
    first_start = std::min(first_start, Secs(j.started_at()));
    last_finish = std::max(last_finish, Secs(j.finished_at()));
  }
  EXPECT_LT(last_finish - first_start, 0.45);  // not 0.6
}

// 001, "wait": four tasks named 1..4 with different sleeps, return_when=
// FIRST_COMPLETED -- done holds the first to complete, the rest are pending
// (and still running).
TEST_F(SeedsTest, WaitFirstCompletedNamesTheFirstTask) {
  const double sleeps[] = {0.4, 0.1, 0.3, 0.25};
  std::vector<v1::JobSpec> specs;
  for (int i = 0; i < 4; ++i) {
    v1::JobSpec s = Sleep(sleeps[i], "");
    s.set_name(std::to_string(i + 1));
    specs.push_back(s);
  }
  auto ids = SubmitOk(specs);
  v1::WaitRequest req;
  for (auto id : ids) *req.add_jobs() = Input(id);
  req.set_return_when(v1::FIRST_COMPLETED);
  v1::WaitResponse resp;
  ASSERT_TRUE(stub_->Wait(Ctx().get(), req, &resp).ok());
  ASSERT_EQ(resp.done_size(), 1);
  EXPECT_EQ(GetOk(resp.done(0)).name(), "2");
  EXPECT_THAT(resp.pending(), ElementsAre(ids[0], ids[2], ids[3]));
  for (auto id : resp.pending()) {
    EXPECT_EQ(StateName(GetOk(id).state()), "RUNNING");
  }
}

// 001, "wait_for": slow_function() (sleep 100) with timeout -- TimeoutError
// is raised and the task inside wait_for is cancelled.
TEST_F(SeedsTest, WaitForSlowFunctionTimesOutAndCancelsIt) {
  v1::WaitForResponse resp;
  Stopwatch sw;
  grpc::Status s = WaitFor(Input(Spec("sleep", R"({"seconds": 100})")), &resp,
                           /*timeout_s=*/0.2);
  const double elapsed = sw.Elapsed();
  ASSERT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << CodeName(s.error_code()) << ": " << s.error_message();
  EXPECT_GE(elapsed, 0.19);
  EXPECT_LT(elapsed, 1.5);
  v1::ErrorDetails d = Details(s);
  EXPECT_EQ(d.error().type(), "TimeoutError");
  ASSERT_NE(d.job_id(), 0u);
  v1::Job j = GetOk(d.job_id());
  EXPECT_EQ(StateName(j.state()), "CANCELLED");
}

// 001, "as_completed": results are handled as the tasks finish. With
// my_task(id) sleeping less for a larger id, "I am number 4" comes first.
TEST_F(SeedsTest, AsCompletedHandsResultsOverAsTheyFinish) {
  v1::AsCompletedRequest req;
  for (int id = 0; id < 5; ++id) {
    *req.add_jobs() =
        Input(Sleep(0.05 * (5 - id), "I am number " + std::to_string(id)));
  }
  StreamCollector<v1::AsCompletedResponse> stream(
      [&](grpc::ClientContext* c) { return stub_->AsCompleted(c, req); });
  ASSERT_TRUE(stream.WaitDone(10));
  ASSERT_TRUE(stream.status().ok()) << stream.status().error_message();
  auto msgs = stream.messages();
  ASSERT_EQ(msgs.size(), 6u);
  std::vector<std::string> printed;
  for (std::size_t i = 1; i < msgs.size(); ++i) {
    printed.push_back(msgs[i].job().result().string_value());
  }
  EXPECT_THAT(printed,
              ElementsAre("I am number 4", "I am number 3", "I am number 2",
                          "I am number 1", "I am number 0"));
}

// 001, "TaskGroup": do_something() -> 1, do_something_else() -> 2;
// "Everything done: 1, 2".
TEST_F(SeedsTest, TaskGroupEverythingDone) {
  v1::RunGroupRequest req;
  *req.add_jobs() = Spec("echo", R"({"value": 1})");
  *req.add_jobs() = Spec("echo", R"({"value": 2})");
  v1::RunGroupResponse resp;
  grpc::Status s = stub_->RunGroup(Ctx().get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.results_size(), 2);
  EXPECT_EQ(resp.results(0).result().number_value(), 1);
  EXPECT_EQ(resp.results(1).result().number_value(), 2);
}

// 001 / 002, "TaskGroup": if one task of the group fails, all the others
// are cancelled, and the failure is raised as an ExceptionGroup -- at once,
// not after the slow fetch.
TEST_F(SeedsTest, TaskGroupFailsFastAndCancelsTheOthers) {
  v1::RunGroupRequest req;
  v1::JobSpec slow = Spec("sleep", R"({"seconds": 30})");
  slow.set_name("fetch /a");
  v1::JobSpec bad =
      Spec("fail", R"({"type": "ClientError", "after_seconds": 0.05})");
  bad.set_name("fetch /b");
  *req.add_jobs() = slow;
  *req.add_jobs() = bad;
  v1::RunGroupResponse resp;
  Stopwatch sw;
  grpc::Status s = stub_->RunGroup(Ctx().get(), req, &resp);
  EXPECT_LT(sw.Elapsed(), 1.5);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::ABORTED)
      << CodeName(s.error_code()) << ": " << s.error_message();
  v1::ErrorDetails d = Details(s);
  EXPECT_EQ(d.error().type(), "ExceptionGroup");
  ASSERT_EQ(d.failures_size(), 1);
  EXPECT_EQ(d.failures(0).job_name(), "fetch /b");
  EXPECT_EQ(d.failures(0).error().type(), "ClientError");
  v1::Job group = GetOk(d.job_id());
  ASSERT_EQ(group.children_size(), 2);
  v1::Job a = AwaitDone(group.children(0));
  EXPECT_EQ(a.name(), "fetch /a");
  EXPECT_EQ(StateName(a.state()), "CANCELLED");
}

// 002, "Отмена задач": task.cancel(); await task raises CancelledError.
TEST_F(SeedsTest, CancelledTaskRaisesCancelledErrorWhenAwaited) {
  auto ids = SubmitOk({Spec("sleep", R"({"seconds": 30})")});
  AwaitState(ids[0], v1::JOB_STATE_RUNNING);
  CancelOne(ids[0]);
  v1::WaitForResponse resp;
  grpc::Status s = WaitFor(Input(ids[0]), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED)
      << CodeName(s.error_code());
  EXPECT_EQ(Details(s).error().type(), "CancelledError");
}

// 002, "Ошибки в gather": gather(*tasks, return_exceptions=True) gives the
// exceptions in place of results.
TEST_F(SeedsTest, GatherReturnExceptionsGivesExceptionsInPlace) {
  v1::GatherRequest req;
  req.set_return_exceptions(true);
  *req.add_jobs() = Input(Spec("echo", R"({"value": "page"})"));
  *req.add_jobs() =
      Input(Spec("fail", R"({"type": "TimeoutError", "message": "slow"})"));
  v1::GatherResponse resp;
  grpc::Status s = stub_->Gather(Ctx().get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.results_size(), 2);
  EXPECT_EQ(resp.results(0).result().string_value(), "page");
  EXPECT_EQ(StateName(resp.results(1).state()), "FAILED");
  EXPECT_EQ(resp.results(1).error().type(), "TimeoutError");
  EXPECT_EQ(resp.results(1).error().message(), "slow");
}

// 002, "Ограничение параллелизма": sem = Semaphore(10); gather(*(fetch(u)
// for u in urls)) -- at most 10 at a time, and every fetch completes. 1000
// fetches behind a declared limit of 10.
TEST_F(SeedsTest, ThousandFetchesBehindASemaphoreOfTen) {
  v1::DeclareLimitRequest declare;
  declare.set_name("http");
  declare.set_permits(10);
  v1::DeclareLimitResponse declared;
  ASSERT_TRUE(stub_->DeclareLimit(Ctx().get(), declare, &declared).ok());
  v1::GatherRequest req;
  for (int i = 0; i < 1000; ++i) {
    v1::JobSpec s = Sleep(0.005, std::to_string(i));
    s.add_limits("http");
    *req.add_jobs() = Input(s);
  }
  LimitPoller poller(stub_.get(), "http");
  v1::GatherResponse resp;
  grpc::Status s = stub_->Gather(Ctx(60).get(), req, &resp);
  poller.Stop();
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.results_size(), 1000);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(StateName(resp.results(i).state()), "SUCCEEDED") << i;
    ASSERT_EQ(resp.results(i).result().string_value(), std::to_string(i));
  }
  EXPECT_GT(poller.polls(), 10);
  EXPECT_LE(poller.max_holders(), 10u);
  EXPECT_EQ(poller.max_holders(), 10u);  // and the limit was used in full
  EXPECT_GT(poller.max_waiters(), 0u);
  v1::Limit l = GetLimit("http");
  EXPECT_EQ(l.holders(), 0u);
  EXPECT_EQ(l.waiters(), 0u);
}

// 000, "asyncio.to_thread": blocking work runs on threads so the loop keeps
// serving coroutines. While 4 blocking jobs (more than the 2 event-loop
// workers) block for 0.5 s, 50 short sleeps all finish well before them.
TEST_F(SeedsTest, ToThreadLeavesTheLoopsFreeForCoroutines) {
  std::vector<v1::JobSpec> blocking(4, Spec("blocking", R"({"seconds": 0.5})"));
  auto slow = SubmitOk(blocking);
  for (auto id : slow) AwaitState(id, v1::JOB_STATE_RUNNING);
  std::vector<v1::JobSpec> quick(50, Spec("sleep", R"({"seconds": 0.01})"));
  Stopwatch sw;
  auto fast = SubmitOk(quick);
  AwaitAll(fast);
  EXPECT_LT(sw.Elapsed(), 0.45);  // the blocking ones take 0.5
  double last_quick = 0;
  for (const auto& j : GetAll(fast)) {
    EXPECT_EQ(StateName(j.state()), "SUCCEEDED");
    last_quick = std::max(last_quick, Secs(j.finished_at()));
  }
  AwaitAll(slow);
  double first_blocking = 1e300;
  for (const auto& j : GetAll(slow)) {
    EXPECT_EQ(StateName(j.state()), "SUCCEEDED");
    first_blocking = std::min(first_blocking, Secs(j.finished_at()));
  }
  EXPECT_LT(last_quick, first_blocking - 0.1);
}

// 003, "all_tasks": ten tasks started with create_task are all listed as
// not done while they sleep.
TEST_F(SeedsTest, AllTasksListsTheRunningTasks) {
  std::vector<v1::JobSpec> specs(10, Spec("sleep", R"({"seconds": 30})"));
  auto ids = SubmitOk(specs);
  for (auto id : ids) AwaitState(id, v1::JOB_STATE_RUNNING);
  auto running = ListAll(v1::JOB_STATE_RUNNING);
  std::vector<std::uint64_t> listed;
  for (const auto& j : running) listed.push_back(j.id());
  EXPECT_EQ(listed, ids);
}

}  // namespace
}  // namespace awaitd::server::testing
