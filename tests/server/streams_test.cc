// Streams and the gRPC transport under hostile clients: caps on open streams
// (per connection and in total), the Watch backlog's slow-reader drop, the
// HTTP/2 max-concurrent-streams setting, and the keepalive arguments.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "awaitd/v1/jobs.grpc.pb.h"
#include "tests/server/daemon_fixture.h"
#include "tests/server/rpc_test_util.h"
#include "tests/support/process.h"

namespace awaitd::server::testing {
namespace {

using ::awaitd::testing::Output;
using ::awaitd::testing::Process;
using ::awaitd::testing::ProcessResult;
using ::awaitd::testing::RunProcess;
using ::testing::HasSubstr;

// Polls `pred` (about every millisecond) until it holds or `timeout_s` passed;
// returns its last value.
bool Eventually(const std::function<bool()>& pred, double timeout_s = 20) {
  const auto end = std::chrono::steady_clock::now() +
                   std::chrono::milliseconds(static_cast<int>(timeout_s * 1e3));
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// A Watch stream the test opens and never reads (until it says so).
class UnreadWatch {
 public:
  UnreadWatch(v1::Jobs::Stub* stub, v1::WatchRequest req = {}) {
    ctx_.set_deadline(std::chrono::system_clock::now() +
                      std::chrono::seconds(60));
    reader_ = stub->Watch(&ctx_, req);
  }
  ~UnreadWatch() {
    if (!finished_) {
      ctx_.TryCancel();
      Finish();
    }
  }
  // A Watch over every job sends its initial metadata once subscribed.
  void AwaitSubscribed() { reader_->WaitForInitialMetadata(); }
  // Reads every message left, then the status.
  grpc::Status Finish() {
    v1::WatchResponse r;
    while (reader_->Read(&r)) ++read_;
    finished_ = true;
    return reader_->Finish();
  }
  int read() const { return read_; }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::WatchResponse>> reader_;
  bool finished_ = false;
  int read_ = 0;
};

class StreamsTest : public DaemonTest {
 protected:
  StreamsTest() { start_in_setup_ = false; }

  // A channel with a connection of its own (channels with equal arguments
  // otherwise share one).
  std::unique_ptr<v1::Jobs::Stub> NewConnection(
      grpc::ChannelArguments args = {}) {
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channels_.push_back(grpc::CreateCustomChannel(
        daemon_->address(), grpc::InsecureChannelCredentials(), args));
    return v1::Jobs::NewStub(channels_.back());
  }

  JobsService::StreamStats Stats() const {
    return daemon_->service().stream_stats();
  }

  bool OpenStreamsAre(std::size_t n) {
    return Eventually([&] { return Stats().open == n; });
  }

  std::vector<std::shared_ptr<grpc::Channel>> channels_;
};

TEST_F(StreamsTest, StreamsPerConnectionCapRefusesOneMoreOnThatConnection) {
  DaemonOptions o = DefaultOptions();
  o.service.max_streams_per_connection = 3;
  StartDaemon(std::move(o));
  auto conn = NewConnection();
  std::vector<std::unique_ptr<UnreadWatch>> open;
  for (int i = 0; i < 3; ++i) {
    open.push_back(std::make_unique<UnreadWatch>(conn.get()));
    open.back()->AwaitSubscribed();
  }
  ASSERT_TRUE(OpenStreamsAre(3));

  UnreadWatch fourth(conn.get());
  grpc::Status s = fourth.Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(),
              HasSubstr("3 Watch and AsCompleted streams are open on this "
                        "connection"));
  EXPECT_THAT(s.error_message(), HasSubstr("--max_streams_per_connection=3"));

  // AsCompleted counts too.
  v1::AsCompletedRequest ac;
  grpc::ClientContext ctx;
  auto reader = conn->AsCompleted(&ctx, ac);
  v1::AsCompletedResponse r;
  while (reader->Read(&r)) {
  }
  EXPECT_EQ(reader->Finish().error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);

  // Another connection is not affected.
  auto other = NewConnection();
  UnreadWatch elsewhere(other.get());
  elsewhere.AwaitSubscribed();
  EXPECT_TRUE(OpenStreamsAre(4));

  // One stream ended: the connection may open one again.
  open.pop_back();
  ASSERT_TRUE(OpenStreamsAre(3));
  UnreadWatch again(conn.get());
  again.AwaitSubscribed();
  EXPECT_TRUE(OpenStreamsAre(4));
}

TEST_F(StreamsTest, TotalStreamCapRefusesOneMoreFromAnyConnection) {
  DaemonOptions o = DefaultOptions();
  o.service.max_streams = 2;
  StartDaemon(std::move(o));
  auto a = NewConnection();
  auto b = NewConnection();
  auto c = NewConnection();
  UnreadWatch wa(a.get());
  wa.AwaitSubscribed();
  UnreadWatch wb(b.get());
  wb.AwaitSubscribed();
  ASSERT_TRUE(OpenStreamsAre(2));

  UnreadWatch third(c.get());
  grpc::Status s = third.Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(),
              HasSubstr("2 Watch and AsCompleted streams are open, the most "
                        "--max_streams=2 allows"));
  EXPECT_EQ(Stats().open, 2u);
}

// A client that opens a Watch over every job and reads nothing while jobs
// keep finishing: the daemon drops the stream (RESOURCE_EXHAUSTED after the
// messages already on their way), frees its queued events at once, and the
// jobs go on.
TEST_F(StreamsTest, SlowWatchReaderIsDroppedItsEventsFreedAndJobsGoOn) {
  DaemonOptions o = DefaultOptions();
  o.service.max_watch_backlog = 32;
  o.metrics_listen = "127.0.0.1:0";
  StartDaemon(std::move(o));
  // On a connection of its own (the jobs' calls below use another), with a
  // small flow-control window that does not grow.
  grpc::ChannelArguments small_window;
  small_window.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  small_window.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 4096);
  auto conn = NewConnection(small_window);
  UnreadWatch slow(conn.get());
  slow.AwaitSubscribed();

