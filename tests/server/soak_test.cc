// Soak: 100,000 mixed jobs from four client threads, each on its own
// channel, then a full accounting. Every submitted id is found exactly once,
// in a final state consistent with what was asked of it, the per-state
// counts add up, and the daemon has nothing left to do.
//
// The mix, per job (by its index in its thread):
//   echo        SUCCEEDED with its value
//   sleep       a few ms, SUCCEEDED with its result
//   limited     a short sleep holding a declared limit, SUCCEEDED
//   fail        FAILED with its type and message
//   cancel      a 300 ms sleep, then Cancel: CANCELLED if Cancel said true,
//               else (it finished first) SUCCEEDED
//   cancel_echo an echo, then Cancel: usually already done (false)
//   timeout     a 5 s sleep with a 2 ms timeout: FAILED TimeoutError
//   waitfor     a 5 s sleep, WaitFor with a 10 ms timeout: the call fails
//               DEADLINE_EXCEEDED and the job is CANCELLED
//   waitfor_ok  an echo, WaitFor with a 30 s timeout: its value
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/server/daemon_fixture.h"
#include "tests/server/status_checks.h"

namespace awaitd::server::testing {
namespace {

using checks::Describe;
using checks::ListJobs;
using Code = grpc::StatusCode;

constexpr int kThreads = 4;
constexpr int kJobsPerThread = 25'000;
constexpr int kBatch = 500;
constexpr int kTotal = kThreads * kJobsPerThread;

enum class Mix {
  kEcho,
  kSleep,
  kLimited,
  kFail,
  kCancel,
  kCancelEcho,
  kTimeout,
  kWaitFor,
  kWaitForOk,
};

// 20 slots per cycle; WaitFor calls are slow (one RPC each), so only one in
// a batch's worth of slots uses them.
Mix MixOf(int i) {
  if (i % kBatch == 0) return Mix::kWaitFor;
  if (i % kBatch == 1) return Mix::kWaitForOk;
  switch (i % 20) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
      return Mix::kEcho;
    case 6:
    case 7:
    case 8:
      return Mix::kSleep;
    case 9:
      return Mix::kLimited;
    case 10:
    case 11:
      return Mix::kFail;
    case 12:
    case 13:
    case 14:
      return Mix::kCancel;
    case 15:
      return Mix::kCancelEcho;
    case 16:
    case 17:
      return Mix::kTimeout;
    default:
      return Mix::kEcho;
  }
}

struct Record {
  std::uint64_t id = 0;
  Mix mix = Mix::kEcho;
  double tag = 0;  // the value an echo / sleep returns
  bool cancel_called = false;
  bool cancel_returned = false;
  bool waitfor_called = false;
  grpc::StatusCode waitfor_code = grpc::StatusCode::OK;
};

v1::JobSpec SpecFor(Mix mix, double tag) {
  const std::string t = std::to_string(static_cast<std::int64_t>(tag));
  switch (mix) {
    case Mix::kEcho:
    case Mix::kCancelEcho:
    case Mix::kWaitForOk:
      return Spec("echo", "{\"value\": " + t + "}");
    case Mix::kSleep:
      return Spec("sleep", "{\"seconds\": 0.00" +
                               std::to_string(1 + (static_cast<int>(tag) % 5)) +
                               ", \"result\": " + t + "}");
    case Mix::kLimited: {
      v1::JobSpec s =
          Spec("sleep", "{\"seconds\": 0.0005, \"result\": " + t + "}");
      s.add_limits("soak");
      return s;
    }
    case Mix::kFail:
      return Spec("fail",
                  "{\"type\": \"ValueError\", \"message\": \"bad " + t + "\"}");
    case Mix::kCancel:
      return Spec("sleep", "{\"seconds\": 0.3, \"result\": " + t + "}");
    case Mix::kTimeout: {
      v1::JobSpec s = Spec("sleep", R"({"seconds": 5})");
      *s.mutable_timeout() = Seconds(0.002);
      return s;
    }
    case Mix::kWaitFor:
      return Spec("sleep", R"({"seconds": 5})");
  }
  return Spec("echo", R"({"value": 0})");
}

class SoakTest : public DaemonTest {
 protected:
  SoakTest() { start_in_setup_ = false; }

  void SetUp() override {
    DaemonOptions o = DefaultOptions();
    o.shutdown_grace = absl::ZeroDuration();
    o.log_level = LogLevel::kError;
    o.jobs.max_finished_jobs = 200'000;  // nothing is forgotten
    o.jobs.result_ttl = absl::Hours(1);
    o.limits = {"soak:8"};
    ASSERT_NO_FATAL_FAILURE(StartDaemon(std::move(o)));
  }

