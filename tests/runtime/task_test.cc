// Task<T> and JoinHandle<T> on a Runtime: nesting, deep recursion, void and
// move-only results, exceptions, joining before and after completion,
// detaching, task ids, and entry from outside threads.
#include "runtime/task.h"

#include <atomic>
#include <future>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/join_handle.h"
#include "runtime/runtime.h"
#include "runtime/time.h"
#include "runtime/to_thread.h"
#include "tests/runtime/test_util.h"

namespace awaitd::runtime {
namespace {

using testing::AwaitHandle;
using testing::BlockOnWithin;
using testing::LogCapture;
using testing::Watchdog;
using namespace std::chrono_literals;

constexpr auto kTimeout = std::chrono::milliseconds(30'000);

Task<int> Depth(int n) {
  if (n == 0) co_return 0;
  co_return 1 + co_await Depth(n - 1);
}

TEST(TaskTest, DeepNestingDoesNotOverflowTheStack) {
  if (testing::kAddressSanitizer || testing::kThreadSanitizer) {
    GTEST_SKIP()
        << "GCC emits symmetric transfer as a tail call, which sanitizer "
           "instrumentation prevents; the no-stack-growth guarantee is checked "
           "in the "
           "normal build";
  }
  Watchdog wd(120s);
  Runtime rt({.workers = 2});
  // Symmetric transfer: each level resumes the next without growing the
  // stack, so 100,000 levels fit easily in a worker's stack.
  EXPECT_EQ(BlockOnWithin(rt, Depth(100'000), kTimeout, -1), 100'000);
}

Task<void> VoidDepth(int n, int* count) {
  if (n == 0) co_return;
  co_await VoidDepth(n - 1, count);
  ++*count;
}

TEST(TaskTest, DeepNestingOfVoidTasksRunsEveryLevel) {
  if (testing::kAddressSanitizer || testing::kThreadSanitizer) {
    GTEST_SKIP()
        << "GCC emits symmetric transfer as a tail call, which sanitizer "
           "instrumentation prevents; the no-stack-growth guarantee is checked "
           "in the "
           "normal build";
  }
  Watchdog wd(120s);
  Runtime rt({.workers = 1});
  int count = 0;
  ASSERT_TRUE(BlockOnWithin(rt, VoidDepth(100'000, &count), kTimeout));
  EXPECT_EQ(count, 100'000);
}

Task<int> AddAfterYield(int a, int b) {
  co_await Yield();
  co_return a + b;
}

Task<int> NestedSum() {
  int x = co_await AddAfterYield(1, 2);
  int y = co_await AddAfterYield(x, 4);
  co_return x + y;
}

TEST(TaskTest, NestedTasksComposeResultsAcrossSuspensions) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  EXPECT_EQ(rt.BlockOn(NestedSum()), 3 + 7);
}

Task<void> SetFlag(std::atomic<bool>* flag) {
  co_await Yield();
  flag->store(true);
}

TEST(TaskTest, VoidTaskRunsToCompletion) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  std::atomic<bool> flag{false};
  rt.BlockOn(SetFlag(&flag));
  EXPECT_TRUE(flag.load());
}

TEST(TaskTest, UnawaitedTaskNeverRuns) {
  std::atomic<bool> flag{false};
  { Task<void> t = SetFlag(&flag); }
  EXPECT_FALSE(flag.load());
}

struct LevelError : std::runtime_error {
  explicit LevelError(int l)
      : std::runtime_error("level " + std::to_string(l)), level(l) {}
  int level;
};

Task<int> ThrowAtBottom(int n) {
  if (n == 0) {
    co_await Yield();
    throw LevelError(0);
  }
  co_return co_await ThrowAtBottom(n - 1) + 1;  // never adds
}

Task<std::string> CatchAtTop() {
  try {
    co_await ThrowAtBottom(50);
    co_return "no exception";
  } catch (const LevelError& e) {
    co_return e.what();
  }
}

TEST(TaskTest, ExceptionPropagatesThroughSeveralLevels) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  EXPECT_EQ(rt.BlockOn(CatchAtTop()), "level 0");
}

Task<int> Translate() {
  try {
    co_return co_await ThrowAtBottom(3);
  } catch (const LevelError& e) {
    throw std::logic_error(std::string("translated ") + e.what());
  }
}

TEST(TaskTest, ExceptionRethrownInCatchReachesTheCaller) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  try {
    rt.BlockOn(Translate());
    FAIL() << "expected an exception";
  } catch (const std::logic_error& e) {
    EXPECT_STREQ(e.what(), "translated level 0");
  }
}

Task<std::unique_ptr<int>> MakeUnique(int v) {
  co_await Yield();
  co_return std::make_unique<int>(v);
}

Task<int> UseMoveOnly() {
  std::unique_ptr<int> a = co_await MakeUnique(20);
  JoinHandle<std::unique_ptr<int>> h = Spawn(MakeUnique(22));
  std::unique_ptr<int> b = co_await h;
  co_return *a + *b;
}

TEST(TaskTest, MoveOnlyResultsPassThroughTasksAndJoinHandles) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  EXPECT_EQ(rt.BlockOn(UseMoveOnly()), 42);
  std::unique_ptr<int> p = rt.BlockOn(MakeUnique(7));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 7);
}

Task<int> Value(int v) { co_return v; }

Task<int> JoinAfterFinish() {
  JoinHandle<int> h = Spawn(Value(11));
  for (int i = 0; i < 100'000 && !h.IsFinished(); ++i) co_await Yield();
  if (!h.IsFinished()) throw std::runtime_error("child never finished");
  co_return co_await h;
}

TEST(JoinHandleTest, AwaitAfterTheTaskFinishedGivesItsResult) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  EXPECT_EQ(rt.BlockOn(JoinAfterFinish()), 11);
}

Task<int> SlowValue(int v) {
  co_await Sleep(20ms);
  co_return v;
}

Task<std::pair<bool, int>> JoinBeforeFinish() {
  JoinHandle<int> h = Spawn(SlowValue(12));
  const bool finished_before = h.IsFinished();
  const int v = co_await h;
  co_return std::make_pair(finished_before, v);
}

TEST(JoinHandleTest, AwaitBeforeTheTaskFinishedSuspendsUntilItDoes) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  auto [finished_before, v] = rt.BlockOn(JoinBeforeFinish());
  EXPECT_FALSE(finished_before);
  EXPECT_EQ(v, 12);
}

Task<int> ThrowLater() {
  co_await Sleep(1ms);
  throw LevelError(9);
}

Task<int> JoinFailing() {
  JoinHandle<int> h = Spawn(ThrowLater());
  try {
    co_await h;
  } catch (const LevelError& e) {
    co_return e.level;
  }
  co_return -1;
}

TEST(JoinHandleTest, AwaitRethrowsTheTasksException) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  EXPECT_EQ(rt.BlockOn(JoinFailing()), 9);
}

Task<void> SignalAfterSleep(std::shared_ptr<std::promise<std::uint64_t>> done) {
  co_await Sleep(20ms);
  done->set_value(CurrentTaskId());
}

Task<std::uint64_t> SpawnDetached(
    std::shared_ptr<std::promise<std::uint64_t>> done, bool explicit_detach) {
  JoinHandle<void> h = Spawn(SignalAfterSleep(std::move(done)));
  const std::uint64_t id = h.id();
  if (explicit_detach) {
    h.Detach();
    EXPECT_FALSE(h.valid());
  }
  co_return id;  // a non-detached handle is dropped here
}

TEST(JoinHandleTest, DetachedTaskKeepsRunning) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  for (bool explicit_detach : {true, false}) {
    auto done = std::make_shared<std::promise<std::uint64_t>>();
    auto f = done->get_future();
    const std::uint64_t id = rt.BlockOn(SpawnDetached(done, explicit_detach));
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
    EXPECT_EQ(f.get(), id);
  }
}

