// DaemonOptions::register_kinds: an embedding program's own kinds, served
// over RPC next to the built-in ones; a hook's error fails Daemon::Start.
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/kinds/args.h"
#include "server/kinds/job_kind.h"
#include "tests/server/daemon_fixture.h"

namespace awaitd::server {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;
using testing::DaemonTest;
using ::testing::HasSubstr;
using testing::Spec;

JobBody DoubleBody(double x) { co_return NumberValue(2 * x); }

absl::StatusOr<JobBody> BindDouble(const Struct& args) {
  Args a(args, {"x"});
  const double x = a.Number("x", {.min = 0, .max = 1e6});
  if (!a.ok()) return a.status();
  return DoubleBody(x);
}

absl::Status RegisterDouble(JobKindRegistry& kinds) {
  return kinds.Register({.name = "double_it",
                         .description = "Returns 2x.\nargs: x (number)",
                         .retry_safe = true,
                         .bind = BindDouble});
}

class KindHookTest : public DaemonTest {
 protected:
  KindHookTest() { start_in_setup_ = false; }
};

TEST_F(KindHookTest, AKindRegisteredByTheHookRunsOverRpc) {
  DaemonOptions o = DefaultOptions();
  o.register_kinds = RegisterDouble;
  StartDaemon(std::move(o));
  auto ids = SubmitOk({Spec("double_it", R"({"x": 21})")});
  ASSERT_EQ(ids.size(), 1u);
  v1::Job job = WaitForOk(ids[0]);
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job.result().number_value(), 42);
  // The built-in kinds are still there.
  auto echo = SubmitOk({Spec("echo", R"({"value": 1})")});
  ASSERT_EQ(echo.size(), 1u);
  EXPECT_EQ(WaitForOk(echo[0]).result().number_value(), 1);
}

TEST_F(KindHookTest, ListKindsShowsTheHooksKindWithTheBuiltins) {
  DaemonOptions o = DefaultOptions();
  o.register_kinds = RegisterDouble;
  StartDaemon(std::move(o));
  v1::ListKindsResponse resp;
  ASSERT_TRUE(
      stub_->ListKinds(Ctx().get(), v1::ListKindsRequest(), &resp).ok());
  std::vector<std::string> names;
  for (const auto& k : resp.kinds()) names.push_back(k.name());
  EXPECT_THAT(names, ::testing::Contains("double_it"));
  EXPECT_THAT(names, ::testing::Contains("sleep"));
  EXPECT_EQ(names.size(), 8u);
}

TEST_F(KindHookTest, TheHooksArgumentErrorsReachTheClientWithThePath) {
  DaemonOptions o = DefaultOptions();
  o.register_kinds = RegisterDouble;
  StartDaemon(std::move(o));
  v1::SubmitResponse resp;
  grpc::Status s = Submit({Spec("double_it", R"({"x": "a"})")}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr("jobs[0].args.x: must be a number (got string)"));
}

TEST_F(KindHookTest, AHookErrorFailsStartWithItsCodeAndMessage) {
  DaemonOptions o = DefaultOptions();
  o.register_kinds = [](JobKindRegistry&) {
    return absl::FailedPreconditionError("no license for word_count");
  };
  auto d = Daemon::Start(std::move(o));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(std::string(d.status().message()),
            "register_kinds: no license for word_count");
}

TEST_F(KindHookTest, AHookRegisteringABuiltinNameFailsStart) {
  DaemonOptions o = DefaultOptions();
  o.register_kinds = [](JobKindRegistry& kinds) {
    return kinds.Register({.name = "sleep", .bind = BindDouble});
  };
  auto d = Daemon::Start(std::move(o));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(std::string(d.status().message()),
            "register_kinds: job kind sleep is already registered");
}

}  // namespace
}  // namespace awaitd::server
