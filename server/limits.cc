#include "server/limits.h"

#include "absl/strings/ascii.h"
#include "server/strings.h"

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

absl::StatusOr<Limit*> LimitRegistry::Declare(std::string_view name,
                                              std::uint32_t permits) {
  if (!ValidName(name)) {
    return absl::InvalidArgumentError(StrCat(
        "name: must be 1..", kMaxNameLength,
        " characters of [A-Za-z0-9_.-] (got \"", CHexEscape(name), "\")"));
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
    return it->second.get();
  }
  auto limit = std::make_unique<Limit>(std::string(name), permits);
  Limit* raw = limit.get();
  limits_.emplace(std::string(name), std::move(limit));
  return raw;
}

absl::StatusOr<Limit*> LimitRegistry::DeclareFromFlag(std::string_view spec) {
  const std::size_t colon = spec.rfind(':');
  std::uint32_t permits = 0;
  if (colon == std::string_view::npos ||
      !SimpleAtoi(spec.substr(colon + 1), &permits)) {
    return absl::InvalidArgumentError(StrCat(
        "--limit=", spec, ": expected NAME:PERMITS, e.g. --limit=db:10"));
  }
  absl::StatusOr<Limit*> limit = Declare(spec.substr(0, colon), permits);
  if (!limit.ok()) {
    return absl::Status(
        limit.status().code(),
        StrCat("--limit=", spec, ": ", limit.status().message()));
  }
  return limit;
}

Limit* LimitRegistry::Find(std::string_view name) const {
  absl::MutexLock lock(&mu_);
  auto it = limits_.find(name);
  return it == limits_.end() ? nullptr : it->second.get();
}

std::vector<Limit*> LimitRegistry::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<Limit*> out;
  out.reserve(limits_.size());
  for (const auto& [name, limit] : limits_) out.push_back(limit.get());
  return out;
}

}  // namespace awaitd::server
