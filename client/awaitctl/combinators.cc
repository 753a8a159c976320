// The asyncio combinators: wait, gather, wait-for, as-completed, group.
//
// Each follows its jobs with a Monitor (progress on a terminal, --events),
// runs its call through Await so Ctrl-C cancels the call (never the jobs),
// and on a job's failure still prints what the jobs look like now: the same
// document as on success (--json) or the same table, so scripts parse one
// shape and the exit code tells the outcome.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/awaitctl/command.h"
#include "client/awaitctl/format.h"
#include "client/awaitctl/monitor.h"
#include "client/awaitctl/table.h"
#include "client/awaitctl/views.h"
#include "common/strings.h"

namespace awaitd::awaitctl {
namespace {

constexpr long long kMaxCount = 100'000;

// Is `status` a job's own outcome (ABORTED, CANCELLED or a wait_for
// timeout, with ErrorDetails), rather than a failed call?
bool IsJobOutcome(const absl::Status& status) {
  return (absl::IsAborted(status) || absl::IsCancelled(status) ||
          absl::IsDeadlineExceeded(status)) &&
         client::ErrorDetailsOf(status).has_value();
}

std::string StatusText(const absl::Status& status) {
  return Printable(
      std::string_view(status.message().data(), status.message().size()));
}

bool AllSucceeded(const std::vector<v1::Job>& jobs) {
  return std::all_of(jobs.begin(), jobs.end(), [](const v1::Job& j) {
    return j.state() == v1::JOB_STATE_SUCCEEDED;
  });
}

// The inputs of a combinator from its words; `what` for the message when
// there are none.
absl::StatusOr<std::vector<client::Input>> ReadInputs(const Invocation& inv,
                                                      bool with_count) {
  if (inv.args.empty()) {
    return absl::InvalidArgumentError(StrCat(
        inv.command->name, " needs jobs: ids, or specs (KIND [key=value...])"));
  }
  long long count = 1;
  if (with_count) {
    absl::StatusOr<long long> c = inv.Integer("count", 1, 1, kMaxCount);
    if (!c.ok()) return c.status();
    count = *c;
  }
  return ParseInputWords(inv.args, count);
}

// A group's children as they are now, in input order; empty if the group
// cannot be read.
std::vector<v1::Job> Children(Context& ctx, std::uint64_t group_id) {
  if (group_id == 0) return {};
  absl::StatusOr<v1::Job> group = ctx.client.Get(group_id);
  if (!group.ok()) return {};
  std::vector<std::uint64_t> ids(group->children().begin(),
                                 group->children().end());
  absl::StatusOr<std::vector<v1::Job>> jobs = ctx.client.Get(ids);
  if (!jobs.ok()) return {};
  return *std::move(jobs);
}

// The group id the daemon sends at once (on_group), kept past the call.
struct GroupId {
  std::shared_ptr<std::atomic<std::uint64_t>> id =
      std::make_shared<std::atomic<std::uint64_t>>(0);

  std::function<void(std::uint64_t)> Sink(Monitor& monitor) const {
    return [id = id, follow = monitor.GroupSink()](std::uint64_t group) {
      id->store(group);
      follow(group);
    };
  }
  std::uint64_t get() const { return id->load(); }
};

std::vector<std::uint64_t> IdsIfKnown(std::uint64_t id) {
  if (id == 0) return {};
  return {id};
}

// --- wait --------------------------------------------------------------------

class WaitCommand final : public Command {
 public:
  absl::Status Parse(const Invocation& inv) override {
    absl::StatusOr<std::vector<client::Input>> inputs =
        ReadInputs(inv, /*with_count=*/false);
    if (!inputs.ok()) return inputs.status();
    inputs_ = *std::move(inputs);
    if (inv.Has("first-completed") && inv.Has("first-exception")) {
      return absl::InvalidArgumentError(
          "--first-completed and --first-exception exclude each other");
    }
    if (inv.Has("first-completed")) {
      options_.return_when = client::ReturnWhen::kFirstCompleted;
    }
    if (inv.Has("first-exception")) {
      options_.return_when = client::ReturnWhen::kFirstException;
    }
    absl::StatusOr<std::optional<absl::Duration>> timeout =
        inv.Duration("timeout");
    if (!timeout.ok()) return timeout.status();
    options_.timeout = *timeout;
    events_ = inv.Has("events");
    return absl::OkStatus();
  }

