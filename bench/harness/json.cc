// The harness's JSON: Boost.JSON values and parser, with numbers printed and
// read the way the benchmark files always had them (harness.h says why).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "bench/harness/harness.h"
#include "boost/json/basic_parser_impl.hpp"
#include "boost/json/serialize.hpp"
#include "boost/json/value_stack.hpp"

namespace awaitd::bench {
namespace {

namespace json = boost::json;

void Append(const json::value& v, std::string& out) {
  switch (v.kind()) {
    case json::kind::null:
      out += "null";
      break;
    case json::kind::bool_:
      out += v.get_bool() ? "true" : "false";
      break;
    case json::kind::int64:
      out += std::to_string(v.get_int64());
      break;
    case json::kind::uint64:
      out += std::to_string(v.get_uint64());
      break;
    case json::kind::double_: {
      const double d = v.get_double();
      if (!std::isfinite(d)) {
        out += "null";
      } else {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.17g", d);
        out += buf;
      }
      break;
    }
    case json::kind::string:
      out += json::serialize(v.get_string());
      break;
    case json::kind::array: {
      out += '[';
      bool first = true;
      for (const json::value& e : v.get_array()) {
        if (!first) out += ',';
        first = false;
        Append(e, out);
      }
      out += ']';
      break;
    }
    case json::kind::object: {
      out += '{';
      bool first = true;
      for (const json::key_value_pair& kv : v.get_object()) {
        if (!first) out += ',';
        first = false;
        out += json::serialize(kv.key());
        out += ':';
        Append(kv.value(), out);
      }
      out += '}';
      break;
    }
  }
}

// A json::basic_parser handler that builds a json::value like json::parse
// does, except that every number is a double converted by strtod from the
// number's text (the parser hands the text over beside its own conversion).
class ExactNumbers {
 public:
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  json::value Release() { return stack_.release(); }

  bool on_document_begin(json::error_code&) {
    stack_.reset();
    return true;
  }
  bool on_document_end(json::error_code&) { return true; }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(std::size_t n, json::error_code&) {
    stack_.push_array(n);
    return true;
  }
  bool on_object_begin(json::error_code&) { return true; }
  bool on_object_end(std::size_t n, json::error_code&) {
    stack_.push_object(n);
    return true;
  }
  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    stack_.push_chars(s);
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code&) {
    stack_.push_string(s);
    return true;
  }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    stack_.push_chars(s);
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    stack_.push_key(s);
    return true;
  }
  bool on_number_part(json::string_view s, json::error_code&) {
    number_.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t, json::string_view s, json::error_code&) {
    return PushNumber(s);
  }
  bool on_uint64(std::uint64_t, json::string_view s, json::error_code&) {
    return PushNumber(s);
  }
  bool on_double(double, json::string_view s, json::error_code&) {
    return PushNumber(s);
  }
  bool on_bool(bool b, json::error_code&) {
    stack_.push_bool(b);
    return true;
  }
  bool on_null(json::error_code&) {
    stack_.push_null();
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  bool PushNumber(json::string_view last_part) {
    number_.append(last_part.data(), last_part.size());
    stack_.push_double(std::strtod(number_.c_str(), nullptr));
    number_.clear();
    return true;
  }

  json::value_stack stack_;
  std::string number_;  // the number's text so far
};

std::string StringOr(const json::object& o, std::string_view key,
                     const std::string& fallback) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string())
                                        : fallback;
}

double NumberOr(const json::object& o, std::string_view key, double fallback) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_number() ? v->to_number<double>() : fallback;
}

json::value Optional(const std::optional<bool>& b) {
  return b ? json::value(*b) : json::value(nullptr);
}

}  // namespace

std::string Serialize(const json::value& v) {
  std::string out;
  Append(v, out);
  return out;
}

std::optional<json::value> ParseJson(std::string_view text) {
  // Rows carry error messages from elsewhere (gRPC, the OS): take their bytes
  // as they come, as the writer does.
  json::parse_options options;
  options.allow_invalid_utf8 = true;
  json::basic_parser<ExactNumbers> parser(options);
  json::error_code ec;
  const std::size_t n = parser.write_some(false, text.data(), text.size(), ec);
  if (ec || !parser.done() || n != text.size()) return std::nullopt;
  return parser.handler().Release();
}

json::object ResultToJson(const Result& r) {
  json::object o;
  o["benchmark"] = r.benchmark;
  o["metric"] = r.metric;
  o["unit"] = r.unit;
  o["value"] = r.value;
  o["baseline"] = r.baseline;
  o["ratio"] = r.ratio();
  if (r.target) {
    json::object t;
    t["on"] = r.target->on == Target::On::kRatio ? "ratio" : "value";
    t["op"] = r.target->at_most ? "<=" : ">=";
    t["bound"] = r.target->bound;
    o["target"] = std::move(t);
  } else {
    o["target"] = nullptr;
  }
  o["pass"] = Optional(r.pass());
  return o;
}

std::optional<Result> ResultFromJson(const json::value& j) {
  const json::object* o = j.if_object();
  if (o == nullptr) return std::nullopt;
  Result r;
  r.benchmark = StringOr(*o, "benchmark", "?");
  r.metric = StringOr(*o, "metric", "?");
  r.unit = StringOr(*o, "unit", "");
  r.value = NumberOr(*o, "value", kNaN);
  r.baseline = NumberOr(*o, "baseline", kNaN);
  if (const json::value* t = o->if_contains("target");
      t != nullptr && t->is_object()) {
    const json::object& to = t->get_object();
    Target target;
    target.on = StringOr(to, "on", "value") == "ratio" ? Target::On::kRatio
                                                       : Target::On::kValue;
    target.at_most = StringOr(to, "op", "<=") == "<=";
    target.bound = NumberOr(to, "bound", kNaN);
    r.target = target;
  }
  return r;
}

bool WriteJsonFile(const std::string& path, const json::object& machine,
                   const std::vector<Result>& results) {
  std::ofstream f(path);
  if (!f) return false;
  f << "{\"machine\":" << Serialize(machine) << ",\n\"results\":[\n";
  for (std::size_t i = 0; i < results.size(); ++i) {
    f << Serialize(ResultToJson(results[i]))
      << (i + 1 < results.size() ? ",\n" : "\n");
  }
  f << "]}\n";
  return static_cast<bool>(f);
}

}  // namespace awaitd::bench
