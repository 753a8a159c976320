// The built-in job kinds: what each body returns or raises when run on a real
// Runtime, how each bind refuses bad arguments, cancellation, and the
// registry they are put in.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "runtime/errors.h"
#include "runtime/runtime.h"
#include "runtime/time.h"
#include "server/kinds/job_kind.h"
#include "tests/runtime/test_util.h"

namespace awaitd::server {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;
using runtime::CancelledError;
using runtime::JoinHandle;
using runtime::Runtime;
using runtime::Task;
using runtime::testing::SpawnAndWait;
using runtime::testing::WaitFor;
using runtime::testing::Watchdog;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace std::chrono_literals;

constexpr auto kTimeout = std::chrono::milliseconds(20'000);

Struct ParseStruct(std::string_view json) {
  Struct s;
  auto status =
      google::protobuf::util::JsonStringToMessage(std::string(json), &s);
  EXPECT_TRUE(status.ok()) << status.ToString() << " in " << json;
  return s;
}

Value ParseValue(std::string_view json) {
  Value v;
  auto status =
      google::protobuf::util::JsonStringToMessage(std::string(json), &v);
  EXPECT_TRUE(status.ok()) << status.ToString() << " in " << json;
  return v;
}

std::string ToJson(const Value& v) {
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(v, &out);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return out;
}

bool Equal(const Value& a, const Value& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

Value Number(double x) {
  Value v;
  v.set_number_value(x);
  return v;
}

// Awaits `h` from inside the runtime and reports what it ended with.
struct Outcome {
  std::optional<Value> value;
  std::exception_ptr error;
};

Task<Value> Await(JoinHandle<Value> h) { co_return co_await h; }

Outcome Settle(Runtime& rt, Task<Value> task) {
  Outcome out;
  auto f = SpawnAndWait(rt, std::move(task), kTimeout);
  if (!f) return out;
  try {
    out.value = f->get();
  } catch (...) {
    out.error = std::current_exception();
  }
  return out;
}

template <typename E>
bool Holds(const std::exception_ptr& e) {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

class BuiltinKindsTest : public ::testing::Test {
 protected:
  BuiltinKindsTest() { RegisterBuiltinKinds(kinds_); }

  const JobKind& Kind(std::string_view name) {
    const JobKind* k = kinds_.Find(name);
    EXPECT_NE(k, nullptr) << name;
    return *k;
  }

  absl::StatusOr<JobBody> Bind(std::string_view kind, const Struct& args) {
    return Kind(kind).bind(args);
  }
  absl::StatusOr<JobBody> Bind(std::string_view kind, std::string_view json) {
    return Bind(kind, ParseStruct(json));
  }

  // The bind error for `json` (OK if it bound).
  absl::Status BindError(std::string_view kind, std::string_view json) {
    return Bind(kind, json).status();
  }
  absl::Status BindError(std::string_view kind, const Struct& args) {
    return Bind(kind, args).status();
  }

  // Binds and runs the job on `rt`.
  Outcome RunOn(Runtime& rt, std::string_view kind, std::string_view json) {
    absl::StatusOr<JobBody> body = Bind(kind, json);
    EXPECT_TRUE(body.ok()) << body.status();
    if (!body.ok()) return {};
    return Settle(rt, *std::move(body));
  }
  Outcome Run(std::string_view kind, std::string_view json) {
    return RunOn(rt_, kind, json);
  }

  // Runs the job and returns its result, failing the test if it raised.
  Value Result(std::string_view kind, std::string_view json) {
    Outcome out = Run(kind, json);
    EXPECT_FALSE(out.error) << kind << " " << json << " raised";
    return out.value.value_or(Value());
  }

  Watchdog watchdog_{60s, "builtin_kinds_test"};
  JobKindRegistry kinds_;
  // Sleep(1s) takes 10 ms.
  Runtime rt_{{.workers = 2, .time_scale = 0.01}};
};

void ExpectInvalid(const absl::Status& status, std::string_view message) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_EQ(std::string(status.message()), message);
}

void ExpectInvalidStartingWith(const absl::Status& status,
                               std::string_view prefix) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), StartsWith(std::string(prefix)));
}

// --- The registry ------------------------------------------------------------