  int Run(Context& ctx) override {
    Monitor monitor(ctx.client, ctx.out,
                    {.progress = true,
                     .events = events_,
                     .start = ctx.start,
                     .label = "wait"});
    monitor.SetTotal(inputs_.size());
    absl::StatusOr<std::vector<std::uint64_t>> ids = SubmitSpecs(ctx, inputs_);
    if (!ids.ok()) return Fail(ctx, ids.status());
    const std::vector<std::uint64_t> unique = Unique(*ids);
    monitor.Follow(unique);
    std::vector<client::Input> inputs(ids->begin(), ids->end());
    absl::StatusOr<client::WaitResult> result =
        Await<client::WaitResult>(ctx, [&](auto done) {
          return ctx.client.WaitAsync(inputs, options_, std::move(done));
        });
    monitor.Stop(/*settle=*/result.ok() && !ctx.interrupts.interrupted());
    if (ctx.interrupts.interrupted()) return Interrupted(ctx, unique);
    if (!result.ok()) return Fail(ctx, result.status());
    const absl::Duration took = absl::Now() - ctx.start;

    std::vector<std::uint64_t> all = result->done;
    all.insert(all.end(), result->pending.begin(), result->pending.end());
    absl::StatusOr<std::vector<v1::Job>> jobs = ctx.client.Get(all);
    if (!jobs.ok()) return Fail(ctx, jobs.status());
    const std::span<const v1::Job> done(jobs->data(), result->done.size());
    const std::span<const v1::Job> pending(jobs->data() + result->done.size(),
                                           result->pending.size());

    if (ctx.out.json()) {
      auto list = [](std::span<const v1::Job> js) {
        std::vector<std::string> parts;
        for (const v1::Job& j : js) parts.push_back(ToJson(j));
        return StrCat("[", absl::StrJoin(parts, ","), "]");
      };
      PrintJson(ctx, StrCat("{\"done\":", list(done),
                            ",\"pending\":", list(pending), "}"));
      return kExitOk;
    }
    Table t(JobHeaders());
    t.AddLine(StrCat("done (", done.size(), ")"), Color::kBold);
    if (!done.empty()) {
      t.AddHeader();
      AddJobRows(t, done);
    }
    t.AddLine(StrCat("pending (", pending.size(), ")"), Color::kBold);
    if (!pending.empty()) {
      t.AddHeader();
      AddJobRows(t, pending);
    }
    std::string text = t.Render(ctx.out);
    if (!ctx.out.quiet()) {
      StrAppend(&text, "waited ", HumanDuration(took), ": ", done.size(),
                " done, ", pending.size(), " pending\n");
    }
    ctx.out.Print(text);
    return kExitOk;
  }

 private:
  std::vector<client::Input> inputs_;
  client::WaitOptions options_;
  bool events_ = false;
};

// --- gather ------------------------------------------------------------------

class GatherCommand final : public Command {
 public:
  absl::Status Parse(const Invocation& inv) override {
    absl::StatusOr<std::vector<client::Input>> inputs =
        ReadInputs(inv, /*with_count=*/true);
    if (!inputs.ok()) return inputs.status();
    inputs_ = *std::move(inputs);
    return_exceptions_ = inv.Has("return-exceptions");
    name_ = inv.Value("name").value_or("");
    events_ = inv.Has("events");
    return absl::OkStatus();
  }

