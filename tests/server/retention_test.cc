// Retention of finished jobs: forgotten after --result_ttl, at most
// --max_finished_jobs of them kept (the oldest go first), unfinished jobs
// never forgotten, idempotency keys of forgotten jobs free again, and memory
// bounded under a long stream of jobs.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/daemon_fixture.h"
#include "tests/server/status_checks.h"

namespace awaitd::server::testing {
namespace {

using checks::CountJobs;
using checks::Describe;
using checks::HasStatus;
using Code = grpc::StatusCode;

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

class RetentionTest : public DaemonTest {
 protected:
  RetentionTest() { start_in_setup_ = false; }

  void Start(absl::Duration ttl, std::size_t max_finished,
             absl::Duration sweep_interval = absl::Milliseconds(20)) {
    DaemonOptions o = DefaultOptions();
    o.shutdown_grace = absl::ZeroDuration();
    o.log_level = LogLevel::kError;
    o.jobs.result_ttl = ttl;
    o.jobs.max_finished_jobs = max_finished;
    o.jobs.sweep_interval = sweep_interval;
    StartDaemon(std::move(o));
  }

  grpc::Status Get(std::uint64_t id, v1::Job* out = nullptr) {
    v1::GetRequest req;
    req.add_ids(id);
    v1::GetResponse resp;
    grpc::Status s = stub_->Get(Ctx().get(), req, &resp);
    if (s.ok() && out != nullptr) *out = resp.jobs(0);
    return s;
  }

