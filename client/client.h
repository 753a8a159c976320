// awaitd::client::Client: asyncio's task API against an awaitd daemon.
//
// Each method is one RPC of awaitd.v1.Jobs (proto/awaitd/v1/jobs.proto, whose
// comments state the exact semantics) and mirrors the asyncio call it is
// named after:
//
//   auto client = Client::Connect({.address = "127.0.0.1:50051"});
//   if (!client.ok()) return client.status();
//   // asyncio.gather(factorial(2), factorial(3), factorial(4))
//   absl::StatusOr<GatherResult> g = (*client)->Gather(
//       {Spec("factorial").Arg("n", 2), Spec("factorial").Arg("n", 3),
//        Spec("factorial").Arg("n", 4)});
//   // g->results[i].result() is the i-th job's value, in input order.
//
//   // asyncio.wait_for(job, timeout=1): on expiry the job is cancelled and
//   // the call fails with DEADLINE_EXCEEDED.
//   absl::StatusOr<v1::Job> j =
//       (*client)->WaitFor(Spec("sleep").Arg("seconds", 5), absl::Seconds(1));
//
// Errors are absl::Status (whose codes are gRPC's): INVALID_ARGUMENT naming
// the field, NOT_FOUND, RESOURCE_EXHAUSTED, UNAVAILABLE (daemon unreachable or
// shutting down), DEADLINE_EXCEEDED (a call deadline, or WaitFor's timeout).
// A call that reports a job's own failure (WaitFor, Gather without
// return_exceptions, RunGroup) fails with ABORTED (the job raised) or
// CANCELLED (the job was cancelled); its message reads
// "job 3 (Job-3) failed: ValueError: boom", and ErrorDetailsOf(status) gives
// the job id, the error's type and message, and a TaskGroup's failures.
//
// Three forms of each call:
//   - blocking: `Gather(...)` returns when the RPC does;
//   - callback: `GatherAsync(..., done)` returns at once; `done` runs once, on
//     a gRPC thread, and must not block (post heavy work elsewhere);
//   - awaitable: client/awaitable.h, for coroutines on awaitd's runtime.
// Streams (AsCompleted, Watch) come as a blocking reader with Next(), or with
// per-item callbacks.
//
// Thread safety: a Client is safe for concurrent use from any number of
// threads; readers (AsCompletedReader, WatchReader) are not (one thread
// calls Next; Cancel may be called from any thread). The Client must outlive
// every call and reader it started.
#ifndef AWAITD_CLIENT_CLIENT_H_
#define AWAITD_CLIENT_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "awaitd/v1/jobs.grpc.pb.h"
#include "awaitd/v1/jobs.pb.h"
#include "client/spec.h"
#include "grpcpp/channel.h"

