#include "server/rpc/rpc_status.h"

#include "common/strings.h"

namespace awaitd::server {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

grpc::Status JobErrorStatus(const Job& job) {
  v1::ErrorDetails details;
  details.set_job_id(job.id());
  v1::JobError error;
  if (job.error() != nullptr) error = *job.error();
  const bool cancelled =
      job.state() == JobState::kCancelled || error.type() == "CancelledError";
  if (error.type() == "ExceptionGroup" && error.has_details()) {
    // RunGroup: every failure, as the ExceptionGroup's members.
    auto it = error.details().fields().find("exceptions");
    if (it != error.details().fields().end()) {
      for (const auto& v : it->second.list_value().values()) {
        const auto& f = v.struct_value().fields();
        auto* failure = details.add_failures();
        auto get = [&](const char* k) -> const google::protobuf::Value* {
          auto i = f.find(k);
          return i == f.end() ? nullptr : &i->second;
        };
        if (auto* x = get("job_id")) {
          failure->set_job_id(static_cast<std::uint64_t>(x->number_value()));
        }
        if (auto* x = get("name")) failure->set_job_name(x->string_value());
        if (auto* x = get("type"))
          failure->mutable_error()->set_type(x->string_value());
        if (auto* x = get("message")) {
          failure->mutable_error()->set_message(x->string_value());
        }
      }
    }
  }
  std::string message = StrCat(
      "job ", job.id(), " (", job.name(), ") ",
      job.state() == JobState::kCancelled ? "was cancelled" : "failed", ": ",
      error.type(), error.message().empty() ? "" : ": ", error.message());
  *details.mutable_error() = std::move(error);
  return grpc::Status(
      cancelled ? grpc::StatusCode::CANCELLED : grpc::StatusCode::ABORTED,
      message, details.SerializeAsString());
}

}  // namespace awaitd::server
