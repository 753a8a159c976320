#include "server/daemon/daemon.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <utility>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/strings.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/impl/server_builder_option.h"
#include "grpcpp/impl/server_builder_plugin.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/server_interceptor.h"
#include "server/kinds/plugin_loader.h"

namespace awaitd::server {

namespace {

absl::Status WritePortFile(const std::string& path,
                           const std::string& address) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << address << "\n";
    out.flush();
    if (!out) {
      return absl::FailedPreconditionError(
          StrCat("--port_file=", path, ": cannot write ", tmp));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::FailedPreconditionError(
        StrCat("--port_file=", path, ": cannot rename ", tmp, " into place"));
  }
  return absl::OkStatus();
}

// Linking grpc++_reflection registers its plugin for every ServerBuilder
// (a static initializer), so --reflection=false has to take it out again.
class WithoutReflection final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>*
                         plugins) override {
    std::erase_if(*plugins, [](const auto& p) {
      return p->name() == "proto_server_reflection";
    });
  }
};

}  // namespace

std::vector<std::pair<std::string, int>> GrpcServerArgs(
    const DaemonOptions& options) {
  const auto ms = [](absl::Duration d) {
    return static_cast<int>(std::clamp<std::int64_t>(
        absl::ToInt64Milliseconds(d), 1, std::int64_t{INT32_MAX}));
  };
  return {
      {GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams},
      {GRPC_ARG_KEEPALIVE_TIME_MS, ms(options.keepalive_time)},
      {GRPC_ARG_KEEPALIVE_TIMEOUT_MS, ms(options.keepalive_timeout)},
      // Keepalive pings also while a connection has no call (its clients
      // may be gone), and clients' own pings at most every 10 s (more often:
      // after two, the connection is closed, "too_many_pings").
      {GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1},
      {GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000},
      {GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2},
      // A connection without calls for an hour is closed (clients reconnect).
      {GRPC_ARG_MAX_CONNECTION_IDLE_MS, 60 * 60 * 1000},
  };
}

