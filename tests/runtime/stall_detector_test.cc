// Stall detector: a task that runs past the threshold without suspending is
// counted and logged with its id; a task that suspends often is not.
#include <atomic>
#include <chrono>
#include <string>

#include "gtest/gtest.h"
#include "runtime/runtime.h"
#include "runtime/time.h"
#include "tests/runtime/test_util.h"

namespace awaitd::runtime {
namespace {

using testing::LogCapture;
using testing::Watchdog;
using namespace std::chrono_literals;

Task<std::uint64_t> HogTheLoop(std::chrono::milliseconds d) {
  testing::BusySpin(d);
  co_return CurrentTaskId();
}

TEST(StallDetectorTest, TaskThatNeverSuspendsIsCountedAndLoggedWithItsId) {
  Watchdog wd(60s);
  LogCapture log;
  Runtime rt({.workers = 2, .stall_threshold = 50ms, .log_sink = log.Sink()});
  const std::uint64_t id = rt.BlockOn(HogTheLoop(300ms));
  ASSERT_NE(id, 0u);
  EXPECT_GE(rt.Metrics().stalls, 1u);
  const auto lines =
      log.Matching({"event=stall", "task_id=" + std::to_string(id) + " "});
  EXPECT_EQ(lines.size(), 1u) << "one stall is reported once";
}

Task<void> WellBehaved(int n) {
  for (int i = 0; i < n; ++i) {
    testing::BusySpin(1ms);
    co_await Sleep(2ms);
  }
}

TEST(StallDetectorTest, TaskThatSuspendsOftenIsNotReported) {
  Watchdog wd(60s);
  LogCapture log;
  Runtime rt({.workers = 2, .stall_threshold = 50ms, .log_sink = log.Sink()});
  rt.BlockOn(WellBehaved(100));
  EXPECT_EQ(rt.Metrics().stalls, 0u);
  EXPECT_TRUE(log.Matching({"event=stall"}).empty());
}

TEST(StallDetectorTest, ManyShortTasksInARowAreNotAStall) {
  Watchdog wd(60s);
  LogCapture log;
  Runtime rt({.workers = 1, .stall_threshold = 50ms, .log_sink = log.Sink()});
  struct Local {
    static Task<void> Short() {
      testing::BusySpin(2ms);
      co_return;
    }
    static Task<void> Many(int n) {
      std::vector<JoinHandle<void>> hs;
      for (int i = 0; i < n; ++i) hs.push_back(Spawn(Short()));
      for (auto& h : hs) co_await h;
    }
  };
  // 200 ms of back-to-back work on one worker, but no single task hogs it.
  rt.BlockOn(Local::Many(100));
  EXPECT_EQ(rt.Metrics().stalls, 0u);
}

TEST(StallDetectorTest, ZeroThresholdDisablesTheDetector) {
  Watchdog wd(60s);
  LogCapture log;
  Runtime rt({.workers = 1, .stall_threshold = 0ms, .log_sink = log.Sink()});
  rt.BlockOn(HogTheLoop(100ms));
  EXPECT_EQ(rt.Metrics().stalls, 0u);
  EXPECT_TRUE(log.Matching({"event=stall"}).empty());
}

}  // namespace
}  // namespace awaitd::runtime
