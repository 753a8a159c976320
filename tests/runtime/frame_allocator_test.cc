// FrameAllocator: reuse of freed blocks, cross-thread frees, many sizes, and
// no two live blocks overlapping.
#include "runtime/internal/frame_allocator.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/runtime/test_util.h"

namespace awaitd::runtime::internal {
namespace {

using ::awaitd::runtime::testing::kAddressSanitizer;
using ::awaitd::runtime::testing::Mix;
using ::awaitd::runtime::testing::Scaled;

struct Block {
  unsigned char* p;
  std::size_t size;
  unsigned char tag;
};

void Fill(const Block& b) { std::memset(b.p, b.tag, b.size); }

bool Intact(const Block& b) {
  for (std::size_t i = 0; i < b.size; ++i) {
    if (b.p[i] != b.tag) return false;
  }
  return true;
}

Block NewBlock(std::size_t size, unsigned char tag) {
  Block b{static_cast<unsigned char*>(FrameAllocator::Allocate(size)), size,
          tag};
  Fill(b);
  return b;
}

TEST(FrameAllocatorTest, ReturnsAlignedWritableBlocksOfEverySize) {
  std::vector<Block> blocks;
  for (std::size_t size = 1; size <= 2 * FrameAllocator::kMaxSmallSize;
       size += 7) {
    Block b = NewBlock(size, static_cast<unsigned char>(size));
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.p) % alignof(std::max_align_t),
              0u)
        << size;
    blocks.push_back(b);
  }
  for (const Block& b : blocks) EXPECT_TRUE(Intact(b)) << b.size;
  for (const Block& b : blocks) FrameAllocator::Deallocate(b.p, b.size);
}

TEST(FrameAllocatorTest, FreedBlockIsReusedForTheSameSizeClass) {
  if (kAddressSanitizer)
    GTEST_SKIP() << "the allocator forwards to operator new under ASan";
  void* p = FrameAllocator::Allocate(200);
  FrameAllocator::Deallocate(p, 200);
  // 200 and 208 share the 208-byte class.
  void* q = FrameAllocator::Allocate(208);
  EXPECT_EQ(q, p);
  FrameAllocator::Deallocate(q, 208);
}

TEST(FrameAllocatorTest, SteadyAllocateFreeCyclesDoNotGrowSlabs) {
  if (kAddressSanitizer)
    GTEST_SKIP() << "the allocator forwards to operator new under ASan";
  std::vector<void*> ptrs(2000);
  auto cycle = [&] {
    for (auto& p : ptrs) p = FrameAllocator::Allocate(96);
    for (void* p : ptrs) FrameAllocator::Deallocate(p, 96);
  };
  cycle();
  const std::uint64_t before = FrameAllocator::GetStats().slab_bytes;
  for (int i = 0; i < 50; ++i) cycle();
  EXPECT_EQ(FrameAllocator::GetStats().slab_bytes, before);
}

TEST(FrameAllocatorTest, LiveBlocksNeverOverlap) {
  std::vector<Block> live;
  std::uint64_t rng = 5;
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> ranges;
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 500; ++i) {
      rng = Mix(rng);
      const std::size_t size = 1 + rng % (FrameAllocator::kMaxSmallSize + 200);
      live.push_back(NewBlock(size, static_cast<unsigned char>(rng >> 40)));
    }
    ranges.clear();
    for (const Block& b : live) {
      ranges.emplace_back(reinterpret_cast<std::uintptr_t>(b.p),
                          reinterpret_cast<std::uintptr_t>(b.p) + b.size);
    }
    std::sort(ranges.begin(), ranges.end());
    for (std::size_t i = 1; i < ranges.size(); ++i) {
      ASSERT_LE(ranges[i - 1].second, ranges[i].first) << "overlapping blocks";
    }
    for (const Block& b : live) ASSERT_TRUE(Intact(b));
    // Free a random half, keep the rest live into the next round.
    std::vector<Block> keep;
    for (const Block& b : live) {
      rng = Mix(rng);
      if (rng % 2) {
        FrameAllocator::Deallocate(b.p, b.size);
      } else {
        keep.push_back(b);
      }
    }
    live = std::move(keep);
  }
  for (const Block& b : live) {
    EXPECT_TRUE(Intact(b));
    FrameAllocator::Deallocate(b.p, b.size);
  }
}

