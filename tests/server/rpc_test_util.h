// Client-side helpers for tests/server that drive a real daemon over a real
// channel: timestamps as seconds, state names, a unary call kept in flight
// (to read its initial metadata and act while it waits), a server stream
// read on its own thread, a poller of a limit's holders, and a fixture that
// cancels what a test left running (so teardown does not wait out the
// shutdown grace).
//
// Thread safety: InFlight, StreamCollector and LimitPoller are used from the
// test's thread; their callbacks and reader threads synchronize internally.
#ifndef AWAITD_TESTS_SERVER_RPC_TEST_UTIL_H_
#define AWAITD_TESTS_SERVER_RPC_TEST_UTIL_H_

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "awaitd/v1/jobs.grpc.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "tests/server/daemon_fixture.h"

namespace awaitd::server::testing {

// A timestamp as seconds since the epoch (0 if unset).
inline double Secs(const google::protobuf::Timestamp& t) {
  return static_cast<double>(t.seconds()) + t.nanos() * 1e-9;
}

// The wall clock the daemon stamps jobs with (absl::Now), in seconds.
inline double WallNow() {
  return std::chrono::duration<double>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline google::protobuf::Timestamp TimestampAt(double secs) {
  google::protobuf::Timestamp t;
  t.set_seconds(static_cast<std::int64_t>(secs));
  t.set_nanos(static_cast<std::int32_t>(
      (secs - static_cast<double>(t.seconds())) * 1e9));
  return t;
}

// "SUCCEEDED" for JOB_STATE_SUCCEEDED: failures print a name, not a number.
inline std::string StateName(v1::JobState s) {
  std::string n = v1::JobState_Name(s);
  constexpr std::string_view kPrefix = "JOB_STATE_";
  if (n.rfind(kPrefix, 0) == 0) n.erase(0, kPrefix.size());
  return n;
}

inline std::string CodeName(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    default:
      return "code " + std::to_string(static_cast<int>(c));
  }
}

// The group id a finished Gather / RunGroup call got as initial metadata
// "awaitd-group-id" (0 if none).
inline std::uint64_t GroupIdOf(const grpc::ClientContext& ctx) {
  const auto& md = ctx.GetServerInitialMetadata();
  auto it = md.find("awaitd-group-id");
  if (it == md.end()) return 0;
  return std::stoull(std::string(it->second.data(), it->second.size()));
}

// Seconds elapsed since construction (steady clock).
class Stopwatch {
 public:
  double Elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start_)
        .count();
  }

 private:
  std::chrono::steady_clock::time_point start_ =
      std::chrono::steady_clock::now();
};

// A unary call made through the callback API and left in flight:
//
//   v1::GatherRequest req = ...;           // must outlive the call
//   InFlight<v1::GatherResponse> call;
//   stub_->async()->Gather(call.ctx(), &req, call.response(), &call);
//   call.StartCall();
//   std::uint64_t group = call.MetadataId("awaitd-group-id");
//   ...
//   grpc::Status s = call.Await();
//
// The destructor cancels a call still in flight and waits for it to end.
template <typename Response>
class InFlight : public grpc::ClientUnaryReactor {
 public:
  explicit InFlight(double deadline_s = 30) {
    ctx_.set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::milliseconds(static_cast<int>(deadline_s * 1000)));
  }
  ~InFlight() override {
    ctx_.TryCancel();
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return done_; });
  }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

  grpc::ClientContext* ctx() { return &ctx_; }
  Response* response() { return &response_; }

  // The initial metadata value `key` parsed as an id, once the metadata
  // arrived (0 if it did not within `timeout_s`, or lacks the key).
  std::uint64_t MetadataId(const std::string& key, double timeout_s = 10) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, Dur(timeout_s), [&] { return md_ready_; })) {
      return 0;
    }
    if (!md_ok_) return 0;
    const auto& md = ctx_.GetServerInitialMetadata();
    auto it = md.find(key);
    if (it == md.end()) return 0;
    return std::stoull(std::string(it->second.data(), it->second.size()));
  }

  // Whether the call ended within `timeout_s`.
  bool Done(double timeout_s = 0) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, Dur(timeout_s), [&] { return done_; });
  }

  // Waits for the call to end (at most its deadline) and returns its status.
  grpc::Status Await() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return done_; });
    return status_;
  }

  void OnReadInitialMetadataDone(bool ok) override {
    std::lock_guard lock(mu_);
    md_ready_ = true;
    md_ok_ = ok;
    cv_.notify_all();
  }
  void OnDone(const grpc::Status& s) override {
    std::lock_guard lock(mu_);
    status_ = s;
    md_ready_ = true;
    done_ = true;
    cv_.notify_all();
  }

 private:
  static std::chrono::milliseconds Dur(double s) {
    return std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000));
  }

  grpc::ClientContext ctx_;
  Response response_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool md_ready_ = false;
  bool md_ok_ = false;
  bool done_ = false;
  grpc::Status status_;
};

