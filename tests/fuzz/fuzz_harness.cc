// The daemon, the calls and the checks of tests/fuzz (fuzz_harness.h).
#include "tests/fuzz/fuzz_harness.h"

#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "awaitd/v1/jobs.grpc.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/daemon/daemon.h"

namespace awaitd::fuzz {
namespace {

using grpc::StatusCode;

// The daemon's limits: small, so that a fuzzed batch reaches them (and the
// RESOURCE_EXHAUSTED paths) and state stays bounded across inputs.
constexpr std::size_t kMaxBatch = 1000;
constexpr std::size_t kMaxIdsPerCall = 10'000;
constexpr std::size_t kMaxPendingJobs = 5000;
constexpr std::size_t kMaxFinishedJobs = 20'000;
// Ids 1..kRelativeIds in a request name recent jobs: id k is the k-th newest
// id the daemon has handed out for a job (1: the newest). So a seed such as
// "Gather of ids 1, 2, 3" reaches jobs and groups earlier inputs created,
// whenever it runs; larger ids are sent as they are.
constexpr std::uint64_t kRelativeIds = 256;
// Every how many inputs a job is run end to end (echo, WaitFor), to show
// that the event loops still run jobs.
constexpr int kRoundTripEvery = 64;

const char* CodeName(StatusCode code) {
  switch (code) {
    case StatusCode::OK:
      return "OK";
    case StatusCode::CANCELLED:
      return "CANCELLED";
    case StatusCode::UNKNOWN:
      return "UNKNOWN";
    case StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case StatusCode::ABORTED:
      return "ABORTED";
    case StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case StatusCode::INTERNAL:
      return "INTERNAL";
    case StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "?";
  }
}

// The request being run, for the report of a failed check.
const google::protobuf::Message* g_current_request = nullptr;
const char* g_current_rpc = "";

// A broken promise of the daemon: says which, shows the request (shortened)
// and aborts, so that libFuzzer saves the input.
[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "\n==awaitd-fuzz== %s: %s\n", g_current_rpc,
               what.c_str());
  if (g_current_request != nullptr) {
    std::string text = g_current_request->ShortDebugString();
    if (text.size() > 4000) text = text.substr(0, 4000) + " ...";
    std::fprintf(stderr, "==awaitd-fuzz== request: %s\n", text.c_str());
  }
  std::fflush(stderr);
  std::abort();
}

std::string Describe(const grpc::Status& s) {
  return std::string(CodeName(s.error_code())) + " \"" + s.error_message() +
         "\"";
}

void Require(bool ok, const std::string& what) {
  if (!ok) Fail(what);
}

class FuzzDaemon {
 public:
  FuzzDaemon() {
    const char* deadline = std::getenv("AWAITD_FUZZ_DEADLINE_MS");
    if (deadline != nullptr) call_deadline_ms_ = std::max(1, atoi(deadline));
    verbose_ = std::getenv("AWAITD_FUZZ_VERBOSE") != nullptr;

    std::string tmpl =
        (std::filesystem::temp_directory_path() / "awaitd-fuzz-XXXXXX")
            .string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::perror("awaitd-fuzz: mkdtemp");
      std::abort();
    }
    data_dir_ = tmpl;

