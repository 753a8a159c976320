// The client library and awaitctl against a daemon that requires mutual TLS
// and a bearer token, and the awaitd binary's authentication flags. The
// certificates come from a CA made at test time with the openssl command
// (tests/server/test_ca.h); without it these tests are skipped.
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/daemon/daemon.h"
#include "tests/server/test_ca.h"
#include "tests/support/process.h"

namespace awaitd::client {
namespace {

using ::awaitd::server::testing::TestCa;
using ::awaitd::testing::Process;
using ::awaitd::testing::ProcessOptions;
using ::awaitd::testing::ProcessResult;
using ::awaitd::testing::RunProcess;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kToken[] = "e2e-token-3c9f0a";

const TestCa* Ca() {
  static const std::unique_ptr<TestCa> ca = TestCa::Create();
  return ca.get();
}

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

// A daemon in this process that requires mutual TLS and kToken.
class SecuredDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Ca() == nullptr) GTEST_SKIP() << TestCa::SkipReason();
    token_file_ = Ca()->Write("tokens", StrCat("# e2e\n", kToken, "\n"));
    chmod(token_file_.c_str(), 0600);
    server::DaemonOptions o;
    o.listen = "127.0.0.1:0";
    o.runtime.workers = 2;
    o.runtime.stall_threshold = std::chrono::nanoseconds(0);
    o.log_level = awaitd::LogLevel::kWarning;
    o.auth.tls_cert_file = Ca()->server_cert;
    o.auth.tls_key_file = Ca()->server_key;
    o.auth.tls_client_ca_file = Ca()->ca_cert;
    o.auth.token_file = token_file_;
    auto d = server::Daemon::Start(std::move(o));
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = *std::move(d);
  }

  template <typename... Args>
  static std::string StrCat(const Args&... args) {
    return absl::StrCat(args...);
  }

  // Mutual TLS with the CA's client certificate.
  ClientOptions Good() const {
    return {.address = daemon_->address(),
            .tls_ca_file = Ca()->ca_cert,
            .tls_cert_file = Ca()->client_cert,
            .tls_key_file = Ca()->client_key,
            .default_deadline = absl::Seconds(30)};
  }

  // awaitctl with `args` after --address; no token from the environment.
  ProcessResult Awaitctl(
      std::vector<std::string> args,
      std::vector<std::pair<std::string, std::string>> env = {}) const {
    ProcessOptions o;
    o.argv = {AWAITCTL_PATH, "--address", daemon_->address(), "--deadline",
              "30s"};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    o.unset_env = {"AWAITD_ADDRESS", "AWAITD_TOKEN", "NO_COLOR"};
    o.env = std::move(env);
    o.env.emplace_back("LC_ALL", "C.UTF-8");
    o.timeout = std::chrono::seconds(60);
    return RunProcess(o);
  }
  std::vector<std::string> MtlsFlags() const {
    return {"--tls-ca",        Ca()->ca_cert, "--tls-cert",
            Ca()->client_cert, "--tls-key",   Ca()->client_key};
  }

  std::string token_file_;
  std::unique_ptr<server::Daemon> daemon_;
};

// --- The client library ------------------------------------------------------

TEST_F(SecuredDaemonTest, ClientWithCertificateAndTokenIsServed) {
  ClientOptions o = Good();
  o.token = kToken;
  auto client = Client::Connect(o);
  ASSERT_TRUE(client.ok()) << client.status();
  auto kinds = (*client)->ListKinds();
  ASSERT_TRUE(kinds.ok()) << kinds.status();
  EXPECT_FALSE(kinds->empty());
}

TEST_F(SecuredDaemonTest, ClientReadsTheTokenFromAFile) {
  ClientOptions o = Good();
  o.token_file = token_file_;
  auto client = Client::Connect(o);
  ASSERT_TRUE(client.ok()) << client.status();
  auto kinds = (*client)->ListKinds();
  EXPECT_TRUE(kinds.ok()) << kinds.status();
}

