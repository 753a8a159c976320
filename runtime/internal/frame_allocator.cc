// Per-thread size-class caches over process-lifetime slabs; see the header.
#include "runtime/internal/frame_allocator.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <new>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "runtime/internal/mutex.h"

#if defined(__SANITIZE_ADDRESS__)
#define AWAITD_FRAME_ALLOCATOR_PASSTHROUGH 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AWAITD_FRAME_ALLOCATOR_PASSTHROUGH 1
#endif
#endif

namespace awaitd::runtime::internal {
namespace {

// Under ASan recycling would hide use-after-free of frames; every block then
// goes straight to operator new/delete so the sanitizer sees each lifetime.
#ifdef AWAITD_FRAME_ALLOCATOR_PASSTHROUGH
constexpr bool kPassthrough = true;
#else
constexpr bool kPassthrough = false;
#endif

// A thread's first slab is small; each next one doubles, up to 1 MiB, so a
// busy worker goes to the depot's lock rarely while a thread that spawns now
// and then holds little. (Advising the big slabs as transparent huge pages
// was measured slower on the fan-out benchmark: 2 MiB page clearing at fault
// time costs more than the 4 KiB faults it saves.)
constexpr std::size_t kFirstSlabBytes = 64 * 1024;
constexpr std::size_t kMaxSlabBytes = 1024 * 1024;
constexpr std::uint32_t kBatch = 128;  // blocks moved to/from the depot at once
constexpr std::uint32_t kCacheHigh = 512;  // per class, per thread

struct FreeBlock {
  FreeBlock* next;
};

std::size_t ClassOf(std::size_t size) {
  return (size + FrameAllocator::kGranule - 1) / FrameAllocator::kGranule - 1;
}
std::size_t ClassSize(std::size_t cls) {
  return (cls + 1) * FrameAllocator::kGranule;
}

// Global depot of full batches plus the slab registry. Thread-safe.
class Depot {
 public:
  // Takes one batch of class `cls`, or returns null.
  FreeBlock* TakeBatch(std::size_t cls) {
    MutexLock lock(&mu_);
    auto& v = batches_[cls];
    if (v.empty()) return nullptr;
    FreeBlock* b = v.back();
    v.pop_back();
    blocks_.fetch_sub(kBatch, std::memory_order_relaxed);
    return b;
  }
  // `head` is a chain of exactly kBatch blocks.
  void PutBatch(std::size_t cls, FreeBlock* head) {
    MutexLock lock(&mu_);
    batches_[cls].push_back(head);
    blocks_.fetch_add(kBatch, std::memory_order_relaxed);
  }
  // A chain of any length (thread exit); spliced into a partial list.
  void PutChain(std::size_t cls, FreeBlock* head, std::uint32_t n) {
    while (head != nullptr) {
      // Cut off up to kBatch blocks; a short remainder is kept in `partial_`.
      MutexLock lock(&mu_);
      FreeBlock* next = head->next;
      head->next = partial_[cls];
      partial_[cls] = head;
      if (++partial_count_[cls] == kBatch) {
        batches_[cls].push_back(partial_[cls]);
        blocks_.fetch_add(kBatch, std::memory_order_relaxed);
        partial_[cls] = nullptr;
        partial_count_[cls] = 0;
      }
      head = next;
      --n;
    }
  }
  char* NewSlab(std::size_t bytes) {
    // Pre-faulted: a slab is carved front to back right away, and one
    // populating mmap is much cheaper than a page fault per 4 KiB.
    void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (mem == MAP_FAILED) throw std::bad_alloc();
    char* slab = static_cast<char*>(mem);
    MutexLock lock(&mu_);
    slabs_.push_back(slab);
    slab_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    return slab;
  }
  FrameAllocator::Stats GetStats() const {
    return {slab_bytes_.load(std::memory_order_relaxed),
            blocks_.load(std::memory_order_relaxed)};
  }

