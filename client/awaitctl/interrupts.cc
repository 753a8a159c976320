// Interrupts: signals taken by one thread with sigwait.
#include "client/awaitctl/interrupts.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <utility>

#include "absl/time/time.h"

namespace awaitd::awaitctl {
namespace {

// How long a signal that came between two calls waits for the next call
// to cancel, before the process exits at once.
constexpr absl::Duration kGraceForNextCall = absl::Seconds(1);

sigset_t Signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

void Interrupts::BlockSignals() {
  const sigset_t set = Signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

Interrupts::Interrupts() : thread_([this] { Loop(); }) {}

Interrupts::~Interrupts() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  // Wakes the sigwait below; it sees stopping_ and returns.
  pthread_kill(thread_.native_handle(), SIGINT);
  thread_.join();
}

void Interrupts::Loop() {
  const sigset_t set = Signals();
  while (true) {
    int signo = 0;
    if (sigwait(&set, &signo) != 0) continue;
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    if (signal_.load() != 0) _exit(128 + signo);  // a second signal
    signal_.store(signo);
    if (!cancel_) {
      // Between two calls: the next one is cancelled as soon as it starts.
      // If none starts soon (a short blocking step, or connecting), leave
      // at once: nothing needs cleaning up, the jobs live in the daemon.
      auto call_or_stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || cancel_ != nullptr;
      };
      if (!mu_.AwaitWithTimeout(absl::Condition(&call_or_stop),
                                kGraceForNextCall)) {
        _exit(128 + signo);
      }
      if (stopping_) return;
    }
    // Under the lock, so the Scope (and what `cancel_` refers to) outlives
    // the call.
    std::function<void()> cancel = std::move(cancel_);
    cancel_ = nullptr;
    cancel();
  }
}

Interrupts::Scope Interrupts::OnInterrupt(std::function<void()> cancel) {
  absl::MutexLock lock(&mu_);
  cancel_ = std::move(cancel);
  return Scope(this, ++token_);
}

void Interrupts::Clear(std::uint64_t token) {
  absl::MutexLock lock(&mu_);
  if (token == token_) cancel_ = nullptr;
}

Interrupts::Scope::Scope(Scope&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)), token_(other.token_) {}

Interrupts::Scope::~Scope() {
  if (owner_ != nullptr) owner_->Clear(token_);
}

}  // namespace awaitd::awaitctl
