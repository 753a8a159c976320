// The co_await forms (client/awaitable.h) inside tasks of awaitd's runtime,
// against a real in-process daemon on port 0.
#include "client/awaitable.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "runtime/errors.h"
#include "runtime/event.h"
#include "runtime/runtime.h"
#include "tests/server/daemon_fixture.h"

namespace awaitd::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::Duration kPatience = absl::Seconds(30);

class AwaitableTest : public server::testing::DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    if (HasFatalFailure()) return;
    auto client = Client::Connect(
        {.address = daemon_->address(), .default_deadline = kPatience});
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
    runtime_ = std::make_unique<runtime::Runtime>(runtime::RuntimeOptions{
        .workers = 2, .stall_threshold = std::chrono::nanoseconds(0)});
  }

  void TearDown() override {
    runtime_.reset();
    if (client_ != nullptr) {
      // Jobs left running end now instead of holding the daemon's shutdown.
      for (v1::JobState state :
           {v1::JOB_STATE_PENDING, v1::JOB_STATE_RUNNING}) {
        auto jobs = client_->ListAll({.state = state});
        if (!jobs.ok() || jobs->empty()) continue;
        std::vector<std::uint64_t> ids;
        for (const v1::Job& j : *jobs) ids.push_back(j.id());
        (void)client_->Cancel(ids, "test over");
      }
    }
    client_.reset();
    DaemonTest::TearDown();
  }

  std::unique_ptr<Client> client_;
  std::unique_ptr<runtime::Runtime> runtime_;
};

Spec Echo(std::string_view value) { return Spec("echo").Arg("value", value); }
Spec SleepThen(double seconds, std::string_view result) {
  return Spec("sleep").Arg("seconds", seconds).Arg("result", result);
}

// --- One call each -----------------------------------------------------------

runtime::Task<absl::StatusOr<std::vector<v1::Job>>> SubmitThenGet(Client* c) {
  // Arguments built before the co_await: GCC 12 miscompiles an
  // initializer list inside a co_await expression.
  std::vector<Spec> specs;
  specs.push_back(Echo("a").Name("A"));
  auto refs = co_await CoSubmit(*c, std::move(specs));
  if (!refs.ok()) co_return refs.status();
  std::vector<std::uint64_t> ids = {(*refs)[0].id};
  co_return co_await CoGet(*c, std::move(ids));
}

TEST_F(AwaitableTest, CoSubmitThenCoGetSeeTheJob) {
  auto jobs = runtime_->BlockOn(SubmitThenGet(client_.get()));
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].name(), "A");
}

runtime::Task<absl::StatusOr<std::vector<v1::CancelResult>>> CancelTwice(
    Client* c, std::uint64_t id) {
  const std::vector<std::uint64_t> ids = {id};
  auto first = co_await CoCancel(*c, ids, "once");
  if (!first.ok()) co_return first;
  std::vector<Input> inputs = {id};
  auto wait = co_await CoWait(*c, std::move(inputs));
  if (!wait.ok()) co_return wait.status();
  auto second = co_await CoCancel(*c, ids);
  if (!second.ok()) co_return second;
  first->push_back(std::move((*second)[0]));
  co_return first;
}

TEST_F(AwaitableTest, CoCancelReturnsTrueThenFalse) {
  auto ref = client_->Submit(Spec("sleep").Arg("seconds", 30));
  ASSERT_TRUE(ref.ok()) << ref.status();
  auto results = runtime_->BlockOn(CancelTwice(client_.get(), ref->id));
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 2u);
  EXPECT_TRUE((*results)[0].cancelled());
  EXPECT_FALSE((*results)[1].cancelled());
}

TEST_F(AwaitableTest, CoWaitFirstCompleted) {
  auto slow = client_->Submit(Spec("sleep").Arg("seconds", 30));
  auto fast = client_->Submit(Echo("x"));
  ASSERT_TRUE(slow.ok() && fast.ok());
  auto w =
      runtime_->BlockOn(CoWait(*client_, {slow->id, fast->id},
                               {.return_when = ReturnWhen::kFirstCompleted}));
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_THAT(w->done, ElementsAre(fast->id));
  EXPECT_THAT(w->pending, ElementsAre(slow->id));
}

TEST_F(AwaitableTest, CoGatherReturnsResultsInOrderAndTheGroup) {
  auto group = std::make_shared<std::atomic<std::uint64_t>>(0);
  GatherOptions options;
  options.on_group = [group](std::uint64_t id) { *group = id; };
  auto g = runtime_->BlockOn(CoGather(
      *client_, {SleepThen(0.05, "slow"), Echo("fast")}, std::move(options)));
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_EQ(g->results.size(), 2u);
  EXPECT_EQ(g->results[0].result().string_value(), "slow");
  EXPECT_EQ(g->results[1].result().string_value(), "fast");
  EXPECT_EQ(group->load(), g->group_id);
}

TEST_F(AwaitableTest, CoGatherFailureCarriesErrorDetails) {
  auto g = runtime_->BlockOn(CoGather(
      *client_, {Spec("fail").Arg("type", "ValueError").Arg("message", "boom"),
                 Echo("x")}));
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), absl::StatusCode::kAborted);
  ASSERT_TRUE(ErrorDetailsOf(g.status()).has_value());
  EXPECT_EQ(ErrorDetailsOf(g.status())->error().type(), "ValueError");
}

