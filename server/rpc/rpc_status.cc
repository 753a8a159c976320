#include "server/rpc/rpc_status.h"

#include <utility>

#include "common/wire.h"

namespace awaitd::server {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

grpc::Status JobErrorStatus(const Job& job) {
  JobFailureReport r =
      ReportJobFailure(job.id(), job.name(), ToProto(job.state()),
                       job.error() != nullptr ? *job.error() : v1::JobError());
  return grpc::Status(
      r.cancelled ? grpc::StatusCode::CANCELLED : grpc::StatusCode::ABORTED,
      std::move(r.message), r.details.SerializeAsString());
}

}  // namespace awaitd::server
