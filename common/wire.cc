#include "common/wire.h"

#include <utility>

#include "common/strings.h"

namespace awaitd {

namespace {

// RunGroup's ExceptionGroup lists every failure in its details
// ({"exceptions": [{"job_id", "name", "type", "message"}, ...]}).
void AddGroupFailures(const v1::JobError& error, v1::ErrorDetails* details) {
  if (error.type() != "ExceptionGroup" || !error.has_details()) return;
  auto it = error.details().fields().find("exceptions");
  if (it == error.details().fields().end()) return;
  for (const auto& v : it->second.list_value().values()) {
    const auto& f = v.struct_value().fields();
    v1::ErrorDetails::Failure* failure = details->add_failures();
    if (auto i = f.find("job_id"); i != f.end()) {
      failure->set_job_id(static_cast<std::uint64_t>(i->second.number_value()));
    }
    if (auto i = f.find("name"); i != f.end()) {
      failure->set_job_name(i->second.string_value());
    }
    if (auto i = f.find("type"); i != f.end()) {
      failure->mutable_error()->set_type(i->second.string_value());
    }
    if (auto i = f.find("message"); i != f.end()) {
      failure->mutable_error()->set_message(i->second.string_value());
    }
  }
}

}  // namespace

JobFailureReport ReportJobFailure(std::uint64_t id, std::string_view name,
                                  v1::JobState state, v1::JobError error) {
  JobFailureReport r;
  r.cancelled =
      state == v1::JOB_STATE_CANCELLED || error.type() == "CancelledError";
  r.details.set_job_id(id);
  AddGroupFailures(error, &r.details);
  r.message = StrCat(
      "job ", id, " (", name, ") ",
      state == v1::JOB_STATE_CANCELLED ? "was cancelled" : "failed", ": ",
      error.type(), error.message().empty() ? "" : ": ", error.message());
  *r.details.mutable_error() = std::move(error);
  return r;
}

}  // namespace awaitd