 private:
  Mutex mu_;
  std::vector<FreeBlock*> batches_[FrameAllocator::kNumClasses] ABSL_GUARDED_BY(
      mu_);
  FreeBlock* partial_[FrameAllocator::kNumClasses] ABSL_GUARDED_BY(mu_) = {};
  std::uint32_t partial_count_[FrameAllocator::kNumClasses] ABSL_GUARDED_BY(
      mu_) = {};
  // Slabs are never freed; keeping them listed also keeps them reachable for
  // leak checkers.
  std::vector<char*> slabs_ ABSL_GUARDED_BY(mu_);
  std::atomic<std::uint64_t> slab_bytes_{0};
  std::atomic<std::uint64_t> blocks_{0};
};

Depot& GlobalDepot() {
  static Depot* depot =
      new Depot();  // intentionally leaked: outlives every thread
  return *depot;
}

// One per thread; owned and used only by that thread.
struct ThreadCache {
  FreeBlock* head[FrameAllocator::kNumClasses] = {};
  std::uint32_t count[FrameAllocator::kNumClasses] = {};
  char* bump = nullptr;
  char* bump_end = nullptr;
  std::size_t next_slab_bytes = kFirstSlabBytes;

  ~ThreadCache();
};

thread_local bool tl_cache_gone = false;  // trivially destructible
thread_local ThreadCache tl_cache;

ThreadCache::~ThreadCache() {
  for (std::size_t cls = 0; cls < FrameAllocator::kNumClasses; ++cls) {
    if (head[cls] != nullptr)
      GlobalDepot().PutChain(cls, head[cls], count[cls]);
    head[cls] = nullptr;
    count[cls] = 0;
  }
  tl_cache_gone = true;
}

void* AllocateSlow(ThreadCache& c, std::size_t cls) {
  if (FreeBlock* batch = GlobalDepot().TakeBatch(cls)) {
    c.head[cls] = batch->next;
    c.count[cls] = kBatch - 1;
    return batch;
  }
  const std::size_t size = ClassSize(cls);
  if (c.bump == nullptr ||
      static_cast<std::size_t>(c.bump_end - c.bump) < size) {
    const std::size_t bytes = c.next_slab_bytes;
    c.bump = GlobalDepot().NewSlab(bytes);
    c.bump_end = c.bump + bytes;
    c.next_slab_bytes = std::min(bytes * 2, kMaxSlabBytes);
  }
  void* p = c.bump;
  c.bump += size;
  return p;
}

void FlushBatch(ThreadCache& c, std::size_t cls) {
  FreeBlock* batch = c.head[cls];
  FreeBlock* tail = batch;
  for (std::uint32_t i = 1; i < kBatch; ++i) tail = tail->next;
  c.head[cls] = tail->next;
  tail->next = nullptr;
  c.count[cls] -= kBatch;
  GlobalDepot().PutBatch(cls, batch);
}

}  // namespace

void* FrameAllocator::Allocate(std::size_t size) {
  if (kPassthrough || size > kMaxSmallSize || size == 0)
    return ::operator new(size);
  const std::size_t cls = ClassOf(size);
  if (tl_cache_gone) {
    // Thread-exit path: a frame created by a thread_local's destructor.
    return ::operator new(ClassSize(cls));
  }
  ThreadCache& c = tl_cache;
  if (FreeBlock* b = c.head[cls]) {
    c.head[cls] = b->next;
    --c.count[cls];
    return b;
  }
  return AllocateSlow(c, cls);
}

void FrameAllocator::Deallocate(void* p, std::size_t size) noexcept {
  if (p == nullptr) return;
  if (kPassthrough || size > kMaxSmallSize || size == 0) {
    ::operator delete(p);
    return;
  }
  const std::size_t cls = ClassOf(size);
  auto* b = static_cast<FreeBlock*>(p);
  if (tl_cache_gone) {
    b->next = nullptr;
    GlobalDepot().PutChain(cls, b, 1);
    return;
  }
  ThreadCache& c = tl_cache;
  b->next = c.head[cls];
  c.head[cls] = b;
  if (++c.count[cls] > kCacheHigh) FlushBatch(c, cls);
}

FrameAllocator::Stats FrameAllocator::GetStats() {
  return GlobalDepot().GetStats();
}

}  // namespace awaitd::runtime::internal
