// runtime_bench: throughput, latency and memory benchmarks for awaitd's
// coroutine runtime, with oneTBB / std::thread baselines where one makes sense.
//
//   runtime_bench [--benchmarks=fanout,sleep,skew,blocking,pingpong]
//                 [--workers=N] [--repetitions=K] [--json=PATH] [size flags]
//
// Every benchmark runs in a fresh child process (this binary re-executed with
// --child=<name> and the same flags), which prints one JSON line with its
// results on stdout. Fresh processes matter: the runtime's frame allocator
// keeps the memory it has used, so RSS growth is only meaningful in a new
// process, and it keeps benchmarks from disturbing each other. The parent
// prints one table (and optionally writes JSON) with every result: value,
// baseline, value / baseline, the target and whether it was met.
//
// Benchmarks:
//   fanout    one task spawns N no-op tasks and joins them all (tasks/s), vs
//             tbb::task_group; also a detached variant counted by an atomic.
//   sleep     N tasks sleeping 1 s at once: wall time and peak RSS per task.
//   skew      N ~100 us CPU tasks spawned from one task: makespan / ideal.
//   blocking  1 ms sleep lateness while 64 ToThread calls keep the blocking
//             pool busy, vs the same with the pool idle.
//   pingpong  spawn+join round trip, Yield-based token ping-pong, and the cost
//             of Yield() on a 1-worker runtime.
//   cancel    spawn a task that sleeps, cancel it, join it (CancelledError):
//             ns per task, beside spawn + join of a task that returns at once.
//   gather    Gather of 100,000 tasks: ns per task, beside joining the same
//             handles one by one.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <semaphore>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "oneapi/tbb/global_control.h"
#include "oneapi/tbb/task_group.h"
#include "runtime/combinators.h"
#include "runtime/internal/frame_allocator.h"
#include "runtime/runtime.h"
#include "runtime/time.h"
#include "runtime/to_thread.h"

ABSL_FLAG(std::string, benchmarks,
          "fanout,sleep,skew,blocking,pingpong,cancel,gather",
          "Comma-separated benchmarks to run");
ABSL_FLAG(std::uint32_t, workers, 0,
          "Runtime workers (0: hardware concurrency)");
ABSL_FLAG(std::string, json, "", "Write the results as JSON to this path");
ABSL_FLAG(int, repetitions, 3,
          "Repetitions of the fast benchmarks (fanout, skew, pingpong); the "
          "median is reported");
ABSL_FLAG(bool, verbose, false, "Print every repetition's value to stderr");
ABSL_FLAG(bool, fail_on_miss, false,
          "Exit with status 1 if any target is missed");
ABSL_FLAG(std::string, child, "",
          "Internal: run one benchmark and print its results as JSON");

ABSL_FLAG(std::int64_t, fanout_tasks, 2'000'000,
          "fanout: tasks spawned per run");
