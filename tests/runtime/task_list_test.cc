// TaskList: FIFO order, batched pops, close semantics, and a concurrent
// multi-producer/multi-consumer exactly-once check.
#include "runtime/internal/task_list.h"

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/runtime/test_util.h"

namespace awaitd::runtime::internal {
namespace {

using ::awaitd::runtime::testing::Scaled;

// Storage standing in for task headers (the list only uses queue_next_).
class FakeTasks {
 public:
  explicit FakeTasks(std::size_t n) : storage_(n) {}
  TaskHeader* at(std::size_t i) {
    return reinterpret_cast<TaskHeader*>(&storage_[i]);
  }
  std::size_t index(TaskHeader* t) const {
    return static_cast<std::size_t>(reinterpret_cast<const Slot*>(t) -
                                    storage_.data());
  }

 private:
  struct alignas(TaskHeader) Slot {
    unsigned char bytes[sizeof(TaskHeader)];
  };
  std::vector<Slot> storage_;
};

std::vector<std::size_t> ChainIndices(FakeTasks& tasks, TaskHeader* first) {
  std::vector<std::size_t> out;
  for (TaskHeader* t = first; t != nullptr; t = t->queue_next_)
    out.push_back(tasks.index(t));
  return out;
}

TEST(TaskListTest, PopsInPushOrder) {
  FakeTasks tasks(10);
  TaskList list;
  EXPECT_TRUE(list.IsEmpty());
  for (std::size_t i = 0; i < 10; ++i) EXPECT_TRUE(list.Push(tasks.at(i)));
  EXPECT_EQ(list.Len(), 10u);
  for (std::size_t i = 0; i < 10; ++i) EXPECT_EQ(list.Pop(), tasks.at(i));
  EXPECT_EQ(list.Pop(), nullptr);
  EXPECT_TRUE(list.IsEmpty());
}

TEST(TaskListTest, PopChainTakesAtMostMaxInOrder) {
  FakeTasks tasks(10);
  TaskList list;
  for (std::size_t i = 0; i < 10; ++i) list.Push(tasks.at(i));
  std::uint32_t n = 0;
  TaskHeader* chain = list.PopChain(4, &n);
  EXPECT_EQ(n, 4u);
  EXPECT_EQ(ChainIndices(tasks, chain), (std::vector<std::size_t>{0, 1, 2, 3}));
  EXPECT_EQ(list.Len(), 6u);
  chain = list.PopChain(100, &n);
  EXPECT_EQ(n, 6u);
  EXPECT_EQ(ChainIndices(tasks, chain),
            (std::vector<std::size_t>{4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(list.PopChain(100, &n), nullptr);
  EXPECT_EQ(n, 0u);
}

TEST(TaskListTest, PushChainAppendsWholeChain) {
  FakeTasks tasks(6);
  TaskList list;
  list.Push(tasks.at(0));
  tasks.at(1)->queue_next_ = tasks.at(2);
  tasks.at(2)->queue_next_ = tasks.at(3);
  EXPECT_TRUE(list.PushChain(tasks.at(1), tasks.at(3), 3));
  list.Push(tasks.at(4));
  EXPECT_EQ(list.Len(), 5u);
  std::uint32_t n = 0;
  EXPECT_EQ(ChainIndices(tasks, list.PopChain(UINT32_MAX, &n)),
            (std::vector<std::size_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(n, 5u);
}

TEST(TaskListTest, ListIsReusableAfterBeingEmptied) {
  FakeTasks tasks(3);
  TaskList list;
  list.Push(tasks.at(0));
  EXPECT_EQ(list.Pop(), tasks.at(0));
  list.Push(tasks.at(1));
  list.Push(tasks.at(2));
  EXPECT_EQ(list.Pop(), tasks.at(1));
  EXPECT_EQ(list.Pop(), tasks.at(2));
  EXPECT_EQ(list.Pop(), nullptr);
}

TEST(TaskListTest, CloseReturnsRemainingTasksAndRejectsPushes) {
  FakeTasks tasks(5);
  TaskList list;
  for (std::size_t i = 0; i < 3; ++i) list.Push(tasks.at(i));
  EXPECT_FALSE(list.IsClosed());
  EXPECT_EQ(ChainIndices(tasks, list.CloseAndTakeAll()),
            (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_TRUE(list.IsClosed());
  EXPECT_EQ(list.Len(), 0u);
  EXPECT_FALSE(list.Push(tasks.at(3)));
  EXPECT_EQ(list.Len(), 0u);
  std::uint32_t n = 0;
  EXPECT_EQ(list.PopChain(10, &n), nullptr);
  EXPECT_EQ(list.CloseAndTakeAll(), nullptr);
}

// Several producers push, several consumers pop random-sized chains. Every
// task comes out exactly once, and each consumer sees each producer's tasks
// in the order they were pushed.
TEST(TaskListStressTest,
     ConcurrentProducersAndConsumersSeeEveryTaskOnceInOrder) {
  constexpr int kProducers = 3;
  constexpr int kConsumers = 2;
  const std::size_t per_producer = Scaled(200'000, 10'000);
  const std::size_t total = per_producer * kProducers;
  FakeTasks tasks(total);
  std::vector<std::atomic<int>> seen(total);
  for (auto& s : seen) s.store(0, std::memory_order_relaxed);
  TaskList list;
  std::atomic<std::size_t> consumed{0};
  std::atomic<int> order_violations{0};

  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      // Producer p owns indices p, p + kProducers, ...; pushes some in chains.
      std::size_t k = 0;
      while (k < per_producer) {
        const std::size_t chain =
            std::min<std::size_t>(1 + k % 4, per_producer - k);
        TaskHeader* first = tasks.at((k)*kProducers + p);
        TaskHeader* last = first;
        for (std::size_t j = 1; j < chain; ++j) {
          TaskHeader* t = tasks.at((k + j) * kProducers + p);
          last->queue_next_ = t;
          last = t;
        }
        ASSERT_TRUE(
            list.PushChain(first, last, static_cast<std::uint32_t>(chain)));
        k += chain;
      }
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&, c] {
      std::vector<std::int64_t> last_seen(kProducers, -1);
      std::uint64_t rng = 777 + c;
      while (consumed.load(std::memory_order_relaxed) < total) {
        rng = awaitd::runtime::testing::Mix(rng);
        std::uint32_t n = 0;
        TaskHeader* t =
            list.PopChain(1 + static_cast<std::uint32_t>(rng % 16), &n);
        if (t == nullptr) {
          std::this_thread::yield();
          continue;
        }
        std::uint32_t walked = 0;
        for (; t != nullptr; t = t->queue_next_) {
          const std::size_t i = tasks.index(t);
          seen[i].fetch_add(1, std::memory_order_relaxed);
          const int p = static_cast<int>(i % kProducers);
          const auto k = static_cast<std::int64_t>(i / kProducers);
          if (k <= last_seen[p]) order_violations.fetch_add(1);
          last_seen[p] = k;
          ++walked;
        }
        EXPECT_EQ(walked, n);
        consumed.fetch_add(n, std::memory_order_relaxed);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(consumed.load(), total);
  EXPECT_EQ(order_violations.load(), 0);
  std::size_t bad = 0;
  for (auto& s : seen) bad += s.load() != 1;
  EXPECT_EQ(bad, 0u);
  EXPECT_TRUE(list.IsEmpty());
}

}  // namespace
}  // namespace awaitd::runtime::internal
