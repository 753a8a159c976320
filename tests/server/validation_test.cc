// Every limit and every bad-input path of the Jobs API, against a real daemon:
// the exact status code, a message that names the field ("jobs[1].kind",
// "jobs[3].spec.args.seconds", "ids[2]", ...), and that a refused call
// accepted nothing (no new job, the same pending count, jobs already accepted
// untouched).
//
// Each test starts a daemon with small limits and two bystander jobs: one
// RUNNING (a long sleep) and one PENDING (a delayed echo). A refused request
// must leave both exactly as they were.
#include <cstdint>
#include <string>
#include <string_view>
#include <thread>
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
using ::testing::HasSubstr;
using ::testing::Not;
using Code = grpc::StatusCode;

constexpr std::uint64_t kUnknownId = 987'654'321;

v1::JobSpec Good() { return Spec("echo", R"({"value": "good"})"); }

google::protobuf::Duration Dur(std::int64_t seconds, std::int32_t nanos) {
  google::protobuf::Duration d;
  d.set_seconds(seconds);
  d.set_nanos(nanos);
  return d;
}

class ValidationTest : public DaemonTest {
 protected:
  ValidationTest() { start_in_setup_ = false; }

  // Lets a derived fixture change the options before the daemon starts.
  virtual void Tune(DaemonOptions& /*o*/) {}

  void SetUp() override {
    DaemonOptions o = DefaultOptions();
    // The bystanders never end by themselves: cancel them at once on
    // shutdown instead of waiting for a grace.
    o.shutdown_grace = absl::ZeroDuration();
    o.log_level = LogLevel::kError;  // shutdown cancels them: not news
    o.max_message_bytes = 256 * 1024;
    o.limits = {"db:2", "http:3", "cache:1"};
    o.jobs.max_batch = 50;
    o.jobs.max_args_bytes = 1024;
    o.jobs.max_name_length = 32;
    o.jobs.max_limits_per_job = 2;
    o.jobs.max_delay = absl::Hours(1);
    Tune(o);
    ASSERT_NO_FATAL_FAILURE(StartDaemon(std::move(o)));

    auto ids = SubmitOk({Spec("sleep", R"({"seconds": 3600})")});
    ASSERT_EQ(ids.size(), 1u);
    running_ = ids[0];
    v1::JobSpec later = Spec("echo", R"({"value": "later"})");
    *later.mutable_delay() = Seconds(1800);
    ids = SubmitOk({later});
    ASSERT_EQ(ids.size(), 1u);
    pending_ = ids[0];
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (GetOk(running_).state() != v1::JOB_STATE_RUNNING) {
      ASSERT_LT(absl::Now(), deadline) << "the bystander never started";
      absl::SleepFor(absl::Milliseconds(5));
    }
  }