Daemon::Daemon(DaemonOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(DaemonOptions options) {
  std::unique_ptr<Daemon> d(new Daemon(std::move(options)));
  absl::Status s = d->Init();
  if (!s.ok()) {
    d->Shutdown();
    return s;
  }
  return d;
}

absl::Status Daemon::RegisterKinds() {
  RegisterBuiltinKinds(kinds_);
  if (options_.register_kinds) {
    if (absl::Status s = options_.register_kinds(kinds_); !s.ok()) {
      return absl::Status(s.code(), StrCat("register_kinds: ", s.message()));
    }
  }
  for (const std::string& path : options_.plugins) {
    absl::StatusOr<LoadedPlugin> plugin = LoadPlugin(path, kinds_);
    if (!plugin.ok()) return plugin.status();
    logger_->Log(LogLevel::kInfo, "component=server event=plugin_loaded path=",
                 LogQuote(plugin->path), " name=", LogQuote(plugin->name),
                 " kinds=", LogQuote(absl::StrJoin(plugin->kinds, ",")));
  }
  return absl::OkStatus();
}

absl::Status Daemon::Init() {
  // Debian builds Abseil without NDEBUG, which turns on absl::Mutex's
  // deadlock detector: every lock and every Mutex destruction goes through
  // a process-wide graph under a global lock. With a Mutex per job that was
  // half the daemon's CPU. Lock order here is documented and acyclic (a
  // group before its children, a job before its watchers); the clang build
  // checks the annotations instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  logger_ = std::make_unique<Logger>(options_.log_level, options_.log_sink);
  // Authentication flags first: a bad file or an unprotected non-loopback
  // --listen fails the start before anything runs.
  auto auth = Authenticator::Create(options_.auth, options_.listen, *logger_);
  if (!auth.ok()) return auth.status();
  auth_ = *std::move(auth);
  // Beyond loopback, scrapes need a token (or --metrics_public).
  bool metrics_need_token = false;
  if (!options_.metrics_listen.empty()) {
    absl::Status s =
        auth_->MetricsAccess(options_.metrics_listen, &metrics_need_token);
    if (!s.ok()) return s;
  }
  notifier_ = std::make_unique<SystemdNotifier>(options_.notify_socket);
  runtime::RuntimeOptions ro = options_.runtime;
  ro.log_sink = logger_->AsSink();
  runtime_ = std::make_unique<runtime::Runtime>(std::move(ro));

  if (absl::Status s = RegisterKinds(); !s.ok()) return s;
  limits_.set_max_limits(options_.jobs.max_limits);
  for (const std::string& spec : options_.limits) {
    auto limit = limits_.DeclareFromFlag(spec);
    if (!limit.ok()) return limit.status();
  }
  jobs_ = std::make_unique<JobManager>(*runtime_, kinds_, limits_,
                                       options_.jobs, *logger_);
  if (options_.durability != Durability::kNone) {
    if (absl::Status s = OpenStoreAndRecover(); !s.ok()) return s;
  }
  jobs_->Start();
  options_.service.max_reply_bytes = options_.max_message_bytes;
  service_ = std::make_unique<JobsService>(*runtime_, *jobs_, options_.service,
                                           *logger_);

  if (!options_.metrics_listen.empty()) {
    MetricsServer::Authorize authorize;
    if (metrics_need_token) {
      authorize = [auth = auth_](std::string_view header) {
        return auth->CheckBearer(header);
      };
    }
    auto metrics = MetricsServer::Start(options_.metrics_listen,
                                        {.runtime = runtime_.get(),
                                         .jobs = jobs_.get(),
                                         .limits = &limits_,
                                         .rpcs = &rpc_stats_,
                                         .service = service_.get()},
                                        std::move(authorize));
    if (!metrics.ok()) return metrics.status();
    metrics_ = *std::move(metrics);
  }

  grpc::EnableDefaultHealthCheckService(true);
  if (options_.reflection) {
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  }
  grpc::ServerBuilder builder;
  if (!options_.reflection) {
    builder.SetOption(std::make_unique<WithoutReflection>());
  }
  builder.AddListeningPort(options_.listen, auth_->ServerCredentials(), &port_);
  builder.RegisterService(service_.get());
  // gRPC sets SO_REUSEPORT by default, which lets a second daemon bind the
  // same port and split the clients between two job tables: refuse instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  for (const auto& [name, value] : GrpcServerArgs(options_)) {
    builder.AddChannelArgument(name, value);
  }
  grpc::ResourceQuota quota("awaitd");
  quota.Resize(options_.grpc_memory_bytes);
  quota.SetMaxThreads(options_.grpc_max_threads);
  builder.SetResourceQuota(quota);
  // Server interceptors, in the order they see a call (first: outermost).
  // Each part of the daemon that needs one pushes its factory here.
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  // Authentication
  if (auto factory = auth_->NewInterceptorFactory(); factory != nullptr) {
    interceptors.push_back(std::move(factory));
  }
  // RPC metrics (after authentication: refused calls count as
  // Unauthenticated)
  if (metrics_ != nullptr) {
    interceptors.push_back(rpc_stats_.NewInterceptorFactory());
  }
  if (!interceptors.empty()) {
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  const int max_bytes = static_cast<int>(std::min<std::size_t>(
      options_.max_message_bytes, std::size_t{INT32_MAX}));
  builder.SetMaxReceiveMessageSize(max_bytes);
  builder.SetMaxSendMessageSize(max_bytes);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr) {
    return absl::UnavailableError(
        StrCat("--listen=", options_.listen,
               ": cannot listen there (address in use, bad address, or no "
               "permission)"));
  }
  // "unix:" and "unix-abstract:" sockets.
  const bool is_unix = options_.listen.rfind("unix", 0) == 0;
  if (is_unix) {
    address_ = options_.listen;
    port_ = 0;
  } else {
    const std::size_t colon = options_.listen.rfind(':');
    address_ = StrCat(options_.listen.substr(0, colon), ":", port_);
  }
  server_->GetHealthCheckService()->SetServingStatus(true);
  if (!options_.port_file.empty()) {
    absl::Status s = WritePortFile(options_.port_file, address_);
    if (!s.ok()) return s;
  }
  logger_->Log(
      LogLevel::kInfo, "component=server event=listening address=", address_,
      " workers=", runtime_->Metrics().workers.size(),
      " reflection=", options_.reflection ? "on" : "off", " metrics=",
      metrics_ == nullptr ? std::string("off")
                          : StrCat(options_.metrics_listen.substr(
                                       0, options_.metrics_listen.rfind(':')),
                                   ":", metrics_->port(), "/metrics"));
  logger_->Log(
      LogLevel::kInfo,
      "component=auth event=configured tls=", auth_->tls() ? "on" : "off",
      " mtls=", auth_->mtls() ? "on" : "off", " tokens=", auth_->tokens());
  // Ready: the listener is up. (Recovery of stored jobs, when there is a
  // store, comes before this point.)
  if (absl::Status s =
          notifier_->Notify(StrCat("READY=1\nSTATUS=serving on ", address_));
      !s.ok()) {
    logger_->Log(
        LogLevel::kWarning,
        "component=systemd event=notify_failed error=", LogQuote(s.ToString()));
  } else if (notifier_->enabled()) {
    logger_->Log(LogLevel::kInfo, "component=systemd event=ready");
  }
  watchdog_ = std::make_unique<Watchdog>(*runtime_, *notifier_,
                                         options_.watchdog_interval, *logger_);
  watchdog_->Start();
  return absl::OkStatus();
}

