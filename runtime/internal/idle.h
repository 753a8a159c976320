// Idle: which workers are searching for work and which are parked, and the
// decision of whom to wake when work appears.
//
// The rules (after tokio's `idle.rs`):
//   - At most half the workers search (steal) at once; the rest park at once.
//     Searching is expensive (it touches every victim's cache lines), and
//     half is enough to find work quickly.
//   - New stealable work wakes a parked worker only if nobody is searching: a
//     searcher will find the work, and when it does it wakes the next parked
//     worker if it was the last searcher, so wake-ups chain instead of
//     stampeding.
//   - The last searcher to park re-checks every queue after it has
//     registered as parked (see Worker), which closes the window in which work
//     published just before it parked would otherwise be missed.
//
// State: one atomic word, `num_searching` in the low 16 bits and
// `num_unparked` above it, plus the list of parked workers under a mutex.
// Every read of the word that decides a wake-up is a sequentially consistent
// RMW, pairing with the parking worker's RMW (a Dekker-style handshake).
//
// Thread safety: all methods are safe for concurrent use.
#ifndef AWAITD_RUNTIME_INTERNAL_IDLE_H_
#define AWAITD_RUNTIME_INTERNAL_IDLE_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "runtime/internal/mutex.h"

namespace awaitd::runtime::internal {

class Idle {
 public:
  explicit Idle(std::uint32_t num_workers);

  // Returns the worker to unpark for newly available work, having counted it
  // as unparked and searching; or nothing if no wake-up is needed.
  std::optional<std::uint32_t> WorkerToNotify();

  // A worker with nothing to run asks to search. False means enough workers
  // are searching already: it should park instead.
  bool TransitionWorkerToSearching();

  // A searching worker found work. Returns true if it was the last searcher:
  // it must then wake another worker, so that remaining work is not stranded.
  bool TransitionWorkerFromSearching();

  // Registers `worker` as parked. Returns true if it was the last searching
  // worker: it must then re-check all queues before sleeping.
  bool TransitionWorkerToParked(std::uint32_t worker, bool is_searching);

  // After a park returns: true if `worker` was taken off the sleeper list by
  // a notifier (it was woken on purpose and counts as searching); false if
  // the wake-up was spurious, in which case it is still registered as parked
  // and must park again or unregister with UnparkSpurious.
  bool IsNotified(std::uint32_t worker);

  // A parked worker that found work on its own (a timer fired, its inbox got
  // a task) leaves the sleeper list. Returns true if a notifier had already
  // taken it off the list, in which case it counts as searching; false if it
  // removed itself, counted as unparked and not searching.
  bool UnparkSelf(std::uint32_t worker);

  // Unparks every worker (shutdown). Returns the workers that were parked.
  std::vector<std::uint32_t> TakeAllSleepers();

  std::uint32_t NumSearching() const;
  std::uint32_t NumUnparked() const;

 private:
  static constexpr std::uint64_t kSearchMask = 0xffff;
  static constexpr std::uint64_t kUnparkShift = 16;
  static constexpr std::uint64_t kUnparkOne = std::uint64_t{1} << kUnparkShift;

  bool NotifyShouldWakeUp() const;

  const std::uint32_t num_workers_;
  std::atomic<std::uint64_t> state_;
  Mutex mu_;
  std::vector<std::uint32_t> sleepers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace awaitd::runtime::internal

#endif  // AWAITD_RUNTIME_INTERNAL_IDLE_H_