TEST_F(SecuredDaemonTest, ClientWithoutTokenOrCertificateIsUnauthenticated) {
  {
    auto client = Client::Connect(Good());  // no token
    ASSERT_TRUE(client.ok()) << client.status();
    auto kinds = (*client)->ListKinds();
    ASSERT_FALSE(kinds.ok());
    EXPECT_EQ(kinds.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_THAT(Msg(kinds.status()), HasSubstr("missing bearer token"));
  }
  {
    ClientOptions o = Good();
    o.tls_cert_file = Ca()->rogue_client_cert;
    o.tls_key_file = Ca()->rogue_client_key;
    o.token = kToken;
    auto client = Client::Connect(o);
    ASSERT_TRUE(client.ok()) << client.status();
    auto kinds = (*client)->ListKinds();
    ASSERT_FALSE(kinds.ok());
    EXPECT_EQ(kinds.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_THAT(Msg(kinds.status()), HasSubstr("not trusted"));
  }
}

TEST_F(SecuredDaemonTest, TokenFileErrorsAreInvalidArgument) {
  ClientOptions o = Good();
  o.token_file = token_file_;
  o.token = kToken;
  auto client = Client::Connect(o);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(client.status()), HasSubstr("token_file"));

  o.token.clear();
  o.token_file = Ca()->dir + "/no-such-file";
  client = Client::Connect(o);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(client.status()), HasSubstr("token_file"));

  o.token_file = Ca()->Write("only-comments", "# nothing\n\n");
  client = Client::Connect(o);
  ASSERT_FALSE(client.ok());
  EXPECT_THAT(Msg(client.status()), HasSubstr("no token"));
}

// --- awaitctl ----------------------------------------------------------------

TEST_F(SecuredDaemonTest, AwaitctlWithCertificateAndTokenIsServed) {
  std::vector<std::string> args = MtlsFlags();
  args.insert(args.end(), {"--token-file", token_file_, "submit", "--wait",
                           "echo", "value=4242"});
  ProcessResult r = Awaitctl(args);
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_THAT(r.out, HasSubstr("4242"));

  args = MtlsFlags();
  args.insert(args.end(), {"--token", kToken, "kinds"});
  r = Awaitctl(args);
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_THAT(r.out, HasSubstr("echo"));

  args = MtlsFlags();
  args.push_back("kinds");
  r = Awaitctl(args, {{"AWAITD_TOKEN", kToken}});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
}

TEST_F(SecuredDaemonTest, AwaitctlRefusedExitsOneAndSaysWhy) {
  std::vector<std::string> args = MtlsFlags();
  args.push_back("kinds");
  ProcessResult r = Awaitctl(args);  // no token
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("missing bearer token"));

  args = MtlsFlags();
  args.insert(args.end(), {"--token", "wrong-token", "kinds"});
  r = Awaitctl(args);
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("invalid bearer token"));
  EXPECT_THAT(r.err, Not(HasSubstr("wrong-token")));

  r = Awaitctl({"--tls-ca", Ca()->ca_cert, "--tls-cert",
                Ca()->rogue_client_cert, "--tls-key", Ca()->rogue_client_key,
                "--token", kToken, "kinds"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("client certificate not trusted"));

  r = Awaitctl({"--tls-ca", Ca()->ca_cert, "--token", kToken, "kinds"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("client certificate required"));

  // Plaintext to a TLS daemon never connects: exit 3 (unreachable).
  r = Awaitctl({"--token", kToken, "--connect-timeout", "2s", "kinds"});
  EXPECT_EQ(r.exit_code, 3) << r.Describe();
}

TEST_F(SecuredDaemonTest, AwaitctlTokenFlagsAreChecked) {
  std::vector<std::string> args = MtlsFlags();
  args.insert(args.end(),
              {"--token", kToken, "--token-file", token_file_, "kinds"});
  ProcessResult r = Awaitctl(args);
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("--token-file"));

  args = MtlsFlags();
  args.insert(args.end(),
              {"--token-file", Ca()->dir + "/no-such-file", "kinds"});
  r = Awaitctl(args);
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("--token-file"));
}

