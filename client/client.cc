// Client: every RPC of awaitd.v1.Jobs in blocking, callback and stream forms.
//
// How the forms relate:
//   - Unary calls run as callback reactors (UnaryCall below). The callback
//     form is the primitive; the blocking form starts it and waits on a
//     notification. Gather and RunGroup read the group id from the initial
//     metadata as soon as it arrives, in both forms.
//   - A reactor owns its call's ClientContext. The handles' CallHandle::State
//     points to it, under a mutex, until OnDone, so CallHandle::Cancel is
//     safe at any time (a no-op once the call is over). The Client tracks
//     reactors until they have destroyed their contexts (CallTracker).
//   - Blocking stream readers use the synchronous API (one thread reads;
//     TryCancel from any thread); callback streams are ClientReadReactors
//     that delete themselves in OnDone.
#include "client/client.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/strings.h"
#include "common/wire.h"
#include "google/protobuf/util/time_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/client_callback.h"
#include "grpcpp/support/sync_stream.h"

namespace awaitd::client {

// What a callback-form call shares with its handles.
//
// Thread safety: `context` is set before the call starts and cleared, under
// `mu`, by the reactor in OnDone before it destroys the context; so Cancel
// never reaches a destroyed context, and is a no-op once the call is over.
struct CallHandle::State {
  void Cancel() ABSL_LOCKS_EXCLUDED(mu) {
    absl::MutexLock lock(&mu);
    cancelled = true;
    if (context != nullptr) context->TryCancel();
  }

  absl::Mutex mu;
  grpc::ClientContext* context ABSL_GUARDED_BY(mu) = nullptr;
  // Cancel() was called: a CANCELLED status then says who cancelled.
  bool cancelled ABSL_GUARDED_BY(mu) = false;
};

void CallHandle::Cancel() {
  if (state_ != nullptr) state_->Cancel();
}

namespace client_internal {

// The callback calls of one Client whose reactors have not finished OnDone.
//
// Why it exists: every ClientContext holds a reference to its channel, and
// gRPC 1.51 breaks when the last reference to a channel goes away on one of
// its callback threads (the channel releases the shared callback completion
// queue, whose threads then join themselves and use it after it was freed).
// So ~Client cancels the calls left and waits until every reactor destroyed
// its context; the Client's own reference, dropped on the caller's thread,
// is then the last one.
//
// Thread safety: internally synchronized. Reactors hold it by shared_ptr, so
// it outlives the last Remove even if the Client is gone by then.
class CallTracker {
 public:
  void Add(std::shared_ptr<CallHandle::State> state) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    live_.insert(std::move(state));
  }

  void Remove(const std::shared_ptr<CallHandle::State>& state)
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    live_.erase(state);
  }

  // Cancels every call still in flight, then waits until all have finished.
  void CancelAllAndWait() ABSL_LOCKS_EXCLUDED(mu_) {
    std::vector<std::shared_ptr<CallHandle::State>> left;
    {
      absl::MutexLock lock(&mu_);
      left.assign(live_.begin(), live_.end());
    }
    for (const auto& state : left) state->Cancel();  // without mu_ held
    left.clear();
    absl::MutexLock lock(&mu_);
    using Live = std::unordered_set<std::shared_ptr<CallHandle::State>>;
    mu_.Await(absl::Condition(
        +[](Live* l) { return l->empty(); }, &live_));
  }

 private:
  absl::Mutex mu_;
  std::unordered_set<std::shared_ptr<CallHandle::State>> live_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace client_internal

namespace {

using client_internal::CallTracker;

// The one grpc::Status -> absl::Status conversion: the codes are equal; the
// ErrorDetails of a job failure travel as a payload. `local_cancel` names
// the call when the client itself cancelled it, whose gRPC status says only
// "Cancelled".
absl::Status ToAbsl(const grpc::Status& s, std::string_view local_cancel = {}) {
  if (s.ok()) return absl::OkStatus();
  if (!local_cancel.empty() && s.error_code() == grpc::StatusCode::CANCELLED &&
      s.error_details().empty()) {
    return absl::CancelledError(
        absl::StrCat(AbslView(local_cancel), ": cancelled by the client"));
  }
  absl::Status out(static_cast<absl::StatusCode>(s.error_code()),
                   AbslView(s.error_message()));
  if (!s.error_details().empty()) {
    out.SetPayload(AbslView(kErrorDetailsUrl),
                   absl::Cord(AbslView(s.error_details())));
  }
  return out;
}

google::protobuf::Duration DurationProto(absl::Duration d) {
  // Saturates at ~292 years, which the daemon rejects naming the field.
  return google::protobuf::util::TimeUtil::NanosecondsToDuration(
      absl::ToInt64Nanoseconds(d));
}

// An optional timeout as the proto has it: unset (and infinite) waits for
// ever.
template <typename Message>
void SetTimeout(const std::optional<absl::Duration>& timeout, Message& msg) {
  if (timeout.has_value() && *timeout != absl::InfiniteDuration()) {
    *msg.mutable_timeout() = DurationProto(*timeout);
  }
}

absl::StatusOr<std::string> ReadFile(std::string_view option,
                                     const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(AbslView(option), ": cannot read \"", path,
                     "\": ", std::strerror(errno)));
  }
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat(AbslView(option), ": cannot read \"", path, "\""));
  }
  return std::move(out).str();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials(
    const ClientOptions& o) {
  const bool tls = o.tls || !o.tls_ca_file.empty() ||
                   !o.tls_cert_file.empty() || !o.tls_key_file.empty();
  if (!tls) {
    if (!o.tls_server_name.empty()) {
      return absl::InvalidArgumentError(
          "tls_server_name: given without TLS (set tls, or a tls_*_file)");
    }
    return grpc::InsecureChannelCredentials();
  }
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "tls_cert_file and tls_key_file: give both (mutual TLS) or neither");
  }
  grpc::SslCredentialsOptions ssl;
  if (!o.tls_ca_file.empty()) {
    auto pem = ReadFile("tls_ca_file", o.tls_ca_file);
    if (!pem.ok()) return pem.status();
    ssl.pem_root_certs = *std::move(pem);
  }
  if (!o.tls_cert_file.empty()) {
    auto cert = ReadFile("tls_cert_file", o.tls_cert_file);
    if (!cert.ok()) return cert.status();
    auto key = ReadFile("tls_key_file", o.tls_key_file);
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  return grpc::SslCredentials(ssl);
}

