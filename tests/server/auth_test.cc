// Authentication (server/rpc/auth.h): bearer tokens, TLS, mutual TLS, the
// refusal of an unprotected non-loopback --listen, and the errors of bad
// flags. Certificates come from a CA made at test time (test_ca.h); those
// tests are skipped when the openssl command is missing.
#include "server/rpc/auth.h"

#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/server/daemon_fixture.h"
#include "tests/server/test_ca.h"

namespace awaitd::server::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kToken1[] = "token-one-6f1c2d9e";
constexpr char kToken2[] = "token-two-0b7a44c1";
constexpr char kReflectionMethod[] =
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

// One CA for the whole test binary; null when openssl is missing.
const TestCa* Ca() {
  static const std::unique_ptr<TestCa> ca = TestCa::Create();
  return ca.get();
}

#define REQUIRE_CA()                                           \
  do {                                                         \
    if (Ca() == nullptr) GTEST_SKIP() << TestCa::SkipReason(); \
  } while (false)

class AuthTest : public DaemonTest {
 protected:
  AuthTest() { start_in_setup_ = false; }

  void SetUp() override {
    DaemonTest::SetUp();
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "awaitd-auth-XXXXXX")
            .string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    DaemonTest::TearDown();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Writes a file private to this user, and returns its path.
  std::string WriteFile(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::trunc) << text;
    chmod(path.c_str(), 0600);
    return path;
  }

  // Tokens kToken1 and kToken2, with a comment and blank lines around them.
  std::string TokenFile() {
    return WriteFile(
        "tokens", StrCat("# awaitd tokens: one per line\n\n", kToken1, "\n   ",
                         kToken2, "  \r\n# old: retired-token\n"));
  }

  DaemonOptions TokenOptions() {
    DaemonOptions o = DefaultOptions();
    o.auth.token_file = TokenFile();
    return o;
  }
  DaemonOptions TlsOptions(bool mtls) {
    DaemonOptions o = DefaultOptions();
    o.auth.tls_cert_file = Ca()->server_cert;
    o.auth.tls_key_file = Ca()->server_key;
    if (mtls) o.auth.tls_client_ca_file = Ca()->ca_cert;
    return o;
  }

  // A TLS channel trusting `root`, with a client certificate when given.
  std::shared_ptr<grpc::Channel> TlsChannel(const std::string& root,
                                            const std::string& cert = "",
                                            const std::string& key = "") {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = TestCa::Read(root);
    if (!cert.empty()) {
      ssl.pem_cert_chain = TestCa::Read(cert);
      ssl.pem_private_key = TestCa::Read(key);
    }
    return grpc::CreateChannel(daemon_->address(), grpc::SslCredentials(ssl));
  }

  // A List over `channel` (the fixture's by default), with a token if given.
  grpc::Status List(const std::string& token, v1::ListResponse* resp = nullptr,
                    std::shared_ptr<grpc::Channel> channel = nullptr) {
    auto stub = v1::Jobs::NewStub(channel ? channel : channel_);
    auto ctx = Ctx(10);
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    v1::ListResponse ignored;
    return stub->List(ctx.get(), v1::ListRequest(),
                      resp != nullptr ? resp : &ignored);
  }

  // Every job the daemon has, listed with a valid token.
  int JobCount() {
    v1::ListResponse resp;
    grpc::Status s = List(kToken1, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.jobs_size();
  }

  static grpc::Status HealthCheck(std::shared_ptr<grpc::Channel> channel) {
    auto stub = grpc::health::v1::Health::NewStub(channel);
    auto ctx = Ctx(10);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status s =
        stub->Check(ctx.get(), grpc::health::v1::HealthCheckRequest(), &resp);
    if (s.ok() &&
        resp.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "not SERVING");
    }
    return s;
  }

  std::string dir_;
};

void ExpectUnauthenticated(const grpc::Status& s, const std::string& reason) {
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << s.error_code() << ": " << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr(reason));
}

// --- Bearer tokens -----------------------------------------------------------

TEST_F(AuthTest, CallWithoutTokenIsUnauthenticated) {
  StartDaemon(TokenOptions());
  ExpectUnauthenticated(List(""), "missing bearer token");
}

