#include "server/jobs/limits.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "common/strings.h"

namespace awaitd::server {

namespace {

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > LimitRegistry::kMaxNameLength) {
    return false;
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' &&
        c != '.' && c != '-') {
      return false;
    }
  }
  return true;
}

}  // namespace

void LimitRegistry::set_max_limits(std::size_t max) {
  absl::MutexLock lock(&mu_);
  max_limits_ = std::max<std::size_t>(max, 1);
}

absl::StatusOr<std::shared_ptr<Limit>> LimitRegistry::Declare(
    std::string_view name, std::uint32_t permits, LimitOrigin origin) {
  return DeclareImpl(name, permits, origin, /*capped=*/true);
}

absl::StatusOr<std::shared_ptr<Limit>> LimitRegistry::Restore(
    std::string_view name, std::uint32_t permits) {
  return DeclareImpl(name, permits, LimitOrigin::kRpc, /*capped=*/false);
}

absl::StatusOr<std::shared_ptr<Limit>> LimitRegistry::DeclareImpl(
    std::string_view name, std::uint32_t permits, LimitOrigin origin,
    bool capped) {
  if (!ValidName(name)) {
    return absl::InvalidArgumentError(
        StrCat("name: must be 1..", kMaxNameLength,
               " characters of [A-Za-z0-9_.-] (got \"",
               CHexEscape(name.substr(0, kMaxNameLength)),
               name.size() > kMaxNameLength ? "...\", " : "\", ", name.size(),
               " characters)"));
  }
  if (permits < 1 || permits > kMaxPermits) {
    return absl::InvalidArgumentError(
        StrCat("permits: must be in 1..", kMaxPermits, " (got ", permits, ")"));
  }
  absl::MutexLock lock(&mu_);
  auto it = limits_.find(name);
  if (it != limits_.end()) {
    if (it->second->permits() != permits) {
      return absl::FailedPreconditionError(
          StrCat("limit ", name, " is already declared with ",
                 it->second->permits(), " permits (asked for ", permits, ")"));
    }
    return it->second;
  }
  if (capped && limits_.size() >= max_limits_) {
    return absl::ResourceExhaustedError(
        StrCat("name: ", limits_.size(),
               " limits are declared; a new one would exceed --max_limits=",
               max_limits_, " (delete unused ones with DeleteLimit)"));
  }
  auto limit = std::make_shared<Limit>(std::string(name), permits, origin);
  limits_.emplace(std::string(name), limit);
  return limit;
}

absl::StatusOr<std::shared_ptr<Limit>> LimitRegistry::DeclareFromFlag(
    std::string_view spec) {
  const std::size_t colon = spec.rfind(':');
  std::uint32_t permits = 0;
  if (colon == std::string_view::npos ||
      !SimpleAtoi(spec.substr(colon + 1), &permits)) {
    return absl::InvalidArgumentError(StrCat(
        "--limit=", spec, ": expected NAME:PERMITS, e.g. --limit=db:10"));
  }
  absl::StatusOr<std::shared_ptr<Limit>> limit =
      Declare(spec.substr(0, colon), permits, LimitOrigin::kFlag);
  if (!limit.ok()) {
    return absl::Status(
        limit.status().code(),
        StrCat("--limit=", spec, ": ", limit.status().message()));
  }
  return limit;
}

void LimitRegistry::Remove(const std::shared_ptr<Limit>& limit) {
  absl::MutexLock lock(&mu_);
  auto it = limits_.find(limit->name());
  if (it != limits_.end() && it->second == limit) limits_.erase(it);
  limit->removed_.store(true, std::memory_order_release);
}

std::shared_ptr<Limit> LimitRegistry::Find(std::string_view name) const {
  absl::MutexLock lock(&mu_);
  auto it = limits_.find(name);
  return it == limits_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Limit>> LimitRegistry::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Limit>> out;
  out.reserve(limits_.size());
  for (const auto& [name, limit] : limits_) out.push_back(limit);
  return out;
}

std::size_t LimitRegistry::size() const {
  absl::MutexLock lock(&mu_);
  return limits_.size();
}

}  // namespace awaitd::server
