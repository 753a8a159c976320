// LocalQueue: a worker's bounded run queue; the owner pushes and pops, any
// other worker may steal half of it.
//
// A fixed ring of 256 slots, as in tokio's scheduler: bounded so that a worker
// that produces faster than it consumes spills half its queue to the global
// injection queue (where every worker can take it), and fixed-size so that no
// allocation or resizing happens on the hot path. Steals take half the
// victim's tasks in one claim, which amortizes the cross-core traffic.
//
// Thread safety / invariants:
//   - `tail_` is written only by the owner. Stealers read it (acquire).
//   - `head_` packs two 32-bit indices: `steal` (low water mark of slots a
//     stealer may still be copying) and `real` (next slot to pop). When no
//     steal is in progress they are equal. A stealer first advances `real`
//     (claiming n tasks), copies them, then advances `steal` to match; the
//     owner never writes a slot in [steal, steal + kCapacity) that a stealer
//     could be reading, because it computes free space from `steal`.
//   - Only one steal may be in progress at a time (steal != real means busy).
//   - Indices wrap modulo 2^32; slot = index & kMask.
//   - Slots are atomics accessed relaxed: the ordering comes from head_/tail_.
#ifndef AWAITD_RUNTIME_INTERNAL_LOCAL_QUEUE_H_
#define AWAITD_RUNTIME_INTERNAL_LOCAL_QUEUE_H_

#include <atomic>
#include <cassert>
#include <cstdint>

#include "runtime/internal/task_header.h"

namespace awaitd::runtime::internal {

class LocalQueue {
 public:
  static constexpr std::uint32_t kCapacity = 256;
  static constexpr std::uint32_t kMask = kCapacity - 1;

  LocalQueue() {
    for (auto& slot : buffer_) slot.store(nullptr, std::memory_order_relaxed);
  }
  LocalQueue(const LocalQueue&) = delete;
  LocalQueue& operator=(const LocalQueue&) = delete;

  // Owner only. Pushes `task` at the back. When the queue is full, moves half
  // of it plus `task` into `overflow` with one call of
  // `overflow(first, last, count)`, where first..last is a chain linked by
  // queue_next_. Returns true if it overflowed.
  template <typename Overflow>
  bool PushBack(TaskHeader* task, Overflow&& overflow) {
    for (;;) {
      const std::uint64_t head = head_.load(std::memory_order_acquire);
      const std::uint32_t steal = Steal(head);
      const std::uint32_t real = Real(head);
      const std::uint32_t tail = tail_.load(std::memory_order_relaxed);
      if (tail - steal < kCapacity) {
        buffer_[tail & kMask].store(task, std::memory_order_relaxed);
        tail_.store(tail + 1, std::memory_order_release);
        return false;
      }
      if (steal != real) {
        // A stealer is copying out; it will free room. Do not wait for it.
        task->queue_next_ = nullptr;
        overflow(task, task, 1u);
        return true;
      }
      if (PushOverflow(task, real, tail, overflow)) return true;
      // A stealer took tasks meanwhile: there is room now.
    }
  }

