// Hierarchical timing wheel; see timer_wheel.h.
#include "runtime/internal/timer_wheel.h"

#include <algorithm>
#include <bit>
#include <cassert>

namespace awaitd::runtime::internal {
namespace {
constexpr std::uint64_t kSlotMask = TimerWheel::kSlots - 1;
std::uint64_t LevelRange(int level) {
  return std::uint64_t{1} << (TimerWheel::kSlotBits * level);
}
}  // namespace

int TimerWheel::LevelFor(std::uint64_t elapsed, std::uint64_t when) {
  const std::uint64_t masked = (elapsed ^ when) | kSlotMask;
  const int significant = 63 - std::countl_zero(masked);
  return significant / kSlotBits;
}

void TimerWheel::Append(Slot& s, TimerEntry* e) {
  e->next = nullptr;
  e->prev = s.tail;
  if (s.tail != nullptr) {
    s.tail->next = e;
  } else {
    s.head = e;
  }
  s.tail = e;
}

void TimerWheel::Link(TimerEntry* e, int level, int slot) {
  e->level = static_cast<std::uint8_t>(level);
  e->slot = static_cast<std::uint8_t>(slot);
  e->linked = true;
  if (level < 0) {
    Append(expired_, e);
    return;
  }
  Level& l = levels_[level];
  Append(l.slots[slot], e);
  l.occupied |= std::uint64_t{1} << slot;
}

void TimerWheel::Insert(TimerEntry* e) {
  assert(!e->linked);
  e->deadline = std::min(e->deadline, kMaxTick);
  ++size_;
  if (e->deadline < elapsed_) {
    // Already late: fires first on the next Advance. (A deadline equal to
    // elapsed_ goes to the current level-0 slot, which Advance still visits,
    // so a cascade never reorders entries.)
    Link(e, -1, 0);
    return;
  }
  const int level = LevelFor(elapsed_, e->deadline);
  const int slot =
      static_cast<int>((e->deadline >> (kSlotBits * level)) & kSlotMask);
  Link(e, level, slot);
}

void TimerWheel::Remove(TimerEntry* e) {
  if (!e->linked) return;
  Slot& s = e->level == 0xff ? expired_ : levels_[e->level].slots[e->slot];
  if (e->prev != nullptr) {
    e->prev->next = e->next;
  } else {
    s.head = e->next;
  }
  if (e->next != nullptr) {
    e->next->prev = e->prev;
  } else {
    s.tail = e->prev;
  }
  if (s.head == nullptr && e->level != 0xff) {
    levels_[e->level].occupied &= ~(std::uint64_t{1} << e->slot);
  }
  e->prev = e->next = nullptr;
  e->linked = false;
  --size_;
}

std::optional<TimerWheel::Expiration> TimerWheel::NextExpiration() const {
  for (int level = 0; level < kLevels; ++level) {
    const std::uint64_t occupied = levels_[level].occupied;
    if (occupied == 0) continue;
    const int pos =
        static_cast<int>((elapsed_ >> (kSlotBits * level)) & kSlotMask);
    const std::uint64_t ahead = occupied >> pos;
    // Entries of a level always lie at or after the current position: they
    // share every higher digit with elapsed_.
    assert(ahead != 0);
    if (ahead == 0) continue;
    const int slot = pos + std::countr_zero(ahead);
    const std::uint64_t level_base = elapsed_ & ~(LevelRange(level + 1) - 1);
    return Expiration{
        level, slot,
        level_base + static_cast<std::uint64_t>(slot) * LevelRange(level)};
  }
  return std::nullopt;
}

std::optional<std::uint64_t> TimerWheel::NextDeadline() const {
  if (expired_.head != nullptr) return elapsed_;
  if (auto exp = NextExpiration()) return std::max(exp->start, elapsed_);
  return std::nullopt;
}

std::size_t TimerWheel::Advance(std::uint64_t now) {
  std::size_t fired = 0;
  auto fire_list = [&](TimerEntry* e) {
    while (e != nullptr) {
      TimerEntry* next = e->next;
      e->prev = e->next = nullptr;
      e->linked = false;
      --size_;
      ++fired;
      e->fire(e);  // may destroy e
      e = next;
    }
  };
  if (expired_.head != nullptr) {
    TimerEntry* list = expired_.head;
    expired_ = Slot{};
    fire_list(list);
  }
  for (;;) {
    std::optional<Expiration> exp = NextExpiration();
    if (!exp || exp->start > now) break;
    Level& l = levels_[exp->level];
    TimerEntry* list = l.slots[exp->slot].head;
    l.slots[exp->slot] = Slot{};
    l.occupied &= ~(std::uint64_t{1} << exp->slot);
    elapsed_ = std::max(elapsed_, exp->start);
    if (exp->level == 0) {
      fire_list(list);
      continue;
    }
    // Cascade: re-file each entry relative to the slot's start. They keep
    // their relative order, so same-tick entries stay first-in first-out.
    while (list != nullptr) {
      TimerEntry* next = list->next;
      list->linked = false;
      --size_;
      Insert(list);
      list = next;
    }
  }
  elapsed_ = std::max(elapsed_, now);
  return fired;
}

}  // namespace awaitd::runtime::internal
