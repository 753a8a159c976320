#include "server/rpc/metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <exception>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "civetweb.h"
#include "common/strings.h"
#include "grpcpp/support/status.h"
#include "prometheus/client_metric.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace awaitd::server {

namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;
using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr std::array<std::string_view, 17> kCodeNames = {"OK",
                                                         "Canceled",
                                                         "Unknown",
                                                         "InvalidArgument",
                                                         "DeadlineExceeded",
                                                         "NotFound",
                                                         "AlreadyExists",
                                                         "PermissionDenied",
                                                         "ResourceExhausted",
                                                         "FailedPrecondition",
                                                         "Aborted",
                                                         "OutOfRange",
                                                         "Unimplemented",
                                                         "Internal",
                                                         "Unavailable",
                                                         "DataLoss",
                                                         "Unauthenticated"};

std::string_view TypeName(ServerRpcInfo::Type type) {
  switch (type) {
    case ServerRpcInfo::Type::UNARY:
      return "unary";
    case ServerRpcInfo::Type::CLIENT_STREAMING:
      return "client_stream";
    case ServerRpcInfo::Type::SERVER_STREAMING:
      return "server_stream";
    case ServerRpcInfo::Type::BIDI_STREAMING:
      return "bidi_stream";
  }
  return "unary";
}

// Builds one family.
class Family {
 public:
  Family(std::string name, std::string help, MetricType type) {
    f_.name = std::move(name);
    f_.help = std::move(help);
    f_.type = type;
  }
  ClientMetric& Add(std::vector<ClientMetric::Label> labels = {}) {
    f_.metric.emplace_back();
    f_.metric.back().label = std::move(labels);
    return f_.metric.back();
  }
  void Value(double v, std::vector<ClientMetric::Label> labels = {}) {
    ClientMetric& m = Add(std::move(labels));
    if (f_.type == MetricType::Counter) {
      m.counter.value = v;
    } else {
      m.gauge.value = v;
    }
  }
  void Histogram(const DurationHistogram& h,
                 std::vector<ClientMetric::Label> labels) {
    const DurationHistogram::Snapshot s = h.Read();
    ClientMetric& m = Add(std::move(labels));
    m.histogram.sample_count = s.count;
    m.histogram.sample_sum = s.sum_seconds;
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < DurationHistogram::kBuckets; ++i) {
      cumulative += s.counts[i];
      ClientMetric::Bucket b;
      b.cumulative_count = cumulative;
      b.upper_bound = i < DurationHistogram::kBoundsSeconds.size()
                          ? DurationHistogram::kBoundsSeconds[i]
                          : std::numeric_limits<double>::infinity();
      m.histogram.bucket.push_back(b);
    }
  }
  MetricFamily Take() { return std::move(f_); }

 private:
  MetricFamily f_;
};

double D(std::uint64_t v) { return static_cast<double>(v); }