// Reads a server stream on its own thread, keeping every message:
//
//   StreamCollector<v1::WatchResponse> watch(
//       [&](grpc::ClientContext* c) { return stub_->Watch(c, req); });
//   watch.WaitUntil([](const auto& msgs) { return msgs.size() >= 3; });
//
// The destructor cancels the stream if it is still open.
template <typename Response>
class StreamCollector {
 public:
  using Messages = std::vector<Response>;
  using Opener = std::function<std::unique_ptr<grpc::ClientReader<Response>>(
      grpc::ClientContext*)>;

  explicit StreamCollector(const Opener& open, double deadline_s = 30) {
    ctx_.set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::milliseconds(static_cast<int>(deadline_s * 1000)));
    reader_ = open(&ctx_);
    thread_ = std::thread([this] {
      Response r;
      while (reader_->Read(&r)) {
        std::lock_guard lock(mu_);
        messages_.push_back(r);
        cv_.notify_all();
      }
      grpc::Status s = reader_->Finish();
      std::lock_guard lock(mu_);
      status_ = s;
      done_ = true;
      cv_.notify_all();
    });
  }
  ~StreamCollector() {
    ctx_.TryCancel();
    thread_.join();
  }
  StreamCollector(const StreamCollector&) = delete;
  StreamCollector& operator=(const StreamCollector&) = delete;

  // Waits until `pred(messages)` holds or the stream ended; returns pred's
  // last value.
  bool WaitUntil(const std::function<bool(const Messages&)>& pred,
                 double timeout_s = 10) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock,
                 std::chrono::milliseconds(static_cast<int>(timeout_s * 1000)),
                 [&] { return pred(messages_) || done_; });
    return pred(messages_);
  }
  // Whether the stream ended within `timeout_s`.
  bool WaitDone(double timeout_s = 10) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(
        lock, std::chrono::milliseconds(static_cast<int>(timeout_s * 1000)),
        [&] { return done_; });
  }
  Messages messages() {
    std::lock_guard lock(mu_);
    return messages_;
  }
  grpc::Status status() {
    std::lock_guard lock(mu_);
    return status_;
  }
  bool done() {
    std::lock_guard lock(mu_);
    return done_;
  }
  void Cancel() { ctx_.TryCancel(); }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<Response>> reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  Messages messages_;
  grpc::Status status_;
  bool done_ = false;
  std::thread thread_;
};

