// The Client against a real in-process daemon on port 0: every method in its
// blocking and callback forms, the stream readers, Connect's failures, and
// the status helpers.
#include "client/client.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/server/daemon_fixture.h"

namespace awaitd::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// How long a test waits for anything before it fails instead of hanging.
constexpr absl::Duration kPatience = absl::Seconds(30);

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

// What a callback form delivered: every call of the callback, kept, so a
// test can check it ran exactly once.
//
// Thread safety: the callback may run on any thread; the methods lock.
template <typename T>
class Captured {
 public:
  Callback<T> Fn() {
    return [s = state_](absl::StatusOr<T> r) {
      absl::MutexLock lock(&s->mu);
      s->results.push_back(std::move(r));
    };
  }
  // The first result, after waiting (up to kPatience) for it.
  absl::StatusOr<T> Get() {
    absl::MutexLock lock(&state_->mu);
    auto arrived = [](State* s) { return !s->results.empty(); };
    if (!state_->mu.AwaitWithTimeout(absl::Condition(+arrived, state_.get()),
                                     kPatience)) {
      return absl::DeadlineExceededError("test: the callback never ran");
    }
    return state_->results.front();
  }
  std::size_t calls() {
    absl::MutexLock lock(&state_->mu);
    return state_->results.size();
  }

 private:
  struct State {
    absl::Mutex mu;
    std::vector<absl::StatusOr<T>> results ABSL_GUARDED_BY(mu);
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

// The final status of a callback stream, and what it delivered.
template <typename T>
class CapturedStream {
 public:
  std::function<void(T)> OnItem() {
    return [s = state_](T item) {
      absl::MutexLock lock(&s->mu);
      EXPECT_FALSE(s->end.has_value()) << "an item after done";
      s->items.push_back(std::move(item));
    };
  }
  std::function<void(absl::Status)> Done() {
    return [s = state_](absl::Status status) {
      absl::MutexLock lock(&s->mu);
      EXPECT_FALSE(s->end.has_value()) << "done ran twice";
      s->end = std::move(status);
    };
  }
  absl::Status Wait() {
    absl::MutexLock lock(&state_->mu);
    auto ended = [](State* s) { return s->end.has_value(); };
    if (!state_->mu.AwaitWithTimeout(absl::Condition(+ended, state_.get()),
                                     kPatience)) {
      return absl::DeadlineExceededError("test: the stream never ended");
    }
    return *state_->end;
  }
  std::vector<T> items() {
    absl::MutexLock lock(&state_->mu);
    return state_->items;
  }
  // Waits until at least one item arrived, up to `timeout`.
  bool AwaitItem(absl::Duration timeout) {
    absl::MutexLock lock(&state_->mu);
    auto any = [](State* s) { return !s->items.empty(); };
    return state_->mu.AwaitWithTimeout(absl::Condition(+any, state_.get()),
                                       timeout);
  }

 private:
  struct State {
    absl::Mutex mu;
    std::vector<T> items ABSL_GUARDED_BY(mu);
    std::optional<absl::Status> end ABSL_GUARDED_BY(mu);
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

// A TCP port on 127.0.0.1 that nothing listens on (bound, then released).
int DeadPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// The job is neither done nor cancelled: it runs, or is about to start (a
// job is PENDING for a moment after Submit).
::testing::AssertionResult RunsOn(const v1::Job& job) {
  const bool unfinished = job.state() == v1::JOB_STATE_PENDING ||
                          job.state() == v1::JOB_STATE_RUNNING;
  if (unfinished && !job.cancel_requested()) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "job " << job.id() << " is " << StateName(job.state())
         << (job.cancel_requested() ? " (cancel requested)" : "");
}

Spec Sleep(double seconds) { return Spec("sleep").Arg("seconds", seconds); }
Spec SleepThen(double seconds, std::string_view result) {
  return Spec("sleep").Arg("seconds", seconds).Arg("result", result);
}
Spec Echo(std::string_view value) { return Spec("echo").Arg("value", value); }
Spec Fail(std::string_view type, std::string_view message,
          double after_seconds = 0) {
  return Spec("fail")
      .Arg("type", type)
      .Arg("message", message)
      .Arg("after_seconds", after_seconds);
}

class ClientTest : public server::testing::DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    if (HasFatalFailure()) return;
    auto client = Client::Connect(
        {.address = daemon_->address(), .default_deadline = kPatience});
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  void TearDown() override {
    // Long sleeps end now rather than holding the daemon's shutdown grace.
    if (client_ != nullptr) {
      for (v1::JobState state :
           {v1::JOB_STATE_PENDING, v1::JOB_STATE_RUNNING}) {
        auto jobs = client_->ListAll({.state = state});
        if (!jobs.ok()) continue;
        std::vector<std::uint64_t> ids;
        for (const v1::Job& j : *jobs) ids.push_back(j.id());
        if (!ids.empty()) (void)client_->Cancel(ids, "test over");
      }
    }
    client_.reset();
    DaemonTest::TearDown();
  }

  std::uint64_t SubmitOk(const Spec& spec) {
    absl::StatusOr<JobRef> ref = client_->Submit(spec);
    EXPECT_TRUE(ref.ok()) << ref.status();
    return ref.ok() ? ref->id : 0;
  }

  v1::Job GetOk(std::uint64_t id) {
    absl::StatusOr<v1::Job> job = client_->Get(id);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::Job();
  }

  // Waits (in the daemon) until the job is done, whatever its outcome.
  v1::Job AwaitDone(std::uint64_t id) {
    absl::StatusOr<WaitResult> w = client_->Wait({id});
    EXPECT_TRUE(w.ok()) << w.status();
    return GetOk(id);
  }