ABSL_FLAG(std::int64_t, sleep_tasks, 1'000'000, "sleep: sleeping tasks");
ABSL_FLAG(std::int64_t, sleep_ms, 1000, "sleep: how long each task sleeps");
ABSL_FLAG(std::int64_t, skew_tasks, 20'000, "skew: CPU-bound tasks");
ABSL_FLAG(std::int64_t, skew_task_us, 100,
          "skew: CPU work per task (calibrated)");
ABSL_FLAG(int, blocking_calls, 64, "blocking: concurrent ToThread calls");
ABSL_FLAG(std::int64_t, blocking_call_ms, 50,
          "blocking: how long each ToThread call sleeps");
ABSL_FLAG(int, blocking_sleeps, 1000, "blocking: 1 ms sleeps measured");
ABSL_FLAG(std::int64_t, blocking_sleep_us, 1000,
          "blocking: the measured sleep's length");
ABSL_FLAG(std::int64_t, pingpong_round_trips, 1'000'000,
          "pingpong: round trips per run");
ABSL_FLAG(std::int64_t, yields, 10'000'000, "pingpong: Yield() calls per run");
ABSL_FLAG(std::int64_t, cancel_tasks, 1'000'000,
          "cancel: sleeping tasks spawned, cancelled, joined");
ABSL_FLAG(std::int64_t, gather_tasks, 100'000,
          "gather: tasks gathered in one Gather");

namespace {

using awaitd::runtime::CancelledError;
using awaitd::runtime::Gather;
using awaitd::runtime::JoinHandle;
using awaitd::runtime::Runtime;
using awaitd::runtime::RuntimeOptions;
using awaitd::runtime::Sleep;
using awaitd::runtime::SleepUntil;
using awaitd::runtime::Task;
using awaitd::runtime::ToThread;
using awaitd::runtime::Yield;
using Clock = std::chrono::steady_clock;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}
double Nanos(Clock::duration d) {
  return std::chrono::duration<double, std::nano>(d).count();
}
std::int64_t NanosInt(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

// With --verbose, prints the values of every repetition behind a median.
void LogReps(const char* what, const std::vector<double>& v) {
  if (!absl::GetFlag(FLAGS_verbose)) return;
  std::string line = std::string("  ") + what + ":";
  for (double x : v) line += " " + std::to_string(x);
  std::fprintf(stderr, "%s\n", line.c_str());
}

double Median(std::vector<double> v) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The q-quantile (0..1) of `v`, nearest rank.
double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  const auto rank =
      static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

std::uint32_t Workers() {
  const std::uint32_t w = absl::GetFlag(FLAGS_workers);
  return w != 0 ? w : std::max(1u, std::thread::hardware_concurrency());
}

// Runtime options for every benchmark: the spawning tasks here legitimately
// run for longer than the stall threshold (a loop of a million spawns), so
// stall reports are not logged (they are still counted in Metrics().stalls);
// every other runtime log line goes to stderr.
RuntimeOptions BenchOptions(std::uint32_t workers) {
  RuntimeOptions o;
  o.workers = workers;
  o.log_sink = [](awaitd::runtime::LogLevel level, std::string_view message) {
    if (message.find("event=stall ") != std::string_view::npos) return;
    awaitd::runtime::StderrLogSink(level, message);
  };
  return o;
}

int Repetitions() { return std::max(1, absl::GetFlag(FLAGS_repetitions)); }

// Lets threads of the previous run (TBB's spinning workers, pool threads)
// settle before the next timed run.
void Settle() { std::this_thread::sleep_for(std::chrono::milliseconds(50)); }

// --- Results
// ------------------------------------------------------------------

// A pass/fail criterion on the value or on value / baseline.
struct Target {
  enum class On { kValue, kRatio };
  On on = On::kValue;
  bool at_most = true;  // true: <= bound; false: >= bound
  double bound = 0;

  bool Met(double x) const { return at_most ? x <= bound : x >= bound; }
};

struct Result {
  std::string benchmark;
  std::string metric;
  std::string unit;
  double value = kNaN;
  double baseline = kNaN;  // NaN: none
  std::optional<Target> target;

  double ratio() const {
    return std::isnan(baseline) ? kNaN : value / baseline;
  }
  // Empty when there is no target (or the value is missing).
  std::optional<bool> pass() const {
    if (!target) return std::nullopt;
    const double x = target->on == Target::On::kRatio ? ratio() : value;
    if (std::isnan(x)) return false;
    return target->Met(x);
  }
};

Target AtMost(double bound, Target::On on = Target::On::kValue) {
  return {on, true, bound};
}
Target AtLeast(double bound, Target::On on = Target::On::kValue) {
  return {on, false, bound};
}

// --- A small JSON writer and reader (only what the results need) -------------

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string JsonNumber(double v) {
  if (std::isnan(v) || std::isinf(v)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string ResultJson(const Result& r) {
  std::string s = "{\"benchmark\":" + JsonString(r.benchmark) +
                  ",\"metric\":" + JsonString(r.metric) +
                  ",\"unit\":" + JsonString(r.unit) +
                  ",\"value\":" + JsonNumber(r.value) +
                  ",\"baseline\":" + JsonNumber(r.baseline) +
                  ",\"ratio\":" + JsonNumber(r.ratio());
  if (r.target) {
    s += ",\"target\":{\"on\":";
    s += r.target->on == Target::On::kRatio ? "\"ratio\"" : "\"value\"";
    s += ",\"op\":";
    s += r.target->at_most ? "\"<=\"" : "\">=\"";
    s += ",\"bound\":" + JsonNumber(r.target->bound) + "}";
  } else {
    s += ",\"target\":null";
  }
  const std::optional<bool> pass = r.pass();
  s += ",\"pass\":";
  s += pass ? (*pass ? "true" : "false") : "null";
  return s + "}";
}

// A parsed JSON value. Numbers are doubles; objects keep their keys sorted.
struct Json {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  double number = kNaN;
  std::string string;
  std::vector<Json> array;
  std::map<std::string, Json> object;

  const Json* Get(const std::string& key) const {
    auto it = object.find(key);
    return it == object.end() ? nullptr : &it->second;
  }
  double NumberOr(const std::string& key, double fallback) const {
    const Json* j = Get(key);
    return j != nullptr && j->kind == Kind::kNumber ? j->number : fallback;
  }
  std::string StringOr(const std::string& key,
                       const std::string& fallback) const {
    const Json* j = Get(key);
    return j != nullptr && j->kind == Kind::kString ? j->string : fallback;
  }
};

class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : s_(text) {}

  std::optional<Json> Parse() {
    std::optional<Json> v = Value();
    SkipSpace();
    if (!v || pos_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  void SkipSpace() {
    while (pos_ < s_.size() &&
           std::isspace(static_cast<unsigned char>(s_[pos_])))
      ++pos_;
  }
  bool Eat(char c) {
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool EatWord(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }
  std::optional<std::string> String() {
    if (!Eat('"')) return std::nullopt;
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (c == '\\' && pos_ < s_.size()) {
        char e = s_[pos_++];
        switch (e) {
          case 'n':
            out += '\n';
            break;
          case 't':
            out += '\t';
            break;
          case 'u':
            if (pos_ + 4 > s_.size()) return std::nullopt;
            out += static_cast<char>(std::strtol(
                std::string(s_.substr(pos_, 4)).c_str(), nullptr, 16));
            pos_ += 4;
            break;
          default:
            out += e;
        }
      } else {
        out += c;
      }
    }
    if (pos_ >= s_.size()) return std::nullopt;
    ++pos_;
    return out;
  }
  std::optional<Json> Value() {
    SkipSpace();
    if (pos_ >= s_.size()) return std::nullopt;
    Json j;
    const char c = s_[pos_];
    if (c == '{') {
      ++pos_;
      j.kind = Json::Kind::kObject;
      if (Eat('}')) return j;
      do {
        std::optional<std::string> key = String();
        if (!key || !Eat(':')) return std::nullopt;
        std::optional<Json> v = Value();
        if (!v) return std::nullopt;
        j.object[*key] = std::move(*v);
      } while (Eat(','));
      if (!Eat('}')) return std::nullopt;
    } else if (c == '[') {
      ++pos_;
      j.kind = Json::Kind::kArray;
      if (Eat(']')) return j;
      do {
        std::optional<Json> v = Value();
        if (!v) return std::nullopt;
        j.array.push_back(std::move(*v));
      } while (Eat(','));
      if (!Eat(']')) return std::nullopt;
    } else if (c == '"') {
      std::optional<std::string> str = String();
      if (!str) return std::nullopt;
      j.kind = Json::Kind::kString;
      j.string = std::move(*str);
    } else if (EatWord("null")) {
      j.kind = Json::Kind::kNull;
    } else if (EatWord("true") || EatWord("false")) {
      j.kind = Json::Kind::kBool;
      j.boolean = s_[pos_ - 1] == 'e' && s_[pos_ - 2] == 'u';
    } else {
      const std::string rest(s_.substr(pos_, 64));
      char* end = nullptr;
      j.number = std::strtod(rest.c_str(), &end);
      if (end == rest.c_str()) return std::nullopt;
      pos_ += static_cast<std::size_t>(end - rest.c_str());
      j.kind = Json::Kind::kNumber;
    }
    return j;
  }

  std::string_view s_;
  std::size_t pos_ = 0;
};

std::optional<Result> ResultFromJson(const Json& j) {
  if (j.kind != Json::Kind::kObject) return std::nullopt;
  Result r;
  r.benchmark = j.StringOr("benchmark", "?");
  r.metric = j.StringOr("metric", "?");
  r.unit = j.StringOr("unit", "");
  r.value = j.NumberOr("value", kNaN);
  r.baseline = j.NumberOr("baseline", kNaN);
  if (const Json* t = j.Get("target");
      t != nullptr && t->kind == Json::Kind::kObject) {
    Target target;
    target.on = t->StringOr("on", "value") == "ratio" ? Target::On::kRatio
                                                      : Target::On::kValue;
    target.at_most = t->StringOr("op", "<=") == "<=";
    target.bound = t->NumberOr("bound", kNaN);
    r.target = target;
  }
  return r;
}

// --- Memory
// ---------------------------------------------------------------------

// VmRSS of this process in bytes (0 if unreadable).
std::int64_t ReadRssBytes() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  std::int64_t kb = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, "VmRSS:", 6) == 0) {
      kb = std::strtoll(line + 6, nullptr, 10);
      break;
    }
  }
  std::fclose(f);
  return kb * 1024;
}

// Samples VmRSS every `period` on its own thread and keeps the peak.
class RssSampler {
 public:
  explicit RssSampler(std::chrono::microseconds period) : period_(period) {
    thread_ = std::thread([this] {
      while (!stop_.load(std::memory_order_relaxed)) {
        const std::int64_t rss = ReadRssBytes();
        if (rss > peak_.load(std::memory_order_relaxed))
          peak_.store(rss, std::memory_order_relaxed);
        samples_.fetch_add(1, std::memory_order_relaxed);
        std::this_thread::sleep_for(period_);
      }
    });
  }
  ~RssSampler() { Stop(); }
  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  void ResetPeak() { peak_.store(0); }
  std::int64_t peak() const { return peak_.load(); }
  std::int64_t samples() const { return samples_.load(); }

 private:
  const std::chrono::microseconds period_;
  std::atomic<bool> stop_{false};
  std::atomic<std::int64_t> peak_{0};
  std::atomic<std::int64_t> samples_{0};
  std::thread thread_;
};

// --- Shared tasks
// ---------------------------------------------------------------

Task<void> Noop() { co_return; }

void AtomicMax(std::atomic<std::int64_t>& a, std::int64_t v) {
  std::int64_t cur = a.load(std::memory_order_relaxed);
  while (v > cur &&
         !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

std::int64_t SinceEpochNs(Clock::time_point t) {
  return NanosInt(t.time_since_epoch());
}

// --- 1. fanout
// ----------------------------------------------------------------

// Spawns `n` no-op tasks keeping their handles, then joins (and drops) each.
// Returns the seconds from the first spawn to the last join.
Task<double> FanoutJoined(std::int64_t n) {
  std::vector<JoinHandle<void>> handles;
  handles.reserve(static_cast<std::size_t>(n));
  const auto start = Clock::now();
  for (std::int64_t i = 0; i < n; ++i) handles.push_back(Spawn(Noop()));
  for (auto& h : handles) {
    JoinHandle<void> joined = std::move(h);
    co_await joined;
  }
  co_return Seconds(Clock::now() - start);
}

// State that tasks on several workers update lives on its own cache lines
// and outside coroutine frames (GCC does not honour over-alignment of frame
// locals), so that it does not share a line with the spawner's frame.
struct alignas(64) Countdown {
  explicit Countdown(std::int64_t n) : remaining(n) {}
  std::atomic<std::int64_t> remaining;
  std::binary_semaphore done{0};
};

Task<void> NoopCounted(Countdown* c) {
  if (c->remaining.fetch_sub(1, std::memory_order_acq_rel) == 1)
    c->done.release();
  co_return;
}

// Spawns `n` detached no-op tasks that count down; one waiter (a ToThread
// call blocking on a semaphore, the runtime has no event primitive yet) wakes
// the spawner when the count reaches zero.
Task<double> FanoutDetached(std::int64_t n) {
  auto countdown = std::make_unique<Countdown>(n);
  Countdown* c = countdown.get();
  const auto start = Clock::now();
  for (std::int64_t i = 0; i < n; ++i) SpawnDetached(NoopCounted(c));
  co_await ToThread([c] { c->done.acquire(); });
  co_return Seconds(Clock::now() - start);
}

double TbbFanout(std::int64_t n) {
  tbb::task_group tg;
  const auto start = Clock::now();
  for (std::int64_t i = 0; i < n; ++i) tg.run([] {});
  tg.wait();
  return Seconds(Clock::now() - start);
}

std::vector<Result> RunFanout() {
  const std::int64_t n = absl::GetFlag(FLAGS_fanout_tasks);
  const std::uint32_t workers = Workers();
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism,
                            workers);
  Runtime rt(BenchOptions(workers));

  // Warm-up (not timed): thread pools started, allocator slabs and caches
  // filled, pages faulted in, for both sides.
  rt.BlockOn(FanoutJoined(n));
  rt.BlockOn(FanoutDetached(n));
  TbbFanout(n);

  std::vector<double> joined, detached, tbb;
  for (int rep = 0; rep < Repetitions(); ++rep) {
    // Rotate the order so that no side always runs first after a pause.
    for (int k = 0; k < 3; ++k) {
      Settle();
      switch ((rep + k) % 3) {
        case 0:
          joined.push_back(static_cast<double>(n) /
                           rt.BlockOn(FanoutJoined(n)));
          break;
        case 1:
          tbb.push_back(static_cast<double>(n) / TbbFanout(n));
          break;
        case 2:
          detached.push_back(static_cast<double>(n) /
                             rt.BlockOn(FanoutDetached(n)));
          break;
      }
    }
  }
  const auto m = rt.Metrics();
  std::uint64_t steals = 0, overflows = 0, parks = 0;
  for (const auto& w : m.workers) {
    steals += w.steal_operations;
    overflows += w.overflows;
    parks += w.parks;
  }
  const double runs = static_cast<double>(Repetitions() * 2 + 2);
  LogReps("fanout joined tasks/s", joined);
  LogReps("fanout detached tasks/s", detached);
  LogReps("fanout tbb tasks/s", tbb);
  const double tbb_median = Median(tbb);
  return {
      {"fanout", "spawn+join (handles kept)", "tasks/s", Median(joined),
       tbb_median, AtLeast(1.0, Target::On::kRatio)},
      {"fanout", "spawn detached + counter", "tasks/s", Median(detached),
       tbb_median, AtLeast(1.0, Target::On::kRatio)},
      {"fanout", "steal ops per run (info)", "steals",
       static_cast<double>(steals) / runs, kNaN, std::nullopt},
      {"fanout", "global-queue spills per run (info)", "spills",
       static_cast<double>(overflows) / runs, kNaN, std::nullopt},
      {"fanout", "worker parks per run (info)", "parks",
       static_cast<double>(parks) / runs, kNaN, std::nullopt},
  };
}

// --- 2. sleep
// -----------------------------------------------------------------

struct SleepState {
  explicit SleepState(std::int64_t n) : remaining(n) {}
  std::atomic<std::int64_t> remaining;
  std::atomic<std::int64_t> last_sleep_start_ns{0};
  std::atomic<std::int64_t> end_ns{0};
  std::atomic<bool> done{false};
};

// Kept minimal on purpose: every local that lives across the co_await makes
// each of the million frames bigger, and the frame size is what is measured.
Task<void> Sleeper(SleepState* s, Clock::duration d) {
  AtomicMax(s->last_sleep_start_ns, SinceEpochNs(Clock::now()));
  co_await Sleep(d);
  if (s->remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    s->end_ns.store(SinceEpochNs(Clock::now()));
    s->done.store(true);
    s->done.notify_all();
  }
}

// Spawns the sleepers (detached) and returns when all are spawned.
Task<void> SpawnSleepers(SleepState* s, std::int64_t n, Clock::duration d) {
  for (std::int64_t i = 0; i < n; ++i) SpawnDetached(Sleeper(s, d));
  co_return;
}

std::vector<Result> RunSleep() {
  const std::int64_t n = absl::GetFlag(FLAGS_sleep_tasks);
  const auto d = std::chrono::milliseconds(absl::GetFlag(FLAGS_sleep_ms));
  Runtime rt(BenchOptions(Workers()));
  RssSampler sampler(std::chrono::microseconds(1000));

  // Warm-up: workers running, a few sleeps through every worker's wheel and
  // driver, the sampler thread's stack touched.
  {
    SleepState warm(1000);
    rt.BlockOn(SpawnSleepers(&warm, 1000, std::chrono::milliseconds(2)));
    warm.done.wait(false);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const std::int64_t rss_base = ReadRssBytes();
  const std::uint64_t slab_base =
      awaitd::runtime::internal::FrameAllocator::GetStats().slab_bytes;
  sampler.ResetPeak();

  SleepState state(n);
  const auto start = Clock::now();
  rt.BlockOn(SpawnSleepers(&state, n, d));
  const double spawn_s = Seconds(Clock::now() - start);
  state.done.wait(false);
  const double wall_s =
      static_cast<double>(state.end_ns.load() - SinceEpochNs(start)) / 1e9;
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  sampler.Stop();
  const std::int64_t rss_peak = std::max(sampler.peak(), ReadRssBytes());
  const std::uint64_t slab_bytes =
      awaitd::runtime::internal::FrameAllocator::GetStats().slab_bytes -
      slab_base;

  const double per_task =
      static_cast<double>(rss_peak - rss_base) / static_cast<double>(n);
  const double last_start_s =
      static_cast<double>(state.last_sleep_start_ns.load() -
                          SinceEpochNs(start)) /
      1e9;
  return {
      {"sleep", "wall, first spawn to last wake", "s", wall_s, kNaN,
       AtMost(1.5)},
      {"sleep", "peak RSS growth per task", "B", per_task, kNaN, AtMost(256)},
      {"sleep", "spawn phase (info)", "s", spawn_s, kNaN, std::nullopt},
      {"sleep", "last sleep started at (info)", "s", last_start_s, kNaN,
       std::nullopt},
      {"sleep", "last wake - last deadline (info)", "ms",
       (wall_s - last_start_s) * 1e3 -
           static_cast<double>(absl::GetFlag(FLAGS_sleep_ms)),
       kNaN, std::nullopt},
      {"sleep", "allocator slab bytes per task (info)", "B",
       static_cast<double>(slab_bytes) / static_cast<double>(n), kNaN,
       std::nullopt},
      {"sleep", "RSS samples taken (info)", "samples",
       static_cast<double>(sampler.samples()), kNaN, std::nullopt},
  };
}

// --- 3. skew
// ------------------------------------------------------------------

// CPU work that the compiler cannot remove: a dependent chain of multiplies
// through a volatile.
[[gnu::noinline]] std::uint64_t SpinWork(std::uint64_t iterations) {
  volatile std::uint64_t x = 0x9e3779b97f4a7c15ull;
  for (std::uint64_t i = 0; i < iterations; ++i)
    x = x * 6364136223846793005ull + 1442695040888963407ull;
  return x;
}

struct Calibration {
  std::uint64_t iterations = 0;  // per task
  double task_ns = 0;            // measured cost of one task's work
};

Calibration Calibrate(std::int64_t target_us) {
  // Rate from the fastest of a few long runs, then the median of many runs at
  // the chosen size (what a task actually costs, single-threaded).
  double best_ns_per_iter = std::numeric_limits<double>::infinity();
  for (int i = 0; i < 5; ++i) {
    constexpr std::uint64_t kIters = 2'000'000;
    const auto t0 = Clock::now();
    SpinWork(kIters);
    best_ns_per_iter =
        std::min(best_ns_per_iter, Nanos(Clock::now() - t0) / kIters);
  }
  Calibration c;
  c.iterations = static_cast<std::uint64_t>(static_cast<double>(target_us) *
                                            1000 / best_ns_per_iter);
  std::vector<double> samples;
  for (int i = 0; i < 500; ++i) {
    const auto t0 = Clock::now();
    SpinWork(c.iterations);
    samples.push_back(Nanos(Clock::now() - t0));
  }
  c.task_ns = Median(samples);
  return c;
}

struct alignas(64) SkewState {
  std::atomic<std::int64_t> work_ns{0};
  alignas(64) std::atomic<std::int64_t> last_end_ns{0};
};

Task<void> SkewWork(std::uint64_t iterations, SkewState* s) {
  const auto t0 = Clock::now();
  SpinWork(iterations);
  const auto t1 = Clock::now();
  s->work_ns.fetch_add(NanosInt(t1 - t0), std::memory_order_relaxed);
  AtomicMax(s->last_end_ns, SinceEpochNs(t1));
  co_return;
}

struct SkewRun {
  double makespan_s = 0;
  double work_s = 0;  // sum of the tasks' measured run times
};

Task<SkewRun> SkewSpawner(std::int64_t n, std::uint64_t iterations) {
  auto state = std::make_unique<SkewState>();
  std::vector<JoinHandle<void>> handles;
  handles.reserve(static_cast<std::size_t>(n));
  const auto start = Clock::now();
  for (std::int64_t i = 0; i < n; ++i)
    handles.push_back(Spawn(SkewWork(iterations, state.get())));
  for (auto& h : handles) co_await h;
  co_return SkewRun{
      static_cast<double>(state->last_end_ns.load() - SinceEpochNs(start)) /
          1e9,
      static_cast<double>(state->work_ns.load()) / 1e9};
}

std::vector<Result> RunSkew() {
  const std::int64_t n = absl::GetFlag(FLAGS_skew_tasks);
  const std::uint32_t workers = Workers();
  const Calibration cal = Calibrate(absl::GetFlag(FLAGS_skew_task_us));
  Runtime rt(BenchOptions(workers));
  rt.BlockOn(
      SkewSpawner(std::min<std::int64_t>(n, 1000), cal.iterations));  // warm-up

  std::vector<double> ratio, ratio_calibrated, makespan, measured_task_us;
  for (int rep = 0; rep < Repetitions(); ++rep) {
    Settle();
    const SkewRun r = rt.BlockOn(SkewSpawner(n, cal.iterations));
    const double ideal = r.work_s / workers;
    const double ideal_calibrated =
        static_cast<double>(n) * cal.task_ns / 1e9 / workers;
    ratio.push_back(r.makespan_s / ideal);
    ratio_calibrated.push_back(r.makespan_s / ideal_calibrated);
    makespan.push_back(r.makespan_s);
    measured_task_us.push_back(r.work_s / static_cast<double>(n) * 1e6);
  }
  const auto m = rt.Metrics();
  std::uint64_t steals = 0;
  for (const auto& w : m.workers) steals += w.steal_operations;
  // The spawner's loop (n spawns) is the only thing expected to stall.
  return {
      {"skew", "makespan / ideal (work measured in tasks)", "x", Median(ratio),
       kNaN, AtMost(1.05)},
      {"skew", "makespan / ideal (calibrated work) (info)", "x",
       Median(ratio_calibrated), kNaN, std::nullopt},
      {"skew", "makespan (info)", "s", Median(makespan), kNaN, std::nullopt},
      {"skew", "task cost: in run / calibrated (info)", "us",
       Median(measured_task_us), cal.task_ns / 1e3, std::nullopt},
      {"skew", "steal ops, all runs (info)", "steals",
       static_cast<double>(steals), kNaN, std::nullopt},
      {"skew", "stall reports, all runs (info)", "stalls",
       static_cast<double>(m.stalls), kNaN, std::nullopt},
  };
}

// --- 4. blocking
// --------------------------------------------------------------

struct BlockingState {
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> calls{0};
};

// Keeps one ToThread call in flight until told to stop.
Task<void> Blocker(BlockingState* s, std::chrono::milliseconds d) {
  while (!s->stop.load(std::memory_order_relaxed)) {
    co_await ToThread([d] { std::this_thread::sleep_for(d); });
    s->calls.fetch_add(1, std::memory_order_relaxed);
  }
}

// Sleeps `period` `count` times; returns each wake-up's lateness in us.
Task<std::vector<double>> SleepLoop(int count,
                                    std::chrono::microseconds period) {
  std::vector<double> lateness_us;
  lateness_us.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    const auto deadline = Clock::now() + period;
    co_await SleepUntil(deadline);
    lateness_us.push_back(Nanos(Clock::now() - deadline) / 1e3);
  }
  co_return lateness_us;
}

struct BlockingRun {
  std::vector<double> idle_us;
  std::vector<double> loaded_us;
  std::int64_t calls = 0;
  double loaded_s = 0;  // how long the blockers ran
};

Task<BlockingRun> BlockingMain(int blockers, std::chrono::milliseconds call,
                               int sleeps, std::chrono::microseconds period) {
  BlockingRun run;
  // Baseline: the pool idle (no call issued yet).
  run.idle_us = co_await Spawn(SleepLoop(sleeps, period));

  BlockingState state;
  std::vector<JoinHandle<void>> handles;
  const auto start = Clock::now();
  for (int i = 0; i < blockers; ++i)
    handles.push_back(Spawn(Blocker(&state, call)));
  co_await Sleep(call / 2);  // every call issued, the pool grown to size
  run.loaded_us = co_await Spawn(SleepLoop(sleeps, period));
  state.stop.store(true);
  for (auto& h : handles) co_await h;
  run.loaded_s = Seconds(Clock::now() - start);
  run.calls = state.calls.load();
  co_return run;
}

std::vector<Result> RunBlocking() {
  Runtime rt(BenchOptions(Workers()));
  const int blockers = absl::GetFlag(FLAGS_blocking_calls);
  BlockingRun r = rt.BlockOn(BlockingMain(
      blockers,
      std::chrono::milliseconds(absl::GetFlag(FLAGS_blocking_call_ms)),
      absl::GetFlag(FLAGS_blocking_sleeps),
      std::chrono::microseconds(absl::GetFlag(FLAGS_blocking_sleep_us))));
  const auto m = rt.Metrics();
  return {
      {"blocking", "1ms sleep lateness p50", "us", Quantile(r.loaded_us, 0.5),
       Quantile(r.idle_us, 0.5), std::nullopt},
      {"blocking", "1ms sleep lateness p99", "us", Quantile(r.loaded_us, 0.99),
       Quantile(r.idle_us, 0.99), AtMost(1000)},
      {"blocking", "1ms sleep lateness max", "us", Quantile(r.loaded_us, 1.0),
       Quantile(r.idle_us, 1.0), std::nullopt},
      {"blocking", "ToThread calls/s (base: ideal) (info)", "calls/s",
       static_cast<double>(r.calls) / r.loaded_s,
       blockers * 1000.0 /
           static_cast<double>(absl::GetFlag(FLAGS_blocking_call_ms)),
       std::nullopt},
      {"blocking", "pool threads (base: concurrent calls) (info)", "threads",
       static_cast<double>(m.blocking.threads), static_cast<double>(blockers),
       std::nullopt},
  };
}

// --- 5. pingpong
// ----------------------------------------------------------------

// One round trip: spawn a no-op task and await its handle.
Task<double> SpawnJoinRoundTrips(std::int64_t n) {
  const auto start = Clock::now();
  for (std::int64_t i = 0; i < n; ++i) co_await Spawn(Noop());
  co_return Nanos(Clock::now() - start) / static_cast<double>(n);
}

struct alignas(64) Token {
  std::atomic<std::int64_t> value{0};
};

// Two of these pass a token: the one with `parity` p waits (yielding) until
// the token is 2i + p, then hands it on. A round trip is two hand-offs.
Task<void> YieldPinger(Token* token, std::int64_t round_trips, int parity) {
  for (std::int64_t i = 0; i < round_trips; ++i) {
    const std::int64_t want = 2 * i + parity;
    while (token->value.load(std::memory_order_acquire) != want)
      co_await Yield();
    token->value.store(want + 1, std::memory_order_release);
  }
}

Task<double> YieldPingPong(std::int64_t round_trips) {
  auto token = std::make_unique<Token>();
  const auto start = Clock::now();
  JoinHandle<void> a = Spawn(YieldPinger(token.get(), round_trips, 0));
  JoinHandle<void> b = Spawn(YieldPinger(token.get(), round_trips, 1));
  co_await a;
  co_await b;
  co_return Nanos(Clock::now() - start) / static_cast<double>(round_trips);
}

Task<void> Yielder(std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) co_await Yield();
}

// `tasks` tasks yielding `total / tasks` times each; ns per yield.
Task<double> ConcurrentYields(std::int64_t total, int tasks) {
  std::vector<JoinHandle<void>> handles;
  const auto start = Clock::now();
  for (int i = 0; i < tasks; ++i)
    handles.push_back(Spawn(Yielder(total / tasks)));
  for (auto& h : handles) co_await h;
  co_return Nanos(Clock::now() - start) /
      static_cast<double>(total / tasks * tasks);
}

// Baselines.
double TbbRunWaitRoundTrip(std::int64_t n) {
  tbb::task_group tg;
  const auto start = Clock::now();
  for (std::int64_t i = 0; i < n; ++i) {
    tg.run([] {});
    tg.wait();
  }
  return Nanos(Clock::now() - start) / static_cast<double>(n);
}

double ThreadYieldPingPong(std::int64_t round_trips) {
  Token token;
  auto body = [&token, round_trips](int parity) {
    for (std::int64_t i = 0; i < round_trips; ++i) {
      const std::int64_t want = 2 * i + parity;
      while (token.value.load(std::memory_order_acquire) != want)
        std::this_thread::yield();
      token.value.store(want + 1, std::memory_order_release);
    }
  };
  const auto start = Clock::now();
  std::thread a(body, 0), b(body, 1);
  a.join();
  b.join();
  return Nanos(Clock::now() - start) / static_cast<double>(round_trips);
}

double SchedYieldNs(std::int64_t n) {
  const auto start = Clock::now();
  for (std::int64_t i = 0; i < n; ++i) std::this_thread::yield();
  return Nanos(Clock::now() - start) / static_cast<double>(n);
}

// --- cancel: spawn, cancel and join sleeping tasks
// ---------------------------------

Task<void> SleepLong() { co_await Sleep(std::chrono::hours(1)); }

// Spawns n sleeping tasks in batches, cancels each batch and joins it.
// Returns ns per task.
Task<double> CancelSleepers(std::int64_t n) {
  constexpr std::int64_t kBatch = 1000;
  std::vector<JoinHandle<void>> hs;
  hs.reserve(kBatch);
  std::int64_t cancelled = 0;
  const auto start = Clock::now();
  for (std::int64_t done = 0; done < n; done += kBatch) {
    hs.clear();
    for (std::int64_t i = 0; i < kBatch; ++i) hs.push_back(Spawn(SleepLong()));
    co_await Yield();  // let them start sleeping
    for (auto& h : hs) h.Cancel("bench");
    for (auto& h : hs) {
      try {
        co_await h;
      } catch (const CancelledError&) {
        ++cancelled;
      }
    }
  }
  const double ns = Nanos(Clock::now() - start) / static_cast<double>(n);
  if (cancelled != (n + kBatch - 1) / kBatch * kBatch) {
    std::fprintf(stderr, "cancel: only %lld tasks ended cancelled\n",
                 static_cast<long long>(cancelled));
  }
  co_return ns;
}

// The same shape without sleeping or cancelling: spawn + join of tasks that
// return at once, as the baseline.
Task<double> SpawnJoinBatches(std::int64_t n) {
  constexpr std::int64_t kBatch = 1000;
  std::vector<JoinHandle<void>> hs;
  hs.reserve(kBatch);
  const auto start = Clock::now();
  for (std::int64_t done = 0; done < n; done += kBatch) {
    hs.clear();
    for (std::int64_t i = 0; i < kBatch; ++i) hs.push_back(Spawn(Noop()));
    co_await Yield();
    for (auto& h : hs) co_await h;
  }
  co_return Nanos(Clock::now() - start) / static_cast<double>(n);
}

std::vector<Result> RunCancel() {
  const std::int64_t n = absl::GetFlag(FLAGS_cancel_tasks);
  std::vector<double> cancel, base;
  Runtime rt(BenchOptions(Workers()));
  rt.BlockOn(CancelSleepers(n / 10));  // warm-up
  for (int rep = 0; rep < Repetitions(); ++rep) {
    Settle();
    cancel.push_back(rt.BlockOn(CancelSleepers(n)));
    Settle();
    base.push_back(rt.BlockOn(SpawnJoinBatches(n)));
  }
  LogReps("cancel", cancel);
  return {{"cancel", "spawn+sleep+cancel+join (base: spawn+join)", "ns/task",
           Median(cancel), Median(base), std::nullopt}};
}

// --- gather: Gather of 100,000 tasks
// ------------------------------------------------

Task<int> Value(int i) { co_return i; }

Task<double> GatherMany(std::int64_t n, bool one_by_one) {
  std::vector<JoinHandle<int>> hs;
  hs.reserve(static_cast<std::size_t>(n));
  const auto start = Clock::now();
  for (std::int64_t i = 0; i < n; ++i)
    hs.push_back(Spawn(Value(static_cast<int>(i))));
  std::int64_t sum = 0;
  if (one_by_one) {
    for (auto& h : hs) sum += co_await h;
  } else {
    std::vector<int> r = co_await Gather(std::move(hs));
    for (int v : r) sum += v;
  }
  const double ns = Nanos(Clock::now() - start) / static_cast<double>(n);
  if (sum != n * (n - 1) / 2)
    std::fprintf(stderr, "gather: wrong sum %lld\n",
                 static_cast<long long>(sum));
  co_return ns;
}

std::vector<Result> RunGather() {
  const std::int64_t n = absl::GetFlag(FLAGS_gather_tasks);
  std::vector<double> gather, joins;
  Runtime rt(BenchOptions(Workers()));
  rt.BlockOn(GatherMany(n, false));  // warm-up
  for (int rep = 0; rep < std::max(Repetitions(), 5); ++rep) {
    Settle();
    gather.push_back(rt.BlockOn(GatherMany(n, false)));
    Settle();
    joins.push_back(rt.BlockOn(GatherMany(n, true)));
  }
  LogReps("gather", gather);
  return {{"gather",
           "Gather of " + std::to_string(n) + " tasks (base: join one by one)",
           "ns/task", Median(gather), Median(joins), std::nullopt}};
}

std::vector<Result> RunPingPong() {
  const std::int64_t trips = absl::GetFlag(FLAGS_pingpong_round_trips);
  const std::int64_t yields = absl::GetFlag(FLAGS_yields);
  const std::uint32_t workers = Workers();
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism,
                            workers);

  std::vector<double> spawn_join, spawn_join_1w, tbb_rtt, ping, ping_1w,
      thread_ping, yield1, yield2, sched_yield;
  {
    Runtime rt(BenchOptions(workers));
    Runtime rt1(BenchOptions(1));
    rt.BlockOn(SpawnJoinRoundTrips(trips / 10));  // warm-up
    rt1.BlockOn(SpawnJoinRoundTrips(trips / 10));
    TbbRunWaitRoundTrip(trips / 10);
    for (int rep = 0; rep < Repetitions(); ++rep) {
      Settle();
      spawn_join.push_back(rt.BlockOn(SpawnJoinRoundTrips(trips)));
      Settle();
      tbb_rtt.push_back(TbbRunWaitRoundTrip(trips));
      Settle();
      spawn_join_1w.push_back(rt1.BlockOn(SpawnJoinRoundTrips(trips)));
      Settle();
      ping.push_back(rt.BlockOn(YieldPingPong(trips)));
      Settle();
      thread_ping.push_back(ThreadYieldPingPong(trips));
      Settle();
      ping_1w.push_back(rt1.BlockOn(YieldPingPong(trips)));
      Settle();
      yield1.push_back(rt1.BlockOn(ConcurrentYields(yields, 1)));
      Settle();
      yield2.push_back(rt1.BlockOn(ConcurrentYields(yields, 2)));
      Settle();
      sched_yield.push_back(
          SchedYieldNs(std::min<std::int64_t>(yields, 1'000'000)));
    }
  }
  const std::string w = std::to_string(workers) + "w";
  return {
      {"pingpong", "spawn+join round trip, " + w + " (base: tbb run+wait)",
       "ns", Median(spawn_join), Median(tbb_rtt), std::nullopt},
      {"pingpong", "spawn+join round trip, 1w", "ns", Median(spawn_join_1w),
       kNaN, std::nullopt},
      {"pingpong", "Yield token ping-pong rtt, " + w + " (base: 2 threads)",
       "ns", Median(ping), Median(thread_ping), std::nullopt},
      {"pingpong", "Yield token ping-pong rtt, 1w", "ns", Median(ping_1w), kNaN,
       std::nullopt},
      {"pingpong", "Yield, 1 task, 1w (base: sched_yield)", "ns/yield",
       Median(yield1), Median(sched_yield), std::nullopt},
      {"pingpong", "Yield, 2 tasks, 1w", "ns/yield", Median(yield2), kNaN,
       std::nullopt},
  };
}

