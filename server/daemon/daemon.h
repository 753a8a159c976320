// Daemon: one running awaitd, assembled from its parts, with its start-up
// and shutdown order.
//
//   DaemonOptions options;              // or DaemonOptionsFromFlags()
//   options.listen = "127.0.0.1:0";     // port 0: any free port
//   options.register_kinds = [](JobKindRegistry& kinds) {  // optional
//     return kinds.Register(MyKind());
//   };
//   auto daemon = Daemon::Start(std::move(options));
//   if (!daemon.ok()) ...;
//   int port = (*daemon)->port();
//   ...
//   (*daemon)->Shutdown();              // graceful; also the destructor's
//
// Start-up: runtime -> job kinds (built-in, options.register_kinds, then
// options.plugins) and limits -> job manager -> gRPC server
// (Jobs, grpc.health.v1, reflection) listening -> SERVING -> systemd's
// READY=1 and its watchdog (when run by systemd).
//
// Shutdown (Shutdown(), e.g. on SIGTERM):
//   0. systemd's STOPPING=1; the watchdog stops pinging;
//   1. health NOT_SERVING; new Submits and groups fail with UNAVAILABLE;
//   2. running jobs may finish, up to `shutdown_grace`;
//   3. every job not done is cancelled, and given a moment to unwind;
//   4. calls still waiting (Watch streams) are ended with UNAVAILABLE;
//   5. the gRPC server stops (it cancels any call left after a short grace);
//   6. the job manager, then the runtime, stop.
//
// Thread safety: Start, Shutdown and Wait may be called from any thread that
// is not a runtime worker or a gRPC callback thread; Shutdown is idempotent.
#ifndef AWAITD_SERVER_DAEMON_DAEMON_H_
#define AWAITD_SERVER_DAEMON_DAEMON_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/logger.h"
#include "runtime/runtime_options.h"
#include "server/daemon/systemd.h"
#include "server/jobs/job_manager.h"
#include "server/kinds/job_kind.h"
#include "server/rpc/auth.h"
#include "server/rpc/jobs_service.h"
#include "server/rpc/metrics.h"
#include "server/store/store.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace awaitd::server {

// The exit status after a failed write or sync of the job store (EX_IOERR).
inline constexpr int kStoreFailedExitCode = 74;

struct DaemonOptions {
  // "host:port" (port 0 picks one) or "unix:/path/to.sock".
  std::string listen = "127.0.0.1:50051";
  // When set, "host:port" of the bound address is written here (atomically)
  // once the server listens.
  std::string port_file;
  bool reflection = true;
  // Largest request or response message.
  std::size_t max_message_bytes = 64 * 1024 * 1024;
  // The gRPC transport (GrpcServerArgs). HTTP/2 streams (calls of any
  // kind) one connection may have open at once; the client queues more.
  int max_concurrent_streams = 1000;
  // The server pings a connection every `keepalive_time` and closes it when
  // a ping is not answered within `keepalive_timeout`, so the calls of a
  // client that vanished (Watch streams) end. Clients may ping every 10 s.
  absl::Duration keepalive_time = absl::Minutes(1);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  // gRPC's ResourceQuota: the memory its buffers may take (under pressure it
  // shrinks reads and closes idle connections) and its most threads.
  std::size_t grpc_memory_bytes = std::size_t{1} << 30;
  int grpc_max_threads = 256;
  // Declared at start ("name:permits").
  std::vector<std::string> limits;
  // Job kinds of the embedding program (server/kinds/job_kind.h): called
  // once by Start, after the built-in kinds are registered and before
  // anything runs or serves. An error fails Start, its code kept and its
  // message prefixed with "register_kinds: ".
  std::function<absl::Status(JobKindRegistry&)> register_kinds;
  // Shared libraries with more job kinds (--plugin; server/kinds/plugin.h),
  // loaded in this order after register_kinds. One that cannot be loaded or
  // is refused fails Start ("plugin PATH: ...").
  std::vector<std::string> plugins;
  // TLS, mutual TLS and bearer tokens (server/rpc/auth.h). A non-loopback
  // `listen` needs tokens or mutual TLS, or auth.insecure_listen_anywhere;
  // a non-loopback `metrics_listen` needs tokens or auth.metrics_public.
  AuthOptions auth;
  JobManagerOptions jobs;
  JobsServiceOptions service;
  runtime::RuntimeOptions runtime;
  absl::Duration shutdown_grace = absl::Seconds(10);
  // After the grace: how long cancelled jobs get to unwind, and how long the
  // gRPC server waits for calls before cancelling them.
  absl::Duration cancel_grace = absl::Seconds(2);
  // "host:port" of the Prometheus endpoint (GET /metrics; port 0 picks
  // one); empty: none. The flag's default is 127.0.0.1:9464.
  std::string metrics_listen;
  // systemd (server/daemon/systemd.h): $NOTIFY_SOCKET and the watchdog period
  // ($WATCHDOG_USEC). Empty / zero when not run by systemd; main() fills
  // them from the environment.
  std::string notify_socket;
  absl::Duration watchdog_interval = absl::ZeroDuration();
  // Durability (server/store/store.h): kNone keeps jobs in memory only;
  // otherwise they are stored under `data_dir`/jobs and recovered at start,
  // before the daemon listens. (The flag's default is sync, under ./var.)
  Durability durability = Durability::kNone;
  std::string data_dir = "./var";
  // Tests: the file system the store writes through (fault injection), and
  // what a failed write or sync does instead of logging and exiting 74
  // (it is logged either way).
  std::shared_ptr<rocksdb::FileSystem> store_file_system;
  std::function<void(const absl::Status&)> on_store_failure;
  LogLevel log_level = LogLevel::kInfo;
  // Null: TimestampedStderrSink.
  runtime::LogSink log_sink;
};

