// BlockingPool: runs jobs, grows to its maximum and queues beyond it, retires
// idle threads, and cancels queued jobs at shutdown while waiting for running
// ones.
#include "runtime/blocking_pool.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/runtime/test_util.h"

namespace awaitd::runtime {
namespace {

using testing::WaitFor;
using testing::Watchdog;
using namespace std::chrono_literals;

// A job that records how it was run and can be held on a gate.
struct TestJob : BlockingPool::Job {
  std::shared_future<void> gate;  // waited on before returning (if valid)
  std::atomic<int> runs{0};
  std::atomic<int> completions{0};
  std::atomic<int> cancelled_runs{0};
  std::atomic<bool> started{false};
  std::thread::id thread;
  std::atomic<int>* running = nullptr;  // concurrently running jobs

  TestJob() {
    run = &TestJob::Run;
    complete = &TestJob::Complete;
  }
  static void Run(BlockingPool::Job* j) {
    auto* self = static_cast<TestJob*>(j);
    self->thread = std::this_thread::get_id();
    if (self->running != nullptr) self->running->fetch_add(1);
    self->started.store(true);
    if (self->gate.valid()) self->gate.wait();
    if (self->running != nullptr) self->running->fetch_sub(1);
    self->runs.fetch_add(1);
  }
  static void Complete(BlockingPool::Job* j, bool cancelled) {
    auto* self = static_cast<TestJob*>(j);
    if (cancelled) self->cancelled_runs.fetch_add(1);
    self->completions.fetch_add(1);
  }
  bool Done() const { return completions.load() > 0; }
};

TEST(BlockingPoolTest, StartsMinThreadsAtConstruction) {
  Watchdog wd(60s);
  BlockingPool pool({.min_threads = 3});
  EXPECT_EQ(pool.Metrics().threads, 3u);
}

TEST(BlockingPoolTest, RunsASubmittedJobOnAPoolThread) {
  Watchdog wd(60s);
  BlockingPool pool({});
  TestJob job;
  ASSERT_TRUE(pool.Submit(&job));
  ASSERT_TRUE(WaitFor([&] { return job.Done(); }));
  EXPECT_EQ(job.runs.load(), 1);
  EXPECT_EQ(job.cancelled_runs.load(), 0);
  EXPECT_NE(job.thread, std::this_thread::get_id());
  EXPECT_TRUE(WaitFor([&] { return pool.Metrics().completed == 1; }));
}

TEST(BlockingPoolTest, IdleThreadIsReusedInsteadOfStartingAnother) {
  Watchdog wd(60s);
  BlockingPool pool({});
  TestJob first;
  pool.Submit(&first);
  ASSERT_TRUE(WaitFor([&] { return pool.Metrics().idle_threads == 1; }));
  TestJob second;
  pool.Submit(&second);
  ASSERT_TRUE(WaitFor([&] { return second.Done(); }));
  EXPECT_EQ(pool.Metrics().threads, 1u);
  EXPECT_EQ(first.thread, second.thread);
}

TEST(BlockingPoolTest, GrowsToMaxThreadsAndQueuesBeyond) {
  Watchdog wd(60s);
  BlockingPool pool({.max_threads = 3});
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<int> running{0};
  std::vector<std::unique_ptr<TestJob>> jobs;
  for (int i = 0; i < 5; ++i) {
    jobs.push_back(std::make_unique<TestJob>());
    jobs.back()->gate = gate;
    jobs.back()->running = &running;
    ASSERT_TRUE(pool.Submit(jobs.back().get()));
  }
  ASSERT_TRUE(WaitFor([&] { return running.load() == 3; }));
  BlockingPoolMetrics m = pool.Metrics();
  EXPECT_EQ(m.threads, 3u);
  EXPECT_EQ(m.queued, 2u);
  EXPECT_EQ(running.load(), 3);  // never more than max at once
  release.set_value();
  for (auto& j : jobs) EXPECT_TRUE(WaitFor([&] { return j->Done(); }));
  EXPECT_TRUE(WaitFor([&] { return pool.Metrics().completed == 5; }));
  m = pool.Metrics();
  EXPECT_EQ(m.threads, 3u);
  EXPECT_EQ(m.queued, 0u);
  for (auto& j : jobs) EXPECT_EQ(j->runs.load(), 1);
}

TEST(BlockingPoolTest, IdleThreadsRetireAfterKeepAlive) {
  Watchdog wd(60s);
  BlockingPool pool({.keep_alive = 50ms});
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::vector<std::unique_ptr<TestJob>> jobs;
  for (int i = 0; i < 4; ++i) {
    jobs.push_back(std::make_unique<TestJob>());
    jobs.back()->gate = gate;
    pool.Submit(jobs.back().get());
  }
  ASSERT_TRUE(WaitFor([&] { return pool.Metrics().threads == 4; }));
  release.set_value();
  EXPECT_TRUE(WaitFor([&] { return pool.Metrics().threads == 0; }, 5s));
  EXPECT_EQ(pool.Metrics().threads_retired, 4u);
  // A retired pool starts threads again on demand.
  TestJob again;
  pool.Submit(&again);
  EXPECT_TRUE(WaitFor([&] { return again.Done(); }));
}

TEST(BlockingPoolTest, IdleThreadsDoNotRetireBelowMinThreads) {
  Watchdog wd(60s);
  BlockingPool pool({.min_threads = 2, .keep_alive = 20ms});
  // Let the two minimum threads reach their idle wait, so that the first two
  // jobs go to them and three more threads are started.
  ASSERT_TRUE(WaitFor([&] { return pool.Metrics().idle_threads == 2; }));
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<int> running{0};
  std::vector<std::unique_ptr<TestJob>> jobs;
  for (int i = 0; i < 5; ++i) {
    jobs.push_back(std::make_unique<TestJob>());
    jobs.back()->gate = gate;
    jobs.back()->running = &running;
    pool.Submit(jobs.back().get());
  }
  ASSERT_TRUE(WaitFor([&] { return running.load() == 5; }));
  EXPECT_EQ(pool.Metrics().threads, 5u);
  release.set_value();
  EXPECT_TRUE(WaitFor([&] { return pool.Metrics().threads == 2; }, 5s));
  // Several keep-alive periods later the minimum is still there.
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(pool.Metrics().threads, 2u);
  EXPECT_EQ(pool.Metrics().threads_retired, 3u);
}

TEST(BlockingPoolTest, ShutdownCancelsQueuedJobsAndWaitsForRunningOnes) {
  Watchdog wd(60s);
  BlockingPool pool({.max_threads = 1});
  std::promise<void> release;
  TestJob running;
  running.gate = release.get_future().share();
  TestJob queued1;
  TestJob queued2;
  pool.Submit(&running);
  ASSERT_TRUE(WaitFor([&] { return running.started.load(); }));
  pool.Submit(&queued1);
  pool.Submit(&queued2);
  std::atomic<bool> shutdown_returned{false};
  std::thread stopper([&] {
    pool.Shutdown();
    shutdown_returned.store(true);
  });
  // Queued jobs are completed as cancelled without running...
  EXPECT_TRUE(WaitFor([&] { return queued1.Done() && queued2.Done(); }));
  EXPECT_EQ(queued1.cancelled_runs.load(), 1);
  EXPECT_EQ(queued2.cancelled_runs.load(), 1);
  EXPECT_EQ(queued1.runs.load() + queued2.runs.load(), 0);
  // ...while Shutdown still waits for the running one.
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(shutdown_returned.load());
  release.set_value();
  stopper.join();
  EXPECT_TRUE(shutdown_returned.load());
  EXPECT_EQ(running.runs.load(), 1);
  EXPECT_EQ(running.completions.load(), 1);
  EXPECT_EQ(running.cancelled_runs.load(), 0);
  EXPECT_EQ(pool.Metrics().threads, 0u);
}

TEST(BlockingPoolTest, SubmitAfterShutdownIsRefused) {
  Watchdog wd(60s);
  BlockingPool pool({.min_threads = 2});
  pool.Shutdown();
  TestJob job;
  EXPECT_FALSE(pool.Submit(&job));
  EXPECT_FALSE(job.Done());
  pool.Shutdown();  // idempotent
  EXPECT_EQ(pool.Metrics().threads, 0u);
}

// Starts threads with std::thread until `fail` is set, then fails as
// pthread_create does when the process is out of threads (EAGAIN).
struct FlakyThreadStarter {
  std::shared_ptr<std::atomic<bool>> fail =
      std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<std::atomic<int>> refused =
      std::make_shared<std::atomic<int>>(0);

