// JobsService: the gRPC face of JobManager (service awaitd.v1.Jobs).
//
// Every handler is one call to the call wrapper (Unary or Stream, below): it
// checks the caller's auth verdict, refuses Get, Cancel and List once
// Shutdown ran, runs the handler's body, starts the call's task if the body
// made one, and turns the body's absl::Status into the call's grpc::Status.
//
// Quick RPCs (Submit, Get, Cancel, List, limits, kinds) are answered on the
// gRPC thread that received them: they take short locks and never wait for
// jobs. With a store, those that change state (Submit, Cancel, DeclareLimit,
// DeleteLimit) wait for their commit, at most --store_timeout. A Cancel that
// could not cancel a job whose outcome is settled but not yet stored waits
// for it as a task (below).
// RPCs that wait for jobs (Wait, WaitFor, Gather, AsCompleted, RunGroup,
// Watch) run as one runtime task per call, so no thread is held while they
// wait: the task watches the jobs (JobWatcher), applies its timeout with the
// runtime's timers, and finishes the call. A client that cancels its call
// (or whose deadline passes) cancels that task, which ends only the call.
// (WaitFor of an inline spec without a timeout is the exception: its task
// runs the job itself, so the job's Cancel reaches it and the client's
// leaving does not.)
//
// Thread safety: gRPC calls the handlers concurrently; all shared state is in
// JobManager (internally synchronized), guarded by mu_ here, or atomic (the
// streams' counters). The call wrapper's rules are stated at Unary below.
#ifndef AWAITD_SERVER_RPC_JOBS_SERVICE_H_
#define AWAITD_SERVER_RPC_JOBS_SERVICE_H_

#include <atomic>
#include <cstddef>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "awaitd/v1/jobs.grpc.pb.h"
#include "common/logger.h"
#include "runtime/runtime.h"
#include "server/jobs/job_manager.h"

namespace awaitd::server {

class CallBase;

struct JobsServiceOptions {
  // Ids in one call (Get, Cancel, Wait, ... ).
  std::size_t max_ids_per_call = 1'000'000;
  // Events a Watch stream over every job may fall behind before it is ended
  // with RESOURCE_EXHAUSTED (its queued events are freed at once; the job
  // path never waits for a reader). Watch by ids and AsCompleted queue no
  // messages: they keep one 8-byte change per job state change (at most two
  // per id, so their backlog is bounded by max_ids_per_call) and build each
  // message when it is sent.
  std::size_t max_watch_backlog = 65'536;
  // Streams (Watch, AsCompleted) open at once, in all and from one client
  // connection (its peer address, "ipv4:10.0.0.7:41234"); one more fails
  // with RESOURCE_EXHAUSTED. Clients on a Unix socket all have the same
  // peer address, so only `max_streams` applies to them.
  std::size_t max_streams = 10'000;
  std::size_t max_streams_per_connection = 100;
  // Length of a cancellation message.
  std::size_t max_message_length = 1024;
  // Bytes of one reply (or stream message): a reply is sized before it is
  // built and refused with RESOURCE_EXHAUSTED when it would not fit (the
  // daemon sets it to --max_message_bytes).
  std::size_t max_reply_bytes = 64 * 1024 * 1024;
};

class JobsService final : public v1::Jobs::CallbackService {
 public:
  JobsService(runtime::Runtime& runtime, JobManager& jobs,
              JobsServiceOptions options, const Logger& logger);
  ~JobsService() override;

