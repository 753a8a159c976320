// LocalQueue: FIFO order, overflow of half the ring, stealing half, and a
// concurrent owner/thieves race in which every task must be seen exactly once.
#include "runtime/internal/local_queue.h"

#include <atomic>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/runtime/test_util.h"

namespace awaitd::runtime::internal {
namespace {

using ::awaitd::runtime::testing::Scaled;

// Storage standing in for task headers: the queue only stores the pointers,
// except on overflow, where it links them through queue_next_.
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
  std::size_t size() const { return storage_.size(); }

 private:
  struct alignas(TaskHeader) Slot {
    unsigned char bytes[sizeof(TaskHeader)];
  };
  std::vector<Slot> storage_;
};

struct Spill {
  std::vector<TaskHeader*> tasks;
  int calls = 0;
  std::uint32_t last_count = 0;
};

auto Collect(Spill* spill) {
  return [spill](TaskHeader* first, TaskHeader* last, std::uint32_t count) {
    ++spill->calls;
    spill->last_count = count;
    std::uint32_t n = 0;
    for (TaskHeader* t = first;; t = t->queue_next_) {
      spill->tasks.push_back(t);
      ++n;
      if (t == last) break;
    }
    EXPECT_EQ(last->queue_next_, nullptr);
    EXPECT_EQ(n, count);
  };
}

auto NoOverflow() {
  return [](TaskHeader*, TaskHeader*, std::uint32_t) {
    ADD_FAILURE() << "unexpected overflow";
  };
}

TEST(LocalQueueTest, PopsInPushOrder) {
  FakeTasks tasks(100);
  LocalQueue q;
  for (std::size_t i = 0; i < tasks.size(); ++i)
    EXPECT_FALSE(q.PushBack(tasks.at(i), NoOverflow()));
  EXPECT_EQ(q.Len(), 100u);
  for (std::size_t i = 0; i < tasks.size(); ++i)
    EXPECT_EQ(q.Pop(), tasks.at(i));
  EXPECT_EQ(q.Pop(), nullptr);
  EXPECT_TRUE(q.IsEmpty());
}

TEST(LocalQueueTest, InterleavedPushAndPopKeepFifoAcrossWrapAround) {
  FakeTasks tasks(10'000);
  LocalQueue q;
  std::size_t next_pop = 0;
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    q.PushBack(tasks.at(i), NoOverflow());
    // Keep about 100 queued so that the ring wraps around many times.
    if (q.Len() > 100) {
      ASSERT_EQ(q.Pop(), tasks.at(next_pop));
      ++next_pop;
    }
  }
  while (TaskHeader* t = q.Pop()) {
    ASSERT_EQ(t, tasks.at(next_pop));
    ++next_pop;
  }
  EXPECT_EQ(next_pop, tasks.size());
}

TEST(LocalQueueTest, HoldsCapacityTasksWithoutOverflow) {
  FakeTasks tasks(LocalQueue::kCapacity);
  LocalQueue q;
  for (std::size_t i = 0; i < tasks.size(); ++i)
    EXPECT_FALSE(q.PushBack(tasks.at(i), NoOverflow()));
  EXPECT_EQ(q.Len(), LocalQueue::kCapacity);
  EXPECT_EQ(q.RemainingSlots(), 0u);
}

TEST(LocalQueueTest, OverflowMovesOlderHalfPlusNewTaskInOrder) {
  FakeTasks tasks(LocalQueue::kCapacity + 1);
  LocalQueue q;
  Spill spill;
  for (std::size_t i = 0; i < LocalQueue::kCapacity; ++i)
    q.PushBack(tasks.at(i), Collect(&spill));
  ASSERT_EQ(spill.calls, 0);
  EXPECT_TRUE(q.PushBack(tasks.at(LocalQueue::kCapacity), Collect(&spill)));
  ASSERT_EQ(spill.calls, 1);
  EXPECT_EQ(spill.last_count, LocalQueue::kCapacity / 2 + 1);
  ASSERT_EQ(spill.tasks.size(), LocalQueue::kCapacity / 2 + 1);
  for (std::size_t i = 0; i < LocalQueue::kCapacity / 2; ++i)
    EXPECT_EQ(spill.tasks[i], tasks.at(i));
  EXPECT_EQ(spill.tasks.back(), tasks.at(LocalQueue::kCapacity));
  // The newer half stays, in order.
  EXPECT_EQ(q.Len(), LocalQueue::kCapacity / 2);
  for (std::size_t i = LocalQueue::kCapacity / 2; i < LocalQueue::kCapacity;
       ++i) {
    EXPECT_EQ(q.Pop(), tasks.at(i));
  }
  EXPECT_EQ(q.Pop(), nullptr);
}

TEST(LocalQueueTest, RepeatedOverflowLosesNothing) {
  FakeTasks tasks(5000);
  LocalQueue q;
  Spill spill;
  for (std::size_t i = 0; i < tasks.size(); ++i)
    q.PushBack(tasks.at(i), Collect(&spill));
  std::vector<TaskHeader*> all = spill.tasks;
  while (TaskHeader* t = q.Pop()) all.push_back(t);
  ASSERT_EQ(all.size(), tasks.size());
  std::set<TaskHeader*> unique(all.begin(), all.end());
  EXPECT_EQ(unique.size(), tasks.size());
}

TEST(LocalQueueTest, StealTakesHalfRoundedUpAndReturnsOne) {
  FakeTasks tasks(11);
  LocalQueue victim;
  LocalQueue thief;
  for (std::size_t i = 0; i < tasks.size(); ++i)
    victim.PushBack(tasks.at(i), NoOverflow());
  std::uint32_t stolen = 0;
  TaskHeader* got = victim.StealInto(thief, &stolen);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(stolen, 6u);  // ceil(11 / 2)
  EXPECT_EQ(thief.Len(), 5u);
  // The stolen ones are the oldest six: the returned one plus the thief's
  // queue, the latter still in FIFO order.
  std::set<std::size_t> seen{tasks.index(got)};
  std::size_t prev = 0;
  bool first = true;
  while (TaskHeader* t = thief.Pop()) {
    const std::size_t i = tasks.index(t);
    if (!first) {
      EXPECT_GT(i, prev);
    }
    prev = i;
    first = false;
    seen.insert(i);
  }
  EXPECT_EQ(seen, (std::set<std::size_t>{0, 1, 2, 3, 4, 5}));
  for (std::size_t i = 6; i < tasks.size(); ++i)
    EXPECT_EQ(victim.Pop(), tasks.at(i));
  EXPECT_EQ(victim.Pop(), nullptr);
}

TEST(LocalQueueTest, StealOfSingleTaskReturnsItAndLeavesThiefEmpty) {
  FakeTasks tasks(1);
  LocalQueue victim;
  LocalQueue thief;
  victim.PushBack(tasks.at(0), NoOverflow());
  std::uint32_t stolen = 0;
  EXPECT_EQ(victim.StealInto(thief, &stolen), tasks.at(0));
  EXPECT_EQ(stolen, 1u);
  EXPECT_TRUE(thief.IsEmpty());
  EXPECT_TRUE(victim.IsEmpty());
}

TEST(LocalQueueTest, StealFromEmptyQueueFindsNothing) {
  LocalQueue victim;
  LocalQueue thief;
  std::uint32_t stolen = 99;
  EXPECT_EQ(victim.StealInto(thief, &stolen), nullptr);
  EXPECT_EQ(stolen, 0u);
}

TEST(LocalQueueTest, StealRefusesWhenThiefQueueHasNoRoomForHalf) {
  FakeTasks tasks(LocalQueue::kCapacity + 10);
  LocalQueue victim;
  LocalQueue thief;
  for (std::size_t i = 0; i < 10; ++i)
    victim.PushBack(tasks.at(i), NoOverflow());
  for (std::size_t i = 10; i < 10 + LocalQueue::kCapacity / 2 + 1; ++i) {
    thief.PushBack(tasks.at(i), NoOverflow());
  }
  std::uint32_t stolen = 0;
  EXPECT_EQ(victim.StealInto(thief, &stolen), nullptr);
  EXPECT_EQ(victim.Len(), 10u);
}

TEST(LocalQueueTest, StealOfFullQueueMovesHalf) {
  FakeTasks tasks(LocalQueue::kCapacity);
  LocalQueue victim;
  LocalQueue thief;
  for (std::size_t i = 0; i < tasks.size(); ++i)
    victim.PushBack(tasks.at(i), NoOverflow());
  std::uint32_t stolen = 0;
  ASSERT_NE(victim.StealInto(thief, &stolen), nullptr);
  EXPECT_EQ(stolen, LocalQueue::kCapacity / 2);
  EXPECT_EQ(thief.Len(), LocalQueue::kCapacity / 2 - 1);
  EXPECT_EQ(victim.Len(), LocalQueue::kCapacity / 2);
  EXPECT_EQ(victim.RemainingSlots(), LocalQueue::kCapacity / 2);
}

// The owner pushes (overflowing now and then) and pops while 1-3 thieves
// steal into their own queues and pop from them. Every task must come out
// exactly once: through a pop, a steal, or an overflow.
void RunStealRace(int thieves) {
  FakeTasks tasks(Scaled(300'000, 20'000));
  std::vector<std::atomic<int>> seen(tasks.size());
  for (auto& s : seen) s.store(0, std::memory_order_relaxed);
  auto mark = [&](TaskHeader* t) {
    seen[tasks.index(t)].fetch_add(1, std::memory_order_relaxed);
  };

  LocalQueue owner_queue;
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> steals{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < thieves; ++k) {
    threads.emplace_back([&] {
      LocalQueue mine;
      auto drain = [&] {
        std::uint32_t n = 0;
        if (TaskHeader* t = owner_queue.StealInto(mine, &n)) {
          steals.fetch_add(1, std::memory_order_relaxed);
          mark(t);
          while (TaskHeader* u = mine.Pop()) mark(u);
          return true;
        }
        return false;
      };
      while (!done.load(std::memory_order_acquire)) {
        if (!drain()) std::this_thread::yield();
      }
      drain();
    });
  }
  std::uint64_t overflowed = 0;
  auto overflow = [&](TaskHeader* first, TaskHeader* last,
                      std::uint32_t count) {
    std::uint32_t n = 0;
    for (TaskHeader* t = first;; t = t->queue_next_) {
      mark(t);
      ++n;
      if (t == last) break;
    }
    EXPECT_EQ(n, count);
    overflowed += count;
  };
  std::uint64_t rng = 12345;
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    owner_queue.PushBack(tasks.at(i), overflow);
    rng = awaitd::runtime::testing::Mix(rng);
    // Pop less than we push on average so that the queue fills and spills.
    if (rng % 8 < 3) {
      if (TaskHeader* t = owner_queue.Pop()) mark(t);
    }
  }
  while (TaskHeader* t = owner_queue.Pop()) mark(t);
  done.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();

  std::size_t missing = 0;
  std::size_t duplicated = 0;
  for (auto& s : seen) {
    const int v = s.load();
    if (v == 0) ++missing;
    if (v > 1) ++duplicated;
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(duplicated, 0u);
  // Not asserted (depends on scheduling), but useful when reading a failure.
  ::testing::Test::RecordProperty("steals", static_cast<int>(steals.load()));
  ::testing::Test::RecordProperty("overflowed", static_cast<int>(overflowed));
}

TEST(LocalQueueStressTest, OneThiefSeesEveryTaskExactlyOnce) {
  RunStealRace(1);
}
TEST(LocalQueueStressTest, TwoThievesSeeEveryTaskExactlyOnce) {
  RunStealRace(2);
}
TEST(LocalQueueStressTest, ThreeThievesSeeEveryTaskExactlyOnce) {
  RunStealRace(3);
}

}  // namespace
}  // namespace awaitd::runtime::internal
