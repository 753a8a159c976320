// Text forms of awaitctl's values: durations, times, JSON, job outcomes.
//
// One duration format everywhere (HumanDuration): below 1 ms in µs, below
// 1 s in whole ms, below 1 min in seconds with up to 3 decimals, then
// "1m30s" / "2h5m0s". Event times (FormatElapsed) always have 3 decimals
// ("+1.002s"), so a test can mask them with one pattern.
//
// Thread safety: every function is pure.
#ifndef AWAITD_CLIENT_AWAITCTL_FORMAT_H_
#define AWAITD_CLIENT_AWAITCTL_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "awaitd/v1/jobs.pb.h"
#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace awaitd::awaitctl {

// "12µs", "350ms", "1.002s", "1.5s", "3s", "1m30s", "2h5m0s".
std::string HumanDuration(absl::Duration d);
// "+1.002s": time since the command started, always with 3 decimals.
std::string FormatElapsed(absl::Duration d);

bool IsSet(const google::protobuf::Timestamp& t);
absl::Time ToTime(const google::protobuf::Timestamp& t);
// RFC 3339 in UTC with milliseconds ("2026-11-23T10:00:00.123Z"); "-" when
// unset.
std::string FormatTimestamp(const google::protobuf::Timestamp& t);

// A message as one line of JSON, by the proto JSON mapping (lowerCamelCase
// names, 64-bit ints as strings, enums by name), with fields that hold
// their default value printed too, so scripts see every field.
std::string ToJson(const google::protobuf::Message& message);
// A value as compact JSON: 24, "done", {"a":[1,2]}.
std::string CompactJson(const google::protobuf::Value& value);

// `text` with control characters escaped (\n, \t, \x1b...), so text from
// the daemon cannot move the cursor or colour the terminal.
std::string Printable(std::string_view text);
// Terminal columns of UTF-8 `text` (one per code point).
std::size_t DisplayWidth(std::string_view text);
// `text` cut to `width` columns, ending in "..." when cut.
std::string Ellipsize(std::string_view text, std::size_t width);

bool IsFinal(v1::JobState state);
// "succeeded", "running", ... (client::StateName, as a string).
std::string StateWord(v1::JobState state);
// A state from a word: "running" or "JOB_STATE_RUNNING", any case.
std::optional<v1::JobState> ParseState(std::string_view word);

// "ValueError: boom", or just the type when there is no message.
std::string ErrorText(const v1::JobError& error);
// What a finished job gave: its result as compact JSON (SUCCEEDED), its
// error (FAILED, CANCELLED); empty while it is not done.
std::string Outcome(const v1::Job& job);
// started_at to finished_at, if both are set.
std::optional<absl::Duration> RunTime(const v1::Job& job);

// "1 job", "3 jobs".
std::string Count(std::size_t n, std::string_view noun);
// "2 succeeded, 1 failed": the jobs per state, in life-cycle order.
std::string StateCounts(std::span<const v1::Job> jobs);
// "1-3, 7, 9-10" for sorted-or-not ids (sorted first).
std::string IdRanges(std::span<const std::uint64_t> ids);

}  // namespace awaitd::awaitctl

#endif  // AWAITD_CLIENT_AWAITCTL_FORMAT_H_