// --- Driver
// ---------------------------------------------------------------------

struct Benchmark {
  const char* name;
  std::vector<Result> (*run)();
};

constexpr Benchmark kBenchmarks[] = {
    {"fanout", RunFanout},     {"sleep", RunSleep},       {"skew", RunSkew},
    {"blocking", RunBlocking}, {"pingpong", RunPingPong}, {"cancel", RunCancel},
    {"gather", RunGather},
};

const Benchmark* FindBenchmark(std::string_view name) {
  for (const Benchmark& b : kBenchmarks) {
    if (name == b.name) return &b;
  }
  return nullptr;
}

int RunChild(const std::string& name) {
  const Benchmark* b = FindBenchmark(name);
  if (b == nullptr) {
    std::fprintf(stderr, "runtime_bench: unknown benchmark '%s'\n",
                 name.c_str());
    return 2;
  }
  const std::vector<Result> results = b->run();
  std::string line = "{\"benchmark\":" + JsonString(name) + ",\"results\":[";
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (i > 0) line += ",";
    line += ResultJson(results[i]);
  }
  line += "]}\n";
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
  return 0;
}

// Re-executes this binary with the same arguments plus --child=<name>, and
// parses the JSON line it prints. A failure becomes a single failed row.
std::vector<Result> RunInChild(const std::string& name, int argc, char** argv) {
  auto failure = [&name](const std::string& why) {
    Result r{name, "child process: " + why, "", kNaN, kNaN, AtMost(0)};
    return std::vector<Result>{r};
  };
  std::vector<std::string> args(argv, argv + argc);
  args.push_back("--child=" + name);
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);

  int fds[2];
  if (pipe(fds) != 0) return failure("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  posix_spawn_file_actions_addclose(&actions, fds[1]);
  pid_t pid;
  const int err = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr,
                              cargs.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (err != 0) {
    close(fds[0]);
    return failure(std::string("spawn failed: ") + std::strerror(err));
  }
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t got = read(fds[0], buf, sizeof buf);
    if (got > 0) {
      out.append(buf, static_cast<std::size_t>(got));
    } else if (got == 0 || errno != EINTR) {
      break;
    }
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return failure(WIFSIGNALED(status)
                       ? "killed by signal " + std::to_string(WTERMSIG(status))
                       : "exit status " + std::to_string(WEXITSTATUS(status)));
  }
  // The last line that parses as a JSON object.
  std::istringstream lines(out);
  std::optional<Json> parsed;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '{') continue;
    if (std::optional<Json> j = JsonParser(line).Parse()) parsed = std::move(j);
  }
  const Json* results = parsed ? parsed->Get("results") : nullptr;
  if (results == nullptr || results->kind != Json::Kind::kArray)
    return failure("no JSON results");
  std::vector<Result> out_results;
  for (const Json& j : results->array) {
    if (std::optional<Result> r = ResultFromJson(j))
      out_results.push_back(std::move(*r));
  }
  return out_results;
}