  std::unique_ptr<Client> client_;
};

// --- Submit ------------------------------------------------------------------

TEST_F(ClientTest, SubmitOneReturnsItsIdAndDefaultName) {
  absl::StatusOr<JobRef> ref = client_->Submit(Echo("x"));
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_GT(ref->id, 0u);
  EXPECT_EQ(ref->name, absl::StrCat("Job-", ref->id));
  EXPECT_FALSE(ref->existing);
}

TEST_F(ClientTest, CreateTaskIsSubmit) {
  absl::StatusOr<JobRef> ref = client_->CreateTask(Echo("x").Name("named"));
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->name, "named");
}

TEST_F(ClientTest, SubmitBatchReturnsRefsInRequestOrder) {
  std::vector<Spec> specs = {Echo("a").Name("A"), Echo("b").Name("B")};
  auto refs = client_->Submit(specs);
  ASSERT_TRUE(refs.ok()) << refs.status();
  ASSERT_EQ(refs->size(), 2u);
  EXPECT_EQ((*refs)[0].name, "A");
  EXPECT_EQ((*refs)[1].name, "B");
  EXPECT_LT((*refs)[0].id, (*refs)[1].id);
}

TEST_F(ClientTest, SubmitInvalidSpecNamesTheFieldAndAcceptsNothing) {
  std::vector<Spec> specs = {Echo("ok"), Spec("sleep").Arg("seconds", "soon")};
  auto refs = client_->Submit(specs);
  ASSERT_FALSE(refs.ok());
  EXPECT_EQ(refs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(refs.status()), HasSubstr("jobs[1].args.seconds"));
  auto all = client_->ListAll();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE(all->empty()) << "a rejected batch created jobs";
}

TEST_F(ClientTest, SubmitUnknownKindIsInvalidArgument) {
  auto ref = client_->Submit(Spec("no_such_kind"));
  ASSERT_FALSE(ref.ok());
  EXPECT_EQ(ref.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(ref.status()), HasSubstr("jobs[0].kind"));
}

TEST_F(ClientTest, SubmitWithAKnownIdempotencyKeyReturnsTheExistingJob) {
  auto first = client_->Submit(Echo("x").IdempotencyKey("k1"));
  auto second = client_->Submit(Echo("x").IdempotencyKey("k1"));
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->id, second->id);
  EXPECT_TRUE(second->existing);
}

TEST_F(ClientTest, SubmitAsyncDeliversTheRefsOnce) {
  Captured<std::vector<JobRef>> got;
  client_->SubmitAsync({Echo("a"), Echo("b")}, got.Fn());
  auto refs = got.Get();
  ASSERT_TRUE(refs.ok()) << refs.status();
  EXPECT_EQ(refs->size(), 2u);
  EXPECT_EQ(got.calls(), 1u);
}

TEST_F(ClientTest, SubmitAsyncDeliversTheError) {
  Captured<std::vector<JobRef>> got;
  client_->SubmitAsync({Echo("a"), Spec("")}, got.Fn());
  auto refs = got.Get();
  ASSERT_FALSE(refs.ok());
  EXPECT_EQ(refs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(refs.status()), HasSubstr("jobs[1]"));
}

// --- Get / Cancel ------------------------------------------------------------

TEST_F(ClientTest, GetReturnsTheJobsSnapshot) {
  const std::uint64_t id = SubmitOk(Echo("hi").Name("greeting"));
  AwaitDone(id);
  v1::Job job = GetOk(id);
  EXPECT_EQ(job.id(), id);
  EXPECT_EQ(job.name(), "greeting");
  EXPECT_EQ(job.kind(), "echo");
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job.result().string_value(), "hi");
}

TEST_F(ClientTest, GetManyKeepsRequestOrder) {
  const std::uint64_t a = SubmitOk(Echo("a"));
  const std::uint64_t b = SubmitOk(Echo("b"));
  std::vector<std::uint64_t> ids = {b, a};
  auto jobs = client_->Get(ids);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].id(), b);
  EXPECT_EQ((*jobs)[1].id(), a);
}

TEST_F(ClientTest, GetUnknownIdIsNotFound) {
  auto job = client_->Get(987654);
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientTest, GetAsyncDeliversTheJobs) {
  const std::uint64_t id = SubmitOk(Echo("a"));
  Captured<std::vector<v1::Job>> got;
  client_->GetAsync({id}, got.Fn());
  auto jobs = got.Get();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].id(), id);
}

TEST_F(ClientTest, CancelReturnsTrueThenFalseOnceDone) {
  const std::uint64_t id = SubmitOk(Sleep(30));
  absl::StatusOr<bool> first = client_->Cancel(id, "enough");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(*first);
  v1::Job job = AwaitDone(id);
  EXPECT_EQ(job.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(job.error().type(), "CancelledError");
  EXPECT_EQ(job.error().message(), "enough");
  absl::StatusOr<bool> second = client_->Cancel(id);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(*second);
}

TEST_F(ClientTest, CancelManyReportsEachJob) {
  const std::uint64_t sleeping = SubmitOk(Sleep(30));
  const std::uint64_t done = SubmitOk(Echo("x"));
  AwaitDone(done);
  std::vector<std::uint64_t> ids = {sleeping, done};
  auto results = client_->Cancel(ids);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 2u);
  EXPECT_EQ((*results)[0].id(), sleeping);
  EXPECT_TRUE((*results)[0].cancelled());
  EXPECT_FALSE((*results)[1].cancelled());
  EXPECT_EQ((*results)[1].state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(ClientTest, CancelAsyncDeliversTheResults) {
  const std::uint64_t id = SubmitOk(Sleep(30));
  Captured<std::vector<v1::CancelResult>> got;
  client_->CancelAsync({id}, "bye", got.Fn());
  auto results = got.Get();
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 1u);
  EXPECT_TRUE((*results)[0].cancelled());
}

// --- Wait --------------------------------------------------------------------

TEST_F(ClientTest, WaitFirstCompletedReturnsWhenOneIsDone) {
  const std::uint64_t slow = SubmitOk(Sleep(30));
  const std::uint64_t fast = SubmitOk(Echo("x"));
  auto w =
      client_->Wait({slow, fast}, {.return_when = ReturnWhen::kFirstCompleted});
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_THAT(w->done, ElementsAre(fast));
  EXPECT_THAT(w->pending, ElementsAre(slow));
}

TEST_F(ClientTest, WaitFirstExceptionReturnsOnAFailure) {
  const std::uint64_t slow = SubmitOk(Sleep(30));
  const std::uint64_t failing = SubmitOk(Fail("ValueError", "boom", 0.05));
  auto w = client_->Wait({slow, failing},
                         {.return_when = ReturnWhen::kFirstException});
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_THAT(w->done, ElementsAre(failing));
  EXPECT_THAT(w->pending, ElementsAre(slow));
}

TEST_F(ClientTest, WaitAllCompletedWaitsForEveryJob) {
  auto w = client_->Wait({SleepThen(0.05, "a"), Echo("b")});
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->done.size(), 2u);
  EXPECT_TRUE(w->pending.empty());
}