  int Run(Context& ctx) override {
    Monitor monitor(ctx.client, ctx.out,
                    {.progress = true,
                     .events = events_,
                     .start = ctx.start,
                     .label = "gather"});
    monitor.SetTotal(inputs_.size());
    GroupId group;
    client::GatherOptions options;
    options.return_exceptions = return_exceptions_;
    options.name = name_;
    options.on_group = group.Sink(monitor);
    absl::StatusOr<client::GatherResult> result =
        Await<client::GatherResult>(ctx, [&](auto done) {
          return ctx.client.GatherAsync(inputs_, options, std::move(done));
        });
    monitor.Stop(/*settle=*/!ctx.interrupts.interrupted());
    if (ctx.interrupts.interrupted()) {
      return Interrupted(ctx, IdsIfKnown(group.get()));
    }
    if (!result.ok() && !IsJobOutcome(result.status())) {
      return Fail(ctx, WithSpec(result.status(), inputs_));
    }
    const absl::Duration took = absl::Now() - ctx.start;
    const std::uint64_t group_id = result.ok() ? result->group_id : group.get();
    // On a failure: the jobs as they are now (the others keep running).
    std::vector<v1::Job> jobs =
        result.ok() ? result->results : Children(ctx, group_id);

    if (ctx.out.json()) {
      v1::GatherResponse response;
      response.set_group_id(group_id);
      for (const v1::Job& j : jobs) *response.add_results() = j;
      PrintJson(ctx, ToJson(response));
    } else {
      std::string text = jobs.empty() ? "" : JobTable(jobs).Render(ctx.out);
      if (result.ok() && !ctx.out.quiet()) {
        StrAppend(&text, "gathered ", Count(jobs.size(), "job"), " in ",
                  HumanDuration(took), " (group ", group_id, ")");
        if (!AllSucceeded(jobs)) StrAppend(&text, ": ", StateCounts(jobs));
        text += "\n";
      }
      ctx.out.Print(text);
    }
    if (result.ok()) return kExitOk;
    const std::size_t running = static_cast<std::size_t>(
        std::count_if(jobs.begin(), jobs.end(),
                      [](const v1::Job& j) { return !IsFinal(j.state()); }));
    std::string message = StatusText(result.status());
    if (running > 0) {
      StrAppend(&message, "; gather stopped at the first failure, the ",
                Count(running, "other job"), " keep", running == 1 ? "s" : "",
                " running (group ", group_id, ")");
    }
    ctx.out.Error(message);
    return kExitFailed;
  }

 private:
  std::vector<client::Input> inputs_;
  bool return_exceptions_ = false;
  std::string name_;
  bool events_ = false;
};

// --- wait-for ----------------------------------------------------------------

class WaitForCommand final : public Command {
 public:
  absl::Status Parse(const Invocation& inv) override {
    absl::StatusOr<std::vector<client::Input>> inputs =
        ReadInputs(inv, /*with_count=*/false);
    if (!inputs.ok()) return inputs.status();
    if (inputs->size() != 1) {
      return absl::InvalidArgumentError(
          StrCat("wait-for waits for one job (got ", inputs->size(),
                 "); for several use wait, gather or as-completed"));
    }
    input_ = inputs->front();
    absl::StatusOr<std::optional<absl::Duration>> timeout =
        inv.Duration("timeout");
    if (!timeout.ok()) return timeout.status();
    timeout_ = *timeout;
    return absl::OkStatus();
  }

