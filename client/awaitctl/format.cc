// Text forms of durations, times, JSON and job outcomes.
#include "client/awaitctl/format.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/client.h"
#include "common/strings.h"
#include "google/protobuf/util/json_util.h"

namespace awaitd::awaitctl {
namespace {

// `x` as a person writes it: integers in full (720, not 720.0), others as
// the shortest text that reads back as `x`.
std::string Number(double x) {
  if (std::isnan(x)) return "NaN";
  if (std::isinf(x)) return x > 0 ? "Infinity" : "-Infinity";
  if (std::trunc(x) == x && std::fabs(x) < 1e15) {
    return StrCat(static_cast<std::int64_t>(x));
  }
  std::array<char, 32> buf;
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), x);
  if (ec != std::errc()) return StrCat(x);
  return std::string(buf.data(), end);
}

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\r':
        out->append("\\r");
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          StrAppend(out, "\\u", absl::Hex(c, absl::kZeroPad4));
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

// Compact JSON with object keys sorted, so the same value always prints the
// same (a Struct's map has no order of its own).
void AppendValue(std::string* out, const google::protobuf::Value& v,
                 int depth) {
  if (depth > 64) {  // protobuf caps nesting lower; this only guards
    out->append("...");
    return;
  }
  switch (v.kind_case()) {
    case google::protobuf::Value::kNumberValue:
      out->append(Number(v.number_value()));
      return;
    case google::protobuf::Value::kStringValue:
      AppendJsonString(out, v.string_value());
      return;
    case google::protobuf::Value::kBoolValue:
      out->append(v.bool_value() ? "true" : "false");
      return;
    case google::protobuf::Value::kStructValue: {
      std::vector<const std::string*> keys;
      for (const auto& [key, unused] : v.struct_value().fields()) {
        keys.push_back(&key);
      }
      std::sort(
          keys.begin(), keys.end(),
          [](const std::string* a, const std::string* b) { return *a < *b; });
      out->push_back('{');
      for (std::size_t i = 0; i < keys.size(); ++i) {
        if (i > 0) out->push_back(',');
        AppendJsonString(out, *keys[i]);
        out->push_back(':');
        AppendValue(out, v.struct_value().fields().at(*keys[i]), depth + 1);
      }
      out->push_back('}');
      return;
    }
    case google::protobuf::Value::kListValue: {
      out->push_back('[');
      const auto& values = v.list_value().values();
      for (int i = 0; i < values.size(); ++i) {
        if (i > 0) out->push_back(',');
        AppendValue(out, values[i], depth + 1);
      }
      out->push_back(']');
      return;
    }
    default:  // null, or unset
      out->append("null");
      return;
  }
}

}  // namespace

std::string HumanDuration(absl::Duration d) {
  if (d < absl::ZeroDuration()) return StrCat("-", HumanDuration(-d));
  if (d == absl::InfiniteDuration()) return "forever";
  if (d == absl::ZeroDuration()) return "0s";
  if (d < absl::Minutes(1)) {
    const std::int64_t ns = absl::ToInt64Nanoseconds(d);
    if (ns < 1000) return StrCat(ns, "ns");
    const std::int64_t us = (ns + 500) / 1000;
    if (us < 1000) return StrCat(us, "µs");
    const std::int64_t ms = (ns + 500'000) / 1'000'000;
    if (ms < 1000) return StrCat(ms, "ms");
    if (ms < 60'000) {
      std::string s = absl::StrFormat("%d.%03d", ms / 1000, ms % 1000);
      while (s.back() == '0') s.pop_back();
      if (s.back() == '.') s.pop_back();
      return StrCat(s, "s");
    }
  }
  const std::int64_t total = absl::ToInt64Seconds(d + absl::Milliseconds(500));
  const std::int64_t h = total / 3600;
  const std::int64_t m = total % 3600 / 60;
  const std::int64_t s = total % 60;
  if (h > 0) return StrCat(h, "h", m, "m", s, "s");
  return StrCat(m, "m", s, "s");
}

std::string FormatElapsed(absl::Duration d) {
  if (d < absl::ZeroDuration()) d = absl::ZeroDuration();
  return absl::StrFormat("+%.3fs", absl::ToDoubleSeconds(d));
}

bool IsSet(const google::protobuf::Timestamp& t) {
  return t.seconds() != 0 || t.nanos() != 0;
}

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

std::string FormatTimestamp(const google::protobuf::Timestamp& t) {
  if (!IsSet(t)) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", ToTime(t),
                          absl::UTCTimeZone());
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string out;
  auto status =
      google::protobuf::util::MessageToJsonString(message, &out, options);
  if (status.ok()) return out;
  // Only a value JSON cannot hold (a NaN result) gets here.
  std::string fallback = "{\"jsonError\":";
  AppendJsonString(&fallback, std::string(status.message()));
  fallback += "}";
  return fallback;
}