TEST_F(ClientTest, WaitTimeoutReturnsPendingAndCancelsNothing) {
  const std::uint64_t id = SubmitOk(Sleep(30));
  auto w = client_->Wait({id}, {.timeout = absl::Milliseconds(50)});
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(w->done.empty());
  EXPECT_THAT(w->pending, ElementsAre(id));
  EXPECT_TRUE(RunsOn(GetOk(id)));
}

TEST_F(ClientTest, WaitAsyncDeliversDoneAndPending) {
  const std::uint64_t slow = SubmitOk(Sleep(30));
  const std::uint64_t fast = SubmitOk(Echo("x"));
  Captured<WaitResult> got;
  client_->WaitAsync({slow, fast}, {.return_when = ReturnWhen::kFirstCompleted},
                     got.Fn());
  auto w = got.Get();
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_THAT(w->done, ElementsAre(fast));
}

TEST_F(ClientTest, CallDeadlineEndsTheCallButNotTheJob) {
  const std::uint64_t id = SubmitOk(Sleep(30));
  auto w = client_->Wait({id}, {}, {.deadline = absl::Milliseconds(100)});
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(RunsOn(GetOk(id)));
}

TEST_F(ClientTest, CallHandleCancelEndsALongWaitWithCancelled) {
  const std::uint64_t id = SubmitOk(Sleep(30));
  Captured<WaitResult> got;
  CallHandle handle = client_->WaitAsync({id}, {}, got.Fn());
  handle.Cancel();
  auto w = got.Get();
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), absl::StatusCode::kCancelled) << w.status();
  EXPECT_THAT(Msg(w.status()), HasSubstr("cancelled by the client"));
  EXPECT_EQ(got.calls(), 1u);
  EXPECT_TRUE(RunsOn(GetOk(id)));
}

TEST_F(ClientTest, CallHandleCancelAfterTheAnswerChangesNothing) {
  const std::uint64_t id = SubmitOk(Echo("x"));
  Captured<std::vector<v1::Job>> got;
  CallHandle handle = client_->GetAsync({id}, got.Fn());
  ASSERT_TRUE(got.Get().ok());
  handle.Cancel();
  handle.Cancel();
  EXPECT_EQ(got.calls(), 1u);
  EXPECT_TRUE(got.Get().ok());
  CallHandle empty;
  empty.Cancel();  // a default handle is a no-op
}

TEST_F(ClientTest, DestroyingTheClientCancelsItsCallsInFlight) {
  const std::uint64_t id = SubmitOk(Sleep(30));
  auto other = Client::Connect({.address = daemon_->address()});
  ASSERT_TRUE(other.ok()) << other.status();
  Captured<WaitResult> got;
  (*other)->WaitAsync({id}, {}, got.Fn());
  other->reset();  // returns once the call has finished
  ASSERT_EQ(got.calls(), 1u);
  EXPECT_EQ(got.Get().status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(RunsOn(GetOk(id)));
}

TEST_F(ClientTest, DroppingTheHandleDoesNotCancel) {
  const std::uint64_t id = SubmitOk(SleepThen(0.05, "late"));
  Captured<v1::Job> got;
  { (void)client_->WaitForAsync(id, std::nullopt, got.Fn()); }
  auto job = got.Get();
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->result().string_value(), "late");
}

// --- Gather ------------------------------------------------------------------

TEST_F(ClientTest, GatherReturnsResultsInInputOrder) {
  const std::uint64_t existing = SubmitOk(Echo("old"));
  auto g = client_->Gather({SleepThen(0.1, "slow"), Echo("fast"), existing});
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_GT(g->group_id, 0u);
  ASSERT_EQ(g->results.size(), 3u);
  EXPECT_EQ(g->results[0].result().string_value(), "slow");
  EXPECT_EQ(g->results[1].result().string_value(), "fast");
  EXPECT_EQ(g->results[2].id(), existing);
  EXPECT_EQ(g->results[2].result().string_value(), "old");
}

TEST_F(ClientTest, GatherFailureIsAbortedWithTheChildsErrorDetails) {
  auto g = client_->Gather({Fail("ValueError", "boom"), Sleep(30)});
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), absl::StatusCode::kAborted) << g.status();
  EXPECT_THAT(Msg(g.status()), HasSubstr("failed: ValueError: boom"));
  std::optional<v1::ErrorDetails> details = ErrorDetailsOf(g.status());
  ASSERT_TRUE(details.has_value());
  EXPECT_EQ(details->error().type(), "ValueError");
  EXPECT_EQ(details->error().message(), "boom");
  v1::Job failed = GetOk(details->job_id());
  EXPECT_EQ(failed.kind(), "fail");
  EXPECT_EQ(failed.state(), v1::JOB_STATE_FAILED);
}