namespace awaitd::client {

// How to reach the daemon.
struct ClientOptions {
  // "host:port", "unix:/path" or any gRPC target.
  std::string address = "127.0.0.1:50051";
  // TLS: on when `tls` is true or any file below is given. The CA file holds
  // the PEM roots that sign the daemon's certificate (empty: the system's);
  // cert and key are the client's own, for mutual TLS.
  bool tls = false;
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  // Overrides the name checked against the daemon's certificate.
  std::string tls_server_name;
  // A bearer token, sent with every call as "authorization: Bearer <token>".
  std::string token;
  // Or the file that holds it (Connect reads it): its first line that is
  // neither blank nor a '#' comment, as in the daemon's --token_file. Not
  // with `token`. Safer than a token on a command line, which `ps` shows.
  std::string token_file;
  // The deadline of every call that does not give its own (CallOptions).
  // Infinite by default: waiting calls may legitimately wait for hours.
  absl::Duration default_deadline = absl::InfiniteDuration();
  // Connect() fails with UNAVAILABLE if the channel is not ready by then;
  // zero skips the check (the first call connects).
  absl::Duration connect_timeout = absl::Seconds(5);
  // Largest message the client accepts (a Gather of many jobs is large).
  int max_receive_message_bytes = 256 << 20;
  // Use this channel instead of creating one from the fields above (the
  // TLS fields and max_receive_message_bytes are then ignored;
  // connect_timeout, token and default_deadline still apply).
  std::shared_ptr<grpc::Channel> channel;
};

// Per-call settings.
struct CallOptions {
  // Ends the call (not the jobs) when it passes; unset uses the client's
  // default_deadline.
  std::optional<absl::Duration> deadline;
};

enum class ReturnWhen { kAllCompleted, kFirstCompleted, kFirstException };

struct WaitOptions {
  ReturnWhen return_when = ReturnWhen::kAllCompleted;
  // Unset waits for the condition; a timeout never fails and cancels nothing.
  std::optional<absl::Duration> timeout;
};

struct WaitResult {
  // Ids in input order (a duplicate kept once).
  std::vector<std::uint64_t> done;
  std::vector<std::uint64_t> pending;
};

struct GatherOptions {
  // Failures become results instead of failing the call.
  bool return_exceptions = false;
  // The group job's name (default "Group-<n>").
  std::string name;
  // Runs once with the group job's id as soon as the daemon created it
  // (before any child finished), on a gRPC thread; must not block.
  std::function<void(std::uint64_t group_id)> on_group;
};

struct GatherResult {
  std::uint64_t group_id = 0;
  // One final job per input, in input order.
  std::vector<v1::Job> results;
};

struct GroupOptions {
  // The group job's name (default "Group-<n>").
  std::string name;
  // As GatherOptions::on_group.
  std::function<void(std::uint64_t group_id)> on_group;
};

struct GroupResult {
  std::uint64_t group_id = 0;
  // In input order, all SUCCEEDED.
  std::vector<v1::Job> results;
};

// One job of an AsCompleted stream, in completion order.
struct Completed {
  // Its position in the input.
  std::size_t index = 0;
  v1::Job job;
};

struct ListOptions {
  // Filters; unset matches everything.
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
  std::string kind;
  std::string name_prefix;
  // 1..1000; 0 means the daemon's default (100).
  int page_size = 0;
  std::string page_token;
};

struct ListPage {
  std::vector<v1::Job> jobs;
  // Empty on the last page.
  std::string next_page_token;
};

// grpc.health.v1 serving status of the daemon.
enum class Health { kServing, kNotServing, kUnknown };

// The stream of AsCompleted, read from one thread.
//
//   AsCompletedReader r = client->AsCompleted(inputs);
//   while (true) {
//     absl::StatusOr<std::optional<Completed>> c = r.Next();
//     if (!c.ok()) return c.status();     // e.g. DEADLINE_EXCEEDED
//     if (!c->has_value()) break;         // every job reported
//     Use((*c)->job);
//   }
class AsCompletedReader {
 public:
  AsCompletedReader(AsCompletedReader&&) noexcept;
  AsCompletedReader& operator=(AsCompletedReader&&) noexcept;
  ~AsCompletedReader();  // cancels the call if it is still open

  // The next finished job; nullopt once all have been reported; an error
  // status (the daemon's, or the call's deadline) ends the stream.
  absl::StatusOr<std::optional<Completed>> Next();
  // Every input's job id, in input order; empty until the first Next()
  // returned (the daemon sends them first, so jobs created from specs are
  // known even if the stream then fails).
  const std::vector<std::uint64_t>& ids() const;
  // Ends the call from any thread; a blocked Next() returns CANCELLED.
  // Cancels no job.
  void Cancel();

  struct State;

