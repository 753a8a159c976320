// deploy/prometheus and deploy/grafana against the daemon they describe:
// promtool accepts the scrape config and the rules and passes the rules' unit
// tests, and every metric the rules and the dashboard query is one a live
// daemon exports.
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "server/rpc/metrics.h"
#include "tests/server/daemon_fixture.h"
#include "tests/support/process.h"

namespace awaitd::server::testing {
namespace {

const std::string kDeploy = std::string(AWAITD_SOURCE_DIR) + "/deploy";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs promtool with `args` in `dir` (empty: this process's): its exit
// status (-1 if it did not run to completion) and output (stdout + stderr).
std::pair<int, std::string> Promtool(const std::string& dir,
                                     std::vector<std::string> args) {
  args.insert(args.begin(), "promtool");
  const ::awaitd::testing::ProcessResult r = ::awaitd::testing::RunProcess({
      .argv = args,
      .working_directory = dir,
      .stderr_to = ::awaitd::testing::Output::Stdout(),
  });
  return {r.exit_code, r.error.empty() ? r.out : r.Describe()};
}

bool HavePromtool() {
  return ::awaitd::testing::FindOnPath("promtool").has_value();
}

TEST(PrometheusDeployTest, PromtoolAcceptsTheScrapeConfigAndRules) {
  if (!HavePromtool()) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  }
  auto [config, config_out] =
      Promtool(kDeploy + "/prometheus", {"check", "config", "prometheus.yml"});
  EXPECT_EQ(config, 0) << config_out;
  auto [rules, rules_out] = Promtool(
      "", {"check", "rules", kDeploy + "/prometheus/awaitd-rules.yml"});
  EXPECT_EQ(rules, 0) << rules_out;
  EXPECT_THAT(rules_out, ::testing::HasSubstr("SUCCESS"));
}

TEST(PrometheusDeployTest, AlertRulesPassTheirUnitTests) {
  if (!HavePromtool()) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  }
  auto [status, out] = Promtool(kDeploy + "/prometheus",
                                {"test", "rules", "awaitd-rules.test.yml"});
  EXPECT_EQ(status, 0) << out;
}

// The metric names in PromQL text: identifiers starting with one of our
// families' prefixes, less a histogram's _bucket/_sum/_count suffix.
std::set<std::string> MetricNames(const std::string& promql) {
  std::set<std::string> out;
  const auto ident = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':';
  };
  for (std::size_t i = 0; i < promql.size();) {
    if (!ident(promql[i]) || (i > 0 && ident(promql[i - 1]))) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < promql.size() && ident(promql[j])) ++j;
    std::string name = promql.substr(i, j - i);
    i = j;
    if (name.rfind("awaitd_", 0) != 0 && name.rfind("grpc_server_", 0) != 0 &&
        name.rfind("process_", 0) != 0) {
      continue;
    }
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s = suffix;
      if (name.size() > s.size() &&
          name.compare(name.size() - s.size(), s.size(), s) == 0 &&
          name.find("_seconds") != std::string::npos) {
        name.resize(name.size() - s.size());
      }
    }
    out.insert(name);
  }
  return out;
}

void CollectExprs(const google::protobuf::Value& v,
                  std::vector<std::string>* out) {
  if (v.has_struct_value()) {
    for (const auto& [key, field] : v.struct_value().fields()) {
      if (key == "expr" && field.has_string_value()) {
        out->push_back(field.string_value());
      } else {
        CollectExprs(field, out);
      }
    }
  } else if (v.has_list_value()) {
    for (const auto& item : v.list_value().values()) CollectExprs(item, out);
  }
}

class DeployMetricsTest : public DaemonTest {
 protected:
  DeployMetricsTest() { start_in_setup_ = false; }

  // Family names from the exposition of a daemon that has run jobs, used a
  // limit and answered calls (so that every family has samples).
  std::set<std::string> ExportedFamilies() {
    DaemonOptions o = DefaultOptions();
    o.limits = {"api:1"};
    o.metrics_listen = "127.0.0.1:0";
    StartDaemon(std::move(o));
    v1::JobSpec limited = Spec("echo", R"({"value": 1})");
    limited.add_limits("api");
    for (std::uint64_t id : SubmitOk({limited, Spec("fail")})) AwaitDone(id);
    const std::string text = daemon_->metrics()->Render();
    std::set<std::string> families;
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      if (line.rfind("# TYPE ", 0) != 0) continue;
      std::vector<std::string> parts = absl::StrSplit(line, ' ');
      if (parts.size() >= 3) families.insert(parts[2]);
    }
    return families;
  }
};

TEST_F(DeployMetricsTest, EveryMetricTheDashboardAndRulesQueryIsExported) {
  const std::set<std::string> exported = ExportedFamilies();
  ASSERT_TRUE(exported.count("awaitd_jobs_submitted_total")) << "no scrape";

  google::protobuf::Value dashboard;
  const std::string json = ReadFile(kDeploy + "/grafana/awaitd.json");
  ASSERT_FALSE(json.empty());
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(json, &dashboard).ok())
      << "deploy/grafana/awaitd.json is not JSON";
  ASSERT_EQ(dashboard.struct_value().fields().at("title").string_value(),
            "awaitd");
  std::vector<std::string> exprs;
  CollectExprs(dashboard, &exprs);
  EXPECT_GE(exprs.size(), 20u);

  std::set<std::string> queried;
  for (const std::string& e : exprs) {
    for (const std::string& n : MetricNames(e)) queried.insert(n);
  }
  for (const std::string& n :
       MetricNames(ReadFile(kDeploy + "/prometheus/awaitd-rules.yml"))) {
    queried.insert(n);
  }
  EXPECT_GE(queried.size(), 20u);
  for (const std::string& n : queried) {
    EXPECT_TRUE(exported.count(n)) << n << " is queried but not exported";
  }
}

TEST(MetricNamesTest, FindsFamiliesInPromql) {
  EXPECT_THAT(
      MetricNames("histogram_quantile(0.99, sum by (le) "
                  "(rate(awaitd_job_run_seconds_bucket{kind=\"x\"}[5m]))) / "
                  "awaitd:jobs_finished:rate5m + process_open_fds"),
      ::testing::ElementsAre("awaitd_job_run_seconds", "process_open_fds"));
}

}  // namespace
}  // namespace awaitd::server::testing