TEST_F(ClientTest, GatherWithReturnExceptionsGivesFailuresAsResults) {
  auto g = client_->Gather({Fail("ValueError", "boom"), Echo("fine")},
                           {.return_exceptions = true});
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_EQ(g->results.size(), 2u);
  EXPECT_EQ(g->results[0].state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(g->results[0].error().type(), "ValueError");
  EXPECT_EQ(g->results[0].error().message(), "boom");
  EXPECT_EQ(g->results[1].result().string_value(), "fine");
}

TEST_F(ClientTest, GatherNamesTheGroup) {
  auto g = client_->Gather({Echo("x")}, {.name = "fan-out"});
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(GetOk(g->group_id).name(), "fan-out");
}

TEST_F(ClientTest, GatherCallsOnGroupWithTheGroupIdBeforeReturning) {
  // The child waits for the test to see the group id: on_group must come
  // while the gather is still running.
  const std::uint64_t child = SubmitOk(Sleep(30));
  std::atomic<std::uint64_t> group{0};
  std::atomic<int> calls{0};
  absl::Notification seen;
  std::thread canceller([&] {
    if (seen.WaitForNotificationWithTimeout(kPatience)) {
      (void)client_->Cancel(child, "on_group ran");
    }
  });
  auto g = client_->Gather(
      {child}, {.return_exceptions = true, .on_group = [&](std::uint64_t id) {
                  group = id;
                  ++calls;
                  seen.Notify();
                }});
  canceller.join();
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(group.load(), g->group_id);
  EXPECT_EQ(g->results[0].state(), v1::JOB_STATE_CANCELLED);
}

TEST_F(ClientTest, GatherAsyncCallsOnGroupBeforeDone) {
  const std::uint64_t child = SubmitOk(Sleep(30));
  absl::Notification group_seen;
  std::atomic<std::uint64_t> group{0};
  Captured<GatherResult> got;
  client_->GatherAsync({child},
                       {.return_exceptions = true,
                        .on_group =
                            [&](std::uint64_t id) {
                              group = id;
                              group_seen.Notify();
                            }},
                       got.Fn());
  ASSERT_TRUE(group_seen.WaitForNotificationWithTimeout(kPatience));
  EXPECT_EQ(got.calls(), 0u) << "done ran before on_group";
  EXPECT_EQ(GetOk(group.load()).children_size(), 1);
  ASSERT_TRUE(client_->Cancel(child).ok());
  auto g = got.Get();
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->group_id, group.load());
}

TEST_F(ClientTest, GatherOfNothingSucceedsEmpty) {
  auto g = client_->Gather({});
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(g->results.empty());
}

// --- WaitFor -----------------------------------------------------------------

TEST_F(ClientTest, WaitForReturnsTheFinishedJob) {
  auto job = client_->WaitFor(Echo("done"));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job->result().string_value(), "done");
}

TEST_F(ClientTest, WaitForAnExistingJobWithinItsTimeout) {
  const std::uint64_t id = SubmitOk(SleepThen(0.05, "ok"));
  auto job = client_->WaitFor(id, absl::Seconds(20));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->id(), id);
}

TEST_F(ClientTest, WaitForTimeoutIsDeadlineExceededAndCancelsTheJob) {
  const std::uint64_t id = SubmitOk(Sleep(30));
  auto job = client_->WaitFor(id, absl::Milliseconds(50));
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kDeadlineExceeded);
  std::optional<v1::ErrorDetails> details = ErrorDetailsOf(job.status());
  ASSERT_TRUE(details.has_value());
  EXPECT_EQ(details->job_id(), id);
  EXPECT_EQ(details->error().type(), "TimeoutError");
  // The call returned after the cancellation finished.
  EXPECT_EQ(GetOk(id).state(), v1::JOB_STATE_CANCELLED);
}

TEST_F(ClientTest, WaitForFailedJobIsAbortedWithDetails) {
  auto job = client_->WaitFor(Fail("KeyError", "missing"));
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(Msg(job.status()), HasSubstr("failed: KeyError: missing"));
  ASSERT_TRUE(ErrorDetailsOf(job.status()).has_value());
  EXPECT_EQ(ErrorDetailsOf(job.status())->error().type(), "KeyError");
}

TEST_F(ClientTest, WaitForAsyncReportsACancelledJobAsCancelled) {
  const std::uint64_t id = SubmitOk(Sleep(30));
  Captured<v1::Job> got;
  client_->WaitForAsync(id, std::nullopt, got.Fn());
  ASSERT_TRUE(client_->Cancel(id, "stop").ok());
  auto job = got.Get();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(Msg(job.status()), HasSubstr("was cancelled: CancelledError"));
  ASSERT_TRUE(ErrorDetailsOf(job.status()).has_value());
  EXPECT_EQ(ErrorDetailsOf(job.status())->job_id(), id);
}

// --- AsCompleted -------------------------------------------------------------

TEST_F(ClientTest, AsCompletedYieldsJobsInCompletionOrder) {
  AsCompletedReader reader = client_->AsCompleted(
      {SleepThen(0.6, "slow"), SleepThen(0.05, "mid"), Echo("fast")});
  std::vector<std::size_t> order;
  std::vector<std::string> results;
  for (;;) {
    auto c = reader.Next();
    ASSERT_TRUE(c.ok()) << c.status();
    if (!c->has_value()) break;
    order.push_back((*c)->index);
    results.push_back((*c)->job.result().string_value());
    ASSERT_EQ(reader.ids().size(), 3u);
    EXPECT_EQ(reader.ids()[(*c)->index], (*c)->job.id());
  }
  EXPECT_THAT(order, ElementsAre(2u, 1u, 0u));
  EXPECT_THAT(results, ElementsAre("fast", "mid", "slow"));
  // After the end, Next keeps saying so.
  auto again = reader.Next();
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->has_value());
}