  // One client: its own channel, batches of kBatch, a Cancel per batch for
  // the cancel targets, the batch's WaitFor calls.
  void Client(int thread, std::vector<Record>* records) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // its own connection
    args.SetMaxReceiveMessageSize(256 << 20);
    auto channel = grpc::CreateCustomChannel(
        daemon_->address(), grpc::InsecureChannelCredentials(), args);
    auto stub = v1::Jobs::NewStub(channel);
    records->resize(kJobsPerThread);
    for (int base = 0; base < kJobsPerThread; base += kBatch) {
      v1::SubmitRequest req;
      for (int i = base; i < base + kBatch; ++i) {
        Record& r = (*records)[i];
        r.mix = MixOf(i);
        r.tag = thread * 1'000'000.0 + i;
        *req.add_jobs() = SpecFor(r.mix, r.tag);
      }
      v1::SubmitResponse resp;
      grpc::Status s = stub->Submit(Ctx(60).get(), req, &resp);
      ASSERT_TRUE(s.ok()) << Describe(s);
      ASSERT_EQ(resp.jobs_size(), kBatch);
      for (int i = base; i < base + kBatch; ++i) {
        (*records)[i].id = resp.jobs(i - base).id();
      }

      v1::CancelRequest cancel;
      cancel.set_message("soak cancel");
      std::vector<int> cancelled_at;
      for (int i = base; i < base + kBatch; ++i) {
        const Mix m = (*records)[i].mix;
        if (m == Mix::kCancel || m == Mix::kCancelEcho) {
          cancel.add_ids((*records)[i].id);
          cancelled_at.push_back(i);
        }
      }
      v1::CancelResponse cancel_resp;
      s = stub->Cancel(Ctx(60).get(), cancel, &cancel_resp);
      ASSERT_TRUE(s.ok()) << Describe(s);
      ASSERT_EQ(cancel_resp.results_size(),
                static_cast<int>(cancelled_at.size()));
      for (std::size_t k = 0; k < cancelled_at.size(); ++k) {
        Record& r = (*records)[cancelled_at[k]];
        EXPECT_EQ(cancel_resp.results(k).id(), r.id);
        r.cancel_called = true;
        r.cancel_returned = cancel_resp.results(k).cancelled();
      }

      for (int i = base; i < base + kBatch; ++i) {
        Record& r = (*records)[i];
        if (r.mix != Mix::kWaitFor && r.mix != Mix::kWaitForOk) continue;
        v1::WaitForRequest wf;
        *wf.mutable_job() = Input(r.id);
        *wf.mutable_timeout() = Seconds(r.mix == Mix::kWaitFor ? 0.01 : 30.0);
        v1::WaitForResponse wf_resp;
        s = stub->WaitFor(Ctx(60).get(), wf, &wf_resp);
        r.waitfor_called = true;
        r.waitfor_code = s.error_code();
        if (r.mix == Mix::kWaitFor) {
          EXPECT_EQ(s.error_code(), Code::DEADLINE_EXCEEDED) << Describe(s);
          EXPECT_EQ(Details(s).job_id(), r.id);
          EXPECT_EQ(Details(s).error().type(), "TimeoutError");
        } else {
          EXPECT_TRUE(s.ok()) << Describe(s);
          EXPECT_EQ(wf_resp.job().result().number_value(), r.tag);
        }
      }
    }
  }
};

// What a record's job must have ended as; checks it and returns its state.
v1::JobState Check(const Record& r, const v1::Job& j) {
  EXPECT_EQ(j.id(), r.id);
  const std::string where = "job " + std::to_string(r.id) + ": " +
                            j.ShortDebugString().substr(0, 300);
  switch (r.mix) {
    case Mix::kEcho:
    case Mix::kSleep:
    case Mix::kLimited:
    case Mix::kWaitForOk:
      EXPECT_EQ(j.state(), v1::JOB_STATE_SUCCEEDED) << where;
      EXPECT_EQ(j.result().number_value(), r.tag) << where;
      return v1::JOB_STATE_SUCCEEDED;
    case Mix::kFail:
      EXPECT_EQ(j.state(), v1::JOB_STATE_FAILED) << where;
      EXPECT_EQ(j.error().type(), "ValueError") << where;
      EXPECT_EQ(j.error().message(),
                "bad " + std::to_string(static_cast<std::int64_t>(r.tag)))
          << where;
      return v1::JOB_STATE_FAILED;
    case Mix::kCancel:
    case Mix::kCancelEcho:
      EXPECT_TRUE(r.cancel_called);
      if (r.cancel_returned) {
        EXPECT_EQ(j.state(), v1::JOB_STATE_CANCELLED) << where;
        EXPECT_EQ(j.error().type(), "CancelledError") << where;
        EXPECT_EQ(j.error().message(), "soak cancel") << where;
        EXPECT_TRUE(j.cancel_requested()) << where;
        return v1::JOB_STATE_CANCELLED;
      }
      // Cancel() said false: it was already done, so it succeeded.
      EXPECT_EQ(j.state(), v1::JOB_STATE_SUCCEEDED) << where;
      EXPECT_EQ(j.result().number_value(), r.tag) << where;
      return v1::JOB_STATE_SUCCEEDED;
    case Mix::kTimeout:
      EXPECT_EQ(j.state(), v1::JOB_STATE_FAILED) << where;
      EXPECT_EQ(j.error().type(), "TimeoutError") << where;
      return v1::JOB_STATE_FAILED;
    case Mix::kWaitFor:
      EXPECT_TRUE(r.waitfor_called);
      EXPECT_EQ(j.state(), v1::JOB_STATE_CANCELLED) << where;
      EXPECT_EQ(j.error().type(), "CancelledError") << where;
      return v1::JOB_STATE_CANCELLED;
  }
  return v1::JOB_STATE_UNSPECIFIED;
}

