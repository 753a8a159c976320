// make_seeds: writes the structure-aware seed corpus of tests/fuzz, one
// folder per fuzz target (<out>/fuzz_submit/, ...), each seed the binary
// encoding of that target's request message. Built and run at build time
// (tests/fuzz/CMakeLists.txt), so the corpus is generated, never checked in.
//
//   make_seeds <out-dir>
//
// What the seeds cover: chains (Gathers of groups earlier inputs created:
// ids 1..256 name recent jobs, see fuzz_harness.h), duplicate ids (the same
// id thousands of times), deeply nested Structs and lists in args (at and
// past protobuf's recursion limit of 100 messages, which the daemon's gRPC
// server applies), huge counts (ids and jobs at, and one past, the harness
// daemon's limits), odd Durations and Timestamps (negative, nanos out of
// range or of the other sign, seconds past the proto range and int64's),
// empty and very long strings, unknown enum values, kinds and limits, and
// unknown fields.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "awaitd/v1/jobs.pb.h"

namespace awaitd::fuzz {
namespace {

namespace fs = std::filesystem;
using google::protobuf::Duration;
using google::protobuf::Message;
using google::protobuf::Struct;
using google::protobuf::Timestamp;
using google::protobuf::Value;

constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kInt64Min = std::numeric_limits<std::int64_t>::min();
constexpr std::int32_t kInt32Max = std::numeric_limits<std::int32_t>::max();
constexpr std::int32_t kInt32Min = std::numeric_limits<std::int32_t>::min();
// The harness daemon's limits (fuzz_harness.cc): at and one past each.
constexpr int kMaxBatch = 1000;
constexpr int kMaxIdsPerCall = 10'000;

class Writer {
 public:
  explicit Writer(fs::path dir) : dir_(std::move(dir)) {
    fs::create_directories(dir_);
  }
  // Writes `m` (then `suffix`, raw bytes: unknown fields) as seed `name`.
  void Add(const std::string& name, const Message& m,
           const std::string& suffix = "") {
    std::string bytes;
    if (!m.SerializeToString(&bytes)) {
      std::fprintf(stderr, "make_seeds: %s: cannot serialize\n", name.c_str());
      std::exit(1);
    }
    Write(name, bytes + suffix);
  }
  void Write(const std::string& name, const std::string& bytes) {
    std::ofstream out(dir_ / name, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::fprintf(stderr, "make_seeds: cannot write %s\n",
                   (dir_ / name).c_str());
      std::exit(1);
    }
    ++count_;
  }
  int count() const { return count_; }

