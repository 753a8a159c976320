// Shutdown: returns promptly whatever tasks are doing, destroys every
// unfinished frame (running its destructors), completes outstanding handles
// as cancelled, refuses new work, drains on request, and runs once.
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/errors.h"
#include "runtime/runtime.h"
#include "runtime/time.h"
#include "runtime/to_thread.h"
#include "tests/runtime/test_util.h"

namespace awaitd::runtime {
namespace {

using testing::LiveCounter;
using testing::LogCapture;
using testing::WaitFor;
using testing::Watchdog;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kPrompt = 5s;

Task<void> SleepForever(std::atomic<int>* live, std::atomic<int>* started) {
  LiveCounter c(live);
  started->fetch_add(1);
  co_await Sleep(24h);
  ADD_FAILURE() << "a task sleeping for a day woke up";
}

TEST(ShutdownTest, SleepingTasksAreDestroyedPromptly) {
  Watchdog wd(60s);
  std::atomic<int> live{0};
  std::atomic<int> started{0};
  Runtime rt({.workers = 2});
  std::vector<JoinHandle<void>> hs;
  for (int i = 0; i < 200; ++i)
    hs.push_back(rt.Spawn(SleepForever(&live, &started)));
  ASSERT_TRUE(WaitFor([&] { return started.load() == 200; }));
  EXPECT_EQ(live.load(), 200);
  EXPECT_EQ(rt.TasksAlive(), 200u);
  const auto t0 = Clock::now();
  EXPECT_TRUE(rt.Shutdown());
  EXPECT_LT(Clock::now() - t0, kPrompt);
  EXPECT_EQ(live.load(), 0) << "frames of unfinished tasks were not destroyed";
  EXPECT_EQ(rt.TasksAlive(), 0u);
  for (auto& h : hs) EXPECT_TRUE(h.IsFinished());
}

Task<void> BlockInToThread(std::atomic<int>* live, std::atomic<int>* fn_runs,
                           std::shared_future<void> release) {
  LiveCounter c(live);
  // Named: GCC 12 destroys a capturing lambda temporary in co_await twice.
  auto fn = [fn_runs, release] {
    fn_runs->fetch_add(1);
    release.wait_for(std::chrono::seconds(2));
  };
  co_await ToThread(fn);
  ADD_FAILURE() << "resumed after shutdown";
}

TEST(ShutdownTest,
     TasksBlockedInToThreadDoNotHoldShutdownAndQueuedCallsNeverRun) {
  Watchdog wd(60s);
  std::atomic<int> live{0};
  std::atomic<int> fn_runs{0};
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  Runtime rt({.workers = 2, .blocking_max_threads = 2});
  std::vector<JoinHandle<void>> hs;
  for (int i = 0; i < 6; ++i)
    hs.push_back(rt.Spawn(BlockInToThread(&live, &fn_runs, released)));
  // Two calls run (the pool's maximum), four wait in its queue.
  ASSERT_TRUE(WaitFor([&] {
    return fn_runs.load() == 2 && rt.Metrics().blocking.queued == 4;
  }));
  // Running blocking calls cannot be interrupted: let them finish shortly
  // after shutdown began.
  std::thread releaser([&] {
    std::this_thread::sleep_for(100ms);
    release.set_value();
  });
  const auto t0 = Clock::now();
  rt.Shutdown();
  EXPECT_LT(Clock::now() - t0, kPrompt);
  releaser.join();
  EXPECT_EQ(fn_runs.load(), 2) << "a queued ToThread call ran during shutdown";
  EXPECT_EQ(live.load(), 0);
  for (auto& h : hs) EXPECT_TRUE(h.IsFinished());
}

Task<void> AwaitOther(JoinHandle<void> other, std::atomic<int>* live) {
  LiveCounter c(live);
  co_await other;
  ADD_FAILURE() << "joined a task that sleeps for a day";
}

Task<void> SpawnJoinChains(int n, std::atomic<int>* live,
                           std::atomic<int>* started,
                           std::atomic<bool>* ready) {
  for (int i = 0; i < n; ++i) {
    JoinHandle<void> sleeper = Spawn(SleepForever(live, started));
    Spawn(AwaitOther(std::move(sleeper), live)).Detach();
  }
  ready->store(true);
  co_await Sleep(24h);
}

// Tasks suspended on JoinHandles of other unfinished tasks: destroying them
// in any order must neither crash nor leak (ASan's leak check runs at exit).
TEST(ShutdownTest, TasksAwaitingJoinHandlesAreDestroyedWithoutLeaks) {
  Watchdog wd(60s);
  std::atomic<int> live{0};
  std::atomic<int> started{0};
  std::atomic<bool> ready{false};
  Runtime rt({.workers = 2});
  // 300 pairs: task ids spread over every owned-list shard, so joiners are
  // destroyed both before and after the tasks they await.
  rt.Spawn(SpawnJoinChains(300, &live, &started, &ready)).Detach();
  ASSERT_TRUE(WaitFor([&] { return ready.load() && started.load() == 300; }));
  ASSERT_TRUE(WaitFor([&] { return rt.Metrics().tasks_alive == 601; }));
  const auto t0 = Clock::now();
  rt.Shutdown();
  EXPECT_LT(Clock::now() - t0, kPrompt);
  EXPECT_EQ(live.load(), 0);
  EXPECT_EQ(rt.TasksAlive(), 0u);
}

Task<void> Spin(std::chrono::milliseconds d, std::atomic<bool>* spinning) {
  spinning->store(true);
  testing::BusySpin(d);
  co_return;
}

Task<void> MarkRun([[maybe_unused]] std::shared_ptr<int> token,
                   std::atomic<int>* ran) {
  ran->fetch_add(1);
  co_return;
}

TEST(ShutdownTest, QueuedTasksThatNeverStartedAreDestroyed) {
  Watchdog wd(60s);
  Runtime rt({.workers = 1});
  std::atomic<bool> spinning{false};
  std::atomic<int> ran{0};
  auto token = std::make_shared<int>(0);
  JoinHandle<void> spinner = rt.Spawn(Spin(300ms, &spinning));
  ASSERT_TRUE(WaitFor([&] { return spinning.load(); }));
  // The only worker is busy: these wait in the queues.
  std::vector<JoinHandle<void>> queued;
  for (int i = 0; i < 1000; ++i)
    queued.push_back(rt.Spawn(MarkRun(token, &ran)));
  EXPECT_EQ(token.use_count(), 1001);
  rt.Shutdown();  // waits for the spinning task to reach a suspension point
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(token.use_count(), 1)
      << "frames of queued tasks were not destroyed";
  for (auto& h : queued) EXPECT_TRUE(h.IsFinished());
  EXPECT_TRUE(spinner.IsFinished());
}

TEST(ShutdownTest, SpawnAfterShutdownNeverRunsTheTask) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  rt.Shutdown();
  std::atomic<int> ran{0};
  auto token = std::make_shared<int>(0);
  JoinHandle<void> h = rt.Spawn(MarkRun(token, &ran));
  EXPECT_TRUE(h.IsFinished());
  EXPECT_EQ(token.use_count(), 1);
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(rt.TasksAlive(), 0u);
}

Task<int> Seven() { co_return 7; }

// Runtime::BlockOn documents that work submitted after shutdown began is
// not run and reports cancellation: BlockOn must throw, not wait forever.
TEST(ShutdownTest, BlockOnAfterShutdownThrowsCancelledError) {
  Watchdog wd(60s);
  auto rt = std::make_shared<Runtime>(RuntimeOptions{.workers = 2});
  rt->Shutdown();
  auto outcome = std::make_shared<std::promise<std::string>>();
  std::future<std::string> f = outcome->get_future();
  // On a detached thread: if BlockOn hangs, the test fails instead of hanging.
  std::thread([rt, outcome] {
    try {
      rt->BlockOn(Seven());
      outcome->set_value("returned a value");
    } catch (const CancelledError&) {
      outcome->set_value("cancelled");
    } catch (...) {
      outcome->set_value("other exception");
    }
  }).detach();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready)
      << "BlockOn after Shutdown blocked forever";
  EXPECT_EQ(f.get(), "cancelled");
}