    server::DaemonOptions o;
    o.listen = "127.0.0.1:0";
    o.reflection = false;
    o.runtime.workers = 2;
    o.runtime.stall_threshold = std::chrono::nanoseconds(0);
    o.log_level = runtime::LogLevel::kError;
    o.shutdown_grace = absl::Milliseconds(100);
    o.cancel_grace = absl::Milliseconds(500);
    o.durability = server::Durability::kAsync;
    if (const char* d = std::getenv("AWAITD_FUZZ_DURABILITY"); d != nullptr) {
      auto parsed = server::ParseDurability(d);
      if (!parsed.ok()) {
        std::fprintf(stderr, "awaitd-fuzz: AWAITD_FUZZ_DURABILITY: %s\n",
                     parsed.status().ToString().c_str());
        std::abort();
      }
      o.durability = *parsed;
    }
    durability_ = o.durability;
    o.data_dir = data_dir_;
    o.limits = {"fuzz:2", "one:1"};
    o.jobs.max_batch = kMaxBatch;
    o.jobs.max_pending_jobs = kMaxPendingJobs;
    o.jobs.max_finished_jobs = kMaxFinishedJobs;
    o.jobs.result_ttl = absl::Seconds(2);
    o.jobs.sweep_interval = absl::Milliseconds(200);
    o.service.max_ids_per_call = kMaxIdsPerCall;
    auto d = server::Daemon::Start(std::move(o));
    if (!d.ok()) {
      std::fprintf(stderr, "awaitd-fuzz: the daemon did not start: %s\n",
                   d.status().ToString().c_str());
      std::abort();
    }
    daemon_ = *std::move(d);
    channel_ = grpc::CreateChannel(daemon_->address(),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::Jobs::NewStub(channel_);
    health_ = grpc::health::v1::Health::NewStub(channel_);
    std::fprintf(stderr,
                 "awaitd-fuzz: daemon on %s, store in %s (durability %s), "
                 "call deadline %d ms\n",
                 daemon_->address().c_str(), data_dir_.c_str(),
                 std::string(server::DurabilityName(durability_)).c_str(),
                 call_deadline_ms_);
  }

  // Never destroyed: libFuzzer ends the process with exit(), and a daemon
  // shutting down from a static destructor would race the other statics.
  ~FuzzDaemon() = delete;

  v1::Jobs::Stub& stub() { return *stub_; }

  // The id that a request's id `x` names (kRelativeIds above).
  std::uint64_t MapId(std::uint64_t x) const {
    if (x == 0 || x > recent_ids_.size()) return x;
    return recent_ids_[x - 1];
  }
  bool verbose() const { return verbose_; }

  std::unique_ptr<grpc::ClientContext> CallContext() const {
    return Context(std::chrono::milliseconds(call_deadline_ms_));
  }
  static std::unique_ptr<grpc::ClientContext> Context(
      std::chrono::milliseconds timeout) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + timeout);
    return ctx;
  }

  // After each input: every job not done is cancelled (bounded wait: a job
  // still unwinding is left to the next round), then the daemon must still
  // answer.
  void AfterInput() {
    daemon_->jobs().CancelAll("fuzz input done",
                              absl::Now() + absl::Milliseconds(200));
    CheckAnswers();
    NoteRecentIds();
    if (++inputs_ % kRoundTripEvery == 0) CheckRunsJobs();
  }

 private:
  // Finds the kRelativeIds newest job ids: the ids below the next one (which
  // it takes: ids are never reused, so that costs nothing), but those it took
  // before.
  void NoteRecentIds() {
    const std::uint64_t next = daemon_->jobs().ReserveId();
    taken_ids_.push_back(next);
    if (taken_ids_.size() > 2 * kRelativeIds) taken_ids_.pop_front();
    recent_ids_.clear();
    auto taken = taken_ids_.rbegin();  // newest first
    for (std::uint64_t id = next;
         id > 1 && recent_ids_.size() < kRelativeIds;) {
      --id;
      while (taken != taken_ids_.rend() && *taken > id) ++taken;
      if (taken != taken_ids_.rend() && *taken == id) continue;
      recent_ids_.push_back(id);
    }
  }

  void CheckAnswers() {
    grpc::health::v1::HealthCheckRequest hreq;
    grpc::health::v1::HealthCheckResponse hresp;
    grpc::Status hs =
        health_->Check(Context(std::chrono::seconds(5)).get(), hreq, &hresp);
    Require(hs.ok() && hresp.status() ==
                           grpc::health::v1::HealthCheckResponse::SERVING,
            "after the input, health is not SERVING: " + Describe(hs));
    // Through the Jobs service and the job manager's table: the largest id
    // is never handed out.
    v1::GetRequest req;
    req.add_ids(std::numeric_limits<std::uint64_t>::max());
    v1::GetResponse resp;
    grpc::Status s =
        stub_->Get(Context(std::chrono::seconds(5)).get(), req, &resp);
    Require(
        s.error_code() == StatusCode::NOT_FOUND && !s.error_message().empty(),
        "after the input, Get of the largest id answered " + Describe(s) +
            " (want NOT_FOUND)");
  }

  void CheckRunsJobs() {
    v1::WaitForRequest req;
    v1::JobSpec* spec = req.mutable_job()->mutable_spec();
    spec->set_kind("echo");
    (*spec->mutable_args()->mutable_fields())["value"].set_number_value(7);
    v1::WaitForResponse resp;
    grpc::Status s =
        stub_->WaitFor(Context(std::chrono::seconds(10)).get(), req, &resp);
    Require(s.ok() && resp.job().state() == v1::JOB_STATE_SUCCEEDED &&
                resp.job().result().number_value() == 7,
            "after the input, an echo job did not run: " + Describe(s) +
                " job: " + resp.job().ShortDebugString());
  }

  int call_deadline_ms_ = 30;
  bool verbose_ = false;
  int inputs_ = 0;
  // Ids this harness took (ReserveId), oldest first; the newest job ids,
  // newest first.
  std::deque<std::uint64_t> taken_ids_;
  std::vector<std::uint64_t> recent_ids_;
  server::Durability durability_ = server::Durability::kAsync;
  std::string data_dir_;
  std::unique_ptr<server::Daemon> daemon_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Jobs::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