Task<void> FailDetached() {
  co_await Yield();
  throw std::runtime_error("nobody listens");
}

Task<void> FailDetachedAfter(const std::atomic<bool>* go) {
  while (!go->load()) co_await Yield();
  throw std::runtime_error("nobody listens");
}

TEST(JoinHandleTest, DetachedTaskFailureIsLoggedWithItsId) {
  Watchdog wd(60s);
  LogCapture log;
  Runtime rt({.workers = 2, .log_sink = log.Sink()});
  std::atomic<bool> go{false};
  // Fails only once detached: a failure seen while a handle exists is the
  // handle's to report, not the log's.
  JoinHandle<void> h = rt.Spawn(FailDetachedAfter(&go));
  const std::uint64_t id = h.id();
  h.Detach();
  go.store(true);
  const std::string want = "task_id=" + std::to_string(id) + " ";
  EXPECT_TRUE(testing::WaitFor([&] {
    return !log.Matching({"event=detached_task_failed", want, "nobody listens"})
                .empty();
  })) << "log lines: "
      << log.Lines().size();
}

TEST(JoinHandleTest, JoinedTaskFailureIsNotLogged) {
  Watchdog wd(60s);
  LogCapture log;
  {
    Runtime rt({.workers = 2, .log_sink = log.Sink()});
    EXPECT_THROW(rt.BlockOn(FailDetached()), std::runtime_error);
  }
  EXPECT_TRUE(log.Matching({"event=detached_task_failed"}).empty());
}

