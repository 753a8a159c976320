// The built-in job kinds: sleep, echo, fail, factorial, spin, blocking, hash.
//
// Each kind is a bind function that validates the args Struct with an Args
// reader (server/kinds/args.h: unknown fields, types, ranges; the error
// message starts with the field name) and a
// body written as a free coroutine function taking its arguments by value, so
// the bound values live in the coroutine frame (a lambda coroutine's captures
// would not, and GCC 12 mishandles some of them).
//
// All of them are pure: running one again from the start is harmless, so all
// are retry_safe.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"
#include "runtime/time.h"
#include "runtime/to_thread.h"
#include "server/kinds/args.h"
#include "server/kinds/job_kind.h"

namespace awaitd::server {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

// --- Limits ---------------------------------------------------------------

constexpr double kMaxSeconds = 30.0 * 24 * 3600;  // 30 days
constexpr double kMaxFactorialN = 170;            // 171! overflows a double
constexpr double kMaxSpinMs = 60'000;  // one minute of event-loop CPU
constexpr double kMaxHashBytes = 64.0 * 1024 * 1024;
constexpr double kMaxHashRounds = 1'000'000;
constexpr std::size_t kMaxFailureTypeLength = 128;
constexpr std::size_t kMaxFailureMessageLength = 64 * 1024;

// --- Argument validation ----------------------------------------------------

// [A-Za-z_][A-Za-z0-9_.]*, as a Python exception class name (possibly
// qualified: "asyncio.TimeoutError").
bool IsIdentifier(absl::string_view s) {
  if (s.empty()) return false;
  auto alpha = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  };
  if (!alpha(s[0])) return false;
  return std::all_of(s.begin() + 1, s.end(), [&](char c) {
    return alpha(c) || (c >= '0' && c <= '9') || c == '.';
  });
}

constexpr NumberRule kSecondsRule{
    .min = 0, .max = kMaxSeconds, .max_note = "30 days"};
constexpr std::int64_t kDefaultHashBytes = 1024 * 1024;

std::chrono::nanoseconds ToNanos(double seconds) {
  // seconds <= kMaxSeconds, so this does not overflow.
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(seconds));
}

// --- Bodies ---------------------------------------------------------------

JobBody SleepBody(double seconds, Value result) {
  co_await runtime::Sleep(ToNanos(seconds));
  co_return std::move(result);
}

JobBody EchoBody(Value value) { co_return std::move(value); }

JobBody FailBody(std::string type, std::string message, double after_seconds) {
  if (after_seconds > 0) co_await runtime::Sleep(ToNanos(after_seconds));
  throw JobFailure(std::move(type), std::move(message));
}

JobBody FactorialBody(int n, double step_seconds) {
  double f = 1;
  for (int i = 2; i <= n; ++i) {
    if (step_seconds > 0) {
      co_await runtime::Sleep(ToNanos(step_seconds));
    } else {
      co_await runtime::Yield();  // still interleave with other jobs
    }
    f *= i;
  }
  co_return NumberValue(f);
}

// Busy-waits on the event loop in 1 ms slices (of steady-clock time spent
// spinning; time queued between slices does not count), yielding between
// them, so the loop stays responsive while the job hogs it and the stall
// detector (100 ms) stays quiet. Returns the number of slices: ceil(cpu_ms).
JobBody SpinBody(double cpu_ms) {
  using Clock = std::chrono::steady_clock;
  constexpr std::chrono::nanoseconds kSlice = std::chrono::milliseconds(1);
  std::chrono::nanoseconds remaining =
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::duration<double, std::milli>(cpu_ms));
  std::int64_t slices = 0;
  while (remaining > remaining.zero()) {
    const std::chrono::nanoseconds slice = std::min(remaining, kSlice);
    const Clock::time_point until = Clock::now() + slice;
    while (Clock::now() < until) {
    }
    remaining -= slice;
    ++slices;
    co_await runtime::Yield();
  }
  co_return NumberValue(static_cast<double>(slices));
}

