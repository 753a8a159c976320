// TimerWheel: deadline order across levels, same-tick FIFO, never early,
// removal at every level, NextDeadline, clamping, and a randomized model test.
#include "runtime/internal/timer_wheel.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/runtime/test_util.h"

namespace awaitd::runtime::internal {
namespace {

using ::awaitd::runtime::testing::Mix;
using ::awaitd::runtime::testing::Scaled;

// An entry that records its firing (id and the wheel time it fired at).
struct Recorder;
struct RecEntry : TimerEntry {
  int id = 0;
  Recorder* rec = nullptr;
};
struct Recorder {
  const TimerWheel* wheel = nullptr;
  std::uint64_t now = 0;  // the argument of the Advance in progress
  std::vector<int> fired;
  int early = 0;
};

void RecordFire(TimerEntry* e) {
  auto* r = static_cast<RecEntry*>(e);
  r->rec->fired.push_back(r->id);
  if (r->deadline > r->rec->now) ++r->rec->early;
}

class Timers {
 public:
  explicit Timers(TimerWheel* wheel) : wheel_(wheel) { rec_.wheel = wheel; }
  RecEntry* Add(std::uint64_t deadline) {
    auto e = std::make_unique<RecEntry>();
    e->id = static_cast<int>(entries_.size());
    e->rec = &rec_;
    e->fire = &RecordFire;
    e->deadline = deadline;
    wheel_->Insert(e.get());
    entries_.push_back(std::move(e));
    return entries_.back().get();
  }
  std::size_t Advance(std::uint64_t now) {
    rec_.now = now;
    return wheel_->Advance(now);
  }
  const std::vector<int>& fired() const { return rec_.fired; }
  int early() const { return rec_.early; }
  RecEntry* at(int id) { return entries_[static_cast<std::size_t>(id)].get(); }

