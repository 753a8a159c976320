// Stress: millions of tasks with a deterministic random mix of yields,
// sleeps, child spawns and joins, blocking calls and exceptions, every result
// checked; plus a fan-out/fan-in tree. Sizes scale with AWAITD_STRESS_SCALE.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/runtime.h"
#include "runtime/time.h"
#include "runtime/to_thread.h"
#include "tests/runtime/test_util.h"

namespace awaitd::runtime {
namespace {

using testing::Mix;
using testing::Scaled;
using testing::Watchdog;
using namespace std::chrono_literals;

// The value node `i` contributes; a subtree's result is the sum over it.
std::uint64_t NodeValue(std::uint64_t i) { return Mix(i * 2 + 1) >> 8; }

// A node that failed on purpose still reports its subtree's sum.
struct NodeError : std::runtime_error {
  explicit NodeError(std::uint64_t v)
      : std::runtime_error("node failed"), value(v) {}
  std::uint64_t value;
};

struct Shared {
  std::vector<std::atomic<std::uint8_t>> seen;  // per node index
  std::vector<std::uint64_t> prefix;            // prefix sums of NodeValue
  std::atomic<std::uint64_t> mismatches{0};
  std::atomic<std::uint64_t> thrown{0};
  std::atomic<std::uint64_t> caught{0};

  explicit Shared(std::size_t n) : seen(n), prefix(n + 1, 0) {
    for (std::size_t i = 0; i < n; ++i) {
      seen[i].store(0, std::memory_order_relaxed);
      prefix[i + 1] = prefix[i] + NodeValue(i);
    }
  }
  std::uint64_t Expected(std::uint64_t first, std::uint64_t count) const {
    return prefix[first + count] - prefix[first];
  }
};

// Node `first` of the range [first, first + count): does its own random
// action, splits the rest among up to 4 children (spawned and joined, or
// awaited inline), checks every child's result, and returns the range's sum.
Task<std::uint64_t> Node(std::uint64_t first, std::uint64_t count, Shared* s) {
  const std::uint64_t r = Mix(first);
  s->seen[first].fetch_add(1, std::memory_order_relaxed);
  std::uint64_t sum = NodeValue(first);

  switch (r % 100) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
    case 6:
    case 7:
    case 8:
    case 9:
    case 10:
    case 11:
    case 12:
    case 13:
    case 14:
    case 15:
    case 16:
    case 17:
    case 18:
    case 19:
      co_await Yield();
      break;
    case 20:
    case 21:
    case 22:
    case 23:
    case 24:
    case 25:
    case 26:
    case 27:
      co_await Sleep(std::chrono::microseconds((r >> 8) % 2001));  // 0..2 ms
      break;
    case 28:
      if ((r >> 8) % 4 == 0) sum = co_await ToThread([sum] { return sum; });
      break;
    default:
      break;
  }