  int Run(Context& ctx) override {
    Monitor monitor(
        ctx.client, ctx.out,
        {.progress = true, .start = ctx.start, .label = "wait-for"});
    monitor.SetTotal(1);
    const std::uint64_t given_id =
        input_.proto().has_spec() ? 0 : input_.proto().id();
    if (given_id != 0) monitor.Follow({given_id});
    absl::StatusOr<v1::Job> result = Await<v1::Job>(ctx, [&](auto done) {
      return ctx.client.WaitForAsync(input_, timeout_, std::move(done));
    });
    monitor.Stop(/*settle=*/false);
    if (ctx.interrupts.interrupted()) {
      return Interrupted(ctx, IdsIfKnown(given_id));
    }
    if (!result.ok() && !IsJobOutcome(result.status())) {
      std::vector<client::Input> inputs = {input_};
      return Fail(ctx, WithSpec(result.status(), inputs));
    }
    std::optional<v1::Job> job;
    if (result.ok()) {
      job = *result;
    } else {
      const v1::ErrorDetails details = *client::ErrorDetailsOf(result.status());
      absl::StatusOr<v1::Job> now = ctx.client.Get(details.job_id());
      if (now.ok()) job = *now;
    }
    if (ctx.out.json()) {
      v1::WaitForResponse response;
      if (job) *response.mutable_job() = *job;
      PrintJson(ctx, ToJson(response));
    } else if (job) {
      std::vector<v1::Job> one = {*job};
      ctx.out.Print(JobTable(one).Render(ctx.out));
    }
    if (result.ok()) return kExitOk;
    if (!absl::IsDeadlineExceeded(result.status())) {
      ctx.out.Error(StatusText(result.status()));
      return kExitFailed;
    }
    // wait_for's timeout: the job was cancelled, unless shielded.
    std::string message = StrCat("timed out after ", HumanDuration(*timeout_));
    if (job) {
      const std::string who =
          StrCat("job ", job->id(), " (", Printable(job->name()), ")");
      if (job->state() == v1::JOB_STATE_CANCELLED) {
        StrAppend(&message, "; ", who, " was cancelled");
      } else if (job->shield()) {
        StrAppend(&message, "; ", who, " is shielded and keeps running");
      } else {
        StrAppend(&message, "; ", who, " is ", StateWord(job->state()));
      }
    }
    ctx.out.Error(message);
    return kExitTimeout;
  }

 private:
  client::Input input_{std::uint64_t{0}};
  std::optional<absl::Duration> timeout_;
};

// --- as-completed ------------------------------------------------------------

class AsCompletedCommand final : public Command {
 public:
  absl::Status Parse(const Invocation& inv) override {
    absl::StatusOr<std::vector<client::Input>> inputs =
        ReadInputs(inv, /*with_count=*/false);
    if (!inputs.ok()) return inputs.status();
    inputs_ = *std::move(inputs);
    absl::StatusOr<std::optional<absl::Duration>> timeout =
        inv.Duration("timeout");
    if (!timeout.ok()) return timeout.status();
    timeout_ = *timeout;
    events_ = inv.Has("events");
    return absl::OkStatus();
  }