TEST_F(BuiltinKindsTest, RegistersTheSevenKindsListedByName) {
  std::vector<std::string> names;
  for (const JobKind* k : kinds_.List()) names.push_back(k->name);
  EXPECT_EQ(names, (std::vector<std::string>{"blocking", "echo", "factorial",
                                             "fail", "hash", "sleep", "spin"}));
}

TEST_F(BuiltinKindsTest, AllAreRetrySafeAndOnlyBlockingAndHashBlock) {
  for (const JobKind* k : kinds_.List()) {
    EXPECT_TRUE(k->retry_safe) << k->name;
    EXPECT_EQ(k->blocking, k->name == "blocking" || k->name == "hash")
        << k->name;
  }
}

TEST_F(BuiltinKindsTest, DescriptionsAreOneLineThenTheArgs) {
  for (const JobKind* k : kinds_.List()) {
    const std::string& d = k->description;
    const auto nl = d.find('\n');
    ASSERT_NE(nl, std::string::npos) << k->name;
    EXPECT_GT(nl, 0u) << k->name;
    EXPECT_THAT(d.substr(nl + 1), StartsWith("args: ")) << k->name;
    EXPECT_EQ(d.find('\n', nl + 1), std::string::npos) << k->name;
  }
}

TEST_F(BuiltinKindsTest, RegisteringADuplicateKindIsAlreadyExists) {
  JobKind again{.name = "sleep",
                .description = "another sleep\nargs: none",
                .bind = [](const Struct&) -> absl::StatusOr<JobBody> {
                  return absl::UnimplementedError("never bound");
                }};
  EXPECT_EQ(kinds_.Register(std::move(again)).code(),
            absl::StatusCode::kAlreadyExists);
  // The original is kept.
  EXPECT_TRUE(Bind("sleep", R"({"seconds": 0})").ok());
}

TEST(BuiltinKindsDeathTest, RegisteringTheBuiltinsTwiceAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  JobKindRegistry kinds;
  RegisterBuiltinKinds(kinds);
  EXPECT_DEATH(RegisterBuiltinKinds(kinds), "already registered");
}

TEST_F(BuiltinKindsTest, EveryKindRefusesAnUnknownField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"sleep", "seconds, result"},
      {"echo", "value"},
      {"fail", "type, message, after_seconds"},
      {"factorial", "n, step_seconds"},
      {"spin", "cpu_ms"},
      {"blocking", "seconds"},
      {"hash", "bytes, rounds"},
  };
  for (const auto& [kind, takes] : cases) {
    ExpectInvalid(BindError(kind, R"({"foo": 1})"),
                  "foo: unknown field (this kind takes: " + takes + ")");
  }
}

TEST_F(BuiltinKindsTest, UnknownFieldIsRefusedEvenNextToValidOnes) {
  ExpectInvalid(BindError("sleep", R"({"seconds": 1, "zzz": 2, "aaa": 3})"),
                "aaa: unknown field (this kind takes: seconds, result)");
}

// --- sleep -------------------------------------------------------------------

TEST_F(BuiltinKindsTest, SleepReturnsResult) {
  Value got = Result("sleep", R"({"seconds": 0.5, "result": {"a": [1, "x"]}})");
  EXPECT_TRUE(Equal(got, ParseValue(R"({"a": [1, "x"]})"))) << ToJson(got);
}

TEST_F(BuiltinKindsTest, SleepReturnsNullByDefault) {
  Value got = Result("sleep", R"({"seconds": 0})");
  EXPECT_EQ(got.kind_case(), Value::kNullValue);
}

TEST_F(BuiltinKindsTest, SleepWaitsForTheScaledDelay) {
  const auto start = std::chrono::steady_clock::now();
  Result("sleep", R"({"seconds": 3})");  // 30 ms at time_scale 0.01
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
}

TEST_F(BuiltinKindsTest, SleepRequiresSeconds) {
  ExpectInvalid(BindError("sleep", R"({"result": 1})"), "seconds: required");
}

TEST_F(BuiltinKindsTest, SleepRefusesNegativeSeconds) {
  ExpectInvalid(BindError("sleep", R"({"seconds": -1})"),
                "seconds: must be a finite number >= 0 (got -1)");
}