Task<void> SleepThenFlag(std::chrono::milliseconds d, std::atomic<int>* done) {
  co_await Sleep(d);
  done->fetch_add(1);
}

TEST(ShutdownTest, DrainWaitsForTasksToFinish) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  std::atomic<int> done{0};
  for (int i = 0; i < 50; ++i) rt.Spawn(SleepThenFlag(100ms, &done)).Detach();
  const auto t0 = Clock::now();
  EXPECT_TRUE(rt.Shutdown(ShutdownPolicy::kDrain, 10s));
  EXPECT_EQ(done.load(), 50);
  EXPECT_GE(Clock::now() - t0, 90ms);
  EXPECT_LT(Clock::now() - t0, kPrompt);
}

TEST(ShutdownTest, DrainCancelsWhatIsLeftWhenGraceExpires) {
  Watchdog wd(60s);
  LogCapture log;
  std::atomic<int> live{0};
  std::atomic<int> started{0};
  std::atomic<int> done{0};
  Runtime rt({.workers = 2, .log_sink = log.Sink()});
  rt.Spawn(SleepForever(&live, &started)).Detach();
  rt.Spawn(SleepThenFlag(10ms, &done)).Detach();
  ASSERT_TRUE(WaitFor([&] { return started.load() == 1; }));
  const auto t0 = Clock::now();
  EXPECT_TRUE(rt.Shutdown(ShutdownPolicy::kDrain, 200ms));
  EXPECT_GE(Clock::now() - t0, 190ms);
  EXPECT_LT(Clock::now() - t0, kPrompt);
  EXPECT_EQ(done.load(), 1);
  EXPECT_EQ(live.load(), 0);
  EXPECT_FALSE(
      log.Matching({"event=shutdown_grace_expired", "tasks_cancelled=1"})
          .empty());
}

