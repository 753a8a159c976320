// Idle: the searching throttle, last-searcher detection, whom a notification
// wakes, and a parked worker's own unpark.
#include "runtime/internal/idle.h"

#include <algorithm>
#include <optional>

#include "gtest/gtest.h"

namespace awaitd::runtime::internal {
namespace {

TEST(IdleTest, StartsWithEveryWorkerUnparkedAndNoneSearching) {
  Idle idle(4);
  EXPECT_EQ(idle.NumUnparked(), 4u);
  EXPECT_EQ(idle.NumSearching(), 0u);
}

TEST(IdleTest, AtMostHalfTheWorkersSearch) {
  Idle idle(4);
  EXPECT_TRUE(idle.TransitionWorkerToSearching());
  EXPECT_TRUE(idle.TransitionWorkerToSearching());
  EXPECT_FALSE(idle.TransitionWorkerToSearching());
  EXPECT_EQ(idle.NumSearching(), 2u);
  // One stops searching: another may start.
  idle.TransitionWorkerFromSearching();
  EXPECT_TRUE(idle.TransitionWorkerToSearching());
}

TEST(IdleTest, SingleWorkerMaySearch) {
  Idle idle(1);
  EXPECT_TRUE(idle.TransitionWorkerToSearching());
  EXPECT_FALSE(idle.TransitionWorkerToSearching());
}

TEST(IdleTest, TwoWorkersAllowOneSearcher) {
  Idle idle(2);
  EXPECT_TRUE(idle.TransitionWorkerToSearching());
  EXPECT_FALSE(idle.TransitionWorkerToSearching());
}

TEST(IdleTest, OnlyTheLastSearcherToFindWorkIsTold) {
  Idle idle(4);
  ASSERT_TRUE(idle.TransitionWorkerToSearching());
  ASSERT_TRUE(idle.TransitionWorkerToSearching());
  EXPECT_FALSE(idle.TransitionWorkerFromSearching());
  EXPECT_TRUE(idle.TransitionWorkerFromSearching());
  EXPECT_EQ(idle.NumSearching(), 0u);
}

TEST(IdleTest, OnlyTheLastSearcherToParkMustRecheck) {
  Idle idle(4);
  ASSERT_TRUE(idle.TransitionWorkerToSearching());
  ASSERT_TRUE(idle.TransitionWorkerToSearching());
  EXPECT_FALSE(idle.TransitionWorkerToParked(0, /*is_searching=*/true));
  EXPECT_TRUE(idle.TransitionWorkerToParked(1, /*is_searching=*/true));
  EXPECT_FALSE(idle.TransitionWorkerToParked(2, /*is_searching=*/false));
  EXPECT_EQ(idle.NumUnparked(), 1u);
  EXPECT_EQ(idle.NumSearching(), 0u);
}

TEST(IdleTest, NotifyWithNoSleeperWakesNobody) {
  Idle idle(4);
  EXPECT_EQ(idle.WorkerToNotify(), std::nullopt);
  EXPECT_EQ(idle.NumUnparked(), 4u);
}

TEST(IdleTest, NotifyPicksASleeperAndCountsItAsSearching) {
  Idle idle(4);
  idle.TransitionWorkerToParked(3, false);
  EXPECT_EQ(idle.NumUnparked(), 3u);
  EXPECT_FALSE(idle.IsNotified(3));
  EXPECT_EQ(idle.WorkerToNotify(), std::optional<std::uint32_t>(3));
  EXPECT_EQ(idle.NumUnparked(), 4u);
  EXPECT_EQ(idle.NumSearching(), 1u);
  EXPECT_TRUE(idle.IsNotified(3));
  // It was taken off the list by the notifier: it counts as searching.
  EXPECT_TRUE(idle.UnparkSelf(3));
  EXPECT_EQ(idle.NumUnparked(), 4u);
}

TEST(IdleTest, NotifyWakesNobodyWhileAWorkerSearches) {
  Idle idle(4);
  idle.TransitionWorkerToParked(2, false);
  idle.TransitionWorkerToParked(3, false);
  ASSERT_TRUE(idle.TransitionWorkerToSearching());
  EXPECT_EQ(idle.WorkerToNotify(), std::nullopt);
  EXPECT_FALSE(idle.IsNotified(2));
  EXPECT_FALSE(idle.IsNotified(3));
  // Once the searcher stops, a notification wakes one sleeper.
  idle.TransitionWorkerFromSearching();
  const std::optional<std::uint32_t> w = idle.WorkerToNotify();
  ASSERT_TRUE(w.has_value());
  EXPECT_TRUE(*w == 2 || *w == 3);
  // The woken one now searches, so a second notification wakes nobody.
  EXPECT_EQ(idle.WorkerToNotify(), std::nullopt);
}

TEST(IdleTest, EachNotificationWakesADifferentSleeper) {
  Idle idle(3);
  for (std::uint32_t w = 0; w < 3; ++w) idle.TransitionWorkerToParked(w, false);
  EXPECT_EQ(idle.NumUnparked(), 0u);
  std::vector<std::uint32_t> woken;
  for (int i = 0; i < 3; ++i) {
    std::optional<std::uint32_t> w = idle.WorkerToNotify();
    ASSERT_TRUE(w.has_value());
    woken.push_back(*w);
    idle.TransitionWorkerFromSearching();  // it found work
  }
  std::sort(woken.begin(), woken.end());
  EXPECT_EQ(woken, (std::vector<std::uint32_t>{0, 1, 2}));
  EXPECT_EQ(idle.WorkerToNotify(), std::nullopt);
}

TEST(IdleTest, UnparkSelfRemovesAWorkerThatWokeOnItsOwn) {
  Idle idle(4);
  idle.TransitionWorkerToParked(1, false);
  EXPECT_FALSE(idle.IsNotified(1));  // a spurious wake-up
  EXPECT_FALSE(idle.UnparkSelf(1));
  EXPECT_EQ(idle.NumUnparked(), 4u);
  EXPECT_EQ(idle.NumSearching(), 0u);
  // No longer a sleeper: nothing to notify.
  EXPECT_EQ(idle.WorkerToNotify(), std::nullopt);
}

TEST(IdleTest, TakeAllSleepersUnparksEveryone) {
  Idle idle(4);
  idle.TransitionWorkerToParked(0, false);
  idle.TransitionWorkerToParked(2, false);
  std::vector<std::uint32_t> all = idle.TakeAllSleepers();
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<std::uint32_t>{0, 2}));
  EXPECT_EQ(idle.NumUnparked(), 4u);
  EXPECT_TRUE(idle.IsNotified(0));
  EXPECT_TRUE(idle.IsNotified(2));
}

}  // namespace
}  // namespace awaitd::runtime::internal
