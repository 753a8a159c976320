// The Prometheus endpoint (server/rpc/metrics.h): scraped over real HTTP from a
// live daemon, with exact values for what the test did; `promtool check
// metrics` on a scrape; and a real Prometheus server scraping the daemon and
// answering queries about it.
#include "server/rpc/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/daemon_fixture.h"
#include "tests/server/http_get.h"
#include "tests/support/process.h"

namespace awaitd::server::testing {
namespace {

using ::awaitd::testing::FindOnPath;
using ::awaitd::testing::Output;
using ::awaitd::testing::Process;
using ::awaitd::testing::ProcessResult;
using ::awaitd::testing::RunProcess;
using ::testing::HasSubstr;
using ::testing::Not;

// One parsed exposition: series ("name{a="x",b="y"}") -> value.
class Scrape {
 public:
  explicit Scrape(const std::string& text) : text_(text) {
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      if (line.empty() || line[0] == '#') continue;
      const std::size_t space = line.rfind(' ');
      if (space == absl::string_view::npos) continue;
      double v = 0;
      const std::string value(line.substr(space + 1));
      if (!absl::SimpleAtod(value, &v)) continue;
      series_.emplace_back(std::string(line.substr(0, space)), v);
    }
  }
  // The value of the series named `name` that has every label of `labels`
  // ("kind=\"echo\"" style matchers), or nullopt (also if several match).
  std::optional<double> Value(
      const std::string& name,
      const std::vector<std::string>& labels = {}) const {
    std::optional<double> found;
    for (const auto& [series, v] : series_) {
      const std::size_t brace = series.find('{');
      if (series.substr(0, brace) != name) continue;
      bool all = true;
      for (const std::string& l : labels) {
        all &= series.find(l) != std::string::npos;
      }
      if (!all) continue;
      if (found.has_value()) return std::nullopt;
      found = v;
    }
    return found;
  }
  std::size_t Count(const std::string& name) const {
    std::size_t n = 0;
    for (const auto& [series, v] : series_) {
      n += series.substr(0, series.find('{')) == name;
    }
    return n;
  }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::vector<std::pair<std::string, double>> series_;
};

class MetricsTest : public DaemonTest {
 protected:
  MetricsTest() { start_in_setup_ = false; }
  void SetUp() override {
    DaemonOptions o = DefaultOptions();
    o.metrics_listen = "127.0.0.1:0";
    o.limits = {"one:1"};
    StartDaemon(std::move(o));
    ASSERT_GT(daemon_->metrics_port(), 0);
  }
  Scrape Get() {
    std::optional<std::string> body =
        HttpGet(daemon_->metrics_port(), "/metrics");
    EXPECT_TRUE(body.has_value()) << "scrape failed";
    return Scrape(body.value_or(""));
  }
  // Scrapes until `pred` holds (gauges follow events, not calls).
  Scrape AwaitScrape(const std::function<bool(const Scrape&)>& pred) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    for (;;) {
      Scrape s = Get();
      if (pred(s) || absl::Now() > deadline) return s;
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  std::vector<std::uint64_t> Submit(const std::vector<v1::JobSpec>& specs) {
    return SubmitOk(specs);
  }
  void WaitAll(const std::vector<std::uint64_t>& ids) {
    for (std::uint64_t id : ids) AwaitDone(id);
  }
};

TEST_F(MetricsTest, CountsJobsByKindAndOutcome) {
  std::vector<std::uint64_t> ids = Submit(
      {Spec("echo", R"({"value": 1})"), Spec("echo", R"({"value": 2})"),
       Spec("echo", R"({"value": 3})"), Spec("fail", R"({"message": "boom"})"),
       Spec("fail", R"({"message": "bang"})")});
  std::vector<std::uint64_t> sleeper =
      Submit({Spec("sleep", R"({"seconds": 60})")});
  WaitAll(ids);
  v1::CancelRequest cancel;
  cancel.add_ids(sleeper[0]);
  v1::CancelResponse cancelled;
  auto ctx = Ctx();
  ASSERT_TRUE(stub_->Cancel(ctx.get(), cancel, &cancelled).ok());
  ids.push_back(sleeper[0]);
  WaitAll(ids);

  const Scrape s = AwaitScrape([](const Scrape& x) {
    return x.Value("awaitd_jobs_finished_total",
                   {"kind=\"sleep\"", "outcome=\"cancelled\""}) == 1;
  });
  EXPECT_EQ(s.Value("awaitd_jobs_submitted_total", {"kind=\"echo\""}), 3);
  EXPECT_EQ(s.Value("awaitd_jobs_submitted_total", {"kind=\"fail\""}), 2);
  EXPECT_EQ(s.Value("awaitd_jobs_started_total", {"kind=\"echo\""}), 3);
  EXPECT_EQ(s.Value("awaitd_jobs_finished_total",
                    {"kind=\"echo\"", "outcome=\"succeeded\""}),
            3);
  EXPECT_EQ(s.Value("awaitd_jobs_finished_total",
                    {"kind=\"echo\"", "outcome=\"failed\""}),
            0);
  EXPECT_EQ(s.Value("awaitd_jobs_finished_total",
                    {"kind=\"fail\"", "outcome=\"failed\""}),
            2);
  EXPECT_EQ(s.Value("awaitd_jobs_finished_total",
                    {"kind=\"sleep\"", "outcome=\"cancelled\""}),
            1);
  EXPECT_EQ(s.Value("awaitd_job_run_seconds_count", {"kind=\"echo\""}), 3);
  EXPECT_EQ(s.Value("awaitd_job_queue_wait_seconds_count", {"kind=\"fail\""}),
            2);
  // The +Inf bucket holds every observation.
  EXPECT_EQ(s.Value("awaitd_job_run_seconds_bucket",
                    {"kind=\"echo\"", "le=\"+Inf\""}),
            3);
  EXPECT_EQ(s.Value("awaitd_jobs_running", {"kind=\"sleep\""}), 0);
  EXPECT_EQ(s.Value("awaitd_jobs_pending", {"kind=\"echo\""}), 0);
  // No label carries a job's id or name.
  EXPECT_THAT(s.text(), ::testing::Not(HasSubstr("Job-1")));
}

TEST_F(MetricsTest, PendingRunningAndLimitGauges) {
  // Three sleepers behind a limit of one: one holds it, two wait.
  v1::JobSpec spec = Spec("sleep", R"({"seconds": 60})");
  spec.add_limits("one");
  const std::vector<std::uint64_t> ids = Submit({spec, spec, spec});
  Scrape s = AwaitScrape([](const Scrape& x) {
    return x.Value("awaitd_limit_waiters", {"limit=\"one\""}) == 2 &&
           x.Value("awaitd_jobs_running", {"kind=\"sleep\""}) == 1;
  });
  EXPECT_EQ(s.Value("awaitd_jobs_running", {"kind=\"sleep\""}), 1);
  EXPECT_EQ(s.Value("awaitd_jobs_pending", {"kind=\"sleep\""}), 2);
  EXPECT_EQ(s.Value("awaitd_limit_holders", {"limit=\"one\""}), 1);
  EXPECT_EQ(s.Value("awaitd_limit_waiters", {"limit=\"one\""}), 2);
  EXPECT_EQ(s.Value("awaitd_limit_permits", {"limit=\"one\""}), 1);

  v1::CancelRequest cancel;
  for (std::uint64_t id : ids) cancel.add_ids(id);
  v1::CancelResponse resp;
  auto ctx = Ctx();
  ASSERT_TRUE(stub_->Cancel(ctx.get(), cancel, &resp).ok());
  s = AwaitScrape([](const Scrape& x) {
    return x.Value("awaitd_jobs_finished_total",
                   {"kind=\"sleep\"", "outcome=\"cancelled\""}) == 3;
  });
  EXPECT_EQ(s.Value("awaitd_jobs_running", {"kind=\"sleep\""}), 0);
  EXPECT_EQ(s.Value("awaitd_jobs_pending", {"kind=\"sleep\""}), 0);
  EXPECT_EQ(s.Value("awaitd_limit_holders", {"limit=\"one\""}), 0);
  EXPECT_EQ(s.Value("awaitd_limit_waiters", {"limit=\"one\""}), 0);
  // Two never started: no run time for them.
  EXPECT_EQ(s.Value("awaitd_job_run_seconds_count", {"kind=\"sleep\""}), 1);
}

TEST_F(MetricsTest, CountsRpcsByMethodAndCode) {
  {
    v1::SubmitRequest bad;
    *bad.add_jobs() = Spec("no-such-kind");
    v1::SubmitResponse resp;
    auto ctx = Ctx();
    EXPECT_EQ(stub_->Submit(ctx.get(), bad, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  for (int i = 0; i < 2; ++i) {
    v1::GetRequest get;
    get.add_ids(999999);
    v1::GetResponse resp;
    auto ctx = Ctx();
    EXPECT_EQ(stub_->Get(ctx.get(), get, &resp).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  Submit({Spec("echo", R"({"value": 1})")});
  const Scrape s = AwaitScrape([](const Scrape& x) {
    return x.Value("grpc_server_handled_total",
                   {"grpc_method=\"Submit\"", "grpc_code=\"OK\""}) == 1;
  });
  EXPECT_EQ(s.Value("grpc_server_handled_total",
                    {"grpc_method=\"Submit\"", "grpc_code=\"InvalidArgument\"",
                     "grpc_service=\"awaitd.v1.Jobs\"", "grpc_type=\"unary\""}),
            1);
  EXPECT_EQ(s.Value("grpc_server_handled_total",
                    {"grpc_method=\"Get\"", "grpc_code=\"NotFound\""}),
            2);
  EXPECT_EQ(s.Value("grpc_server_started_total", {"grpc_method=\"Submit\""}),
            2);
  EXPECT_EQ(
      s.Value("grpc_server_handling_seconds_count", {"grpc_method=\"Get\""}),
      2);
}

TEST_F(MetricsTest, RuntimeAndProcessFamilies) {
  WaitAll(Submit({Spec("blocking", R"({"seconds": 0.01})")}));
  const Scrape s = Get();
  const double workers = s.Value("awaitd_workers").value_or(-1);
  EXPECT_EQ(workers, 2);
  for (const char* per_worker :
       {"awaitd_worker_busy_seconds_total", "awaitd_worker_steals_total",
        "awaitd_worker_parks_total", "awaitd_worker_local_queue_depth",
        "awaitd_worker_stalls_total"}) {
    EXPECT_EQ(s.Count(per_worker), 2u) << per_worker;
  }
  EXPECT_TRUE(s.Value("awaitd_global_queue_depth").has_value());
  EXPECT_GE(s.Value("awaitd_blocking_threads").value_or(0), 1);
  EXPECT_EQ(s.Value("awaitd_blocking_completed_total"), 1);
  EXPECT_GT(s.Value("process_resident_memory_bytes").value_or(0), 1e6);
  EXPECT_GT(s.Value("process_open_fds").value_or(0), 3);
  EXPECT_GT(s.Value("process_threads").value_or(0), 2);
  const double start = s.Value("process_start_time_seconds").value_or(0);
  EXPECT_NEAR(start, absl::ToUnixSeconds(absl::Now()), 120);
  EXPECT_EQ(s.Value("awaitd_build_info", {"version=\""}), 1);
}

TEST_F(MetricsTest, PromtoolAcceptsAScrape) {
  if (!FindOnPath("promtool").has_value()) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  }
  Submit({Spec("echo", R"({"value": 1})"), Spec("fail")});
  const std::string text = Get().text();
  ASSERT_FALSE(text.empty());
  const ProcessResult r = RunProcess({
      .argv = {"promtool", "check", "metrics"},
      .stdin_data = text,
      .stderr_to = Output::Stdout(),
  });
  const std::string& output = r.out;
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(output, "") << "promtool's complaints:\n" << output;
}

TEST(MetricsServerTest, AnAddressInUseFailsTheStartNamingTheFlag) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string taken = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  auto server = MetricsServer::Start(taken, {});
  EXPECT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()),
              HasSubstr("--metrics_listen=" + taken));
  auto bad = MetricsServer::Start("nonsense", {});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  ::close(fd);
}

// --- Who may scrape ----------------------------------------------------------

class MetricsAccessTest : public DaemonTest {
 protected:
  MetricsAccessTest() { start_in_setup_ = false; }
  void SetUp() override {
    DaemonTest::SetUp();
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "awaitd-metrics-XXXXXX")
            .string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    DaemonTest::TearDown();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string WriteTokens(const std::string& text) {
    const std::string path = dir_ + "/tokens";
    std::ofstream(path, std::ios::trunc) << text;
    ::chmod(path.c_str(), 0600);
    return path;
  }
  std::string dir_;
};

// Beyond loopback the endpoint needs the daemon's tokens or a flag saying it
// is public; the start fails, naming the flags, with neither.
TEST_F(MetricsAccessTest, BeyondLoopbackWithoutTokensOrMetricsPublicIsRefused) {
  DaemonOptions o = DefaultOptions();
  o.metrics_listen = "0.0.0.0:0";
  auto d = Daemon::Start(std::move(o));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(d.status().message());
  EXPECT_THAT(message, HasSubstr("--metrics_listen=0.0.0.0:0"));
  EXPECT_THAT(message, HasSubstr("--token_file"));
  EXPECT_THAT(message, HasSubstr("--metrics_public"));
}

TEST_F(MetricsAccessTest, BeyondLoopbackScrapesNeedABearerToken) {
  DaemonOptions o = DefaultOptions();
  o.metrics_listen = "0.0.0.0:0";
  o.auth.token_file = WriteTokens("metrics-token-5e1f\n");
  StartDaemon(std::move(o));
  const int port = daemon_->metrics_port();
  ASSERT_GT(port, 0);

  auto [code, body] = HttpRequest(port, "/metrics", "");
  EXPECT_EQ(code, 401) << body;
  EXPECT_THAT(body, HasSubstr("missing bearer token"));
  EXPECT_THAT(body, Not(HasSubstr("awaitd_build_info")));
  std::tie(code, body) =
      HttpRequest(port, "/metrics", "Authorization: Bearer wrong\r\n");
  EXPECT_EQ(code, 401) << body;
  EXPECT_THAT(body, HasSubstr("invalid bearer token"));
  std::tie(code, body) =
      HttpRequest(port, "/metrics", "Authorization: Basic bWV0cmljczp4\r\n");
  EXPECT_EQ(code, 401) << body;
  std::tie(code, body) = HttpRequest(
      port, "/metrics", "Authorization: Bearer metrics-token-5e1f\r\n");
  EXPECT_EQ(code, 200) << body;
  EXPECT_THAT(body, HasSubstr("awaitd_build_info"));

  // A reloaded token file (SIGHUP) applies to scrapes too.
  WriteTokens("metrics-token-2-77aa\n");
  ASSERT_TRUE(daemon_->ReloadTokens().ok());
  std::tie(code, body) = HttpRequest(
      port, "/metrics", "Authorization: Bearer metrics-token-5e1f\r\n");
  EXPECT_EQ(code, 401) << body;
  std::tie(code, body) = HttpRequest(
      port, "/metrics", "Authorization: Bearer metrics-token-2-77aa\r\n");
  EXPECT_EQ(code, 200) << body;
}

TEST_F(MetricsAccessTest, MetricsPublicServesAnyoneBeyondLoopback) {
  DaemonOptions o = DefaultOptions();
  o.metrics_listen = "0.0.0.0:0";
  o.auth.metrics_public = true;
  o.auth.token_file = WriteTokens("metrics-token-5e1f\n");
  StartDaemon(std::move(o));
  auto [code, body] = HttpRequest(daemon_->metrics_port(), "/metrics", "");
  EXPECT_EQ(code, 200) << body;
  EXPECT_THAT(body, HasSubstr("awaitd_build_info"));
}

// On loopback (the default) the endpoint stays open, tokens or not.
TEST_F(MetricsAccessTest, LoopbackScrapesNeedNoToken) {
  DaemonOptions o = DefaultOptions();
  o.metrics_listen = "127.0.0.1:0";
  o.auth.token_file = WriteTokens("metrics-token-5e1f\n");
  StartDaemon(std::move(o));
  auto [code, body] = HttpRequest(daemon_->metrics_port(), "/metrics", "");
  EXPECT_EQ(code, 200) << body;
  EXPECT_THAT(body, HasSubstr("awaitd_build_info"));
}

// A real Prometheus server scrapes the daemon every 250 ms; its query API
// must come to report what the test did.
TEST_F(MetricsTest, APrometheusServerScrapesTheDaemon) {
  if (!FindOnPath("prometheus").has_value()) {
    GTEST_SKIP() << "prometheus not installed (Debian package prometheus)";
  }
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) /
      ("awaitd_prometheus_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "data");
  // A free port for Prometheus's own web listener.
  int web_port = 0;
  {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    web_port = ntohs(addr.sin_port);
    ::close(fd);
  }
  {
    std::ofstream cfg(dir / "prometheus.yml");
    cfg << "global:\n  scrape_interval: 250ms\n  scrape_timeout: 200ms\n"
        << "scrape_configs:\n  - job_name: awaitd\n    static_configs:\n"
        << "      - targets: ['127.0.0.1:" << daemon_->metrics_port() << "']\n";
  }
  WaitAll(Submit({Spec("echo", R"({"value": 1})"),
                  Spec("echo", R"({"value": 2})"), Spec("fail")}));

  const std::string log = (dir / "prometheus.log").string();
  Process prometheus({
      .argv = {"prometheus",
               "--config.file=" + (dir / "prometheus.yml").string(),
               "--storage.tsdb.path=" + (dir / "data").string(),
               "--web.listen-address=127.0.0.1:" + std::to_string(web_port),
               "--log.level=warn"},
      .stdout_to = Output::Inherit(),
      .stderr_to = Output::File(log),
  });
  ASSERT_TRUE(prometheus.started()) << prometheus.error();

  // Instant query; the answer names the series and its value ("2").
  const std::string query =
      "/api/v1/query?query=awaitd_jobs_finished_total%7Bkind%3D%22echo%22%2C"
      "outcome%3D%22succeeded%22%7D";
  std::string answer;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    answer = HttpGet(web_port, query).value_or("");
    if (answer.find("\"2\"]") != std::string::npos) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  const std::string up =
      HttpGet(web_port, "/api/v1/query?query=up%7Bjob%3D%22awaitd%22%7D")
          .value_or("");
  // Stopped, and given time to stop (else killed, and reaped).
  prometheus.Signal(SIGTERM);
  prometheus.Wait(std::chrono::seconds(30));
  std::ifstream log_in(log);
  const std::string prometheus_log((std::istreambuf_iterator<char>(log_in)),
                                   std::istreambuf_iterator<char>());
  std::filesystem::remove_all(dir);

  EXPECT_THAT(answer, HasSubstr("\"status\":\"success\"")) << prometheus_log;
  EXPECT_THAT(answer, HasSubstr("\"kind\":\"echo\""));
  EXPECT_THAT(answer, HasSubstr("\"outcome\":\"succeeded\""));
  EXPECT_THAT(answer, HasSubstr("\"2\"]")) << answer << "\n" << prometheus_log;
  // The target is up: every scrape parsed.
  EXPECT_THAT(up, HasSubstr("\"1\"]")) << up;
}

}  // namespace
}  // namespace awaitd::server::testing