TEST(ShutdownTest, DrainPolicyFromOptionsIsUsedByDestructor) {
  Watchdog wd(60s);
  std::atomic<int> done{0};
  {
    Runtime rt({.workers = 2,
                .shutdown_policy = ShutdownPolicy::kDrain,
                .shutdown_grace = 10s});
    for (int i = 0; i < 10; ++i) rt.Spawn(SleepThenFlag(50ms, &done)).Detach();
  }
  EXPECT_EQ(done.load(), 10);
}

TEST(ShutdownTest, SecondShutdownReturnsFalse) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  EXPECT_TRUE(rt.Shutdown());
  EXPECT_FALSE(rt.Shutdown());
  EXPECT_FALSE(rt.Shutdown(ShutdownPolicy::kDrain, 1s));
}

Task<void> Churn(int depth, std::atomic<int>* live) {
  LiveCounter c(live);
  for (int i = 0;; ++i) {
    if (depth > 0 && i % 4 == 0) Spawn(Churn(depth - 1, live)).Detach();
    if (i % 3 == 0) {
      co_await Sleep(std::chrono::microseconds(200 + i % 500));
    } else if (i % 7 == 0) {
      co_await ToThread([] { return 1; });
    } else {
      co_await Yield();
    }
  }
}

TEST(ShutdownTest, DestroyingARuntimeWithWorkInFlightIsClean) {
  Watchdog wd(60s);
  std::atomic<int> live{0};
  for (int round = 0; round < 5; ++round) {
    {
      Runtime rt({.workers = 2});
      for (int i = 0; i < 20; ++i) rt.Spawn(Churn(3, &live)).Detach();
      std::this_thread::sleep_for(20ms);  // let it churn
      // The destructor shuts down with the default (cancel) policy.
    }
    EXPECT_EQ(live.load(), 0);
  }
}

}  // namespace
}  // namespace awaitd::runtime
