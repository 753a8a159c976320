#include "server/daemon/systemd.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "common/strings.h"
#include "runtime/time.h"

namespace awaitd::server {

SystemdNotifier::SystemdNotifier(std::string socket)
    : socket_(std::move(socket)) {}

absl::Status SystemdNotifier::Notify(std::string_view state) const {
  if (socket_.empty()) return absl::OkStatus();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_.size() >= sizeof(addr.sun_path) ||
      (socket_[0] != '/' && socket_[0] != '@')) {
    return absl::InvalidArgumentError(
        StrCat("NOTIFY_SOCKET=", socket_,
               ": not an absolute path or @abstract name that fits a "
               "unix socket address"));
  }
  std::memcpy(addr.sun_path, socket_.data(), socket_.size());
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract
  const socklen_t len =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_.size());

  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::InternalError(
        StrCat("NOTIFY_SOCKET: socket(): ", std::strerror(errno)));
  }
  ssize_t sent;
  do {
    sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                    reinterpret_cast<const sockaddr*>(&addr), len);
  } while (sent < 0 && errno == EINTR);
  const int err = errno;
  ::close(fd);
  if (sent < 0) {
    return absl::UnavailableError(
        StrCat("NOTIFY_SOCKET=", socket_, ": sendto(): ", std::strerror(err)));
  }
  return absl::OkStatus();
}

absl::Duration WatchdogIntervalFromEnvironment() {
  const char* usec = std::getenv("WATCHDOG_USEC");
  if (usec == nullptr) return absl::ZeroDuration();
  if (const char* pid = std::getenv("WATCHDOG_PID"); pid != nullptr) {
    std::int64_t p = 0;
    if (!absl::SimpleAtoi(pid, &p) || p != ::getpid()) {
      return absl::ZeroDuration();  // meant for another process
    }
  }
  std::int64_t us = 0;
  if (!absl::SimpleAtoi(usec, &us) || us <= 0) return absl::ZeroDuration();
  return absl::Microseconds(us);
}

Watchdog::Watchdog(runtime::Runtime& runtime, const SystemdNotifier& notifier,
                   absl::Duration interval, const Logger& logger)
    : runtime_(runtime),
      notifier_(notifier),
      interval_(interval),
      logger_(logger),
      state_(std::make_shared<State>()) {}

Watchdog::~Watchdog() { Stop(); }

void Watchdog::Start() {
  if (!notifier_.enabled() || interval_ <= absl::ZeroDuration()) return;
  if (thread_.joinable()) return;
  logger_.Log(LogLevel::kInfo, "component=systemd event=watchdog_started",
              " interval=", absl::FormatDuration(interval_));
  thread_ = std::thread([this] { Loop(); });
}

void Watchdog::Stop() {
  {
    absl::MutexLock lock(&state_->mu);
    state_->stopping = true;
  }
  if (thread_.joinable()) thread_.join();
}

runtime::Task<void> Watchdog::RunProbe(std::shared_ptr<State> state,
                                       std::uint64_t seq) {
  // Through the timer wheel as well as the run queues: a loop that never
  // fires timers is not making progress either.
  co_await runtime::Sleep(std::chrono::milliseconds(1));
  absl::MutexLock lock(&state->mu);
  state->answered = std::max(state->answered, seq);
}

bool Watchdog::AwaitAnswer(std::uint64_t seq, absl::Duration timeout) {
  State& st = *state_;
  absl::MutexLock lock(&st.mu);
  const auto answered = [&st, seq]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu) {
    return st.stopping || st.answered >= seq;
  };
  return st.mu.AwaitWithTimeout(absl::Condition(&answered), timeout);
}

bool Watchdog::Stopping() {
  absl::MutexLock lock(&state_->mu);
  return state_->stopping;
}

void Watchdog::Loop() {
  const absl::Duration period = interval_ / 2;
  std::uint64_t seq = 0;
  for (;;) {
    const absl::Time sent = absl::Now();
    runtime_.SpawnDetached(RunProbe(state_, ++seq));
    if (!AwaitAnswer(seq, period)) {
      // Withhold the ping: if this lasts another half period, systemd
      // kills and restarts the daemon (WatchdogSec=, Restart=on-failure).
      logger_.Log(
          LogLevel::kError, "component=systemd event=loops_stalled waited=",
          absl::FormatDuration(period), " action=withholding_watchdog_ping");
      AwaitAnswer(seq, absl::InfiniteDuration());
      if (Stopping()) return;
      logger_.Log(LogLevel::kWarning,
                  "component=systemd event=loops_recovered stalled_for=",
                  absl::FormatDuration(absl::Now() - sent));
    }
    if (Stopping()) return;
    if (absl::Status s = notifier_.Notify("WATCHDOG=1"); !s.ok()) {
      logger_.Log(LogLevel::kWarning,
                  "component=systemd event=notify_failed error=",
                  LogQuote(s.ToString()));
    }
    absl::MutexLock lock(&state_->mu);
    state_->mu.AwaitWithDeadline(absl::Condition(&state_->stopping),
                                 sent + period);
    if (state_->stopping) return;
  }
}

}  // namespace awaitd::server