// /proc/self: CPU time, memory, threads, file descriptors, start time.
void AddProcessFamilies(std::vector<MetricFamily>& out) {
  std::ifstream stat_file("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)),
                   std::istreambuf_iterator<char>());
  const std::size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return;
  std::istringstream fields(stat.substr(paren + 2));
  std::vector<std::string> f;  // f[0] is field 3 (state)
  for (std::string x; fields >> x;) f.push_back(std::move(x));
  if (f.size() < 22) return;
  const auto field = [&f](int n) {  // proc(5) numbering
    return std::strtod(f[static_cast<std::size_t>(n - 3)].c_str(), nullptr);
  };
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));

  Family cpu("process_cpu_seconds_total",
             "User and system CPU time spent, in seconds.",
             MetricType::Counter);
  cpu.Value((field(14) + field(15)) / ticks);
  out.push_back(cpu.Take());
  Family rss("process_resident_memory_bytes", "Resident memory size in bytes.",
             MetricType::Gauge);
  rss.Value(field(24) * page);
  out.push_back(rss.Take());
  Family vsize("process_virtual_memory_bytes", "Virtual memory size in bytes.",
               MetricType::Gauge);
  vsize.Value(field(23));
  out.push_back(vsize.Take());
  Family threads("process_threads", "Threads in the process.",
                 MetricType::Gauge);
  threads.Value(field(20));
  out.push_back(threads.Take());

  std::ifstream proc_stat("/proc/stat");
  double boot = 0;
  for (std::string line; std::getline(proc_stat, line);) {
    if (line.rfind("btime ", 0) == 0)
      boot = std::strtod(line.c_str() + 6, nullptr);
  }
  if (boot > 0) {
    Family start("process_start_time_seconds",
                 "Start time of the process since the Unix epoch, in seconds.",
                 MetricType::Gauge);
    start.Value(boot + field(22) / ticks);
    out.push_back(start.Take());
  }

  if (DIR* dir = ::opendir("/proc/self/fd"); dir != nullptr) {
    std::uint64_t fds = 0;
    while (const dirent* e = ::readdir(dir)) {
      if (e->d_name[0] != '.') ++fds;
    }
    ::closedir(dir);
    Family open("process_open_fds", "Open file descriptors.",
                MetricType::Gauge);
    open.Value(D(fds > 0 ? fds - 1 : 0));  // less the one reading the dir
    out.push_back(open.Take());
  }
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    Family max("process_max_fds", "Maximum number of open file descriptors.",
               MetricType::Gauge);
    max.Value(lim.rlim_cur == RLIM_INFINITY ? 0 : D(lim.rlim_cur));
    out.push_back(max.Take());
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// RpcStats

RpcStats::Method* RpcStats::For(const char* path, ServerRpcInfo::Type type) {
  const std::size_t used = used_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < used; ++i) {
    if (slots_[i].path.load(std::memory_order_acquire) == path) {
      return slots_[i].stats.get();
    }
  }
  return Create(path, type);
}

RpcStats::Method* RpcStats::Create(const char* path, ServerRpcInfo::Type type) {
  absl::MutexLock lock(&mu_);
  const std::size_t used = used_.load(std::memory_order_relaxed);
  const std::string_view full = path != nullptr ? path : "";
  for (std::size_t i = 0; i < used; ++i) {
    if (slots_[i].path.load(std::memory_order_relaxed) == path) {
      return slots_[i].stats.get();
    }
  }
  if (used == kMaxMethods || path == nullptr) return &overflow_;
  // "/package.Service/Method"
  const std::size_t slash = full.rfind('/');
  auto m = std::make_unique<Method>();
  if (full.size() > 1 && full[0] == '/' && slash != 0 &&
      slash != std::string_view::npos) {
    m->service = std::string(full.substr(1, slash - 1));
    m->method = std::string(full.substr(slash + 1));
  } else {
    m->service = "unknown";
    m->method = std::string(full);
  }
  m->type = std::string(TypeName(type));
  Slot& s = slots_[used];
  s.stats = std::move(m);
  s.path.store(path, std::memory_order_release);
  used_.store(used + 1, std::memory_order_release);
  return s.stats.get();
}

std::vector<const RpcStats::Method*> RpcStats::All() const {
  std::vector<const Method*> out;
  const std::size_t used = used_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < used; ++i) out.push_back(slots_[i].stats.get());
  return out;
}

namespace {

// One per call: started when created (the call arrived), handled with the
// status it sends (CANCELLED if it ends without sending one).
class RpcInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit RpcInterceptor(RpcStats::Method* method)
      : method_(method), start_(absl::Now()) {
    method_->started.Add();
  }
  ~RpcInterceptor() override {
    if (!recorded_) Record(grpc::StatusCode::CANCELLED);
  }

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS) &&
        !recorded_) {
      Record(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Record(grpc::StatusCode code) {
    recorded_ = true;
    const auto c = static_cast<std::size_t>(code);
    method_->handled[c < method_->handled.size() ? c : 2].Add();  // 2: Unknown
    method_->handling.Observe(absl::Now() - start_);
  }

  RpcStats::Method* const method_;
  const absl::Time start_;
  bool recorded_ = false;
};

class RpcInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcInterceptorFactory(RpcStats* stats) : stats_(stats) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      ServerRpcInfo* info) override {
    return new RpcInterceptor(stats_->For(info->method(), info->type()));
  }

 private:
  RpcStats* const stats_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
