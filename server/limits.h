// LimitRegistry: the named concurrency limits (server-side semaphores) that
// jobs hold while they run: the seeds' `Semaphore(10)` around HTTP fetches,
// shared by every job that names it.
//
//   LimitRegistry limits;
//   limits.Declare("db", 10);             // --limit=db:10, or DeclareLimit
//   Limit* db = limits.Find("db");        // a job spec's `limits: ["db"]`
//   runtime::PermitGuard p = co_await db->semaphore().Hold();   // FIFO
//
// Limits are never removed, so a Limit* stays valid for the registry's
// lifetime (a job keeps pointers to the limits it names).
//
// Thread safety: safe for concurrent use.
#ifndef AWAITD_SERVER_LIMITS_H_
#define AWAITD_SERVER_LIMITS_H_

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

class Limit {
 public:
  Limit(std::string name, std::uint32_t permits)
      : name_(std::move(name)), permits_(permits), semaphore_(permits) {}

  const std::string& name() const noexcept { return name_; }
  std::uint32_t permits() const noexcept { return permits_; }
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
  runtime::BoundedSemaphore semaphore_;
};

class LimitRegistry {
 public:
  static constexpr std::size_t kMaxNameLength = 128;
  static constexpr std::uint32_t kMaxPermits = 1'000'000;

  LimitRegistry() = default;
  LimitRegistry(const LimitRegistry&) = delete;
  LimitRegistry& operator=(const LimitRegistry&) = delete;

  // Creates the limit, or returns the existing one if it has the same size.
  // INVALID_ARGUMENT for a bad name ([A-Za-z0-9_.-], 1..128 characters) or
  // permits outside 1..1e6; FAILED_PRECONDITION if the name exists with
  // another size.
  absl::StatusOr<Limit*> Declare(std::string_view name, std::uint32_t permits)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Parses "name:permits" (the --limit flag) and declares it.
  absl::StatusOr<Limit*> DeclareFromFlag(std::string_view spec)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Null if not declared.
  Limit* Find(std::string_view name) const ABSL_LOCKS_EXCLUDED(mu_);

  // Every limit, by name.
  std::vector<Limit*> List() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Limit>, std::less<>> limits_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace awaitd::server

#endif  // AWAITD_SERVER_LIMITS_H_