  // The job table holds `total` jobs, `pending` of them PENDING, and the
  // bystanders are untouched (not cancelled, not finished).
  void ExpectJobs(std::size_t total, std::size_t pending,
                  std::size_t not_done) {
    // Jobs submitted just before start soon, not at once on a loaded
    // machine: give them the time to leave PENDING.
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (CountJobs(*stub_, v1::JOB_STATE_PENDING) > pending &&
           absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    EXPECT_EQ(CountJobs(*stub_), total) << "jobs were created";
    EXPECT_EQ(CountJobs(*stub_, v1::JOB_STATE_PENDING), pending);
    EXPECT_EQ(daemon_->jobs().jobs_not_done(), not_done)
        << "admission accounting leaked";
    v1::Job r = GetOk(running_);
    EXPECT_EQ(r.state(), v1::JOB_STATE_RUNNING);
    EXPECT_FALSE(r.cancel_requested());
    v1::Job p = GetOk(pending_);
    EXPECT_EQ(p.state(), v1::JOB_STATE_PENDING);
    EXPECT_FALSE(p.cancel_requested());
  }
  void ExpectNothingAccepted() { ExpectJobs(2, 1, 2); }

  // Submits [good, bad, good]: the bad spec is jobs[1].
  grpc::Status SubmitAmongGood(const v1::JobSpec& bad) {
    v1::SubmitResponse resp;
    grpc::Status s = Submit({Good(), bad, Good()}, &resp);
    EXPECT_EQ(resp.jobs_size(), 0);
    return s;
  }

  grpc::Status Get(const std::vector<std::uint64_t>& ids) {
    v1::GetRequest req;
    for (std::uint64_t id : ids) req.add_ids(id);
    v1::GetResponse resp;
    grpc::Status s = stub_->Get(Ctx().get(), req, &resp);
    if (!s.ok()) {
      EXPECT_EQ(resp.jobs_size(), 0);
    }
    return s;
  }

  grpc::Status Cancel(const std::vector<std::uint64_t>& ids,
                      std::string message = "") {
    v1::CancelRequest req;
    for (std::uint64_t id : ids) req.add_ids(id);
    req.set_message(std::move(message));
    v1::CancelResponse resp;
    grpc::Status s = stub_->Cancel(Ctx().get(), req, &resp);
    if (!s.ok()) {
      EXPECT_EQ(resp.results_size(), 0);
    }
    return s;
  }

  grpc::Status Watch(const std::vector<std::uint64_t>& ids, int* messages) {
    v1::WatchRequest req;
    for (std::uint64_t id : ids) req.add_ids(id);
    auto ctx = Ctx(10);
    auto reader = stub_->Watch(ctx.get(), req);
    v1::WatchResponse r;
    *messages = 0;
    while (reader->Read(&r)) ++*messages;
    return reader->Finish();
  }

  grpc::Status Wait(const v1::WaitRequest& req) {
    v1::WaitResponse resp;
    return stub_->Wait(Ctx().get(), req, &resp);
  }

  grpc::Status Gather(const v1::GatherRequest& req) {
    v1::GatherResponse resp;
    return stub_->Gather(Ctx().get(), req, &resp);
  }

  grpc::Status RunGroup(const v1::RunGroupRequest& req) {
    v1::RunGroupResponse resp;
    return stub_->RunGroup(Ctx().get(), req, &resp);
  }

  grpc::Status AsCompleted(const v1::AsCompletedRequest& req, int* messages) {
    auto ctx = Ctx(10);
    auto reader = stub_->AsCompleted(ctx.get(), req);
    v1::AsCompletedResponse r;
    *messages = 0;
    while (reader->Read(&r)) ++*messages;
    return reader->Finish();
  }

  grpc::Status List(const v1::ListRequest& req) {
    v1::ListResponse resp;
    return stub_->List(Ctx().get(), req, &resp);
  }

  grpc::Status DeclareLimit(const std::string& name, std::uint32_t permits) {
    v1::DeclareLimitRequest req;
    req.set_name(name);
    req.set_permits(permits);
    v1::DeclareLimitResponse resp;
    return stub_->DeclareLimit(Ctx().get(), req, &resp);
  }

  std::uint64_t running_ = 0;
  std::uint64_t pending_ = 0;
};

// --- Submit: kinds and args ------------------------------------------------

TEST_F(ValidationTest, EmptyKindRefusesTheWholeBatch) {
  EXPECT_TRUE(HasStatus(SubmitAmongGood(Spec("")), Code::INVALID_ARGUMENT,
                        "jobs[1].kind: required"));
  ExpectNothingAccepted();
}

TEST_F(ValidationTest, UnknownKindNamesTheKindAndTheKnownOnes) {
  EXPECT_TRUE(HasStatus(
      SubmitAmongGood(Spec("teleport")), Code::INVALID_ARGUMENT,
      {"jobs[1].kind", "unknown job kind \"teleport\"", "echo", "sleep"}));
  ExpectNothingAccepted();
}

TEST_F(ValidationTest, ArgsOfTheWrongTypeNameTheArgument) {
  struct Case {
    v1::JobSpec spec;
    std::string_view needle;
  } cases[] = {
      {Spec("sleep", R"({"seconds": "soon"})"),
       "jobs[1].args.seconds: must be a number (got string)"},
      {Spec("sleep", R"({"seconds": true})"),
       "jobs[1].args.seconds: must be a number (got bool)"},
      {Spec("sleep", R"({"seconds": [1]})"), "jobs[1].args.seconds"},
      {Spec("fail", R"({"type": 7})"),
       "jobs[1].args.type: must be a string (got number)"},
      {Spec("fail", R"({"message": {"a": 1}})"), "jobs[1].args.message"},
      {Spec("factorial", R"({"n": "5"})"), "jobs[1].args.n"},
      {Spec("hash", R"({"rounds": null})"), "jobs[1].args.rounds"},
  };
  for (const Case& c : cases) {
    EXPECT_TRUE(
        HasStatus(SubmitAmongGood(c.spec), Code::INVALID_ARGUMENT, c.needle))
        << c.spec.ShortDebugString();
  }
  ExpectNothingAccepted();
}

TEST_F(ValidationTest, ArgsOutOfRangeNameTheArgumentAndTheBound) {
  struct Case {
    v1::JobSpec spec;
    std::string_view needle;
  } cases[] = {
      {Spec("sleep", R"({"seconds": -1})"),
       "jobs[1].args.seconds: must be a finite number >= 0 (got -1)"},
      {Spec("sleep", R"({"seconds": 2592001})"),
       "jobs[1].args.seconds: must be at most 2592000 (30 days)"},
      {Spec("factorial", R"({"n": 2.5})"),
       "jobs[1].args.n: must be an integer"},
      {Spec("factorial", R"({"n": 171})"),
       "jobs[1].args.n: must be at most 170"},
      {Spec("spin", R"({"cpu_ms": 0})"),
       "jobs[1].args.cpu_ms: must be a finite number > 0"},
      {Spec("hash", R"({"bytes": 0})"), "jobs[1].args.bytes"},
      {Spec("fail", R"({"type": "no spaces"})"), "jobs[1].args.type"},
      {Spec("fail", R"({"after_seconds": -0.5})"),
       "jobs[1].args.after_seconds"},
      {Spec("blocking", R"({"seconds": 1e300})"), "jobs[1].args.seconds"},
  };
  for (const Case& c : cases) {
    EXPECT_TRUE(
        HasStatus(SubmitAmongGood(c.spec), Code::INVALID_ARGUMENT, c.needle))
        << c.spec.ShortDebugString();
  }
  ExpectNothingAccepted();
}

TEST_F(ValidationTest, MissingRequiredArgsNameTheArgument) {
  v1::JobSpec no_args;  // no args Struct at all
  no_args.set_kind("sleep");
  EXPECT_TRUE(HasStatus(SubmitAmongGood(no_args), Code::INVALID_ARGUMENT,
                        "jobs[1].args.seconds: required"));
  EXPECT_TRUE(HasStatus(SubmitAmongGood(Spec("echo")), Code::INVALID_ARGUMENT,
                        "jobs[1].args.value: required"));
  EXPECT_TRUE(HasStatus(SubmitAmongGood(Spec("factorial")),
                        Code::INVALID_ARGUMENT, "jobs[1].args.n: required"));
  ExpectNothingAccepted();
}

TEST_F(ValidationTest, UnknownArgIsRefusedNamingIt) {
  grpc::Status s =
      SubmitAmongGood(Spec("echo", R"({"value": 1, "colour": "red"})"));
  EXPECT_TRUE(HasStatus(s, Code::INVALID_ARGUMENT,
                        {"jobs[1].args", "colour", "this kind takes: value"}));
  ExpectNothingAccepted();
}

// The message for an unknown argument should read as a field path like every
// other one ("jobs[1].args.colour: unknown field ..." or "jobs[1].args:
// unknown field 'colour'"). Today JobManager::Validate glues "jobs[1].args."
// to the kind's "unknown field 'colour' ..." and the client reads the path
// "jobs[1].args.unknown field 'colour'".
TEST_F(ValidationTest, UnknownArgMessageIsAFieldPath) {
  grpc::Status s =
      SubmitAmongGood(Spec("echo", R"({"value": 1, "colour": "red"})"));
  ASSERT_EQ(s.error_code(), Code::INVALID_ARGUMENT) << Describe(s);
  const std::string& m = s.error_message();
  EXPECT_TRUE(m.starts_with("jobs[1].args.colour:") ||
              m.starts_with("jobs[1].args: "))
      << "not a field path: " << m;
  EXPECT_THAT(m, Not(HasSubstr("args.unknown field")));
}

TEST_F(ValidationTest, ArgsLargerThanMaxArgsBytes) {
  const std::string big(2000, 'x');
  EXPECT_TRUE(HasStatus(
      SubmitAmongGood(Spec("echo", R"({"value": ")" + big + R"("})")),
      Code::INVALID_ARGUMENT, {"jobs[1].args:", "--max_args_bytes=1024"}));
  ExpectNothingAccepted();
}

TEST_F(ValidationTest, ArgsOfExactlyMaxArgsBytesAreAccepted) {
  // The largest echo args that fit in 1024 serialized bytes.
  v1::JobSpec spec = Spec("echo", R"({"value": ""})");
  auto& value = (*spec.mutable_args()->mutable_fields())["value"];
  std::string text;
  while (true) {
    value.set_string_value(text + "x");
    if (spec.args().ByteSizeLong() > 1024) break;
    text += "x";
  }
  value.set_string_value(text);
  ASSERT_EQ(spec.args().ByteSizeLong(), 1024u);
  auto ids = SubmitOk({spec});
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(WaitForOk(ids[0]).result().string_value(), text);

  value.set_string_value(text + "x");
  v1::SubmitResponse resp;
  EXPECT_TRUE(HasStatus(Submit({spec}, &resp), Code::INVALID_ARGUMENT,
                        {"jobs[0].args:", "1025 bytes"}));
  ExpectJobs(3, 1, 2);
}

// --- Submit: names, keys, durations, limits ---------------------------------

TEST_F(ValidationTest, NameLongerThanMaxNameLength) {
  v1::JobSpec spec = Good();
  spec.set_name(std::string(33, 'n'));
  EXPECT_TRUE(HasStatus(SubmitAmongGood(spec), Code::INVALID_ARGUMENT,
                        {"jobs[1].name", "--max_name_length=32"}));
  ExpectNothingAccepted();

  spec.set_name(std::string(32, 'n'));  // at the limit: fine
  auto ids = SubmitOk({spec});
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(WaitForOk(ids[0]).name(), std::string(32, 'n'));
}

TEST_F(ValidationTest, IdempotencyKeyLongerThanMaxNameLength) {
  v1::JobSpec spec = Good();
  spec.set_idempotency_key(std::string(33, 'k'));
  EXPECT_TRUE(HasStatus(SubmitAmongGood(spec), Code::INVALID_ARGUMENT,
                        {"jobs[1].idempotency_key", "--max_name_length=32"}));
  ExpectNothingAccepted();
}

TEST_F(ValidationTest, InvalidDurationsNameTheField) {
  struct Case {
    const char* what;
    v1::JobSpec spec;
    std::vector<std::string_view> needles;
  };
  std::vector<Case> cases;
  auto with = [](auto set) {
    v1::JobSpec s = Good();
    set(s);
    return s;
  };
  cases.push_back(
      {"negative timeout",
       with([](v1::JobSpec& s) { *s.mutable_timeout() = Dur(-1, 0); }),
       {"jobs[1].timeout: must be a non-negative duration"}});
  cases.push_back({"timeout nanos >= 1e9",
                   with([](v1::JobSpec& s) {
                     *s.mutable_timeout() = Dur(0, 1'000'000'000);
                   }),
                   {"jobs[1].timeout"}});
  cases.push_back(
      {"timeout with negative nanos",
       with([](v1::JobSpec& s) { *s.mutable_timeout() = Dur(1, -1); }),
       {"jobs[1].timeout"}});
  cases.push_back(
      {"timeout beyond max_delay",
       with([](v1::JobSpec& s) { *s.mutable_timeout() = Dur(7200, 0); }),
       {"jobs[1].timeout", "exceeds the maximum of 1h"}});
  cases.push_back(
      {"negative delay",
       with([](v1::JobSpec& s) { *s.mutable_delay() = Dur(-5, 0); }),
       {"jobs[1].delay: must be a non-negative duration"}});
  cases.push_back(
      {"delay with negative nanos",
       with([](v1::JobSpec& s) { *s.mutable_delay() = Dur(0, -1); }),
       {"jobs[1].delay"}});
  cases.push_back(
      {"delay nanos out of range",
       with([](v1::JobSpec& s) { *s.mutable_delay() = Dur(0, 2'000'000'000); }),
       {"jobs[1].delay"}});
  cases.push_back(
      {"delay beyond max_delay",
       with([](v1::JobSpec& s) { *s.mutable_delay() = Dur(3601, 0); }),
       {"jobs[1].delay", "exceeds the maximum of 1h"}});
  cases.push_back({"huge delay",
                   with([](v1::JobSpec& s) {
                     *s.mutable_delay() = Dur(315'576'000'000, 0);
                   }),
                   {"jobs[1].delay", "exceeds the maximum"}});
  cases.push_back({"start_at with negative nanos",
                   with([](v1::JobSpec& s) {
                     s.mutable_start_at()->set_seconds(
                         absl::ToUnixSeconds(absl::Now()));
                     s.mutable_start_at()->set_nanos(-1);
                   }),
                   {"jobs[1].start_at"}});
  cases.push_back({"start_at beyond max_delay",
                   with([](v1::JobSpec& s) {
                     s.mutable_start_at()->set_seconds(
                         absl::ToUnixSeconds(absl::Now()) + 7200);
                   }),
                   {"jobs[1].start_at", "ahead"}});
  for (const Case& c : cases) {
    grpc::Status s = SubmitAmongGood(c.spec);
    EXPECT_EQ(s.error_code(), Code::INVALID_ARGUMENT)
        << c.what << ": " << Describe(s);
    for (std::string_view n : c.needles) {
      EXPECT_THAT(s.error_message(), HasSubstr(std::string(n))) << c.what;
    }
  }
  ExpectNothingAccepted();
}

TEST_F(ValidationTest, DelayOfExactlyMaxDelayIsAccepted) {
  v1::JobSpec spec = Good();
  *spec.mutable_delay() = Dur(3600, 0);
  auto ids = SubmitOk({spec});
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(GetOk(ids[0]).state(), v1::JOB_STATE_PENDING);
  ExpectJobs(3, 2, 3);
}

TEST_F(ValidationTest, BadLimitsNameTheEntry) {
  struct Case {
    std::vector<std::string> limits;
    std::vector<std::string_view> needles;
  } cases[] = {
      {{"nope"}, {"jobs[1].limits[0]", "unknown limit \"nope\""}},
      {{"http", "nope"}, {"jobs[1].limits[1]", "unknown limit \"nope\""}},
      {{"db", "db"}, {"jobs[1].limits[1]", "\"db\" is named twice"}},
      {{"db", "http", "cache"},
       {"jobs[1].limits", "3 limits exceed the maximum of 2"}},
  };
  for (const Case& c : cases) {
    v1::JobSpec spec = Good();
    for (const std::string& l : c.limits) spec.add_limits(l);
    grpc::Status s = SubmitAmongGood(spec);
    EXPECT_EQ(s.error_code(), Code::INVALID_ARGUMENT) << Describe(s);
    for (std::string_view n : c.needles) {
      EXPECT_THAT(s.error_message(), HasSubstr(std::string(n)));
    }
  }
  ExpectNothingAccepted();

  v1::JobSpec ok = Good();  // two known limits: at the maximum, fine
  ok.add_limits("http");
  ok.add_limits("db");
  auto ids = SubmitOk({ok});
  ASSERT_EQ(ids.size(), 1u);
  v1::Job j = WaitForOk(ids[0]);
  EXPECT_THAT(j.limits(), ::testing::ElementsAre("db", "http"));
}

// --- Submit: batch and admission limits --------------------------------------

TEST_F(ValidationTest, EmptySubmitIsInvalid) {
  v1::SubmitResponse resp;
  EXPECT_TRUE(HasStatus(Submit({}, &resp), Code::INVALID_ARGUMENT, "jobs"));
  ExpectNothingAccepted();
}

TEST_F(ValidationTest, BatchLargerThanMaxBatchIsResourceExhausted) {
  std::vector<v1::JobSpec> specs(51, Good());
  v1::SubmitResponse resp;
  EXPECT_TRUE(HasStatus(Submit(specs, &resp), Code::RESOURCE_EXHAUSTED,
                        {"jobs", "51 jobs", "--max_batch=50"}));
  EXPECT_EQ(resp.jobs_size(), 0);
  ExpectNothingAccepted();

  specs.pop_back();  // exactly max_batch: fine
  auto ids = SubmitOk(specs);
  EXPECT_EQ(ids.size(), 50u);
}

TEST_F(ValidationTest, MessageLargerThanMaxMessageBytesIsRefusedByGrpc) {
  // 300 KiB > max_message_bytes (256 KiB): gRPC refuses it before the
  // handler (which would have said INVALID_ARGUMENT for --max_args_bytes).
  const std::string big(300 * 1024, 'x');
  v1::SubmitResponse resp;
  grpc::Status s =
      Submit({Spec("echo", R"({"value": ")" + big + R"("})")}, &resp);
  EXPECT_EQ(s.error_code(), Code::RESOURCE_EXHAUSTED) << Describe(s);
  ExpectNothingAccepted();
  // The channel is still usable.
  EXPECT_EQ(SubmitOk({Good()}).size(), 1u);
}

TEST_F(ValidationTest, ResponseLargerThanMaxMessageBytesFailsCleanly) {
  // 300 jobs with ~1000-byte results: one Get of all of them is a ~300 KiB
  // response, over max_message_bytes (256 KiB). The call must fail (the
  // daemon cannot send it), not hang or crash; smaller reads still work.
  std::vector<v1::JobSpec> specs(
      50, Spec("echo", R"({"value": ")" + std::string(1000, 'r') + R"("})"));
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 6; ++i) {
    auto batch = SubmitOk(specs);
    ids.insert(ids.end(), batch.begin(), batch.end());
  }
  ASSERT_EQ(ids.size(), 300u);
  for (std::uint64_t id : ids) AwaitDone(id);
  grpc::Status s = Get(ids);
  EXPECT_EQ(s.error_code(), Code::RESOURCE_EXHAUSTED) << Describe(s);
  EXPECT_TRUE(Get({ids.begin(), ids.begin() + 100}).ok());
}

// --- Ids: Get, Cancel, Watch ------------------------------------------------

TEST_F(ValidationTest, GetUnknownIdIsNotFoundNamingTheIndex) {
  EXPECT_TRUE(HasStatus(Get({running_, pending_, kUnknownId}), Code::NOT_FOUND,
                        {"ids[2]", "987654321", "result_ttl"}));
  ExpectNothingAccepted();
}

TEST_F(ValidationTest, GetIdZeroIsInvalid) {
  EXPECT_TRUE(HasStatus(Get({running_, 0}), Code::INVALID_ARGUMENT, "ids[1]"));
}

TEST_F(ValidationTest, GetWithNoIdsIsInvalid) {
  EXPECT_TRUE(HasStatus(Get({}), Code::INVALID_ARGUMENT, "ids"));
}

TEST_F(ValidationTest, CancelWithAnUnknownIdCancelsNothing) {
  EXPECT_TRUE(HasStatus(Cancel({running_, pending_, kUnknownId}),
                        Code::NOT_FOUND, {"ids[2]", "987654321"}));
  ExpectNothingAccepted();  // neither bystander was cancelled
}

TEST_F(ValidationTest, CancelBadRequests) {
  EXPECT_TRUE(
      HasStatus(Cancel({0, running_}), Code::INVALID_ARGUMENT, "ids[0]"));
  EXPECT_TRUE(HasStatus(Cancel({}), Code::INVALID_ARGUMENT, "ids"));
  EXPECT_TRUE(HasStatus(Cancel({running_}, std::string(1025, 'm')),
                        Code::INVALID_ARGUMENT, "message"));
  ExpectNothingAccepted();
}

TEST_F(ValidationTest, WatchUnknownIdIsNotFoundBeforeAnyMessage) {
  int messages = -1;
  EXPECT_TRUE(HasStatus(Watch({running_, kUnknownId}, &messages),
                        Code::NOT_FOUND, "ids[1]"));
  EXPECT_EQ(messages, 0);
  EXPECT_TRUE(
      HasStatus(Watch({0}, &messages), Code::INVALID_ARGUMENT, "ids[0]"));
  EXPECT_EQ(messages, 0);
  ExpectNothingAccepted();
}

// --- WaitFor -------------------------------------------------------------

TEST_F(ValidationTest, WaitForWithoutJobIsInvalid) {
  v1::WaitForRequest req;
  v1::WaitForResponse resp;
  EXPECT_TRUE(HasStatus(stub_->WaitFor(Ctx().get(), req, &resp),
                        Code::INVALID_ARGUMENT, "job: required"));
}

TEST_F(ValidationTest, WaitForInputWithNeitherIdNorSpecIsInvalid) {
  v1::WaitForResponse resp;
  EXPECT_TRUE(HasStatus(WaitFor(v1::JobInput(), &resp), Code::INVALID_ARGUMENT,
                        "job: set either id or spec"));
}

TEST_F(ValidationTest, WaitForBadInlineSpecNamesJobSpec) {
  v1::WaitForResponse resp;
  EXPECT_TRUE(HasStatus(WaitFor(Input(Spec("")), &resp), Code::INVALID_ARGUMENT,
                        "job.spec.kind: required"));
  EXPECT_TRUE(
      HasStatus(WaitFor(Input(Spec("sleep", R"({"seconds": "x"})")), &resp),
                Code::INVALID_ARGUMENT, "job.spec.args.seconds"));
  ExpectNothingAccepted();
}

TEST_F(ValidationTest, WaitForUnknownIdIsNotFound) {
  v1::WaitForResponse resp;
  EXPECT_TRUE(HasStatus(WaitFor(Input(kUnknownId), &resp), Code::NOT_FOUND,
                        {"job.id", "987654321"}));
  EXPECT_TRUE(HasStatus(WaitFor(Input(std::uint64_t{0}), &resp),
                        Code::INVALID_ARGUMENT, "job.id"));
}

TEST_F(ValidationTest, WaitForBadTimeoutIsInvalid) {
  v1::WaitForRequest req;
  *req.mutable_job() = Input(pending_);
  *req.mutable_timeout() = Dur(-1, 0);
  v1::WaitForResponse resp;
  EXPECT_TRUE(HasStatus(stub_->WaitFor(Ctx().get(), req, &resp),
                        Code::INVALID_ARGUMENT, "timeout"));
  *req.mutable_timeout() = Dur(0, 1'000'000'000);
  EXPECT_TRUE(HasStatus(stub_->WaitFor(Ctx().get(), req, &resp),
                        Code::INVALID_ARGUMENT, "timeout"));
  ExpectNothingAccepted();  // the pending job was not cancelled
}

// --- Wait, Gather, AsCompleted, RunGroup ------------------------------------

TEST_F(ValidationTest, WaitBadRequests) {
  {
    v1::WaitRequest req;
    *req.add_jobs() = Input(running_);
    req.add_jobs();  // neither id nor spec
    EXPECT_TRUE(HasStatus(Wait(req), Code::INVALID_ARGUMENT,
                          "jobs[1]: set either id or spec"));
  }
  {
    v1::WaitRequest req;
    EXPECT_TRUE(HasStatus(Wait(req), Code::INVALID_ARGUMENT, "jobs"));
  }
  {
    v1::WaitRequest req;
    *req.add_jobs() = Input(running_);
    req.set_return_when(static_cast<v1::ReturnWhen>(7));
    EXPECT_TRUE(
        HasStatus(Wait(req), Code::INVALID_ARGUMENT, {"return_when", "7"}));
  }
  {
    v1::WaitRequest req;
    *req.add_jobs() = Input(running_);
    *req.mutable_timeout() = Dur(-3, 0);
    EXPECT_TRUE(HasStatus(Wait(req), Code::INVALID_ARGUMENT, "timeout"));
  }
  {
    v1::WaitRequest req;
    *req.add_jobs() = Input(running_);
    *req.add_jobs() = Input(kUnknownId);
    EXPECT_TRUE(HasStatus(Wait(req), Code::NOT_FOUND, "jobs[1].id"));
  }
  {
    v1::WaitRequest req;
    *req.add_jobs() = Input(std::uint64_t{0});
    EXPECT_TRUE(HasStatus(Wait(req), Code::INVALID_ARGUMENT, "jobs[0].id"));
  }
  ExpectNothingAccepted();
}

TEST_F(ValidationTest, CombinatorInlineSpecsNameTheirInput) {
  {
    v1::GatherRequest req;
    *req.add_jobs() = Input(running_);
    *req.add_jobs() = Input(Good());
    *req.add_jobs() = Input(pending_);
    *req.add_jobs() = Input(Spec("sleep", R"({"seconds": "x"})"));
    EXPECT_TRUE(HasStatus(Gather(req), Code::INVALID_ARGUMENT,
                          "jobs[3].spec.args.seconds: must be a number"));
  }
  {
    v1::WaitRequest req;
    *req.add_jobs() = Input(Good());
    *req.add_jobs() = Input(pending_);
    *req.add_jobs() = Input(Good());
    *req.add_jobs() = Input(Spec(""));
    EXPECT_TRUE(HasStatus(Wait(req), Code::INVALID_ARGUMENT,
                          "jobs[3].spec.kind: required"));
  }
  {
    v1::WaitRequest req;
    *req.add_jobs() = Input(Good());
    v1::JobSpec limited = Good();
    limited.add_limits("nope");
    *req.add_jobs() = Input(limited);
    EXPECT_TRUE(HasStatus(Wait(req), Code::INVALID_ARGUMENT,
                          "jobs[1].spec.limits[0]: unknown limit"));
  }
  {
    v1::GatherRequest req;
    *req.add_jobs() = Input(Good());
    v1::JobSpec named = Good();
    named.set_name(std::string(40, 'n'));
    *req.add_jobs() = Input(named);
    EXPECT_TRUE(
        HasStatus(Gather(req), Code::INVALID_ARGUMENT, "jobs[1].spec.name"));
  }
  {
    v1::AsCompletedRequest req;
    *req.add_jobs() = Input(Spec("nope"));
    int messages = -1;
    EXPECT_TRUE(HasStatus(AsCompleted(req, &messages), Code::INVALID_ARGUMENT,
                          "jobs[0].spec.kind"));
    EXPECT_EQ(messages, 0);
  }
  {
    v1::RunGroupRequest req;
    *req.add_jobs() = Good();
    *req.add_jobs() = Good();
    *req.add_jobs() = Spec("nope");
    EXPECT_TRUE(HasStatus(RunGroup(req), Code::INVALID_ARGUMENT,
                          "jobs[2].kind: unknown job kind"));
  }
  {
    // An unknown id after an inline spec: nothing is created.
    v1::GatherRequest req;
    *req.add_jobs() = Input(Good());
    *req.add_jobs() = Input(kUnknownId);
    EXPECT_TRUE(HasStatus(Gather(req), Code::NOT_FOUND, "jobs[1].id"));
  }
  {
    v1::GatherRequest req;
    *req.add_jobs() = Input(Good());
    req.add_jobs();
    EXPECT_TRUE(HasStatus(Gather(req), Code::INVALID_ARGUMENT,
                          "jobs[1]: set either id or spec"));
  }
  ExpectNothingAccepted();
}

TEST_F(ValidationTest, CombinatorInlineBatchLargerThanMaxBatch) {
  {
    v1::GatherRequest req;
    for (int i = 0; i < 51; ++i) *req.add_jobs() = Input(Good());
    EXPECT_TRUE(HasStatus(Gather(req), Code::RESOURCE_EXHAUSTED,
                          {"jobs", "--max_batch=50"}));
  }
  {
    v1::WaitRequest req;
    for (int i = 0; i < 51; ++i) *req.add_jobs() = Input(Good());
    EXPECT_TRUE(HasStatus(Wait(req), Code::RESOURCE_EXHAUSTED,
                          {"jobs", "--max_batch=50"}));
  }
  {
    v1::RunGroupRequest req;
    for (int i = 0; i < 51; ++i) *req.add_jobs() = Good();
    EXPECT_TRUE(HasStatus(RunGroup(req), Code::RESOURCE_EXHAUSTED,
                          {"jobs", "--max_batch=50"}));
  }
  ExpectNothingAccepted();
}

TEST_F(ValidationTest, GroupNameLongerThanMaxNameLength) {
  {
    v1::GatherRequest req;
    *req.add_jobs() = Input(Good());
    req.set_name(std::string(33, 'g'));
    EXPECT_TRUE(HasStatus(Gather(req), Code::INVALID_ARGUMENT,
                          {"name", "--max_name_length=32"}));
  }
  {
    v1::RunGroupRequest req;
    *req.add_jobs() = Good();
    req.set_name(std::string(33, 'g'));
    EXPECT_TRUE(HasStatus(RunGroup(req), Code::INVALID_ARGUMENT,
                          {"name", "--max_name_length=32"}));
  }
  ExpectNothingAccepted();
}

TEST_F(ValidationTest, AsCompletedBadTimeoutIsInvalid) {
  v1::AsCompletedRequest req;
  *req.add_jobs() = Input(Good());
  *req.mutable_timeout() = Dur(-1, 0);
  int messages = -1;
  EXPECT_TRUE(HasStatus(AsCompleted(req, &messages), Code::INVALID_ARGUMENT,
                        "timeout"));
  EXPECT_EQ(messages, 0);
  ExpectNothingAccepted();
}

// --- List ----------------------------------------------------------------

TEST_F(ValidationTest, ListPageSizeOutOfRange) {
  v1::ListRequest req;
  req.set_page_size(5000);
  EXPECT_TRUE(
      HasStatus(List(req), Code::INVALID_ARGUMENT, {"page_size", "5000"}));
  req.set_page_size(-1);
  EXPECT_TRUE(HasStatus(List(req), Code::INVALID_ARGUMENT, "page_size"));
  req.set_page_size(1000);
  EXPECT_TRUE(List(req).ok());
}

TEST_F(ValidationTest, ListBadPageToken) {
  for (const char* token : {"garbage", "after:", "after:x", "after:-1",
                            "after:99999999999999999999999"}) {
    v1::ListRequest req;
    req.set_page_token(token);
    EXPECT_TRUE(HasStatus(List(req), Code::INVALID_ARGUMENT, "page_token"))
        << token;
  }
}

TEST_F(ValidationTest, ListBadStateFilter) {
  for (int state : {42, -3, 6}) {
    v1::ListRequest req;
    req.set_state(static_cast<v1::JobState>(state));
    EXPECT_TRUE(HasStatus(List(req), Code::INVALID_ARGUMENT, "state")) << state;
  }
}

// --- Limits --------------------------------------------------------------

TEST_F(ValidationTest, DeclareLimitBadRequests) {
  EXPECT_TRUE(HasStatus(DeclareLimit("", 1), Code::INVALID_ARGUMENT, "name"));
  EXPECT_TRUE(
      HasStatus(DeclareLimit("has space", 1), Code::INVALID_ARGUMENT, "name"));
  EXPECT_TRUE(HasStatus(DeclareLimit("caf\xc3\xa9", 1), Code::INVALID_ARGUMENT,
                        "name"));
  EXPECT_TRUE(HasStatus(DeclareLimit(std::string(129, 'l'), 1),
                        Code::INVALID_ARGUMENT, "name"));
  EXPECT_TRUE(
      HasStatus(DeclareLimit("fresh", 0), Code::INVALID_ARGUMENT, "permits"));
  EXPECT_TRUE(HasStatus(DeclareLimit("fresh", 1'000'001),
                        Code::INVALID_ARGUMENT, "permits"));
  EXPECT_TRUE(HasStatus(DeclareLimit("fresh", 4'294'967'295u),
                        Code::INVALID_ARGUMENT, "permits"));
  EXPECT_TRUE(
      HasStatus(DeclareLimit("db", 5), Code::FAILED_PRECONDITION, "db"));
  EXPECT_TRUE(DeclareLimit("db", 2).ok());  // same size: a no-op

  v1::ListLimitsResponse limits;
  ASSERT_TRUE(
      stub_->ListLimits(Ctx().get(), v1::ListLimitsRequest(), &limits).ok());
  ASSERT_EQ(limits.limits_size(), 3) << limits.ShortDebugString();
  for (const v1::Limit& l : limits.limits()) {
    if (l.name() == "db") {
      EXPECT_EQ(l.permits(), 2u);
    }
  }
}

// --- Nothing refused disturbs what was accepted ------------------------------

TEST_F(ValidationTest, BadRequestsNeverDisturbAcceptedJobs) {
  auto ids = SubmitOk({Spec("sleep", R"({"seconds": 0.5, "result": "ok"})")});
  ASSERT_EQ(ids.size(), 1u);
  const std::uint64_t survivor = ids[0];

  EXPECT_FALSE(SubmitAmongGood(Spec("nope")).ok());
  EXPECT_FALSE(SubmitAmongGood(Spec("sleep", R"({"seconds": -1})")).ok());
  v1::SubmitResponse resp;
  EXPECT_FALSE(Submit(std::vector<v1::JobSpec>(51, Good()), &resp).ok());
  EXPECT_FALSE(Get({survivor, kUnknownId}).ok());
  EXPECT_FALSE(Cancel({survivor, kUnknownId}).ok());
  EXPECT_FALSE(Cancel({survivor, 0}).ok());
  int messages = 0;
  EXPECT_FALSE(Watch({survivor, kUnknownId}, &messages).ok());
  v1::WaitForResponse wf;
  EXPECT_FALSE(WaitFor(Input(Spec("")), &wf).ok());
  {
    v1::WaitRequest req;
    *req.add_jobs() = Input(survivor);
    req.set_return_when(static_cast<v1::ReturnWhen>(9));
    EXPECT_FALSE(Wait(req).ok());
  }
  {
    v1::GatherRequest req;
    *req.add_jobs() = Input(survivor);
    *req.add_jobs() = Input(Spec("nope"));
    EXPECT_FALSE(Gather(req).ok());
  }
  {
    v1::ListRequest req;
    req.set_page_size(5000);
    EXPECT_FALSE(List(req).ok());
  }
  EXPECT_FALSE(DeclareLimit("", 0).ok());

  v1::Job j = WaitForOk(survivor);
  EXPECT_EQ(j.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(j.result().string_value(), "ok");
  EXPECT_FALSE(j.cancel_requested());
  ExpectJobs(3, 1, 2);
}

// --- max_pending_jobs -----------------------------------------------------

class ValidationPendingTest : public ValidationTest {
 protected:
  // The two bystanders plus four more.
  void Tune(DaemonOptions& o) override { o.jobs.max_pending_jobs = 6; }
};

TEST_F(ValidationPendingTest, SubmitBeyondMaxPendingJobsIsResourceExhausted) {
  auto sleepers = SubmitOk(
      std::vector<v1::JobSpec>(4, Spec("sleep", R"({"seconds": 0.3})")));
  ASSERT_EQ(sleepers.size(), 4u);

  v1::SubmitResponse resp;
  EXPECT_TRUE(HasStatus(Submit({Good()}, &resp), Code::RESOURCE_EXHAUSTED,
                        {"jobs", "--max_pending_jobs=6"}));
  {
    v1::GatherRequest req;
    *req.add_jobs() = Input(Good());
    EXPECT_TRUE(HasStatus(Gather(req), Code::RESOURCE_EXHAUSTED,
                          {"jobs", "--max_pending_jobs=6"}));
  }
  {
    v1::WaitForResponse wf;
    EXPECT_TRUE(HasStatus(WaitFor(Input(Good()), &wf), Code::RESOURCE_EXHAUSTED,
                          "--max_pending_jobs=6"));
  }
  {
    v1::RunGroupRequest req;
    *req.add_jobs() = Good();
    EXPECT_TRUE(HasStatus(RunGroup(req), Code::RESOURCE_EXHAUSTED,
                          "--max_pending_jobs=6"));
  }
  ExpectJobs(6, 1, 6);

  for (std::uint64_t id : sleepers) {
    EXPECT_EQ(AwaitDone(id).state(), v1::JOB_STATE_SUCCEEDED);
  }
  // Four slots again: a batch of five is refused whole, four fit.
  EXPECT_TRUE(HasStatus(Submit(std::vector<v1::JobSpec>(5, Good()), &resp),
                        Code::RESOURCE_EXHAUSTED, "--max_pending_jobs=6"));
  ExpectJobs(6, 1, 2);
  auto more = SubmitOk(std::vector<v1::JobSpec>(4, Good()));
  ASSERT_EQ(more.size(), 4u);
  for (std::uint64_t id : more) {
    EXPECT_EQ(WaitForOk(id).state(), v1::JOB_STATE_SUCCEEDED);
  }
}

// WaitFor of an inline spec (no timeout) submits it with the field "\x01"
// and maps only "\x01[0]..." back to "job.spec..." (jobs_service.cc,
// JobsService::WaitFor); the admission error is "\x01: N jobs are not done
// yet ...", so the client gets a raw control byte where the field name
// should be.
TEST_F(ValidationPendingTest, WaitForInlineSpecAtMaxPendingNamesTheField) {
  auto sleepers = SubmitOk(
      std::vector<v1::JobSpec>(4, Spec("sleep", R"({"seconds": 0.3})")));
  ASSERT_EQ(sleepers.size(), 4u);
  v1::WaitForResponse wf;
  grpc::Status s = WaitFor(Input(Good()), &wf);
  ASSERT_EQ(s.error_code(), Code::RESOURCE_EXHAUSTED) << Describe(s);
  EXPECT_EQ(s.error_message().find('\x01'), std::string::npos)
      << "a control byte in: " << Describe(s);
  EXPECT_TRUE(s.error_message().starts_with("job"))
      << "no field named: " << Describe(s);
  ExpectJobs(6, 1, 6);
}

// A client that retries a Submit whose response it lost resubmits the same
// idempotency keys. The retry creates nothing (the keys match jobs that
// exist), so it must return those jobs, even while the daemon is at
// --max_pending_jobs. Today JobManager::Submit reserves admission for every
// spec before it looks at the keys, so the retry fails RESOURCE_EXHAUSTED.
TEST_F(ValidationPendingTest, IdempotentRetryAtMaxPendingReturnsTheSameJobs) {
  std::vector<v1::JobSpec> specs;
  for (int i = 0; i < 4; ++i) {
    v1::JobSpec s = Spec("sleep", R"({"seconds": 0.5})");
    s.set_idempotency_key("retry-" + std::to_string(i));
    specs.push_back(s);
  }
  v1::SubmitResponse first;
  ASSERT_TRUE(Submit(specs, &first).ok());
  v1::SubmitResponse retry;
  grpc::Status s = Submit(specs, &retry);
  ASSERT_TRUE(s.ok()) << Describe(s);
  ASSERT_EQ(retry.jobs_size(), 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(retry.jobs(i).id(), first.jobs(i).id());
    EXPECT_TRUE(retry.jobs(i).existing());
  }
  ExpectJobs(6, 1, 6);
}

}  // namespace
}  // namespace awaitd::server::testing
