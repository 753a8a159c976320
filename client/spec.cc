// Spec's setters, and the command-line spec syntax (see spec.h).
#include "client/spec.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/strings.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/util/json_util.h"

namespace awaitd::client {

namespace {

// Longest duration a google.protobuf.Duration holds (10000 years); longer
// ones (InfiniteDuration included) saturate, so the daemon names the field.
constexpr std::int64_t kMaxProtoDurationSeconds = 315'576'000'000;

void ToProto(absl::Duration d, google::protobuf::Duration* out) {
  if (d >= absl::Seconds(kMaxProtoDurationSeconds)) {
    out->set_seconds(kMaxProtoDurationSeconds);
    out->set_nanos(0);
    return;
  }
  if (d <= -absl::Seconds(kMaxProtoDurationSeconds)) {
    out->set_seconds(-kMaxProtoDurationSeconds);
    out->set_nanos(0);
    return;
  }
  // Both parts carry the sign of the duration (the proto's rule):
  // IDivDuration truncates towards zero.
  absl::Duration rem;
  const std::int64_t seconds = absl::IDivDuration(d, absl::Seconds(1), &rem);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<std::int32_t>(absl::ToInt64Nanoseconds(rem)));
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  // ToUnixSeconds rounds towards the past, so nanos is in [0, 1e9).
  const std::int64_t seconds = absl::ToUnixSeconds(t);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<std::int32_t>(
      absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(seconds))));
}

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// `s` in double quotes, with quotes, backslashes and control characters
// escaped (UTF-8 text is kept as it is).
std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20 || u == 0x7f) {
      absl::StrAppend(&out, "\\x", absl::Hex(u, absl::kZeroPad2));
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

// --- The parser --------------------------------------------------------------

// RFC 3339 with a "Z" (absl::RFC3339_full writes "+00:00").
constexpr char kRfc3339Utc[] = "%Y-%m-%d%ET%H:%M:%E*SZ";

constexpr std::string_view kOptions =
    "@name, @timeout, @delay, @start_at, @limit, @shield, @idempotency_key";

// One word's position and text, for error messages: `word 3 "n=2": `.
std::string Where(std::size_t index, std::string_view word) {
  return absl::StrCat("word ", index + 1, " ", Quote(word), ": ");
}

bool IsJobId(std::string_view word) {
  return !word.empty() && std::all_of(word.begin(), word.end(), [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c));
  });
}

// The spec being read, with what the checks for repeats need.
struct Pending {
  Spec spec;
  // Arguments set so far, and the word that set each.
  std::vector<std::pair<std::string, std::size_t>> keys;
  // The word that set each single-valued option ("@name", ...).
  std::vector<std::pair<std::string, std::size_t>> options;
};

std::optional<std::size_t> FindWord(
    const std::vector<std::pair<std::string, std::size_t>>& seen,
    std::string_view key) {
  for (const auto& [k, at] : seen) {
    if (k == key) return at;
  }
  return std::nullopt;
}

// Applies one '@' option word to `p`.
absl::Status ApplyOption(std::size_t index, std::string_view word, Pending& p) {
  const std::string where = Where(index, word);
  const std::size_t eq = word.find('=');
  const std::string_view name = word.substr(0, eq);
  const bool has_value = eq != std::string_view::npos;
  const std::string_view value =
      has_value ? word.substr(eq + 1) : std::string_view();

  const bool known = name == "@name" || name == "@timeout" ||
                     name == "@delay" || name == "@start_at" ||
                     name == "@limit" || name == "@shield" ||
                     name == "@idempotency_key";
  if (!known) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "unknown option ", AbslView(name),
                     " (valid: ", AbslView(kOptions), ")"));
  }
  if (name != "@limit") {
    if (auto at = FindWord(p.options, name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, AbslView(name), " given twice (first by word ", *at + 1, ")"));
    }
  }
  if (name == "@shield") {
    if (!has_value || value == "true") {
      p.spec.Shield(true);
    } else if (value == "false") {
      p.spec.Shield(false);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "@shield takes no value (or true/false), got ", Quote(value)));
    }
    p.options.emplace_back(name, index);
    return absl::OkStatus();
  }
  if (!has_value) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, AbslView(name), " needs a value (", AbslView(name), "=...)"));
  }
  if (name == "@timeout" || name == "@delay") {
    absl::StatusOr<absl::Duration> d = ParseDuration(value, name);
    if (!d.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, d.status().message()));
    }
    if (name == "@timeout") {
      p.spec.Timeout(*d);
    } else {
      if (auto at = FindWord(p.options, "@start_at")) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "@delay and @start_at (word ", *at + 1,
                         ") exclude each other: give one start"));
      }
      p.spec.Delay(*d);
    }
    p.options.emplace_back(name, index);
    return absl::OkStatus();
  }
  if (name == "@start_at") {
    if (auto at = FindWord(p.options, "@delay")) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "@delay (word ", *at + 1,
                       ") and @start_at exclude each other: give one start"));
    }
    absl::Time t;
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, AbslView(value), &t, &err)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where,
          "@start_at: must be an RFC 3339 time like 2026-11-23T10:00:00Z (got ",
          Quote(value), ": ", err, ")"));
    }
    p.spec.StartAt(t);
    p.options.emplace_back(name, index);
    return absl::OkStatus();
  }
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, AbslView(name), " needs a value (", AbslView(name), "=...)"));
  }
  if (name == "@name") {
    p.spec.Name(value);
  } else if (name == "@limit") {
    p.spec.Limit(value);
  } else {  // @idempotency_key
    p.spec.IdempotencyKey(value);
  }
  if (name != "@limit") p.options.emplace_back(name, index);
  return absl::OkStatus();
}