TEST_F(AwaitableTest, CoWaitForReturnsTheJob) {
  auto job = runtime_->BlockOn(CoWaitFor(*client_, Echo("v")));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->result().string_value(), "v");
}

TEST_F(AwaitableTest, CoWaitForTimeoutIsDeadlineExceeded) {
  auto ref = client_->Submit(Spec("sleep").Arg("seconds", 30));
  ASSERT_TRUE(ref.ok()) << ref.status();
  auto job =
      runtime_->BlockOn(CoWaitFor(*client_, ref->id, absl::Milliseconds(50)));
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kDeadlineExceeded);
  auto after = client_->Get(ref->id);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->state(), v1::JOB_STATE_CANCELLED);
}

TEST_F(AwaitableTest, CoRunGroupFailureListsTheFailures) {
  auto g = runtime_->BlockOn(CoRunGroup(
      *client_, {Spec("fail").Arg("type", "KeyError").Arg("message", "k"),
                 Spec("sleep").Arg("seconds", 30)}));
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), absl::StatusCode::kAborted);
  auto details = ErrorDetailsOf(g.status());
  ASSERT_TRUE(details.has_value());
  ASSERT_EQ(details->failures_size(), 1);
  EXPECT_EQ(details->failures(0).error().type(), "KeyError");
}

TEST_F(AwaitableTest, CoRunGroupReturnsResults) {
  auto g = runtime_->BlockOn(CoRunGroup(*client_, {Echo("a"), Echo("b")}));
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_EQ(g->results.size(), 2u);
  EXPECT_EQ(g->results[1].result().string_value(), "b");
}

// --- Concurrency and cancellation --------------------------------------------

// Waits for `n` jobs at once from one task: every call suspends its task,
// none holds a worker.
runtime::Task<std::vector<std::string>> WaitForMany(Client* c, int n) {
  std::vector<runtime::JoinHandle<absl::StatusOr<v1::Job>>> calls;
  for (int i = 0; i < n; ++i) {
    calls.push_back(
        runtime::Spawn(CoWaitFor(*c, SleepThen(0.3, std::to_string(i)))));
  }
  std::vector<std::string> out;
  for (auto& h : calls) {
    absl::StatusOr<v1::Job> job = co_await h;
    out.push_back(job.ok() ? job->result().string_value()
                           : std::string(job.status().message()));
  }
  co_return out;
}

TEST_F(AwaitableTest, ManyCallsWaitTogetherWithoutHoldingWorkers) {
  constexpr int kCalls = 20;  // ten times the workers
  const absl::Time start = absl::Now();
  std::vector<std::string> results =
      runtime_->BlockOn(WaitForMany(client_.get(), kCalls));
  // One after the other they would take 6 s.
  EXPECT_LT(absl::Now() - start, absl::Seconds(4));
  ASSERT_EQ(results.size(), static_cast<std::size_t>(kCalls));
  for (int i = 0; i < kCalls; ++i) EXPECT_EQ(results[i], std::to_string(i));
}

// Starts a WaitFor in a task of its own, cancels that task once the call is
// under way, and reports how the task ended.
runtime::Task<void> WaitForInTask(Client* c, std::uint64_t id,
                                  runtime::Event* calling,
                                  absl::StatusOr<v1::Job>* result) {
  calling->Set();  // CoWaitFor starts the call before it first suspends
  *result = co_await CoWaitFor(*c, id);
}

runtime::Task<std::string> CancelTheWaitingTask(Client* c, std::uint64_t id) {
  runtime::Event calling;
  absl::StatusOr<v1::Job> result = absl::UnknownError("not set");
  runtime::JoinHandle<void> waiting =
      runtime::Spawn(WaitForInTask(c, id, &calling, &result));
  co_await calling.Wait();
  waiting.Cancel("the caller gave up");
  try {
    co_await waiting;
  } catch (const runtime::CancelledError& e) {
    co_return std::string("cancelled: ") + e.what();
  }
  co_return "finished: " + result.status().ToString();
}

TEST_F(AwaitableTest, CancellingTheAwaitingTaskRaisesAndTheJobRunsOn) {
  auto ref = client_->Submit(Spec("sleep").Arg("seconds", 30));
  ASSERT_TRUE(ref.ok()) << ref.status();
  const absl::Time start = absl::Now();
  std::string outcome =
      runtime_->BlockOn(CancelTheWaitingTask(client_.get(), ref->id));
  EXPECT_EQ(outcome, "cancelled: the caller gave up");
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  auto job = client_->Get(ref->id);
  ASSERT_TRUE(job.ok()) << job.status();
  // Still running (or about to start: PENDING for a moment after Submit).
  EXPECT_THAT(job->state(),
              ::testing::AnyOf(v1::JOB_STATE_PENDING, v1::JOB_STATE_RUNNING));
  EXPECT_FALSE(job->cancel_requested());
}

TEST_F(AwaitableTest, CoFunctionsStartNothingUntilAwaited) {
  {
    runtime::Task<absl::StatusOr<std::vector<JobRef>>> never =
        CoSubmit(*client_, {Echo("never")});
  }
  auto all = client_->ListAll();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE(all->empty());
}

}  // namespace
}  // namespace awaitd::client