TEST_F(BuiltinKindsTest, SleepRefusesNonFiniteSeconds) {
  for (double x : {std::numeric_limits<double>::quiet_NaN(),
                   std::numeric_limits<double>::infinity(),
                   -std::numeric_limits<double>::infinity()}) {
    Struct args;
    (*args.mutable_fields())["seconds"] = Number(x);
    ExpectInvalidStartingWith(BindError("sleep", args),
                              "seconds: must be a finite number >= 0 (got ");
  }
}

TEST_F(BuiltinKindsTest, SleepRefusesMoreThanThirtyDays) {
  ExpectInvalid(BindError("sleep", R"({"seconds": 2592001})"),
                "seconds: must be at most 2592000 (30 days) (got 2592001)");
  EXPECT_TRUE(Bind("sleep", R"({"seconds": 2592000})").ok());
}

TEST_F(BuiltinKindsTest, SleepRefusesNonNumberSeconds) {
  ExpectInvalid(BindError("sleep", R"({"seconds": "1"})"),
                "seconds: must be a number (got string)");
  ExpectInvalid(BindError("sleep", R"({"seconds": null})"),
                "seconds: must be a number (got null)");
  ExpectInvalid(BindError("sleep", R"({"seconds": true})"),
                "seconds: must be a number (got bool)");
  ExpectInvalid(BindError("sleep", R"({"seconds": [1]})"),
                "seconds: must be a number (got list)");
  ExpectInvalid(BindError("sleep", R"({"seconds": {}})"),
                "seconds: must be a number (got object)");
}