// The token of a token file: its first line that is neither blank nor a
// '#' comment.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  auto text = ReadFile("token_file", path);
  if (!text.ok()) return text.status();
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    return std::string(line);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("token_file: no token in \"", path,
                   "\" (blank lines and '#' comments are skipped)"));
}

// A token goes into a header: printable ASCII only.
absl::Status CheckToken(const std::string& token) {
  for (const char c : token) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e) {
      return absl::InvalidArgumentError(
          "token: must be printable ASCII (it is sent as a header)");
    }
  }
  return absl::OkStatus();
}

// What every callback reactor owns: the context, the handles' state, and its
// place in the Client's tracker.
//
// Life cycle: the constructor registers the call; OnDone calls Close() (the
// handles let go of the context), runs the user's callback, then Release()
// (the context, and its channel reference, go before the Client may drop its
// own) and deletes the reactor.
class CallResources {
 protected:
  CallResources(std::unique_ptr<grpc::ClientContext> context,
                std::shared_ptr<CallTracker> tracker, std::string_view method)
      : context_(std::move(context)),
        state_(std::make_shared<CallHandle::State>()),
        tracker_(std::move(tracker)),
        method_(method) {
    {
      absl::MutexLock lock(&state_->mu);
      state_->context = context_.get();
    }
    tracker_->Add(state_);
  }

  // Returns the name to give a CANCELLED status if the handle cancelled the
  // call (empty otherwise); Cancel() is a no-op from here on.
  std::string_view Close() {
    absl::MutexLock lock(&state_->mu);
    state_->context = nullptr;
    return state_->cancelled ? method_ : std::string_view();
  }

  void Release() {
    context_.reset();
    tracker_->Remove(state_);
  }

  std::unique_ptr<grpc::ClientContext> context_;
  const std::shared_ptr<CallHandle::State> state_;
  const std::shared_ptr<CallTracker> tracker_;
  const std::string_view method_;  // a literal
};

using GroupCallback = std::function<void(std::uint64_t)>;

// One unary call as a callback reactor; deletes itself when done.
//
// Thread safety: gRPC runs OnReadInitialMetadataDone and then OnDone, never
// at the same time (OnDone follows every other reaction), possibly on
// different threads with a happens-before edge between them.
template <typename Request, typename Response>
class UnaryCall final : public grpc::ClientUnaryReactor, CallResources {
 public:
  using Done = std::function<void(absl::Status, Response&)>;

  // Starts the call: `start(context, request, response, reactor)` hands it
  // to the stub's async() method. `method` names the call in a local
  // cancellation's status. Returns the handle's state.
  template <typename StartFn>
  static std::shared_ptr<CallHandle::State> Start(
      std::unique_ptr<grpc::ClientContext> context,
      std::shared_ptr<CallTracker> tracker, std::string_view method,
      Request request, StartFn&& start, Done done,
      GroupCallback on_group = nullptr) {
    auto* call =
        new UnaryCall(std::move(context), std::move(tracker), method,
                      std::move(request), std::move(done), std::move(on_group));
    std::shared_ptr<CallHandle::State> state = call->state_;
    start(call->context_.get(), &call->request_, &call->response_,
          static_cast<grpc::ClientUnaryReactor*>(call));
    call->StartCall();  // from here on `call` may be gone at any moment
    return state;
  }

  void OnReadInitialMetadataDone(bool ok) override {
    if (!ok || !on_group_) return;
    const auto& md = context_->GetServerInitialMetadata();
    auto it = md.find(kGroupIdHeader);
    if (it == md.end()) return;
    std::uint64_t id = 0;
    if (absl::SimpleAtoi(
            absl::string_view(it->second.data(), it->second.size()), &id)) {
      group_reported_ = true;
      on_group_(id);
    }
  }

  void OnDone(const grpc::Status& status) override {
    const std::string_view cancelled_by_client = Close();
    if constexpr (requires(Response r) { r.group_id(); }) {
      // A daemon that did not send the header still names the group.
      if (status.ok() && on_group_ && !group_reported_) {
        on_group_(response_.group_id());
      }
    }
    done_(ToAbsl(status, cancelled_by_client), response_);
    Release();
    delete this;
  }

 private:
  UnaryCall(std::unique_ptr<grpc::ClientContext> context,
            std::shared_ptr<CallTracker> tracker, std::string_view method,
            Request request, Done done, GroupCallback on_group)
      : CallResources(std::move(context), std::move(tracker), method),
        request_(std::move(request)),
        done_(std::move(done)),
        on_group_(std::move(on_group)) {}