  std::uint64_t rest = count - 1;
  std::uint64_t next = first + 1;
  const std::uint64_t fanout = 1 + (r >> 16) % 4;
  std::vector<std::pair<std::pair<std::uint64_t, std::uint64_t>,
                        JoinHandle<std::uint64_t>>>
      spawned;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> inline_children;
  for (std::uint64_t c = 0; c < fanout && rest > 0; ++c) {
    const std::uint64_t size =
        c + 1 == fanout ? rest : (rest + fanout - c - 1) / (fanout - c);
    if ((Mix(next) >> 20) % 8 == 0) {
      inline_children.emplace_back(next, size);
    } else {
      spawned.emplace_back(std::make_pair(next, size),
                           Spawn(Node(next, size, s)));
    }
    next += size;
    rest -= size;
  }
  auto check = [&](std::uint64_t f, std::uint64_t n, std::uint64_t got) {
    if (got != s->Expected(f, n))
      s->mismatches.fetch_add(1, std::memory_order_relaxed);
    sum += got;
  };
  for (auto& [range, h] : spawned) {
    try {
      check(range.first, range.second, co_await h);
    } catch (const NodeError& e) {
      s->caught.fetch_add(1, std::memory_order_relaxed);
      check(range.first, range.second, e.value);
    }
  }
  for (auto [f, n] : inline_children) {
    try {
      check(f, n, co_await Node(f, n, s));
    } catch (const NodeError& e) {
      s->caught.fetch_add(1, std::memory_order_relaxed);
      check(f, n, e.value);
    }
  }
  if ((r >> 40) % 10 == 0) {
    s->thrown.fetch_add(1, std::memory_order_relaxed);
    throw NodeError(sum);
  }
  co_return sum;
}

// Runs the whole index space as a sequence of subtrees, keeping a bounded
// number in flight so that memory stays flat.
Task<std::uint64_t> Driver(std::uint64_t n, std::uint64_t subtree, Shared* s) {
  constexpr std::size_t kInFlight = 16;
  std::vector<std::pair<std::pair<std::uint64_t, std::uint64_t>,
                        JoinHandle<std::uint64_t>>>
      window;
  std::uint64_t total = 0;
  std::size_t oldest = 0;
  for (std::uint64_t first = 0; first < n; first += subtree) {
    const std::uint64_t count = std::min(subtree, n - first);
    window.emplace_back(std::make_pair(first, count),
                        Spawn(Node(first, count, s)));
    while (window.size() - oldest >= kInFlight ||
           (first + subtree >= n && oldest < window.size())) {
      auto& [range, h] = window[oldest];
      std::uint64_t got;
      try {
        got = co_await h;
      } catch (const NodeError& e) {
        s->caught.fetch_add(1, std::memory_order_relaxed);
        got = e.value;
      }
      if (got != s->Expected(range.first, range.second))
        s->mismatches.fetch_add(1);
      total += got;
      window[oldest].second = JoinHandle<std::uint64_t>();
      ++oldest;
    }
  }
  co_return total;
}

TEST(StressTest, MillionsOfTasksWithRandomMixAllProduceCorrectResults) {
  Watchdog wd(600s);
  const std::uint64_t n = Scaled(2'000'000, 5'000);
  Shared shared(n);
  Runtime rt({.workers = 4, .blocking_max_threads = 8});
  const std::uint64_t total = testing::BlockOnWithin(
      rt, Driver(n, 4096, &shared), std::chrono::milliseconds(500'000),
      std::uint64_t{0});
  EXPECT_EQ(total, shared.Expected(0, n));
  EXPECT_EQ(shared.mismatches.load(), 0u);
  EXPECT_EQ(shared.thrown.load(), shared.caught.load());
  EXPECT_GT(shared.thrown.load(), 0u);
  std::uint64_t bad = 0;
  for (auto& v : shared.seen) bad += v.load() != 1;
  EXPECT_EQ(bad, 0u) << "nodes not run exactly once";
  EXPECT_TRUE(testing::WaitFor([&] { return rt.TasksAlive() == 0; }));
  const RuntimeMetrics m = rt.Metrics();
  EXPECT_EQ(m.tasks_alive, 0u);
  EXPECT_GE(m.tasks_spawned,
            n * 3 / 4);  // most nodes were spawned, not inlined
}

Task<std::uint64_t> Leaf(std::uint64_t i) {
  if (i % 3 == 0) co_await Yield();
  co_return i* i;
}

Task<std::uint64_t> FanOut(std::uint64_t n) {
  std::vector<JoinHandle<std::uint64_t>> hs;
  hs.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i) hs.push_back(Spawn(Leaf(i)));
  std::uint64_t sum = 0;
  for (auto& h : hs) sum += co_await h;
  co_return sum;
}

TEST(StressTest, WideFanOutFanInSumsEveryChild) {
  Watchdog wd(300s);
  const std::uint64_t n = Scaled(200'000, 5'000);
  Runtime rt({.workers = 2});
  std::uint64_t expected = 0;
  for (std::uint64_t i = 0; i < n; ++i) expected += i * i;
  EXPECT_EQ(
      testing::BlockOnWithin(rt, FanOut(n), std::chrono::milliseconds(200'000),
                             std::uint64_t{0}),
      expected);
  std::uint64_t overflows = 0;
  for (const WorkerMetrics& w : rt.Metrics().workers) overflows += w.overflows;
  // Spawning that many at once from one task must spill its local queue.
  EXPECT_GT(overflows, 0u);
  EXPECT_TRUE(testing::WaitFor([&] { return rt.TasksAlive() == 0; }));
}

Task<std::uint64_t> Tree(int depth, std::uint64_t label) {
  if (depth == 0) co_return label;
  JoinHandle<std::uint64_t> left = Spawn(Tree(depth - 1, label * 2));
  JoinHandle<std::uint64_t> right = Spawn(Tree(depth - 1, label * 2 + 1));
  const std::uint64_t l = co_await left;
  const std::uint64_t r = co_await right;
  co_return l + r;
}

TEST(StressTest, BinaryTreeOfSpawnsJoinsEveryLevel) {
  Watchdog wd(300s);
  const int depth = testing::StressScale() >= 0.5 ? 17 : 13;
  Runtime rt({.workers = 3});
  // Leaves carry labels 2^d .. 2^(d+1)-1.
  const std::uint64_t lo = std::uint64_t{1} << depth;
  const std::uint64_t hi = (std::uint64_t{1} << (depth + 1)) - 1;
  const std::uint64_t expected = (lo + hi) * (hi - lo + 1) / 2;
  EXPECT_EQ(testing::BlockOnWithin(rt, Tree(depth, 1),
                                   std::chrono::milliseconds(200'000),
                                   std::uint64_t{0}),
            expected);
  EXPECT_TRUE(testing::WaitFor([&] { return rt.TasksAlive() == 0; }));
}

}  // namespace
}  // namespace awaitd::runtime
