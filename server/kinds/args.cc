#include "server/kinds/args.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <system_error>
#include <utility>

#include "common/strings.h"

namespace awaitd::server {

using google::protobuf::Struct;
using google::protobuf::Value;

namespace {

// Integers travel as doubles: beyond 2^53 they are no longer exact.
constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53

}  // namespace

Args::Args(const Struct& args, std::initializer_list<std::string_view> allowed)
    : args_(args) {
  const std::string* unknown = nullptr;
  for (const auto& [name, value] : args.fields()) {
    if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) {
      continue;
    }
    if (unknown == nullptr || name < *unknown) unknown = &name;
  }
  if (unknown == nullptr) return;
  std::string shown =
      unknown->size() > 64 ? StrCat(unknown->substr(0, 64), "...") : *unknown;
  std::string takes;
  for (std::string_view name : allowed) {
    StrAppend(&takes, takes.empty() ? "" : ", ", name);
  }
  status_ = absl::InvalidArgumentError(StrCat(
      CHexEscape(shown), ": unknown field (this kind takes: ", takes, ")"));
}

const Value* Args::Find(std::string_view name) const {
  auto it = args_.fields().find(name);
  return it == args_.fields().end() ? nullptr : &it->second;
}

bool Args::Absent(std::string_view name) const {
  return status_.ok() && Find(name) == nullptr;
}

void Args::Refuse(std::string_view name, std::string_view message) {
  if (status_.ok()) {
    status_ = absl::InvalidArgumentError(StrCat(name, ": ", message));
  }
}

const Value* Args::Field(std::string_view name, bool required, bool* absent) {
  *absent = false;
  if (!status_.ok()) return nullptr;
  const Value* v = Find(name);
  if (v == nullptr) {
    *absent = true;
    if (required) Refuse(name, "required");
  }
  return v;
}

std::optional<double> Args::ReadNumber(std::string_view name, bool required,
                                       const NumberRule& rule, bool integer) {
  bool absent;
  const Value* v = Field(name, required, &absent);
  if (v == nullptr) return std::nullopt;
  const std::string_view what = integer ? "an integer" : "a number";
  if (v->kind_case() != Value::kNumberValue) {
    Refuse(name, StrCat("must be ", what, " (got ", ValueKindName(*v), ")"));
    return std::nullopt;
  }
  const double x = v->number_value();
  const bool integral_ok = !integer || std::trunc(x) == x;
  const bool min_ok = !rule.min.has_value() ||
                      (rule.min_exclusive ? x > *rule.min : x >= *rule.min);
  if (!std::isfinite(x) || !integral_ok || !min_ok) {
    std::string bound;
    if (rule.min.has_value()) {
      bound =
          StrCat(rule.min_exclusive ? " > " : " >= ", FormatNumber(*rule.min));
    }
    Refuse(name, StrCat("must be ", integer ? "an integer" : "a finite number",
                        bound, " (got ", FormatNumber(x), ")"));
    return std::nullopt;
  }
  std::optional<double> max = rule.max;
  std::string_view max_note = rule.max_note;
  if (integer && (!max.has_value() || *max > kMaxExactInteger)) {
    max = kMaxExactInteger;
    max_note = "2^53";
  }
  if (max.has_value() && x > *max) {
    std::string bound = FormatNumber(*max);
    if (!max_note.empty()) StrAppend(&bound, " (", max_note, ")");
    Refuse(name,
           StrCat("must be at most ", bound, " (got ", FormatNumber(x), ")"));
    return std::nullopt;
  }
  if (integer && x < -kMaxExactInteger) {
    Refuse(name, StrCat("must be at least -9007199254740992 (-2^53) "
                        "(got ",
                        FormatNumber(x), ")"));
    return std::nullopt;
  }
  return x;
}

double Args::Number(std::string_view name, const NumberRule& rule) {
  return ReadNumber(name, /*required=*/true, rule, /*integer=*/false)
      .value_or(0);
}

double Args::NumberOr(std::string_view name, double fallback,
                      const NumberRule& rule) {
  if (Absent(name)) return fallback;
  return ReadNumber(name, /*required=*/false, rule, /*integer=*/false)
      .value_or(0);
}

std::int64_t Args::Integer(std::string_view name, const NumberRule& rule) {
  return static_cast<std::int64_t>(
      ReadNumber(name, /*required=*/true, rule, /*integer=*/true).value_or(0));
}

std::int64_t Args::IntegerOr(std::string_view name, std::int64_t fallback,
                             const NumberRule& rule) {
  if (Absent(name)) return fallback;
  return static_cast<std::int64_t>(
      ReadNumber(name, /*required=*/false, rule, /*integer=*/true).value_or(0));
}

const Value* Args::ReadTyped(std::string_view name, bool required,
                             Value::KindCase kind, std::string_view what) {
  bool absent;
  const Value* v = Field(name, required, &absent);
  if (v == nullptr) return nullptr;
  if (v->kind_case() != kind) {
    Refuse(name, StrCat("must be ", what, " (got ", ValueKindName(*v), ")"));
    return nullptr;
  }
  return v;
}

std::string Args::String(std::string_view name, const StringRule& rule) {
  const Value* v =
      ReadTyped(name, /*required=*/true, Value::kStringValue, "a string");
  if (v == nullptr) return std::string();
  if (v->string_value().size() > rule.max_length) {
    Refuse(name, StrCat("must be at most ", rule.max_length, " bytes (got ",
                        v->string_value().size(), ")"));
    return std::string();
  }
  return v->string_value();
}

std::string Args::StringOr(std::string_view name, std::string_view fallback,
                           const StringRule& rule) {
  if (Absent(name)) return std::string(fallback);
  return String(name, rule);
}

bool Args::Bool(std::string_view name) {
  const Value* v =
      ReadTyped(name, /*required=*/true, Value::kBoolValue, "a bool");
  return v != nullptr && v->bool_value();
}

bool Args::BoolOr(std::string_view name, bool fallback) {
  if (Absent(name)) return fallback;
  return Bool(name);
}

Value Args::Any(std::string_view name) {
  bool absent;
  const Value* v = Field(name, /*required=*/true, &absent);
  return v == nullptr ? NullValue() : *v;
}

Value Args::AnyOr(std::string_view name, Value fallback) {
  bool absent;
  const Value* v = Field(name, /*required=*/false, &absent);
  if (v != nullptr) return *v;
  return absent ? std::move(fallback) : NullValue();
}

Value NullValue() {
  Value v;
  v.set_null_value(google::protobuf::NULL_VALUE);
  return v;
}

Value NumberValue(double x) {
  Value v;
  v.set_number_value(x);
  return v;
}

Value StringValue(std::string s) {
  Value v;
  v.set_string_value(std::move(s));
  return v;
}

Value BoolValue(bool b) {
  Value v;
  v.set_bool_value(b);
  return v;
}

std::string_view ValueKindName(const Value& v) {
  switch (v.kind_case()) {
    case Value::kNullValue:
      return "null";
    case Value::kNumberValue:
      return "number";
    case Value::kStringValue:
      return "string";
    case Value::kBoolValue:
      return "bool";
    case Value::kStructValue:
      return "object";
    case Value::kListValue:
      return "list";
    default:
      return "unset";
  }
}

std::string FormatNumber(double x) {
  if (std::trunc(x) == x && std::fabs(x) < 1e15) {
    return StrCat(static_cast<std::int64_t>(x));
  }
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), x);
  if (ec != std::errc()) return StrCat(x);
  return std::string(buf, end);
}

}  // namespace awaitd::server