  Request request_;
  Response response_;
  Done done_;
  GroupCallback on_group_;
  bool group_reported_ = false;
};

// A server stream as a callback reactor; deletes itself when done.
//
// Thread safety: gRPC runs OnReadDone for one message at a time (the next
// read starts only at the end of this one) and OnDone after the last.
template <typename Request, typename Response>
class StreamCall final : public grpc::ClientReadReactor<Response>,
                         CallResources {
 public:
  using OnMessage = std::function<void(Response&)>;
  using Done = std::function<void(absl::Status)>;

  template <typename StartFn>
  static std::shared_ptr<CallHandle::State> Start(
      std::unique_ptr<grpc::ClientContext> context,
      std::shared_ptr<CallTracker> tracker, std::string_view method,
      Request request, StartFn&& start, OnMessage on_message, Done done) {
    auto* call = new StreamCall(std::move(context), std::move(tracker), method,
                                std::move(request), std::move(on_message),
                                std::move(done));
    std::shared_ptr<CallHandle::State> state = call->state_;
    start(call->context_.get(), &call->request_,
          static_cast<grpc::ClientReadReactor<Response>*>(call));
    call->StartRead(&call->message_);
    call->StartCall();  // from here on `call` may be gone at any moment
    return state;
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended: OnDone follows
    on_message_(message_);
    message_.Clear();
    this->StartRead(&message_);
  }

  void OnDone(const grpc::Status& status) override {
    const std::string_view cancelled_by_client = Close();
    if (done_) done_(ToAbsl(status, cancelled_by_client));
    Release();
    delete this;
  }

 private:
  StreamCall(std::unique_ptr<grpc::ClientContext> context,
             std::shared_ptr<CallTracker> tracker, std::string_view method,
             Request request, OnMessage on_message, Done done)
      : CallResources(std::move(context), std::move(tracker), method),
        request_(std::move(request)),
        on_message_(std::move(on_message)),
        done_(std::move(done)) {}

  Request request_;
  Response message_;
  OnMessage on_message_;
  Done done_;
};

// Runs a callback-form call and blocks the calling thread until its `done`
// has run; `start(done)` starts it.
template <typename T, typename StartFn>
absl::StatusOr<T> CallAndWait(StartFn&& start) {
  struct Result {
    absl::Notification ready;
    std::optional<absl::StatusOr<T>> value;
  };
  auto result = std::make_shared<Result>();
  start(Callback<T>([result](absl::StatusOr<T> v) {
    result->value.emplace(std::move(v));
    result->ready.Notify();
  }));
  result->ready.WaitForNotification();
  return *std::move(result->value);
}

// The status for a response that lacks what the daemon always sends.
absl::Status Malformed(std::string_view method, std::string_view what) {
  return absl::InternalError(
      absl::StrCat(AbslView(method), ": malformed response from the daemon (",
                   AbslView(what), ")"));
}

template <typename T>
std::vector<T> ToVector(google::protobuf::RepeatedPtrField<T>* field) {
  std::vector<T> out;
  out.reserve(static_cast<std::size_t>(field->size()));
  for (T& item : *field) out.push_back(std::move(item));
  return out;
}

std::vector<std::uint64_t> ToVector(
    const google::protobuf::RepeatedField<std::uint64_t>& field) {
  return std::vector<std::uint64_t>(field.begin(), field.end());
}

v1::ReturnWhen ToProto(ReturnWhen r) {
  switch (r) {
    case ReturnWhen::kAllCompleted:
      return v1::ALL_COMPLETED;
    case ReturnWhen::kFirstCompleted:
      return v1::FIRST_COMPLETED;
    case ReturnWhen::kFirstException:
      return v1::FIRST_EXCEPTION;
  }
  return v1::RETURN_WHEN_UNSPECIFIED;
}

template <typename Inputs>
void AddInputs(Inputs&& inputs,
               google::protobuf::RepeatedPtrField<v1::JobInput>* out) {
  out->Reserve(static_cast<int>(inputs.size()));
  for (Input& in : inputs) *out->Add() = std::move(in).release();
}

}  // namespace

// --- Connect -----------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(ClientOptions options) {
  if (!options.token_file.empty()) {
    if (!options.token.empty()) {
      return absl::InvalidArgumentError(
          "token and token_file: give one or the other");
    }
    auto token = ReadTokenFile(options.token_file);
    if (!token.ok()) return token.status();
    options.token = *std::move(token);
  }
  if (absl::Status s = CheckToken(options.token); !s.ok()) return s;
  std::shared_ptr<grpc::Channel> channel = options.channel;
  if (channel == nullptr) {
    auto creds = Credentials(options);
    if (!creds.ok()) return creds.status();
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
    channel = grpc::CreateCustomChannel(options.address, *creds, args);
  }
  if (options.connect_timeout > absl::ZeroDuration()) {
    const auto deadline =
        options.connect_timeout == absl::InfiniteDuration()
            ? std::chrono::system_clock::time_point::max()
            : absl::ToChronoTime(absl::Now() + options.connect_timeout);
    if (!channel->WaitForConnected(deadline)) {
      return absl::UnavailableError(absl::StrCat(
          "cannot reach the awaitd daemon at ", options.address, " within ",
          absl::FormatDuration(options.connect_timeout),
          " (is it running? `make run` starts one)"));
    }
  }
  return std::unique_ptr<Client>(
      new Client(std::move(options), std::move(channel)));
}

