// What the commands share: exit codes, error reports, inputs.
#include "client/awaitctl/command.h"

#include <algorithm>
#include <charconv>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/awaitctl/format.h"
#include "common/strings.h"

namespace awaitd::awaitctl {
namespace {

// The i of a message starting "jobs[i]", if any.
std::optional<std::size_t> JobIndex(std::string_view message) {
  if (!message.starts_with("jobs[")) return std::nullopt;
  message.remove_prefix(5);
  std::size_t i = 0;
  auto [ptr, ec] =
      std::from_chars(message.data(), message.data() + message.size(), i);
  if (ec != std::errc() || ptr == message.data() ||
      ptr == message.data() + message.size() || *ptr != ']') {
    return std::nullopt;
  }
  return i;
}

}  // namespace

std::unique_ptr<Command> NewCommand(std::string_view name) {
  struct Entry {
    std::string_view name;
    std::unique_ptr<Command> (*make)();
  };
  static constexpr Entry kEntries[] = {
      {"submit", NewSubmitCommand},
      {"get", NewGetCommand},
      {"cancel", NewCancelCommand},
      {"ls", NewListCommand},
      {"watch", NewWatchCommand},
      {"wait", NewWaitCommand},
      {"gather", NewGatherCommand},
      {"wait-for", NewWaitForCommand},
      {"as-completed", NewAsCompletedCommand},
      {"group", NewGroupCommand},
      {"kinds", NewKindsCommand},
      {"limits", NewLimitsCommand},
      {"limit", NewLimitCommand},
      {"delete-limit", NewDeleteLimitCommand},
      {"health", NewHealthCommand},
  };
  for (const Entry& e : kEntries) {
    if (e.name == name) return e.make();
  }
  return nullptr;
}

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
      return kExitUsage;
    case absl::StatusCode::kUnavailable:
      return kExitUnreachable;
    case absl::StatusCode::kDeadlineExceeded:
      return kExitTimeout;
    default:
      return kExitFailed;
  }
}

absl::Status WithSpec(const absl::Status& status,
                      std::span<const client::Input> inputs) {
  if (!absl::IsInvalidArgument(status)) return status;
  const std::string_view message(status.message().data(),
                                 status.message().size());
  const std::optional<std::size_t> i = JobIndex(message);
  if (!i || *i >= inputs.size() || !inputs[*i].proto().has_spec()) {
    return status;
  }
  return absl::InvalidArgumentError(
      StrCat(message, " (job spec ", *i + 1, ": ",
             client::FormatSpec(inputs[*i].proto().spec()), ")"));
}

int Fail(Context& ctx, const absl::Status& status) {
  if (ctx.interrupts.interrupted()) return Interrupted(ctx, {});
  std::string message = Printable(
      std::string_view(status.message().data(), status.message().size()));
  if (message.empty()) message = status.ToString();
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      if (message.find(".args.") != std::string::npos ||
          message.find("kind") != std::string::npos) {
        StrAppend(&message,
                  "\n(run 'awaitctl kinds' for the kinds and their "
                  "arguments)");
      }
      break;
    case absl::StatusCode::kDeadlineExceeded:
      if (!client::ErrorDetailsOf(status).has_value()) {
        message = StrCat(
            "the call's deadline passed",
            ctx.deadline
                ? StrCat(" (--deadline ", HumanDuration(*ctx.deadline), ")")
                : "",
            "; the jobs were not cancelled (", message, ")");
      }
      break;
    default:
      break;
  }
  ctx.out.Error(message);
  return ExitCodeFor(status);
}

int Interrupted(Context& ctx, std::span<const std::uint64_t> ids) {
  std::string message =
      "interrupted: the call was cancelled; the jobs keep running";
  if (!ids.empty()) {
    std::vector<std::uint64_t> shown(
        ids.begin(), ids.begin() + std::min<std::size_t>(ids.size(), 10));
    StrAppend(&message, " (to cancel them: awaitctl cancel ",
              absl::StrJoin(shown, " "),
              ids.size() > shown.size() ? " ..." : "", ")");
  }
  ctx.out.Error(message);
  return ctx.interrupts.exit_code();
}

absl::StatusOr<std::vector<std::uint64_t>> ParseIds(
    std::span<const std::string> words) {
  std::vector<std::uint64_t> ids;
  for (const std::string& w : words) {
    absl::StatusOr<std::uint64_t> id = ParseJobId(w);
    if (!id.ok()) return id.status();
    ids.push_back(*id);
  }
  return ids;
}

absl::StatusOr<std::vector<client::Input>> ParseInputWords(
    std::span<const std::string> words, long long count) {
  absl::StatusOr<std::vector<client::Input>> one = client::ParseInputs(words);
  if (!one.ok()) return one.status();
  std::vector<client::Input> inputs;
  inputs.reserve(one->size() * static_cast<std::size_t>(count));
  for (long long c = 0; c < count; ++c) {
    inputs.insert(inputs.end(), one->begin(), one->end());
  }
  return inputs;
}

absl::StatusOr<std::vector<std::uint64_t>> SubmitSpecs(
    Context& ctx, const std::vector<client::Input>& inputs) {
  std::vector<client::Spec> specs;
  std::vector<client::Input> spec_inputs;
  for (const client::Input& in : inputs) {
    if (in.proto().has_spec()) {
      specs.emplace_back(in.proto().spec());
      spec_inputs.push_back(in);
    }
  }
  std::vector<client::JobRef> refs;
  if (!specs.empty()) {
    absl::StatusOr<std::vector<client::JobRef>> submitted =
        Await<std::vector<client::JobRef>>(ctx, [&](auto done) {
          return ctx.client.SubmitAsync(std::move(specs), std::move(done));
        });
    if (!submitted.ok()) return WithSpec(submitted.status(), spec_inputs);
    refs = *std::move(submitted);
  }
  std::vector<std::uint64_t> ids;
  std::size_t next = 0;
  for (const client::Input& in : inputs) {
    if (in.proto().has_spec()) {
      if (next >= refs.size()) {
        return absl::InternalError("the daemon accepted fewer jobs than sent");
      }
      ids.push_back(refs[next++].id);
    } else {
      ids.push_back(in.proto().id());
    }
  }
  return ids;
}

std::vector<std::uint64_t> Unique(std::span<const std::uint64_t> ids) {
  std::vector<std::uint64_t> out;
  std::set<std::uint64_t> seen;
  for (std::uint64_t id : ids) {
    if (seen.insert(id).second) out.push_back(id);
  }
  return out;
}

void PrintJson(Context& ctx, std::string_view text) {
  ctx.out.Print(StrCat(text, "\n"));
}

}  // namespace awaitd::awaitctl