RpcStats::NewInterceptorFactory() {
  return std::make_unique<RpcInterceptorFactory>(this);
}

// ---------------------------------------------------------------------------
// The collector

class MetricsServer::Collector final : public prometheus::Collectable {
 public:
  explicit Collector(Sources sources) : s_(sources) {}

  std::vector<MetricFamily> Collect() const override {
    std::vector<MetricFamily> out;
    Family build("awaitd_build_info",
                 "The running awaitd's version (always 1).", MetricType::Gauge);
    build.Value(1, {{"version", "0.1.0"}});
    out.push_back(build.Take());
    if (s_.jobs != nullptr) AddJobs(out);
    if (s_.runtime != nullptr) AddRuntime(out);
    if (s_.limits != nullptr) AddLimits(out);
    if (s_.rpcs != nullptr) AddRpcs(out);
    if (s_.service != nullptr) AddStreams(out);
    AddProcessFamilies(out);
    return out;
  }

 private:
  void AddJobs(std::vector<MetricFamily>& out) const {
    const std::vector<const KindStats*> kinds = s_.jobs->stats().All();
    Family submitted("awaitd_jobs_submitted_total",
                     "Jobs accepted, by kind (an idempotent retry that "
                     "returns an existing job is not counted).",
                     MetricType::Counter);
    Family started("awaitd_jobs_started_total",
                   "Jobs that reached RUNNING, by kind.", MetricType::Counter);
    Family finished("awaitd_jobs_finished_total",
                    "Jobs that reached a final state, by kind and outcome "
                    "(succeeded, failed, cancelled).",
                    MetricType::Counter);
    Family pending("awaitd_jobs_pending",
                   "Jobs accepted and not started yet (delayed, waiting for "
                   "a limit, or queued), by kind.",
                   MetricType::Gauge);
    Family running("awaitd_jobs_running", "Jobs RUNNING now, by kind.",
                   MetricType::Gauge);
    Family wait("awaitd_job_queue_wait_seconds",
                "Time from when a job may start (its submission, or its "
                "delayed start time) until it runs: limit waits and "
                "scheduling, by kind.",
                MetricType::Histogram);
    Family run("awaitd_job_run_seconds",
               "Time from RUNNING to the final state, by kind.",
               MetricType::Histogram);
    for (const KindStats* k : kinds) {
      const std::vector<ClientMetric::Label> kind = {{"kind", k->name}};
      submitted.Value(D(k->submitted.Value()), kind);
      started.Value(D(k->started.Value()), kind);
      for (std::size_t o = 0; o < kJobOutcomeNames.size(); ++o) {
        finished.Value(
            D(k->finished[o].Value()),
            {{"kind", k->name}, {"outcome", std::string(kJobOutcomeNames[o])}});
      }
      pending.Value(D(k->pending()), kind);
      running.Value(D(k->running()), kind);
      wait.Histogram(k->queue_wait, kind);
      run.Histogram(k->run_time, kind);
    }
    for (Family* f :
         {&submitted, &started, &finished, &pending, &running, &wait, &run}) {
      out.push_back(f->Take());
    }
    Family retained("awaitd_jobs_retained",
                    "Jobs in the job table (not done, or finished and kept "
                    "for --result_ttl).",
                    MetricType::Gauge);
    retained.Value(D(s_.jobs->jobs_retained()));
    out.push_back(retained.Take());
  }