TEST(FrameAllocatorTest, BlocksFreedOnAnotherThreadAreReusable) {
  const std::size_t n = 10'000;  // enough to push several batches to the depot
  std::vector<Block> blocks;
  std::thread producer([&] {
    for (std::size_t i = 0; i < n; ++i)
      blocks.push_back(NewBlock(128, static_cast<unsigned char>(i)));
  });
  producer.join();
  std::thread consumer([&] {
    for (const Block& b : blocks) {
      ASSERT_TRUE(Intact(b));
      FrameAllocator::Deallocate(b.p, b.size);
    }
  });
  consumer.join();
  const std::uint64_t slabs_before = FrameAllocator::GetStats().slab_bytes;
  std::vector<Block> again;
  std::thread third([&] {
    for (std::size_t i = 0; i < n / 2; ++i)
      again.push_back(NewBlock(128, 0x5a));
  });
  third.join();
  for (const Block& b : again) EXPECT_TRUE(Intact(b));
  if (!kAddressSanitizer) {
    // Served from the depot that the consumer filled, not from new slabs.
    EXPECT_EQ(FrameAllocator::GetStats().slab_bytes, slabs_before);
  }
  for (const Block& b : again) FrameAllocator::Deallocate(b.p, b.size);
}

// Producers allocate and fill, consumers on other threads check and free, so
// blocks migrate between thread caches through the depot all the time.
TEST(FrameAllocatorStressTest,
     ConcurrentCrossThreadAllocateAndFreeKeepsBlocksIntact) {
  constexpr int kPairs = 2;
  const std::size_t per_producer = Scaled(400'000, 20'000);
  std::atomic<int> corrupt{0};
  std::vector<std::thread> threads;
  struct Channel {
    std::mutex mu;
    std::vector<Block> blocks;
    bool done = false;
  };
  std::vector<Channel> channels(kPairs);
  for (int k = 0; k < kPairs; ++k) {
    threads.emplace_back([&, k] {
      std::uint64_t rng = 100 + k;
      std::vector<Block> batch;
      for (std::size_t i = 0; i < per_producer; ++i) {
        rng = Mix(rng);
        batch.push_back(
            NewBlock(1 + rng % 600, static_cast<unsigned char>(rng >> 50)));
        // Also free a few locally.
        if (rng % 5 == 0) {
          Block b = batch.back();
          batch.pop_back();
          if (!Intact(b)) corrupt.fetch_add(1);
          FrameAllocator::Deallocate(b.p, b.size);
        }
        if (batch.size() >= 256) {
          std::lock_guard lock(channels[k].mu);
          channels[k].blocks.insert(channels[k].blocks.end(), batch.begin(),
                                    batch.end());
          batch.clear();
        }
      }
      std::lock_guard lock(channels[k].mu);
      channels[k].blocks.insert(channels[k].blocks.end(), batch.begin(),
                                batch.end());
      channels[k].done = true;
    });
    threads.emplace_back([&, k] {
      for (;;) {
        std::vector<Block> got;
        bool done;
        {
          std::lock_guard lock(channels[k].mu);
          got.swap(channels[k].blocks);
          done = channels[k].done;
        }
        for (const Block& b : got) {
          if (!Intact(b)) corrupt.fetch_add(1);
          FrameAllocator::Deallocate(b.p, b.size);
        }
        if (done && got.empty()) break;
        if (got.empty()) std::this_thread::yield();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(corrupt.load(), 0);
}

}  // namespace
}  // namespace awaitd::runtime::internal