// Applies one key=value word to `p`.
absl::Status ApplyArg(std::size_t index, std::string_view word, Pending& p) {
  const std::size_t eq = word.find('=');
  const std::string_view key = word.substr(0, eq);
  if (key.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(index, word), "empty key (write key=value)"));
  }
  if (auto at = FindWord(p.keys, key)) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(index, word), "duplicate key ", Quote(key),
                     " (already set by word ", *at + 1, ")"));
  }
  p.spec.Arg(key, ParseArgValue(word.substr(eq + 1)));
  p.keys.emplace_back(key, index);
  return absl::OkStatus();
}

// Both parsers: `on_spec` receives each finished spec, `on_id` each job id
// (only when ids are allowed).
template <typename OnSpec, typename OnId>
absl::Status Parse(std::span<const std::string> words, bool ids_allowed,
                   OnSpec on_spec, OnId on_id) {
  std::optional<Pending> current;
  std::optional<std::string> last_id;  // the id word just read, if any
  auto flush = [&] {
    if (current.has_value()) on_spec(std::move(current->spec));
    current.reset();
  };
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string_view word = words[i];
    if (word.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(i, word), "an empty word"));
    }
    const bool is_option = word.front() == '@';
    const bool is_arg = !is_option && word.find('=') != std::string_view::npos;
    if (is_option || is_arg) {
      if (!current.has_value()) {
        const std::string_view what = is_option ? "an option" : "an argument";
        if (last_id.has_value()) {
          return absl::InvalidArgumentError(absl::StrCat(
              Where(i, word), AbslView(what), " after job id ", *last_id,
              " (options and arguments follow a kind, not an id)"));
        }
        return absl::InvalidArgumentError(
            absl::StrCat(Where(i, word), AbslView(what), " before any kind"));
      }
      absl::Status s = is_option ? ApplyOption(i, word, *current)
                                 : ApplyArg(i, word, *current);
      if (!s.ok()) return s;
      continue;
    }
    flush();
    if (ids_allowed && IsJobId(word)) {
      std::uint64_t id = 0;
      if (!absl::SimpleAtoi(AbslView(word), &id) || id == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(Where(i, word), "not a job id (1 to ",
                         std::numeric_limits<std::uint64_t>::max(), ")"));
      }
      on_id(id);
      last_id = std::string(word);
      continue;
    }
    last_id.reset();
    current.emplace(Pending{.spec = Spec(word)});
  }
  flush();
  return absl::OkStatus();
}

// --- FormatSpec --------------------------------------------------------------

// A value as ParseArgValue reads it back: strings bare where that is
// unambiguous, else quoted as JSON.
std::string FormatValue(const google::protobuf::Value& v) {
  if (v.kind_case() == google::protobuf::Value::kStringValue) {
    const std::string& s = v.string_value();
    const bool plain =
        !s.empty() &&
        ParseArgValue(s).kind_case() == google::protobuf::Value::kStringValue &&
        std::none_of(s.begin(), s.end(), [](char c) {
          return absl::ascii_isspace(static_cast<unsigned char>(c)) ||
                 c == '"' || c == '\'' || c == '\\';
        });
    if (plain) return s;
  }
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(v, &json).ok()) {
    return "<unprintable>";
  }
  return json;
}

}  // namespace

// --- Spec --------------------------------------------------------------------

Spec::Spec(std::string_view kind) { proto_.set_kind(std::string(kind)); }

Spec& Spec::Arg(std::string_view key, double value) & {
  google::protobuf::Value v;
  v.set_number_value(value);
  return Arg(key, std::move(v));
}

Spec& Spec::Arg(std::string_view key, bool value) & {
  google::protobuf::Value v;
  v.set_bool_value(value);
  return Arg(key, std::move(v));
}

Spec& Spec::Arg(std::string_view key, std::string_view value) & {
  google::protobuf::Value v;
  v.set_string_value(std::string(value));
  return Arg(key, std::move(v));
}

Spec& Spec::Arg(std::string_view key, google::protobuf::Value value) & {
  (*proto_.mutable_args()->mutable_fields())[std::string(key)] =
      std::move(value);
  return *this;
}