// The channel arguments Daemon::Start gives the gRPC server (keepalive,
// max concurrent streams, idle connections), by name; tests read them back.
std::vector<std::pair<std::string, int>> GrpcServerArgs(
    const DaemonOptions& options);

class Daemon {
 public:
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(DaemonOptions options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // The bound TCP port (0 for a unix socket), and the address clients dial.
  int port() const { return port_; }
  const std::string& address() const { return address_; }
  // The metrics endpoint's port (0 when there is none).
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }
  // The metrics endpoint (null when there is none).
  const MetricsServer* metrics() const { return metrics_.get(); }

  // The graceful shutdown above; returns once it is complete.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);
  // Blocks until Shutdown has completed (on any thread).
  void Wait() ABSL_LOCKS_EXCLUDED(mu_);

  // SIGHUP: reads --token_file again (Authenticator::ReloadTokens) and logs
  // the outcome (event=tokens_reloaded tokens=N, or tokens_reload_failed:
  // the old tokens stay valid). Returns how many tokens are valid now.
  // FAILED_PRECONDITION (logged) when there is no --token_file.
  absl::StatusOr<std::size_t> ReloadTokens();

  JobManager& jobs() { return *jobs_; }
  const JobsService& service() const { return *service_; }
  runtime::Runtime& runtime() { return *runtime_; }
  const Logger& logger() const { return *logger_; }

 private:
  explicit Daemon(DaemonOptions options);
  absl::Status Init();
  // The built-in kinds, options_.register_kinds, then options_.plugins.
  absl::Status RegisterKinds();
  absl::Status OpenStoreAndRecover();

  DaemonOptions options_;
  std::unique_ptr<Logger> logger_;
  // Before the runtime and the jobs: it outlives their last stored changes.
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<runtime::Runtime> runtime_;
  JobKindRegistry kinds_;
  LimitRegistry limits_;
  std::unique_ptr<JobManager> jobs_;
  std::unique_ptr<JobsService> service_;
  std::shared_ptr<Authenticator> auth_;
  RpcStats rpc_stats_;
  std::unique_ptr<MetricsServer> metrics_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<SystemdNotifier> notifier_;
  std::unique_ptr<Watchdog> watchdog_;
  int port_ = 0;
  std::string address_;

  absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace awaitd::server

#endif  // AWAITD_SERVER_DAEMON_DAEMON_H_