  std::function<std::error_code(std::function<void()>)> Fn() const {
    return [fail = fail, refused = refused](std::function<void()> body) {
      if (fail->load()) {
        refused->fetch_add(1);
        return std::make_error_code(std::errc::resource_unavailable_try_again);
      }
      std::thread(std::move(body)).detach();
      return std::error_code();
    };
  }
};

// A thread that cannot be started fails the job that needed it (neither of
// its functions runs), and the pool goes on with the threads it has.
TEST(BlockingPoolTest, ThreadStartFailureFailsOnlyThatJob) {
  Watchdog wd(60s);
  FlakyThreadStarter starter;
  BlockingPool pool({.max_threads = 4, .start_thread = starter.Fn()});
  std::promise<void> release;
  TestJob busy;
  busy.gate = release.get_future().share();
  ASSERT_TRUE(pool.Submit(&busy));
  ASSERT_TRUE(WaitFor([&] { return busy.started.load(); }));

  starter.fail->store(true);
  TestJob refused;
  const BlockingPool::SubmitResult r = pool.Submit(&refused);
  EXPECT_FALSE(r);
  EXPECT_EQ(r.refusal, BlockingPool::Refusal::kNoThread);
  EXPECT_NE(r.error.find("cannot start a blocking-pool thread"),
            std::string::npos)
      << r.error;
  EXPECT_NE(r.error.find(
                std::make_error_code(std::errc::resource_unavailable_try_again)
                    .message()),
            std::string::npos)
      << r.error;
  EXPECT_NE(r.error.find("1 threads, at most 4"), std::string::npos) << r.error;
  EXPECT_EQ(starter.refused->load(), 1);
  EXPECT_EQ(pool.Metrics().threads, 1u);
  EXPECT_EQ(pool.Metrics().queued, 0u);

  // The thread it has still runs work: once idle, it takes the next job
  // without a new thread being needed.
  release.set_value();
  ASSERT_TRUE(WaitFor([&] { return busy.Done(); }));
  ASSERT_TRUE(WaitFor([&] { return pool.Metrics().idle_threads == 1; }));
  TestJob next;
  ASSERT_TRUE(pool.Submit(&next));
  ASSERT_TRUE(WaitFor([&] { return next.Done(); }));
  EXPECT_EQ(next.runs.load(), 1);
  EXPECT_EQ(next.thread, busy.thread);
  EXPECT_EQ(refused.runs.load(), 0);
  EXPECT_EQ(refused.completions.load(), 0);
  pool.Shutdown();
  EXPECT_EQ(refused.completions.load(), 0);  // not queued: never completed
}

TEST(BlockingPoolTest, MinThreadsThatCannotStartAreMissing) {
  Watchdog wd(60s);
  FlakyThreadStarter starter;
  starter.fail->store(true);
  BlockingPool pool({.min_threads = 2, .start_thread = starter.Fn()});
  EXPECT_EQ(pool.Metrics().threads, 0u);
  EXPECT_EQ(starter.refused->load(), 2);
  starter.fail->store(false);
  TestJob job;
  ASSERT_TRUE(pool.Submit(&job));
  ASSERT_TRUE(WaitFor([&] { return job.Done(); }));
}

TEST(BlockingPoolStressTest, ConcurrentSubmittersHaveEveryJobRunOnce) {
  Watchdog wd(120s);
  BlockingPool pool({.max_threads = 6, .keep_alive = 1ms});
  constexpr int kSubmitters = 4;
  const std::size_t per = testing::Scaled(20'000, 1'000);
  std::vector<std::vector<TestJob>> jobs(kSubmitters);
  for (auto& v : jobs) v = std::vector<TestJob>(per);
  std::vector<std::thread> threads;
  for (int s = 0; s < kSubmitters; ++s) {
    threads.emplace_back([&, s] {
      for (auto& j : jobs[s]) ASSERT_TRUE(pool.Submit(&j));
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(WaitFor(
      [&] { return pool.Metrics().completed == kSubmitters * per; }, 60s));
  for (auto& v : jobs) {
    for (auto& j : v) {
      ASSERT_EQ(j.runs.load(), 1);
      ASSERT_EQ(j.completions.load(), 1);
    }
  }
  EXPECT_LE(pool.Metrics().threads, 6u);
}

}  // namespace
}  // namespace awaitd::runtime