  // Batches of 8 jobs (at most 24 events, fewer than the backlog), each
  // waited for. First until the stream's writer stops taking events: it
  // waits for a write the client never takes (the window is full; long
  // names fill it sooner). Then until the backlog overflows: the writer is
  // woken from that write, frees the events and ends the stream.
  v1::JobSpec spec = Spec("echo", R"({"value": 1})");
  spec.set_name(std::string(200, 'n'));
  constexpr int kBatch = 8;
  int batches = 0;
  bool stalled = false;
  for (; batches < 5000 && Stats().dropped_slow == 0; ++batches) {
    if (!stalled) {
      stalled = !Eventually([&] { return Stats().backlog_events == 0; }, 1);
    }
    v1::SubmitRequest req;
    for (int i = 0; i < kBatch; ++i) *req.add_jobs() = spec;
    v1::SubmitResponse resp;
    ASSERT_TRUE(stub_->Submit(Ctx().get(), req, &resp).ok());
    // The job path goes on: every job of the batch finishes.
    v1::WaitRequest wait;
    for (const v1::JobRef& j : resp.jobs()) *wait.add_jobs() = Input(j.id());
    v1::WaitResponse waited;
    grpc::Status s = stub_->Wait(Ctx(10).get(), wait, &waited);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(waited.done_size(), kBatch);
    if (!stalled) {
      ASSERT_EQ(Stats().dropped_slow, 0u) << "before the stall";
    }
  }
  ASSERT_TRUE(Eventually([&] { return Stats().dropped_slow == 1; }))
      << "no drop after " << batches << " batches of " << kBatch << " jobs";
  // Its queued events were freed (not kept for a reader that may come).
  EXPECT_TRUE(Eventually([&] { return Stats().backlog_events == 0; }));

  // Jobs still finish after the drop.
  EXPECT_EQ(WaitForOk(SubmitOk({Spec("echo", R"({"value": 2})")})[0]).state(),
            v1::JOB_STATE_SUCCEEDED);

