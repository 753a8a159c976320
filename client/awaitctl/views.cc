// Job tables, job details and event lines.
#include "client/awaitctl/views.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/awaitctl/format.h"
#include "common/strings.h"

namespace awaitd::awaitctl {
namespace {

// Widest a result or error gets in a table or an event line.
constexpr std::size_t kOutcomeWidth = 60;

bool HasError(const v1::Job& job) {
  return job.state() == v1::JOB_STATE_FAILED ||
         job.state() == v1::JOB_STATE_CANCELLED;
}

std::vector<Table::Cell> JobRow(const v1::Job& job) {
  const std::optional<absl::Duration> took = RunTime(job);
  return {
      Table::Cell(StrCat(job.id())),
      Table::Cell(Printable(job.name())),
      Table::Cell(Printable(job.kind())),
      Table::Cell(StateWord(job.state()), StateColor(job.state())),
      Table::Cell(took ? HumanDuration(*took) : "-"),
      Table::Cell(Ellipsize(Printable(Outcome(job)), kOutcomeWidth),
                  HasError(job) ? StateColor(job.state()) : Color::kNone),
  };
}

std::string Padded(std::string_view text, std::size_t width) {
  std::string s(text);
  const std::size_t w = DisplayWidth(text);
  if (w < width) s.append(width - w, ' ');
  return s;
}

}  // namespace

std::vector<std::string> JobHeaders() {
  // A failed job's error shows where its result would (as gather with
  // return_exceptions=True returns it), in the state's colour.
  return {"ID", "NAME", "KIND", "STATE", "TOOK", "RESULT"};
}

std::size_t AddJobRows(Table& table, std::span<const v1::Job> jobs,
                       bool all_rows) {
  const bool cut = !all_rows && jobs.size() > kMaxTableRows;
  const std::size_t shown = cut ? kHeadRows : jobs.size();
  for (std::size_t i = 0; i < shown; ++i) table.AddRow(JobRow(jobs[i]));
  if (cut) {
    table.AddLine(
        StrCat("... and ", jobs.size() - shown, " more (all of them: --json)"),
        Color::kDim);
  }
  return jobs.size() - shown;
}

Table JobTable(std::span<const v1::Job> jobs, bool all_rows) {
  Table table(JobHeaders());
  table.AddHeader();
  AddJobRows(table, jobs, all_rows);
  return table;
}

std::string JobDetail(const v1::Job& job, const Output& out) {
  Table t({"FIELD", "VALUE"});
  auto row = [&](std::string field, std::string value,
                 Color color = Color::kNone) {
    t.AddRow(
        {Table::Cell(std::move(field)), Table::Cell(std::move(value), color)});
  };
  row("id", StrCat(job.id()));
  row("name", Printable(job.name()));
  row("kind", Printable(job.kind()));
  row("state", StateWord(job.state()), StateColor(job.state()));
  if (job.state() == v1::JOB_STATE_SUCCEEDED) {
    row("result", Printable(Outcome(job)));
  }
  if (HasError(job)) {
    row("error", Printable(Outcome(job)), StateColor(job.state()));
    if (job.error().has_details() && job.error().details().fields_size() > 0) {
      google::protobuf::Value details;
      *details.mutable_struct_value() = job.error().details();
      row("details", Printable(CompactJson(details)));
    }
  }
  row("created", FormatTimestamp(job.created_at()));
  if (IsSet(job.scheduled_at()) &&
      ToTime(job.scheduled_at()) != ToTime(job.created_at())) {
    row("scheduled", FormatTimestamp(job.scheduled_at()));
  }
  if (IsSet(job.started_at())) {
    const absl::Time ready = IsSet(job.scheduled_at())
                                 ? ToTime(job.scheduled_at())
                                 : ToTime(job.created_at());
    const absl::Duration waited = ToTime(job.started_at()) - ready;
    row("started",
        StrCat(FormatTimestamp(job.started_at()), "  (waited ",
               HumanDuration(std::max(waited, absl::ZeroDuration())), ")"));
  } else {
    row("started", "-");
  }
  if (IsSet(job.finished_at())) {
    std::string finished = FormatTimestamp(job.finished_at());
    if (std::optional<absl::Duration> took = RunTime(job)) {
      StrAppend(&finished, "  (ran ", HumanDuration(*took), ")");
    }
    row("finished", finished);
  } else {
    row("finished", "-");
  }
  row("attempt", StrCat(job.attempt()));
  if (job.shield()) row("shield", "yes");
  if (!job.limits().empty()) {
    row("limits", Printable(absl::StrJoin(job.limits(), ", ")));
  }
  if (job.group_id() != 0) row("group", StrCat(job.group_id()));
  if (!job.children().empty()) {
    std::vector<std::uint64_t> children(job.children().begin(),
                                        job.children().end());
    row("children",
        StrCat(IdRanges(children), " (", Count(children.size(), "job"), ")"));
  }
  if (job.cancel_requested()) row("cancel", "requested");
  return t.Render(out);
}

void EventPrinter::Learn(std::uint64_t id, std::string_view name,
                         std::string_view kind) {
  id_width_ = std::max(id_width_, StrCat(id).size());
  name_width_ = std::max(name_width_, DisplayWidth(Printable(name)));
  kind_width_ = std::max(kind_width_, DisplayWidth(Printable(kind)));
}

std::string EventPrinter::Format(const v1::WatchResponse& event,
                                 absl::Time seen,
                                 const google::protobuf::Value* result,
                                 const Output& out) const {
  std::string when = clock_ == Clock::kElapsed ? FormatElapsed(seen - start_)
                                               : FormatTimestamp(event.time());
  std::string detail;
  if (event.state() == v1::JOB_STATE_SUCCEEDED && result != nullptr) {
    detail = CompactJson(*result);
  } else if (event.state() == v1::JOB_STATE_FAILED ||
             event.state() == v1::JOB_STATE_CANCELLED) {
    detail =
        event.error().type().empty() && event.state() == v1::JOB_STATE_CANCELLED
            ? "CancelledError"
            : ErrorText(event.error());
  }
  detail = Ellipsize(Printable(detail), kOutcomeWidth);
  const std::string state = StateWord(event.state());
  std::string line = StrCat(out.Paint(when, Color::kDim), "  ",
                            Padded(StrCat(event.id()), id_width_), "  ",
                            Padded(Printable(event.name()), name_width_), "  ",
                            Padded(Printable(event.kind()), kind_width_), "  ",
                            out.Paint(state, StateColor(event.state())));
  if (!detail.empty()) {
    line.append(9 - std::min<std::size_t>(9, state.size()) + 2, ' ');
    StrAppend(&line, detail);
  }
  // Padding may leave spaces at the end when a column is empty.
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line + "\n";
}

}  // namespace awaitd::awaitctl