struct MachineInfo {
  unsigned nproc = 0;
  std::string cpu_model;
  std::uint32_t workers = 0;
  int repetitions = 0;
  std::string loadavg;
};

MachineInfo GetMachineInfo() {
  MachineInfo m;
  m.nproc = std::thread::hardware_concurrency();
  m.workers = Workers();
  m.repetitions = Repetitions();
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) m.cpu_model = line.substr(colon + 2);
      break;
    }
  }
  std::ifstream load("/proc/loadavg");
  std::string a, b, c;
  if (load >> a >> b >> c) m.loadavg = a + " " + b + " " + c;
  return m;
}

// Short human-readable number: 3 significant digits, k/M suffixes.
std::string FormatNumber(double v) {
  if (std::isnan(v)) return "-";
  char buf[32];
  const double a = std::fabs(v);
  if (a >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.3gG", v / 1e9);
  } else if (a >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.3gM", v / 1e6);
  } else if (a >= 1e4) {
    std::snprintf(buf, sizeof buf, "%.3gk", v / 1e3);
  } else if (a >= 100 || a == std::floor(a)) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  }
  return buf;
}

std::string FormatTarget(const Result& r) {
  if (!r.target) return "-";
  char buf[64];
  std::snprintf(
      buf, sizeof buf, "%s %s %s",
      r.target->on == Target::On::kRatio ? "ratio" : "value",
      r.target->at_most ? "<=" : ">=", FormatNumber(r.target->bound).c_str());
  return buf;
}