TEST_F(ClientTest, AsCompletedIdsAreEmptyBeforeTheFirstNext) {
  AsCompletedReader reader = client_->AsCompleted({Echo("x")});
  EXPECT_TRUE(reader.ids().empty());
  ASSERT_TRUE(reader.Next().ok());
  EXPECT_EQ(reader.ids().size(), 1u);
}

TEST_F(ClientTest, AsCompletedTimeoutIsDeadlineExceededAndKeepsTheJobs) {
  const std::uint64_t id = SubmitOk(Sleep(30));
  AsCompletedReader reader =
      client_->AsCompleted({Echo("quick"), id}, absl::Milliseconds(100));
  auto first = reader.Next();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(first->has_value());
  auto second = reader.Next();
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(reader.ids(), ::testing::Contains(id));
  EXPECT_TRUE(RunsOn(GetOk(id)));
  // The error stays.
  EXPECT_EQ(reader.Next().status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(ClientTest, AsCompletedOfNothingEndsAtOnce) {
  AsCompletedReader reader = client_->AsCompleted({});
  auto c = reader.Next();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->has_value());
  EXPECT_TRUE(reader.ids().empty());
}

TEST_F(ClientTest, AsCompletedUnknownIdIsNotFound) {
  AsCompletedReader reader = client_->AsCompleted({std::uint64_t{424242}});
  auto c = reader.Next();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientTest, AsCompletedReaderDestroyedUnreadIsFine) {
  const std::uint64_t id = SubmitOk(Sleep(30));
  { AsCompletedReader reader = client_->AsCompleted({id}); }
  {
    AsCompletedReader reader = client_->AsCompleted({Echo("x"), id});
    ASSERT_TRUE(reader.Next().ok());
  }
  // The client and the job are unaffected.
  EXPECT_TRUE(RunsOn(GetOk(id)));
}

TEST_F(ClientTest, AsCompletedReaderMovesAndTheMovedFromReaderFails) {
  AsCompletedReader a = client_->AsCompleted({Echo("x")});
  AsCompletedReader b = std::move(a);
  auto c = b.Next();
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ(a.Next().status().code(),  // NOLINT(bugprone-use-after-move)
            absl::StatusCode::kFailedPrecondition);
  a.Cancel();  // harmless
  a = client_->AsCompleted({Echo("y")});
  auto d = a.Next();
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(d->has_value());
  EXPECT_EQ((*d)->job.result().string_value(), "y");
}

TEST_F(ClientTest, AsCompletedCancelFromAnotherThreadEndsNextWithCancelled) {
  const std::uint64_t id = SubmitOk(Sleep(30));
  AsCompletedReader reader = client_->AsCompleted({id});
  absl::StatusOr<std::optional<Completed>> result;
  std::thread reading([&] { result = reader.Next(); });
  reader.Cancel();
  reading.join();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(RunsOn(GetOk(id)));
}

TEST_F(ClientTest, AsCompletedAsyncGivesIdsThenJobsThenDone) {
  std::vector<std::uint64_t> ids;
  absl::Mutex mu;
  CapturedStream<Completed> stream;
  client_->AsCompletedAsync(
      {SleepThen(0.05, "second"), Echo("first")}, std::nullopt,
      [&](const std::vector<std::uint64_t>& v) {
        absl::MutexLock lock(&mu);
        EXPECT_TRUE(stream.items().empty()) << "a job before the ids";
        ids = v;
      },
      stream.OnItem(), stream.Done());
  ASSERT_TRUE(stream.Wait().ok());
  std::vector<Completed> jobs = stream.items();
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].index, 1u);
  EXPECT_EQ(jobs[1].index, 0u);
  absl::MutexLock lock(&mu);
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0], jobs[1].job.id());
  EXPECT_EQ(ids[1], jobs[0].job.id());
}

TEST_F(ClientTest, AsCompletedAsyncTimeoutEndsWithDeadlineExceeded) {
  const std::uint64_t id = SubmitOk(Sleep(30));
  CapturedStream<Completed> stream;
  client_->AsCompletedAsync({id}, absl::Milliseconds(50), nullptr,
                            stream.OnItem(), stream.Done());
  EXPECT_EQ(stream.Wait().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(stream.items().empty());
}

TEST_F(ClientTest, AsCompletedAsyncCancelEndsWithCancelled) {
  const std::uint64_t id = SubmitOk(Sleep(30));
  CapturedStream<Completed> stream;
  CallHandle handle = client_->AsCompletedAsync({id}, std::nullopt, nullptr,
                                                stream.OnItem(), stream.Done());
  handle.Cancel();
  EXPECT_EQ(stream.Wait().code(), absl::StatusCode::kCancelled);
}

// --- RunGroup ----------------------------------------------------------------

TEST_F(ClientTest, RunGroupReturnsResultsInInputOrder) {
  std::atomic<std::uint64_t> group{0};
  auto g = client_->RunGroup(
      {SleepThen(0.05, "a"), Echo("b")},
      {.name = "tg", .on_group = [&](std::uint64_t id) { group = id; }});
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->group_id, group.load());
  ASSERT_EQ(g->results.size(), 2u);
  EXPECT_EQ(g->results[0].result().string_value(), "a");
  EXPECT_EQ(g->results[1].result().string_value(), "b");
  EXPECT_EQ(GetOk(g->group_id).name(), "tg");
}

