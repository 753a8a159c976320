// A blocking-pool thread that cannot be started (pthread_create's EAGAIN:
// the process is out of threads) fails the job that needed it, as Python's
// to_thread does (RuntimeError: can't start new thread), and never the
// daemon: other jobs and calls go on. The failure is injected through the
// runtime's thread-start hook (RuntimeOptions::blocking_start_thread).
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/daemon_fixture.h"

namespace awaitd::server::testing {
namespace {

using ::testing::HasSubstr;

class ThreadStartFailureTest : public DaemonTest {
 protected:
  ThreadStartFailureTest() { start_in_setup_ = false; }

  void SetUp() override {
    DaemonOptions o = DefaultOptions();
    o.runtime.blocking_start_thread = [fail = fail_, refused = refused_](
                                          std::function<void()> body) {
      if (fail->load()) {
        refused->fetch_add(1);
        return std::make_error_code(std::errc::resource_unavailable_try_again);
      }
      std::thread(std::move(body)).detach();
      return std::error_code();
    };
    StartDaemon(std::move(o));
  }

  std::shared_ptr<std::atomic<bool>> fail_ =
      std::make_shared<std::atomic<bool>>(true);
  std::shared_ptr<std::atomic<int>> refused_ =
      std::make_shared<std::atomic<int>>(0);
};

TEST_F(ThreadStartFailureTest, BlockingJobFailsAndTheDaemonKeepsServing) {
  ASSERT_EQ(daemon_->runtime().Metrics().blocking.threads, 0u);
  const std::vector<std::uint64_t> ids = SubmitOk(
      {Spec("blocking", R"({"seconds": 0})"), Spec("hash", R"({"bytes": 64})"),
       Spec("echo", R"({"value": 7})")});
  ASSERT_EQ(ids.size(), 3u);
  for (int i = 0; i < 2; ++i) {
    const v1::Job j = AwaitDone(ids[i]);
    EXPECT_EQ(j.state(), v1::JOB_STATE_FAILED) << j.DebugString();
    EXPECT_EQ(j.error().type(), "RuntimeError");
    EXPECT_THAT(j.error().message(), HasSubstr("can't start new thread"));
    EXPECT_THAT(j.error().message(),
                HasSubstr("cannot start a blocking-pool thread"));
  }
  EXPECT_EQ(AwaitDone(ids[2]).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_GE(refused_->load(), 2);

  // Once threads can start again, blocking jobs run as usual.
  fail_->store(false);
  const std::vector<std::uint64_t> later =
      SubmitOk({Spec("blocking", R"({"seconds": 0})")});
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(AwaitDone(later[0]).state(), v1::JOB_STATE_SUCCEEDED);
}

}  // namespace
}  // namespace awaitd::server::testing