  void AddRuntime(std::vector<MetricFamily>& out) const {
    const runtime::RuntimeMetrics m = s_.runtime->Metrics();
    struct PerWorker {
      Family family;
      std::uint64_t runtime::WorkerMetrics::*field;
      double scale;
    };
    std::vector<PerWorker> per_worker;
    const auto counter = [&](const char* name, const char* help,
                             std::uint64_t runtime::WorkerMetrics::*field,
                             double scale = 1) {
      per_worker.push_back(
          {Family(name, help, MetricType::Counter), field, scale});
    };
    const auto gauge = [&](const char* name, const char* help,
                           std::uint64_t runtime::WorkerMetrics::*field) {
      per_worker.push_back({Family(name, help, MetricType::Gauge), field, 1});
    };
    counter("awaitd_worker_busy_seconds_total",
            "Time the event loop was not parked, in seconds.",
            &runtime::WorkerMetrics::busy_ns, 1e-9);
    counter("awaitd_worker_polls_total", "Task resumptions on the loop.",
            &runtime::WorkerMetrics::tasks_run);
    counter("awaitd_worker_steals_total",
            "Successful steals from other loops' queues.",
            &runtime::WorkerMetrics::steal_operations);
    counter("awaitd_worker_tasks_stolen_total",
            "Tasks moved to this loop by its steals.",
            &runtime::WorkerMetrics::tasks_stolen);
    counter("awaitd_worker_parks_total", "Times the loop went to sleep.",
            &runtime::WorkerMetrics::parks);
    counter("awaitd_worker_overflows_total",
            "Local-queue spills to the global queue.",
            &runtime::WorkerMetrics::overflows);
    counter("awaitd_worker_timers_fired_total", "Timers fired on the loop.",
            &runtime::WorkerMetrics::timers_fired);
    counter("awaitd_worker_stalls_total",
            "Tasks that ran longer than --stall_threshold without yielding "
            "(loop stalls).",
            &runtime::WorkerMetrics::stalls);
    gauge("awaitd_worker_local_queue_depth",
          "Tasks in the loop's local run queue.",
          &runtime::WorkerMetrics::local_queue_depth);
    gauge("awaitd_worker_inbox_depth",
          "Tasks woken from other threads, waiting in the loop's inbox.",
          &runtime::WorkerMetrics::inbox_depth);
    gauge("awaitd_worker_timers_pending", "Timers armed on the loop.",
          &runtime::WorkerMetrics::timers_pending);
    for (std::size_t w = 0; w < m.workers.size(); ++w) {
      const std::vector<ClientMetric::Label> label = {
          {"worker", std::to_string(w)}};
      for (PerWorker& p : per_worker) {
        p.family.Value(D(m.workers[w].*(p.field)) * p.scale, label);
      }
    }
    for (PerWorker& p : per_worker) out.push_back(p.family.Take());

    const auto single = [&out](const char* name, const char* help,
                               MetricType type, double v) {
      Family f(name, help, type);
      f.Value(v);
      out.push_back(f.Take());
    };
    single("awaitd_workers", "Event loops (worker threads).", MetricType::Gauge,
           D(m.workers.size()));
    single("awaitd_global_queue_depth",
           "Tasks in the shared queue (spawned from outside the loops, or "
           "spilled).",
           MetricType::Gauge, D(m.global_queue_depth));
    single("awaitd_tasks_alive", "Runtime tasks spawned and not finished.",
           MetricType::Gauge, D(m.tasks_alive));
    single("awaitd_tasks_spawned_total", "Runtime tasks spawned.",
           MetricType::Counter, D(m.tasks_spawned));
    single("awaitd_blocking_threads",
           "Threads of the blocking pool (to_thread work).", MetricType::Gauge,
           D(m.blocking.threads));
    single("awaitd_blocking_threads_busy",
           "Blocking-pool threads running a job now.", MetricType::Gauge,
           D(m.blocking.threads > m.blocking.idle_threads
                 ? m.blocking.threads - m.blocking.idle_threads
                 : 0));
    single("awaitd_blocking_queue_depth",
           "Blocking jobs waiting for a pool thread.", MetricType::Gauge,
           D(m.blocking.queued));
    single("awaitd_blocking_completed_total",
           "Blocking jobs the pool ran to the end.", MetricType::Counter,
           D(m.blocking.completed));
  }

