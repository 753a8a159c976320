// ToThread: values and exceptions come back, the function runs off the event
// loops, and the loops keep running while the blocking pool is busy.
#include "runtime/to_thread.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/runtime.h"
#include "runtime/time.h"
#include "tests/runtime/test_util.h"

namespace awaitd::runtime {
namespace {

using testing::BlockOnWithin;
using testing::Watchdog;
using namespace std::chrono_literals;

constexpr auto kTimeout = std::chrono::milliseconds(30'000);

Task<int> Add(int a, int b) {
  co_return co_await ToThread([a, b] { return a + b; });
}

TEST(ToThreadTest, ReturnsTheFunctionsValue) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  EXPECT_EQ(rt.BlockOn(Add(40, 2)), 42);
}

Task<std::string> MoveOnlyAndString() {
  std::unique_ptr<int> p =
      co_await ToThread([] { return std::make_unique<int>(5); });
  std::string s = co_await ToThread([] { return std::string(1000, 'x'); });
  co_return std::to_string(*p) + s.substr(0, 2);
}

TEST(ToThreadTest, ReturnsMoveOnlyAndNonTrivialValues) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  EXPECT_EQ(rt.BlockOn(MoveOnlyAndString()), "5xx");
}

Task<int> VoidCall(std::atomic<int>* counter) {
  co_await ToThread([counter] { counter->fetch_add(1); });
  co_return counter->load();
}

TEST(ToThreadTest, VoidFunctionRunsOnce) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  std::atomic<int> counter{0};
  EXPECT_EQ(rt.BlockOn(VoidCall(&counter)), 1);
}

Task<std::string> CatchFromThread() {
  try {
    co_await ToThread(
        []() -> int { throw std::invalid_argument("bad input"); });
    co_return "no exception";
  } catch (const std::invalid_argument& e) {
    co_return e.what();
  }
}

Task<std::string> ToThreadWithoutAThread(std::atomic<int>* runs) {
  try {
    co_await ToThread([runs] { runs->fetch_add(1); });
    co_return "ran";
  } catch (const ThreadStartError& e) {
    co_return e.what();
  }
}

// The pool cannot start a thread: that call raises ThreadStartError in its
// task (the function never runs), and the runtime goes on.
TEST(ToThreadTest, ThreadStartFailureRaisesInTheTaskOnly) {
  Watchdog wd(60s);
  auto fail = std::make_shared<std::atomic<bool>>(true);
  Runtime rt({.workers = 2,
              .blocking_start_thread = [fail](std::function<void()> body) {
                if (fail->load()) {
                  return std::make_error_code(
                      std::errc::resource_unavailable_try_again);
                }
                std::thread(std::move(body)).detach();
                return std::error_code();
              }});
  std::atomic<int> runs{0};
  const std::string what = rt.BlockOn(ToThreadWithoutAThread(&runs));
  EXPECT_NE(what.find("can't start new thread"), std::string::npos) << what;
  EXPECT_NE(what.find("cannot start a blocking-pool thread"), std::string::npos)
      << what;
  EXPECT_EQ(runs.load(), 0);
  fail->store(false);
  EXPECT_EQ(rt.BlockOn(ToThreadWithoutAThread(&runs)), "ran");
  EXPECT_EQ(runs.load(), 1);
}

TEST(ToThreadTest, RethrowsTheFunctionsException) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  EXPECT_EQ(rt.BlockOn(CatchFromThread()), "bad input");
}

struct Threads {
  std::thread::id task_before;
  std::thread::id fn;
  std::thread::id task_after;
};

Task<Threads> RecordThreads() {
  Threads t;
  t.task_before = std::this_thread::get_id();
  t.fn = co_await ToThread([] { return std::this_thread::get_id(); });
  t.task_after = std::this_thread::get_id();
  co_return t;
}

Task<std::thread::id> WorkerThreadId() {
  co_await Yield();
  co_return std::this_thread::get_id();
}

TEST(ToThreadTest, RunsOnAThreadThatIsNotAWorker) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  // Collect the worker threads' ids: enough tasks that both workers run some.
  std::set<std::thread::id> workers;
  for (int i = 0; i < 200 && workers.size() < 2; ++i) {
    std::vector<std::future<std::thread::id>> fs;
    for (int j = 0; j < 20; ++j) {
      fs.push_back(std::async(std::launch::async,
                              [&rt] { return rt.BlockOn(WorkerThreadId()); }));
    }
    for (auto& f : fs) workers.insert(f.get());
  }
  for (int i = 0; i < 20; ++i) {
    Threads t = rt.BlockOn(RecordThreads());
    EXPECT_NE(t.fn, t.task_before);
    EXPECT_NE(t.fn, t.task_after);
    EXPECT_NE(t.fn, std::this_thread::get_id());
    EXPECT_EQ(workers.count(t.fn), 0u) << "ToThread ran on a worker thread";
    EXPECT_EQ(workers.count(t.task_before), 1u);
  }
}

Task<int> BlockOnRelease(std::shared_future<void> release,
                         std::atomic<int>* returned) {
  // Named: GCC 12 destroys a capturing lambda temporary in co_await twice.
  auto fn = [release, returned] {
    release.wait();
    returned->fetch_add(1);
  };
  co_await ToThread(fn);
  co_return 1;
}

Task<void> Ticker(int n, std::atomic<int>* ticks) {
  for (int i = 0; i < n; ++i) {
    co_await Sleep(1ms);
    co_await Yield();
    ticks->fetch_add(1);
  }
}

TEST(ToThreadTest, EventLoopKeepsRunningWhileThePoolIsBlocked) {
  Watchdog wd(60s);
  // One worker: if a ToThread call blocked it, nothing else could run.
  Runtime rt({.workers = 1});
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> returned{0};
  std::vector<JoinHandle<int>> blocked;
  for (int i = 0; i < 4; ++i)
    blocked.push_back(rt.Spawn(BlockOnRelease(released, &returned)));
  std::atomic<int> ticks{0};
  JoinHandle<void> ticker = rt.Spawn(Ticker(50, &ticks));
  EXPECT_TRUE(testing::WaitFor([&] { return ticker.IsFinished(); }, 20s));
  EXPECT_EQ(ticks.load(), 50);
  EXPECT_EQ(returned.load(), 0);  // the pool is still blocked
  EXPECT_TRUE(
      testing::WaitFor([&] { return rt.Metrics().blocking.threads >= 4; }));
  release.set_value();
  int sum = 0;
  for (auto& h : blocked)
    sum += BlockOnWithin(rt, testing::AwaitHandle(std::move(h)), kTimeout, 0);
  EXPECT_EQ(sum, 4);
  EXPECT_EQ(returned.load(), 4);
}

Task<long> ManyCalls(int n) {
  std::vector<JoinHandle<int>> hs;
  for (int i = 0; i < n; ++i) hs.push_back(Spawn(Add(i, 1)));
  long sum = 0;
  for (auto& h : hs) sum += co_await h;
  co_return sum;
}

TEST(ToThreadTest, ManyConcurrentCallsAllReturn) {
  Watchdog wd(120s);
  Runtime rt({.workers = 2, .blocking_max_threads = 8});
  const int n = static_cast<int>(testing::Scaled(20'000, 1'000));
  EXPECT_EQ(BlockOnWithin(rt, ManyCalls(n), kTimeout, 0L),
            static_cast<long>(n) * (n + 1) / 2);
  EXPECT_LE(rt.Metrics().blocking.threads, 8u);
  EXPECT_GE(rt.Metrics().blocking.completed, static_cast<std::uint64_t>(n));
}

}  // namespace
}  // namespace awaitd::runtime
