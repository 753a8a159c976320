// First light: one job of each common kind over a real channel.
#include "tests/server/daemon_fixture.h"

namespace awaitd::server::testing {
namespace {

class SmokeTest : public DaemonTest {};

TEST_F(SmokeTest, EchoRoundTrip) {
  auto ids = SubmitOk({Spec("echo", R"({"value": 42})")});
  ASSERT_EQ(ids.size(), 1u);
  v1::Job j = WaitForOk(ids[0]);
  EXPECT_EQ(j.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(j.result().number_value(), 42);
  EXPECT_EQ(j.name(), "Job-1");
}

TEST_F(SmokeTest, GatherInputOrder) {
  v1::GatherRequest req;
  *req.add_jobs() =
      Input(Spec("sleep", R"({"seconds": 0.05, "result": "slow"})"));
  *req.add_jobs() = Input(Spec("echo", R"({"value": "fast"})"));
  v1::GatherResponse resp;
  auto ctx = Ctx();
  grpc::Status s = stub_->Gather(ctx.get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.results_size(), 2);
  EXPECT_EQ(resp.results(0).result().string_value(), "slow");
  EXPECT_EQ(resp.results(1).result().string_value(), "fast");
  EXPECT_NE(resp.group_id(), 0u);
  auto md = ctx->GetServerInitialMetadata();
  auto it = md.find("awaitd-group-id");
  ASSERT_NE(it, md.end());
  EXPECT_EQ(std::string(it->second.data(), it->second.size()),
            std::to_string(resp.group_id()));
}

TEST_F(SmokeTest, WaitForTimeoutCancels) {
  auto ids = SubmitOk({Spec("sleep", R"({"seconds": 30})")});
  v1::WaitForResponse resp;
  grpc::Status s = WaitFor(Input(ids[0]), &resp, 0.05);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << s.error_message();
  v1::Job j = GetOk(ids[0]);
  EXPECT_EQ(j.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(j.error().type(), "CancelledError");
}

}  // namespace
}  // namespace awaitd::server::testing
