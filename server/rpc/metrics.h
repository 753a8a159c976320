// The daemon's Prometheus endpoint (--metrics_listen, GET /metrics).
//
//   MetricsServer::Sources sources{&runtime, &jobs, &limits, &rpc_stats};
//   auto server = MetricsServer::Start("127.0.0.1:9464", sources);
//   builder...SetInterceptorCreators({rpc_stats.NewInterceptorFactory()});
//
// Nothing is counted for the endpoint's sake on the hot paths: a scrape
// reads what the parts already keep (JobStats, RuntimeMetrics, the limits,
// RpcStats) and builds the metric families then. The families, their labels
// and meaning are listed in README.md ("Metrics"); no label carries a job id
// or name, so the number of series is bounded by kinds, methods, codes,
// workers and limits.
//
// Access: Start's `authorize` (when set) sees every request's
// "Authorization" header first, and a refusal is answered 401 with the
// reason and nothing else (the daemon passes its bearer-token check when
// --metrics_listen is not loopback; see Authenticator::MetricsAccess).
//
// Thread safety: scrapes run on the HTTP server's own threads (civetweb,
// two), concurrently with everything else; every source they read is safe
// for that, and so must `authorize` be. RpcStats is updated from gRPC threads.
// Start and the destructor are called from the daemon's controlling thread.
#ifndef AWAITD_SERVER_RPC_METRICS_H_
#define AWAITD_SERVER_RPC_METRICS_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/server_interceptor.h"
#include "runtime/runtime.h"
#include "server/jobs/job_manager.h"
#include "server/jobs/job_stats.h"
#include "server/jobs/limits.h"
#include "server/rpc/jobs_service.h"

struct mg_connection;
struct mg_context;

namespace awaitd::server {

// Per RPC method: started, handled by status code, and handling time
// (go-grpc-prometheus's grpc_server_* families).
class RpcStats {
 public:
  struct Method {
    std::string service;  // "awaitd.v1.Jobs"
    std::string method;   // "Submit"
    std::string type;     // "unary", "server_stream", ...
    ShardedCounter started;
    std::array<ShardedCounter, 17> handled;  // by grpc::StatusCode
    DurationHistogram handling;
  };

  RpcStats() = default;
  RpcStats(const RpcStats&) = delete;
  RpcStats& operator=(const RpcStats&) = delete;

  // The stats of a full method name ("/awaitd.v1.Jobs/Submit"); `path`
  // must stay valid (gRPC's registered method names do).
  Method* For(const char* path, grpc::experimental::ServerRpcInfo::Type type);
  // Every method seen so far.
  std::vector<const Method*> All() const;

  // An interceptor that counts every call; push it into the server's
  // interceptor list (after authentication, so refused calls are counted
  // with their UNAUTHENTICATED code).
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  NewInterceptorFactory();

 private:
  static constexpr std::size_t kMaxMethods = 256;
  struct Slot {
    std::atomic<const char*> path{nullptr};
    std::unique_ptr<Method> stats;
  };
  Method* Create(const char* path, grpc::experimental::ServerRpcInfo::Type type)
      ABSL_LOCKS_EXCLUDED(mu_);

  std::array<Slot, kMaxMethods> slots_;
  std::atomic<std::size_t> used_{0};
  absl::Mutex mu_;
  Method overflow_{"other", "other", "unary", {}, {}, {}};
};

class MetricsServer {
 public:
  struct Sources {
    runtime::Runtime* runtime = nullptr;
    const JobManager* jobs = nullptr;
    const LimitRegistry* limits = nullptr;
    const RpcStats* rpcs = nullptr;
    const JobsService* service = nullptr;  // its streams
  };

  // The verdict on a request's "Authorization" header value (empty when it
  // has none): OK, or an error whose message is sent back with 401.
  using Authorize = std::function<absl::Status(std::string_view)>;

  // Listens on `listen` ("host:port"; port 0 picks one) and serves
  // /metrics, to requests `authorize` accepts (null: to every request).
  // UNAVAILABLE naming --metrics_listen if it cannot listen.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& listen, Sources sources,
      Authorize authorize = nullptr);
  ~MetricsServer();

  int port() const { return port_; }

  // The exposition text a scrape would get (tests, and `--metrics_listen=`
  // debugging).
  std::string Render() const;

 private:
  class Collector;
  MetricsServer() = default;
  // civetweb's request handler for /metrics (`self` is the server).
  static int HandleMetrics(mg_connection* conn, void* self);

  std::shared_ptr<Collector> collector_;
  Authorize authorize_;
  mg_context* http_ = nullptr;
  int port_ = 0;
};

}  // namespace awaitd::server

#endif  // AWAITD_SERVER_RPC_METRICS_H_
