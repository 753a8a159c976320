// Runtime: spawning, joining, BlockOn, exceptions through co_await.
#include "runtime/runtime.h"

#include <atomic>
#include <stdexcept>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/time.h"

namespace awaitd::runtime {
namespace {

Task<int> Square(int x) { co_return x* x; }

Task<int> SumOfSquares(int n) {
  std::vector<JoinHandle<int>> hs;
  for (int i = 0; i < n; ++i) hs.push_back(Spawn(Square(i)));
  int sum = 0;
  for (auto& h : hs) sum += co_await h;
  co_return sum;
}

TEST(RuntimeTest, BlockOnReturnsTheTaskResult) {
  Runtime rt({.workers = 2});
  EXPECT_EQ(rt.BlockOn(Square(7)), 49);
}

TEST(RuntimeTest, SpawnedTasksJoinWithTheirResults) {
  Runtime rt({.workers = 2});
  EXPECT_EQ(rt.BlockOn(SumOfSquares(1000)), 332833500);
}

Task<int> Throws() {
  co_await Yield();
  throw std::runtime_error("boom");
}

TEST(RuntimeTest, ExceptionsAreRethrownAtCoAwait) {
  Runtime rt({.workers = 2});
  EXPECT_THROW(
      {
        try {
          rt.BlockOn(Throws());
        } catch (const std::runtime_error& e) {
          EXPECT_STREQ(e.what(), "boom");
          throw;
        }
      },
      std::runtime_error);
}

}  // namespace
}  // namespace awaitd::runtime