void PrintTable(const MachineInfo& m, const std::vector<Result>& results) {
  std::printf(
      "# runtime_bench: nproc=%u cpu=\"%s\" workers=%u repetitions=%d "
      "loadavg=%s\n",
      m.nproc, m.cpu_model.c_str(), m.workers, m.repetitions,
      m.loadavg.c_str());
  std::vector<std::vector<std::string>> rows = {{"benchmark", "metric", "value",
                                                 "baseline", "ratio", "target",
                                                 "result"}};
  for (const Result& r : results) {
    const std::optional<bool> pass = r.pass();
    std::string value = FormatNumber(r.value);
    if (!r.unit.empty() && !std::isnan(r.value)) value += " " + r.unit;
    char ratio[32] = "-";
    if (!std::isnan(r.ratio()))
      std::snprintf(ratio, sizeof ratio, "%.3f", r.ratio());
    rows.push_back({r.benchmark, r.metric, value, FormatNumber(r.baseline),
                    ratio, FormatTarget(r),
                    pass ? (*pass ? "PASS" : "FAIL") : "-"});
  }
  std::vector<std::size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], row[i].size());
  }
  auto print_row = [&widths](const std::vector<std::string>& row) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (i > 0) line += " | ";
      // Numbers right-aligned, text left-aligned.
      const bool right = i >= 2 && i <= 4;
      const std::string pad(widths[i] - row[i].size(), ' ');
      line += right ? pad + row[i] : row[i] + (i + 1 < row.size() ? pad : "");
    }
    std::printf("%s\n", line.c_str());
  };
  print_row(rows[0]);
  std::string rule;
  for (std::size_t i = 0; i < widths.size(); ++i)
    rule += (i > 0 ? "-+-" : "") + std::string(widths[i], '-');
  std::printf("%s\n", rule.c_str());
  for (std::size_t i = 1; i < rows.size(); ++i) print_row(rows[i]);
}