TEST_F(AuthTest, WrongTokenIsUnauthenticated) {
  StartDaemon(TokenOptions());
  ExpectUnauthenticated(List("retired-token"), "invalid bearer token");
  ExpectUnauthenticated(List(std::string(kToken1) + "x"),
                        "invalid bearer token");
}

TEST_F(AuthTest, AuthorizationWithoutBearerSchemeIsUnauthenticated) {
  StartDaemon(TokenOptions());
  auto ctx = Ctx(10);
  ctx->AddMetadata("authorization", std::string("Basic ") + kToken1);
  v1::ListResponse resp;
  ExpectUnauthenticated(stub_->List(ctx.get(), v1::ListRequest(), &resp),
                        "\"Bearer <token>\"");
}

TEST_F(AuthTest, EveryTokenOfTheFileIsAccepted) {
  StartDaemon(TokenOptions());
  grpc::Status s = List(kToken1);
  EXPECT_TRUE(s.ok()) << s.error_message();
  s = List(kToken2);
  EXPECT_TRUE(s.ok()) << s.error_message();
  // The scheme is case-insensitive.
  auto ctx = Ctx(10);
  ctx->AddMetadata("authorization", std::string("bearer ") + kToken2);
  v1::ListResponse resp;
  s = stub_->List(ctx.get(), v1::ListRequest(), &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(AuthTest, ClientCannotForgeTheVerdictHeader) {
  StartDaemon(TokenOptions());
  // A refusal the client planted is removed: a good token still passes.
  auto ctx = Ctx(10);
  ctx->AddMetadata("authorization", std::string("Bearer ") + kToken1);
  ctx->AddMetadata("awaitd-auth-denied", "forged");
  v1::ListResponse resp;
  grpc::Status s = stub_->List(ctx.get(), v1::ListRequest(), &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(AuthTest, RefusedCallsCreateNoJob) {
  StartDaemon(TokenOptions());
  v1::SubmitResponse submitted;
  ExpectUnauthenticated(Submit({Spec("echo", R"({"value": 1})")}, &submitted),
                        "missing bearer token");
  EXPECT_EQ(submitted.jobs_size(), 0);

  v1::WaitForResponse waited;
  ExpectUnauthenticated(
      WaitFor(Input(Spec("echo", R"({"value": 2})")), &waited),
      "missing bearer token");

  v1::RunGroupRequest group;
  *group.add_jobs() = Spec("echo", R"({"value": 3})");
  v1::RunGroupResponse group_resp;
  ExpectUnauthenticated(stub_->RunGroup(Ctx().get(), group, &group_resp),
                        "missing bearer token");

  v1::DeclareLimitRequest limit;
  limit.set_name("db");
  limit.set_permits(2);
  v1::DeclareLimitResponse limit_resp;
  ExpectUnauthenticated(stub_->DeclareLimit(Ctx().get(), limit, &limit_resp),
                        "missing bearer token");

  EXPECT_EQ(JobCount(), 0);
  v1::ListLimitsResponse limits;
  auto ctx = Ctx();
  ctx->AddMetadata("authorization", std::string("Bearer ") + kToken1);
  ASSERT_TRUE(
      stub_->ListLimits(ctx.get(), v1::ListLimitsRequest(), &limits).ok());
  EXPECT_EQ(limits.limits_size(), 0);

  // The same Submit with a token does create the job.
  auto ok_ctx = Ctx();
  ok_ctx->AddMetadata("authorization", std::string("Bearer ") + kToken1);
  v1::SubmitRequest req;
  *req.add_jobs() = Spec("echo", R"({"value": 1})");
  ASSERT_TRUE(stub_->Submit(ok_ctx.get(), req, &submitted).ok());
  EXPECT_EQ(JobCount(), 1);
}

TEST_F(AuthTest, RefusedStreamsSendNothing) {
  StartDaemon(TokenOptions());
  {
    auto ctx = Ctx(10);
    auto stream = stub_->Watch(ctx.get(), v1::WatchRequest());
    v1::WatchResponse msg;
    EXPECT_FALSE(stream->Read(&msg));
    ExpectUnauthenticated(stream->Finish(), "missing bearer token");
  }
  {
    auto ctx = Ctx(10);
    ctx->AddMetadata("authorization", "Bearer nope");
    v1::AsCompletedRequest req;
    *req.add_jobs() = Input(Spec("echo", R"({"value": 4})"));
    auto stream = stub_->AsCompleted(ctx.get(), req);
    v1::AsCompletedResponse msg;
    EXPECT_FALSE(stream->Read(&msg));
    ExpectUnauthenticated(stream->Finish(), "invalid bearer token");
  }
  EXPECT_EQ(JobCount(), 0);
}

TEST_F(AuthTest, HealthCheckNeedsNoToken) {
  StartDaemon(TokenOptions());
  grpc::Status s = HealthCheck(channel_);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

// Health stays open but bounded: only the unary Check is exempt. Watch is a
// stream that never ends by itself, so without a token it is refused at its
// first message (and ends at once), and with one it is served.
TEST_F(AuthTest, HealthWatchNeedsAToken) {
  StartDaemon(TokenOptions());
  auto watch = [&](const std::string& token,
                   grpc::health::v1::HealthCheckResponse* first) {
    auto stub = grpc::health::v1::Health::NewStub(channel_);
    auto ctx = Ctx(10);
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    auto stream =
        stub->Watch(ctx.get(), grpc::health::v1::HealthCheckRequest());
    const bool got = stream->Read(first);
    if (got) ctx->TryCancel();
    grpc::Status s = stream->Finish();
    return std::make_pair(got, s);
  };
  grpc::health::v1::HealthCheckResponse first;
  const absl::Time start = absl::Now();
  auto [got, status] = watch("", &first);
  EXPECT_FALSE(got) << "an unauthenticated Watch was served";
  EXPECT_FALSE(status.ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));  // not the deadline
  EXPECT_TRUE(Authenticator::TokenExempt("/grpc.health.v1.Health/Check"));
  EXPECT_FALSE(Authenticator::TokenExempt("/grpc.health.v1.Health/Watch"));

  first.Clear();
  std::tie(got, status) = watch(kToken1, &first);
  ASSERT_TRUE(got) << status.error_message();
  EXPECT_EQ(first.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

// Reflection is a gRPC service the daemon does not implement: a refused
// call gets an error response (so reflection clients report it) instead of
// the service's answer, and the call ends UNAUTHENTICATED. There is no
// installed reflection stub; the request is the bytes of
// ServerReflectionRequest{list_services: "*"}.
TEST_F(AuthTest, ReflectionRevealsNothingWithoutToken) {
  StartDaemon(TokenOptions());
  auto list_services = [&](const std::string& token, std::string* answers) {
    auto ctx = Ctx(10);
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    const grpc::internal::RpcMethod method(
        kReflectionMethod, grpc::internal::RpcMethod::BIDI_STREAMING);
    std::unique_ptr<
        grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>>
        stream(grpc::internal::ClientReaderWriterFactory<
               grpc::ByteBuffer, grpc::ByteBuffer>::Create(channel_.get(),
                                                           method, ctx.get()));
    const std::string request("\x3a\x01*", 3);
    grpc::Slice slice(request);
    grpc::ByteBuffer buffer(&slice, 1);
    EXPECT_TRUE(stream->Write(buffer));
    grpc::ByteBuffer response;
    if (stream->Read(&response)) {
      std::vector<grpc::Slice> slices;
      EXPECT_TRUE(response.Dump(&slices).ok());
      for (const grpc::Slice& s : slices) {
        answers->append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
    stream->WritesDone();
    return stream->Finish();
  };

  std::string answer;
  grpc::Status s = list_services(kToken1, &answer);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(answer, HasSubstr("awaitd.v1.Jobs"));  // the control

  answer.clear();
  ExpectUnauthenticated(list_services("", &answer), "missing bearer token");
  EXPECT_EQ(answer.find("awaitd.v1.Jobs"), std::string::npos);
  // error_response (field 7) {error_code: 16 (UNAUTHENTICATED), message}.
  ASSERT_GE(answer.size(), 4u);
  EXPECT_EQ(answer[0], '\x3a');
  EXPECT_EQ(answer.substr(2, 2), std::string("\x08\x10", 2));
  EXPECT_THAT(answer, HasSubstr("missing bearer token"));
}

// --- TLS and mutual TLS ------------------------------------------------------

TEST_F(AuthTest, TlsRefusesPlaintextClients) {
  REQUIRE_CA();
  StartDaemon(TlsOptions(/*mtls=*/false));
  grpc::Status s = List("");  // the fixture's channel is plaintext
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE)
      << s.error_code() << ": " << s.error_message();
}

TEST_F(AuthTest, TlsClientTrustingTheCaIsServed) {
  REQUIRE_CA();
  StartDaemon(TlsOptions(/*mtls=*/false));
  grpc::Status s = List("", nullptr, TlsChannel(Ca()->ca_cert));
  EXPECT_TRUE(s.ok()) << s.error_message();
  // A client that trusts another CA does not accept the daemon.
  s = List("", nullptr, TlsChannel(Ca()->rogue_ca_cert));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

TEST_F(AuthTest, MutualTlsWithoutClientCertIsUnauthenticated) {
  REQUIRE_CA();
  StartDaemon(TlsOptions(/*mtls=*/true));
  ExpectUnauthenticated(List("", nullptr, TlsChannel(Ca()->ca_cert)),
                        "client certificate required");
}

TEST_F(AuthTest, MutualTlsWithUntrustedClientCertIsUnauthenticated) {
  REQUIRE_CA();
  StartDaemon(TlsOptions(/*mtls=*/true));
  auto rogue = TlsChannel(Ca()->ca_cert, Ca()->rogue_client_cert,
                          Ca()->rogue_client_key);
  ExpectUnauthenticated(List("", nullptr, rogue),
                        "client certificate not trusted");
  // The cached verdict is the same.
  ExpectUnauthenticated(List("", nullptr, rogue),
                        "client certificate not trusted");
  // Nor is an expired certificate of the right CA.
  ExpectUnauthenticated(
      List("", nullptr,
           TlsChannel(Ca()->ca_cert, Ca()->expired_cert, Ca()->expired_key)),
      "expired");
}

TEST_F(AuthTest, MutualTlsWithTrustedClientCertIsServed) {
  REQUIRE_CA();
  StartDaemon(TlsOptions(/*mtls=*/true));
  auto good = TlsChannel(Ca()->ca_cert, Ca()->client_cert, Ca()->client_key);
  for (int i = 0; i < 2; ++i) {  // verified, then cached
    grpc::Status s = List("", nullptr, good);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }
}

TEST_F(AuthTest, MutualTlsAppliesToHealthChecks) {
  REQUIRE_CA();
  StartDaemon(TlsOptions(/*mtls=*/true));
  ExpectUnauthenticated(HealthCheck(TlsChannel(Ca()->ca_cert)),
                        "client certificate required");
  grpc::Status s = HealthCheck(
      TlsChannel(Ca()->ca_cert, Ca()->client_cert, Ca()->client_key));
  EXPECT_TRUE(s.ok()) << s.error_message();
}

// A stream of a service the daemon does not implement (health's Watch never
// ends by itself) is ended at its first message, which is not delivered.
TEST_F(AuthTest, MutualTlsRefusedHealthWatchEndsAtOnce) {
  REQUIRE_CA();
  StartDaemon(TlsOptions(/*mtls=*/true));
  auto watch = [&](std::shared_ptr<grpc::Channel> channel,
                   grpc::health::v1::HealthCheckResponse* first) {
    auto stub = grpc::health::v1::Health::NewStub(channel);
    auto ctx = Ctx(10);
    auto stream =
        stub->Watch(ctx.get(), grpc::health::v1::HealthCheckRequest());
    const bool got = stream->Read(first);
    if (got) ctx->TryCancel();
    stream->Finish();
    return got;
  };
  grpc::health::v1::HealthCheckResponse first;
  ASSERT_TRUE(watch(
      TlsChannel(Ca()->ca_cert, Ca()->client_cert, Ca()->client_key), &first));
  EXPECT_EQ(first.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  const absl::Time start = absl::Now();
  EXPECT_FALSE(watch(TlsChannel(Ca()->ca_cert), &first));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));  // not the deadline
}

TEST_F(AuthTest, TlsAndTokensAreBothRequired) {
  REQUIRE_CA();
  DaemonOptions o = TlsOptions(/*mtls=*/true);
  o.auth.token_file = TokenFile();
  StartDaemon(std::move(o));
  auto good = TlsChannel(Ca()->ca_cert, Ca()->client_cert, Ca()->client_key);
  ExpectUnauthenticated(List("", nullptr, good), "missing bearer token");
  ExpectUnauthenticated(List(kToken1, nullptr, TlsChannel(Ca()->ca_cert)),
                        "client certificate required");
  grpc::Status s = List(kToken1, nullptr, good);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

// --- Who may listen where ----------------------------------------------------

TEST(ListenAddressTest, LoopbackAddresses) {
  for (const char* a : {"127.0.0.1:50051", "127.1.2.3:0", "localhost:50051",
                        "LOCALHOST:1", "[::1]:50051", "ipv4:127.0.0.1:80",
                        "unix:/run/awaitd.sock", "[::ffff:127.0.0.1]:1"}) {
    EXPECT_TRUE(IsLoopbackListenAddress(a)) << a;
  }
  for (const char* a :
       {"0.0.0.0:50051", "[::]:50051", ":50051", "10.0.0.1:50051",
        "example.com:443", "[2001:db8::1]:1", "128.0.0.1:1"}) {
    EXPECT_FALSE(IsLoopbackListenAddress(a)) << a;
  }
}

// Any process of the network namespace can connect to an abstract socket
// (no file, no permissions): it is not loopback, and needs protection.
TEST_F(AuthTest, AbstractUnixSocketIsNotLoopback) {
  EXPECT_FALSE(IsLoopbackListenAddress("unix-abstract:awaitd"));
  DaemonOptions o = DefaultOptions();
  o.listen = StrCat("unix-abstract:awaitd-auth-test-", getpid());
  auto d = Daemon::Start(o);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(d.status().message()),
              HasSubstr(StrCat("--listen=", o.listen)));

  o.auth.token_file = TokenFile();
  d = Daemon::Start(std::move(o));
  ASSERT_TRUE(d.ok()) << d.status();
}

TEST_F(AuthTest, NonLoopbackListenWithoutAuthIsRefused) {
  for (const char* listen : {"0.0.0.0:0", "[::]:0"}) {
    DaemonOptions o = DefaultOptions();
    o.listen = listen;
    auto d = Daemon::Start(std::move(o));
    ASSERT_FALSE(d.ok()) << listen;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
    const std::string message(d.status().message());
    EXPECT_THAT(message, HasSubstr(StrCat("--listen=", listen)));
    EXPECT_THAT(message, HasSubstr("--tls_client_ca"));
    EXPECT_THAT(message, HasSubstr("--token_file"));
    EXPECT_THAT(message, HasSubstr("--insecure_listen_anywhere"));
  }
}

TEST_F(AuthTest, NonLoopbackListenWithInsecureListenAnywhereIsAccepted) {
  DaemonOptions o = DefaultOptions();
  o.listen = "0.0.0.0:0";
  o.auth.insecure_listen_anywhere = true;
  auto d = Daemon::Start(std::move(o));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_GT((*d)->port(), 0);
}

TEST_F(AuthTest, NonLoopbackListenWithTokensIsAccepted) {
  DaemonOptions o = TokenOptions();
  o.listen = "0.0.0.0:0";
  auto d = Daemon::Start(std::move(o));
  ASSERT_TRUE(d.ok()) << d.status();
  // Reachable on loopback too, and tokens are enforced there.
  auto channel = grpc::CreateChannel(StrCat("127.0.0.1:", (*d)->port()),
                                     grpc::InsecureChannelCredentials());
  ExpectUnauthenticated(List("", nullptr, channel), "missing bearer token");
  grpc::Status s = List(kToken2, nullptr, channel);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

// TLS with only a server certificate encrypts, but serves any client that
// trusts the CA: it does not authenticate, so it is not enough beyond
// loopback.
TEST_F(AuthTest, NonLoopbackListenWithServerTlsOnlyIsRefused) {
  REQUIRE_CA();
  DaemonOptions o = TlsOptions(/*mtls=*/false);
  o.listen = "0.0.0.0:0";
  auto d = Daemon::Start(std::move(o));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(d.status().message()),
              HasSubstr("does not authenticate clients"));
}

TEST_F(AuthTest, NonLoopbackListenWithMutualTlsIsAccepted) {
  REQUIRE_CA();
  DaemonOptions o = TlsOptions(/*mtls=*/true);
  o.listen = "0.0.0.0:0";
  auto d = Daemon::Start(std::move(o));
  ASSERT_TRUE(d.ok()) << d.status();
}

TEST_F(AuthTest, NonLoopbackListenWithServerTlsAndTokensIsAccepted) {
  REQUIRE_CA();
  DaemonOptions o = TlsOptions(/*mtls=*/false);
  o.auth.token_file = TokenFile();
  o.listen = "0.0.0.0:0";
  auto d = Daemon::Start(std::move(o));
  ASSERT_TRUE(d.ok()) << d.status();
}

// --- Reloading the token file (SIGHUP) --------------------------------------

TEST_F(AuthTest, ReloadTokensSwapsTheSetAndABadFileKeepsTheOld) {
  auto lines = std::make_shared<std::vector<std::string>>();
  auto mu = std::make_shared<std::mutex>();
  DaemonOptions o = TokenOptions();
  o.log_level = LogLevel::kInfo;
  o.log_sink = [lines, mu](LogLevel, std::string_view line) {
    std::lock_guard lock(*mu);
    lines->emplace_back(line);
  };
  const std::string path = o.auth.token_file;
  StartDaemon(std::move(o));
  constexpr char kToken3[] = "token-three-93ac0e5d";

  WriteFile("tokens", StrCat(kToken3, "\n"));
  auto n = daemon_->ReloadTokens();
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 1u);
  ExpectUnauthenticated(List(kToken1), "invalid bearer token");
  grpc::Status s = List(kToken3);
  EXPECT_TRUE(s.ok()) << s.error_message();

  // A file with no token (or an unreadable one) changes nothing.
  WriteFile("tokens", "# emptied by mistake\n");
  n = daemon_->ReloadTokens();
  EXPECT_EQ(n.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(n.status().message()),
              HasSubstr("--token_file=" + path));
  std::filesystem::remove(path);
  n = daemon_->ReloadTokens();
  EXPECT_EQ(n.status().code(), absl::StatusCode::kFailedPrecondition);
  s = List(kToken3);
  EXPECT_TRUE(s.ok()) << s.error_message();
  ExpectUnauthenticated(List(kToken2), "invalid bearer token");

  std::lock_guard lock(*mu);
  int reloaded = 0;
  int failed = 0;
  for (const std::string& l : *lines) {
    EXPECT_EQ(l.find(kToken3), std::string::npos) << l;
    if (l.find("event=tokens_reloaded") != std::string::npos &&
        l.find("tokens=1") != std::string::npos) {
      ++reloaded;
    }
    if (l.find("event=tokens_reload_failed") != std::string::npos &&
        l.find("kept=1") != std::string::npos) {
      ++failed;
    }
  }
  EXPECT_EQ(reloaded, 1);
  EXPECT_EQ(failed, 2);
}

TEST_F(AuthTest, ReloadTokensWithoutATokenFileIsRefused) {
  StartDaemon(DefaultOptions());
  auto n = daemon_->ReloadTokens();
  EXPECT_EQ(n.status().code(), absl::StatusCode::kFailedPrecondition);
}

// --- Bad flags ---------------------------------------------------------------

// Start fails with `code`, and the message contains every one of `parts`.
void ExpectStartFails(DaemonOptions o, absl::StatusCode code,
                      const std::vector<std::string>& parts) {
  auto d = Daemon::Start(std::move(o));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), code) << d.status();
  for (const std::string& p : parts) {
    EXPECT_THAT(std::string(d.status().message()), HasSubstr(p));
  }
}

TEST_F(AuthTest, TokenFileErrorsNameTheFlag) {
  DaemonOptions o = DefaultOptions();
  o.auth.token_file = dir_ + "/missing";
  ExpectStartFails(o, absl::StatusCode::kFailedPrecondition,
                   {"--token_file=" + dir_ + "/missing", "cannot read"});
  o.auth.token_file = WriteFile("empty", "# nothing yet\n\n   \n");
  ExpectStartFails(o, absl::StatusCode::kInvalidArgument,
                   {"--token_file=", "no token"});
  o.auth.token_file = WriteFile("spaces", "ok-token\nhas space\n");
  ExpectStartFails(o, absl::StatusCode::kInvalidArgument,
                   {"--token_file=", "line 2", "printable ASCII"});
}

TEST_F(AuthTest, TlsFlagErrorsNameTheFlag) {
  DaemonOptions o = DefaultOptions();
  o.auth.tls_cert_file = WriteFile("cert.pem", "x");
  ExpectStartFails(o, absl::StatusCode::kInvalidArgument,
                   {"--tls_cert", "without --tls_key"});
  o = DefaultOptions();
  o.auth.tls_key_file = WriteFile("key.pem", "x");
  ExpectStartFails(o, absl::StatusCode::kInvalidArgument,
                   {"--tls_key", "without --tls_cert"});
  o = DefaultOptions();
  o.auth.tls_client_ca_file = WriteFile("ca.pem", "x");
  ExpectStartFails(o, absl::StatusCode::kInvalidArgument,
                   {"--tls_client_ca", "--tls_cert"});
  o = DefaultOptions();
  o.auth.tls_cert_file = dir_ + "/nope.pem";
  o.auth.tls_key_file = dir_ + "/nope.key";
  ExpectStartFails(o, absl::StatusCode::kFailedPrecondition,
                   {"--tls_cert=" + dir_ + "/nope.pem", "cannot read"});
  o.auth.tls_cert_file = WriteFile("garbage.pem", "not a certificate\n");
  o.auth.tls_key_file = WriteFile("garbage.key", "not a key\n");
  ExpectStartFails(o, absl::StatusCode::kInvalidArgument,
                   {"--tls_cert=", "no PEM certificate"});
}

TEST_F(AuthTest, TlsFileContentErrorsNameTheFlag) {
  REQUIRE_CA();
  DaemonOptions o = TlsOptions(/*mtls=*/false);
  o.auth.tls_key_file = Ca()->client_key;  // another certificate's key
  ExpectStartFails(o, absl::StatusCode::kInvalidArgument,
                   {"--tls_key=", "does not match"});
  o = TlsOptions(/*mtls=*/true);
  o.auth.tls_client_ca_file = WriteFile("notca.pem", "hello\n");
  ExpectStartFails(o, absl::StatusCode::kInvalidArgument,
                   {"--tls_client_ca=", "no PEM certificate"});
}

TEST_F(AuthTest, StartLogsTheSetupButNeverTheTokens) {
  auto lines = std::make_shared<std::vector<std::string>>();
  auto mu = std::make_shared<std::mutex>();
  DaemonOptions o = TokenOptions();
  o.log_level = LogLevel::kInfo;
  o.log_sink = [lines, mu](LogLevel, std::string_view line) {
    std::lock_guard lock(*mu);
    lines->emplace_back(line);
  };
  StartDaemon(std::move(o));
  ExpectUnauthenticated(List("a-wrong-token"), "invalid bearer token");
  StopDaemon();
  std::lock_guard lock(*mu);
  bool configured = false;
  bool denied = false;
  for (const std::string& l : *lines) {
    EXPECT_EQ(l.find(kToken1), std::string::npos) << l;
    EXPECT_EQ(l.find(kToken2), std::string::npos) << l;
    EXPECT_EQ(l.find("a-wrong-token"), std::string::npos) << l;
    if (l.find("tls=off mtls=off tokens=2") != std::string::npos) {
      configured = true;
    }
    if (l.find("event=denied") != std::string::npos) denied = true;
  }
  EXPECT_TRUE(configured);
  EXPECT_TRUE(denied);
}

}  // namespace
}  // namespace awaitd::server::testing
