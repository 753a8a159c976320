// TestCa: a throwaway PKI made with the `openssl` command at test time, for
// TLS and mutual-TLS tests.
//
//   static std::unique_ptr<TestCa> ca = TestCa::Create();   // null: no openssl
//   if (ca == nullptr) GTEST_SKIP() << TestCa::SkipReason();
//   options.auth.tls_cert_file = ca->server_cert;
//
// It holds, in a temporary directory removed by the destructor:
//   ca            a CA ("awaitd-test-ca")
//   server_*      a server certificate for localhost, 127.0.0.1 and ::1
//                 (subjectAltName), signed by ca
//   client_*      a client certificate signed by ca
//   expired_*     a client certificate signed by ca that expired in 2020
//   rogue_ca      a second, unrelated self-signed CA
//   rogue_client_* a client certificate signed by rogue_ca
// Keys are unencrypted P-256 PEM; certificates are PEM.
//
// Thread safety: Create may be called from any thread; a TestCa is
// immutable after it.
#ifndef AWAITD_TESTS_SERVER_TEST_CA_H_
#define AWAITD_TESTS_SERVER_TEST_CA_H_

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace awaitd::server::testing {

class TestCa {
 public:
  // Null when `openssl` cannot be run or a command fails (SkipReason() says
  // why).
  static std::unique_ptr<TestCa> Create() {
    std::unique_ptr<TestCa> ca(new TestCa());
    if (!ca->Make()) {
      SkipReasonRef() = ca->error_;
      return nullptr;
    }
    return ca;
  }
  static std::string SkipReason() {
    return "cannot make a test CA with the openssl command: " + SkipReasonRef();
  }

  ~TestCa() {
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  static std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }
  // Writes `text` to dir/name and returns the path.
  std::string Write(const std::string& name, const std::string& text) const {
    const std::string path = dir + "/" + name;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    return path;
  }

  std::string dir;
  std::string ca_cert, ca_key;
  std::string server_cert, server_key;
  std::string client_cert, client_key;
  std::string expired_cert, expired_key;
  std::string rogue_ca_cert, rogue_ca_key;
  std::string rogue_client_cert, rogue_client_key;

 private:
  TestCa() = default;

  static std::string& SkipReasonRef() {
    static std::string reason;
    return reason;
  }

  bool Run(std::vector<std::string> args) {
    args.insert(args.begin(), "openssl");
    awaitd::testing::ProcessResult r = awaitd::testing::RunProcess(
        {.argv = args, .timeout = std::chrono::seconds(60)});
    if (r.exit_code != 0) {
      error_ = args[1] + ": " + r.Describe();
      return false;
    }
    return true;
  }

  // A key and a certificate request.
  bool NewRequest(const std::string& name, const std::string& cn) {
    return Run({"req", "-new", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                P(name + ".key"), "-out", P(name + ".csr"), "-subj",
                "/CN=" + cn, "-config", P("openssl.cnf")});
  }
  // A self-signed CA.
  bool NewCa(const std::string& name, const std::string& cn) {
    return Run({"req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                P(name + ".key"), "-out", P(name + ".pem"), "-days", "2",
                "-subj", "/CN=" + cn, "-config", P("openssl.cnf"),
                "-extensions", "ca_ext"});
  }
  // `name`.csr signed by `ca` with the extensions `ext`.
  bool Sign(const std::string& name, const std::string& ca,
            const std::string& ext) {
    return Run({"x509", "-req", "-in", P(name + ".csr"), "-CA", P(ca + ".pem"),
                "-CAkey", P(ca + ".key"), "-CAcreateserial", "-out",
                P(name + ".pem"), "-days", "2", "-sha256", "-extfile",
                P("openssl.cnf"), "-extensions", ext});
  }
  std::string P(const std::string& name) const { return dir + "/" + name; }

  bool Make() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "awaitd-test-ca-XXXXXX")
            .string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      error_ = "mkdtemp failed";
      return false;
    }
    dir = tmpl;
    // A complete configuration, so the system's openssl.cnf does not matter.
    Write("openssl.cnf",
          "[req]\n"
          "distinguished_name = dn\n"
          "prompt = no\n"
          "[dn]\n"
          "[ca_ext]\n"
          "basicConstraints = critical, CA:TRUE\n"
          "keyUsage = critical, keyCertSign, cRLSign\n"
          "subjectKeyIdentifier = hash\n"
          "[server_ext]\n"
          "basicConstraints = CA:FALSE\n"
          "keyUsage = critical, digitalSignature, keyEncipherment\n"
          "extendedKeyUsage = serverAuth\n"
          "subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1\n"
          "[client_ext]\n"
          "basicConstraints = CA:FALSE\n"
          "keyUsage = critical, digitalSignature, keyEncipherment\n"
          "extendedKeyUsage = clientAuth\n"
          "[ca]\n"
          "default_ca = test_ca\n"
          "[test_ca]\n"
          "database = " +
              P("index.txt") +
              "\n"
              "new_certs_dir = " +
              dir +
              "\n"
              "serial = " +
              P("ca.serial") +
              "\n"
              "default_md = sha256\n"
              "policy = any\n"
              "unique_subject = no\n"
              "copy_extensions = none\n"
              "[any]\n"
              "commonName = supplied\n");
    Write("index.txt", "");
    Write("ca.serial", "1000\n");
    if (!Run({"version"})) return false;
    if (!NewCa("ca", "awaitd-test-ca") || !NewRequest("server", "localhost") ||
        !Sign("server", "ca", "server_ext") ||
        !NewRequest("client", "awaitd-test-client") ||
        !Sign("client", "ca", "client_ext") ||
        !NewCa("rogue_ca", "awaitd-rogue-ca") ||
        !NewRequest("rogue_client", "awaitd-test-client") ||
        !Sign("rogue_client", "rogue_ca", "client_ext") ||
        !NewRequest("expired", "awaitd-expired-client")) {
      return false;
    }
    // `openssl ca` can back-date a certificate (`x509 -req` cannot).
    if (!Run({"ca", "-batch", "-config", P("openssl.cnf"), "-cert", P("ca.pem"),
              "-keyfile", P("ca.key"), "-in", P("expired.csr"), "-out",
              P("expired.pem"), "-startdate", "20200101000000Z", "-enddate",
              "20200102000000Z", "-extensions", "client_ext", "-notext"})) {
      return false;
    }
    ca_cert = P("ca.pem");
    ca_key = P("ca.key");
    server_cert = P("server.pem");
    server_key = P("server.key");
    client_cert = P("client.pem");
    client_key = P("client.key");
    expired_cert = P("expired.pem");
    expired_key = P("expired.key");
    rogue_ca_cert = P("rogue_ca.pem");
    rogue_ca_key = P("rogue_ca.key");
    rogue_client_cert = P("rogue_client.pem");
    rogue_client_key = P("rogue_client.key");
    return true;
  }

  std::string error_;
};

}  // namespace awaitd::server::testing

#endif  // AWAITD_TESTS_SERVER_TEST_CA_H_