  void AddLimits(std::vector<MetricFamily>& out) const {
    Family permits("awaitd_limit_permits", "Permits of a named limit.",
                   MetricType::Gauge);
    Family holders("awaitd_limit_holders",
                   "Jobs holding a permit of the limit now.",
                   MetricType::Gauge);
    Family waiters("awaitd_limit_waiters",
                   "Jobs waiting for a permit of the limit now.",
                   MetricType::Gauge);
    for (const auto& l : s_.limits->List()) {
      const std::vector<ClientMetric::Label> label = {{"limit", l->name()}};
      permits.Value(D(l->permits()), label);
      holders.Value(D(l->holders()), label);
      waiters.Value(D(l->waiters()), label);
    }
    out.push_back(permits.Take());
    out.push_back(holders.Take());
    out.push_back(waiters.Take());
  }

  void AddStreams(std::vector<MetricFamily>& out) const {
    const JobsService::StreamStats st = s_.service->stream_stats();
    Family open("awaitd_streams_open",
                "Watch and AsCompleted streams open now.", MetricType::Gauge);
    open.Value(D(st.open));
    Family dropped("awaitd_streams_dropped_slow_total",
                   "Watch streams ended because their reader fell more than "
                   "--max_watch_backlog events behind.",
                   MetricType::Counter);
    dropped.Value(D(st.dropped_slow));
    Family backlog("awaitd_watch_backlog_events",
                   "Events queued for Watch streams over every job, not yet "
                   "sent.",
                   MetricType::Gauge);
    backlog.Value(D(st.backlog_events));
    out.push_back(open.Take());
    out.push_back(dropped.Take());
    out.push_back(backlog.Take());
  }

  void AddRpcs(std::vector<MetricFamily>& out) const {
    Family started("grpc_server_started_total",
                   "RPCs started on the server, by method.",
                   MetricType::Counter);
    Family handled("grpc_server_handled_total",
                   "RPCs completed on the server, by method and status code.",
                   MetricType::Counter);
    Family handling("grpc_server_handling_seconds",
                    "Time from an RPC's arrival to its status, by method.",
                    MetricType::Histogram);
    for (const RpcStats::Method* m : s_.rpcs->All()) {
      const std::vector<ClientMetric::Label> labels = {
          {"grpc_method", m->method},
          {"grpc_service", m->service},
          {"grpc_type", m->type}};
      started.Value(D(m->started.Value()), labels);
      for (std::size_t c = 0; c < m->handled.size(); ++c) {
        const std::uint64_t n = m->handled[c].Value();
        if (n == 0) continue;  // only codes that happened
        std::vector<ClientMetric::Label> with_code = labels;
        with_code.insert(with_code.begin(),
                         {"grpc_code", std::string(kCodeNames[c])});
        handled.Value(D(n), with_code);
      }
      handling.Histogram(m->handling, labels);
    }
    out.push_back(started.Take());
    out.push_back(handled.Take());
    out.push_back(handling.Take());
  }

  const Sources s_;
};

// ---------------------------------------------------------------------------
// MetricsServer

