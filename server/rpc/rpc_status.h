// The one place where absl::Status becomes grpc::Status (the codes are equal,
// so the conversion is a cast), and where a job's failure becomes the status
// of a call that reports it (WaitFor, Gather, RunGroup).
//
// Thread safety: pure functions.
#ifndef AWAITD_SERVER_RPC_RPC_STATUS_H_
#define AWAITD_SERVER_RPC_RPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "common/status.h"  // AWAITD_RETURN_IF_ERROR
#include "grpcpp/support/status.h"
#include "server/jobs/job.h"

namespace awaitd::server {

grpc::Status ToGrpcStatus(const absl::Status& status);

// For a job that ended FAILED or CANCELLED: CANCELLED if it was cancelled
// (or, for a gather, failed because a child was), else ABORTED; the message
// names the job and its error, and the details carry a v1::ErrorDetails.
grpc::Status JobErrorStatus(const Job& job);

}  // namespace awaitd::server

#endif  // AWAITD_SERVER_RPC_RPC_STATUS_H_