 private:
  TimerWheel* wheel_;
  Recorder rec_;
  std::vector<std::unique_ptr<RecEntry>> entries_;
};

// Ids sorted by (deadline, insertion order): the order the wheel must fire.
std::vector<int> ExpectedOrder(const std::vector<std::uint64_t>& deadlines) {
  std::vector<int> ids(deadlines.size());
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int>(i);
  std::stable_sort(ids.begin(), ids.end(),
                   [&](int a, int b) { return deadlines[a] < deadlines[b]; });
  return ids;
}

constexpr std::uint64_t kHour = 3'600'000'000ULL;  // in ticks (microseconds)

TEST(TimerWheelTest, EmptyWheelHasNoDeadline) {
  TimerWheel wheel;
  EXPECT_FALSE(wheel.NextDeadline().has_value());
  EXPECT_EQ(wheel.Advance(1'000'000), 0u);
  EXPECT_EQ(wheel.elapsed(), 1'000'000u);
}

TEST(TimerWheelTest, FiresRandomDeadlinesFromMicrosecondsToHoursInOrder) {
  TimerWheel wheel;
  Timers timers(&wheel);
  std::vector<std::uint64_t> deadlines;
  std::uint64_t rng = 42;
  for (int i = 0; i < 5000; ++i) {
    rng = Mix(rng);
    // Log-uniform spread: 1 us .. ~4 hours, so every level gets entries.
    const int bits = 1 + static_cast<int>(rng % 44);
    const std::uint64_t d = 1 + (Mix(rng) & ((std::uint64_t{1} << bits) - 1));
    deadlines.push_back(std::min<std::uint64_t>(d, 4 * kHour));
    timers.Add(deadlines.back());
  }
  EXPECT_EQ(wheel.size(), deadlines.size());
  EXPECT_EQ(timers.Advance(4 * kHour), deadlines.size());
  EXPECT_EQ(timers.fired(), ExpectedOrder(deadlines));
  EXPECT_EQ(timers.early(), 0);
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheelTest, FiresInOrderWhenAdvancedInSmallSteps) {
  TimerWheel wheel;
  Timers timers(&wheel);
  std::vector<std::uint64_t> deadlines;
  std::uint64_t rng = 7;
  for (int i = 0; i < 3000; ++i) {
    rng = Mix(rng);
    deadlines.push_back(1 + rng % 300'000);
    timers.Add(deadlines.back());
  }
  for (std::uint64_t now = 0; now <= 300'000; now += 1 + (Mix(now) % 97))
    timers.Advance(now);
  timers.Advance(300'001);
  EXPECT_EQ(timers.fired(), ExpectedOrder(deadlines));
  EXPECT_EQ(timers.early(), 0);
}

TEST(TimerWheelTest, EntriesOfOneTickFireInInsertionOrder) {
  for (std::uint64_t tick :
       std::vector<std::uint64_t>{5, 63, 64, 100, 5000, 300'000, kHour}) {
    SCOPED_TRACE(tick);
    TimerWheel wheel;
    Timers timers(&wheel);
    std::vector<int> expected;
    for (int i = 0; i < 50; ++i) expected.push_back(timers.Add(tick)->id);
    timers.Advance(tick);
    EXPECT_EQ(timers.fired(), expected);
  }
}

TEST(TimerWheelTest, SameTickEntriesInsertedAtDifferentTimesStayFifo) {
  TimerWheel wheel;
  Timers timers(&wheel);
  std::vector<int> expected;
  const std::uint64_t deadline = 70'000;
  for (std::uint64_t now = 0; now < deadline; now += 997) {
    timers.Advance(now);
    expected.push_back(timers.Add(deadline)->id);
  }
  timers.Advance(deadline);
  EXPECT_EQ(timers.fired(), expected);
}

// Deadlines on and around slot boundaries of each level, where entries
// cascade from one level to the next.
std::vector<std::uint64_t> BoundaryDeadlines() {
  std::vector<std::uint64_t> out;
  for (int level = 0; level < 5; ++level) {
    const std::uint64_t span = std::uint64_t{1} << (6 * level);
    for (std::uint64_t k : {1ULL, 2ULL, 63ULL}) {
      const std::uint64_t b = k * span * 64;
      for (std::uint64_t d : {b - 1, b, b + 1}) out.push_back(d);
    }
  }
  out.push_back(1);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

TEST(TimerWheelTest, NeverFiresEarlyAndFiresExactlyAtItsDeadline) {
  for (std::uint64_t d : BoundaryDeadlines()) {
    SCOPED_TRACE(d);
    TimerWheel wheel;
    Timers timers(&wheel);
    timers.Add(d);
    EXPECT_EQ(timers.Advance(d - 1), 0u);
    EXPECT_TRUE(timers.fired().empty());
    EXPECT_EQ(timers.Advance(d), 1u) << "a timer due at tick " << d
                                     << " did not fire at Advance(" << d << ")";
    EXPECT_EQ(timers.fired().size(), 1u);
    EXPECT_EQ(wheel.size(), 0u);
  }
}

TEST(TimerWheelTest, BoundaryDeadlinesFireInOrderInOneAdvance) {
  TimerWheel wheel;
  Timers timers(&wheel);
  const std::vector<std::uint64_t> deadlines = BoundaryDeadlines();
  for (std::uint64_t d : deadlines) timers.Add(d);
  timers.Advance(deadlines.back());
  EXPECT_EQ(timers.fired(), ExpectedOrder(deadlines));
}

TEST(TimerWheelTest, AlreadyDueEntryFiresOnNextAdvance) {
  TimerWheel wheel;
  Timers timers(&wheel);
  timers.Advance(1000);
  timers.Add(10);    // in the past
  timers.Add(1000);  // now
  EXPECT_EQ(wheel.NextDeadline(), std::optional<std::uint64_t>(1000));
  EXPECT_EQ(timers.Advance(1000), 2u);
}

TEST(TimerWheelTest, RemovePreventsFiringAtEveryLevel) {
  TimerWheel wheel;
  Timers timers(&wheel);
  timers.Advance(10);
  std::vector<RecEntry*> removed;
  std::vector<int> kept;
  // One pair per level (and one already-due pair): remove the first of each.
  for (std::uint64_t delta :
       {0ULL, 5ULL, 100ULL, 5'000ULL, 300'000ULL, 20'000'000ULL,
        2'000'000'000ULL, 150'000'000'000ULL, 1ULL << 47}) {
    removed.push_back(timers.Add(10 + delta));
    kept.push_back(timers.Add(10 + delta)->id);
  }
  for (RecEntry* e : removed) {
    wheel.Remove(e);
    EXPECT_FALSE(e->linked);
    wheel.Remove(e);  // a second Remove is a no-op
  }
  EXPECT_EQ(wheel.size(), kept.size());
  timers.Advance(TimerWheel::kMaxTick);
  EXPECT_EQ(timers.fired(), kept);
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheelTest, RemoveAfterCascadeStillUnlinks) {
  TimerWheel wheel;
  Timers timers(&wheel);
  RecEntry* a = timers.Add(5'000);
  RecEntry* b = timers.Add(5'001);
  timers.Advance(4'990);  // cascades both to lower levels
  wheel.Remove(a);
  timers.Advance(10'000);
  EXPECT_EQ(timers.fired(), std::vector<int>{b->id});
}

TEST(TimerWheelTest,
     NextDeadlineNeverPassesEarliestAndAdvancingToItMakesProgress) {
  TimerWheel wheel;
  Timers timers(&wheel);
  std::multiset<std::uint64_t> pending;
  std::uint64_t rng = 99;
  for (int i = 0; i < 500; ++i) {
    rng = Mix(rng);
    const std::uint64_t d = 1 + (rng % (std::uint64_t{1} << (1 + rng % 40)));
    timers.Add(d);
    pending.insert(d);
  }
  int steps = 0;
  while (!pending.empty()) {
    ASSERT_LT(++steps, 100'000) << "NextDeadline/Advance made no progress";
    const std::optional<std::uint64_t> next = wheel.NextDeadline();
    ASSERT_TRUE(next.has_value());
    ASSERT_LE(*next, *pending.begin());
    ASSERT_GE(*next, wheel.elapsed());
    const std::size_t before = timers.fired().size();
    const std::uint64_t elapsed_before = wheel.elapsed();
    timers.Advance(*next);
    const std::size_t fired = timers.fired().size() - before;
    for (std::size_t k = 0; k < fired; ++k) pending.erase(pending.begin());
    // Progress: something fired, time moved, or the next deadline moved.
    const std::optional<std::uint64_t> after = wheel.NextDeadline();
    EXPECT_TRUE(fired > 0 || wheel.elapsed() > elapsed_before || after != next);
  }
  EXPECT_EQ(timers.early(), 0);
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheelTest, HugeDeadlinesAreClampedNotLost) {
  TimerWheel wheel;
  Timers timers(&wheel);
  timers.Add(UINT64_MAX);
  timers.Add(TimerWheel::kMaxTick + 12345);
  timers.Add(TimerWheel::kMaxTick);
  EXPECT_EQ(wheel.size(), 3u);
  ASSERT_TRUE(wheel.NextDeadline().has_value());
  EXPECT_LE(*wheel.NextDeadline(), TimerWheel::kMaxTick);
  EXPECT_EQ(timers.Advance(TimerWheel::kMaxTick - 1), 0u);
  EXPECT_EQ(timers.Advance(TimerWheel::kMaxTick), 3u);
  EXPECT_EQ(timers.fired(), (std::vector<int>{0, 1, 2}));
}

TEST(TimerWheelTest, FireCallbackMayDestroyTheEntry) {
  TimerWheel wheel;
  struct Owned : TimerEntry {
    int* fired;
  };
  int fired = 0;
  for (int i = 0; i < 100; ++i) {
    auto* e = new Owned;
    e->fired = &fired;
    e->deadline = 1 + static_cast<std::uint64_t>(i % 7) * 1000;
    e->fire = [](TimerEntry* t) {
      auto* o = static_cast<Owned*>(t);
      ++*o->fired;
      delete o;
    };
    wheel.Insert(e);
  }
  EXPECT_EQ(wheel.Advance(10'000), 100u);
  EXPECT_EQ(fired, 100);
}

// Random inserts, removes and advances against a std::multimap model keyed
// by (deadline, insertion sequence). Already-due inserts count as due "now".
TEST(TimerWheelTest, MatchesMultimapModelUnderRandomOperations) {
  TimerWheel wheel;
  Timers timers(&wheel);
  std::multimap<std::pair<std::uint64_t, int>, int> model;  // -> id
  std::vector<RecEntry*> live;
  std::vector<int> expected_fired;
  std::uint64_t rng = 2024;
  std::uint64_t now = 0;
  const std::size_t ops = Scaled(200'000, 20'000);
  for (std::size_t op = 0; op < ops; ++op) {
    rng = Mix(rng);
    const int kind = static_cast<int>(rng % 10);
    if (kind < 5) {
      // Deadline: mostly near, sometimes far, sometimes exactly on a boundary.
      const std::uint64_t r = Mix(rng + 1);
      std::uint64_t d;
      switch (r % 4) {
        case 0:
          d = now + r % 64;
          break;
        case 1:
          d = now + (r >> 8) % 100'000;
          break;
        case 2:
          d = now + ((r >> 8) % (std::uint64_t{1} << (r % 36)));
          break;
        default: {
          const std::uint64_t span = std::uint64_t{1} << (6 * (1 + r % 4));
          d = (now / span + 1 + (r >> 8) % 3) * span;
        }
      }
      RecEntry* e = timers.Add(d);
      model.emplace(std::make_pair(std::max(d, now), e->id), e->id);
      live.push_back(e);
    } else if (kind < 7) {
      if (live.empty()) continue;
      const std::size_t k = Mix(rng + 2) % live.size();
      RecEntry* e = live[k];
      if (e->linked) {
        wheel.Remove(e);
        for (auto it = model.begin(); it != model.end(); ++it) {
          if (it->second == e->id) {
            model.erase(it);
            break;
          }
        }
      }
      live[k] = live.back();
      live.pop_back();
    } else {
      const std::uint64_t r = Mix(rng + 3);
      now += (r % 3 == 0) ? r % 70 : (r >> 4) % 20'000;
      while (!model.empty() && model.begin()->first.first <= now) {
        expected_fired.push_back(model.begin()->second);
        model.erase(model.begin());
      }
      timers.Advance(now);
      ASSERT_EQ(timers.fired().size(), expected_fired.size())
          << "after Advance(" << now << ") at op " << op;
      ASSERT_EQ(timers.fired(), expected_fired) << "at op " << op;
      ASSERT_EQ(wheel.size(), model.size());
    }
  }
  EXPECT_EQ(timers.early(), 0);
}

}  // namespace
}  // namespace awaitd::runtime::internal