  // The reader finally reads: what was already sent, then the status.
  grpc::Status s = slow.Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("fell more than 32 events behind"));
  EXPECT_THAT(s.error_message(), HasSubstr("--max_watch_backlog"));
  EXPECT_LT(slow.read(), batches * kBatch * 3);  // not every event was kept
  EXPECT_TRUE(OpenStreamsAre(0));
  // Operators see it too.
  const std::string metrics = daemon_->metrics()->Render();
  EXPECT_THAT(metrics, HasSubstr("awaitd_streams_dropped_slow_total 1"));
  EXPECT_THAT(metrics, HasSubstr("awaitd_watch_backlog_events 0"));
  EXPECT_THAT(metrics, HasSubstr("awaitd_streams_open 0"));
}

// A reader that keeps up is never dropped, and the backlog drains.
TEST_F(StreamsTest, WatchReaderThatKeepsUpIsNotDropped) {
  DaemonOptions o = DefaultOptions();
  o.service.max_watch_backlog = 1024;
  StartDaemon(std::move(o));
  grpc::ClientContext ctx;
  auto reader = stub_->Watch(&ctx, v1::WatchRequest());
  reader->WaitForInitialMetadata();
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 50; ++i)
    ids.push_back(SubmitOk({Spec("echo", R"({"value": 1})")})[0]);
  // Every job's SUCCEEDED arrives.
  std::size_t succeeded = 0;
  v1::WatchResponse r;
  while (succeeded < ids.size() && reader->Read(&r)) {
    if (r.state() == v1::JOB_STATE_SUCCEEDED) ++succeeded;
  }
  EXPECT_EQ(succeeded, ids.size());
  EXPECT_EQ(Stats().dropped_slow, 0u);
  EXPECT_TRUE(Eventually([&] { return Stats().backlog_events == 0; }));
  ctx.TryCancel();
  while (reader->Read(&r)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

// AsCompleted keeps no message queue: a client that reads nothing does not
// hold up the jobs, and the stream stays open (it is not behind: the
// messages are built as they are sent).
TEST_F(StreamsTest, AsCompletedNonReaderDoesNotHoldUpJobs) {
  DaemonOptions o = DefaultOptions();
  o.service.max_watch_backlog = 8;
  StartDaemon(std::move(o));
  v1::SubmitRequest req;
  v1::JobSpec spec = Spec("sleep", R"({"seconds": 0.2, "result": "r"})");
  spec.set_name(std::string(200, 'n'));
  for (int i = 0; i < 2000; ++i) *req.add_jobs() = spec;
  v1::SubmitResponse resp;
  ASSERT_TRUE(stub_->Submit(Ctx().get(), req, &resp).ok());
  v1::AsCompletedRequest ac;
  v1::WaitRequest wait;
  for (const v1::JobRef& j : resp.jobs()) {
    *ac.add_jobs() = Input(j.id());
    *wait.add_jobs() = Input(j.id());
  }
  grpc::ClientContext ctx;
  auto reader = stub_->AsCompleted(&ctx, ac);
  ASSERT_TRUE(OpenStreamsAre(1));
  v1::WaitResponse waited;
  grpc::Status s = stub_->Wait(Ctx(20).get(), wait, &waited);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(waited.done_size(), 2000);
  EXPECT_EQ(Stats().dropped_slow, 0u);
  // Read late: every job arrives once (the ids first).
  std::size_t results = 0;
  v1::AsCompletedResponse r;
  while (reader->Read(&r)) {
    if (r.has_job()) ++results;
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(results, 2000u);
}

// --max_concurrent_streams reaches the transport: with 2, a third call on
// the same connection waits (queued by the client) until one ends.
TEST_F(StreamsTest, MaxConcurrentStreamsQueuesExtraCallsOnAConnection) {
  DaemonOptions o = DefaultOptions();
  o.max_concurrent_streams = 2;
  StartDaemon(std::move(o));
  auto conn = NewConnection();
  auto first = std::make_unique<UnreadWatch>(conn.get());
  first->AwaitSubscribed();
  UnreadWatch second(conn.get());
  second.AwaitSubscribed();

  v1::ListKindsRequest req;
  InFlight<v1::ListKindsResponse> third;
  conn->async()->ListKinds(third.ctx(), &req, third.response(), &third);
  third.StartCall();
  // Not answered while both streams are open (the wait is generous: a
  // daemon that answered would do so in a millisecond).
  EXPECT_FALSE(third.Done(1.0));
  // Another connection is served meanwhile.
  v1::ListKindsResponse kinds;
  EXPECT_TRUE(stub_->ListKinds(Ctx().get(), req, &kinds).ok());

  first.reset();  // cancels: a stream slot frees
  grpc::Status s = third.Await();
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_GT(third.response()->kinds_size(), 0);
}

TEST(GrpcServerArgsTest, CarryKeepaliveAndConcurrencySettings) {
  DaemonOptions o;
  o.max_concurrent_streams = 77;
  o.keepalive_time = absl::Seconds(45);
  o.keepalive_timeout = absl::Seconds(7);
  std::map<std::string, int> args;
  for (const auto& [name, value] : GrpcServerArgs(o)) args[name] = value;
  EXPECT_EQ(args[GRPC_ARG_MAX_CONCURRENT_STREAMS], 77);
  EXPECT_EQ(args[GRPC_ARG_KEEPALIVE_TIME_MS], 45'000);
  EXPECT_EQ(args[GRPC_ARG_KEEPALIVE_TIMEOUT_MS], 7'000);
  EXPECT_EQ(args[GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS], 1);
  EXPECT_EQ(args[GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS],
            10'000);
  EXPECT_EQ(args[GRPC_ARG_MAX_CONNECTION_IDLE_MS], 3'600'000);
}

// The flags, through the awaitd binary: a bad value is refused naming the
// flag, and --max_streams_per_connection reaches the service.
TEST(StreamFlagsTest, BadValuesAreRefusedNamingTheFlag) {
  const std::string awaitd = AwaitdBinaryPath();
  ASSERT_TRUE(std::filesystem::exists(awaitd)) << awaitd;
  for (const std::string flag :
       {"--max_streams_per_connection=0", "--max_watch_backlog=-1",
        "--max_concurrent_streams=0", "--keepalive_time=0s",
        "--grpc_memory_bytes=0"}) {
    // The timeout: a daemon that accepted the value would serve forever.
    const ProcessResult r = RunProcess({
        .argv = {awaitd, "--listen=127.0.0.1:0", "--durability=none",
                 "--metrics_listen=", flag},
        .timeout = std::chrono::seconds(20),
        .stderr_to = Output::Stdout(),
    });
    const std::string& out = r.out;
    EXPECT_NE(r.exit_code, 0) << flag;
    EXPECT_THAT(out, HasSubstr(flag.substr(0, flag.find('=')))) << out;
  }
}

TEST(StreamFlagsTest, MaxStreamsPerConnectionFlagReachesTheService) {
  const std::string awaitd = AwaitdBinaryPath();
  ASSERT_TRUE(std::filesystem::exists(awaitd)) << awaitd;
  const std::string port_file =
      (std::filesystem::temp_directory_path() /
       ("awaitd_streams_port_" + std::to_string(getpid())))
          .string();
  std::filesystem::remove(port_file);
  // Killed and reaped at the end of the test.
  Process daemon({
      .argv = {awaitd, "--listen=127.0.0.1:0", "--port_file=" + port_file,
               "--metrics_listen=", "--durability=none", "--workers=1",
               "--log_level=warning", "--max_streams_per_connection=1"},
      .stdout_to = Output::Inherit(),
      .stderr_to = Output::Inherit(),
  });
  ASSERT_TRUE(daemon.started()) << daemon.error();
  std::string address;
  for (int i = 0; i < 4000 && address.empty(); ++i) {
    std::ifstream in(port_file);
    std::getline(in, address);
    if (address.empty())
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_FALSE(address.empty()) << "no port file";
  std::filesystem::remove(port_file);
  auto stub = v1::Jobs::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  UnreadWatch first(stub.get());
  first.AwaitSubscribed();
  UnreadWatch second(stub.get());
  grpc::Status s = second.Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("--max_streams_per_connection=1"));
}

}  // namespace
}  // namespace awaitd::server::testing