Client::Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(v1::Jobs::NewStub(channel_)),
      calls_(std::make_shared<CallTracker>()) {}

Client::~Client() { calls_->CancelAllAndWait(); }

std::unique_ptr<grpc::ClientContext> Client::NewContext(
    const CallOptions& call) const {
  auto context = std::make_unique<grpc::ClientContext>();
  const absl::Duration d = call.deadline.value_or(options_.default_deadline);
  if (d != absl::InfiniteDuration()) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + d));
  }
  if (!options_.token.empty()) {
    context->AddMetadata("authorization",
                         absl::StrCat("Bearer ", options_.token));
  }
  return context;
}

// --- Callback forms ----------------------------------------------------------

CallHandle Client::SubmitAsync(std::vector<Spec> specs,
                               Callback<std::vector<JobRef>> done,
                               const CallOptions& call) {
  v1::SubmitRequest request;
  request.mutable_jobs()->Reserve(static_cast<int>(specs.size()));
  for (Spec& s : specs) *request.add_jobs() = std::move(s).release();
  auto on_done = [done = std::move(done)](absl::Status s,
                                          v1::SubmitResponse& r) {
    if (!done) return;
    if (!s.ok()) return done(std::move(s));
    std::vector<JobRef> refs;
    refs.reserve(static_cast<std::size_t>(r.jobs_size()));
    for (v1::JobRef& j : *r.mutable_jobs()) {
      refs.push_back({.id = j.id(),
                      .name = std::move(*j.mutable_name()),
                      .existing = j.existing()});
    }
    done(std::move(refs));
  };
  v1::Jobs::Stub* stub = stub_.get();
  return CallHandle(UnaryCall<v1::SubmitRequest, v1::SubmitResponse>::Start(
      NewContext(call), calls_, "submit", std::move(request),
      [stub](auto* ctx, auto* req, auto* resp, auto* reactor) {
        stub->async()->Submit(ctx, req, resp, reactor);
      },
      std::move(on_done)));
}

CallHandle Client::GetAsync(std::vector<std::uint64_t> ids,
                            Callback<std::vector<v1::Job>> done,
                            const CallOptions& call) {
  v1::GetRequest request;
  request.mutable_ids()->Add(ids.begin(), ids.end());
  auto on_done = [done = std::move(done)](absl::Status s, v1::GetResponse& r) {
    if (!done) return;
    if (!s.ok()) return done(std::move(s));
    done(ToVector(r.mutable_jobs()));
  };
  v1::Jobs::Stub* stub = stub_.get();
  return CallHandle(UnaryCall<v1::GetRequest, v1::GetResponse>::Start(
      NewContext(call), calls_, "get", std::move(request),
      [stub](auto* ctx, auto* req, auto* resp, auto* reactor) {
        stub->async()->Get(ctx, req, resp, reactor);
      },
      std::move(on_done)));
}

CallHandle Client::CancelAsync(std::vector<std::uint64_t> ids,
                               std::string message,
                               Callback<std::vector<v1::CancelResult>> done,
                               const CallOptions& call) {
  v1::CancelRequest request;
  request.mutable_ids()->Add(ids.begin(), ids.end());
  request.set_message(std::move(message));
  auto on_done = [done = std::move(done)](absl::Status s,
                                          v1::CancelResponse& r) {
    if (!done) return;
    if (!s.ok()) return done(std::move(s));
    done(ToVector(r.mutable_results()));
  };
  v1::Jobs::Stub* stub = stub_.get();
  return CallHandle(UnaryCall<v1::CancelRequest, v1::CancelResponse>::Start(
      NewContext(call), calls_, "cancel", std::move(request),
      [stub](auto* ctx, auto* req, auto* resp, auto* reactor) {
        stub->async()->Cancel(ctx, req, resp, reactor);
      },
      std::move(on_done)));
}

CallHandle Client::WaitAsync(std::vector<Input> inputs, WaitOptions options,
                             Callback<WaitResult> done,
                             const CallOptions& call) {
  v1::WaitRequest request;
  AddInputs(inputs, request.mutable_jobs());
  request.set_return_when(ToProto(options.return_when));
  SetTimeout(options.timeout, request);
  auto on_done = [done = std::move(done)](absl::Status s, v1::WaitResponse& r) {
    if (!done) return;
    if (!s.ok()) return done(std::move(s));
    done(WaitResult{.done = ToVector(r.done()),
                    .pending = ToVector(r.pending())});
  };
  v1::Jobs::Stub* stub = stub_.get();
  return CallHandle(UnaryCall<v1::WaitRequest, v1::WaitResponse>::Start(
      NewContext(call), calls_, "wait", std::move(request),
      [stub](auto* ctx, auto* req, auto* resp, auto* reactor) {
        stub->async()->Wait(ctx, req, resp, reactor);
      },
      std::move(on_done)));
}

CallHandle Client::GatherAsync(std::vector<Input> inputs, GatherOptions options,
                               Callback<GatherResult> done,
                               const CallOptions& call) {
  v1::GatherRequest request;
  AddInputs(inputs, request.mutable_jobs());
  request.set_return_exceptions(options.return_exceptions);
  request.set_name(std::move(options.name));
  auto on_done = [done = std::move(done)](absl::Status s,
                                          v1::GatherResponse& r) {
    if (!done) return;
    if (!s.ok()) return done(std::move(s));
    done(GatherResult{.group_id = r.group_id(),
                      .results = ToVector(r.mutable_results())});
  };
  v1::Jobs::Stub* stub = stub_.get();
  return CallHandle(UnaryCall<v1::GatherRequest, v1::GatherResponse>::Start(
      NewContext(call), calls_, "gather", std::move(request),
      [stub](auto* ctx, auto* req, auto* resp, auto* reactor) {
        stub->async()->Gather(ctx, req, resp, reactor);
      },
      std::move(on_done), std::move(options.on_group)));
}

