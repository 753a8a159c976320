// What the daemon and its clients must spell the same way on the wire: the
// names of the metadata headers, and how a job's failure is reported as a
// call's status (its message, code and ErrorDetails).
//
//   JobFailureReport r = ReportJobFailure(id, name, state, error);
//   // r.cancelled ? CANCELLED : ABORTED, with r.message and r.details
//
// The daemon answers a call that waited for a failed job with it
// (server/rpc/rpc_status.cc); the client builds the same status from a job
// it fetched (client/client.cc, JobStatus), so both read alike.
//
// Thread safety: constants and a pure function.
#ifndef AWAITD_COMMON_WIRE_H_
#define AWAITD_COMMON_WIRE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "awaitd/v1/jobs.pb.h"

namespace awaitd {

// Initial metadata of RunGroup and Gather calls: the group's job id, sent as
// soon as the group exists (before its outcome).
inline constexpr char kGroupIdHeader[] = "awaitd-group-id";

struct JobFailureReport {
  // CANCELLED when true (the job, or for a gather a child, was cancelled),
  // else ABORTED.
  bool cancelled = false;
  // "job 7 (fetch) failed: ValueError: bad input"
  std::string message;
  // The job's id and error, and for an ExceptionGroup (RunGroup) each of its
  // members as a failure.
  v1::ErrorDetails details;
};

// For a job that ended FAILED or CANCELLED with `error`.
JobFailureReport ReportJobFailure(std::uint64_t id, std::string_view name,
                                  v1::JobState state, v1::JobError error);

}  // namespace awaitd

#endif  // AWAITD_COMMON_WIRE_H_