// A blocking sleep on the blocking pool (asyncio.to_thread(time.sleep, s)),
// which the stop token of a cancelled job cuts short. The deadline is taken
// on the worker when the job starts, so it honours the runtime's time_scale
// (through runtime::internal::DeadlineIn, the one thing that applies it).
JobBody BlockingBody(double seconds) {
  const std::chrono::steady_clock::time_point deadline =
      runtime::internal::DeadlineIn(ToNanos(seconds));
  auto wait = [deadline](std::stop_token stop) {
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock lock(mu);
    cv.wait_until(lock, stop, deadline, [] { return false; });
  };
  co_await runtime::ToThread(wait);
  co_return NullValue();
}

// FNV-1a 64 over `bytes` bytes of deterministic data, `rounds` times: round r
// hashes the previous round's digest (8 bytes, little-endian) followed by the
// data. Data byte i is byte i % 8 (little-endian) of SplitMix64(i / 8). The
// data is generated per 64 KiB chunk, so memory stays small whatever `bytes`.
// Returns nullopt if stopped.
std::optional<std::uint64_t> ChainedHash(std::int64_t bytes,
                                         std::int64_t rounds,
                                         const std::stop_token& stop) {
  constexpr std::uint64_t kOffset = 0xcbf29ce484222325ULL;
  constexpr std::uint64_t kPrime = 0x100000001b3ULL;
  constexpr std::int64_t kChunkWords = 8 * 1024;  // 64 KiB
  auto mix = [](std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  };
  auto feed = [](std::uint64_t h, std::uint64_t word, int n) {
    for (int b = 0; b < n; ++b) {
      h ^= (word >> (8 * b)) & 0xff;
      h *= kPrime;
    }
    return h;
  };
  const std::int64_t words = (bytes + 7) / 8;
  std::uint64_t digest = kOffset;
  for (std::int64_t r = 0; r < rounds; ++r) {
    if (stop.stop_requested()) return std::nullopt;
    std::uint64_t h = feed(kOffset, digest, 8);
    for (std::int64_t w = 0; w < words; ++w) {
      if (w % kChunkWords == 0 && w != 0 && stop.stop_requested()) {
        return std::nullopt;
      }
      const std::int64_t left = bytes - 8 * w;
      h = feed(h, mix(static_cast<std::uint64_t>(w)),
               left >= 8 ? 8 : static_cast<int>(left));
    }
    digest = h;
  }
  return digest;
}

JobBody HashBody(std::int64_t bytes, std::int64_t rounds) {
  auto work = [bytes, rounds](std::stop_token stop) -> std::string {
    std::optional<std::uint64_t> digest = ChainedHash(bytes, rounds, stop);
    // A stopped call's result is discarded (the awaiter already raised).
    if (!digest) return std::string();
    return absl::StrCat(absl::Hex(*digest, absl::kZeroPad16));
  };
  std::string digest = co_await runtime::ToThread(work);
  Value v;
  v.set_string_value(std::move(digest));
  co_return v;
}

// --- Binders --------------------------------------------------------------

absl::StatusOr<JobBody> BindSleep(const Struct& args) {
  Args a(args, {"seconds", "result"});
  const double seconds = a.Number("seconds", kSecondsRule);
  Value result = a.AnyOr("result", NullValue());
  if (!a.ok()) return a.status();
  return SleepBody(seconds, std::move(result));
}

// The hot path of the jobs/s benchmark: one lookup, one copy of the value.
absl::StatusOr<JobBody> BindEcho(const Struct& args) {
  const auto& fields = args.fields();
  auto it = fields.find(std::string_view("value"));
  if (it == fields.end() || fields.size() != 1) {
    Args a(args, {"value"});
    a.Any("value");
    return a.status();  // an unknown field, or value missing
  }
  return EchoBody(it->second);
}

absl::StatusOr<JobBody> BindFail(const Struct& args) {
  Args a(args, {"type", "message", "after_seconds"});
  std::string type =
      a.StringOr("type", "RuntimeError", {.max_length = kMaxFailureTypeLength});
  if (a.ok() && !IsIdentifier(type)) {
    a.Refuse("type", absl::StrCat("must be an exception class name "
                                  "([A-Za-z_][A-Za-z0-9_.]*) (got \"",
                                  absl::CHexEscape(type), "\")"));
  }
  std::string message =
      a.StringOr("message", "", {.max_length = kMaxFailureMessageLength});
  const double after = a.NumberOr("after_seconds", 0.0, kSecondsRule);
  if (!a.ok()) return a.status();
  return FailBody(std::move(type), std::move(message), after);
}