  // Owner only. Pops the front task, or returns null.
  TaskHeader* Pop() {
    std::uint64_t head = head_.load(std::memory_order_acquire);
    for (;;) {
      const std::uint32_t steal = Steal(head);
      const std::uint32_t real = Real(head);
      const std::uint32_t tail = tail_.load(std::memory_order_relaxed);
      if (real == tail) return nullptr;
      const std::uint32_t next_real = real + 1;
      const std::uint64_t next =
          steal == real ? Pack(next_real, next_real) : Pack(steal, next_real);
      if (head_.compare_exchange_weak(head, next, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        return buffer_[real & kMask].load(std::memory_order_relaxed);
      }
    }
  }

  // Called by a thief on the victim's queue (`this`), moving about half of its
  // tasks into `dst`, the thief's own queue, which must be empty. Returns one
  // stolen task to run at once (the rest are in `dst`), or null.
  TaskHeader* StealInto(LocalQueue& dst, std::uint32_t* stolen_count) {
    const std::uint32_t dst_tail = dst.tail_.load(std::memory_order_relaxed);
    const std::uint32_t dst_steal =
        Steal(dst.head_.load(std::memory_order_acquire));
    if (dst_tail - dst_steal > kCapacity / 2) return nullptr;  // no room
    std::uint32_t n = StealInto2(dst, dst_tail);
    *stolen_count = n;
    if (n == 0) return nullptr;
    --n;
    TaskHeader* ret =
        dst.buffer_[(dst_tail + n) & kMask].load(std::memory_order_relaxed);
    if (n > 0) dst.tail_.store(dst_tail + n, std::memory_order_release);
    return ret;
  }

  // Number of queued tasks. Exact for the owner; a snapshot for others.
  std::uint32_t Len() const {
    const std::uint64_t head = head_.load(std::memory_order_acquire);
    const std::uint32_t tail = tail_.load(std::memory_order_acquire);
    return tail - Real(head);
  }
  bool IsEmpty() const { return Len() == 0; }

  // Room left before the next push overflows (owner only).
  std::uint32_t RemainingSlots() const {
    const std::uint32_t steal = Steal(head_.load(std::memory_order_acquire));
    return kCapacity - (tail_.load(std::memory_order_relaxed) - steal);
  }

 private:
  static std::uint32_t Steal(std::uint64_t head) {
    return static_cast<std::uint32_t>(head >> 32);
  }
  static std::uint32_t Real(std::uint64_t head) {
    return static_cast<std::uint32_t>(head);
  }
  static std::uint64_t Pack(std::uint32_t steal, std::uint32_t real) {
    return (static_cast<std::uint64_t>(steal) << 32) | real;
  }

  template <typename Overflow>
  bool PushOverflow(TaskHeader* task, std::uint32_t head,
                    [[maybe_unused]] std::uint32_t tail, Overflow& overflow) {
    constexpr std::uint32_t kHalf = kCapacity / 2;
    assert(tail - head == kCapacity);
    // Claim the older half; fails if a stealer got there first.
    std::uint64_t expected = Pack(head, head);
    if (!head_.compare_exchange_strong(
            expected, Pack(head + kHalf, head + kHalf),
            std::memory_order_release, std::memory_order_relaxed)) {
      return false;
    }
    TaskHeader* first = buffer_[head & kMask].load(std::memory_order_relaxed);
    TaskHeader* prev = first;
    for (std::uint32_t i = 1; i < kHalf; ++i) {
      TaskHeader* t =
          buffer_[(head + i) & kMask].load(std::memory_order_relaxed);
      prev->queue_next_ = t;
      prev = t;
    }
    prev->queue_next_ = task;
    task->queue_next_ = nullptr;
    overflow(first, task, kHalf + 1);
    return true;
  }

  std::uint32_t StealInto2(LocalQueue& dst, std::uint32_t dst_tail) {
    std::uint64_t prev = head_.load(std::memory_order_acquire);
    std::uint64_t next;
    std::uint32_t n;
    for (;;) {
      const std::uint32_t src_steal = Steal(prev);
      const std::uint32_t src_real = Real(prev);
      if (src_steal != src_real) return 0;  // another thief is active
      const std::uint32_t src_tail = tail_.load(std::memory_order_acquire);
      n = src_tail - src_real;
      n -= n / 2;  // half, rounded up
      if (n == 0) return 0;
      next = Pack(src_steal, src_real + n);
      if (head_.compare_exchange_weak(prev, next, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        break;
      }
    }
    const std::uint32_t first = Real(prev);
    for (std::uint32_t i = 0; i < n; ++i) {
      TaskHeader* t =
          buffer_[(first + i) & kMask].load(std::memory_order_relaxed);
      dst.buffer_[(dst_tail + i) & kMask].store(t, std::memory_order_relaxed);
    }
    // Release the claim: move `steal` up to `real` (the owner may have popped
    // meanwhile, moving `real`).
    prev = next;
    for (;;) {
      const std::uint32_t real = Real(prev);
      const std::uint64_t done = Pack(real, real);
      if (head_.compare_exchange_weak(prev, done, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        return n;
      }
    }
  }

  alignas(64) std::atomic<std::uint64_t> head_{0};
  alignas(64) std::atomic<std::uint32_t> tail_{0};
  alignas(64) std::atomic<TaskHeader*> buffer_[kCapacity];
};

}  // namespace awaitd::runtime::internal

#endif  // AWAITD_RUNTIME_INTERNAL_LOCAL_QUEUE_H_
