// Sleep, SleepUntil and Yield on a Runtime: never early, deadline order,
// zero/negative sleeps yield, yielding interleaves tasks, and timer wake-ups
// can be stolen by another worker.
#include "runtime/time.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/runtime.h"
#include "tests/runtime/test_util.h"

namespace awaitd::runtime {
namespace {

using testing::BlockOnWithin;
using testing::Watchdog;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kTimeout = std::chrono::milliseconds(30'000);

Task<Clock::duration> TimeSleep(Clock::duration d) {
  const auto start = Clock::now();
  co_await Sleep(d);
  co_return Clock::now() - start;
}

TEST(SleepTest, WaitsAtLeastTheDuration) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  for (auto d : {1ms, 5ms, 20ms, 50ms}) {
    const Clock::duration elapsed =
        BlockOnWithin(rt, TimeSleep(d), kTimeout, Clock::duration{});
    EXPECT_GE(elapsed, d)
        << "slept "
        << std::chrono::duration<double, std::milli>(elapsed).count()
        << "ms for " << d.count() << "ms";
    EXPECT_LT(elapsed, d + 5s);
  }
}

Task<Clock::duration> TimeSleepUntil(Clock::time_point deadline) {
  co_await SleepUntil(deadline);
  co_return Clock::now() - deadline;
}

TEST(SleepTest, SleepUntilNeverWakesBeforeTheDeadline) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  for (int i = 0; i < 20; ++i) {
    const auto deadline = Clock::now() + std::chrono::microseconds(300 * i + 7);
    EXPECT_GE(rt.BlockOn(TimeSleepUntil(deadline)), Clock::duration::zero());
  }
}

TEST(SleepTest, SleepUntilAPastDeadlineReturnsPromptly) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  const Clock::duration late = rt.BlockOn(TimeSleepUntil(Clock::now() - 1h));
  EXPECT_LT(late, 1h + 5s);
}

struct Order {
  std::mutex mu;
  std::vector<int> done;
};

Task<void> SleepAndRecord(int id, Clock::time_point deadline, Order* order) {
  co_await SleepUntil(deadline);
  std::lock_guard lock(order->mu);
  order->done.push_back(id);
}

Task<void> SpawnSleepers(std::vector<int> perm, Order* order) {
  // Deadlines 5ms apart from one common start, spawned in a shuffled order.
  const auto start = Clock::now() + 20ms;
  std::vector<JoinHandle<void>> hs;
  for (int id : perm)
    hs.push_back(Spawn(SleepAndRecord(id, start + id * 5ms, order)));
  for (auto& h : hs) co_await h;
}

TEST(SleepTest, TimersFireInDeadlineOrder) {
  Watchdog wd(60s);
  // One worker: every timer is in one wheel, so the order is exact.
  Runtime rt({.workers = 1});
  std::vector<int> perm(40);
  std::iota(perm.begin(), perm.end(), 0);
  std::uint64_t rng = 3;
  for (std::size_t i = perm.size() - 1; i > 0; --i) {
    rng = testing::Mix(rng);
    std::swap(perm[i], perm[rng % (i + 1)]);
  }
  Order order;
  ASSERT_TRUE(BlockOnWithin(rt, SpawnSleepers(perm, &order), kTimeout));
  std::vector<int> sorted(perm.size());
  std::iota(sorted.begin(), sorted.end(), 0);
  EXPECT_EQ(order.done, sorted);
}

struct Trace {
  std::vector<char> events;  // only touched by tasks on the single worker
};

template <typename Suspend>
Task<void> Step(char name, int n, Trace* trace, Suspend suspend) {
  for (int i = 0; i < n; ++i) {
    trace->events.push_back(name);
    co_await suspend();
  }
}

template <typename Suspend>
Task<void> RunPair(int n, Trace* trace, Suspend suspend) {
  JoinHandle<void> a = Spawn(Step('a', n, trace, suspend));
  JoinHandle<void> b = Spawn(Step('b', n, trace, suspend));
  co_await a;
  co_await b;
}

// On one worker, two tasks that suspend with `suspend` after each step must
// strictly alternate: each goes behind the other in the run queue.
template <typename Suspend>
void ExpectAlternation(Suspend suspend) {
  Watchdog wd(60s);
  Runtime rt({.workers = 1});
  Trace trace;
  ASSERT_TRUE(BlockOnWithin(rt, RunPair(100, &trace, suspend), kTimeout));
  ASSERT_EQ(trace.events.size(), 200u);
  int switches = 0;
  for (std::size_t i = 1; i < trace.events.size(); ++i)
    switches += trace.events[i] != trace.events[i - 1];
  EXPECT_EQ(switches, 199) << std::string(trace.events.begin(),
                                          trace.events.end());
}

TEST(YieldTest, YieldLetsTheOtherTaskRun) {
  ExpectAlternation([] { return Yield(); });
}

TEST(SleepTest, ZeroSleepYields) {
  ExpectAlternation([] { return Sleep(0ms); });
}

TEST(SleepTest, NegativeSleepYields) {
  ExpectAlternation([] { return Sleep(-5ms); });
}