absl::StatusOr<JobBody> BindFactorial(const Struct& args) {
  Args a(args, {"n", "step_seconds"});
  const std::int64_t n = a.Integer(
      "n",
      {.min = 0, .max = kMaxFactorialN, .max_note = "171! overflows a double"});
  const double step = a.NumberOr("step_seconds", 0.0, kSecondsRule);
  if (!a.ok()) return a.status();
  return FactorialBody(static_cast<int>(n), step);
}

absl::StatusOr<JobBody> BindSpin(const Struct& args) {
  Args a(args, {"cpu_ms"});
  const double cpu_ms = a.Number("cpu_ms", {.min = 0,
                                            .min_exclusive = true,
                                            .max = kMaxSpinMs,
                                            .max_note = "1 minute"});
  if (!a.ok()) return a.status();
  return SpinBody(cpu_ms);
}

absl::StatusOr<JobBody> BindBlocking(const Struct& args) {
  Args a(args, {"seconds"});
  const double seconds = a.Number("seconds", kSecondsRule);
  if (!a.ok()) return a.status();
  return BlockingBody(seconds);
}

absl::StatusOr<JobBody> BindHash(const Struct& args) {
  Args a(args, {"bytes", "rounds"});
  const std::int64_t bytes =
      a.IntegerOr("bytes", kDefaultHashBytes,
                  {.min = 1, .max = kMaxHashBytes, .max_note = "64 MiB"});
  const std::int64_t rounds =
      a.IntegerOr("rounds", 1, {.min = 1, .max = kMaxHashRounds});
  if (!a.ok()) return a.status();
  return HashBody(bytes, rounds);
}

}  // namespace

void RegisterBuiltinKinds(JobKindRegistry& registry) {
  JobKind kinds[] = {
      {.name = "sleep",
       .description = "Sleeps, then returns result (asyncio.sleep).\n"
                      "args: seconds (number >= 0, at most 30 days, "
                      "required), result (any, default null)",
       .retry_safe = true,
       .bind = BindSleep},
      {.name = "echo",
       .description = "Returns value at once, without suspending.\n"
                      "args: value (any, required)",
       .retry_safe = true,
       .bind = BindEcho},
      {.name = "fail",
       .description =
           "Raises type(message), after sleeping after_seconds if > 0.\n"
           "args: type (exception class name, default \"RuntimeError\"), "
           "message (string, default \"\"), after_seconds (number >= 0, "
           "default 0)",
       .retry_safe = true,
       .bind = BindFail},
      {.name = "factorial",
       .description =
           "Computes n!, sleeping step_seconds (or yielding) before each "
           "multiplication (the asyncio tutorial's factorial).\n"
           "args: n (integer 0..170, required), step_seconds (number >= 0, "
           "default 0)",
       .retry_safe = true,
       .bind = BindFactorial},
      {.name = "spin",
       .description =
           "Burns cpu_ms of CPU on the event loop, yielding every 1 ms; "
           "returns the number of slices.\n"
           "args: cpu_ms (number, 0 < cpu_ms <= 60000, required)",
       .retry_safe = true,
       .bind = BindSpin},
      {.name = "blocking",
       .description =
           "Blocks a blocking-pool thread for seconds "
           "(asyncio.to_thread(time.sleep)); cancelling stops it early. "
           "Returns null.\n"
           "args: seconds (number >= 0, at most 30 days, required)",
       .blocking = true,
       .retry_safe = true,
       .bind = BindBlocking},
      {.name = "hash",
       .description =
           "Hashes bytes of deterministic data rounds times (chained "
           "FNV-1a 64) on the blocking pool; returns the hex digest.\n"
           "args: bytes (integer 1..67108864, default 1048576), rounds "
           "(integer 1..1000000, default 1)",
       .blocking = true,
       .retry_safe = true,
       .bind = BindHash},
  };
  for (JobKind& kind : kinds) {
    std::string name = kind.name;
    if (absl::Status s = registry.Register(std::move(kind)); !s.ok()) {
      // A programming error (a kind registered twice), not a runtime one.
      std::fprintf(stderr, "RegisterBuiltinKinds: %s: %s\n", name.c_str(),
                   s.ToString().c_str());
      std::abort();
    }
  }
}

}  // namespace awaitd::server