TEST_F(ClientTest, RunGroupFailsFastListingEveryFailure) {
  const absl::Time start = absl::Now();
  auto g = client_->RunGroup({Fail("ValueError", "boom"), Sleep(30)});
  ASSERT_FALSE(g.ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(10)) << "the sibling ran on";
  EXPECT_EQ(g.status().code(), absl::StatusCode::kAborted) << g.status();
  std::optional<v1::ErrorDetails> details = ErrorDetailsOf(g.status());
  ASSERT_TRUE(details.has_value());
  EXPECT_EQ(details->error().type(), "ExceptionGroup");
  ASSERT_EQ(details->failures_size(), 1);
  EXPECT_EQ(details->failures(0).error().type(), "ValueError");
  EXPECT_EQ(details->failures(0).error().message(), "boom");
  // The group is the failing job; its sleeping child was cancelled.
  v1::Job group = GetOk(details->job_id());
  ASSERT_EQ(group.children_size(), 2);
  EXPECT_EQ(details->failures(0).job_id(), group.children(0));
  EXPECT_EQ(GetOk(group.children(1)).state(), v1::JOB_STATE_CANCELLED);
}

TEST_F(ClientTest, RunGroupAsyncCallsOnGroupThenDone) {
  std::atomic<std::uint64_t> group{0};
  std::atomic<bool> done_before_group{false};
  Captured<GroupResult> got;
  client_->RunGroupAsync({Echo("x")},
                         {.on_group =
                              [&](std::uint64_t id) {
                                done_before_group = got.calls() > 0;
                                group = id;
                              }},
                         got.Fn());
  auto g = got.Get();
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->group_id, group.load());
  EXPECT_FALSE(done_before_group.load());
}

TEST_F(ClientTest, RunGroupInvalidSpecNamesTheField) {
  auto g = client_->RunGroup({Echo("x"), Spec("sleep")});
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(g.status()), HasSubstr("jobs[1].args.seconds"));
}

// --- Watch -------------------------------------------------------------------