bool WriteJson(const std::string& path, const MachineInfo& m,
               const std::vector<Result>& results) {
  std::ofstream f(path);
  if (!f) return false;
  f << "{\"machine\":{\"nproc\":" << m.nproc
    << ",\"cpu_model\":" << JsonString(m.cpu_model)
    << ",\"workers\":" << m.workers << ",\"repetitions\":" << m.repetitions
    << ",\"loadavg\":" << JsonString(m.loadavg) << "},\n\"results\":[\n";
  for (std::size_t i = 0; i < results.size(); ++i) {
    f << ResultJson(results[i]) << (i + 1 < results.size() ? ",\n" : "\n");
  }
  f << "]}\n";
  return static_cast<bool>(f);
}

std::vector<std::string> SplitNames(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s + ",") {
    if (c == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else if (!std::isspace(static_cast<unsigned char>(c))) {
      cur += c;
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (const std::string child = absl::GetFlag(FLAGS_child); !child.empty())
    return RunChild(child);

  std::vector<std::string> names = SplitNames(absl::GetFlag(FLAGS_benchmarks));
  for (const std::string& n : names) {
    if (FindBenchmark(n) == nullptr) {
      std::fprintf(
          stderr,
          "runtime_bench: unknown benchmark '%s' (known: fanout, sleep, skew, "
          "blocking, pingpong)\n",
          n.c_str());
      return 2;
    }
  }
  const MachineInfo machine = GetMachineInfo();
  std::vector<Result> results;
  for (const std::string& n : names) {
    std::fprintf(stderr, "runtime_bench: running %s...\n", n.c_str());
    std::vector<Result> r = RunInChild(n, argc, argv);
    results.insert(results.end(), r.begin(), r.end());
  }
  PrintTable(machine, results);
  if (const std::string path = absl::GetFlag(FLAGS_json); !path.empty()) {
    if (!WriteJson(path, machine, results)) {
      std::fprintf(stderr, "runtime_bench: cannot write %s\n", path.c_str());
      return 1;
    }
  }
  bool all_pass = true;
  for (const Result& r : results)
    all_pass = all_pass && r.pass().value_or(true);
  return all_pass || !absl::GetFlag(FLAGS_fail_on_miss) ? 0 : 1;
}
