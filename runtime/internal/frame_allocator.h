// Recycling allocator for coroutine frames and task headers.
//
// Every spawn allocates a coroutine frame and a task header, and every
// completion frees them, usually on the same worker. A general-purpose malloc
// is correct but pays for generality on that path; this allocator keeps freed
// blocks in per-thread, per-size-class free lists and hands them back without
// locking.
//
// Design:
//  - Sizes up to kMaxSmallSize are rounded up to a multiple of kGranule and
//    served from a size class; larger requests go to ::operator new.
//  - Each thread owns a cache: one intrusive free list per class. Alloc pops,
//    free pushes, with no atomics.
//  - A cache that grows past kCacheHigh blocks in a class hands a batch of
//    kBatch blocks to the global depot (one mutex hold per batch), so memory
//    freed on a thread that never allocates (a consumer) flows back to threads
//    that do (producers).
//  - A miss refills from the depot, then from a fresh slab carved into
//    blocks. Slabs are retained for the life of the process (that is the
//    recycling), so peak frame memory stays reserved after a burst.
//
// Thread safety: Allocate/Deallocate may be called from any thread; a block
// may be freed on a different thread than the one that allocated it.
#ifndef AWAITD_RUNTIME_INTERNAL_FRAME_ALLOCATOR_H_
#define AWAITD_RUNTIME_INTERNAL_FRAME_ALLOCATOR_H_

#include <cstddef>
#include <cstdint>

namespace awaitd::runtime::internal {

class FrameAllocator {
 public:
  static constexpr std::size_t kGranule = 16;
  static constexpr std::size_t kMaxSmallSize = 1024;
  static constexpr std::size_t kNumClasses = kMaxSmallSize / kGranule;

  // Returns storage for `size` bytes aligned to alignof(std::max_align_t).
  // Never returns null (throws std::bad_alloc like operator new).
  static void* Allocate(std::size_t size);

  // `size` must be the size passed to Allocate for `p`.
  static void Deallocate(void* p, std::size_t size) noexcept;

  // Statistics, for tests and metrics. Approximate under concurrency.
  struct Stats {
    std::uint64_t slab_bytes = 0;    // bytes reserved in slabs
    std::uint64_t depot_blocks = 0;  // blocks parked in the global depot
  };
  static Stats GetStats();
};

}  // namespace awaitd::runtime::internal

#endif  // AWAITD_RUNTIME_INTERNAL_FRAME_ALLOCATOR_H_