 private:
  friend class Client;
  explicit AsCompletedReader(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// The stream of Watch, read from one thread: each state change, as it
// happens. Watching given ids ends (nullopt) once all of them are done;
// watching everything never ends by itself: Cancel() it.
class WatchReader {
 public:
  WatchReader(WatchReader&&) noexcept;
  WatchReader& operator=(WatchReader&&) noexcept;
  ~WatchReader();

  absl::StatusOr<std::optional<v1::WatchResponse>> Next();
  void Cancel();

  struct State;

 private:
  friend class Client;
  explicit WatchReader(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// A callback-form call in flight. Cancel() ends the call (never the jobs):
// its `done` callback then runs with CANCELLED unless the answer had already
// arrived. Safe from any thread, also after the call ended (then a no-op),
// also after the Client is gone. Destroying the handle does not cancel.
class CallHandle {
 public:
  CallHandle() = default;
  void Cancel();

  struct State;

 private:
  friend class Client;
  explicit CallHandle(std::shared_ptr<State> state)
      : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

template <typename T>
using Callback = std::function<void(absl::StatusOr<T>)>;

namespace client_internal {
class CallTracker;  // client.cc: the callback calls a Client has in flight
}  // namespace client_internal

class Client {
 public:
  // Creates the channel and, unless connect_timeout is zero, waits for it to
  // be ready: UNAVAILABLE names the address when the daemon cannot be
  // reached; INVALID_ARGUMENT when a TLS file cannot be read.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(
      ClientOptions options = {});

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  // Cancels the callback-form calls still in flight (their `done` runs with
  // CANCELLED) and waits until every one has finished. Not from a gRPC
  // callback (a `done`, on_group, on_job...): it would wait for itself.
  ~Client();

  const ClientOptions& options() const { return options_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

  // --- asyncio.create_task -------------------------------------------------
  // A batch is admitted whole or not at all (INVALID_ARGUMENT names
  // "jobs[i]...", RESOURCE_EXHAUSTED the limit).
  absl::StatusOr<JobRef> Submit(const Spec& spec, const CallOptions& call = {});
  absl::StatusOr<std::vector<JobRef>> Submit(std::span<const Spec> specs,
                                             const CallOptions& call = {});
  absl::StatusOr<JobRef> CreateTask(const Spec& spec,
                                    const CallOptions& call = {}) {
    return Submit(spec, call);
  }

  // --- Task.done() / result() / exception() ---------------------------------
  absl::StatusOr<v1::Job> Get(std::uint64_t id, const CallOptions& call = {});
  absl::StatusOr<std::vector<v1::Job>> Get(std::span<const std::uint64_t> ids,
                                           const CallOptions& call = {});

  // --- Task.cancel(msg) ------------------------------------------------------
  // Task.cancel()'s return value: false if the job was already done.
  absl::StatusOr<bool> Cancel(std::uint64_t id, std::string_view message = "",
                              const CallOptions& call = {});
  absl::StatusOr<std::vector<v1::CancelResult>> Cancel(
      std::span<const std::uint64_t> ids, std::string_view message = "",
      const CallOptions& call = {});

  // --- asyncio.wait ----------------------------------------------------------
  absl::StatusOr<WaitResult> Wait(std::vector<Input> inputs,
                                  const WaitOptions& options = {},
                                  const CallOptions& call = {});

  // --- asyncio.gather --------------------------------------------------------
  absl::StatusOr<GatherResult> Gather(std::vector<Input> inputs,
                                      const GatherOptions& options = {},
                                      const CallOptions& call = {});

  // --- asyncio.wait_for ------------------------------------------------------
  // The finished job (SUCCEEDED); a failure is the job's error status, a
  // timeout DEADLINE_EXCEEDED after the job's cancellation has finished (an
  // infinite timeout is no timeout).
  absl::StatusOr<v1::Job> WaitFor(Input input,
                                  std::optional<absl::Duration> timeout = {},
                                  const CallOptions& call = {});

  // --- asyncio.as_completed --------------------------------------------------
  // On `timeout` the stream fails with DEADLINE_EXCEEDED; nothing is
  // cancelled.
  AsCompletedReader AsCompleted(std::vector<Input> inputs,
                                std::optional<absl::Duration> timeout = {},
                                const CallOptions& call = {});

  // --- asyncio.TaskGroup -----------------------------------------------------
  // The first failure cancels the other children; the call then fails with
  // the group's error (ErrorDetailsOf lists every failure).
  absl::StatusOr<GroupResult> RunGroup(std::vector<Spec> specs,
                                       const GroupOptions& options = {},
                                       const CallOptions& call = {});

  // --- Task.add_done_callback, as a stream -----------------------------------
  // Empty `ids`: every job from now on; returns once the daemon has
  // subscribed the stream, so every event after the return is reported
  // (WatchAsync subscribes in the background: events until the daemon has
  // subscribed it are not).
  WatchReader Watch(std::vector<std::uint64_t> ids = {},
                    const CallOptions& call = {});

  // --- asyncio.all_tasks -----------------------------------------------------
  absl::StatusOr<ListPage> List(const ListOptions& options = {},
                                const CallOptions& call = {});
  // Every page from options.page_token on, at most `max_jobs` jobs.
  absl::StatusOr<std::vector<v1::Job>> ListAll(ListOptions options = {},
                                               std::size_t max_jobs = SIZE_MAX,
                                               const CallOptions& call = {});

  // --- Limits, kinds, health -------------------------------------------------
  absl::StatusOr<v1::Limit> DeclareLimit(std::string_view name,
                                         std::uint32_t permits,
                                         const CallOptions& call = {});
  absl::StatusOr<std::vector<v1::Limit>> ListLimits(
      const CallOptions& call = {});
  // Deletes an unused limit declared by DeclareLimit: NOT_FOUND, or
  // FAILED_PRECONDITION while a job that is not done names it or for a
  // --limit flag's (see DeleteLimitRequest in jobs.proto).
  absl::Status DeleteLimit(std::string_view name, const CallOptions& call = {});
  absl::StatusOr<std::vector<v1::Kind>> ListKinds(const CallOptions& call = {});
  // grpc.health.v1 Check of the whole server ("").
  absl::StatusOr<Health> CheckHealth(const CallOptions& call = {});

  // --- Callback forms --------------------------------------------------------
  // Each returns at once; `done` runs exactly once, on a gRPC thread, with
  // what the blocking form would have returned. It must not block. A null
  // callback is skipped (fire and forget).
  CallHandle SubmitAsync(std::vector<Spec> specs,
                         Callback<std::vector<JobRef>> done,
                         const CallOptions& call = {});
  CallHandle GetAsync(std::vector<std::uint64_t> ids,
                      Callback<std::vector<v1::Job>> done,
                      const CallOptions& call = {});
  CallHandle CancelAsync(std::vector<std::uint64_t> ids, std::string message,
                         Callback<std::vector<v1::CancelResult>> done,
                         const CallOptions& call = {});
  CallHandle WaitAsync(std::vector<Input> inputs, WaitOptions options,
                       Callback<WaitResult> done, const CallOptions& call = {});
  CallHandle GatherAsync(std::vector<Input> inputs, GatherOptions options,
                         Callback<GatherResult> done,
                         const CallOptions& call = {});
  CallHandle WaitForAsync(Input input, std::optional<absl::Duration> timeout,
                          Callback<v1::Job> done, const CallOptions& call = {});
  CallHandle RunGroupAsync(std::vector<Spec> specs, GroupOptions options,
                           Callback<GroupResult> done,
                           const CallOptions& call = {});
  // `on_ids` runs once with every input's id (before any job), `on_job`
  // once per finished job in completion order, `done` last: OK when every
  // job was reported, else the error that ended the stream. All run on
  // gRPC threads, one at a time.
  CallHandle AsCompletedAsync(
      std::vector<Input> inputs, std::optional<absl::Duration> timeout,
      std::function<void(const std::vector<std::uint64_t>&)> on_ids,
      std::function<void(Completed)> on_job,
      std::function<void(absl::Status)> done, const CallOptions& call = {});
  CallHandle WatchAsync(std::vector<std::uint64_t> ids,
                        std::function<void(v1::WatchResponse)> on_event,
                        std::function<void(absl::Status)> done,
                        const CallOptions& call = {});

  // The raw stub, for what this class does not wrap.
  v1::Jobs::Stub& stub() { return *stub_; }

 private:
  Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel);

  // A context with the call's deadline and the token.
  std::unique_ptr<grpc::ClientContext> NewContext(
      const CallOptions& call) const;

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Jobs::Stub> stub_;
  // The callback calls in flight, which the destructor waits for: the last
  // reference to a channel must not go away on a gRPC callback thread.
  std::shared_ptr<client_internal::CallTracker> calls_;
};

// The ErrorDetails a failed call carried (WaitFor, Gather, RunGroup), or
// nullopt when the status has none.
std::optional<v1::ErrorDetails> ErrorDetailsOf(const absl::Status& status);

// A final job's outcome as a status: OK for SUCCEEDED; ABORTED or CANCELLED
// with the job's error (and ErrorDetails) otherwise; FAILED_PRECONDITION if
// it is not done yet.
absl::Status JobStatus(const v1::Job& job);

// "succeeded", "running", ... (lower case, as awaitctl prints them).
std::string_view StateName(v1::JobState state);

// The payload key under which the ErrorDetails of a status are kept.
inline constexpr std::string_view kErrorDetailsUrl =
    "type.googleapis.com/awaitd.v1.ErrorDetails";

}  // namespace awaitd::client

#endif  // AWAITD_CLIENT_CLIENT_H_