 private:
  fs::path dir_;
  int count_ = 0;
};

// Field 1000, varint 1 (no message of jobs.proto has it), and a
// length-delimited field 1001: unknown fields a parser must skip.
const std::string kUnknownFields =
    std::string("\xc0\x3e\x01", 3) + std::string(
                                         "\xca\x3e\x03"
                                         "abc",
                                         6);

Duration Dur(std::int64_t seconds, std::int32_t nanos) {
  Duration d;
  d.set_seconds(seconds);
  d.set_nanos(nanos);
  return d;
}
Timestamp Ts(std::int64_t seconds, std::int32_t nanos) {
  Timestamp t;
  t.set_seconds(seconds);
  t.set_nanos(nanos);
  return t;
}

// Durations that a validator must refuse or clamp, and a few fine ones.
std::vector<std::pair<std::string, Duration>> OddDurations() {
  return {
      {"zero", Dur(0, 0)},
      {"1ms", Dur(0, 1'000'000)},
      {"negative", Dur(-1, 0)},
      {"negative_nanos", Dur(0, -1)},
      {"mixed_signs", Dur(1, -5)},
      {"mixed_signs2", Dur(-1, 5)},
      {"nanos_1e9", Dur(0, 1'000'000'000)},
      {"nanos_int32_max", Dur(0, kInt32Max)},
      {"nanos_int32_min", Dur(0, kInt32Min)},
      {"proto_max", Dur(315'576'000'000, 999'999'999)},
      {"past_proto_max", Dur(315'576'000'001, 0)},
      {"int64_max", Dur(kInt64Max, 999'999'999)},
      {"int64_min", Dur(kInt64Min, -999'999'999)},
      {"a_year", Dur(366 * 86400, 0)},
      {"a_year_and_a_bit", Dur(366 * 86400 + 1, 0)},
  };
}

// Timestamps: before 0001-01-01, after 9999-12-31, int64's ends, bad nanos.
std::vector<std::pair<std::string, Timestamp>> OddTimestamps() {
  return {
      {"epoch", Ts(0, 0)},
      {"year_2000", Ts(946'684'800, 0)},
      {"year_2100", Ts(4'102'444'800, 0)},
      {"before_year_1", Ts(-62'135'596'801, 0)},
      {"after_year_9999", Ts(253'402'300'800, 0)},
      {"int64_max", Ts(kInt64Max, 0)},
      {"int64_min", Ts(kInt64Min, 0)},
      {"negative_nanos", Ts(1'700'000'000, -1)},
      {"nanos_1e9", Ts(1'700'000'000, 1'000'000'000)},
      {"nanos_int32_max", Ts(4'102'444'800, kInt32Max)},
  };
}

v1::JobSpec Spec(const std::string& kind) {
  v1::JobSpec s;
  s.set_kind(kind);
  return s;
}
v1::JobSpec Echo(double value) {
  v1::JobSpec s = Spec("echo");
  (*s.mutable_args()->mutable_fields())["value"].set_number_value(value);
  return s;
}
v1::JobSpec Sleep(double seconds) {
  v1::JobSpec s = Spec("sleep");
  (*s.mutable_args()->mutable_fields())["seconds"].set_number_value(seconds);
  return s;
}
v1::JobSpec FailSpec(const std::string& type, const std::string& message) {
  v1::JobSpec s = Spec("fail");
  auto& f = *s.mutable_args()->mutable_fields();
  f["type"].set_string_value(type);
  f["message"].set_string_value(message);
  return s;
}
v1::JobSpec WithArg(v1::JobSpec s, const std::string& key, double v) {
  (*s.mutable_args()->mutable_fields())[key].set_number_value(v);
  return s;
}

// A Value nested `depth` levels deep: Structs ({"a": {"a": ...}}) or lists
// ([[...]]). Each level is 3 protobuf messages (Value, Struct or ListValue,
// and the map entry for Structs), so protobuf's recursion limit of 100
// falls at about 30 levels inside a request.
Value Nested(int depth, bool lists) {
  Value v;
  v.set_string_value("bottom");
  for (int i = 0; i < depth; ++i) {
    Value outer;
    if (lists) {
      *outer.mutable_list_value()->add_values() = std::move(v);
    } else {
      (*outer.mutable_struct_value()->mutable_fields())["a"] = std::move(v);
    }
    v = std::move(outer);
  }
  return v;
}

v1::JobInput InputId(std::uint64_t id) {
  v1::JobInput in;
  in.set_id(id);
  return in;
}
v1::JobInput InputSpec(const v1::JobSpec& spec) {
  v1::JobInput in;
  *in.mutable_spec() = spec;
  return in;
}

// JobSpecs that exercise the job manager's validation; each seed of Submit,
// and inline in the combinators.
std::vector<std::pair<std::string, v1::JobSpec>> Specs() {
  std::vector<std::pair<std::string, v1::JobSpec>> out;
  out.emplace_back("echo", Echo(3));
  out.emplace_back("sleep_short", Sleep(0.001));
  out.emplace_back("sleep_long", Sleep(3600));
  out.emplace_back("sleep_negative", Sleep(-1));
  out.emplace_back("sleep_nan",
                   Sleep(std::numeric_limits<double>::quiet_NaN()));
  out.emplace_back("sleep_inf", Sleep(std::numeric_limits<double>::infinity()));
  out.emplace_back("sleep_huge", Sleep(1e300));
  out.emplace_back("fail", FailSpec("ValueError", "boom"));
  out.emplace_back("fail_empty_type", FailSpec("", ""));
  out.emplace_back("fail_long_message",
                   FailSpec(std::string(300, 'E'), std::string(70000, 'm')));
  out.emplace_back("factorial", WithArg(Spec("factorial"), "n", 20));
  out.emplace_back("factorial_171", WithArg(Spec("factorial"), "n", 171));
  out.emplace_back("factorial_fraction", WithArg(Spec("factorial"), "n", 2.5));
  out.emplace_back("factorial_negative", WithArg(Spec("factorial"), "n", -1));
  out.emplace_back("spin", WithArg(Spec("spin"), "cpu_ms", 1));
  out.emplace_back("spin_zero", WithArg(Spec("spin"), "cpu_ms", 0));
  out.emplace_back("blocking", WithArg(Spec("blocking"), "seconds", 0.001));
  out.emplace_back("hash",
                   WithArg(WithArg(Spec("hash"), "bytes", 64), "rounds", 2));
  out.emplace_back("hash_zero", WithArg(Spec("hash"), "bytes", 0));
  out.emplace_back("unknown_kind", Spec("no-such-kind"));
  out.emplace_back("empty_kind", Spec(""));
  out.emplace_back("long_kind", Spec(std::string(10'000, 'k')));
  out.emplace_back("no_args", Spec("echo"));
  {
    v1::JobSpec s = Echo(1);
    s.set_name("");
    out.emplace_back("empty_name", s);
    s.set_name(std::string(256, 'n'));
    out.emplace_back("name_256", s);
    s.set_name(std::string(257, 'n'));
    out.emplace_back("name_257", s);
    s.set_name(std::string(100'000, 'n'));
    out.emplace_back("name_100k", s);
    s.set_name("\xe2\x98\x83 snow \t\n\x01");
    out.emplace_back("name_odd_chars", s);
  }
  {
    v1::JobSpec s = Echo(1);
    s.set_idempotency_key("key-1");
    out.emplace_back("idempotency_key", s);
    s.set_idempotency_key(std::string(257, 'k'));
    out.emplace_back("idempotency_key_257", s);
  }
  for (int depth : {1, 10, 28, 30, 31, 32, 33, 34, 50, 99, 200}) {
    for (bool lists : {false, true}) {
      v1::JobSpec s = Spec("echo");
      (*s.mutable_args()->mutable_fields())["value"] = Nested(depth, lists);
      out.emplace_back(std::string(lists ? "deep_list_" : "deep_struct_") +
                           std::to_string(depth),
                       s);
    }
  }
  {
    v1::JobSpec s = Spec("echo");
    auto& f = *s.mutable_args()->mutable_fields();
    f["value"].set_string_value(std::string(70'000, 'v'));  // > 64 KiB args
    out.emplace_back("args_70k", s);
    v1::JobSpec wide = Spec("echo");
    auto& wf = *wide.mutable_args()->mutable_fields();
    wf["value"].set_null_value(google::protobuf::NULL_VALUE);
    for (int i = 0; i < 2000; ++i)
      wf["k" + std::to_string(i)].set_bool_value(true);
    out.emplace_back("args_2000_keys", wide);
  }
  for (const auto& [name, d] : OddDurations()) {
    v1::JobSpec s = Sleep(0.01);
    *s.mutable_timeout() = d;
    out.emplace_back("timeout_" + name, s);
    v1::JobSpec delayed = Echo(1);
    *delayed.mutable_delay() = d;
    out.emplace_back("delay_" + name, delayed);
  }
  for (const auto& [name, t] : OddTimestamps()) {
    v1::JobSpec s = Echo(1);
    *s.mutable_start_at() = t;
    out.emplace_back("start_at_" + name, s);
  }
  {
    v1::JobSpec s = Sleep(0.01);
    s.add_limits("fuzz");
    out.emplace_back("limit", s);
    s.add_limits("one");
    out.emplace_back("limits_two", s);
    s.add_limits("fuzz");
    out.emplace_back("limits_duplicate", s);
    v1::JobSpec unknown = Echo(1);
    unknown.add_limits("no-such-limit");
    out.emplace_back("limit_unknown", unknown);
    v1::JobSpec empty = Echo(1);
    empty.add_limits("");
    out.emplace_back("limit_empty", empty);
    v1::JobSpec many = Echo(1);
    for (int i = 0; i < 17; ++i) many.add_limits("fuzz");
    out.emplace_back("limits_17", many);
  }
  {
    v1::JobSpec s = Sleep(0.05);
    s.set_shield(true);
    *s.mutable_timeout() = Dur(0, 1'000'000);
    out.emplace_back("shielded_timeout", s);
  }
  return out;
}

void SubmitSeeds(Writer& w) {
  for (const auto& [name, spec] : Specs()) {
    v1::SubmitRequest r;
    *r.add_jobs() = spec;
    w.Add(name, r);
  }
  v1::SubmitRequest empty;
  w.Add("empty", empty);
  w.Add("unknown_fields", empty, kUnknownFields);
  for (int n : {kMaxBatch, kMaxBatch + 1}) {
    v1::SubmitRequest r;
    for (int i = 0; i < n; ++i) *r.add_jobs() = Echo(i);
    w.Add("batch_" + std::to_string(n), r);
  }
  {
    v1::SubmitRequest r;  // one bad job in a batch: nothing is accepted
    for (int i = 0; i < 10; ++i) *r.add_jobs() = Echo(i);
    *r.add_jobs() = Sleep(-1);
    w.Add("batch_one_bad", r);
  }
  {
    v1::SubmitRequest r;  // the same idempotency key twice in one batch
    v1::JobSpec s = Echo(1);
    s.set_idempotency_key("twice");
    *r.add_jobs() = s;
    *r.add_jobs() = s;
    w.Add("idempotency_key_twice", r);
  }
}

void IdSeeds(
    Writer& w, const std::string& what,
    const std::function<Message*(const std::vector<std::uint64_t>&)>& make) {
  std::vector<std::pair<std::string, std::vector<std::uint64_t>>> sets = {
      {"empty", {}},
      {"zero", {0}},
      {"newest", {1}},
      {"recent", {1, 2, 3, 4, 5, 6, 7, 8}},
      {"far", {257, 1000, 1'000'000}},
      {"max", {std::numeric_limits<std::uint64_t>::max()}},
      {"duplicates_5000", std::vector<std::uint64_t>(5000, 1)},
      {"at_limit", std::vector<std::uint64_t>(kMaxIdsPerCall, 2)},
      {"past_limit", std::vector<std::uint64_t>(kMaxIdsPerCall + 1, 2)},
  };
  for (const auto& [name, ids] : sets) {
    std::unique_ptr<Message> m(make(ids));
    w.Add(what + name, *m);
  }
}

// Seeds of a combinator over JobInputs, each named `prefix` + what it holds;
// `finish` sets the request's other fields.
template <typename Request>
void InputSeeds(Writer& w, const std::string& prefix,
                const std::function<void(Request*)>& finish,
                bool with_specs = true) {
  auto add = [&](const std::string& name, std::vector<v1::JobInput> inputs) {
    Request r;
    for (auto& in : inputs) *r.add_jobs() = std::move(in);
    finish(&r);
    w.Add(prefix + name, r);
  };
  add("empty", {});
  add("empty_input", {v1::JobInput()});
  add("echo", {InputSpec(Echo(1))});
  add("echo_and_sleep", {InputSpec(Echo(1)), InputSpec(Sleep(0.01))});
  add("fail_and_sleep",
      {InputSpec(FailSpec("ValueError", "x")), InputSpec(Sleep(0.01))});
  add("chain_recent", {InputId(1), InputId(2), InputId(3)});
  add("chain_recent_and_new", {InputId(1), InputSpec(Echo(2)), InputId(1)});
  add("id_zero", {InputId(0)});
  add("id_unknown", {InputId(1'000'000'000)});
  add("duplicates_5000", std::vector<v1::JobInput>(5000, InputId(1)));
  {
    std::vector<v1::JobInput> many;
    for (int i = 0; i < kMaxBatch + 1; ++i) many.push_back(InputSpec(Echo(i)));
    add("specs_past_batch", many);
  }
  {
    std::vector<v1::JobInput> recent;
    for (std::uint64_t i = 1; i <= 64; ++i) recent.push_back(InputId(i));
    add("recent_64", recent);
  }
  if (!with_specs) return;
  for (const auto& [name, spec] : Specs())
    add("spec_" + name, {InputSpec(spec)});
}

void Generate(const fs::path& out) {
  int total = 0;
  auto report = [&](const Writer& w, const char* target) {
    std::printf("make_seeds: %s: %d seeds\n", target, w.count());
    total += w.count();
  };

  {
    Writer w(out / "fuzz_submit");
    SubmitSeeds(w);
    report(w, "fuzz_submit");
  }
  {
    Writer w(out / "fuzz_get");
    IdSeeds(w, "", [](const std::vector<std::uint64_t>& ids) {
      auto* r = new v1::GetRequest;
      for (auto id : ids) r->add_ids(id);
      return r;
    });
    w.Add("unknown_fields", v1::GetRequest(), kUnknownFields);
    report(w, "fuzz_get");
  }
  {
    Writer w(out / "fuzz_cancel");
    for (const auto& [label, text] :
         std::vector<std::pair<std::string, std::string>>{
             {"", ""},
             {"msg_", "stop"},
             {"msg1025_", std::string(1025, 'm')}}) {
      const std::string& msg = text;
      IdSeeds(w, label, [&msg](const std::vector<std::uint64_t>& ids) {
        auto* r = new v1::CancelRequest;
        for (auto id : ids) r->add_ids(id);
        r->set_message(msg);
        return r;
      });
    }
    report(w, "fuzz_cancel");
  }
  {
    Writer w(out / "fuzz_watch");
    IdSeeds(w, "", [](const std::vector<std::uint64_t>& ids) {
      auto* r = new v1::WatchRequest;
      for (auto id : ids) r->add_ids(id);
      return r;
    });
    report(w, "fuzz_watch");
  }
  {
    Writer w(out / "fuzz_wait");
    for (int when : {0, 1, 2, 3, 4, -1}) {
      InputSeeds<v1::WaitRequest>(
          w, "rw" + std::to_string(when) + "_",
          [when](v1::WaitRequest* r) {
            r->set_return_when(static_cast<v1::ReturnWhen>(when));
          },
          /*with_specs=*/when == 0);
    }
    for (const auto& [name, d] : OddDurations()) {
      v1::WaitRequest r;
      *r.add_jobs() = InputSpec(Sleep(0.01));
      *r.mutable_timeout() = d;
      w.Add("rw_timeout_" + name, r);
    }
    w.Add("rw_unknown_fields", v1::WaitRequest(), kUnknownFields);
    report(w, "fuzz_wait");
  }
  {
    Writer w(out / "fuzz_gather");
    InputSeeds<v1::GatherRequest>(w, "", [](v1::GatherRequest*) {});
    v1::GatherRequest r;
    *r.add_jobs() = InputSpec(FailSpec("KeyError", "k"));
    *r.add_jobs() = InputSpec(Sleep(0.001));
    r.set_return_exceptions(true);
    w.Add("return_exceptions", r);
    r.set_name(std::string(257, 'g'));
    w.Add("return_exceptions_long_name", r);
    v1::GatherRequest groups;  // a gather of the gathers earlier inputs made
    for (std::uint64_t i = 1; i <= 16; i += 2) *groups.add_jobs() = InputId(i);
    w.Add("chain_of_groups", groups);
    report(w, "fuzz_gather");
  }
  {
    Writer w(out / "fuzz_as_completed");
    InputSeeds<v1::AsCompletedRequest>(w, "", [](v1::AsCompletedRequest*) {});
    for (const auto& [name, d] : OddDurations()) {
      v1::AsCompletedRequest r;
      *r.add_jobs() = InputSpec(Echo(1));
      *r.add_jobs() = InputSpec(Sleep(0.01));
      *r.mutable_timeout() = d;
      w.Add("timeout_" + name, r);
    }
    report(w, "fuzz_as_completed");
  }
  {
    Writer w(out / "fuzz_wait_for");
    w.Add("no_job", v1::WaitForRequest());
    w.Add("empty_input", [] {
      v1::WaitForRequest r;
      r.mutable_job();
      return r;
    }());
    for (std::uint64_t id : {0ull, 1ull, 2ull, 1'000'000ull}) {
      v1::WaitForRequest r;
      *r.mutable_job() = InputId(id);
      w.Add("id_" + std::to_string(id), r);
    }
    for (const auto& [name, spec] : Specs()) {
      v1::WaitForRequest r;
      *r.mutable_job() = InputSpec(spec);
      w.Add("spec_" + name, r);
    }
    for (const auto& [name, d] : OddDurations()) {
      v1::WaitForRequest r;
      *r.mutable_job() = InputSpec(Sleep(0.01));
      *r.mutable_timeout() = d;
      w.Add("timeout_" + name, r);
      v1::JobSpec shielded = Sleep(0.01);
      shielded.set_shield(true);
      *r.mutable_job() = InputSpec(shielded);
      w.Add("shielded_timeout_" + name, r);
    }
    report(w, "fuzz_wait_for");
  }
  {
    Writer w(out / "fuzz_run_group");
    w.Add("empty", v1::RunGroupRequest());
    for (const auto& [name, spec] : Specs()) {
      v1::RunGroupRequest r;
      *r.add_jobs() = spec;
      *r.add_jobs() = Echo(2);
      w.Add(name, r);
    }
    v1::RunGroupRequest r;
    *r.add_jobs() = FailSpec("ValueError", "one");
    *r.add_jobs() = FailSpec("TypeError", "two");
    *r.add_jobs() = Sleep(1);
    v1::JobSpec shielded = Sleep(0.01);
    shielded.set_shield(true);
    *r.add_jobs() = shielded;
    w.Add("two_failures_and_siblings", r);
    v1::RunGroupRequest big;
    for (int i = 0; i < kMaxBatch + 1; ++i) *big.add_jobs() = Echo(i);
    w.Add("past_batch", big);
    big.mutable_jobs()->RemoveLast();
    w.Add("at_batch", big);
    report(w, "fuzz_run_group");
  }
  {
    Writer w(out / "fuzz_list");
    for (int state : {0, 1, 2, 3, 4, 5, 6, 99, -5}) {
      for (int page_size : {0, 1, 1000, 1001, -1, kInt32Max}) {
        v1::ListRequest r;
        r.set_state(static_cast<v1::JobState>(state));
        r.set_page_size(page_size);
        w.Add("state" + std::to_string(state) + "_page" +
                  std::to_string(page_size),
              r);
      }
    }
    for (const auto& [name, token] :
         std::vector<std::pair<std::string, std::string>>{
             {"token_digits", "12345"},
             {"token_zero", "0"},
             {"token_negative", "-1"},
             {"token_huge", "99999999999999999999999999"},
             {"token_garbage", "not a token"},
             {"token_long", std::string(100'000, '9')}}) {
      v1::ListRequest r;
      r.set_page_token(token);
      w.Add(name, r);
    }
    v1::ListRequest r;
    r.set_kind("echo");
    r.set_name_prefix("Job-");
    w.Add("kind_and_prefix", r);
    r.set_kind(std::string(10'000, 'k'));
    r.set_name_prefix(std::string(10'000, 'p'));
    w.Add("long_filters", r);
    report(w, "fuzz_list");
  }
  {
    Writer w(out / "fuzz_declare_limit");
    for (const auto& [name, permits] :
         std::vector<std::pair<std::string, std::uint32_t>>{
             {"fuzz", 2},  // as declared: a no-op
             {"fuzz", 3},  // another size: FAILED_PRECONDITION
             {"new", 1},
             {"new", 0},
             {"", 1},
             {"big", std::numeric_limits<std::uint32_t>::max()},
             {std::string(300, 'l'), 1},
             {"a:b", 2},
             {"sp ace", 2}}) {
      v1::DeclareLimitRequest r;
      r.set_name(name);
      r.set_permits(permits);
      w.Add("limit_" + std::to_string(w.count()), r);
    }
    w.Add("unknown_fields", v1::DeclareLimitRequest(), kUnknownFields);
    report(w, "fuzz_declare_limit");
  }
  {
    // The first byte picks ListLimits (even) or ListKinds (odd).
    Writer w(out / "fuzz_list_limits_and_kinds");
    w.Write("limits", std::string(1, '\0'));
    w.Write("kinds", std::string(1, '\1'));
    w.Write("limits_unknown_fields", std::string(1, '\0') + kUnknownFields);
    w.Write("kinds_unknown_fields", std::string(1, '\1') + kUnknownFields);
    report(w, "fuzz_list_limits_and_kinds");
  }
  std::printf("make_seeds: %d seeds in %s\n", total, out.c_str());
}

}  // namespace
}  // namespace awaitd::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <out-dir>\n", argv[0]);
    return 2;
  }
  awaitd::fuzz::Generate(argv[1]);
  return 0;
}
