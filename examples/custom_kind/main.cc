// The kinds in a daemon of our own: awaitd's, plus word_count and resolve.
//   custom_awaitd [LISTEN [PORT_FILE]]     (default 127.0.0.1:50051)
#include <csignal>
#include <cstdio>
#include <string>
#include <utility>

#include "kinds.h"
#include "server/daemon/daemon.h"

int main(int argc, char** argv) {
  awaitd::server::DaemonOptions options;  // awaitd's defaults
  if (argc > 1) options.listen = argv[1];
  if (argc > 2) options.port_file = argv[2];
  options.register_kinds = custom_kind::RegisterKinds;
  // SIGINT and SIGTERM are taken by sigwait below, on this thread only: the
  // daemon's threads inherit this mask.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto daemon = awaitd::server::Daemon::Start(std::move(options));
  if (!daemon.ok()) {
    std::fprintf(stderr, "custom_awaitd: %s\n",
                 daemon.status().ToString().c_str());
    return 1;
  }
  int signo = 0;
  sigwait(&stop, &signo);
  (*daemon)->Shutdown();  // graceful: running jobs get shutdown_grace
  return 0;
}
