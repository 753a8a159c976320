// Searching/parked accounting; the protocol is described in idle.h.
#include "runtime/internal/idle.h"

#include <algorithm>
#include <cassert>

#include "runtime/internal/fence.h"

namespace awaitd::runtime::internal {

Idle::Idle(std::uint32_t num_workers)
    : num_workers_(num_workers),
      state_(std::uint64_t{num_workers} << kUnparkShift) {
  sleepers_.reserve(num_workers);
}

bool Idle::NotifyShouldWakeUp() const {
  const std::uint64_t s = state_.load(std::memory_order_relaxed);
  return (s & kSearchMask) == 0 && (s >> kUnparkShift) < num_workers_;
}

std::optional<std::uint32_t> Idle::WorkerToNotify() {
  // Called after publishing work, on every spawn: keep the common case (a
  // worker is searching, or nobody sleeps) free of shared writes. The fence
  // orders the caller's publication before this load and pairs with the
  // fence a parking worker issues after registering (Scheduler::
  // NotifyIfWorkPending): either this load sees the parked worker, or that
  // worker sees the work.
  SeqCstFence();
  if (!NotifyShouldWakeUp()) return std::nullopt;
  MutexLock lock(&mu_);
  if (!NotifyShouldWakeUp()) return std::nullopt;
  if (sleepers_.empty()) return std::nullopt;
  // One more unparked worker, and it starts out searching.
  state_.fetch_add(kUnparkOne + 1, std::memory_order_seq_cst);
  std::uint32_t w = sleepers_.back();
  sleepers_.pop_back();
  return w;
}

bool Idle::TransitionWorkerToSearching() {
  std::uint64_t s = state_.load(std::memory_order_seq_cst);
  if (2 * (s & kSearchMask) >= num_workers_) return false;
  // Racy by design (as in tokio): a few extra searchers are harmless.
  state_.fetch_add(1, std::memory_order_seq_cst);
  return true;
}

bool Idle::TransitionWorkerFromSearching() {
  std::uint64_t prev = state_.fetch_sub(1, std::memory_order_seq_cst);
  assert((prev & kSearchMask) > 0);
  return (prev & kSearchMask) == 1;
}

bool Idle::TransitionWorkerToParked(std::uint32_t worker, bool is_searching) {
  MutexLock lock(&mu_);
  std::uint64_t dec = kUnparkOne + (is_searching ? 1 : 0);
  std::uint64_t prev = state_.fetch_sub(dec, std::memory_order_seq_cst);
  sleepers_.push_back(worker);
  return is_searching && (prev & kSearchMask) == 1;
}

bool Idle::IsNotified(std::uint32_t worker) {
  MutexLock lock(&mu_);
  return std::find(sleepers_.begin(), sleepers_.end(), worker) ==
         sleepers_.end();
}

bool Idle::UnparkSelf(std::uint32_t worker) {
  MutexLock lock(&mu_);
  auto it = std::find(sleepers_.begin(), sleepers_.end(), worker);
  if (it == sleepers_.end()) return true;  // a notifier already counted it
  sleepers_.erase(it);
  state_.fetch_add(kUnparkOne, std::memory_order_seq_cst);
  return false;
}

std::vector<std::uint32_t> Idle::TakeAllSleepers() {
  MutexLock lock(&mu_);
  std::vector<std::uint32_t> all;
  all.swap(sleepers_);
  state_.fetch_add(kUnparkOne * all.size(), std::memory_order_seq_cst);
  return all;
}

std::uint32_t Idle::NumSearching() const {
  return static_cast<std::uint32_t>(state_.load(std::memory_order_relaxed) &
                                    kSearchMask);
}
std::uint32_t Idle::NumUnparked() const {
  return static_cast<std::uint32_t>(state_.load(std::memory_order_relaxed) >>
                                    kUnparkShift);
}

}  // namespace awaitd::runtime::internal