  // Ends every call still waiting (Watch streams over every job never end by
  // themselves) with UNAVAILABLE. Call after the jobs were drained or
  // cancelled, before the gRPC server shuts down.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  grpc::ServerUnaryReactor* Submit(grpc::CallbackServerContext* ctx,
                                   const v1::SubmitRequest* request,
                                   v1::SubmitResponse* response) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx,
                                const v1::GetRequest* request,
                                v1::GetResponse* response) override;
  grpc::ServerUnaryReactor* Cancel(grpc::CallbackServerContext* ctx,
                                   const v1::CancelRequest* request,
                                   v1::CancelResponse* response) override;
  grpc::ServerUnaryReactor* Wait(grpc::CallbackServerContext* ctx,
                                 const v1::WaitRequest* request,
                                 v1::WaitResponse* response) override;
  grpc::ServerUnaryReactor* Gather(grpc::CallbackServerContext* ctx,
                                   const v1::GatherRequest* request,
                                   v1::GatherResponse* response) override;
  grpc::ServerUnaryReactor* WaitFor(grpc::CallbackServerContext* ctx,
                                    const v1::WaitForRequest* request,
                                    v1::WaitForResponse* response) override;
  grpc::ServerWriteReactor<v1::AsCompletedResponse>* AsCompleted(
      grpc::CallbackServerContext* ctx,
      const v1::AsCompletedRequest* request) override;
  grpc::ServerUnaryReactor* RunGroup(grpc::CallbackServerContext* ctx,
                                     const v1::RunGroupRequest* request,
                                     v1::RunGroupResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchResponse>* Watch(
      grpc::CallbackServerContext* ctx,
      const v1::WatchRequest* request) override;
  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* ctx,
                                 const v1::ListRequest* request,
                                 v1::ListResponse* response) override;
  grpc::ServerUnaryReactor* DeclareLimit(
      grpc::CallbackServerContext* ctx, const v1::DeclareLimitRequest* request,
      v1::DeclareLimitResponse* response) override;
  grpc::ServerUnaryReactor* ListLimits(
      grpc::CallbackServerContext* ctx, const v1::ListLimitsRequest* request,
      v1::ListLimitsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteLimit(
      grpc::CallbackServerContext* ctx, const v1::DeleteLimitRequest* request,
      v1::DeleteLimitResponse* response) override;
  grpc::ServerUnaryReactor* ListKinds(grpc::CallbackServerContext* ctx,
                                      const v1::ListKindsRequest* request,
                                      v1::ListKindsResponse* response) override;

  // For calls (see jobs_service.cc).
  runtime::Runtime& runtime() { return runtime_; }
  JobManager& jobs() { return jobs_; }
  const JobsServiceOptions& options() const { return options_; }
  bool shutting_down() const ABSL_LOCKS_EXCLUDED(mu_);
  // Registers a waiting call so Shutdown can end it; false if shutting down.
  bool Register(CallBase* call) ABSL_LOCKS_EXCLUDED(mu_);
  void Unregister(CallBase* call) ABSL_LOCKS_EXCLUDED(mu_);

  // Admits one more stream from `peer` (ctx->peer()), or RESOURCE_EXHAUSTED
  // naming the flag and the count when max_streams or
  // max_streams_per_connection is reached. Every admitted stream is released
  // once, by CloseStream(peer), when its call is destroyed.
  absl::Status OpenStream(const std::string& peer) ABSL_LOCKS_EXCLUDED(mu_);
  void CloseStream(const std::string& peer) ABSL_LOCKS_EXCLUDED(mu_);

  // Streams' bookkeeping, for tests and metrics.
  struct StreamStats {
    std::size_t open = 0;            // admitted and not yet destroyed
    std::size_t dropped_slow = 0;    // ended for a full backlog, ever
    std::size_t backlog_events = 0;  // queued in Watch-all backlogs now
  };
  StreamStats stream_stats() const ABSL_LOCKS_EXCLUDED(mu_);
  // Called by the streams (any thread, lock-free: the job path calls them).
  void AddBacklog(std::ptrdiff_t events) {
    backlog_events_.fetch_add(events, std::memory_order_relaxed);
  }
  void CountDroppedSlow() {
    dropped_slow_.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  // The call wrapper: every handler is `return Unary(ctx, after, body)` or
  // `return Stream<Response>(ctx, body)`. In order, it
  //   1. refuses the call with the interceptor's verdict (CallAuthVerdict),
  //      before anything of the request is read;
  //   2. for AfterShutdown::kUnavailable, refuses it with UNAVAILABLE once
  //      Shutdown ran;
  //   3. runs `body()`, which checks the request and either answers (an
  //      absl::Status, OK included) or creates the call that waits, which
  //      the wrapper starts (registered with Shutdown, its task spawned; past
  //      Shutdown it finishes with UNAVAILABLE instead);
  //   4. maps a status answered to the call's grpc::Status (a stream that
  //      fails before its first message is a FailedStream).
  // Thread safety: it and `body` run on the gRPC thread that called the
  // handler, before the handler returns; `body` may read the request and
  // write the response (gRPC's until the call finishes) and reaches shared
  // state only through JobManager and the locked members here. Once a call
  // is started its task may run (and finish the call) on a runtime thread
  // at once, so neither touches its response or the call afterwards.
  enum class AfterShutdown {
    kAnswer,       // the handler answers as always
    kUnavailable,  // UNAVAILABLE: nothing more is told (Get, Cancel, List)
  };
  template <typename Body>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx,
                                  AfterShutdown after, Body body);
  template <typename Response, typename Body>
  grpc::ServerWriteReactor<Response>* Stream(grpc::CallbackServerContext* ctx,
                                             Body body);

  // Every id, looked up (NOT_FOUND naming "ids[i]"), or the first error.
  absl::StatusOr<std::vector<JobPtr>> FindAll(
      const google::protobuf::RepeatedField<std::uint64_t>& ids) const;

  runtime::Runtime& runtime_;
  JobManager& jobs_;
  const JobsServiceOptions options_;
  const Logger& logger_;

  mutable absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<CallBase*> calls_ ABSL_GUARDED_BY(mu_);
  absl::CondVar calls_empty_;
  std::size_t open_streams_ ABSL_GUARDED_BY(mu_) = 0;
  // Open streams by peer; a peer leaves the map with its last stream.
  absl::flat_hash_map<std::string, std::size_t> streams_by_peer_
      ABSL_GUARDED_BY(mu_);
  std::atomic<std::ptrdiff_t> backlog_events_{0};
  std::atomic<std::size_t> dropped_slow_{0};
};

}  // namespace awaitd::server

#endif  // AWAITD_SERVER_RPC_JOBS_SERVICE_H_