CallHandle Client::WaitForAsync(Input input,
                                std::optional<absl::Duration> timeout,
                                Callback<v1::Job> done,
                                const CallOptions& call) {
  v1::WaitForRequest request;
  *request.mutable_job() = std::move(input).release();
  SetTimeout(timeout, request);
  auto on_done = [done = std::move(done)](absl::Status s,
                                          v1::WaitForResponse& r) {
    if (!done) return;
    if (!s.ok()) return done(std::move(s));
    if (!r.has_job()) return done(Malformed("wait_for", "no job"));
    done(std::move(*r.mutable_job()));
  };
  v1::Jobs::Stub* stub = stub_.get();
  return CallHandle(UnaryCall<v1::WaitForRequest, v1::WaitForResponse>::Start(
      NewContext(call), calls_, "wait_for", std::move(request),
      [stub](auto* ctx, auto* req, auto* resp, auto* reactor) {
        stub->async()->WaitFor(ctx, req, resp, reactor);
      },
      std::move(on_done)));
}

CallHandle Client::RunGroupAsync(std::vector<Spec> specs, GroupOptions options,
                                 Callback<GroupResult> done,
                                 const CallOptions& call) {
  v1::RunGroupRequest request;
  request.mutable_jobs()->Reserve(static_cast<int>(specs.size()));
  for (Spec& s : specs) *request.add_jobs() = std::move(s).release();
  request.set_name(std::move(options.name));
  auto on_done = [done = std::move(done)](absl::Status s,
                                          v1::RunGroupResponse& r) {
    if (!done) return;
    if (!s.ok()) return done(std::move(s));
    done(GroupResult{.group_id = r.group_id(),
                     .results = ToVector(r.mutable_results())});
  };
  v1::Jobs::Stub* stub = stub_.get();
  return CallHandle(UnaryCall<v1::RunGroupRequest, v1::RunGroupResponse>::Start(
      NewContext(call), calls_, "run_group", std::move(request),
      [stub](auto* ctx, auto* req, auto* resp, auto* reactor) {
        stub->async()->RunGroup(ctx, req, resp, reactor);
      },
      std::move(on_done), std::move(options.on_group)));
}

CallHandle Client::AsCompletedAsync(
    std::vector<Input> inputs, std::optional<absl::Duration> timeout,
    std::function<void(const std::vector<std::uint64_t>&)> on_ids,
    std::function<void(Completed)> on_job,
    std::function<void(absl::Status)> done, const CallOptions& call) {
  v1::AsCompletedRequest request;
  AddInputs(inputs, request.mutable_jobs());
  SetTimeout(timeout, request);
  // The first message lists the ids; every later one is a finished job.
  // Called one message at a time, so `first` needs no lock.
  auto on_message = [first = true, on_ids = std::move(on_ids),
                     on_job = std::move(on_job)](
                        v1::AsCompletedResponse& m) mutable {
    if (first) {
      first = false;
      if (on_ids) on_ids(ToVector(m.ids()));
      return;
    }
    if (on_job) {
      on_job(Completed{.index = m.index(), .job = std::move(*m.mutable_job())});
    }
  };
  v1::Jobs::Stub* stub = stub_.get();
  return CallHandle(
      StreamCall<v1::AsCompletedRequest, v1::AsCompletedResponse>::Start(
          NewContext(call), calls_, "as_completed", std::move(request),
          [stub](auto* ctx, auto* req, auto* reactor) {
            stub->async()->AsCompleted(ctx, req, reactor);
          },
          std::move(on_message), std::move(done)));
}

CallHandle Client::WatchAsync(std::vector<std::uint64_t> ids,
                              std::function<void(v1::WatchResponse)> on_event,
                              std::function<void(absl::Status)> done,
                              const CallOptions& call) {
  v1::WatchRequest request;
  request.mutable_ids()->Add(ids.begin(), ids.end());
  auto on_message = [on_event = std::move(on_event)](v1::WatchResponse& m) {
    if (on_event) on_event(std::move(m));
  };
  v1::Jobs::Stub* stub = stub_.get();
  return CallHandle(StreamCall<v1::WatchRequest, v1::WatchResponse>::Start(
      NewContext(call), calls_, "watch", std::move(request),
      [stub](auto* ctx, auto* req, auto* reactor) {
        stub->async()->Watch(ctx, req, reactor);
      },
      std::move(on_message), std::move(done)));
}

// --- Blocking forms ----------------------------------------------------------

absl::StatusOr<JobRef> Client::Submit(const Spec& spec,
                                      const CallOptions& call) {
  auto refs = Submit(std::span<const Spec>(&spec, 1), call);
  if (!refs.ok()) return refs.status();
  if (refs->size() != 1) return Malformed("submit", "not one job");
  return std::move(refs->front());
}

absl::StatusOr<std::vector<JobRef>> Client::Submit(std::span<const Spec> specs,
                                                   const CallOptions& call) {
  return CallAndWait<std::vector<JobRef>>(
      [&](Callback<std::vector<JobRef>> done) {
        SubmitAsync(std::vector<Spec>(specs.begin(), specs.end()),
                    std::move(done), call);
      });
}