// Polls ListLimits on its own thread (about every millisecond) and records
// the most holders and waiters seen for one limit.
class LimitPoller {
 public:
  LimitPoller(v1::Jobs::Stub* stub, std::string name)
      : stub_(stub), name_(std::move(name)) {
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
        v1::ListLimitsResponse resp;
        if (stub_->ListLimits(&ctx, v1::ListLimitsRequest(), &resp).ok()) {
          for (const v1::Limit& l : resp.limits()) {
            if (l.name() != name_) continue;
            std::lock_guard lock(mu_);
            max_holders_ = std::max(max_holders_, l.holders());
            max_waiters_ = std::max(max_waiters_, l.waiters());
            ++polls_;
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  }
  ~LimitPoller() { Stop(); }
  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  std::uint32_t max_holders() {
    std::lock_guard lock(mu_);
    return max_holders_;
  }
  std::uint32_t max_waiters() {
    std::lock_guard lock(mu_);
    return max_waiters_;
  }
  int polls() {
    std::lock_guard lock(mu_);
    return polls_;
  }

 private:
  v1::Jobs::Stub* const stub_;
  const std::string name_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::uint32_t max_holders_ = 0;
  std::uint32_t max_waiters_ = 0;
  int polls_ = 0;
  std::thread thread_;
};

// DaemonTest plus RPC conveniences; its TearDown cancels every job a test
// left unfinished (a long sleep kept running on purpose), so the daemon's
// shutdown does not wait out its grace period for them.
class RpcTest : public DaemonTest {
 protected:
  void TearDown() override {
    if (stub_ != nullptr) CancelLeftovers();
    DaemonTest::TearDown();
  }

  void CancelLeftovers() {
    std::vector<std::uint64_t> ids;
    for (v1::JobState s : {v1::JOB_STATE_PENDING, v1::JOB_STATE_RUNNING}) {
      for (const v1::Job& j : ListAll(s)) ids.push_back(j.id());
    }
    if (ids.empty()) return;
    v1::CancelRequest req;
    for (std::uint64_t id : ids) req.add_ids(id);
    req.set_message("test teardown");
    v1::CancelResponse resp;
    stub_->Cancel(Ctx().get(), req, &resp);
  }

  // Every job (with the state filter), following next_page_token.
  std::vector<v1::Job> ListAll(v1::JobState state = v1::JOB_STATE_UNSPECIFIED,
                               const std::string& kind = "",
                               const std::string& name_prefix = "",
                               int page_size = 0) {
    std::vector<v1::Job> out;
    std::string token;
    for (int page = 0; page < 10'000; ++page) {
      v1::ListRequest req;
      req.set_state(state);
      req.set_kind(kind);
      req.set_name_prefix(name_prefix);
      req.set_page_size(page_size);
      req.set_page_token(token);
      v1::ListResponse resp;
      grpc::Status s = stub_->List(Ctx().get(), req, &resp);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok()) break;
      for (const v1::Job& j : resp.jobs()) out.push_back(j);
      token = resp.next_page_token();
      if (token.empty()) break;
    }
    return out;
  }

  // Get of several ids, in order.
  std::vector<v1::Job> GetAll(const std::vector<std::uint64_t>& ids) {
    v1::GetRequest req;
    for (std::uint64_t id : ids) req.add_ids(id);
    v1::GetResponse resp;
    grpc::Status s = stub_->Get(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {resp.jobs().begin(), resp.jobs().end()};
  }

  v1::CancelResult CancelOne(std::uint64_t id, const std::string& msg = "") {
    v1::CancelRequest req;
    req.add_ids(id);
    req.set_message(msg);
    v1::CancelResponse resp;
    grpc::Status s = stub_->Cancel(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.results_size() == 1 ? resp.results(0) : v1::CancelResult();
  }

  // Waits (server side) until every job is done.
  void AwaitAll(const std::vector<std::uint64_t>& ids, double timeout_s = 20) {
    v1::WaitRequest req;
    for (std::uint64_t id : ids) *req.add_jobs() = Input(id);
    v1::WaitResponse resp;
    grpc::Status s = stub_->Wait(Ctx(timeout_s).get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.pending_size(), 0);
  }

  // Polls Get until the job reaches `state` (or any later one); returns the
  // last snapshot. For states no server-side wait reports (RUNNING).
  v1::Job AwaitState(std::uint64_t id, v1::JobState state,
                     double timeout_s = 10) {
    Stopwatch sw;
    v1::Job j = GetOk(id);
    while (j.state() < state && sw.Elapsed() < timeout_s) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      j = GetOk(id);
    }
    return j;
  }

  v1::Limit GetLimit(const std::string& name) {
    v1::ListLimitsResponse resp;
    grpc::Status s =
        stub_->ListLimits(Ctx().get(), v1::ListLimitsRequest(), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    for (const v1::Limit& l : resp.limits()) {
      if (l.name() == name) return l;
    }
    ADD_FAILURE() << "no limit named " << name;
    return v1::Limit();
  }
};

}  // namespace awaitd::server::testing

#endif  // AWAITD_TESTS_SERVER_RPC_TEST_UTIL_H_