std::string CompactJson(const google::protobuf::Value& value) {
  std::string out;
  AppendValue(&out, value, 0);
  return out;
}

std::string Printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const bool c1 = c == 0xc2 && i + 1 < text.size() &&
                    static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
                    static_cast<unsigned char>(text[i + 1]) <= 0x9f;
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    } else if (c1) {  // U+0080..U+009F, the C1 controls (CSI among them)
      StrAppend(
          &out, "\\u00",
          absl::Hex(static_cast<unsigned char>(text[i + 1]), absl::kZeroPad2));
      ++i;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::size_t DisplayWidth(std::string_view text) {
  std::size_t n = 0;
  for (unsigned char c : text) {
    if ((c & 0xc0) != 0x80) ++n;
  }
  return n;
}

std::string Ellipsize(std::string_view text, std::size_t width) {
  if (DisplayWidth(text) <= width) return std::string(text);
  const std::size_t keep = width > 3 ? width - 3 : 0;
  std::size_t points = 0;
  std::size_t i = 0;
  for (; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xc0) != 0x80) {
      if (points == keep) break;
      ++points;
    }
  }
  return StrCat(text.substr(0, i), "...");
}

bool IsFinal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

std::string StateWord(v1::JobState state) {
  return std::string(client::StateName(state));
}

std::optional<v1::JobState> ParseState(std::string_view word) {
  std::string w = absl::AsciiStrToLower(AbslView(word));
  std::string_view s = w;
  if (s.starts_with("job_state_")) s.remove_prefix(10);
  for (v1::JobState state :
       {v1::JOB_STATE_PENDING, v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED,
        v1::JOB_STATE_FAILED, v1::JOB_STATE_CANCELLED}) {
    if (s == StateWord(state)) return state;
  }
  return std::nullopt;
}

std::string ErrorText(const v1::JobError& error) {
  if (error.message().empty()) return error.type();
  if (error.type().empty()) return error.message();
  return StrCat(error.type(), ": ", error.message());
}

std::string Outcome(const v1::Job& job) {
  switch (job.state()) {
    case v1::JOB_STATE_SUCCEEDED:
      return job.has_result() ? CompactJson(job.result()) : "null";
    case v1::JOB_STATE_FAILED:
      return ErrorText(job.error());
    case v1::JOB_STATE_CANCELLED:
      return job.error().type().empty() ? "CancelledError"
                                        : ErrorText(job.error());
    default:
      return "";
  }
}

std::optional<absl::Duration> RunTime(const v1::Job& job) {
  if (!IsSet(job.started_at()) || !IsSet(job.finished_at())) {
    return std::nullopt;
  }
  return ToTime(job.finished_at()) - ToTime(job.started_at());
}

std::string Count(std::size_t n, std::string_view noun) {
  return StrCat(n, " ", noun, n == 1 ? "" : "s");
}

std::string StateCounts(std::span<const v1::Job> jobs) {
  std::string out;
  for (v1::JobState state :
       {v1::JOB_STATE_PENDING, v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED,
        v1::JOB_STATE_FAILED, v1::JOB_STATE_CANCELLED}) {
    const auto n =
        std::count_if(jobs.begin(), jobs.end(),
                      [&](const v1::Job& j) { return j.state() == state; });
    if (n > 0) {
      StrAppend(&out, out.empty() ? "" : ", ", n, " ", StateWord(state));
    }
  }
  return out;
}

std::string IdRanges(std::span<const std::uint64_t> ids) {
  std::vector<std::uint64_t> sorted(ids.begin(), ids.end());
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::string out;
  for (std::size_t i = 0; i < sorted.size();) {
    std::size_t j = i;
    while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1) ++j;
    StrAppend(&out, out.empty() ? "" : ", ", sorted[i]);
    if (j > i) StrAppend(&out, "-", sorted[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace awaitd::awaitctl