Spec& Spec::Name(std::string_view name) & {
  proto_.set_name(std::string(name));
  return *this;
}

Spec& Spec::Timeout(absl::Duration timeout) & {
  if (timeout == absl::InfiniteDuration()) {
    proto_.clear_timeout();  // no run-time limit
  } else {
    ToProto(timeout, proto_.mutable_timeout());
  }
  return *this;
}

Spec& Spec::Delay(absl::Duration delay) & {
  ToProto(delay, proto_.mutable_delay());
  return *this;
}

Spec& Spec::StartAt(absl::Time when) & {
  ToProto(when, proto_.mutable_start_at());
  return *this;
}

Spec& Spec::Shield(bool shield) & {
  proto_.set_shield(shield);
  return *this;
}

Spec& Spec::Limit(std::string_view limit) & {
  proto_.add_limits(std::string(limit));
  return *this;
}

Spec& Spec::IdempotencyKey(std::string_view key) & {
  proto_.set_idempotency_key(std::string(key));
  return *this;
}

// --- Free functions ----------------------------------------------------------

google::protobuf::Value ParseArgValue(std::string_view text) {
  google::protobuf::Value v;
  // The JSON parser skips surrounding whitespace; a value that is only
  // whitespace (or empty) is the text itself.
  if (!absl::StripAsciiWhitespace(AbslView(text)).empty() &&
      google::protobuf::util::JsonStringToMessage(std::string(text), &v).ok()) {
    return v;
  }
  v.Clear();
  v.set_string_value(std::string(text));
  return v;
}

absl::StatusOr<absl::Duration> ParseDuration(std::string_view text,
                                             std::string_view field) {
  auto invalid = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        AbslView(field), ": must be a duration like 1.5, 500ms or 1m30s (got ",
        Quote(text), ")"));
  };
  // absl's parsers accept surrounding spaces in numbers and "inf"; neither
  // is a duration a user means.
  if (text.empty() ||
      absl::ascii_isspace(static_cast<unsigned char>(text.front())) ||
      absl::ascii_isspace(static_cast<unsigned char>(text.back()))) {
    return invalid();
  }
  absl::Duration d;
  double seconds = 0;
  if (absl::SimpleAtod(AbslView(text), &seconds)) {
    // A bare number: seconds. SimpleAtod also reads "inf" and "nan".
    if (!std::isfinite(seconds) || seconds < 0) return invalid();
    d = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(AbslView(text), &d)) {
    return invalid();
  }
  if (d < absl::ZeroDuration() || d == absl::InfiniteDuration()) {
    return invalid();
  }
  return d;
}

absl::StatusOr<std::vector<Spec>> ParseSpecs(
    std::span<const std::string> words) {
  std::vector<Spec> specs;
  absl::Status s = Parse(
      words, /*ids_allowed=*/false,
      [&](Spec&& spec) { specs.push_back(std::move(spec)); },
      [](std::uint64_t) {});
  if (!s.ok()) return s;
  return specs;
}

absl::StatusOr<std::vector<Input>> ParseInputs(
    std::span<const std::string> words) {
  std::vector<Input> inputs;
  absl::Status s = Parse(
      words, /*ids_allowed=*/true,
      [&](Spec&& spec) { inputs.emplace_back(std::move(spec)); },
      [&](std::uint64_t id) { inputs.emplace_back(id); });
  if (!s.ok()) return s;
  return inputs;
}

std::string FormatSpec(const v1::JobSpec& spec) {
  std::vector<std::string> words;
  words.push_back(spec.kind().empty() ? "<no kind>" : spec.kind());
  // Struct fields are a map: sorted, so the text is stable.
  std::vector<std::string> keys;
  for (const auto& [key, value] : spec.args().fields()) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  for (const std::string& key : keys) {
    words.push_back(
        absl::StrCat(key, "=", FormatValue(spec.args().fields().at(key))));
  }
  if (!spec.name().empty())
    words.push_back(absl::StrCat("@name=", spec.name()));
  if (spec.has_timeout()) {
    words.push_back(absl::StrCat(
        "@timeout=", absl::FormatDuration(FromProto(spec.timeout()))));
  }
  if (spec.has_delay()) {
    words.push_back(
        absl::StrCat("@delay=", absl::FormatDuration(FromProto(spec.delay()))));
  }
  if (spec.has_start_at()) {
    words.push_back(absl::StrCat(
        "@start_at=", absl::FormatTime(kRfc3339Utc, FromProto(spec.start_at()),
                                       absl::UTCTimeZone())));
  }
  for (const std::string& limit : spec.limits()) {
    words.push_back(absl::StrCat("@limit=", limit));
  }
  if (spec.shield()) words.push_back("@shield");
  if (!spec.idempotency_key().empty()) {
    words.push_back(absl::StrCat("@idempotency_key=", spec.idempotency_key()));
  }
  return absl::StrJoin(words, " ");
}

}  // namespace awaitd::client