TEST_F(BuiltinKindsTest, CancellingASleepRaisesCancelledError) {
  Runtime rt({.workers = 2});  // real time: the sleep would take an hour
  absl::StatusOr<JobBody> body = Bind("sleep", R"({"seconds": 3600})");
  ASSERT_TRUE(body.ok());
  JoinHandle<Value> h = rt.Spawn(*std::move(body));
  // Wait until it has started, and so suspended in its sleep.
  ASSERT_TRUE(WaitFor([&] {
    return rt.Metrics().tasks_alive == 1 &&
           rt.Metrics().workers[0].timers_pending +
                   rt.Metrics().workers[1].timers_pending ==
               1;
  }));
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(h.Cancel("stop"));
  Outcome out = Settle(rt, Await(std::move(h)));
  EXPECT_TRUE(Holds<CancelledError>(out.error));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

// --- echo --------------------------------------------------------------------

TEST_F(BuiltinKindsTest, EchoReturnsValue) {
  const char* kValue = R"({"n": 1.5, "s": "text", "l": [true, null, {}]})";
  Value got = Result("echo", std::string(R"({"value": )") + kValue + "}");
  EXPECT_TRUE(Equal(got, ParseValue(kValue))) << ToJson(got);
}

TEST_F(BuiltinKindsTest, EchoReturnsNullValue) {
  Value got = Result("echo", R"({"value": null})");
  EXPECT_EQ(got.kind_case(), Value::kNullValue);
}

TEST_F(BuiltinKindsTest, EchoKeepsTheValueBoundAtBindTime) {
  Struct args = ParseStruct(R"({"value": "before"})");
  absl::StatusOr<JobBody> body = Bind("echo", args);
  ASSERT_TRUE(body.ok());
  (*args.mutable_fields())["value"].set_string_value("after");
  Outcome out = Settle(rt_, *std::move(body));
  ASSERT_TRUE(out.value.has_value());
  EXPECT_EQ(out.value->string_value(), "before");
}

TEST_F(BuiltinKindsTest, EchoRequiresValue) {
  ExpectInvalid(BindError("echo", "{}"), "value: required");
}

TEST_F(BuiltinKindsTest, EchoRefusesAnUnknownFieldNextToValue) {
  ExpectInvalid(BindError("echo", R"({"value": 1, "extra": 2})"),
                "extra: unknown field (this kind takes: value)");
}

// --- fail --------------------------------------------------------------------

TEST_F(BuiltinKindsTest, FailRaisesRuntimeErrorByDefault) {
  Outcome out = Run("fail", "{}");
  ASSERT_TRUE(out.error);
  try {
    std::rethrow_exception(out.error);
  } catch (const JobFailure& f) {
    EXPECT_EQ(f.type(), "RuntimeError");
    EXPECT_EQ(f.message(), "");
  } catch (...) {
    ADD_FAILURE() << "not a JobFailure";
  }
}

TEST_F(BuiltinKindsTest, FailRaisesTheGivenTypeAndMessage) {
  Outcome out =
      Run("fail", R"({"type": "asyncio.TimeoutError", "message": "too slow"})");
  ASSERT_TRUE(out.error);
  try {
    std::rethrow_exception(out.error);
  } catch (const JobFailure& f) {
    EXPECT_EQ(f.type(), "asyncio.TimeoutError");
    EXPECT_EQ(f.message(), "too slow");
    EXPECT_STREQ(f.what(), "too slow");
  } catch (...) {
    ADD_FAILURE() << "not a JobFailure";
  }
}

TEST_F(BuiltinKindsTest, FailWaitsAfterSecondsFirst) {
  const auto start = std::chrono::steady_clock::now();
  Outcome out = Run("fail", R"({"type": "ValueError", "after_seconds": 3})");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
  EXPECT_TRUE(Holds<JobFailure>(out.error));
}

TEST_F(BuiltinKindsTest, FailRefusesATypeThatIsNotAnIdentifier) {
  for (const char* type : {"", "1Error", "Value Error", "Error!", ".Error"}) {
    Struct args;
    (*args.mutable_fields())["type"].set_string_value(type);
    ExpectInvalidStartingWith(BindError("fail", args),
                              "type: must be an exception class name");
  }
}

TEST_F(BuiltinKindsTest, FailRefusesATypeLongerThan128) {
  Struct args;
  (*args.mutable_fields())["type"].set_string_value(std::string(129, 'E'));
  ExpectInvalid(BindError("fail", args),
                "type: must be at most 128 bytes (got 129)");
  (*args.mutable_fields())["type"].set_string_value(std::string(128, 'E'));
  EXPECT_TRUE(Bind("fail", args).ok());
}

TEST_F(BuiltinKindsTest, FailRefusesNonStringTypeAndMessage) {
  ExpectInvalid(BindError("fail", R"({"type": 1})"),
                "type: must be a string (got number)");
  ExpectInvalid(BindError("fail", R"({"message": ["x"]})"),
                "message: must be a string (got list)");
}

TEST_F(BuiltinKindsTest, FailRefusesNegativeAfterSeconds) {
  ExpectInvalid(BindError("fail", R"({"after_seconds": -0.5})"),
                "after_seconds: must be a finite number >= 0 (got -0.5)");
}

// --- factorial ---------------------------------------------------------------

TEST_F(BuiltinKindsTest, FactorialOfFiveIs120) {
  EXPECT_EQ(Result("factorial", R"({"n": 5})").number_value(), 120);
}

TEST_F(BuiltinKindsTest, FactorialOfZeroAndOneIsOne) {
  EXPECT_EQ(Result("factorial", R"({"n": 0})").number_value(), 1);
  EXPECT_EQ(Result("factorial", R"({"n": 1})").number_value(), 1);
}

TEST_F(BuiltinKindsTest, FactorialOf170IsFinite) {
  const double f = Result("factorial", R"({"n": 170})").number_value();
  EXPECT_TRUE(std::isfinite(f));
  EXPECT_NEAR(f / 7.257415615307994e306, 1.0, 1e-12);
}

TEST_F(BuiltinKindsTest, FactorialSleepsStepSecondsPerStep) {
  const auto start = std::chrono::steady_clock::now();
  // Three steps (2, 3, 4) of 1 s each: 30 ms at time_scale 0.01.
  EXPECT_EQ(
      Result("factorial", R"({"n": 4, "step_seconds": 1})").number_value(), 24);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
}

TEST_F(BuiltinKindsTest, FactorialRequiresN) {
  ExpectInvalid(BindError("factorial", R"({"step_seconds": 0})"),
                "n: required");
}

TEST_F(BuiltinKindsTest, FactorialRefusesANonIntegerN) {
  ExpectInvalid(BindError("factorial", R"({"n": 2.5})"),
                "n: must be an integer >= 0 (got 2.5)");
  ExpectInvalid(BindError("factorial", R"({"n": "5"})"),
                "n: must be an integer (got string)");
}

TEST_F(BuiltinKindsTest, FactorialRefusesNOutOfRange) {
  ExpectInvalid(BindError("factorial", R"({"n": -1})"),
                "n: must be an integer >= 0 (got -1)");
  ExpectInvalid(BindError("factorial", R"({"n": 171})"),
                "n: must be at most 170 (171! overflows a double) (got 171)");
}

TEST_F(BuiltinKindsTest, FactorialRefusesNegativeStepSeconds) {
  ExpectInvalid(BindError("factorial", R"({"n": 3, "step_seconds": -1})"),
                "step_seconds: must be a finite number >= 0 (got -1)");
}

// --- spin --------------------------------------------------------------------

TEST_F(BuiltinKindsTest, SpinReturnsItsMillisecondSlices) {
  EXPECT_EQ(Result("spin", R"({"cpu_ms": 5})").number_value(), 5);
  EXPECT_EQ(Result("spin", R"({"cpu_ms": 2.5})").number_value(), 3);
}

TEST_F(BuiltinKindsTest, SpinBurnsAtLeastCpuMs) {
  const auto start = std::chrono::steady_clock::now();
  Result("spin", R"({"cpu_ms": 20})");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);
}