Task<std::uint64_t> MyId() {
  const std::uint64_t before = CurrentTaskId();
  co_await Sleep(1ms);  // may resume on another worker
  if (CurrentTaskId() != before)
    throw std::runtime_error("id changed across suspension");
  co_return before;
}

Task<std::vector<std::pair<std::uint64_t, std::uint64_t>>> SpawnMany(int n) {
  std::vector<JoinHandle<std::uint64_t>> hs;
  for (int i = 0; i < n; ++i) hs.push_back(Spawn(MyId()));
  std::vector<std::pair<std::uint64_t, std::uint64_t>>
      out;  // (handle id, reported id)
  for (auto& h : hs) {
    const std::uint64_t hid = h.id();
    out.emplace_back(hid, co_await h);
  }
  out.emplace_back(0, CurrentTaskId());  // the parent's own
  co_return out;
}

TEST(TaskIdTest, EachTaskHasADistinctNonZeroIdMatchingItsHandle) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  auto ids = rt.BlockOn(SpawnMany(200));
  std::set<std::uint64_t> distinct;
  for (std::size_t i = 0; i + 1 < ids.size(); ++i) {
    EXPECT_EQ(ids[i].first, ids[i].second);
    EXPECT_NE(ids[i].second, 0u);
    distinct.insert(ids[i].second);
  }
  distinct.insert(ids.back().second);
  EXPECT_NE(ids.back().second, 0u);
  EXPECT_EQ(distinct.size(), ids.size());
}

Task<std::uint64_t> IdInsideToThread() {
  co_return co_await ToThread([] { return CurrentTaskId(); });
}

TEST(TaskIdTest, IsZeroOutsideAnyTask) {
  Watchdog wd(60s);
  EXPECT_EQ(CurrentTaskId(), 0u);
  Runtime rt({.workers = 2});
  EXPECT_EQ(CurrentTaskId(), 0u);
  EXPECT_EQ(rt.BlockOn(IdInsideToThread()), 0u);
}

TEST(RuntimeSpawnTest, SpawnFromOutsideThreadRunsTheTask) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  JoinHandle<int> h = rt.Spawn(SlowValue(5));
  EXPECT_NE(h.id(), 0u);
  EXPECT_TRUE(testing::WaitFor([&] { return h.IsFinished(); }));
  EXPECT_EQ(BlockOnWithin(rt, AwaitHandle(std::move(h)), kTimeout, -1), 5);
}

TEST(RuntimeSpawnTest, SpawnFromManyOutsideThreadsRunsEveryTask) {
  Watchdog wd(120s);
  Runtime rt({.workers = 2});
  constexpr int kThreads = 4;
  const int per_thread = static_cast<int>(testing::Scaled(5'000, 500));
  std::vector<std::vector<JoinHandle<int>>> handles(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i)
        handles[t].push_back(rt.Spawn(Value(t * per_thread + i)));
    });
  }
  for (auto& t : threads) t.join();
  std::int64_t sum = 0;
  for (auto& hs : handles) {
    for (auto& h : hs)
      sum += BlockOnWithin(rt, AwaitHandle(std::move(h)), kTimeout, 0);
  }
  const std::int64_t n = std::int64_t{kThreads} * per_thread;
  EXPECT_EQ(sum, n * (n - 1) / 2);
}

TEST(RuntimeSpawnTest, BlockOnFromSeveralThreadsConcurrently) {
  Watchdog wd(120s);
  Runtime rt({.workers = 2});
  constexpr int kThreads = 4;
  const int rounds = static_cast<int>(testing::Scaled(500, 50));
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < rounds; ++i) {
        if (rt.BlockOn(AddAfterYield(t, i)) != t + i) wrong.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace awaitd::runtime