namespace {

// civetweb's messages while starting (why it cannot listen), for the error;
// mg_start reports them on the calling thread.
thread_local std::string* start_errors = nullptr;

int OnCivetLog(const mg_connection*, const char* message) {
  if (start_errors != nullptr && message != nullptr) {
    if (!start_errors->empty()) start_errors->append("; ");
    start_errors->append(message);
  }
  return 1;  // handled: civetweb prints nothing itself
}

// `body` is sent unless `head_only` (a HEAD request: its length still is).
void SendResponse(mg_connection* conn, int code, std::string_view reason,
                  std::string_view extra_headers, std::string_view type,
                  std::string_view body, bool head_only = false) {
  mg_printf(conn,
            "HTTP/1.1 %d %.*s\r\n%.*sContent-Type: %.*s\r\n"
            "Content-Length: %zu\r\nCache-Control: no-store\r\n"
            "Connection: close\r\n\r\n",
            code, static_cast<int>(reason.size()), reason.data(),
            static_cast<int>(extra_headers.size()), extra_headers.data(),
            static_cast<int>(type.size()), type.data(), body.size());
  if (!head_only) mg_write(conn, body.data(), body.size());
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& listen, Sources sources, Authorize authorize) {
  const std::size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 == listen.size()) {
    return absl::InvalidArgumentError(
        StrCat("--metrics_listen=", listen,
               ": expected host:port (port 0 picks one; empty turns the "
               "endpoint off)"));
  }
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  server->collector_ = std::make_shared<Collector>(sources);
  server->authorize_ = std::move(authorize);
  // Two threads, as prometheus-cpp's Exposer had; a request that has not
  // arrived whole within 10 s is dropped, so a slow client cannot hold a
  // thread for longer.
  const char* options[] = {
      "listening_ports",    listen.c_str(), "num_threads", "2",
      "request_timeout_ms", "10000",        nullptr};
  // Once per process (reference counted by civetweb; never undone).
  static const unsigned civetweb_features = mg_init_library(0);
  (void)civetweb_features;
  mg_callbacks callbacks{};
  callbacks.log_message = &OnCivetLog;
  std::string errors;
  start_errors = &errors;
  server->http_ = mg_start(&callbacks, nullptr, options);
  start_errors = nullptr;
  if (server->http_ == nullptr) {
    return absl::UnavailableError(
        StrCat("--metrics_listen=", listen,
               ": cannot listen there (address in use, bad address, or no "
               "permission): ",
               errors.empty() ? std::string("civetweb refused it") : errors));
  }
  mg_set_request_handler(server->http_, "/metrics",
                         &MetricsServer::HandleMetrics, server.get());
  mg_server_port ports[4];
  const int n = mg_get_server_ports(server->http_, 4, ports);
  server->port_ = n > 0 ? ports[0].port : 0;
  return server;
}

int MetricsServer::HandleMetrics(mg_connection* conn, void* self_ptr) {
  const auto* self = static_cast<const MetricsServer*>(self_ptr);
  const mg_request_info* info = mg_get_request_info(conn);
  const std::string_view method =
      info != nullptr && info->request_method != nullptr
          ? std::string_view(info->request_method)
          : std::string_view();
  if (method != "GET" && method != "HEAD") {
    SendResponse(conn, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n",
                 "text/plain; charset=utf-8", "only GET and HEAD\n");
    return 405;
  }
  if (self->authorize_) {
    const char* header = mg_get_header(conn, "Authorization");
    const absl::Status verdict =
        self->authorize_(header == nullptr ? "" : header);
    if (!verdict.ok()) {
      SendResponse(conn, 401, "Unauthorized",
                   "WWW-Authenticate: Bearer realm=\"awaitd metrics\"\r\n",
                   "text/plain; charset=utf-8",
                   StrCat(verdict.message(), "\n"));
      return 401;
    }
  }
  SendResponse(conn, 200, "OK", "", "text/plain; version=0.0.4; charset=utf-8",
               self->Render(), /*head_only=*/method == "HEAD");
  return 200;
}

MetricsServer::~MetricsServer() {
  // Stop serving (mg_stop joins civetweb's threads) before the sources go
  // away.
  if (http_ != nullptr) mg_stop(http_);
}

std::string MetricsServer::Render() const {
  return prometheus::TextSerializer().Serialize(collector_->Collect());
}

}  // namespace awaitd::server