// Fuzzed strings are often not UTF-8, and protobuf logs each such parse
// failure (the input is then refused): those lines are dropped, the rest
// printed as protobuf would.
void ProtobufLog(google::protobuf::LogLevel level, const char* filename,
                 int line, const std::string& message) {
  if (message.find("invalid UTF-8 data") != std::string::npos) return;
  std::fprintf(stderr, "[libprotobuf %d %s:%d] %s\n", static_cast<int>(level),
               filename, line, message.c_str());
}

FuzzDaemon& Daemon() {
  static FuzzDaemon* daemon = new FuzzDaemon();
  return *daemon;
}

// The codes every RPC may answer: the API's (jobs.proto, "Errors") but
// UNAVAILABLE (the daemon is not shutting down), plus the client's own
// DEADLINE_EXCEEDED when the short call deadline passes.
bool CommonCode(StatusCode code) {
  switch (code) {
    case StatusCode::OK:
    case StatusCode::INVALID_ARGUMENT:
    case StatusCode::NOT_FOUND:
    case StatusCode::RESOURCE_EXHAUSTED:
    case StatusCode::DEADLINE_EXCEEDED:
      return true;
    default:
      return false;
  }
}

// Checks the status of a fuzzed call: a documented code (common, or one of
// `extra`), and a message for the codes that must name what was wrong.
void CheckStatus(const grpc::Status& s,
                 std::initializer_list<StatusCode> extra = {}) {
  if (Daemon().verbose()) {
    std::fprintf(stderr, "awaitd-fuzz: %s -> %s\n", g_current_rpc,
                 Describe(s).c_str());
  }
  const StatusCode code = s.error_code();
  const bool allowed = CommonCode(code) || std::find(extra.begin(), extra.end(),
                                                     code) != extra.end();
  Require(allowed, "undocumented status " + Describe(s));
  switch (code) {
    case StatusCode::INVALID_ARGUMENT:
    case StatusCode::NOT_FOUND:
    case StatusCode::RESOURCE_EXHAUSTED:
    case StatusCode::FAILED_PRECONDITION:
      Require(!s.error_message().empty(),
              std::string(CodeName(code)) + " with an empty message");
      break;
    default:
      break;
  }
}

