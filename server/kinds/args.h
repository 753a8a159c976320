// Args: reads and validates a job kind's arguments (a protobuf Struct) in a
// kind's `bind`, with the messages every awaitd kind uses.
//
//   absl::StatusOr<JobBody> BindWordCount(const google::protobuf::Struct& a) {
//     Args args(a, {"text", "min_length"});      // refuses any other field
//     std::string text = args.String("text", {.max_length = 1 << 20});
//     std::int64_t min = args.IntegerOr("min_length", 1, {.min = 1,
//                                                          .max = 100});
//     if (!args.ok()) return args.status();      // the first error
//     return WordCountBody(std::move(text), min);
//   }
//
// Reads record the first error and are no-ops after it (returning 0, "",
// false or null), so a bind reads every field, then checks ok() once, and
// reports the same error a step-by-step check would have. Every error is
// INVALID_ARGUMENT and starts with the field's name ("seconds: must be a
// finite number >= 0 (got -1)"); the daemon prefixes where the spec came
// from ("jobs[3].args."), so clients see the full path.
//
// Unknown fields are refused at construction, naming the first unknown one
// in byte order (the message does not depend on the map's iteration order)
// and the fields the kind takes.
//
// Thread safety: an Args is a local of one bind call (externally
// synchronized); it keeps a reference to `args`, which must outlive it.
#ifndef AWAITD_SERVER_KINDS_ARGS_H_
#define AWAITD_SERVER_KINDS_ARGS_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "google/protobuf/struct.pb.h"

namespace awaitd::server {

// The range a number (or integer) argument must lie in. Unset bounds do not
// limit it; an integer is always within +-2^53 (exact in a double).
struct NumberRule {
  std::optional<double> min;
  bool min_exclusive = false;  // min < x instead of min <= x
  std::optional<double> max;   // x <= max
  std::string_view max_note;   // why max, shown after it ("30 days")
};

struct StringRule {
  std::size_t max_length = 64 * 1024;  // bytes
};

class Args {
 public:
  // Checks that `args` has no field outside `allowed`.
  Args(const google::protobuf::Struct& args,
       std::initializer_list<std::string_view> allowed);
  Args(const Args&) = delete;
  Args& operator=(const Args&) = delete;

  // OK, or the first error (INVALID_ARGUMENT, starting with the field name).
  bool ok() const { return status_.ok(); }
  const absl::Status& status() const { return status_; }

  // A finite number in `rule`; required ("name: required" when absent), or
  // `fallback` when absent.
  double Number(std::string_view name, const NumberRule& rule = {});
  double NumberOr(std::string_view name, double fallback,
                  const NumberRule& rule = {});

  // A whole number in `rule` ("n: must be an integer >= 0 (got 2.5)").
  std::int64_t Integer(std::string_view name, const NumberRule& rule = {});
  std::int64_t IntegerOr(std::string_view name, std::int64_t fallback,
                         const NumberRule& rule = {});

  // A string of at most rule.max_length bytes.
  std::string String(std::string_view name, const StringRule& rule = {});
  std::string StringOr(std::string_view name, std::string_view fallback,
                       const StringRule& rule = {});

  bool Bool(std::string_view name);
  bool BoolOr(std::string_view name, bool fallback);

  // Any value, unchecked; required, or `fallback` when absent (null after
  // an error).
  google::protobuf::Value Any(std::string_view name);
  google::protobuf::Value AnyOr(std::string_view name,
                                google::protobuf::Value fallback);

  // The field, or null if absent. Does not check or record anything.
  const google::protobuf::Value* Find(std::string_view name) const;

  // Records "name: message" as the error unless there is one already: for a
  // kind's own checks, in the order it reads its fields.
  void Refuse(std::string_view name, std::string_view message);

 private:
  // No earlier error, and no field `name`: an ...Or reader's fallback.
  bool Absent(std::string_view name) const;
  // The field if present and the reader has no error; `*absent` tells the
  // two apart.
  const google::protobuf::Value* Field(std::string_view name, bool required,
                                       bool* absent);
  std::optional<double> ReadNumber(std::string_view name, bool required,
                                   const NumberRule& rule, bool integer);
  const google::protobuf::Value* ReadTyped(
      std::string_view name, bool required,
      google::protobuf::Value::KindCase kind, std::string_view what);

  const google::protobuf::Struct& args_;
  absl::Status status_;
};

// --- Helpers for kinds' results and messages --------------------------------

google::protobuf::Value NullValue();
google::protobuf::Value NumberValue(double x);
google::protobuf::Value StringValue(std::string s);
google::protobuf::Value BoolValue(bool b);

// "null", "number", "string", "bool", "object" or "list" (JSON's names).
std::string_view ValueKindName(const google::protobuf::Value& v);

// `x` as a client wrote it: integers in full ("2592000", not "2.592e+06"),
// others as the shortest text that reads back as `x` ("0.1", "1e+300").
std::string FormatNumber(double x);

}  // namespace awaitd::server

#endif  // AWAITD_SERVER_KINDS_ARGS_H_