// With one worker, another task can only run while spin yields.
Task<bool> SpinFinishedWhenOthersRan(JobBody spin) {
  JoinHandle<Value> s = runtime::Spawn(std::move(spin));
  co_await runtime::Sleep(2ms);
  co_await runtime::Yield();
  const bool finished = s.IsFinished();
  co_await s;
  co_return finished;
}

TEST_F(BuiltinKindsTest, SpinYieldsTheEventLoop) {
  Runtime rt({.workers = 1});
  absl::StatusOr<JobBody> spin = Bind("spin", R"({"cpu_ms": 300})");
  ASSERT_TRUE(spin.ok());
  EXPECT_FALSE(rt.BlockOn(SpinFinishedWhenOthersRan(*std::move(spin))));
}

TEST_F(BuiltinKindsTest, SpinRequiresPositiveCpuMs) {
  ExpectInvalid(BindError("spin", "{}"), "cpu_ms: required");
  ExpectInvalid(BindError("spin", R"({"cpu_ms": 0})"),
                "cpu_ms: must be a finite number > 0 (got 0)");
}

TEST_F(BuiltinKindsTest, SpinRefusesMoreThanAMinute) {
  ExpectInvalid(BindError("spin", R"({"cpu_ms": 60001})"),
                "cpu_ms: must be at most 60000 (1 minute) (got 60001)");
}

// --- blocking ----------------------------------------------------------------

TEST_F(BuiltinKindsTest, BlockingReturnsNullAfterTheScaledDelay) {
  const auto start = std::chrono::steady_clock::now();
  Value got = Result("blocking", R"({"seconds": 2})");  // 20 ms
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(got.kind_case(), Value::kNullValue);
  EXPECT_GE(took, 20ms);
  EXPECT_LT(took, 1900ms);  // scaled, not the full two seconds
}

// With one worker, the loop runs other tasks while the thread blocks.
Task<bool> BlockingFinishedWhenOthersRan(JobBody blocking) {
  JoinHandle<Value> b = runtime::Spawn(std::move(blocking));
  co_await runtime::Sleep(5ms);
  const bool finished = b.IsFinished();
  co_await b;
  co_return finished;
}

TEST_F(BuiltinKindsTest, BlockingLeavesTheEventLoopFree) {
  Runtime rt({.workers = 1});
  absl::StatusOr<JobBody> body = Bind("blocking", R"({"seconds": 0.3})");
  ASSERT_TRUE(body.ok());
  EXPECT_FALSE(rt.BlockOn(BlockingFinishedWhenOthersRan(*std::move(body))));
}

