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
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/harness/harness.h"
#include "boost/json/object.hpp"
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
namespace bench = awaitd::bench;
using bench::AtLeast;
using bench::AtMost;
using bench::kNaN;
using bench::Median;
using bench::Quantile;
using bench::Result;
using bench::Target;

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
  bench::LogReps(absl::GetFlag(FLAGS_verbose), what, v);
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

constexpr bench::Benchmark kBenchmarks[] = {
    {"fanout", RunFanout},     {"sleep", RunSleep},       {"skew", RunSkew},
    {"blocking", RunBlocking}, {"pingpong", RunPingPong}, {"cancel", RunCancel},
    {"gather", RunGather},
};

// Starts this binary again (/proc/self/exe, argv[0] as it was) with `argv`
// and its stdout on `stdout_fd`: a benchmark's child process.
pid_t SpawnSelf(const std::vector<std::string>& argv, int stdout_fd,
                std::string* error) {
  std::vector<char*> cargs;
  for (const std::string& a : argv)
    cargs.push_back(const_cast<char*>(a.c_str()));
  cargs.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, stdout_fd, STDOUT_FILENO);
  pid_t pid;
  const int err = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr,
                              cargs.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) {
    *error = std::string("spawn failed: ") + std::strerror(err);
    return -1;
  }
  return pid;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (const std::string child = absl::GetFlag(FLAGS_child); !child.empty())
    return bench::RunChild("runtime_bench", kBenchmarks, child);

  const std::optional<std::vector<std::string>> names = bench::SelectBenchmarks(
      "runtime_bench", absl::GetFlag(FLAGS_benchmarks), kBenchmarks);
  if (!names) return 2;
  const bench::HostInfo host = bench::ReadHostInfo();
  const std::vector<Result> results = bench::RunAllInChildren(
      "runtime_bench", *names, {argv, argv + argc}, SpawnSelf);
  std::printf(
      "# runtime_bench: nproc=%u cpu=\"%s\" workers=%u repetitions=%d "
      "loadavg=%s\n",
      host.nproc, host.cpu_model.c_str(), Workers(), Repetitions(),
      host.loadavg.c_str());
  bench::PrintTable(results, /*benchmark_column=*/true);
  if (const std::string path = absl::GetFlag(FLAGS_json); !path.empty()) {
    const boost::json::object machine = {{"nproc", host.nproc},
                                         {"cpu_model", host.cpu_model},
                                         {"workers", Workers()},
                                         {"repetitions", Repetitions()},
                                         {"loadavg", host.loadavg}};
    if (!bench::WriteJsonFile(path, machine, results)) {
      std::fprintf(stderr, "runtime_bench: cannot write %s\n", path.c_str());
      return 1;
    }
  }
  return bench::AllPassed(results) || !absl::GetFlag(FLAGS_fail_on_miss) ? 0
                                                                         : 1;
}