absl::StatusOr<v1::Job> Client::Get(std::uint64_t id, const CallOptions& call) {
  auto jobs = Get(std::span<const std::uint64_t>(&id, 1), call);
  if (!jobs.ok()) return jobs.status();
  if (jobs->size() != 1) return Malformed("get", "not one job");
  return std::move(jobs->front());
}

absl::StatusOr<std::vector<v1::Job>> Client::Get(
    std::span<const std::uint64_t> ids, const CallOptions& call) {
  return CallAndWait<std::vector<v1::Job>>(
      [&](Callback<std::vector<v1::Job>> done) {
        GetAsync(std::vector<std::uint64_t>(ids.begin(), ids.end()),
                 std::move(done), call);
      });
}

absl::StatusOr<bool> Client::Cancel(std::uint64_t id, std::string_view message,
                                    const CallOptions& call) {
  auto results = Cancel(std::span<const std::uint64_t>(&id, 1), message, call);
  if (!results.ok()) return results.status();
  if (results->size() != 1) return Malformed("cancel", "not one result");
  return results->front().cancelled();
}

absl::StatusOr<std::vector<v1::CancelResult>> Client::Cancel(
    std::span<const std::uint64_t> ids, std::string_view message,
    const CallOptions& call) {
  return CallAndWait<std::vector<v1::CancelResult>>(
      [&](Callback<std::vector<v1::CancelResult>> done) {
        CancelAsync(std::vector<std::uint64_t>(ids.begin(), ids.end()),
                    std::string(message), std::move(done), call);
      });
}

absl::StatusOr<WaitResult> Client::Wait(std::vector<Input> inputs,
                                        const WaitOptions& options,
                                        const CallOptions& call) {
  return CallAndWait<WaitResult>([&](Callback<WaitResult> done) {
    WaitAsync(std::move(inputs), options, std::move(done), call);
  });
}

absl::StatusOr<GatherResult> Client::Gather(std::vector<Input> inputs,
                                            const GatherOptions& options,
                                            const CallOptions& call) {
  return CallAndWait<GatherResult>([&](Callback<GatherResult> done) {
    GatherAsync(std::move(inputs), options, std::move(done), call);
  });
}

absl::StatusOr<v1::Job> Client::WaitFor(Input input,
                                        std::optional<absl::Duration> timeout,
                                        const CallOptions& call) {
  return CallAndWait<v1::Job>([&](Callback<v1::Job> done) {
    WaitForAsync(std::move(input), timeout, std::move(done), call);
  });
}

absl::StatusOr<GroupResult> Client::RunGroup(std::vector<Spec> specs,
                                             const GroupOptions& options,
                                             const CallOptions& call) {
  return CallAndWait<GroupResult>([&](Callback<GroupResult> done) {
    RunGroupAsync(std::move(specs), options, std::move(done), call);
  });
}

absl::StatusOr<ListPage> Client::List(const ListOptions& options,
                                      const CallOptions& call) {
  v1::ListRequest request;
  request.set_state(options.state);
  request.set_kind(options.kind);
  request.set_name_prefix(options.name_prefix);
  request.set_page_size(options.page_size);
  request.set_page_token(options.page_token);
  v1::Jobs::Stub* stub = stub_.get();
  return CallAndWait<ListPage>([&](Callback<ListPage> done) {
    UnaryCall<v1::ListRequest, v1::ListResponse>::Start(
        NewContext(call), calls_, "list", std::move(request),
        [stub](auto* ctx, auto* req, auto* resp, auto* reactor) {
          stub->async()->List(ctx, req, resp, reactor);
        },
        [done = std::move(done)](absl::Status s, v1::ListResponse& r) {
          if (!s.ok()) return done(std::move(s));
          done(ListPage{
              .jobs = ToVector(r.mutable_jobs()),
              .next_page_token = std::move(*r.mutable_next_page_token())});
        });
  });
}

absl::StatusOr<std::vector<v1::Job>> Client::ListAll(ListOptions options,
                                                     std::size_t max_jobs,
                                                     const CallOptions& call) {
  constexpr std::size_t kMaxPageSize = 1000;
  const bool default_page_size = options.page_size == 0;
  std::vector<v1::Job> jobs;
  while (jobs.size() < max_jobs) {
    if (default_page_size) {
      // No more than needed, no more than the daemon allows.
      options.page_size = static_cast<int>(
          std::min({max_jobs - jobs.size(), kMaxPageSize, std::size_t{100}}));
    }
    auto page = List(options, call);
    if (!page.ok()) return page.status();
    for (v1::Job& j : page->jobs) {
      if (jobs.size() == max_jobs) break;
      jobs.push_back(std::move(j));
    }
    if (page->next_page_token.empty()) break;
    options.page_token = std::move(page->next_page_token);
  }
  return jobs;
}

absl::StatusOr<v1::Limit> Client::DeclareLimit(std::string_view name,
                                               std::uint32_t permits,
                                               const CallOptions& call) {
  v1::DeclareLimitRequest request;
  request.set_name(std::string(name));
  request.set_permits(permits);
  v1::Jobs::Stub* stub = stub_.get();
  return CallAndWait<v1::Limit>([&](Callback<v1::Limit> done) {
    UnaryCall<v1::DeclareLimitRequest, v1::DeclareLimitResponse>::Start(
        NewContext(call), calls_, "declare_limit", std::move(request),
        [stub](auto* ctx, auto* req, auto* resp, auto* reactor) {
          stub->async()->DeclareLimit(ctx, req, resp, reactor);
        },
        [done = std::move(done)](absl::Status s, v1::DeclareLimitResponse& r) {
          if (!s.ok()) return done(std::move(s));
          done(std::move(*r.mutable_limit()));
        });
  });
}

