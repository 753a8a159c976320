// Interrupts: Ctrl-C (SIGINT) and SIGTERM for a command-line tool that
// waits on RPCs.
//
// The signals are blocked in every thread (BlockSignals, first thing in
// main, so gRPC's threads inherit the mask) and taken by one thread with
// sigwait, never in a signal handler. On a signal that thread runs the
// cancel function of the call in flight (the call ends with CANCELLED; the
// jobs are not touched) and marks the process interrupted; the command then
// cleans up and exits with 128 + the signal (130 for Ctrl-C). A signal
// between two calls cancels the next call as soon as it starts, or, if none
// starts within a second, exits at once with that code; so does a second
// signal.
//
//   Interrupts::BlockSignals();          // in main, before any thread
//   Interrupts interrupts;
//   {
//     Interrupts::Scope scope = interrupts.OnInterrupt([&] { h.Cancel(); });
//     ... wait for the call ...
//   }
//   if (interrupts.interrupted()) return interrupts.exit_code();
//
// Thread safety: safe for concurrent use.
#ifndef AWAITD_CLIENT_AWAITCTL_INTERRUPTS_H_
#define AWAITD_CLIENT_AWAITCTL_INTERRUPTS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace awaitd::awaitctl {

class Interrupts {
 public:
  // Blocks SIGINT and SIGTERM in the calling thread, and so in every thread
  // it starts later.
  static void BlockSignals();

  // Starts the signal thread. BlockSignals must have run first.
  Interrupts();
  ~Interrupts();
  Interrupts(const Interrupts&) = delete;
  Interrupts& operator=(const Interrupts&) = delete;

  // While the Scope lives, a signal runs `cancel` (once, on the signal
  // thread; it must not block) instead of exiting at once.
  class Scope {
   public:
    Scope(Scope&& other) noexcept;
    Scope& operator=(Scope&&) = delete;
    ~Scope();

   private:
    friend class Interrupts;
    Scope(Interrupts* owner, std::uint64_t token)
        : owner_(owner), token_(token) {}
    Interrupts* owner_;
    std::uint64_t token_;
  };
  [[nodiscard]] Scope OnInterrupt(std::function<void()> cancel);

  bool interrupted() const { return signal_.load() != 0; }
  // 128 + the signal (130 for SIGINT).
  int exit_code() const { return 128 + signal_.load(); }

 private:
  void Loop();
  void Clear(std::uint64_t token) ABSL_LOCKS_EXCLUDED(mu_);

  std::atomic<int> signal_{0};
  absl::Mutex mu_;
  std::function<void()> cancel_ ABSL_GUARDED_BY(mu_);
  std::uint64_t token_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace awaitd::awaitctl

#endif  // AWAITD_CLIENT_AWAITCTL_INTERRUPTS_H_
