// systemd integration without libsystemd: the sd_notify(3) datagram protocol
// and a watchdog that pings only while the event loops make progress.
//
//   SystemdNotifier notifier(getenv("NOTIFY_SOCKET"));  // "" = disabled
//   notifier.Notify("READY=1\nSTATUS=listening on 127.0.0.1:50051");
//
//   Watchdog dog(runtime, notifier, absl::Seconds(15), logger);
//   dog.Start();   // a thread: WATCHDOG=1 every interval / 2 while a probe
//   ...            // task spawned on the runtime comes back in time
//   dog.Stop();    // before the runtime shuts down
//
// The unit (deploy/systemd/awaitd.service) is Type=notify with WatchdogSec=:
// systemd starts clients only after READY=1, and restarts the daemon when
// WATCHDOG=1 stops coming, i.e. when no worker has run a task for a whole
// watchdog period (every worker blocked, a deadlock, a runaway job hogging
// the loops). A slow gRPC thread or a long job that yields does not stop it.
//
// Thread safety: SystemdNotifier is immutable after construction and may be
// used from any thread. Watchdog's Start and Stop are called from one
// controlling thread (the Daemon's), never from a runtime worker.
#ifndef AWAITD_SERVER_DAEMON_SYSTEMD_H_
#define AWAITD_SERVER_DAEMON_SYSTEMD_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/logger.h"
#include "runtime/runtime.h"

namespace awaitd::server {

class SystemdNotifier {
 public:
  // `socket` is $NOTIFY_SOCKET: a path, or "@name" for Linux's abstract
  // namespace. Empty: not run by systemd, every Notify is a no-op.
  explicit SystemdNotifier(std::string socket = "");

  bool enabled() const { return !socket_.empty(); }
  const std::string& socket() const { return socket_; }

  // Sends one datagram of newline-separated assignments ("READY=1",
  // "STATUS=...", "WATCHDOG=1", "STOPPING=1"). OK when disabled.
  absl::Status Notify(std::string_view state) const;

 private:
  std::string socket_;
};

// The watchdog period systemd asks for: $WATCHDOG_USEC, unless $WATCHDOG_PID
// names another process. Zero when there is none (or it does not parse).
absl::Duration WatchdogIntervalFromEnvironment();

class Watchdog {
 public:
  // Pings every `interval / 2` (sd_watchdog_enabled(3)'s advice) while the
  // runtime answers a probe within that half period. Zero interval or a
  // disabled notifier: Start does nothing.
  Watchdog(runtime::Runtime& runtime, const SystemdNotifier& notifier,
           absl::Duration interval, const Logger& logger);
  ~Watchdog();  // Stop()
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void Start();
  // Joins the thread; no ping after it returns. Idempotent.
  void Stop();

 private:
  // Shared with the probe tasks, which may outlive the watchdog when the
  // loops never run them before the runtime is dropped.
  struct State {
    absl::Mutex mu;
    bool stopping ABSL_GUARDED_BY(mu) = false;
    std::uint64_t answered ABSL_GUARDED_BY(mu) = 0;  // highest probe back
  };
  static runtime::Task<void> RunProbe(std::shared_ptr<State> state,
                                      std::uint64_t seq);
  // Whether probe `seq` came back (or Stop began) within `timeout`.
  bool AwaitAnswer(std::uint64_t seq, absl::Duration timeout);
  bool Stopping();
  void Loop();

  runtime::Runtime& runtime_;
  const SystemdNotifier& notifier_;
  const absl::Duration interval_;
  const Logger& logger_;
  const std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace awaitd::server

#endif  // AWAITD_SERVER_DAEMON_SYSTEMD_H_
