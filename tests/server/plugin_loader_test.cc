// LoadPlugin (server/kinds/plugin_loader.h) and DaemonOptions::plugins: the
// test plugins of tests/server/plugins/ loaded into this process, which
// exports its symbols as the awaitd executable does.
#include "server/kinds/plugin_loader.h"

#include <fstream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/kinds/job_kind.h"
#include "server/kinds/plugin.h"
#include "tests/server/daemon_fixture.h"

namespace awaitd::server {
namespace {

using testing::DaemonTest;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::Spec;
using ::testing::StartsWith;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(PluginLoaderTest, LoadsAGoodPluginsKinds) {
  JobKindRegistry kinds;
  auto p = LoadPlugin(AWAITD_TEST_PLUGIN_GOOD, kinds);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->name, "test_good");
  EXPECT_EQ(p->path, AWAITD_TEST_PLUGIN_GOOD);
  EXPECT_THAT(p->kinds, ElementsAre("plugin_blocking", "plugin_sleep"));
  ASSERT_NE(kinds.Find("plugin_blocking"), nullptr);
  EXPECT_TRUE(kinds.Find("plugin_blocking")->blocking);
}

TEST(PluginLoaderTest, AMissingFileIsNotFoundNamingThePath) {
  JobKindRegistry kinds;
  auto p = LoadPlugin("/nonexistent/libnothing.so", kinds);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Message(p.status()),
            "plugin /nonexistent/libnothing.so: cannot load it: No such file "
            "or directory");
}

TEST(PluginLoaderTest, AFileThatIsNotASharedLibraryIsRefused) {
  JobKindRegistry kinds;
  const std::string path =
      testing::FreshDir("plugin_loader", "not_a_library") + "/libx.so";
  { std::ofstream(path) << "not ELF\n"; }
  auto p = LoadPlugin(path, kinds);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(p.status()),
              StartsWith("plugin " + path + ": cannot load it: "));
}

TEST(PluginLoaderTest, ALibraryWithoutTheEntryPointIsRefused) {
  JobKindRegistry kinds;
  auto p = LoadPlugin(AWAITD_TEST_PLUGIN_NO_ENTRY, kinds);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Message(p.status()),
            std::string("plugin ") + AWAITD_TEST_PLUGIN_NO_ENTRY +
                ": no awaitd_plugin() entry point: not an awaitd plugin "
                "(define one with AWAITD_PLUGIN(name, register_function) "
                "from server/kinds/plugin.h)");
}

TEST(PluginLoaderTest, AnotherAbiVersionIsRefusedNamingBothVersions) {
  JobKindRegistry kinds;
  auto p = LoadPlugin(AWAITD_TEST_PLUGIN_WRONG_ABI, kinds);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(
      Message(p.status()),
      std::string("plugin ") + AWAITD_TEST_PLUGIN_WRONG_ABI +
          ": built for plugin ABI version 99, but this awaitd loads "
          "version 1; rebuild the plugin against the headers of this awaitd");
  EXPECT_TRUE(kinds.List().empty());
}

TEST(PluginLoaderTest, AnotherFingerprintIsRefusedShowingBoth) {
  JobKindRegistry kinds;
  auto p = LoadPlugin(AWAITD_TEST_PLUGIN_WRONG_FINGERPRINT, kinds);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(
      Message(p.status()),
      StartsWith(std::string("plugin ") + AWAITD_TEST_PLUGIN_WRONG_FINGERPRINT +
                 ": built against other awaitd headers or another "
                 "compiler"));
  EXPECT_THAT(Message(p.status()),
              HasSubstr("(plugin: awaitd 0.0.1; headers 0123456789abcdef; "
                        "awaitd: " AWAITD_PLUGIN_FINGERPRINT ")"));
  EXPECT_TRUE(kinds.List().empty());
}

TEST(PluginLoaderTest, ThePluginsOwnRegistrationErrorKeepsItsCode) {
  JobKindRegistry kinds;
  RegisterBuiltinKinds(kinds);
  auto p = LoadPlugin(AWAITD_TEST_PLUGIN_FAILING, kinds);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Message(p.status()),
            std::string("plugin ") + AWAITD_TEST_PLUGIN_FAILING +
                ": (test_failing) job kind sleep is already registered");
}

class PluginDaemonTest : public DaemonTest {
 protected:
  PluginDaemonTest() { start_in_setup_ = false; }
};

TEST_F(PluginDaemonTest, PluginKindsRunOnTheEventLoopAndTheBlockingPool) {
  DaemonOptions o = DefaultOptions();
  o.plugins = {AWAITD_TEST_PLUGIN_GOOD};
  StartDaemon(std::move(o));
  auto ids =
      SubmitOk({Spec("plugin_sleep", R"({"seconds": 0.01, "result": 7})"),
                Spec("plugin_blocking", R"({"text": "hi"})")});
  ASSERT_EQ(ids.size(), 2u);
  v1::Job sleep = WaitForOk(ids[0]);
  EXPECT_EQ(sleep.state(), v1::JOB_STATE_SUCCEEDED) << sleep.error().message();
  EXPECT_EQ(sleep.result().number_value(), 7);
  v1::Job blocking = WaitForOk(ids[1]);
  EXPECT_EQ(blocking.state(), v1::JOB_STATE_SUCCEEDED)
      << blocking.error().message();
  EXPECT_EQ(blocking.result().string_value(), "pool: hi");
}

TEST_F(PluginDaemonTest, APluginKindCanBeCancelledWhileItSleeps) {
  DaemonOptions o = DefaultOptions();
  o.plugins = {AWAITD_TEST_PLUGIN_GOOD};
  StartDaemon(std::move(o));
  auto ids = SubmitOk({Spec("plugin_sleep", R"({"seconds": 60})")});
  ASSERT_EQ(ids.size(), 1u);
  v1::WaitForResponse resp;
  grpc::Status s = WaitFor(testing::Input(ids[0]), &resp, 0.05);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(GetOk(ids[0]).state(), v1::JOB_STATE_CANCELLED);
}

TEST_F(PluginDaemonTest, ARefusedPluginFailsStartNamingIt) {
  DaemonOptions o = DefaultOptions();
  o.plugins = {AWAITD_TEST_PLUGIN_GOOD, AWAITD_TEST_PLUGIN_WRONG_ABI};
  auto d = Daemon::Start(std::move(o));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(d.status()),
              StartsWith(std::string("plugin ") + AWAITD_TEST_PLUGIN_WRONG_ABI +
                         ": built for plugin "
                         "ABI version 99"));
}

}  // namespace
}  // namespace awaitd::server