absl::Status Daemon::OpenStoreAndRecover() {
  const std::string dir = options_.data_dir + "/jobs";
  const Logger* logger = logger_.get();
  auto on_fatal = [logger,
                   hook = options_.on_store_failure](const absl::Status& s) {
    logger->Log(LogLevel::kError, "component=store event=store_failed error=",
                LogQuote(s.ToString()), hook ? " action=hook" : " action=exit");
    if (hook) {
      hook(s);
      return;
    }
    // Never acknowledge after a failed write or sync: stop now, and let the
    // supervisor restart the daemon into recovery.
    std::fflush(stderr);
    std::_Exit(kStoreFailedExitCode);
  };
  auto store = JobStore::Open({.dir = dir,
                               .durability = options_.durability,
                               .on_fatal = std::move(on_fatal),
                               .file_system = options_.store_file_system});
  if (!store.ok()) {
    return absl::Status(store.status().code(),
                        StrCat("--data_dir=", options_.data_dir, ": ",
                               store.status().message()));
  }
  store_ = *std::move(store);
  jobs_->AttachStore(store_.get());
  auto stats = jobs_->Recover();
  if (!stats.ok()) {
    return absl::Status(
        stats.status().code(),
        StrCat("--data_dir=", options_.data_dir,
               ": recovery failed: ", stats.status().message()));
  }
  logger_->Log(
      LogLevel::kInfo, "component=store event=recovered dir=", LogQuote(dir),
      " durability=", DurabilityName(options_.durability),
      " jobs=", stats->jobs, " finished=", stats->finished,
      " pending=", stats->pending, " rerun=", stats->rerun,
      " interrupted=", stats->interrupted, " unrunnable=", stats->unrunnable,
      " groups=", stats->groups, " cancelled=", stats->cancelled,
      " limits=", stats->limits, " took=", absl::FormatDuration(stats->took));
  return absl::OkStatus();
}

void Daemon::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) {
      mu_.Await(absl::Condition(&shut_down_));
      return;
    }
    shutting_down_ = true;
  }
  const absl::Time start = absl::Now();
  if (watchdog_ != nullptr) watchdog_->Stop();
  if (notifier_ != nullptr) {
    // Best effort: systemd learns of the stop from the signal it sent, or
    // from the exit.
    (void)notifier_->Notify("STOPPING=1\nSTATUS=shutting down");
  }
  if (logger_ != nullptr) {
    logger_->Log(LogLevel::kInfo,
                 "component=server event=shutdown_started not_done=",
                 jobs_ ? jobs_->jobs_not_done() : 0,
                 " running=", jobs_ ? jobs_->jobs_running() : 0);
  }
  if (server_ != nullptr)
    server_->GetHealthCheckService()->SetServingStatus(false);
  if (jobs_ != nullptr) {
    jobs_->StopAccepting();
    const bool drained =
        jobs_->DrainRunning(absl::Now() + options_.shutdown_grace);
    if (store_ != nullptr) {
      // What the shutdown cancels from here on is not stored (those jobs
      // run again, pending, or count as interrupted, running, after a
      // restart), so no client may hear of it: the service ends its calls
      // and answers nothing more first.
      if (service_ != nullptr) service_->Shutdown();
      jobs_->BeginShutdownCancel();
    }
    const std::size_t left = jobs_->jobs_not_done();
    if (left > 0) {
      logger_->Log(drained ? LogLevel::kInfo : LogLevel::kWarning,
                   "component=server event=cancelling_jobs not_done=", left,
                   " running=", jobs_->jobs_running(),
                   " grace_expired=", drained ? "false" : "true");
    }
    if (!jobs_->CancelAll("the daemon is shutting down",
                          absl::Now() + options_.cancel_grace)) {
      logger_->Log(LogLevel::kWarning,
                   "component=server event=jobs_not_unwound not_done=",
                   jobs_->jobs_not_done());
    }
  }
  if (service_ != nullptr) service_->Shutdown();
  if (server_ != nullptr) {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + options_.cancel_grace));
    server_->Wait();
  }
  if (jobs_ != nullptr) jobs_->Stop();
  if (runtime_ != nullptr) runtime_->Shutdown();
  if (logger_ != nullptr) {
    logger_->Log(LogLevel::kInfo,
                 "component=server event=shutdown_complete took=",
                 absl::FormatDuration(absl::Now() - start));
  }
  absl::MutexLock lock(&mu_);
  shut_down_ = true;
}

absl::StatusOr<std::size_t> Daemon::ReloadTokens() {
  if (auth_ == nullptr || !auth_->token_file()) {
    logger_->Log(LogLevel::kWarning,
                 "component=auth event=tokens_reload_skipped "
                 "reason=\"no --token_file\"");
    return absl::FailedPreconditionError(
        "no --token_file to reload (tokens are off)");
  }
  return auth_->ReloadTokens();  // logs the outcome
}

void Daemon::Wait() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&shut_down_));
}

Daemon::~Daemon() {
  Shutdown();
  metrics_.reset();  // scrapes read the runtime and the job manager
  server_.reset();
  service_.reset();
  runtime_.reset();  // before jobs_: unfinished frames reach into the manager
  // Before jobs_: the store's last commit callbacks publish into it.
  store_.reset();
  jobs_.reset();
}

}  // namespace awaitd::server