bool Final(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

// Rewrites a request's ids through FuzzDaemon::MapId.
void MapIds(const FuzzDaemon& d,
            google::protobuf::RepeatedField<std::uint64_t>* ids) {
  for (std::uint64_t& id : *ids) id = d.MapId(id);
}
void MapIds(const FuzzDaemon& d, v1::JobInput* input) {
  if (input->has_id()) input->set_id(d.MapId(input->id()));
}
void MapIds(const FuzzDaemon& d,
            google::protobuf::RepeatedPtrField<v1::JobInput>* inputs) {
  for (v1::JobInput& in : *inputs) MapIds(d, &in);
}
void MapIds(const FuzzDaemon& d, v1::GetRequest* r) {
  MapIds(d, r->mutable_ids());
}
void MapIds(const FuzzDaemon& d, v1::CancelRequest* r) {
  MapIds(d, r->mutable_ids());
}
void MapIds(const FuzzDaemon& d, v1::WatchRequest* r) {
  MapIds(d, r->mutable_ids());
}
void MapIds(const FuzzDaemon& d, v1::WaitRequest* r) {
  MapIds(d, r->mutable_jobs());
}
void MapIds(const FuzzDaemon& d, v1::GatherRequest* r) {
  MapIds(d, r->mutable_jobs());
}
void MapIds(const FuzzDaemon& d, v1::AsCompletedRequest* r) {
  MapIds(d, r->mutable_jobs());
}
void MapIds(const FuzzDaemon& d, v1::WaitForRequest* r) {
  if (r->has_job()) MapIds(d, r->mutable_job());
}
// Requests without ids.
void MapIds(const FuzzDaemon&, google::protobuf::Message*) {}

// Parses `data` as a `Request` (the daemon's gRPC server parses with the
// same default limits), runs `call` on it, then the checks common to every
// input. Returns libFuzzer's verdict: -1 keeps an unparsable input out of
// the corpus.
template <typename Request, typename Call>
int Run(const char* rpc, const std::uint8_t* data, std::size_t size,
        Call call) {
  FuzzDaemon& daemon = Daemon();
  google::protobuf::Arena arena;
  auto* request = google::protobuf::Arena::CreateMessage<Request>(&arena);
  if (!request->ParseFromArray(data, static_cast<int>(size))) return -1;
  MapIds(daemon, request);
  g_current_rpc = rpc;
  g_current_request = request;
  call(daemon, *request);
  daemon.AfterInput();
  g_current_request = nullptr;
  return 0;
}

}  // namespace

void InitDaemon() {
  google::protobuf::SetLogHandler(&ProtobufLog);
  Daemon();
}

int FuzzSubmit(const std::uint8_t* data, std::size_t size) {
  return Run<v1::SubmitRequest>(
      "Submit", data, size, [](FuzzDaemon& d, const v1::SubmitRequest& req) {
        v1::SubmitResponse resp;
        grpc::Status s = d.stub().Submit(d.CallContext().get(), req, &resp);
        CheckStatus(s);
        if (s.ok()) {
          Require(resp.jobs_size() == req.jobs_size(),
                  "Submit answered " + std::to_string(resp.jobs_size()) +
                      " refs for " + std::to_string(req.jobs_size()) + " jobs");
          for (const v1::JobRef& ref : resp.jobs()) {
            Require(ref.id() != 0, "Submit answered job id 0");
          }
        }
      });
}

int FuzzGet(const std::uint8_t* data, std::size_t size) {
  return Run<v1::GetRequest>(
      "Get", data, size, [](FuzzDaemon& d, const v1::GetRequest& req) {
        v1::GetResponse resp;
        grpc::Status s = d.stub().Get(d.CallContext().get(), req, &resp);
        CheckStatus(s);
        if (s.ok()) {
          Require(resp.jobs_size() == req.ids_size(),
                  "Get answered " + std::to_string(resp.jobs_size()) +
                      " jobs for " + std::to_string(req.ids_size()) + " ids");
          for (int i = 0; i < req.ids_size(); ++i) {
            Require(resp.jobs(i).id() == req.ids(i),
                    "Get answered jobs out of request order");
          }
        }
      });
}

int FuzzCancel(const std::uint8_t* data, std::size_t size) {
  return Run<v1::CancelRequest>(
      "Cancel", data, size, [](FuzzDaemon& d, const v1::CancelRequest& req) {
        v1::CancelResponse resp;
        grpc::Status s = d.stub().Cancel(d.CallContext().get(), req, &resp);
        CheckStatus(s);
        if (s.ok()) {
          Require(resp.results_size() == req.ids_size(),
                  "Cancel answered " + std::to_string(resp.results_size()) +
                      " results for " + std::to_string(req.ids_size()) +
                      " ids");
        }
      });
}

