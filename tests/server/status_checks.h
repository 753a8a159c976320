// Assertions on grpc::Status for tests/server (the code and words of the
// message, the whole status printed on failure), and List paging.
//
//   EXPECT_TRUE(HasStatus(s, grpc::StatusCode::INVALID_ARGUMENT,
//                         {"jobs[1].kind", "required"}));
//   std::size_t pending = CountJobs(*stub_, v1::JOB_STATE_PENDING);
//
// In their own namespace (`checks`) so that they never clash with other
// helpers of tests/server linked into the same binary.
#ifndef AWAITD_TESTS_SERVER_STATUS_CHECKS_H_
#define AWAITD_TESTS_SERVER_STATUS_CHECKS_H_

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "awaitd/v1/jobs.grpc.pb.h"

namespace awaitd::server::testing::checks {

inline const char* StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "?";
  }
}

inline std::string Describe(const grpc::Status& s) {
  return std::string(StatusCodeName(s.error_code())) + ": \"" +
         s.error_message() + "\"";
}

// Whether `s` has `code` and its message contains every one of `needles`.
inline ::testing::AssertionResult HasStatus(
    const grpc::Status& s, grpc::StatusCode code,
    std::initializer_list<std::string_view> needles) {
  if (s.error_code() != code) {
    return ::testing::AssertionFailure()
           << "expected " << StatusCodeName(code) << ", got " << Describe(s);
  }
  for (std::string_view n : needles) {
    if (s.error_message().find(n) == std::string::npos) {
      return ::testing::AssertionFailure()
             << "expected the message to contain \"" << n << "\", got "
             << Describe(s);
    }
  }
  return ::testing::AssertionSuccess();
}
inline ::testing::AssertionResult HasStatus(const grpc::Status& s,
                                            grpc::StatusCode code,
                                            std::string_view needle = "") {
  return HasStatus(s, code, {needle});
}

// Every job List reports (all pages) in `state` (UNSPECIFIED: any).
inline std::vector<v1::Job> ListJobs(
    v1::Jobs::Stub& stub, v1::JobState state = v1::JOB_STATE_UNSPECIFIED) {
  std::vector<v1::Job> out;
  v1::ListRequest req;
  req.set_state(state);
  req.set_page_size(1000);
  for (;;) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(60));
    v1::ListResponse resp;
    grpc::Status s = stub.List(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << Describe(s);
    if (!s.ok()) break;
    for (v1::Job& j : *resp.mutable_jobs()) out.push_back(std::move(j));
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  return out;
}

inline std::size_t CountJobs(v1::Jobs::Stub& stub,
                             v1::JobState state = v1::JOB_STATE_UNSPECIFIED) {
  return ListJobs(stub, state).size();
}

}  // namespace awaitd::server::testing::checks

#endif  // AWAITD_TESTS_SERVER_STATUS_CHECKS_H_