// --- The awaitd binary's flags -----------------------------------------------

ProcessOptions AwaitdOptions(const std::vector<std::string>& args) {
  ProcessOptions o;
  // No metrics endpoint: the default port would collide between tests.
  o.argv = {AWAITD_PATH, "--metrics_listen=", "--durability=none"};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.timeout = std::chrono::seconds(60);
  return o;
}

ProcessResult Awaitd(const std::vector<std::string>& args) {
  return RunProcess(AwaitdOptions(args));
}

TEST(AwaitdAuthFlagsTest, NonLoopbackListenWithoutAuthIsRefused) {
  ProcessResult r = Awaitd({"--listen=0.0.0.0:0"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("--listen=0.0.0.0:0"));
  EXPECT_THAT(r.err, HasSubstr("--insecure_listen_anywhere"));
}

TEST(AwaitdAuthFlagsTest, BadTlsFlagsNameTheFlag) {
  ProcessResult r = Awaitd({"--listen=127.0.0.1:0", "--tls_cert=/x/cert.pem"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("--tls_cert"));
  r = Awaitd({"--listen=127.0.0.1:0", "--token_file=/no/such/tokens"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("--token_file=/no/such/tokens"));
}

// The whole path through the flags: awaitd with TLS, mutual TLS and a token
// file, awaitctl with a certificate and --token-file, then SIGTERM.
TEST(AwaitdAuthFlagsTest, SecuredDaemonServesAwaitctl) {
  if (Ca() == nullptr) GTEST_SKIP() << TestCa::SkipReason();
  const std::string tokens = Ca()->Write("binary-tokens", "bin-token-1\n");
  chmod(tokens.c_str(), 0600);
  const std::string port_file = Ca()->dir + "/binary.port";
  std::filesystem::remove(port_file);
  // Killed and reaped at the end if still running.
  Process process(AwaitdOptions(
      {"--listen=127.0.0.1:0", "--port_file=" + port_file, "--workers=2",
       "--tls_cert=" + Ca()->server_cert, "--tls_key=" + Ca()->server_key,
       "--tls_client_ca=" + Ca()->ca_cert, "--token_file=" + tokens}));
  ASSERT_TRUE(process.started()) << process.error();
  std::string address;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline && address.empty()) {
    address = TestCa::Read(port_file);
    if (!address.empty() && address.back() == '\n') {
      address.pop_back();
    } else {
      address.clear();
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  if (!address.empty()) {
    ProcessOptions o;
    o.argv = {AWAITCTL_PATH,
              "--address",
              address,
              "--tls-ca",
              Ca()->ca_cert,
              "--tls-cert",
              Ca()->client_cert,
              "--tls-key",
              Ca()->client_key,
              "--token-file",
              tokens,
              "--deadline",
              "30s",
              "kinds"};
    o.unset_env = {"AWAITD_ADDRESS", "AWAITD_TOKEN", "NO_COLOR"};
    ProcessResult r = RunProcess(o);
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_THAT(r.out, HasSubstr("echo"));
  }
  process.Signal(SIGTERM);
  std::optional<ProcessResult> ended = process.Wait(std::chrono::seconds(60));
  if (!ended.has_value()) {
    ended = process.Kill();
    ended->timed_out = true;
  }
  const ProcessResult& daemon = *ended;
  ASSERT_FALSE(address.empty()) << daemon.Describe();
  EXPECT_EQ(daemon.exit_code, 0) << daemon.Describe();
  EXPECT_THAT(daemon.err, HasSubstr("tls=on mtls=on tokens=1"));
  EXPECT_THAT(daemon.err, Not(HasSubstr("bin-token-1")));
}

}  // namespace
}  // namespace awaitd::client