TEST_F(BuiltinKindsTest, CancellingABlockingJobEndsItAndItsThreadPromptly) {
  Runtime rt({.workers = 2});  // real time: the call would block an hour
  absl::StatusOr<JobBody> body = Bind("blocking", R"({"seconds": 3600})");
  ASSERT_TRUE(body.ok());
  JoinHandle<Value> h = rt.Spawn(*std::move(body));
  ASSERT_TRUE(WaitFor([&] {
    const runtime::BlockingPoolMetrics m = rt.Metrics().blocking;
    return m.queued == 0 && m.threads - m.idle_threads == 1;
  }));  // on a pool thread
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(h.Cancel());
  Outcome out = Settle(rt, Await(std::move(h)));
  EXPECT_TRUE(Holds<CancelledError>(out.error));
  // The thread saw its stop token: it returns instead of blocking on.
  EXPECT_TRUE(
      WaitFor([&] { return rt.Metrics().blocking.completed == 1; }, 5000ms));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST_F(BuiltinKindsTest, BlockingRequiresNonNegativeSeconds) {
  ExpectInvalid(BindError("blocking", "{}"), "seconds: required");
  ExpectInvalid(BindError("blocking", R"({"seconds": -2})"),
                "seconds: must be a finite number >= 0 (got -2)");
}

// --- hash --------------------------------------------------------------------

TEST_F(BuiltinKindsTest, HashReturnsSixteenHexDigits) {
  const std::string digest = Result("hash", "{}").string_value();
  EXPECT_EQ(digest.size(), 16u);
  EXPECT_EQ(digest.find_first_not_of("0123456789abcdef"), std::string::npos)
      << digest;
}

TEST_F(BuiltinKindsTest, HashIsDeterministic) {
  const char* kArgs = R"({"bytes": 100000, "rounds": 3})";
  EXPECT_EQ(Result("hash", kArgs).string_value(),
            Result("hash", kArgs).string_value());
}

TEST_F(BuiltinKindsTest, HashDependsOnBytesAndRounds) {
  const std::string base =
      Result("hash", R"({"bytes": 1000, "rounds": 2})").string_value();
  EXPECT_NE(Result("hash", R"({"bytes": 1001, "rounds": 2})").string_value(),
            base);
  EXPECT_NE(Result("hash", R"({"bytes": 1000, "rounds": 3})").string_value(),
            base);
}

TEST_F(BuiltinKindsTest, HashDefaultsToOneMebibyteOnce) {
  EXPECT_EQ(
      Result("hash", "{}").string_value(),
      Result("hash", R"({"bytes": 1048576, "rounds": 1})").string_value());
}

TEST_F(BuiltinKindsTest, HashDigestIsStable) {
  // Pinned (and checked against an independent implementation): changing the
  // algorithm would change every result clients may have stored.
  EXPECT_EQ(Result("hash", R"({"bytes": 1})").string_value(),
            "9986bbeb38370739");
  EXPECT_EQ(Result("hash", R"({"bytes": 13, "rounds": 3})").string_value(),
            "6dcca7fbbb453d76");
}

TEST_F(BuiltinKindsTest, CancellingAHashJobStopsItsThread) {
  Runtime rt({.workers = 2});
  // Far more work than the test waits for (64 MiB a round).
  absl::StatusOr<JobBody> body =
      Bind("hash", R"({"bytes": 67108864, "rounds": 1000000})");
  ASSERT_TRUE(body.ok());
  JoinHandle<Value> h = rt.Spawn(*std::move(body));
  ASSERT_TRUE(WaitFor([&] {
    const runtime::BlockingPoolMetrics m = rt.Metrics().blocking;
    return m.queued == 0 && m.threads - m.idle_threads == 1;
  }));
  ASSERT_TRUE(h.Cancel());
  Outcome out = Settle(rt, Await(std::move(h)));
  EXPECT_TRUE(Holds<CancelledError>(out.error));
  EXPECT_TRUE(
      WaitFor([&] { return rt.Metrics().blocking.completed == 1; }, 5000ms));
}

TEST_F(BuiltinKindsTest, HashRefusesBytesOutOfRange) {
  ExpectInvalid(BindError("hash", R"({"bytes": 0})"),
                "bytes: must be an integer >= 1 (got 0)");
  ExpectInvalid(BindError("hash", R"({"bytes": 67108865})"),
                "bytes: must be at most 67108864 (64 MiB) (got 67108865)");
  ExpectInvalid(BindError("hash", R"({"bytes": 1.5})"),
                "bytes: must be an integer >= 1 (got 1.5)");
}

TEST_F(BuiltinKindsTest, HashRefusesRoundsOutOfRange) {
  ExpectInvalid(BindError("hash", R"({"rounds": 0})"),
                "rounds: must be an integer >= 1 (got 0)");
  ExpectInvalid(BindError("hash", R"({"rounds": 1000001})"),
                "rounds: must be at most 1000000 (got 1000001)");
  ExpectInvalid(BindError("hash", R"({"rounds": "2"})"),
                "rounds: must be an integer (got string)");
}

}  // namespace
}  // namespace awaitd::server
