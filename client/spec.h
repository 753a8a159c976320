// Spec: a job to submit (v1::JobSpec), built fluently; Input: a combinator's
// input (a job id or a spec); JobRef: an accepted job; and the command-line
// spec syntax awaitctl reads.
//
//   Spec("factorial").Arg("n", 3).Name("A").Timeout(absl::Seconds(10));
//   Spec("sleep").Arg("seconds", 1).Arg("result", "hello").Limit("api");
//
// Command-line specs (ParseSpecs): a kind, then its arguments as key=value,
// then the next kind, and so on:
//
//   factorial n=2 factorial n=3 step_seconds=0.5
//   echo value='{"a": [1, 2]}'   sleep seconds=1 result=done
//
// A value is JSON where it parses as JSON (n=3 is a number, ok=true a bool,
// s="3" the string "3", v=[1,2] a list), else the literal text as a string
// (result=hello). Words starting with '@' set the spec itself rather than
// its args:
//   @name=A  @timeout=2s  @delay=500ms  @start_at=2026-11-23T10:00:00Z
//   @limit=api (repeatable)  @shield  @idempotency_key=k1
// A duration is a number of seconds (1.5) or absl's form (500ms, 1m30s).
//
// Thread safety: a Spec is a value; the functions are pure.
#ifndef AWAITD_CLIENT_SPEC_H_
#define AWAITD_CLIENT_SPEC_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "awaitd/v1/jobs.pb.h"
#include "google/protobuf/struct.pb.h"

namespace awaitd::client {

class Spec {
 public:
  explicit Spec(std::string_view kind);
  explicit Spec(v1::JobSpec proto) : proto_(std::move(proto)) {}

  // Sets args[key]. Integers become JSON numbers (a double: exact below 2^53).
  Spec& Arg(std::string_view key, double value) &;
  Spec& Arg(std::string_view key, int value) & {
    return Arg(key, static_cast<double>(value));
  }
  Spec& Arg(std::string_view key, std::int64_t value) & {
    return Arg(key, static_cast<double>(value));
  }
  Spec& Arg(std::string_view key, bool value) &;
  Spec& Arg(std::string_view key, std::string_view value) &;
  Spec& Arg(std::string_view key, const char* value) & {
    return Arg(key, std::string_view(value));
  }
  Spec& Arg(std::string_view key, google::protobuf::Value value) &;
  Spec& Name(std::string_view name) &;
  // The job's own run-time limit (fails it with TimeoutError).
  Spec& Timeout(absl::Duration timeout) &;
  // call_later / call_at: when the job may start.
  Spec& Delay(absl::Duration delay) &;
  Spec& StartAt(absl::Time when) &;
  Spec& Shield(bool shield = true) &;
  // A declared limit the job holds while it runs (repeatable).
  Spec& Limit(std::string_view limit) &;
  Spec& IdempotencyKey(std::string_view key) &;

  // The same setters on a temporary, so a spec can be built in one
  // expression: Spec("echo").Arg("value", 1).Name("x").
  template <typename... A>
  Spec&& Arg(A&&... a) && {
    Arg(std::forward<A>(a)...);
    return std::move(*this);
  }
  Spec&& Name(std::string_view v) && { return std::move(Name(v)); }
  Spec&& Timeout(absl::Duration v) && { return std::move(Timeout(v)); }
  Spec&& Delay(absl::Duration v) && { return std::move(Delay(v)); }
  Spec&& StartAt(absl::Time v) && { return std::move(StartAt(v)); }
  Spec&& Shield(bool v = true) && { return std::move(Shield(v)); }
  Spec&& Limit(std::string_view v) && { return std::move(Limit(v)); }
  Spec&& IdempotencyKey(std::string_view v) && {
    return std::move(IdempotencyKey(v));
  }

  const v1::JobSpec& proto() const& { return proto_; }
  v1::JobSpec release() && { return std::move(proto_); }

 private:
  v1::JobSpec proto_;
};

// A value as the command line means it: JSON where `text` parses as JSON,
// else the string itself.
google::protobuf::Value ParseArgValue(std::string_view text);

// A duration: seconds as a number ("1.5") or absl's syntax ("500ms",
// "1m30s"). INVALID_ARGUMENT names `field` when it is neither or negative.
absl::StatusOr<absl::Duration> ParseDuration(std::string_view text,
                                             std::string_view field);

// A job the daemon accepted (asyncio.create_task's Task, by id).
struct JobRef {
  std::uint64_t id = 0;
  std::string name;
  // An idempotency key matched a job that already existed.
  bool existing = false;
};

// A combinator's input: an existing job, or a spec the daemon creates.
class Input {
 public:
  Input(std::uint64_t id) { proto_.set_id(id); }       // NOLINT: implicit
  Input(const JobRef& ref) { proto_.set_id(ref.id); }  // NOLINT: implicit
  Input(const Spec& spec) { *proto_.mutable_spec() = spec.proto(); }  // NOLINT
  Input(Spec&& spec) {  // NOLINT: implicit
    *proto_.mutable_spec() = std::move(spec).release();
  }
  const v1::JobInput& proto() const { return proto_; }
  v1::JobInput release() && { return std::move(proto_); }

 private:
  v1::JobInput proto_;
};

// Parses command-line words into specs (syntax above). INVALID_ARGUMENT names
// the word and why: an argument before any kind, a bad '@' option, an
// empty key, a repeated key.
absl::StatusOr<std::vector<Spec>> ParseSpecs(
    std::span<const std::string> words);

// As ParseSpecs, where a word of digits is also an input: an existing job's
// id ("gather 12 13 sleep seconds=1").
absl::StatusOr<std::vector<Input>> ParseInputs(
    std::span<const std::string> words);

// Formats a spec back into command-line words (ParseSpecs' inverse, for
// messages and --json output).
std::string FormatSpec(const v1::JobSpec& spec);

}  // namespace awaitd::client

#endif  // AWAITD_CLIENT_SPEC_H_
