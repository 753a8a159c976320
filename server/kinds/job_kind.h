// JobKind and JobKindRegistry: the coroutine functions a client may submit.
//
// A job names a registered kind and gives it arguments (a protobuf Struct).
// A kind binds those arguments into a JobBody, a runtime coroutine that is
// not started yet: binding is where the arguments are validated, so a bad
// spec is refused at Submit with INVALID_ARGUMENT and never becomes a job.
//
//   JobKindRegistry kinds;
//   RegisterBuiltinKinds(kinds);            // sleep, echo, fail, factorial,
//   ... const JobKind* k = kinds.Find("sleep"); absl::StatusOr<JobBody> body =
//   k->bind(args);   // validates, binds
//
// Binders read their arguments with Args (server/kinds/args.h), which gives
// every kind the same messages. Kinds beyond the built-in ones come from
// DaemonOptions::register_kinds or from plugins (server/kinds/plugin.h).
//
// A body returns the job's result as a protobuf Value. It fails by throwing:
// JobFailure for a typed error (a Python exception class name and message),
// runtime::CancelledError when cancelled (it may catch it to clean up), any
// other exception as an "InternalError" with its what().
//
// Thread safety: a registry is filled before the daemon starts serving and
// is read-only afterwards (Find and List are then safe from any thread).
// `bind` is called on gRPC threads: it must be cheap and must never block.
#ifndef AWAITD_SERVER_KINDS_JOB_KIND_H_
#define AWAITD_SERVER_KINDS_JOB_KIND_H_

#include <exception>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/struct.pb.h"
#include "runtime/task.h"

namespace awaitd::server {

// The coroutine of one job run; its value becomes the job's result.
using JobBody = runtime::Task<google::protobuf::Value>;

// Thrown by a job body to fail with a typed error, as a Python coroutine
// raises an exception: `type` is the exception class ("ValueError").
class JobFailure : public std::exception {
 public:
  JobFailure(std::string type, std::string message,
             google::protobuf::Struct details = {})
      : type_(std::move(type)),
        message_(std::move(message)),
        details_(std::move(details)) {}

  const char* what() const noexcept override { return message_.c_str(); }
  const std::string& type() const noexcept { return type_; }
  const std::string& message() const noexcept { return message_; }
  const google::protobuf::Struct& details() const noexcept { return details_; }

 private:
  std::string type_;
  std::string message_;
  google::protobuf::Struct details_;
};

struct JobKind {
  // Lower-case identifier, unique in a registry.
  std::string name;
  // One line, then the arguments (shown by ListKinds and `awaitctl`).
  std::string description;
  // The body runs its work on the blocking pool (to_thread).
  bool blocking = false;
  // Safe to run again from the start after a crash interrupted it.
  bool retry_safe = false;
  // Validates `args` and binds them into a body that has not started. An
  // invalid argument is INVALID_ARGUMENT whose message starts with the field
  // path inside args ("seconds: must be a number >= 0"); the caller prefixes
  // where the spec came from. Unknown fields are refused too.
  std::function<absl::StatusOr<JobBody>(const google::protobuf::Struct& args)>
      bind;
};

class JobKindRegistry {
 public:
  JobKindRegistry() = default;
  JobKindRegistry(const JobKindRegistry&) = delete;
  JobKindRegistry& operator=(const JobKindRegistry&) = delete;

  // INVALID_ARGUMENT for an empty name or a missing bind, ALREADY_EXISTS for
  // a name registered before.
  absl::Status Register(JobKind kind);

  // Null if unknown. The pointer stays valid for the registry's lifetime.
  const JobKind* Find(std::string_view name) const;

  // Every kind, by name.
  std::vector<const JobKind*> List() const;

 private:
  std::map<std::string, JobKind, std::less<>> kinds_;
};

// Registers sleep, echo, fail, factorial, spin, blocking and hash; see
// builtin_kinds.cc for each one's arguments.
void RegisterBuiltinKinds(JobKindRegistry& registry);

}  // namespace awaitd::server

#endif  // AWAITD_SERVER_KINDS_JOB_KIND_H_
