// A real daemon on port 0 and a real channel to it, for tests/server.
//
//   class MyTest : public DaemonTest {};
//   TEST_F(MyTest, Echo) {
//     auto ids = SubmitOk({Spec("echo", R"({"value": 3})")});
//     v1::Job j = WaitForOk(ids[0]);
//   }
//
// Options() gives the defaults a test may change before StartDaemon() (the
// fixture starts one in SetUp unless the test sets start_in_setup_ = false).
#ifndef AWAITD_TESTS_SERVER_DAEMON_FIXTURE_H_
#define AWAITD_TESTS_SERVER_DAEMON_FIXTURE_H_

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "awaitd/v1/jobs.grpc.pb.h"
#include "google/protobuf/util/json_util.h"
#include "server/daemon/daemon.h"

namespace awaitd::server::testing {

// A JobSpec of `kind` with args parsed from JSON (a JSON object).
inline v1::JobSpec Spec(const std::string& kind,
                        const std::string& args_json = "{}") {
  v1::JobSpec s;
  s.set_kind(kind);
  auto st =
      google::protobuf::util::JsonStringToMessage(args_json, s.mutable_args());
  EXPECT_TRUE(st.ok()) << "bad test args JSON: " << args_json;
  return s;
}

inline v1::JobInput Input(std::uint64_t id) {
  v1::JobInput in;
  in.set_id(id);
  return in;
}
inline v1::JobInput Input(const v1::JobSpec& spec) {
  v1::JobInput in;
  *in.mutable_spec() = spec;
  return in;
}

inline google::protobuf::Duration Seconds(double s) {
  google::protobuf::Duration d;
  d.set_seconds(static_cast<std::int64_t>(s));
  d.set_nanos(
      static_cast<std::int32_t>((s - static_cast<double>(d.seconds())) * 1e9));
  return d;
}

// The ErrorDetails carried by a failed call (empty if none).
inline v1::ErrorDetails Details(const grpc::Status& s) {
  v1::ErrorDetails d;
  if (!s.error_details().empty()) d.ParseFromString(s.error_details());
  return d;
}

// A new empty directory under the test temp dir, named after `prefix`, this
// process and `name` (a test's data directory).
inline std::string FreshDir(const std::string& prefix,
                            const std::string& name) {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) /
      (prefix + "_" + std::to_string(getpid()) + "_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// The awaitd binary of this build, for tests that run it as a process:
// <build>/tests/server/server_tests -> <build>/server/awaitd.
inline std::string AwaitdBinaryPath() {
  std::error_code ec;
  const std::filesystem::path exe =
      std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  return (exe.parent_path().parent_path().parent_path() / "server" / "awaitd")
      .string();
}

class DaemonTest : public ::testing::Test {
 protected:
  static DaemonOptions DefaultOptions() {
    DaemonOptions o;
    o.listen = "127.0.0.1:0";
    o.runtime.workers = 2;
    o.runtime.stall_threshold = std::chrono::nanoseconds(0);
    o.log_level = LogLevel::kWarning;
    o.shutdown_grace = absl::Seconds(5);
    o.cancel_grace = absl::Seconds(2);
    return o;
  }

  void SetUp() override {
    if (start_in_setup_) StartDaemon(DefaultOptions());
  }
  void TearDown() override { StopDaemon(); }

  void StartDaemon(DaemonOptions o) {
    auto d = Daemon::Start(std::move(o));
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = *std::move(d);
    channel_ = NewChannel();
    stub_ = v1::Jobs::NewStub(channel_);
  }
  void StopDaemon() {
    stub_.reset();
    channel_.reset();
    daemon_.reset();
  }

  std::shared_ptr<grpc::Channel> NewChannel() const {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(256 << 20);
    return grpc::CreateCustomChannel(daemon_->address(),
                                     grpc::InsecureChannelCredentials(), args);
  }

  // A context with a deadline, so a broken daemon fails the test instead of
  // hanging it.
  static std::unique_ptr<grpc::ClientContext> Ctx(double seconds = 30) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::milliseconds(static_cast<int>(seconds * 1000)));
    return ctx;
  }

  grpc::Status Submit(const std::vector<v1::JobSpec>& specs,
                      v1::SubmitResponse* resp) {
    v1::SubmitRequest req;
    for (const auto& s : specs) *req.add_jobs() = s;
    return stub_->Submit(Ctx().get(), req, resp);
  }
  std::vector<std::uint64_t> SubmitOk(const std::vector<v1::JobSpec>& specs) {
    v1::SubmitResponse resp;
    grpc::Status s = Submit(specs, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<std::uint64_t> ids;
    for (const auto& j : resp.jobs()) ids.push_back(j.id());
    return ids;
  }
  v1::Job GetOk(std::uint64_t id) {
    v1::GetRequest req;
    req.add_ids(id);
    v1::GetResponse resp;
    grpc::Status s = stub_->Get(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.jobs_size() == 1 ? resp.jobs(0) : v1::Job();
  }
  grpc::Status WaitFor(const v1::JobInput& in, v1::WaitForResponse* resp,
                       double timeout_s = -1) {
    v1::WaitForRequest req;
    *req.mutable_job() = in;
    if (timeout_s >= 0) *req.mutable_timeout() = Seconds(timeout_s);
    return stub_->WaitFor(Ctx().get(), req, resp);
  }
  v1::Job WaitForOk(std::uint64_t id) {
    v1::WaitForResponse resp;
    grpc::Status s = WaitFor(Input(id), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.job();
  }
  // Waits (server side) until the job is done, whatever its outcome.
  v1::Job AwaitDone(std::uint64_t id) {
    v1::WaitRequest req;
    *req.add_jobs() = Input(id);
    v1::WaitResponse resp;
    grpc::Status s = stub_->Wait(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return GetOk(id);
  }

  bool start_in_setup_ = true;
  std::unique_ptr<Daemon> daemon_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Jobs::Stub> stub_;
};

// A DaemonTest with a data directory of its own (made in SetUp, removed in
// TearDown) for daemons it starts and restarts there with Durable().
class DataDirDaemonTest : public DaemonTest {
 protected:
  // `prefix` names the test file's directories under the test temp dir.
  explicit DataDirDaemonTest(std::string prefix) : prefix_(std::move(prefix)) {
    start_in_setup_ = false;
  }
  void SetUp() override {
    data_dir_ = FreshDir(
        prefix_,
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override {
    StopDaemon();
    std::filesystem::remove_all(data_dir_);
  }
  // The defaults, with a store in the data directory and a short grace.
  DaemonOptions Durable(Durability durability = Durability::kSync) {
    DaemonOptions o = DefaultOptions();
    o.durability = durability;
    o.data_dir = data_dir_;
    o.shutdown_grace = absl::Milliseconds(100);
    return o;
  }

  const std::string prefix_;
  std::string data_dir_;
};

}  // namespace awaitd::server::testing

#endif  // AWAITD_TESTS_SERVER_DAEMON_FIXTURE_H_