int FuzzWait(const std::uint8_t* data, std::size_t size) {
  return Run<v1::WaitRequest>(
      "Wait", data, size, [](FuzzDaemon& d, const v1::WaitRequest& req) {
        v1::WaitResponse resp;
        grpc::Status s = d.stub().Wait(d.CallContext().get(), req, &resp);
        CheckStatus(s);
        if (s.ok()) {
          // Duplicates are kept once: at most one id per input.
          Require(resp.done_size() + resp.pending_size() <= req.jobs_size() &&
                      resp.done_size() + resp.pending_size() > 0,
                  "Wait answered " + std::to_string(resp.done_size()) +
                      " done and " + std::to_string(resp.pending_size()) +
                      " pending for " + std::to_string(req.jobs_size()) +
                      " inputs");
        }
      });
}

int FuzzGather(const std::uint8_t* data, std::size_t size) {
  return Run<v1::GatherRequest>(
      "Gather", data, size, [](FuzzDaemon& d, const v1::GatherRequest& req) {
        v1::GatherResponse resp;
        grpc::Status s = d.stub().Gather(d.CallContext().get(), req, &resp);
        // ABORTED / CANCELLED: a child failed or was cancelled.
        CheckStatus(s, {StatusCode::ABORTED, StatusCode::CANCELLED});
        if (s.ok()) {
          Require(resp.group_id() != 0, "Gather answered group id 0");
          Require(resp.results_size() == req.jobs_size(),
                  "Gather answered " + std::to_string(resp.results_size()) +
                      " results for " + std::to_string(req.jobs_size()) +
                      " inputs");
          for (const v1::Job& j : resp.results()) {
            Require(Final(j.state()),
                    "Gather answered a job not done: " + j.ShortDebugString());
          }
        }
      });
}

int FuzzWaitFor(const std::uint8_t* data, std::size_t size) {
  return Run<v1::WaitForRequest>(
      "WaitFor", data, size, [](FuzzDaemon& d, const v1::WaitForRequest& req) {
        v1::WaitForResponse resp;
        grpc::Status s = d.stub().WaitFor(d.CallContext().get(), req, &resp);
        CheckStatus(s, {StatusCode::ABORTED, StatusCode::CANCELLED});
        if (s.ok()) {
          Require(resp.job().state() == v1::JOB_STATE_SUCCEEDED,
                  "WaitFor answered OK with a job that did not succeed: " +
                      resp.job().ShortDebugString());
        }
      });
}

int FuzzAsCompleted(const std::uint8_t* data, std::size_t size) {
  return Run<v1::AsCompletedRequest>(
      "AsCompleted", data, size,
      [](FuzzDaemon& d, const v1::AsCompletedRequest& req) {
        auto ctx = d.CallContext();
        auto reader = d.stub().AsCompleted(ctx.get(), req);
        v1::AsCompletedResponse msg;
        int messages = 0;
        std::size_t inputs = 0;
        while (reader->Read(&msg)) {
          if (messages++ == 0) {
            inputs = static_cast<std::size_t>(msg.ids_size());
            Require(msg.ids_size() == req.jobs_size(),
                    "AsCompleted's first message has " +
                        std::to_string(msg.ids_size()) + " ids for " +
                        std::to_string(req.jobs_size()) + " inputs");
          } else {
            Require(msg.index() < inputs && Final(msg.job().state()),
                    "AsCompleted sent " + msg.ShortDebugString());
          }
        }
        grpc::Status s = reader->Finish();
        CheckStatus(s);
        if (s.ok()) {
          Require(static_cast<std::size_t>(messages) == inputs + 1,
                  "AsCompleted ended OK after " + std::to_string(messages) +
                      " messages for " + std::to_string(inputs) + " inputs");
        }
      });
}

