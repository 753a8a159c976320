// awaitd: asyncio's task semantics as a gRPC daemon. Parses flags, starts a
// Daemon, and handles its signals:
//   - SIGTERM or SIGINT: a graceful shutdown (--shutdown_grace), then exit 0;
//   - a second SIGTERM or SIGINT during that shutdown: exit at once with
//     128 + the signal's number (143, 130), without waiting for jobs;
//   - SIGHUP: read --token_file again (Daemon::ReloadTokens).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>
#include <thread>

#include "absl/flags/internal/parse.h"
#include "absl/flags/internal/usage.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/signal_set.hpp"
#include "common/strings.h"
#include "server/daemon/daemon.h"
#include "server/daemon/flags.h"
#include "server/daemon/systemd.h"

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "runs jobs with Python asyncio's semantics (create_task, gather, "
      "wait, wait_for, as_completed, TaskGroup, cancel, limits) for gRPC "
      "clients.\n\nUsage: awaitd [--flag=value ...] [--flagfile=FILE]\n"
      "Stop it with SIGTERM or SIGINT (graceful: --shutdown_grace; a second "
      "one exits at once, status 128+signal). SIGHUP reloads --token_file.");
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return file.find("server/daemon/flags.cc") != absl::string_view::npos;
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  usage.version_string = [] { return std::string("awaitd 0.1.0\n"); };
  absl::SetFlagsUsageConfig(usage);
  // absl::ParseCommandLine exits with status 1 after --help; asking for help
  // is not an error, so usage flags are handled here (0 for --help and
  // --version). flags_internal is Abseil's own parser, without that policy.
  std::vector<char*> rest = absl::flags_internal::ParseCommandLineImpl(
      argc, argv, absl::flags_internal::ArgvListAction::kRemoveParsedArgs,
      absl::flags_internal::UsageFlagsAction::kIgnoreUsage,
      absl::flags_internal::OnUndefinedFlag::kAbortIfUndefined);
  if (const int code = absl::flags_internal::HandleUsageFlags(
          std::cout, absl::ProgramUsageMessage());
      code != -1) {
    return 0;
  }
  if (rest.size() > 1) {
    std::fprintf(stderr,
                 "awaitd: unexpected argument '%s' (flags are --name=value; "
                 "see --help)\n",
                 rest[1]);
    return 2;
  }
  auto options = awaitd::server::DaemonOptionsFromFlags();
  if (!options.ok()) {
    std::fprintf(stderr, "awaitd: %s (see --help)\n",
                 std::string(options.status().message()).c_str());
    return 2;
  }

  if (awaitd::server::RepairStoreRequested()) {
    const std::string dir = options->data_dir + "/jobs";
    absl::Status s = awaitd::server::JobStore::Repair(dir);
    if (!s.ok()) {
      std::fprintf(stderr, "awaitd: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    std::fprintf(stderr,
                 "awaitd: repaired the job store in %s; start awaitd as "
                 "usual\n",
                 dir.c_str());
    return 0;
  }

  // Run by systemd (Type=notify, WatchdogSec=): deploy/systemd/awaitd.service.
  if (const char* socket = std::getenv("NOTIFY_SOCKET"); socket != nullptr) {
    options->notify_socket = socket;
    options->watchdog_interval =
        awaitd::server::WatchdogIntervalFromEnvironment();
  }

  // Signals are delivered on this thread's io_context, never as work inside
  // a signal handler. Registered before start-up, so none is lost.
  boost::asio::io_context io;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);

  auto daemon = awaitd::server::Daemon::Start(*std::move(options));
  if (!daemon.ok()) {
    awaitd::TimestampedStderrSink(
        awaitd::LogLevel::kError,
        awaitd::StrCat("component=server event=start_failed error=",
                       awaitd::LogQuote(daemon.status().ToString())));
    return 1;
  }
  const awaitd::Logger& logger = (*daemon)->logger();
  // The graceful shutdown runs on its own thread, so that this one keeps
  // receiving signals while it does; when it is over, the io_context runs
  // out of work (the signal wait is cancelled) and main returns.
  std::thread stopper;
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signo) {
        if (ec) return;  // cancelled: the shutdown is complete
        const char* name = signo == SIGTERM  ? "SIGTERM"
                           : signo == SIGINT ? "SIGINT"
                                             : "SIGHUP";
        if (signo == SIGHUP) {
          logger.Log(awaitd::LogLevel::kInfo,
                     "component=server event=signal signal=SIGHUP "
                     "action=reload_tokens");
          (void)(*daemon)->ReloadTokens();  // it logs the outcome
        } else if (!stopper.joinable()) {
          logger.Log(awaitd::LogLevel::kInfo,
                     "component=server event=signal signal=", name);
          stopper = std::thread([&] {
            (*daemon)->Shutdown();
            boost::asio::post(io, [&] { signals.cancel(); });
          });
        } else {
          // The operator does not want to wait for the grace: stop now.
          // Jobs are not cancelled and nothing more is stored; what was
          // acknowledged is already on disk (--durability=sync).
          const int code = 128 + signo;
          logger.Log(awaitd::LogLevel::kWarning,
                     "component=server event=signal signal=", name,
                     " action=exit_now exit_code=", code,
                     " reason=\"second signal during the graceful "
                     "shutdown\"");
          std::fflush(stderr);
          std::_Exit(code);
        }
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);
  io.run();
  if (stopper.joinable()) stopper.join();
  daemon->reset();
  return 0;
}