TEST_F(ClientTest, WatchOnIdsReportsStatesAndEndsWhenAllAreDone) {
  const std::uint64_t a = SubmitOk(SleepThen(0.05, "a"));
  const std::uint64_t b = SubmitOk(Echo("b"));
  WatchReader reader = client_->Watch({a, b});
  std::vector<v1::WatchResponse> events;
  for (;;) {
    auto e = reader.Next();
    ASSERT_TRUE(e.ok()) << e.status();
    if (!e->has_value()) break;
    events.push_back(**e);
  }
  auto last_state = [&](std::uint64_t id) {
    v1::JobState s = v1::JOB_STATE_UNSPECIFIED;
    for (const auto& e : events) {
      if (e.id() == id) s = e.state();
    }
    return s;
  };
  EXPECT_EQ(last_state(a), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(last_state(b), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(events.front().kind(), "sleep");
}

TEST_F(ClientTest, WatchUnknownIdIsNotFound) {
  WatchReader reader = client_->Watch({999999});
  EXPECT_EQ(reader.Next().status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientTest, WatchEverythingReportsAJobSubmittedAfterItReturns) {
  WatchReader reader = client_->Watch();
  // Watch() returned subscribed: this job's events cannot be missed.
  const std::uint64_t id = SubmitOk(Echo("seen"));
  v1::JobState last = v1::JOB_STATE_UNSPECIFIED;
  while (last != v1::JOB_STATE_SUCCEEDED) {
    auto e = reader.Next();
    ASSERT_TRUE(e.ok()) << e.status();
    ASSERT_TRUE(e->has_value()) << "watching everything ended by itself";
    if ((*e)->id() == id) last = (*e)->state();
  }
}

TEST_F(ClientTest, WatchEverythingEndsWithCancelledOnCancel) {
  WatchReader reader = client_->Watch();
  absl::StatusOr<std::optional<v1::WatchResponse>> result;
  std::thread reading([&] {
    do {
      result = reader.Next();
    } while (result.ok() && result->has_value());
  });
  reader.Cancel();
  reading.join();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
}

TEST_F(ClientTest, WatchAsyncOnIdsEndsOkAfterTheLastJob) {
  const std::uint64_t id = SubmitOk(SleepThen(0.05, "x"));
  CapturedStream<v1::WatchResponse> stream;
  client_->WatchAsync({id}, stream.OnItem(), stream.Done());
  ASSERT_TRUE(stream.Wait().ok());
  std::vector<v1::WatchResponse> events = stream.items();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(ClientTest, WatchAsyncEverythingEndsWithCancelledOnCancel) {
  CapturedStream<v1::WatchResponse> stream;
  CallHandle handle = client_->WatchAsync({}, stream.OnItem(), stream.Done());
  // The callback form does not say when the daemon has subscribed it:
  // submit until a job shows up.
  for (int i = 0; i < 200 && !stream.AwaitItem(absl::Milliseconds(50)); ++i) {
    ASSERT_TRUE(client_->Submit(Echo("seen?")).ok());
  }
  EXPECT_FALSE(stream.items().empty());
  handle.Cancel();
  EXPECT_EQ(stream.Wait().code(), absl::StatusCode::kCancelled);
}

// --- List --------------------------------------------------------------------

TEST_F(ClientTest, ListFiltersByStateKindAndNamePrefix) {
  std::vector<Spec> specs = {Echo("1").Name("alpha-1"),
                             Echo("2").Name("alpha-2"), Echo("3").Name("beta"),
                             Sleep(30).Name("alpha-sleep")};
  auto refs = client_->Submit(specs);
  ASSERT_TRUE(refs.ok()) << refs.status();
  for (int i = 0; i < 3; ++i) AwaitDone((*refs)[i].id);

  auto echoes = client_->List({.kind = "echo", .name_prefix = "alpha"});
  ASSERT_TRUE(echoes.ok()) << echoes.status();
  ASSERT_EQ(echoes->jobs.size(), 2u);
  EXPECT_EQ(echoes->jobs[0].name(), "alpha-1");
  EXPECT_EQ(echoes->jobs[1].name(), "alpha-2");
  EXPECT_TRUE(echoes->next_page_token.empty());

  auto succeeded = client_->List({.state = v1::JOB_STATE_SUCCEEDED});
  ASSERT_TRUE(succeeded.ok()) << succeeded.status();
  std::vector<std::string> names;
  for (const v1::Job& j : succeeded->jobs) names.push_back(j.name());
  EXPECT_THAT(names, ElementsAre("alpha-1", "alpha-2", "beta"));
}

TEST_F(ClientTest, ListPagesWithTheNextPageToken) {
  for (int i = 0; i < 5; ++i) SubmitOk(Echo("x"));
  auto page = client_->List({.page_size = 2});
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->jobs.size(), 2u);
  ASSERT_FALSE(page->next_page_token.empty());
  auto next =
      client_->List({.page_size = 2, .page_token = page->next_page_token});
  ASSERT_TRUE(next.ok()) << next.status();
  ASSERT_EQ(next->jobs.size(), 2u);
  EXPECT_GT(next->jobs[0].id(), page->jobs[1].id());
}

TEST_F(ClientTest, ListAllFollowsEveryPage) {
  for (int i = 0; i < 5; ++i) SubmitOk(Echo("x"));
  auto all = client_->ListAll({.page_size = 2});
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 5u);
  EXPECT_TRUE(std::is_sorted(
      all->begin(), all->end(),
      [](const v1::Job& a, const v1::Job& b) { return a.id() < b.id(); }));
}

TEST_F(ClientTest, ListAllStopsAtMaxJobs) {
  for (int i = 0; i < 5; ++i) SubmitOk(Echo("x"));
  auto some = client_->ListAll({.page_size = 2}, 3);
  ASSERT_TRUE(some.ok()) << some.status();
  EXPECT_EQ(some->size(), 3u);
  auto few = client_->ListAll({}, 4);
  ASSERT_TRUE(few.ok()) << few.status();
  EXPECT_EQ(few->size(), 4u);
}

TEST_F(ClientTest, ListBadPageSizeIsInvalidArgument) {
  auto page = client_->List({.page_size = 5000});
  ASSERT_FALSE(page.ok());
  EXPECT_EQ(page.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(page.status()), HasSubstr("page_size"));
}

// --- Limits, kinds, health ---------------------------------------------------

TEST_F(ClientTest, DeclareLimitThenListLimits) {
  auto limit = client_->DeclareLimit("api", 2);
  ASSERT_TRUE(limit.ok()) << limit.status();
  EXPECT_EQ(limit->name(), "api");
  EXPECT_EQ(limit->permits(), 2u);
  auto limits = client_->ListLimits();
  ASSERT_TRUE(limits.ok()) << limits.status();
  auto it = std::find_if(limits->begin(), limits->end(),
                         [](const v1::Limit& l) { return l.name() == "api"; });
  ASSERT_NE(it, limits->end());
  EXPECT_EQ(it->permits(), 2u);
}

TEST_F(ClientTest, RedeclaringALimitWithAnotherSizeIsFailedPrecondition) {
  ASSERT_TRUE(client_->DeclareLimit("db", 1).ok());
  EXPECT_TRUE(client_->DeclareLimit("db", 1).ok());
  auto again = client_->DeclareLimit("db", 3);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ClientTest, ListKindsHasTheBuiltins) {
  auto kinds = client_->ListKinds();
  ASSERT_TRUE(kinds.ok()) << kinds.status();
  std::vector<std::string> names;
  for (const v1::Kind& k : *kinds) {
    names.push_back(k.name());
    if (k.name() == "blocking") {
      EXPECT_TRUE(k.blocking());
    }
    if (k.name() == "sleep") {
      EXPECT_FALSE(k.blocking());
    }
    EXPECT_FALSE(k.description().empty()) << k.name();
  }
  for (const char* want :
       {"sleep", "echo", "fail", "factorial", "blocking", "spin", "hash"}) {
    EXPECT_THAT(names, ::testing::Contains(want));
  }
}

TEST_F(ClientTest, CheckHealthIsServing) {
  auto health = client_->CheckHealth();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, Health::kServing);
}

// --- Connect -----------------------------------------------------------------

TEST_F(ClientTest, ConnectToADeadPortFailsFastNamingTheAddress) {
  const std::string address = absl::StrCat("127.0.0.1:", DeadPort());
  const absl::Time start = absl::Now();
  auto client = Client::Connect(
      {.address = address, .connect_timeout = absl::Milliseconds(300)});
  ASSERT_FALSE(client.ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(client.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Msg(client.status()),
            absl::StrCat("cannot reach the awaitd daemon at ", address,
                         " within 300ms (is it running? `make run` starts "
                         "one)"));
}

TEST_F(ClientTest, ConnectWithoutWaitingLetsTheFirstCallFail) {
  auto client =
      Client::Connect({.address = absl::StrCat("127.0.0.1:", DeadPort()),
                       .connect_timeout = absl::ZeroDuration()});
  ASSERT_TRUE(client.ok()) << client.status();
  auto kinds = (*client)->ListKinds({.deadline = absl::Seconds(5)});
  ASSERT_FALSE(kinds.ok());
  EXPECT_THAT(kinds.status().code(),
              ::testing::AnyOf(absl::StatusCode::kUnavailable,
                               absl::StatusCode::kDeadlineExceeded));
}

TEST_F(ClientTest, ConnectOverAGivenChannelUsesIt) {
  auto client = Client::Connect({.channel = NewChannel()});
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ((*client)->channel().get(), (*client)->options().channel.get());
  EXPECT_TRUE((*client)->ListKinds().ok());
}

TEST_F(ClientTest, MissingTlsCaFileIsInvalidArgumentNamingIt) {
  auto client = Client::Connect(
      {.address = daemon_->address(), .tls_ca_file = "/nonexistent/ca.pem"});
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(client.status()), HasSubstr("tls_ca_file"));
  EXPECT_THAT(Msg(client.status()), HasSubstr("/nonexistent/ca.pem"));
}

TEST_F(ClientTest, TlsCertWithoutKeyIsInvalidArgument) {
  auto client = Client::Connect(
      {.address = daemon_->address(), .tls_cert_file = "/tmp/cert.pem"});
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(client.status()), HasSubstr("tls_key_file"));
}