absl::StatusOr<std::vector<v1::Limit>> Client::ListLimits(
    const CallOptions& call) {
  v1::Jobs::Stub* stub = stub_.get();
  return CallAndWait<std::vector<v1::Limit>>(
      [&](Callback<std::vector<v1::Limit>> done) {
        UnaryCall<v1::ListLimitsRequest, v1::ListLimitsResponse>::Start(
            NewContext(call), calls_, "list_limits", v1::ListLimitsRequest(),
            [stub](auto* ctx, auto* req, auto* resp, auto* reactor) {
              stub->async()->ListLimits(ctx, req, resp, reactor);
            },
            [done = std::move(done)](absl::Status s,
                                     v1::ListLimitsResponse& r) {
              if (!s.ok()) return done(std::move(s));
              done(ToVector(r.mutable_limits()));
            });
      });
}

absl::Status Client::DeleteLimit(std::string_view name,
                                 const CallOptions& call) {
  v1::DeleteLimitRequest request;
  request.set_name(std::string(name));
  v1::Jobs::Stub* stub = stub_.get();
  absl::StatusOr<bool> deleted = CallAndWait<bool>([&](Callback<bool> done) {
    UnaryCall<v1::DeleteLimitRequest, v1::DeleteLimitResponse>::Start(
        NewContext(call), calls_, "delete_limit", std::move(request),
        [stub](auto* ctx, auto* req, auto* resp, auto* reactor) {
          stub->async()->DeleteLimit(ctx, req, resp, reactor);
        },
        [done = std::move(done)](absl::Status s, v1::DeleteLimitResponse&) {
          if (!s.ok()) return done(std::move(s));
          done(true);
        });
  });
  return deleted.status();
}

absl::StatusOr<std::vector<v1::Kind>> Client::ListKinds(
    const CallOptions& call) {
  v1::Jobs::Stub* stub = stub_.get();
  return CallAndWait<std::vector<v1::Kind>>(
      [&](Callback<std::vector<v1::Kind>> done) {
        UnaryCall<v1::ListKindsRequest, v1::ListKindsResponse>::Start(
            NewContext(call), calls_, "list_kinds", v1::ListKindsRequest(),
            [stub](auto* ctx, auto* req, auto* resp, auto* reactor) {
              stub->async()->ListKinds(ctx, req, resp, reactor);
            },
            [done = std::move(done)](absl::Status s, v1::ListKindsResponse& r) {
              if (!s.ok()) return done(std::move(s));
              done(ToVector(r.mutable_kinds()));
            });
      });
}

absl::StatusOr<Health> Client::CheckHealth(const CallOptions& call) {
  using grpc::health::v1::HealthCheckRequest;
  using grpc::health::v1::HealthCheckResponse;
  // The stub only names the methods; the call does not need it once started.
  std::unique_ptr<grpc::health::v1::Health::Stub> stub =
      grpc::health::v1::Health::NewStub(channel_);
  HealthCheckRequest request;  // service "": the whole server
  return CallAndWait<Health>([&](Callback<Health> done) {
    UnaryCall<HealthCheckRequest, HealthCheckResponse>::Start(
        NewContext(call), calls_, "health_check", std::move(request),
        [&stub](auto* ctx, auto* req, auto* resp, auto* reactor) {
          stub->async()->Check(ctx, req, resp, reactor);
        },
        [done = std::move(done)](absl::Status s, HealthCheckResponse& r) {
          if (!s.ok()) return done(std::move(s));
          switch (r.status()) {
            case HealthCheckResponse::SERVING:
              return done(Health::kServing);
            case HealthCheckResponse::NOT_SERVING:
              return done(Health::kNotServing);
            default:
              return done(Health::kUnknown);
          }
        });
  });
}

// --- Streams -----------------------------------------------------------------

// Thread safety: one thread reads (Next, the destructor); Cancel may run
// concurrently from another (TryCancel and the atomic are thread-safe).
struct AsCompletedReader::State {
  // Declared first, so the reader (which points to it) goes first.
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientReader<v1::AsCompletedResponse>> reader;
  std::vector<std::uint64_t> ids;
  bool ids_read = false;
  // Set once the stream ended: OK after the last job, else its error.
  std::optional<absl::Status> end;
  std::atomic<bool> cancelled{false};

  ~State() {
    if (end.has_value() || reader == nullptr) return;
    // Still open: end it; Finish() after the reads drained releases it.
    context->TryCancel();
    v1::AsCompletedResponse discard;
    while (reader->Read(&discard)) {
    }
    (void)reader->Finish();
  }
};

AsCompletedReader::AsCompletedReader(std::unique_ptr<State> state)
    : state_(std::move(state)) {}
AsCompletedReader::AsCompletedReader(AsCompletedReader&&) noexcept = default;
AsCompletedReader& AsCompletedReader::operator=(AsCompletedReader&&) noexcept =
    default;
AsCompletedReader::~AsCompletedReader() = default;

