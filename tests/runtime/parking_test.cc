// Parking and wake-ups: work that arrives while workers park is never lost,
// outside threads and tasks can ping-pong, and idle workers really sleep.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "gtest/gtest.h"
#include "runtime/io.h"
#include "runtime/runtime.h"
#include "runtime/time.h"
#include "tests/runtime/test_util.h"

namespace awaitd::runtime {
namespace {

using testing::Scaled;
using testing::Watchdog;
using namespace std::chrono_literals;

Task<int> Echo(int i) { co_return i; }

Task<void> Fulfil(int i, std::promise<int>* p) {
  p->set_value(i);
  co_return;
}

// Every iteration spawns into a runtime whose workers have just gone idle (or
// are parking right now), then waits for the result with a timeout.
void SpawnIntoIdleRuntime(std::uint32_t workers) {
  Watchdog wd(300s);
  Runtime rt({.workers = workers});
  const std::size_t n = Scaled(20'000, 1'000);
  std::size_t lost = 0;
  for (std::size_t i = 0; i < n && lost == 0; ++i) {
    std::promise<int> p;
    std::future<int> f = p.get_future();
    rt.Spawn(Fulfil(static_cast<int>(i), &p)).Detach();
    if (f.wait_for(5s) != std::future_status::ready) {
      ++lost;
      ADD_FAILURE() << "spawned task " << i
                    << " did not run within 5s (lost wake-up)";
      // The promise lives on this stack: do not leave the loop while the
      // task could still run.
      rt.Shutdown();
      break;
    }
    EXPECT_EQ(f.get(), static_cast<int>(i));
  }
  EXPECT_EQ(lost, 0u);
}

TEST(ParkingTest, NoLostWakeUpSpawningIntoIdleSingleWorker) {
  SpawnIntoIdleRuntime(1);
}
TEST(ParkingTest, NoLostWakeUpSpawningIntoIdleTwoWorkers) {
  SpawnIntoIdleRuntime(2);
}
TEST(ParkingTest, NoLostWakeUpSpawningIntoIdleFourWorkers) {
  SpawnIntoIdleRuntime(4);
}

TEST(ParkingTest, BlockOnInALoopAlwaysReturns) {
  Watchdog wd(300s);
  Runtime rt({.workers = 2});
  const std::size_t n = Scaled(20'000, 1'000);
  for (std::size_t i = 0; i < n; ++i) {
    const int v =
        testing::BlockOnWithin(rt, Echo(static_cast<int>(i)), 5000ms, -1);
    ASSERT_EQ(v, static_cast<int>(i));
  }
}

// A one-slot mailbox between an outside thread and a task: the task deposits
// the completion handler of an AwaitAsio; the outside thread invokes it, which
// wakes the task from a thread outside the runtime (the inbox path).
class Mailbox {
 public:
  void Put(std::function<void(int)> h) {
    std::lock_guard lock(mu_);
    handler_ = std::move(h);
    cv_.notify_all();
  }
  // Waits for a handler; returns null on timeout.
  std::function<void(int)> Take(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return handler_ != nullptr; }))
      return nullptr;
    return std::exchange(handler_, nullptr);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::function<void(int)> handler_;
};

Task<long> PingPong(int rounds, Mailbox* box) {
  long sum = 0;
  for (int i = 0; i < rounds; ++i) {
    auto [v] = co_await AwaitAsio<int>([box](auto handler) {
      box->Put([h = std::move(handler)](int x) mutable { h(x); });
    });
    sum += v;
    if (i % 16 == 0) co_await Yield();  // sometimes wake from a run queue
  }
  co_return sum;
}

TEST(ParkingTest, PingPongBetweenOutsideThreadAndTaskNeverStalls) {
  Watchdog wd(300s);
  Runtime rt({.workers = 2});
  const int rounds = static_cast<int>(Scaled(20'000, 1'000));
  Mailbox box;
  auto result = std::make_shared<std::promise<long>>();
  std::future<long> f = result->get_future();
  rt.Spawn(testing::internal_util::FulfilWith(PingPong(rounds, &box), result))
      .Detach();
  for (int i = 0; i < rounds; ++i) {
    std::function<void(int)> h = box.Take(5000ms);
    if (!h) {
      ADD_FAILURE() << "task did not come back for round " << i;
      rt.Shutdown();
      return;
    }
    h(i);
  }
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(f.get(), static_cast<long>(rounds) * (rounds - 1) / 2);
}

Task<void> BusyWork(int n) {
  for (int i = 0; i < n; ++i) co_await Yield();
}

TEST(ParkingTest, IdleWorkersParkAndStopAccruingBusyTime) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  rt.BlockOn(BusyWork(1000));
  // Every worker eventually parks.
  ASSERT_TRUE(
      testing::WaitFor([&] { return rt.Metrics().unparked_workers == 0; }));
  const RuntimeMetrics before = rt.Metrics();
  std::this_thread::sleep_for(300ms);  // idle period being measured
  const RuntimeMetrics after = rt.Metrics();
  std::uint64_t parks = 0;
  std::uint64_t busy = 0;
  for (std::size_t i = 0; i < after.workers.size(); ++i) {
    parks += after.workers[i].parks;
    EXPECT_GE(after.workers[i].parks, 1u) << "worker " << i << " never parked";
    busy += after.workers[i].busy_ns - before.workers[i].busy_ns;
  }
  EXPECT_GE(parks, 2u);
  // Spinning workers would accrue 2 x 300 ms; parked ones accrue almost none.
  EXPECT_LT(busy, std::chrono::nanoseconds(100ms).count());
  EXPECT_EQ(after.workers[0].tasks_run + after.workers[1].tasks_run,
            before.workers[0].tasks_run + before.workers[1].tasks_run);
}

TEST(ParkingTest, ParkedWorkerWakesForItsTimer) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  const auto start = std::chrono::steady_clock::now();
  // Nothing else runs: the worker must park with its driver timer armed.
  struct Local {
    static Task<int> SleepThen() {
      co_await Sleep(50ms);
      co_return 7;
    }
  };
  EXPECT_EQ(testing::BlockOnWithin(rt, Local::SleepThen(), 10'000ms, 0), 7);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
}

}  // namespace
}  // namespace awaitd::runtime