Task<void> SleepZeroTimes(int n, bool negative) {
  for (int i = 0; i < n; ++i) co_await Sleep(negative ? -1ms : 0ms);
}

// Sleep(<= 0) is documented to behave as Yield: it must not go through the
// timer wheel (which would also delay the task until the next timer poll).
TEST(SleepTest, NonPositiveSleepDoesNotArmATimer) {
  Watchdog wd(60s);
  for (bool negative : {false, true}) {
    SCOPED_TRACE(negative ? "Sleep(-1ms)" : "Sleep(0ms)");
    Runtime rt({.workers = 1});
    ASSERT_TRUE(BlockOnWithin(rt, SleepZeroTimes(100, negative), kTimeout));
    EXPECT_EQ(rt.Metrics().workers[0].timers_fired, 0u);
  }
}

Task<void> SpinForever(std::atomic<bool>* stop, std::atomic<int>* progress) {
  while (!stop->load()) {
    progress->fetch_add(1);
    co_await Yield();
  }
}

Task<int> SleepsWhileOthersSpin() {
  co_await Sleep(10ms);
  co_return 1;
}

TEST(SleepTest, TimerFiresWhileTheWorkerIsBusyWithYieldingTasks) {
  Watchdog wd(60s);
  Runtime rt({.workers = 1});
  std::atomic<bool> stop{false};
  std::atomic<int> progress{0};
  JoinHandle<void> spinner = rt.Spawn(SpinForever(&stop, &progress));
  // The worker never runs out of ready work, so the timer is found by the
  // periodic maintenance, not by parking.
  EXPECT_EQ(BlockOnWithin(rt, SleepsWhileOthersSpin(), kTimeout, 0), 1);
  EXPECT_GT(progress.load(), 0);
  stop.store(true);
}

std::thread::id ThisThread() { return std::this_thread::get_id(); }

Task<bool> SleepThenWork(std::chrono::microseconds work) {
  const std::thread::id before = ThisThread();
  co_await Sleep(5ms);
  const bool moved = ThisThread() != before;
  testing::BusySpin(work);
  co_return moved;
}

Task<int> ManySleepersOnOneWorker(int n) {
  // Spawned from inside a task: all start on this worker's local queue, and
  // the ones that run here register their timers in this worker's wheel.
  std::vector<JoinHandle<bool>> hs;
  for (int i = 0; i < n; ++i) hs.push_back(Spawn(SleepThenWork(300us)));
  int moved = 0;
  for (auto& h : hs) moved += (co_await h) ? 1 : 0;
  co_return moved;
}

TEST(SleepTest, TaskWokenByATimerCanBeStolenByAnotherWorker) {
  Watchdog wd(120s);
  Runtime rt({.workers = 2});
  // Timers that fire together put many CPU-bound tasks in one worker's local
  // queue; the idle worker steals some. Retry a few times: whether a given
  // round migrates a task depends on scheduling.
  int moved = 0;
  for (int round = 0; round < 10 && moved == 0; ++round) {
    moved = BlockOnWithin(rt, ManySleepersOnOneWorker(200), kTimeout, 0);
  }
  EXPECT_GT(moved, 0);
  const RuntimeMetrics m = rt.Metrics();
  std::uint64_t steals = 0;
  std::uint64_t stolen = 0;
  std::uint64_t fired = 0;
  for (const WorkerMetrics& w : m.workers) {
    steals += w.steal_operations;
    stolen += w.tasks_stolen;
    fired += w.timers_fired;
  }
  EXPECT_GT(steals, 0u);
  EXPECT_GE(stolen, steals);
  EXPECT_GE(fired, 200u);
}

Task<void> Burn(std::chrono::microseconds d) {
  testing::BusySpin(d);
  co_return;
}

Task<void> SpawnCpuBound(int n) {
  std::vector<JoinHandle<void>> hs;
  for (int i = 0; i < n; ++i) hs.push_back(Spawn(Burn(100us)));
  for (auto& h : hs) co_await h;
}

TEST(StealTest, IdleWorkerStealsFromABusyOne) {
  Watchdog wd(120s);
  Runtime rt({.workers = 2});
  auto steals = [&] {
    std::uint64_t n = 0;
    for (const WorkerMetrics& w : rt.Metrics().workers) n += w.steal_operations;
    return n;
  };
  // 100 ms of work queued on one worker: the other steals some. Retry a few
  // rounds, since on a loaded machine the OS may not run the idle worker.
  for (int round = 0; round < 10 && steals() == 0; ++round) {
    ASSERT_TRUE(BlockOnWithin(rt, SpawnCpuBound(1000), kTimeout));
  }
  EXPECT_GT(steals(), 0u);
  std::uint64_t runs = 0;
  for (const WorkerMetrics& w : rt.Metrics().workers) {
    runs += w.tasks_run;
    EXPECT_GT(w.tasks_run, 0u) << "a worker never ran anything";
  }
  EXPECT_GE(runs, 1000u);
}

}  // namespace
}  // namespace awaitd::runtime