  int Run(Context& ctx) override {
    absl::StatusOr<std::vector<std::uint64_t>> ids = SubmitSpecs(ctx, inputs_);
    if (!ids.ok()) return Fail(ctx, ids.status());
    const std::vector<std::uint64_t> unique = Unique(*ids);
    // Names and kinds first, so the rows line up as they stream in.
    absl::StatusOr<std::vector<v1::Job>> known = ctx.client.Get(unique);
    if (!known.ok()) return Fail(ctx, known.status());
    Widths widths;
    for (const v1::Job& j : *known) widths.Learn(j);

    Monitor monitor(ctx.client, ctx.out,
                    {.progress = true,
                     .events = events_,
                     .start = ctx.start,
                     .label = "as-completed"});
    monitor.Follow(unique);
    std::vector<client::Input> inputs(ids->begin(), ids->end());
    client::AsCompletedReader reader = ctx.client.AsCompleted(inputs, timeout_);

    if (ctx.out.json()) {
      std::vector<std::string> quoted;
      for (std::uint64_t id : *ids) quoted.push_back(StrCat("\"", id, "\""));
      PrintJson(ctx, StrCat("{\"ids\":[", absl::StrJoin(quoted, ","), "]}"));
    } else {
      ctx.out.Print(widths.Row(JobHeaders(), Color::kBold, Color::kBold,
                               ctx.out, /*bold=*/true));
    }
    std::vector<v1::Job> completed;
    absl::Status status;
    {
      Interrupts::Scope scope =
          ctx.interrupts.OnInterrupt([&reader] { reader.Cancel(); });
      while (true) {
        absl::StatusOr<std::optional<client::Completed>> next = reader.Next();
        if (!next.ok()) {
          status = next.status();
          break;
        }
        if (!next->has_value()) break;
        const client::Completed& c = **next;
        completed.push_back(c.job);
        if (ctx.out.json()) {
          PrintJson(ctx, StrCat("{\"index\":", c.index,
                                ",\"job\":", ToJson(c.job), "}"));
          continue;
        }
        const v1::Job& j = c.job;
        const std::optional<absl::Duration> took = RunTime(j);
        const bool error = j.state() != v1::JOB_STATE_SUCCEEDED;
        ctx.out.Print(widths.Row(
            {StrCat(j.id()), Printable(j.name()), Printable(j.kind()),
             StateWord(j.state()), took ? HumanDuration(*took) : "-",
             Ellipsize(Printable(Outcome(j)), 60)},
            StateColor(j.state()), error ? StateColor(j.state()) : Color::kNone,
            ctx.out));
      }
    }
    monitor.Stop(/*settle=*/status.ok() && !ctx.interrupts.interrupted());
    if (ctx.interrupts.interrupted()) return Interrupted(ctx, unique);
    if (absl::IsDeadlineExceeded(status) && timeout_) {
      std::vector<std::uint64_t> left;
      for (std::uint64_t id : unique) {
        if (std::none_of(completed.begin(), completed.end(),
                         [&](const v1::Job& j) { return j.id() == id; })) {
          left.push_back(id);
        }
      }
      ctx.out.Error(
          StrCat("timed out after ", HumanDuration(*timeout_), ": ",
                 completed.size(), " of ", unique.size(),
                 " completed; not cancelled, still running: ", IdRanges(left)));
      return kExitTimeout;
    }
    if (!status.ok()) return Fail(ctx, status);
    if (!ctx.out.json() && !ctx.out.quiet()) {
      std::string text =
          StrCat(Count(completed.size(), "job"), " completed in ",
                 HumanDuration(absl::Now() - ctx.start));
      if (!AllSucceeded(completed))
        StrAppend(&text, ": ", StateCounts(completed));
      ctx.out.Print(text + "\n");
    }
    return AllSucceeded(completed) ? kExitOk : kExitFailed;
  }

 private:
  // Column widths known before the rows arrive (ids, names and kinds of
  // every job; states and durations have a bounded width).
  struct Widths {
    std::size_t id = 2, name = 4, kind = 4;
    void Learn(const v1::Job& j) {
      id = std::max(id, StrCat(j.id()).size());
      name = std::max(name, DisplayWidth(Printable(j.name())));
      kind = std::max(kind, DisplayWidth(Printable(j.kind())));
    }
    // One row, or the header (`bold`), ended by a newline.
    std::string Row(std::vector<std::string> cells, Color state_color,
                    Color outcome_color, const Output& out,
                    bool bold = false) const {
      const std::size_t widths[] = {id, name, kind, 9, 7};
      std::string line;
      for (std::size_t i = 0; i < 5; ++i) {
        const Color c =
            bold ? Color::kBold : (i == 3 ? state_color : Color::kNone);
        std::string cell = out.Paint(cells[i], c);
        const std::size_t w = DisplayWidth(cells[i]);
        StrAppend(&line, cell,
                  std::string(widths[i] - std::min(w, widths[i]) + 2, ' '));
      }
      StrAppend(&line, out.Paint(cells[5], outcome_color));
      while (!line.empty() && line.back() == ' ') line.pop_back();
      return line + "\n";
    }
  };