TEST_F(SoakTest, HundredThousandMixedJobsAreAllAccountedFor) {
  const absl::Time start = absl::Now();
  std::vector<std::vector<Record>> records(kThreads);
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([this, t, &records] { Client(t, &records[t]); });
  }
  for (std::thread& c : clients) c.join();
  ASSERT_FALSE(HasFatalFailure());
  const absl::Duration submit_time = absl::Now() - start;

  std::vector<const Record*> all;
  all.reserve(kTotal);
  for (const auto& rs : records) {
    for (const Record& r : rs) all.push_back(&r);
  }
  ASSERT_EQ(all.size(), static_cast<std::size_t>(kTotal));

  // Every job ends (server-side waits, in chunks).
  constexpr int kChunk = 10'000;
  for (int base = 0; base < kTotal; base += kChunk) {
    v1::WaitRequest req;
    for (int i = base; i < std::min(kTotal, base + kChunk); ++i) {
      *req.add_jobs() = Input(all[i]->id);
    }
    v1::WaitResponse resp;
    grpc::Status s = stub_->Wait(Ctx(60).get(), req, &resp);
    ASSERT_TRUE(s.ok()) << Describe(s);
    ASSERT_EQ(resp.pending_size(), 0);
    ASSERT_EQ(resp.done_size(), std::min(kChunk, kTotal - base));
  }

  // Each ended as asked; tally the expected states.
  std::map<v1::JobState, std::size_t> expected;
  for (int base = 0; base < kTotal; base += kChunk) {
    v1::GetRequest req;
    const int end = std::min(kTotal, base + kChunk);
    for (int i = base; i < end; ++i) req.add_ids(all[i]->id);
    v1::GetResponse resp;
    grpc::Status s = stub_->Get(Ctx(60).get(), req, &resp);
    ASSERT_TRUE(s.ok()) << Describe(s);
    ASSERT_EQ(resp.jobs_size(), end - base);
    for (int i = base; i < end; ++i) {
      ++expected[Check(*all[i], resp.jobs(i - base))];
    }
    if (HasFailure()) break;  // one bad chunk says enough
  }

  // List agrees: each id exactly once, nothing else, and the per-state
  // counts add up to the total and match the expectation.
  std::vector<v1::Job> listed = ListJobs(*stub_);
  ASSERT_EQ(listed.size(), static_cast<std::size_t>(kTotal));
  absl::flat_hash_map<std::uint64_t, int> seen;
  for (const v1::Job& j : listed) ++seen[j.id()];
  for (const Record* r : all) {
    auto it = seen.find(r->id);
    ASSERT_TRUE(it != seen.end()) << "job " << r->id << " is not listed";
    EXPECT_EQ(it->second, 1) << "job " << r->id << " listed twice";
  }
  std::size_t sum = 0;
  for (v1::JobState state :
       {v1::JOB_STATE_PENDING, v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED,
        v1::JOB_STATE_FAILED, v1::JOB_STATE_CANCELLED}) {
    const std::size_t n = ListJobs(*stub_, state).size();
    EXPECT_EQ(n, expected[state]) << v1::JobState_Name(state);
    sum += n;
  }
  EXPECT_EQ(sum, static_cast<std::size_t>(kTotal));

  // Nothing left to do. (A job's final state is visible a moment before the
  // daemon's own bookkeeping of it, hence the short poll.)
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (daemon_->jobs().jobs_not_done() != 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(daemon_->jobs().jobs_not_done(), 0u);
  EXPECT_EQ(daemon_->jobs().jobs_running(), 0u);
  EXPECT_EQ(daemon_->jobs().jobs_retained(), static_cast<std::size_t>(kTotal));

  std::size_t cancel_true = 0, cancel_false = 0;
  for (const Record* r : all) {
    if (r->cancel_called) ++(r->cancel_returned ? cancel_true : cancel_false);
  }
  RecordProperty("submit_ms",
                 static_cast<int>(absl::ToInt64Milliseconds(submit_time)));
  RecordProperty(
      "total_ms",
      static_cast<int>(absl::ToInt64Milliseconds(absl::Now() - start)));
  RecordProperty("cancel_true", static_cast<int>(cancel_true));
  RecordProperty("cancel_false", static_cast<int>(cancel_false));
  EXPECT_LT(absl::Now() - start, absl::Seconds(60)) << "far too slow";
}

}  // namespace
}  // namespace awaitd::server::testing