TEST_F(ClientTest, TlsServerNameWithoutTlsIsInvalidArgument) {
  auto client = Client::Connect(
      {.address = daemon_->address(), .tls_server_name = "awaitd.local"});
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(client.status()), HasSubstr("tls_server_name"));
}

TEST_F(ClientTest, TokenThatIsNotAHeaderValueIsInvalidArgument) {
  auto client =
      Client::Connect({.address = daemon_->address(), .token = "a\nb"});
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(client.status()), HasSubstr("token"));
}

// A Jobs service that records the authorization header of ListKinds.
class RecordingService final : public v1::Jobs::CallbackService {
 public:
  grpc::ServerUnaryReactor* ListKinds(grpc::CallbackServerContext* ctx,
                                      const v1::ListKindsRequest*,
                                      v1::ListKindsResponse*) override {
    {
      absl::MutexLock lock(&mu_);
      auto it = ctx->client_metadata().find("authorization");
      if (it != ctx->client_metadata().end()) {
        authorization_ = std::string(it->second.data(), it->second.size());
      }
    }
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  std::string authorization() {
    absl::MutexLock lock(&mu_);
    return authorization_;
  }

 private:
  absl::Mutex mu_;
  std::string authorization_ ABSL_GUARDED_BY(mu_);
};

TEST(ClientToken, IsSentAsBearerAuthorization) {
  RecordingService service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(port, 0);
  {
    auto client = Client::Connect({.address = absl::StrCat("127.0.0.1:", port),
                                   .token = "s3cret",
                                   .default_deadline = kPatience});
    ASSERT_TRUE(client.ok()) << client.status();
    ASSERT_TRUE((*client)->ListKinds().ok());
  }
  EXPECT_EQ(service.authorization(), "Bearer s3cret");
  server->Shutdown();
}

// --- Status helpers ----------------------------------------------------------

TEST_F(ClientTest, JobStatusOfAFailedJobMatchesTheDaemonsStatus) {
  const std::uint64_t id = SubmitOk(Fail("ValueError", "boom"));
  auto call = client_->WaitFor(id);
  ASSERT_FALSE(call.ok());
  absl::Status built = JobStatus(GetOk(id));
  EXPECT_EQ(built.code(), call.status().code());
  EXPECT_EQ(built.message(), call.status().message());
  EXPECT_EQ(Msg(built), absl::StrCat("job ", id, " (Job-", id,
                                     ") failed: ValueError: boom"));
  ASSERT_TRUE(ErrorDetailsOf(built).has_value());
  EXPECT_EQ(ErrorDetailsOf(built)->SerializeAsString(),
            ErrorDetailsOf(call.status())->SerializeAsString());
}

TEST_F(ClientTest, JobStatusOfACancelledJobIsCancelled) {
  const std::uint64_t id = SubmitOk(Sleep(30));
  ASSERT_TRUE(client_->Cancel(id, "msg").ok());
  absl::Status s = JobStatus(AwaitDone(id));
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(Msg(s), absl::StrCat("job ", id, " (Job-", id,
                                 ") was cancelled: CancelledError: msg"));
}

TEST_F(ClientTest, JobStatusOfAGroupListsItsFailures) {
  auto g = client_->RunGroup({Fail("ValueError", "a"), Fail("KeyError", "b")});
  ASSERT_FALSE(g.ok());
  const std::uint64_t group = ErrorDetailsOf(g.status())->job_id();
  absl::Status s = JobStatus(GetOk(group));
  EXPECT_EQ(s.code(), g.status().code());
  EXPECT_EQ(s.message(), g.status().message());
  EXPECT_EQ(ErrorDetailsOf(s)->failures_size(),
            ErrorDetailsOf(g.status())->failures_size());
}

TEST(ClientJobStatus, SucceededIsOkAndUnfinishedIsFailedPrecondition) {
  v1::Job job;
  job.set_id(3);
  job.set_name("Job-3");
  job.set_state(v1::JOB_STATE_SUCCEEDED);
  EXPECT_TRUE(JobStatus(job).ok());
  job.set_state(v1::JOB_STATE_RUNNING);
  absl::Status s = JobStatus(job);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(s), HasSubstr("job 3 (Job-3) is not done (running)"));
  EXPECT_FALSE(ErrorDetailsOf(s).has_value());
}

TEST(ClientErrorDetails, StatusWithoutDetailsHasNone) {
  EXPECT_FALSE(ErrorDetailsOf(absl::AbortedError("x")).has_value());
  EXPECT_FALSE(ErrorDetailsOf(absl::OkStatus()).has_value());
}

TEST(ClientStateName, IsLowerCase) {
  EXPECT_EQ(StateName(v1::JOB_STATE_PENDING), "pending");
  EXPECT_EQ(StateName(v1::JOB_STATE_RUNNING), "running");
  EXPECT_EQ(StateName(v1::JOB_STATE_SUCCEEDED), "succeeded");
  EXPECT_EQ(StateName(v1::JOB_STATE_FAILED), "failed");
  EXPECT_EQ(StateName(v1::JOB_STATE_CANCELLED), "cancelled");
  EXPECT_EQ(StateName(v1::JOB_STATE_UNSPECIFIED), "unspecified");
}

}  // namespace
}  // namespace awaitd::client
