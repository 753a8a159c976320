#include "server/kinds/job_kind.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace awaitd::server {

absl::Status JobKindRegistry::Register(JobKind kind) {
  if (kind.name.empty()) {
    return absl::InvalidArgumentError("job kind: name must not be empty");
  }
  if (!kind.bind) {
    return absl::InvalidArgumentError(
        absl::StrCat("job kind ", kind.name, ": bind must be set"));
  }
  std::string name = kind.name;
  auto [it, inserted] = kinds_.emplace(std::move(name), std::move(kind));
  if (!inserted) {
    return absl::AlreadyExistsError(
        absl::StrCat("job kind ", it->first, " is already registered"));
  }
  return absl::OkStatus();
}

const JobKind* JobKindRegistry::Find(std::string_view name) const {
  auto it = kinds_.find(name);
  return it == kinds_.end() ? nullptr : &it->second;
}

std::vector<const JobKind*> JobKindRegistry::List() const {
  std::vector<const JobKind*> out;
  out.reserve(kinds_.size());
  for (const auto& [name, kind] : kinds_) out.push_back(&kind);
  return out;
}

}  // namespace awaitd::server
