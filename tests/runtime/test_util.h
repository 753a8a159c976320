// Shared helpers for the runtime tests: stress sizing, bounded waits, and a
// watchdog so that a broken runtime fails a test instead of hanging it.
//
// Thread safety: every helper is safe to use from any thread.
#ifndef AWAITD_TESTS_RUNTIME_TEST_UTIL_H_
#define AWAITD_TESTS_RUNTIME_TEST_UTIL_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/log.h"
#include "runtime/runtime.h"
#include "runtime/task.h"

namespace awaitd::runtime::testing {

// The AWAITD_STRESS_SCALE factor (default 1.0; the sanitizer runs lower it).
inline double StressScale() {
  static const double scale = [] {
    const char* s = std::getenv("AWAITD_STRESS_SCALE");
    if (s == nullptr || *s == '\0') return 1.0;
    const double v = std::strtod(s, nullptr);
    return v > 0 ? v : 1.0;
  }();
  return scale;
}

// `n` scaled by AWAITD_STRESS_SCALE, but never below `min` (nor above n when
// n < min).
inline std::size_t Scaled(std::size_t n, std::size_t min = 1000) {
  const auto scaled =
      static_cast<std::size_t>(static_cast<double>(n) * StressScale());
  return std::max(scaled, std::min(n, min));
}

// True when the frame allocator forwards to operator new (ASan builds), so
// tests of its recycling do not apply.
inline constexpr bool kAddressSanitizer =
#if defined(__SANITIZE_ADDRESS__)
    true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    true;
#else
    false;
#endif
#else
    false;
#endif

inline constexpr bool kThreadSanitizer =
#if defined(__SANITIZE_THREAD__)
    true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
    true;
#else
    false;
#endif
#else
    false;
#endif

// Aborts the process (with a message) if not disarmed within `limit`: a hung
// runtime then fails the test at once instead of at the ctest timeout.
class Watchdog {
 public:
  explicit Watchdog(std::chrono::seconds limit, std::string what = "test")
      : thread_([this, limit, what = std::move(what)] {
          std::unique_lock lock(mu_);
          if (!cv_.wait_for(lock, limit, [this] { return disarmed_; })) {
            std::fprintf(stderr,
                         "WATCHDOG: %s did not finish within %llds; aborting\n",
                         what.c_str(), static_cast<long long>(limit.count()));
            std::fflush(stderr);
            std::abort();
          }
        }) {}
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() {
    {
      std::lock_guard lock(mu_);
      disarmed_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  std::thread thread_;
};

// Polls `pred` until it holds or `timeout` passes. Returns its last value.
template <typename Pred>
bool WaitFor(Pred pred,
             std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

namespace internal_util {
template <typename T>
Task<void> FulfilWith(Task<T> task, std::shared_ptr<std::promise<T>> promise) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(task);
      promise->set_value();
    } else {
      promise->set_value(co_await std::move(task));
    }
  } catch (...) {
    promise->set_exception(std::current_exception());
  }
}
}  // namespace internal_util

// Like Runtime::BlockOn, but gives up after `timeout`: returns a future that
// is ready, or adds a test failure and returns nullopt. (The task is left to
// the runtime's shutdown.)
template <typename T>
std::optional<std::future<T>> SpawnAndWait(
    Runtime& rt, Task<T> task,
    std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto promise = std::make_shared<std::promise<T>>();
  std::future<T> f = promise->get_future();
  rt.Spawn(internal_util::FulfilWith(std::move(task), std::move(promise)))
      .Detach();
  if (f.wait_for(timeout) != std::future_status::ready) {
    ADD_FAILURE() << "task did not finish within " << timeout.count() << "ms";
    return std::nullopt;
  }
  return f;
}

// Spawn + wait + get, failing the test (and returning `fallback`) on timeout.
template <typename T>
T BlockOnWithin(Runtime& rt, Task<T> task, std::chrono::milliseconds timeout,
                T fallback = T{}) {
  auto f = SpawnAndWait(rt, std::move(task), timeout);
  if (!f) return fallback;
  return f->get();
}

inline bool BlockOnWithin(Runtime& rt, Task<void> task,
                          std::chrono::milliseconds timeout) {
  auto f = SpawnAndWait(rt, std::move(task), timeout);
  if (!f) return false;
  f->get();
  return true;
}

// Awaits a JoinHandle from inside the runtime (JoinHandles can only be
// awaited by tasks).
template <typename T>
Task<T> AwaitHandle(JoinHandle<T> h) {
  co_return co_await h;
}

// Collects log lines; pass Sink() as RuntimeOptions::log_sink.
class LogCapture {
 public:
  LogSink Sink() {
    return [state = state_](LogLevel, std::string_view line) {
      std::lock_guard lock(state->mu);
      state->lines.emplace_back(line);
    };
  }
  std::vector<std::string> Lines() const {
    std::lock_guard lock(state_->mu);
    return state_->lines;
  }
  // Lines containing every one of `parts`.
  std::vector<std::string> Matching(
      std::initializer_list<std::string_view> parts) const {
    std::vector<std::string> out;
    for (const std::string& l : Lines()) {
      bool all = true;
      for (std::string_view p : parts)
        all = all && l.find(p) != std::string::npos;
      if (all) out.push_back(l);
    }
    return out;
  }

 private:
  struct State {
    mutable std::mutex mu;
    std::vector<std::string> lines;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

// Counts live instances: put one in a coroutine frame to see whether the
// frame was destroyed.
class LiveCounter {
 public:
  explicit LiveCounter(std::atomic<int>* count) : count_(count) {
    count_->fetch_add(1);
  }
  LiveCounter(const LiveCounter& o) : count_(o.count_) { count_->fetch_add(1); }
  LiveCounter& operator=(const LiveCounter&) = delete;
  ~LiveCounter() { count_->fetch_sub(1); }

 private:
  std::atomic<int>* count_;
};

// SplitMix64: deterministic per-index pseudo-randomness.
inline std::uint64_t Mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Spins for `d` without suspending.
inline void BusySpin(std::chrono::nanoseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

}  // namespace awaitd::runtime::testing

#endif  // AWAITD_TESTS_RUNTIME_TEST_UTIL_H_
