// The commands over single jobs and the daemon: submit, get, cancel, ls,
// watch, kinds, limits, limit, delete-limit, health.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/awaitctl/command.h"
#include "client/awaitctl/format.h"
#include "client/awaitctl/monitor.h"
#include "client/awaitctl/table.h"
#include "client/awaitctl/views.h"
#include "common/strings.h"

namespace awaitd::awaitctl {
namespace {

// The most jobs --count makes on the client side (the daemon has its own
// limit on a batch, which it names when refusing one).
constexpr long long kMaxCount = 100'000;

absl::Status NeedArgs(const Invocation& inv, std::string_view what) {
  if (!inv.args.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(StrCat(inv.command->name, " needs ", what));
}

absl::Status NoArgs(const Invocation& inv) {
  if (inv.args.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(StrCat(inv.command->name,
                                           " takes no arguments (got '",
                                           Printable(inv.args[0]), "')"));
}

// --- submit ------------------------------------------------------------------

class SubmitCommand final : public Command {
 public:
  absl::Status Parse(const Invocation& inv) override {
    if (absl::Status s = NeedArgs(inv, "a job spec: KIND [key=value...]");
        !s.ok()) {
      return s;
    }
    absl::StatusOr<std::vector<client::Spec>> specs =
        client::ParseSpecs(inv.args);
    if (!specs.ok()) return specs.status();
    absl::StatusOr<long long> count = inv.Integer("count", 1, 1, kMaxCount);
    if (!count.ok()) return count.status();
    absl::StatusOr<std::optional<absl::Duration>> timeout =
        inv.Duration("timeout");
    if (!timeout.ok()) return timeout.status();
    if (*timeout && **timeout == absl::ZeroDuration()) {
      return absl::InvalidArgumentError("--timeout: must be more than 0");
    }
    absl::StatusOr<std::optional<absl::Duration>> delay = inv.Duration("delay");
    if (!delay.ok()) return delay.status();
    const std::optional<std::string> key = inv.Value("idempotency-key");
    if (key && specs->size() * static_cast<std::size_t>(*count) > 1) {
      return absl::InvalidArgumentError(
          "--idempotency-key: gives one job a key, and this submits several "
          "(give each spec its own @idempotency_key=)");
    }
    const std::optional<std::string> name = inv.Value("name");
    const std::vector<std::string> limits = inv.Values("limit");
    for (const std::string& l : limits) {
      if (l.empty()) {
        return absl::InvalidArgumentError("--limit: needs a limit's name");
      }
    }
    const bool shield = inv.Has("shield");

    for (client::Spec& spec : *specs) {
      const v1::JobSpec& p = spec.proto();
      if (name && p.name().empty()) spec.Name(*name);
      if (*timeout && !p.has_timeout()) spec.Timeout(**timeout);
      if (*delay && p.start_case() == v1::JobSpec::START_NOT_SET) {
        spec.Delay(**delay);
      }
      for (const std::string& l : limits) {
        if (std::find(p.limits().begin(), p.limits().end(), l) ==
            p.limits().end()) {
          spec.Limit(l);
        }
      }
      if (shield) spec.Shield();
      if (key && p.idempotency_key().empty()) spec.IdempotencyKey(*key);
    }
    for (long long c = 0; c < *count; ++c) {
      specs_.insert(specs_.end(), specs->begin(), specs->end());
    }
    wait_ = inv.Has("wait");
    return absl::OkStatus();
  }

  int Run(Context& ctx) override {
    std::vector<client::Input> inputs(specs_.begin(), specs_.end());
    absl::StatusOr<std::vector<client::JobRef>> refs =
        Await<std::vector<client::JobRef>>(ctx, [&](auto done) {
          return ctx.client.SubmitAsync(specs_, std::move(done));
        });
    if (!refs.ok()) return Fail(ctx, WithSpec(refs.status(), inputs));
    if (wait_) return Wait(ctx, *refs);

    if (ctx.out.json()) {
      v1::SubmitResponse response;
      for (const client::JobRef& r : *refs) {
        v1::JobRef* j = response.add_jobs();
        j->set_id(r.id);
        j->set_name(r.name);
        j->set_existing(r.existing);
      }
      PrintJson(ctx, ToJson(response));
      return kExitOk;
    }
    std::string text;
    if (ctx.out.quiet()) {
      for (const client::JobRef& r : *refs) StrAppend(&text, r.id, "\n");
    } else if (refs->size() <= kMaxTableRows) {
      Table t({"ID", "NAME", ""});
      for (const client::JobRef& r : *refs) {
        t.AddRow({Table::Cell(StrCat(r.id)), Table::Cell(Printable(r.name)),
                  Table::Cell(r.existing ? "(existing)" : "", Color::kDim)});
      }
      text = t.Render(ctx.out);
    } else {
      std::vector<std::uint64_t> ids;
      std::size_t existing = 0;
      for (const client::JobRef& r : *refs) {
        ids.push_back(r.id);
        if (r.existing) ++existing;
      }
      text =
          StrCat("submitted ", Count(refs->size(), "job"), ": ", IdRanges(ids));
      if (existing > 0) StrAppend(&text, " (", existing, " existing)");
      text += "\n";
    }
    ctx.out.Print(text);
    return kExitOk;
  }

 private:
  // --wait: waits for every job, then prints them.
  int Wait(Context& ctx, const std::vector<client::JobRef>& refs) {
    std::vector<std::uint64_t> ids;
    for (const client::JobRef& r : refs) ids.push_back(r.id);
    ids = Unique(ids);
    Monitor monitor(ctx.client, ctx.out,
                    {.progress = true, .start = ctx.start, .label = "submit"});
    monitor.Follow(ids);
    std::vector<client::Input> inputs(ids.begin(), ids.end());
    absl::StatusOr<client::WaitResult> waited =
        Await<client::WaitResult>(ctx, [&](auto done) {
          return ctx.client.WaitAsync(inputs, {}, std::move(done));
        });
    monitor.Stop(/*settle=*/false);
    if (ctx.interrupts.interrupted()) return Interrupted(ctx, ids);
    if (!waited.ok()) return Fail(ctx, waited.status());
    absl::StatusOr<std::vector<v1::Job>> jobs = ctx.client.Get(ids);
    if (!jobs.ok()) return Fail(ctx, jobs.status());
    if (ctx.out.json()) {
      v1::GetResponse response;
      for (const v1::Job& j : *jobs) *response.add_jobs() = j;
      PrintJson(ctx, ToJson(response));
    } else {
      std::string text = JobTable(*jobs).Render(ctx.out);
      if (!ctx.out.quiet() && jobs->size() > 1) {
        StrAppend(&text, Count(jobs->size(), "job"), " done in ",
                  HumanDuration(absl::Now() - ctx.start), ": ",
                  StateCounts(*jobs), "\n");
      }
      ctx.out.Print(text);
    }
    const bool all_ok = std::all_of(
        jobs->begin(), jobs->end(),
        [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; });
    return all_ok ? kExitOk : kExitFailed;
  }

  std::vector<client::Spec> specs_;
  bool wait_ = false;
};

// --- get ---------------------------------------------------------------------

class GetCommand final : public Command {
 public:
  absl::Status Parse(const Invocation& inv) override {
    if (absl::Status s = NeedArgs(inv, "a job id"); !s.ok()) return s;
    absl::StatusOr<std::vector<std::uint64_t>> ids = ParseIds(inv.args);
    if (!ids.ok()) return ids.status();
    ids_ = *std::move(ids);
    return absl::OkStatus();
  }

  int Run(Context& ctx) override {
    absl::StatusOr<std::vector<v1::Job>> jobs = ctx.client.Get(ids_);
    if (!jobs.ok()) return Fail(ctx, jobs.status());
    if (ctx.out.json()) {
      v1::GetResponse response;
      for (const v1::Job& j : *jobs) *response.add_jobs() = j;
      PrintJson(ctx, ToJson(response));
    } else if (jobs->size() == 1) {
      ctx.out.Print(JobDetail(jobs->front(), ctx.out));
    } else {
      ctx.out.Print(JobTable(*jobs, /*all_rows=*/true).Render(ctx.out));
    }
    return kExitOk;
  }

 private:
  std::vector<std::uint64_t> ids_;
};

// --- cancel ------------------------------------------------------------------

class CancelCommand final : public Command {
 public:
  absl::Status Parse(const Invocation& inv) override {
    if (absl::Status s = NeedArgs(inv, "a job id"); !s.ok()) return s;
    absl::StatusOr<std::vector<std::uint64_t>> ids = ParseIds(inv.args);
    if (!ids.ok()) return ids.status();
    ids_ = *std::move(ids);
    message_ = inv.Value("message").value_or("");
    return absl::OkStatus();
  }

  int Run(Context& ctx) override {
    absl::StatusOr<std::vector<v1::CancelResult>> results =
        ctx.client.Cancel(ids_, message_);
    if (!results.ok()) return Fail(ctx, results.status());
    if (ctx.out.json()) {
      v1::CancelResponse response;
      for (const v1::CancelResult& r : *results) *response.add_results() = r;
      PrintJson(ctx, ToJson(response));
      return kExitOk;
    }
    Table t({"ID", "WHAT"});
    for (const v1::CancelResult& r : *results) {
      const std::string state = StateWord(r.state());
      std::string what;
      Color color = Color::kNone;
      if (r.cancelled()) {
        what = r.state() == v1::JOB_STATE_CANCELLED
                   ? "cancelled"
                   : StrCat("cancel requested (", state, ")");
        color = Color::kYellow;
      } else if (IsFinal(r.state())) {
        what = StrCat("not cancelled: already ", state);
      } else {
        what = StrCat("not cancelled (", state, ")");
      }
      t.AddRow({Table::Cell(StrCat(r.id())), Table::Cell(what, color)});
    }
    ctx.out.Print(t.Render(ctx.out));
    return kExitOk;
  }

 private:
  std::vector<std::uint64_t> ids_;
  std::string message_;
};

// --- ls ----------------------------------------------------------------------

class ListCommand final : public Command {
 public:
  absl::Status Parse(const Invocation& inv) override {
    if (absl::Status s = NoArgs(inv); !s.ok()) return s;
    if (std::optional<std::string> state = inv.Value("state")) {
      std::optional<v1::JobState> parsed = ParseState(*state);
      if (!parsed) {
        return absl::InvalidArgumentError(StrCat(
            "--state: unknown state '", Printable(*state),
            "' (one of pending, running, succeeded, failed, cancelled)"));
      }
      options_.state = *parsed;
    }
    options_.kind = inv.Value("kind").value_or("");
    options_.name_prefix = inv.Value("name-prefix").value_or("");
    all_ = inv.Has("all");
    if (all_ && inv.Has("limit")) {
      return absl::InvalidArgumentError(
          "--all and --limit exclude each other: give one");
    }
    absl::StatusOr<long long> limit =
        inv.Integer("limit", 100, 1, 1'000'000'000);
    if (!limit.ok()) return limit.status();
    limit_ = static_cast<std::size_t>(*limit);
    return absl::OkStatus();
  }

  int Run(Context& ctx) override {
    client::ListOptions options = options_;
    options.page_size =
        all_ ? 1000 : static_cast<int>(std::min<std::size_t>(limit_ + 1, 1000));
    absl::StatusOr<std::vector<v1::Job>> jobs =
        ctx.client.ListAll(options, all_ ? SIZE_MAX : limit_ + 1);
    if (!jobs.ok()) return Fail(ctx, jobs.status());
    const bool more = !all_ && jobs->size() > limit_;
    if (more) jobs->resize(limit_);
    if (ctx.out.json()) {
      v1::GetResponse response;
      for (const v1::Job& j : *jobs) *response.add_jobs() = j;
      PrintJson(ctx, ToJson(response));
    } else if (jobs->empty()) {
      if (!ctx.out.quiet()) ctx.out.Print("no jobs\n");
    } else {
      ctx.out.Print(JobTable(*jobs, /*all_rows=*/true).Render(ctx.out));
    }
    if (more && !ctx.out.quiet()) {
      ctx.out.PrintErr(StrCat("(the first ", limit_,
                              " jobs; more match: --limit N or --all)\n"));
    }
    return kExitOk;
  }

 private:
  client::ListOptions options_;
  std::size_t limit_ = 100;
  bool all_ = false;
};

// --- watch -------------------------------------------------------------------

class WatchCommand final : public Command {
 public:
  absl::Status Parse(const Invocation& inv) override {
    absl::StatusOr<std::vector<std::uint64_t>> ids = ParseIds(inv.args);
    if (!ids.ok()) return ids.status();
    ids_ = Unique(*ids);
    return absl::OkStatus();
  }

  int Run(Context& ctx) override {
    EventPrinter printer(EventPrinter::Clock::kTimestamp, ctx.start);
    if (!ids_.empty()) {
      // Unknown ids fail here, with the daemon's message; the names and
      // kinds line the columns up.
      absl::StatusOr<std::vector<v1::Job>> jobs = ctx.client.Get(ids_);
      if (!jobs.ok()) return Fail(ctx, jobs.status());
      for (const v1::Job& j : *jobs) printer.Learn(j.id(), j.name(), j.kind());
    }
    client::WatchReader reader = ctx.client.Watch(ids_);
    absl::Status status;
    {
      Interrupts::Scope scope =
          ctx.interrupts.OnInterrupt([&reader] { reader.Cancel(); });
      while (true) {
        absl::StatusOr<std::optional<v1::WatchResponse>> event = reader.Next();
        if (!event.ok()) {
          status = event.status();
          break;
        }
        if (!event->has_value()) break;
        const v1::WatchResponse& e = **event;
        if (ctx.out.json()) {
          PrintJson(ctx, ToJson(e));
          continue;
        }
        // Results only for the jobs asked about: watching everything may
        // see thousands of jobs a second.
        std::optional<google::protobuf::Value> result;
        if (!ids_.empty() && e.state() == v1::JOB_STATE_SUCCEEDED) {
          absl::StatusOr<v1::Job> job = ctx.client.Get(e.id());
          if (job.ok() && job->has_result()) result = job->result();
        }
        ctx.out.Print(printer.Format(e, absl::Now(),
                                     result ? &*result : nullptr, ctx.out));
      }
    }
    // Ctrl-C is how a watch of everything ends: no message.
    if (ctx.interrupts.interrupted()) return ctx.interrupts.exit_code();
    if (!status.ok()) return Fail(ctx, status);
    return kExitOk;
  }

 private:
  std::vector<std::uint64_t> ids_;
};

// --- kinds -------------------------------------------------------------------

class KindsCommand final : public Command {
 public:
  absl::Status Parse(const Invocation& inv) override { return NoArgs(inv); }

  int Run(Context& ctx) override {
    absl::StatusOr<std::vector<v1::Kind>> kinds = ctx.client.ListKinds();
    if (!kinds.ok()) return Fail(ctx, kinds.status());
    if (ctx.out.json()) {
      v1::ListKindsResponse response;
      for (const v1::Kind& k : *kinds) *response.add_kinds() = k;
      PrintJson(ctx, ToJson(response));
      return kExitOk;
    }
    // The description's first line in the row, the rest (its arguments)
    // under it.
    Table t({"KIND", "RUNS ON", "DESCRIPTION"});
    t.AddHeader();
    for (const v1::Kind& k : *kinds) {
      std::vector<std::string> lines =
          absl::StrSplit(k.description(), '\n', absl::SkipEmpty());
      if (lines.empty()) lines.emplace_back();
      t.AddRow({Table::Cell(Printable(k.name())),
                Table::Cell(k.blocking() ? "blocking pool" : "event loop"),
                Table::Cell(Printable(lines[0]))});
      for (std::size_t i = 1; i < lines.size(); ++i) {
        t.AddRow({"", "", Table::Cell(Printable(lines[i]), Color::kDim)});
      }
    }
    ctx.out.Print(t.Render(ctx.out));
    return kExitOk;
  }
};

// --- limits, limit -----------------------------------------------------------

Table LimitTable(const std::vector<v1::Limit>& limits) {
  Table t({"NAME", "PERMITS", "HOLDERS", "WAITERS"});
  t.AddHeader();
  for (const v1::Limit& l : limits) {
    t.AddRow(
        {Table::Cell(Printable(l.name())), Table::Cell(StrCat(l.permits())),
         Table::Cell(StrCat(l.holders())), Table::Cell(StrCat(l.waiters()))});
  }
  return t;
}

class LimitsCommand final : public Command {
 public:
  absl::Status Parse(const Invocation& inv) override { return NoArgs(inv); }

  int Run(Context& ctx) override {
    absl::StatusOr<std::vector<v1::Limit>> limits = ctx.client.ListLimits();
    if (!limits.ok()) return Fail(ctx, limits.status());
    if (ctx.out.json()) {
      v1::ListLimitsResponse response;
      for (const v1::Limit& l : *limits) *response.add_limits() = l;
      PrintJson(ctx, ToJson(response));
    } else if (limits->empty()) {
      if (!ctx.out.quiet()) {
        ctx.out.Print("no limits (declare one: awaitctl limit NAME PERMITS)\n");
      }
    } else {
      ctx.out.Print(LimitTable(*limits).Render(ctx.out));
    }
    return kExitOk;
  }
};

class LimitCommand final : public Command {
 public:
  absl::Status Parse(const Invocation& inv) override {
    if (inv.args.size() != 2) {
      return absl::InvalidArgumentError(
          StrCat("limit takes a NAME and a number of PERMITS (got ",
                 Count(inv.args.size(), "argument"), ")"));
    }
    name_ = inv.args[0];
    if (name_.empty()) {
      return absl::InvalidArgumentError("NAME: must not be empty");
    }
    absl::StatusOr<long long> permits =
        ParseInteger(inv.args[1], "PERMITS", 1, UINT32_MAX);
    if (!permits.ok()) return permits.status();
    permits_ = static_cast<std::uint32_t>(*permits);
    return absl::OkStatus();
  }

  int Run(Context& ctx) override {
    absl::StatusOr<v1::Limit> limit = ctx.client.DeclareLimit(name_, permits_);
    if (!limit.ok()) return Fail(ctx, limit.status());
    if (ctx.out.json()) {
      v1::DeclareLimitResponse response;
      *response.mutable_limit() = *limit;
      PrintJson(ctx, ToJson(response));
    } else if (!ctx.out.quiet()) {
      ctx.out.Print(StrCat("limit ", Printable(limit->name()), ": ",
                           Count(limit->permits(), "permit"), " (",
                           limit->holders(), " held, ", limit->waiters(),
                           " waiting)\n"));
    }
    return kExitOk;
  }

 private:
  std::string name_;
  std::uint32_t permits_ = 0;
};

class DeleteLimitCommand final : public Command {
 public:
  absl::Status Parse(const Invocation& inv) override {
    if (inv.args.size() != 1) {
      return absl::InvalidArgumentError(
          StrCat("delete-limit takes a NAME (got ",
                 Count(inv.args.size(), "argument"), ")"));
    }
    name_ = inv.args[0];
    if (name_.empty()) {
      return absl::InvalidArgumentError("NAME: must not be empty");
    }
    return absl::OkStatus();
  }

  int Run(Context& ctx) override {
    absl::Status s = ctx.client.DeleteLimit(name_);
    if (!s.ok()) return Fail(ctx, s);
    if (ctx.out.json()) {
      PrintJson(ctx, "{}");
    } else if (!ctx.out.quiet()) {
      ctx.out.Print(StrCat("limit ", Printable(name_), ": deleted\n"));
    }
    return kExitOk;
  }

 private:
  std::string name_;
};

// --- health ------------------------------------------------------------------

class HealthCommand final : public Command {
 public:
  absl::Status Parse(const Invocation& inv) override { return NoArgs(inv); }

  int Run(Context& ctx) override {
    absl::StatusOr<client::Health> health = ctx.client.CheckHealth();
    if (!health.ok()) return Fail(ctx, health.status());
    const char* word = *health == client::Health::kServing      ? "SERVING"
                       : *health == client::Health::kNotServing ? "NOT_SERVING"
                                                                : "UNKNOWN";
    if (ctx.out.json()) {
      PrintJson(ctx, StrCat("{\"status\":\"", word, "\"}"));
    } else {
      ctx.out.Print(
          StrCat(ctx.out.Paint(word, *health == client::Health::kServing
                                         ? Color::kGreen
                                         : Color::kRed),
                 "\n"));
    }
    return *health == client::Health::kServing ? kExitOk : kExitFailed;
  }
};

}  // namespace

std::unique_ptr<Command> NewSubmitCommand() {
  return std::make_unique<SubmitCommand>();
}
std::unique_ptr<Command> NewGetCommand() {
  return std::make_unique<GetCommand>();
}
std::unique_ptr<Command> NewCancelCommand() {
  return std::make_unique<CancelCommand>();
}
std::unique_ptr<Command> NewListCommand() {
  return std::make_unique<ListCommand>();
}
std::unique_ptr<Command> NewWatchCommand() {
  return std::make_unique<WatchCommand>();
}
std::unique_ptr<Command> NewKindsCommand() {
  return std::make_unique<KindsCommand>();
}
std::unique_ptr<Command> NewLimitsCommand() {
  return std::make_unique<LimitsCommand>();
}
std::unique_ptr<Command> NewDeleteLimitCommand() {
  return std::make_unique<DeleteLimitCommand>();
}
std::unique_ptr<Command> NewLimitCommand() {
  return std::make_unique<LimitCommand>();
}
std::unique_ptr<Command> NewHealthCommand() {
  return std::make_unique<HealthCommand>();
}

}  // namespace awaitd::awaitctl