int FuzzRunGroup(const std::uint8_t* data, std::size_t size) {
  return Run<v1::RunGroupRequest>(
      "RunGroup", data, size,
      [](FuzzDaemon& d, const v1::RunGroupRequest& req) {
        v1::RunGroupResponse resp;
        grpc::Status s = d.stub().RunGroup(d.CallContext().get(), req, &resp);
        CheckStatus(s, {StatusCode::ABORTED, StatusCode::CANCELLED});
        if (s.ok()) {
          Require(resp.results_size() == req.jobs_size(),
                  "RunGroup answered " + std::to_string(resp.results_size()) +
                      " results for " + std::to_string(req.jobs_size()) +
                      " jobs");
          for (const v1::Job& j : resp.results()) {
            Require(j.state() == v1::JOB_STATE_SUCCEEDED,
                    "RunGroup answered OK with a job that did not succeed: " +
                        j.ShortDebugString());
          }
        }
      });
}

int FuzzWatch(const std::uint8_t* data, std::size_t size) {
  return Run<v1::WatchRequest>(
      "Watch", data, size, [](FuzzDaemon& d, const v1::WatchRequest& req) {
        auto ctx = d.CallContext();
        auto reader = d.stub().Watch(ctx.get(), req);
        v1::WatchResponse msg;
        while (reader->Read(&msg)) {
          Require(
              msg.state() != v1::JOB_STATE_UNSPECIFIED,
              "Watch sent an event without a state: " + msg.ShortDebugString());
        }
        CheckStatus(reader->Finish());
      });
}

int FuzzList(const std::uint8_t* data, std::size_t size) {
  return Run<v1::ListRequest>(
      "List", data, size, [](FuzzDaemon& d, const v1::ListRequest& req) {
        v1::ListResponse resp;
        grpc::Status s = d.stub().List(d.CallContext().get(), req, &resp);
        CheckStatus(s);
        if (s.ok()) {
          const int page_size = req.page_size() == 0 ? 100 : req.page_size();
          Require(resp.jobs_size() <= page_size,
                  "List answered " + std::to_string(resp.jobs_size()) +
                      " jobs for page_size " + std::to_string(page_size));
          for (int i = 1; i < resp.jobs_size(); ++i) {
            Require(resp.jobs(i - 1).id() < resp.jobs(i).id(),
                    "List answered ids out of order");
          }
        }
      });
}

int FuzzDeclareLimit(const std::uint8_t* data, std::size_t size) {
  return Run<v1::DeclareLimitRequest>(
      "DeclareLimit", data, size,
      [](FuzzDaemon& d, const v1::DeclareLimitRequest& req) {
        v1::DeclareLimitResponse resp;
        grpc::Status s =
            d.stub().DeclareLimit(d.CallContext().get(), req, &resp);
        // FAILED_PRECONDITION: the name exists with another size.
        CheckStatus(s, {StatusCode::FAILED_PRECONDITION});
        if (s.ok()) {
          Require(resp.limit().name() == req.name() &&
                      resp.limit().permits() == req.permits(),
                  "DeclareLimit answered " + resp.ShortDebugString());
        }
      });
}

int FuzzListLimitsAndKinds(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool kinds = (data[0] & 1) != 0;
  ++data;
  --size;
  if (kinds) {
    return Run<v1::ListKindsRequest>(
        "ListKinds", data, size,
        [](FuzzDaemon& d, const v1::ListKindsRequest& req) {
          v1::ListKindsResponse resp;
          grpc::Status s =
              d.stub().ListKinds(d.CallContext().get(), req, &resp);
          CheckStatus(s);
          if (s.ok()) Require(resp.kinds_size() > 0, "ListKinds: no kinds");
        });
  }
  return Run<v1::ListLimitsRequest>(
      "ListLimits", data, size,
      [](FuzzDaemon& d, const v1::ListLimitsRequest& req) {
        v1::ListLimitsResponse resp;
        grpc::Status s = d.stub().ListLimits(d.CallContext().get(), req, &resp);
        CheckStatus(s);
      });
}

}  // namespace awaitd::fuzz