  std::vector<client::Input> inputs_;
  std::optional<absl::Duration> timeout_;
  bool events_ = false;
};

// --- group -------------------------------------------------------------------

class GroupCommand final : public Command {
 public:
  absl::Status Parse(const Invocation& inv) override {
    absl::StatusOr<std::vector<client::Input>> inputs =
        ReadInputs(inv, /*with_count=*/true);
    if (!inputs.ok()) return inputs.status();
    for (const client::Input& in : *inputs) {
      if (!in.proto().has_spec()) {
        return absl::InvalidArgumentError(
            StrCat("group takes job specs, not ids (got ", in.proto().id(),
                   "): a TaskGroup creates its own jobs"));
      }
      specs_.emplace_back(in.proto().spec());
    }
    name_ = inv.Value("name").value_or("");
    events_ = inv.Has("events");
    return absl::OkStatus();
  }

  int Run(Context& ctx) override {
    Monitor monitor(ctx.client, ctx.out,
                    {.progress = true,
                     .events = events_,
                     .start = ctx.start,
                     .label = "group"});
    monitor.SetTotal(specs_.size());
    GroupId group;
    client::GroupOptions options;
    options.name = name_;
    options.on_group = group.Sink(monitor);
    absl::StatusOr<client::GroupResult> result =
        Await<client::GroupResult>(ctx, [&](auto done) {
          return ctx.client.RunGroupAsync(specs_, options, std::move(done));
        });
    monitor.Stop(/*settle=*/!ctx.interrupts.interrupted());
    if (ctx.interrupts.interrupted()) {
      return Interrupted(ctx, IdsIfKnown(group.get()));
    }
    if (!result.ok() && !IsJobOutcome(result.status())) {
      std::vector<client::Input> inputs(specs_.begin(), specs_.end());
      return Fail(ctx, WithSpec(result.status(), inputs));
    }
    const absl::Duration took = absl::Now() - ctx.start;
    std::optional<v1::ErrorDetails> details;
    if (!result.ok()) details = client::ErrorDetailsOf(result.status());
    std::uint64_t group_id = result.ok() ? result->group_id : group.get();
    if (group_id == 0 && details) group_id = details->job_id();
    std::vector<v1::Job> jobs =
        result.ok() ? result->results : Children(ctx, group_id);

    if (ctx.out.json()) {
      v1::RunGroupResponse response;
      response.set_group_id(group_id);
      for (const v1::Job& j : jobs) *response.add_results() = j;
      PrintJson(ctx, ToJson(response));
    } else {
      std::string text = jobs.empty() ? "" : JobTable(jobs).Render(ctx.out);
      if (result.ok() && !ctx.out.quiet()) {
        StrAppend(&text, "ran ", Count(jobs.size(), "job"), " in ",
                  HumanDuration(took), " (group ", group_id, ")\n");
      }
      ctx.out.Print(text);
    }
    if (result.ok()) return kExitOk;
    // The ExceptionGroup: every failure, one per line.
    std::string message = StatusText(result.status());
    for (const v1::ErrorDetails::Failure& f : details->failures()) {
      StrAppend(&message, "\n  job ", f.job_id(), " (", Printable(f.job_name()),
                "): ", Printable(ErrorText(f.error())));
    }
    ctx.out.Error(message);
    return kExitFailed;
  }

 private:
  std::vector<client::Spec> specs_;
  std::string name_;
  bool events_ = false;
};

}  // namespace

std::unique_ptr<Command> NewWaitCommand() {
  return std::make_unique<WaitCommand>();
}
std::unique_ptr<Command> NewGatherCommand() {
  return std::make_unique<GatherCommand>();
}
std::unique_ptr<Command> NewWaitForCommand() {
  return std::make_unique<WaitForCommand>();
}
std::unique_ptr<Command> NewAsCompletedCommand() {
  return std::make_unique<AsCompletedCommand>();
}
std::unique_ptr<Command> NewGroupCommand() {
  return std::make_unique<GroupCommand>();
}

}  // namespace awaitd::awaitctl
