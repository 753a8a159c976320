// TimerWheel: a worker's hierarchical timing wheel.
//
// Sleeping is the most common thing an awaitd job does, and a million of them
// may be pending at once, so a timer must cost no allocation and O(1) work to
// add and remove. Each timer is an intrusive TimerEntry that lives inside the
// sleeping coroutine's frame; the wheel only links it.
//
// Layout: 8 levels of 64 slots; a slot at level L spans 64^L ticks of one
// microsecond, so level 0 resolves single microseconds and level 7 reaches
// 2^48 us (8.9 years; later deadlines are clamped). An entry sits at the
// level of the highest 6-bit digit in which its deadline differs from the
// current time. When time reaches a slot above level 0, its entries move
// down (cascade); level-0 slots fire. A deadline is rounded up to a whole
// tick, so a timer never fires early, and at most one tick late on top of
// the time it takes the worker to notice.
//
// The worker parks until NextDeadline() using one Asio timer (timerfd), so
// wake-ups keep the kernel's precision (see Worker).
//
// Thread safety: externally synchronized. A wheel belongs to one worker and is
// touched only on that worker's thread.
#ifndef AWAITD_RUNTIME_INTERNAL_TIMER_WHEEL_H_
#define AWAITD_RUNTIME_INTERNAL_TIMER_WHEEL_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace awaitd::runtime::internal {

struct TimerEntry {
  // Called by Advance once the deadline has passed, after the entry has been
  // unlinked. It may destroy the entry.
  void (*fire)(TimerEntry*) = nullptr;
  std::uint64_t deadline = 0;  // in ticks, set before Insert
  TimerEntry* prev = nullptr;
  TimerEntry* next = nullptr;
  std::uint8_t level = 0;
  std::uint8_t slot = 0;
  bool linked = false;
};

class TimerWheel {
 public:
  static constexpr int kLevels = 8;
  static constexpr int kSlotBits = 6;
  static constexpr int kSlots = 1 << kSlotBits;
  static constexpr std::uint64_t kMaxTick =
      (std::uint64_t{1} << (kLevels * kSlotBits)) - 1;

  TimerWheel() = default;
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // Current time of the wheel, in ticks. Never decreases.
  std::uint64_t elapsed() const { return elapsed_; }
  std::size_t size() const { return size_; }

  // Links `e` (not linked) with its deadline; a deadline before elapsed()
  // fires on the next Advance.
  void Insert(TimerEntry* e);

  // Unlinks `e` if linked. O(1).
  void Remove(TimerEntry* e);

  // The tick at which the wheel next needs attention (a level-0 deadline or a
  // cascade), or nothing if it is empty.
  std::optional<std::uint64_t> NextDeadline() const;

  // Advances to `now` (ticks) and fires every entry whose deadline <= now, in
  // deadline order. Entries due at the same tick fire in insertion order if
  // they were inserted at the same wheel time (otherwise in an unspecified
  // order). Returns the number fired.
  std::size_t Advance(std::uint64_t now);

 private:
  struct Slot {
    TimerEntry* head = nullptr;
    TimerEntry* tail = nullptr;
  };
  struct Level {
    std::uint64_t occupied = 0;
    std::array<Slot, kSlots> slots;
  };
  struct Expiration {
    int level;
    int slot;
    std::uint64_t start;
  };

  static int LevelFor(std::uint64_t elapsed, std::uint64_t when);
  std::optional<Expiration> NextExpiration() const;
  void Link(TimerEntry* e, int level, int slot);
  static void Append(Slot& s, TimerEntry* e);

  std::uint64_t elapsed_ = 0;
  std::size_t size_ = 0;
  Slot expired_;  // inserted already due
  std::array<Level, kLevels> levels_;
};

}  // namespace awaitd::runtime::internal

#endif  // AWAITD_RUNTIME_INTERNAL_TIMER_WHEEL_H_