absl::StatusOr<std::optional<Completed>> AsCompletedReader::Next() {
  if (state_ == nullptr) {
    return absl::FailedPreconditionError(
        "AsCompletedReader::Next: the reader was moved from");
  }
  State& s = *state_;
  if (!s.end.has_value()) {
    v1::AsCompletedResponse m;
    while (s.reader->Read(&m)) {
      if (!s.ids_read) {  // the first message: every input's id
        s.ids = ToVector(m.ids());
        s.ids_read = true;
        continue;
      }
      return std::optional<Completed>(
          Completed{.index = m.index(), .job = std::move(*m.mutable_job())});
    }
    const bool cancelled = s.cancelled.load(std::memory_order_relaxed);
    s.end = ToAbsl(s.reader->Finish(), cancelled ? "as_completed" : "");
  }
  if (!s.end->ok()) return *s.end;
  return std::optional<Completed>();
}

const std::vector<std::uint64_t>& AsCompletedReader::ids() const {
  static const std::vector<std::uint64_t> kNone;
  return state_ == nullptr ? kNone : state_->ids;
}

void AsCompletedReader::Cancel() {
  if (state_ == nullptr) return;
  state_->cancelled.store(true, std::memory_order_relaxed);
  state_->context->TryCancel();
}

AsCompletedReader Client::AsCompleted(std::vector<Input> inputs,
                                      std::optional<absl::Duration> timeout,
                                      const CallOptions& call) {
  v1::AsCompletedRequest request;
  AddInputs(inputs, request.mutable_jobs());
  SetTimeout(timeout, request);
  auto state = std::make_unique<AsCompletedReader::State>();
  state->context = NewContext(call);
  state->reader = stub_->AsCompleted(state->context.get(), request);
  return AsCompletedReader(std::move(state));
}

// Thread safety: as AsCompletedReader::State.
struct WatchReader::State {
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientReader<v1::WatchResponse>> reader;
  std::optional<absl::Status> end;
  std::atomic<bool> cancelled{false};

  ~State() {
    if (end.has_value() || reader == nullptr) return;
    context->TryCancel();
    v1::WatchResponse discard;
    while (reader->Read(&discard)) {
    }
    (void)reader->Finish();
  }
};

WatchReader::WatchReader(std::unique_ptr<State> state)
    : state_(std::move(state)) {}
WatchReader::WatchReader(WatchReader&&) noexcept = default;
WatchReader& WatchReader::operator=(WatchReader&&) noexcept = default;
WatchReader::~WatchReader() = default;

absl::StatusOr<std::optional<v1::WatchResponse>> WatchReader::Next() {
  if (state_ == nullptr) {
    return absl::FailedPreconditionError(
        "WatchReader::Next: the reader was moved from");
  }
  State& s = *state_;
  if (!s.end.has_value()) {
    v1::WatchResponse m;
    if (s.reader->Read(&m))
      return std::optional<v1::WatchResponse>(std::move(m));
    const bool cancelled = s.cancelled.load(std::memory_order_relaxed);
    s.end = ToAbsl(s.reader->Finish(), cancelled ? "watch" : "");
  }
  if (!s.end->ok()) return *s.end;
  return std::optional<v1::WatchResponse>();
}

void WatchReader::Cancel() {
  if (state_ == nullptr) return;
  state_->cancelled.store(true, std::memory_order_relaxed);
  state_->context->TryCancel();
}

WatchReader Client::Watch(std::vector<std::uint64_t> ids,
                          const CallOptions& call) {
  v1::WatchRequest request;
  request.mutable_ids()->Add(ids.begin(), ids.end());
  auto state = std::make_unique<WatchReader::State>();
  state->context = NewContext(call);
  state->reader = stub_->Watch(state->context.get(), request);
  if (ids.empty()) {
    // The daemon sends initial metadata once it has subscribed the stream
    // (jobs.proto, WatchRequest): from then on no event is missed. If the
    // call fails instead, this returns and Next() reports the error.
    state->reader->WaitForInitialMetadata();
  }
  return WatchReader(std::move(state));
}

// --- Free functions ----------------------------------------------------------

std::optional<v1::ErrorDetails> ErrorDetailsOf(const absl::Status& status) {
  auto payload =
      status.GetPayload(AbslView(kErrorDetailsUrl));  // absl::optional
  if (!payload.has_value()) return std::nullopt;
  v1::ErrorDetails details;
  if (!details.ParseFromString(std::string(*payload))) return std::nullopt;
  return details;
}

absl::Status JobStatus(const v1::Job& job) {
  const v1::JobState state = job.state();
  if (state == v1::JOB_STATE_SUCCEEDED) return absl::OkStatus();
  if (state != v1::JOB_STATE_FAILED && state != v1::JOB_STATE_CANCELLED) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job.id(), " (", job.name(), ") is not done (",
                     AbslView(StateName(state)), ")"));
  }
  // As the daemon reports a job's failure (common/wire.h), so a status
  // built here reads like one a call returned.
  JobFailureReport r =
      ReportJobFailure(job.id(), job.name(), state, job.error());
  absl::Status status = r.cancelled ? absl::CancelledError(r.message)
                                    : absl::AbortedError(r.message);
  status.SetPayload(AbslView(kErrorDetailsUrl),
                    absl::Cord(r.details.SerializeAsString()));
  return status;
}

std::string_view StateName(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_PENDING:
      return "pending";
    case v1::JOB_STATE_RUNNING:
      return "running";
    case v1::JOB_STATE_SUCCEEDED:
      return "succeeded";
    case v1::JOB_STATE_FAILED:
      return "failed";
    case v1::JOB_STATE_CANCELLED:
      return "cancelled";
    default:
      return "unspecified";
  }
}

}  // namespace awaitd::client