  // Polls Get until the job is forgotten; returns the NOT_FOUND status (or
  // the last status seen when `within` passes).
  grpc::Status AwaitForgotten(std::uint64_t id, absl::Duration within) {
    const absl::Time deadline = absl::Now() + within;
    for (;;) {
      grpc::Status s = Get(id);
      if (s.error_code() != Code::OK || absl::Now() > deadline) return s;
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  std::vector<std::uint64_t> SubmitEchoes(int n, int first_value = 0) {
    std::vector<v1::JobSpec> specs;
    for (int i = 0; i < n; ++i) {
      specs.push_back(
          Spec("echo", "{\"value\": " + std::to_string(first_value + i) + "}"));
    }
    return SubmitOk(specs);
  }

  // Waits (one Wait call) until all of `ids` are done.
  void AwaitAll(const std::vector<std::uint64_t>& ids) {
    v1::WaitRequest req;
    for (std::uint64_t id : ids) *req.add_jobs() = Input(id);
    v1::WaitResponse resp;
    grpc::Status s = stub_->Wait(Ctx(60).get(), req, &resp);
    ASSERT_TRUE(s.ok()) << Describe(s);
    ASSERT_EQ(resp.pending_size(), 0);
  }
};

TEST_F(RetentionTest, FinishedJobIsForgottenAfterResultTtl) {
  const absl::Duration ttl = absl::Milliseconds(300);
  Start(ttl, 1000);
  auto ids = SubmitEchoes(1);
  ASSERT_EQ(ids.size(), 1u);
  const v1::Job done = WaitForOk(ids[0]);
  const absl::Time finished = FromProto(done.finished_at());

  grpc::Status s = AwaitForgotten(ids[0], absl::Seconds(10));
  const absl::Time forgotten_by = absl::Now();
  EXPECT_TRUE(HasStatus(s, Code::NOT_FOUND, {"ids[0]", "result_ttl"}));
  // Not before its time: retained at least result_ttl after it finished.
  EXPECT_GE(forgotten_by - finished, ttl);
  EXPECT_EQ(CountJobs(*stub_), 0u);
  EXPECT_EQ(daemon_->jobs().jobs_retained(), 0u);
  // Every other call that names it agrees.
  v1::CancelRequest cancel;
  cancel.add_ids(ids[0]);
  v1::CancelResponse cancel_resp;
  EXPECT_TRUE(HasStatus(stub_->Cancel(Ctx().get(), cancel, &cancel_resp),
                        Code::NOT_FOUND, "ids[0]"));
  v1::WaitForResponse wf;
  EXPECT_TRUE(HasStatus(WaitFor(Input(ids[0]), &wf), Code::NOT_FOUND,
                        {"job.id", "result_ttl"}));
}

TEST_F(RetentionTest, FinishedJobIsKeptWithinResultTtl) {
  Start(absl::Hours(1), 1000);
  auto ids = SubmitEchoes(3);
  for (std::uint64_t id : ids) WaitForOk(id);
  absl::SleepFor(absl::Milliseconds(200));  // ten sweep intervals
  daemon_->jobs().SweepNow();
  for (std::uint64_t id : ids) {
    v1::Job j;
    ASSERT_TRUE(Get(id, &j).ok());
    EXPECT_EQ(j.state(), v1::JOB_STATE_SUCCEEDED);
  }
}

TEST_F(RetentionTest, MaxFinishedJobsKeepsOnlyTheNewest) {
  constexpr int kKeep = 100;
  constexpr int kExtra = 30;
  Start(absl::Hours(1), kKeep);
  // The old ones finish before the new ones are even submitted.
  auto old_ids = SubmitEchoes(kExtra);
  ASSERT_NO_FATAL_FAILURE(AwaitAll(old_ids));
  auto new_ids = SubmitEchoes(kKeep, 1000);
  ASSERT_NO_FATAL_FAILURE(AwaitAll(new_ids));
  daemon_->jobs().SweepNow();

  for (std::uint64_t id : old_ids) {
    EXPECT_TRUE(HasStatus(Get(id), Code::NOT_FOUND, "result_ttl"))
        << "old job " << id;
  }
  v1::GetRequest req;
  for (std::uint64_t id : new_ids) req.add_ids(id);
  v1::GetResponse resp;
  grpc::Status s = stub_->Get(Ctx().get(), req, &resp);
  ASSERT_TRUE(s.ok()) << Describe(s);
  ASSERT_EQ(resp.jobs_size(), kKeep);
  for (int i = 0; i < kKeep; ++i) {
    EXPECT_EQ(resp.jobs(i).result().number_value(), 1000 + i);
  }
  EXPECT_EQ(daemon_->jobs().jobs_retained(), static_cast<std::size_t>(kKeep));
  EXPECT_EQ(CountJobs(*stub_), static_cast<std::size_t>(kKeep));
}

TEST_F(RetentionTest, UnfinishedJobsAreNeverForgotten) {
  const absl::Duration ttl = absl::Milliseconds(100);
  DaemonOptions o = DefaultOptions();
  o.shutdown_grace = absl::ZeroDuration();
  o.log_level = LogLevel::kError;
  o.jobs.result_ttl = ttl;
  o.jobs.max_finished_jobs = 5;
  o.jobs.sweep_interval = absl::Milliseconds(10);
  o.limits = {"one:1"};
  StartDaemon(std::move(o));

  v1::JobSpec delayed = Spec("echo", R"({"value": "later"})");
  *delayed.mutable_delay() = Seconds(3600);
  v1::JobSpec holder = Spec("sleep", R"({"seconds": 3600})");
  holder.add_limits("one");
  v1::JobSpec waiter = Spec("echo", R"({"value": "waits"})");
  waiter.add_limits("one");
  auto running = SubmitOk({Spec("sleep", R"({"seconds": 3600})")});
  auto pending = SubmitOk({delayed});
  auto holding = SubmitOk({holder});
  auto waiting = SubmitOk({waiter});  // PENDING behind the holder
  ASSERT_EQ(running.size() + pending.size() + holding.size() + waiting.size(),
            4u);
  const std::vector<std::uint64_t> live = {running[0], pending[0], holding[0],
                                           waiting[0]};

  // Far more finished jobs than max_finished_jobs, and several TTLs. Each
  // round waits for its echoes by the count of jobs not done rather than by
  // a Wait naming them: with max_finished_jobs=5 the sweep may forget an
  // echo before such a Wait arrives (NOT_FOUND, once under ASan in CI).
  for (int round = 0; round < 5; ++round) {
    auto done = SubmitEchoes(20);
    ASSERT_EQ(done.size(), 20u);
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (daemon_->jobs().jobs_not_done() > live.size() &&
           absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    ASSERT_EQ(daemon_->jobs().jobs_not_done(), live.size());
    absl::SleepFor(ttl);
  }
  absl::SleepFor(3 * ttl);
  daemon_->jobs().SweepNow();

  for (std::uint64_t id : live) {
    v1::Job j;
    grpc::Status s = Get(id, &j);
    ASSERT_TRUE(s.ok()) << "job " << id << ": " << Describe(s);
    EXPECT_FALSE(j.state() == v1::JOB_STATE_SUCCEEDED ||
                 j.state() == v1::JOB_STATE_FAILED ||
                 j.state() == v1::JOB_STATE_CANCELLED)
        << j.ShortDebugString();
  }
  EXPECT_LE(daemon_->jobs().jobs_retained(), live.size() + 5);

  // Once they end, they are forgotten like any other.
  v1::CancelRequest cancel;
  for (std::uint64_t id : live) cancel.add_ids(id);
  v1::CancelResponse cancel_resp;
  ASSERT_TRUE(stub_->Cancel(Ctx().get(), cancel, &cancel_resp).ok());
  for (std::uint64_t id : live) {
    EXPECT_TRUE(HasStatus(AwaitForgotten(id, absl::Seconds(10)),
                          Code::NOT_FOUND, "result_ttl"));
  }
}

TEST_F(RetentionTest, IdempotencyKeyOfAForgottenJobCreatesANewJob) {
  Start(absl::Milliseconds(300), 1000);
  v1::JobSpec spec = Spec("echo", R"({"value": "once"})");
  spec.set_idempotency_key("order-17");

  v1::SubmitResponse first;
  ASSERT_TRUE(Submit({spec}, &first).ok());
  ASSERT_EQ(first.jobs_size(), 1);
  EXPECT_FALSE(first.jobs(0).existing());
  const std::uint64_t id1 = first.jobs(0).id();
  WaitForOk(id1);

  // Retained (finished, within the TTL): the key still names it.
  v1::SubmitResponse again;
  ASSERT_TRUE(Submit({spec}, &again).ok());
  EXPECT_EQ(again.jobs(0).id(), id1);
  EXPECT_TRUE(again.jobs(0).existing());

  ASSERT_TRUE(
      HasStatus(AwaitForgotten(id1, absl::Seconds(10)), Code::NOT_FOUND));
  v1::SubmitResponse fresh;
  ASSERT_TRUE(Submit({spec}, &fresh).ok());
  const std::uint64_t id2 = fresh.jobs(0).id();
  EXPECT_NE(id2, id1);
  EXPECT_GT(id2, id1);  // ids are never reused
  EXPECT_FALSE(fresh.jobs(0).existing());
  EXPECT_EQ(WaitForOk(id2).result().string_value(), "once");

  v1::SubmitResponse again2;
  ASSERT_TRUE(Submit({spec}, &again2).ok());
  EXPECT_EQ(again2.jobs(0).id(), id2);
  EXPECT_TRUE(again2.jobs(0).existing());
}

TEST_F(RetentionTest, IdempotencyKeyOfAJobForgottenByCountCreatesANewJob) {
  Start(absl::Hours(1), 10);
  v1::JobSpec spec = Spec("echo", R"({"value": "k"})");
  spec.set_idempotency_key("evicted-by-count");
  v1::SubmitResponse first;
  ASSERT_TRUE(Submit({spec}, &first).ok());
  const std::uint64_t id1 = first.jobs(0).id();
  WaitForOk(id1);
  auto later = SubmitEchoes(20);
  ASSERT_NO_FATAL_FAILURE(AwaitAll(later));
  daemon_->jobs().SweepNow();
  ASSERT_TRUE(HasStatus(Get(id1), Code::NOT_FOUND));

  v1::SubmitResponse fresh;
  ASSERT_TRUE(Submit({spec}, &fresh).ok());
  EXPECT_NE(fresh.jobs(0).id(), id1);
  EXPECT_FALSE(fresh.jobs(0).existing());
}

// 200,000 jobs through a daemon that keeps 10,000: the table never grows
// with the number of jobs run, and settles at exactly max_finished_jobs.
TEST_F(RetentionTest, MemoryStaysBoundedUnderAStreamOfJobs) {
  constexpr int kTotal = 200'000;
  constexpr int kBatch = 5'000;
  constexpr std::size_t kKeep = 10'000;
  // The default sweep interval: the count trigger (an eighth over) must
  // keep up by itself.
  Start(absl::Hours(1), kKeep, absl::Seconds(1));

  std::vector<v1::JobSpec> specs(kBatch, Spec("echo", R"({"value": 1})"));
  std::size_t max_retained = 0;
  std::uint64_t first_id = 0;
  std::uint64_t last_id = 0;
  for (int done = 0; done < kTotal; done += kBatch) {
    auto ids = SubmitOk(specs);
    ASSERT_EQ(ids.size(), static_cast<std::size_t>(kBatch));
    if (first_id == 0) first_id = ids.front();
    last_id = ids.back();
    ASSERT_NO_FATAL_FAILURE(AwaitAll(ids));
    max_retained = std::max(max_retained, daemon_->jobs().jobs_retained());
  }
  // The background sweep alone brings it down to the limit plus at most an
  // eighth of it (the count trigger), promptly.
  const std::size_t one_sweep = kKeep / 8;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (daemon_->jobs().jobs_retained() > kKeep + one_sweep &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_LE(daemon_->jobs().jobs_retained(), kKeep + one_sweep);
  // During the run it never held more than a few batches' worth over the
  // limit (measured: 2 on 2 cores, 3 on one): bounded by the limit, not by
  // the 200,000 jobs run.
  EXPECT_LE(max_retained, kKeep + one_sweep + 8 * kBatch)
      << "the sweep fell behind";
  RecordProperty("max_retained", static_cast<int>(max_retained));

  daemon_->jobs().SweepNow();
  EXPECT_EQ(daemon_->jobs().jobs_retained(), kKeep);
  EXPECT_EQ(daemon_->jobs().jobs_not_done(), 0u);
  EXPECT_TRUE(HasStatus(Get(first_id), Code::NOT_FOUND));
  EXPECT_TRUE(Get(last_id).ok());
  EXPECT_TRUE(Get(last_id - kKeep + 1).ok());
  EXPECT_TRUE(HasStatus(Get(last_id - kKeep), Code::NOT_FOUND));
}

}  // namespace
}  // namespace awaitd::server::testing
