// Helpers shared by the asyncio-contract tests (cancellation, combinators,
// the seeds' examples and the cancel stress test).
//
// They depend only on the runtime core (runtime.h, time.h, combinators.h),
// never on the sync primitives, so that a test of a combinator cannot fail
// because of a bug in Event or Semaphore.
//
// Thread safety: Lines and Gate are safe for concurrent use; the free
// functions are called from the test thread (WaitUntil, BlockOnWithin) or
// awaited inside a task (WaitGate, Until).
#ifndef AWAITD_TESTS_RUNTIME_CONTRACT_TEST_UTIL_H_
#define AWAITD_TESTS_RUNTIME_CONTRACT_TEST_UTIL_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/combinators.h"
#include "runtime/errors.h"
#include "runtime/join_handle.h"
#include "runtime/runtime.h"
#include "runtime/task.h"
#include "runtime/time.h"

namespace awaitd::runtime::contract_test {

// Bound for anything that "must happen": generous enough for a sanitizer
// build on a loaded 2-core machine. Only a hang (a bug) ever reaches it.
inline constexpr std::chrono::seconds kHangLimit{120};

// What the seeds print(), captured in order from any thread.
class Lines {
 public:
  void Add(std::string line) {
    std::lock_guard<std::mutex> lock(mu_);
    lines_.push_back(std::move(line));
  }
  std::vector<std::string> Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }
  std::size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_.size();
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

// A one-shot flag that tasks wait for by polling (see WaitGate).
class Gate {
 public:
  void Open() noexcept { open_.store(true, std::memory_order_release); }
  bool IsOpen() const noexcept { return open_.load(std::memory_order_acquire); }

 private:
  std::atomic<bool> open_{false};
};

// Inside a task: polls `pred` every 200 us of real time (SleepUntil is not
// scaled by time_scale) until it holds. Cancellable like any sleep.
inline Task<void> Until(std::function<bool()> pred) {
  while (!pred()) {
    co_await SleepUntil(std::chrono::steady_clock::now() +
                        std::chrono::microseconds(200));
  }
}

// Inside a task: waits until `gate` is open. Raises CancelledError if the
// task is cancelled meanwhile.
inline Task<void> WaitGate(const Gate* gate) {
  while (!gate->IsOpen()) {
    co_await SleepUntil(std::chrono::steady_clock::now() +
                        std::chrono::microseconds(200));
  }
}

// Outside the runtime: polls `pred` until it holds or `timeout` passed.
inline bool WaitUntil(const std::function<bool()>& pred,
                      std::chrono::milliseconds timeout = kHangLimit) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

// Aborts the process with `what` unless disarmed within `limit`: turns a
// hang (a runtime bug) into a prompt, named failure.
class Watchdog {
 public:
  Watchdog(std::string what, std::chrono::seconds limit)
      : thread_([this, what = std::move(what), limit] {
          std::unique_lock<std::mutex> lock(mu_);
          if (!cv_.wait_for(lock, limit, [this] { return disarmed_; })) {
            std::fprintf(
                stderr,
                "contract test watchdog: %s did not finish within %llds\n",
                what.c_str(), static_cast<long long>(limit.count()));
            std::abort();
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      disarmed_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  std::thread thread_;  // last: starts after the other members exist
};

// rt.BlockOn(task), aborting with a message if it hangs.
template <typename T>
T BlockOnWithin(Runtime& rt, Task<T> task,
                std::chrono::seconds limit = kHangLimit) {
  Watchdog dog("BlockOn", limit);
  return rt.BlockOn(std::move(task));
}

// Awaits `*h` and returns its outcome (value or exception) instead of
// raising.
template <typename T>
Task<Outcome<T>> Settle(JoinHandle<T>* h) {
  std::exception_ptr error;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await *h;
      co_return Outcome<T>();
    } else {
      co_return Outcome<T>(co_await *h);
    }
  } catch (...) {
    error = std::current_exception();
  }
  co_return Outcome<T>(error);
}

// From the test thread: the outcome of a spawned task, waiting at most
// kHangLimit for it.
template <typename T>
Outcome<T> SettleFromOutside(Runtime& rt, JoinHandle<T>* h) {
  return BlockOnWithin(rt, Settle(h));
}

// The message of an exception_ptr (what()), or "" if none.
inline std::string WhatOf(const std::exception_ptr& e) {
  if (!e) return "";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "<non-std exception>";
  }
}

template <typename E>
bool Is(const std::exception_ptr& e) {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

// AWAITD_STRESS_SCALE (float, default 1): sanitizer runs set it lower.
inline double StressScale() {
  const char* s = std::getenv("AWAITD_STRESS_SCALE");
  if (s == nullptr || *s == '\0') return 1.0;
  const double v = std::atof(s);
  return v > 0 ? v : 1.0;
}

inline std::size_t Scaled(std::size_t n, std::size_t at_least = 1) {
  return std::max(at_least, static_cast<std::size_t>(static_cast<double>(n) *
                                                     StressScale()));
}

// Elapsed real time since construction.
class Stopwatch {
 public:
  std::chrono::nanoseconds Elapsed() const {
    return std::chrono::steady_clock::now() - start_;
  }

 private:
  std::chrono::steady_clock::time_point start_ =
      std::chrono::steady_clock::now();
};

}  // namespace awaitd::runtime::contract_test

#endif  // AWAITD_TESTS_RUNTIME_CONTRACT_TEST_UTIL_H_
