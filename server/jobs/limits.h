// LimitRegistry: the named concurrency limits (server-side semaphores) that
// jobs hold while they run: the seeds' `Semaphore(10)` around HTTP fetches,
// shared by every job that names it.
//
//   LimitRegistry limits;
//   limits.Declare("db", 10);             // --limit=db:10, or DeclareLimit
//   std::shared_ptr<Limit> db = limits.Find("db");   // `limits: ["db"]`
//   runtime::PermitGuard p = co_await db->semaphore().Hold();   // FIFO
//
// A limit can be removed (the DeleteLimit RPC, through JobManager, which
// first makes sure no job that is not done names it): Remove only takes the
// name out of the registry and marks the Limit removed. The Limit itself
// lives on while anything holds it (a finished job keeps the limits it
// named, for Get), so a shared_ptr from Find or List never dangles.
//
// At most `max_limits` limits are declared at once (--max_limits), counting
// those from flags; Restore (recovery of stored declarations) ignores the
// cap, so that lowering the flag never strands a stored job.
//
// Thread safety: safe for concurrent use.
#ifndef AWAITD_SERVER_JOBS_LIMITS_H_
#define AWAITD_SERVER_JOBS_LIMITS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "runtime/semaphore.h"

namespace awaitd::server {

// Who declared a limit: a --limit flag at start-up (declared again at every
// start, never stored, not removable by RPC), or the DeclareLimit RPC (stored
// when the daemon is durable, removable).
enum class LimitOrigin : std::uint8_t { kFlag, kRpc };

class Limit {
 public:
  Limit(std::string name, std::uint32_t permits,
        LimitOrigin origin = LimitOrigin::kRpc)
      : name_(std::move(name)),
        permits_(permits),
        origin_(origin),
        semaphore_(permits) {}

  const std::string& name() const noexcept { return name_; }
  std::uint32_t permits() const noexcept { return permits_; }
  LimitOrigin origin() const noexcept { return origin_; }
  // Taken out of its registry (LimitRegistry::Remove); a job being
  // submitted with it must be refused as if it named an unknown limit.
  bool removed() const noexcept {
    return removed_.load(std::memory_order_acquire);
  }
  // A BoundedSemaphore: a double release is a bug, and raises.
  runtime::BoundedSemaphore& semaphore() noexcept { return semaphore_; }
  // Jobs holding a permit, and jobs waiting for one (FIFO).
  std::uint32_t holders() const {
    return permits_ - static_cast<std::uint32_t>(semaphore_.Value());
  }
  std::uint32_t waiters() const {
    return static_cast<std::uint32_t>(semaphore_.Waiting());
  }

 private:
  const std::string name_;
  const std::uint32_t permits_;
  const LimitOrigin origin_;
  std::atomic<bool> removed_{false};
  runtime::BoundedSemaphore semaphore_;
  friend class LimitRegistry;
};

class LimitRegistry {
 public:
  static constexpr std::size_t kMaxNameLength = 128;
  static constexpr std::uint32_t kMaxPermits = 1'000'000;
  static constexpr std::size_t kDefaultMaxLimits = 10'000;

  LimitRegistry() = default;
  LimitRegistry(const LimitRegistry&) = delete;
  LimitRegistry& operator=(const LimitRegistry&) = delete;

  // The most limits declared at once (--max_limits; at least 1). Set before
  // the flags' limits are declared.
  void set_max_limits(std::size_t max) ABSL_LOCKS_EXCLUDED(mu_);

  // Creates the limit, or returns the existing one if it has the same size
  // (whatever its origin). INVALID_ARGUMENT for a bad name ([A-Za-z0-9_.-],
  // 1..128 characters) or permits outside 1..1e6; FAILED_PRECONDITION if the
  // name exists with another size; RESOURCE_EXHAUSTED naming --max_limits
  // for a new name once max_limits are declared.
  absl::StatusOr<std::shared_ptr<Limit>> Declare(
      std::string_view name, std::uint32_t permits,
      LimitOrigin origin = LimitOrigin::kRpc) ABSL_LOCKS_EXCLUDED(mu_);

  // Parses "name:permits" (the --limit flag) and declares it (kFlag).
  absl::StatusOr<std::shared_ptr<Limit>> DeclareFromFlag(std::string_view spec)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Recovery: declares a stored declaration (kRpc) past the cap. If the name
  // is declared already (by a flag) with another size, the declared one is
  // kept and FAILED_PRECONDITION says so.
  absl::StatusOr<std::shared_ptr<Limit>> Restore(std::string_view name,
                                                 std::uint32_t permits)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Takes `limit` out of the registry (if it is still the one declared
  // under its name) and marks it removed. Checking that nothing uses it is
  // the caller's business (JobManager::DeleteLimit).
  void Remove(const std::shared_ptr<Limit>& limit) ABSL_LOCKS_EXCLUDED(mu_);

  // Null if not declared.
  std::shared_ptr<Limit> Find(std::string_view name) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Every limit, by name.
  std::vector<std::shared_ptr<Limit>> List() const ABSL_LOCKS_EXCLUDED(mu_);

  std::size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::StatusOr<std::shared_ptr<Limit>> DeclareImpl(std::string_view name,
                                                     std::uint32_t permits,
                                                     LimitOrigin origin,
                                                     bool capped)
      ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  std::size_t max_limits_ ABSL_GUARDED_BY(mu_) = kDefaultMaxLimits;
  std::map<std::string, std::shared_ptr<Limit>, std::less<>> limits_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace awaitd::server

#endif  // AWAITD_SERVER_JOBS_LIMITS_H_
