#include "server/rpc/auth.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/time/clock.h"
#include "common/strings.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/support/status.h"

namespace awaitd::server {

namespace {

// The metadata entry through which the interceptor hands a refusal to the
// handlers (its value is the reason). Removed from what the client sent.
constexpr char kVerdictKey[] = "awaitd-auth-denied";

constexpr char kMissingToken[] =
    "missing bearer token: send \"authorization: Bearer <token>\" "
    "(awaitctl --token-file)";
constexpr char kInvalidToken[] = "invalid bearer token";
constexpr char kMalformedAuthorization[] =
    "invalid bearer token: the authorization header must be \"Bearer "
    "<token>\"";
constexpr char kNoClientCert[] =
    "client certificate required: this daemon uses mutual TLS; connect with "
    "a certificate signed by its --tls_client_ca";
constexpr char kUntrustedClientCert[] = "client certificate not trusted";

// Most distinct client chains whose verdicts are remembered; the cache is
// cleared when it is full (a few KiB each at most).
constexpr std::size_t kMaxCachedCerts = 1024;
// How long a verdict on a client chain is trusted before it is verified
// again (a success also ends at the certificate's notAfter).
constexpr absl::Duration kCertVerdictTtl = absl::Minutes(10);
constexpr absl::Duration kCertFailureTtl = absl::Minutes(1);

using Digest = std::array<std::uint8_t, 32>;

Digest Sha256(std::string_view data) {
  Digest d{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), d.data(), &len, EVP_sha256(),
                 nullptr) != 1 ||
      len != d.size()) {
    // An impossible environment failure: libcrypto without SHA-256.
    TimestampedStderrSink(LogLevel::kError,
                          "component=auth event=sha256_failed");
    std::abort();
  }
  return d;
}

absl::StatusOr<std::string> ReadFile(std::string_view flag,
                                     const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(StrCat(
        "--", flag, "=", path, ": cannot read it: ", std::strerror(errno)));
  }
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad() || !out) {
    return absl::FailedPreconditionError(
        StrCat("--", flag, "=", path, ": cannot read it"));
  }
  return std::move(out).str();
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

// Every PEM certificate in `pem`, in order.
std::vector<X509Ptr> ParseCerts(std::string_view pem) {
  std::vector<X509Ptr> out;
  std::unique_ptr<BIO, BioDeleter> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return out;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    out.emplace_back(x);
  }
  ERR_clear_error();  // the end of the input reads as an error
  return out;
}

absl::Time Asn1ToTime(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return absl::InfinitePast();
  return absl::FromTimeT(timegm(&tm));
}

// The text after "Bearer " (scheme case-insensitive), or nullopt.
std::optional<std::string_view> BearerToken(std::string_view value) {
  constexpr std::string_view kScheme = "bearer";
  if (value.size() <= kScheme.size()) return std::nullopt;
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(value[i])) != kScheme[i]) {
      return std::nullopt;
    }
  }
  std::string_view rest = value.substr(kScheme.size());
  if (rest.front() != ' ') return std::nullopt;
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
  if (rest.empty()) return std::nullopt;
  return rest;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

bool IsReflection(std::string_view method) {
  return method.rfind("/grpc.reflection.", 0) == 0;
}

void AppendVarint(std::uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// A grpc.reflection ServerReflectionResponse that carries only
// error_response {error_code, error_message} (fields 7; 1 and 2), encoded
// by hand: the reflection protos are not installed with gRPC.
std::string ReflectionError(grpc::StatusCode code, std::string_view message) {
  std::string inner;
  inner.push_back(0x08);  // error_code: field 1, varint
  AppendVarint(static_cast<std::uint64_t>(code), &inner);
  inner.push_back(0x12);  // error_message: field 2, length-delimited
  AppendVarint(message.size(), &inner);
  inner.append(message);
  std::string outer;
  outer.push_back(0x3a);  // error_response: field 7, length-delimited
  AppendVarint(inner.size(), &outer);
  outer.append(inner);
  return outer;
}

// One per call that needs checking (see the header for what it does).
// Externally synchronized: gRPC runs the hooks of one call one at a time.
class AuthInterceptor final : public grpc::experimental::Interceptor {
 public:
  AuthInterceptor(grpc::experimental::ServerRpcInfo* info,
                  std::shared_ptr<const Authenticator> auth,
                  const Logger& logger)
      : info_(info), auth_(std::move(auth)), logger_(logger) {}

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      OnMetadata(methods->GetRecvInitialMetadata());
    }
    if (denied_) {
      if (methods->QueryInterceptionHookPoint(
              InterceptionHookPoints::PRE_SEND_MESSAGE)) {
        OnSendMessage(methods->GetSerializedSendMessage());
      }
      if (methods->QueryInterceptionHookPoint(
              InterceptionHookPoints::PRE_SEND_STATUS)) {
        methods->ModifySendStatus(
            grpc::Status(grpc::StatusCode::UNAUTHENTICATED, reason_));
        methods->GetSendTrailingMetadata()->clear();
      }
    }
    methods->Proceed();
  }

 private:
  std::string_view method() const {
    const char* m = info_->method();
    return m == nullptr ? std::string_view() : std::string_view(m);
  }

  void OnMetadata(std::multimap<grpc::string_ref, grpc::string_ref>* md) {
    md->erase(grpc::string_ref(kVerdictKey));
    grpc::ServerContextBase* ctx = info_->server_context();
    // Built on demand (a lock and an allocation): only mutual TLS needs it.
    std::shared_ptr<const grpc::AuthContext> auth_context;
    if (auth_->mtls()) auth_context = ctx->auth_context();
    absl::Status s = auth_->Check(method(), *md, auth_context.get());
    if (s.ok()) return;
    denied_ = true;
    reason_ = std::string(s.message());
    // The value points into this interceptor, which lives as long as the
    // call's context.
    md->emplace(grpc::string_ref(kVerdictKey), grpc::string_ref(reason_));
    logger_.Log(LogLevel::kInfo,
                "component=auth event=denied method=", method(),
                " peer=", LogQuote(ctx->peer()), " reason=", LogQuote(reason_));
  }

  // A refused call's messages never leave: reflection's become an error
  // response its clients report; others are dropped, and a stream is then
  // cancelled (it would otherwise wait, silent, for a handler that may
  // never finish; our own handlers finish refused calls at once).
  void OnSendMessage(grpc::ByteBuffer* buffer) {
    if (IsReflection(method())) {
      const std::string error =
          ReflectionError(grpc::StatusCode::UNAUTHENTICATED, reason_);
      grpc::Slice slice(error);
      *buffer = grpc::ByteBuffer(&slice, 1);
      return;
    }
    buffer->Clear();
    if (info_->type() != grpc::experimental::ServerRpcInfo::Type::UNARY) {
      info_->server_context()->TryCancel();
    }
  }

  grpc::experimental::ServerRpcInfo* const info_;
  const std::shared_ptr<const Authenticator> auth_;
  const Logger& logger_;
  bool denied_ = false;
  std::string reason_;
};

class AuthInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  AuthInterceptorFactory(std::shared_ptr<const Authenticator> auth,
                         const Logger& logger)
      : auth_(std::move(auth)), logger_(logger) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    const char* m = info->method();
    if (!auth_->mtls() &&
        Authenticator::TokenExempt(m == nullptr ? "" : std::string_view(m))) {
      return nullptr;
    }
    return new AuthInterceptor(info, auth_, logger_);
  }

 private:
  const std::shared_ptr<const Authenticator> auth_;
  const Logger& logger_;
};

}  // namespace

bool IsLoopbackListenAddress(std::string_view listen) {
  // A path socket is guarded by its file's permissions; an abstract one by
  // nothing (any process of the network namespace may connect).
  if (listen.rfind("unix:", 0) == 0) return true;
  if (listen.rfind("unix-abstract:", 0) == 0) return false;
  for (std::string_view scheme : {"ipv4:", "ipv6:", "dns:///", "dns:"}) {
    if (listen.rfind(scheme, 0) == 0) {
      listen.remove_prefix(scheme.size());
      break;
    }
  }
  std::string_view host = listen;
  if (!host.empty() && host.front() == '[') {
    const std::size_t close = host.find(']');
    if (close == std::string_view::npos) return false;
    host = host.substr(1, close - 1);
  } else if (const std::size_t colon = host.rfind(':');
             colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (host.empty()) return false;  // every interface
  std::string h(host);
  for (char& c : h)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (h == "localhost" || h == "localhost.") return true;
  in_addr v4;
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

absl::Status CallAuthVerdict(const grpc::ServerContextBase& context) {
  const auto& md = context.client_metadata();
  const auto it = md.find(grpc::string_ref(kVerdictKey));
  if (it == md.end()) return absl::OkStatus();
  return absl::UnauthenticatedError(
      std::string(it->second.data(), it->second.size()));
}

void Authenticator::X509StoreDeleter::operator()(void* store) const {
  X509_STORE_free(static_cast<X509_STORE*>(store));
}

Authenticator::~Authenticator() = default;

bool Authenticator::TokenExempt(std::string_view method) {
  // Only the unary Check (see the header: Watch streams are not exempt).
  return method == "/grpc.health.v1.Health/Check";
}

absl::StatusOr<std::shared_ptr<const Authenticator::Digests>>
Authenticator::LoadTokens() const {
  auto text = ReadFile("token_file", token_file_);
  if (!text.ok()) return text.status();
  auto digests = std::make_shared<Digests>();
  std::string_view rest = *text;
  int line_no = 0;
  while (!rest.empty()) {
    ++line_no;
    const std::size_t nl = rest.find('\n');
    std::string_view line = Trim(rest.substr(0, nl));
    rest =
        nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (line.empty() || line.front() == '#') continue;
    for (const char c : line) {
      const auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u > 0x7e) {
        return absl::InvalidArgumentError(
            StrCat("--token_file=", token_file_, ": line ", line_no,
                   ": a token must be printable ASCII without spaces"));
      }
    }
    digests->push_back(Sha256(line));
  }
  if (digests->empty()) {
    return absl::InvalidArgumentError(
        StrCat("--token_file=", token_file_,
               ": no token in it (one per line; blank lines and '#' "
               "comments are ignored)"));
  }
  struct stat st;
  if (stat(token_file_.c_str(), &st) == 0 && (st.st_mode & 0077) != 0) {
    logger_.Log(LogLevel::kWarning,
                "component=auth event=token_file_not_private file=",
                LogQuote(token_file_),
                " hint=\"chmod 600: others may read the tokens\"");
  }
  return std::shared_ptr<const Digests>(std::move(digests));
}

std::shared_ptr<const Authenticator::Digests> Authenticator::CurrentTokens()
    const {
  absl::ReaderMutexLock lock(&tokens_mu_);
  return token_digests_;
}

std::size_t Authenticator::tokens() const {
  const std::shared_ptr<const Digests> t = CurrentTokens();
  return t == nullptr ? 0 : t->size();
}

absl::StatusOr<std::size_t> Authenticator::ReloadTokens() {
  if (!token_file()) {
    return absl::FailedPreconditionError(
        "no --token_file to reload (tokens are off)");
  }
  auto tokens = LoadTokens();
  if (!tokens.ok()) {
    logger_.Log(LogLevel::kError,
                "component=auth event=tokens_reload_failed file=",
                LogQuote(token_file_), " kept=", this->tokens(),
                " error=", LogQuote(tokens.status().ToString()));
    return tokens.status();
  }
  const std::size_t n = (*tokens)->size();
  {
    absl::MutexLock lock(&tokens_mu_);
    token_digests_ = *std::move(tokens);
  }
  logger_.Log(LogLevel::kInfo, "component=auth event=tokens_reloaded file=",
              LogQuote(token_file_), " tokens=", n);
  return n;
}

absl::Status Authenticator::MetricsAccess(std::string_view metrics_listen,
                                          bool* needs_token) const {
  *needs_token = false;
  if (metrics_public_ || IsLoopbackListenAddress(metrics_listen)) {
    return absl::OkStatus();
  }
  if (token_file()) {
    *needs_token = true;
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(StrCat(
      "--metrics_listen=", metrics_listen,
      ": not a loopback address, and no --token_file is configured to "
      "protect it; give --token_file (scrapes then send \"Authorization: "
      "Bearer <token>\"), or --metrics_public to serve the metrics to "
      "anyone who can reach it"));
}

absl::StatusOr<std::shared_ptr<Authenticator>> Authenticator::Create(
    const AuthOptions& o, std::string_view listen, const Logger& logger) {
  std::shared_ptr<Authenticator> a(new Authenticator(logger));

  // TLS.
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        o.tls_cert_file.empty()
            ? "--tls_key: given without --tls_cert (TLS needs both)"
            : "--tls_cert: given without --tls_key (TLS needs both)");
  }
  if (!o.tls_client_ca_file.empty() && o.tls_cert_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_client_ca: mutual TLS needs TLS: give --tls_cert and "
        "--tls_key too");
  }
  if (!o.tls_cert_file.empty()) {
    auto cert = ReadFile("tls_cert", o.tls_cert_file);
    if (!cert.ok()) return cert.status();
    auto key = ReadFile("tls_key", o.tls_key_file);
    if (!key.ok()) return key.status();
    std::vector<X509Ptr> certs = ParseCerts(*cert);
    if (certs.empty()) {
      return absl::InvalidArgumentError(
          StrCat("--tls_cert=", o.tls_cert_file, ": no PEM certificate in it"));
    }
    std::unique_ptr<BIO, BioDeleter> bio(
        BIO_new_mem_buf(key->data(), static_cast<int>(key->size())));
    std::unique_ptr<EVP_PKEY, KeyDeleter> pkey(
        bio == nullptr
            ? nullptr
            : PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    ERR_clear_error();
    if (pkey == nullptr) {
      return absl::InvalidArgumentError(
          StrCat("--tls_key=", o.tls_key_file,
                 ": no unencrypted PEM private key in it"));
    }
    if (X509_check_private_key(certs[0].get(), pkey.get()) != 1) {
      ERR_clear_error();
      return absl::InvalidArgumentError(StrCat(
          "--tls_key=", o.tls_key_file,
          ": does not match the certificate of --tls_cert=", o.tls_cert_file));
    }
    if (X509_cmp_current_time(X509_get0_notAfter(certs[0].get())) < 0) {
      logger.Log(LogLevel::kWarning,
                 "component=auth event=server_certificate_expired file=",
                 LogQuote(o.tls_cert_file));
    }
    a->cert_pem_ = *std::move(cert);
    a->key_pem_ = *std::move(key);
  }
  if (!o.tls_client_ca_file.empty()) {
    auto ca = ReadFile("tls_client_ca", o.tls_client_ca_file);
    if (!ca.ok()) return ca.status();
    std::vector<X509Ptr> cas = ParseCerts(*ca);
    if (cas.empty()) {
      return absl::InvalidArgumentError(
          StrCat("--tls_client_ca=", o.tls_client_ca_file,
                 ": no PEM certificate in it"));
    }
    std::unique_ptr<void, X509StoreDeleter> store(X509_STORE_new());
    if (store == nullptr) return absl::ResourceExhaustedError("X509_STORE_new");
    for (const X509Ptr& c : cas) {
      if (X509_STORE_add_cert(static_cast<X509_STORE*>(store.get()), c.get()) !=
          1) {
        ERR_clear_error();  // a duplicate: harmless
      }
    }
    a->client_ca_pem_ = *std::move(ca);
    a->client_ca_ = std::move(store);
  }

  // Tokens.
  a->token_file_ = o.token_file;
  a->metrics_public_ = o.metrics_public;
  if (!o.token_file.empty()) {
    auto tokens = a->LoadTokens();
    if (!tokens.ok()) return tokens.status();
    absl::MutexLock lock(&a->tokens_mu_);
    a->token_digests_ = *std::move(tokens);
  }

  // Who can reach the listener. TLS alone is no answer: it encrypts, but
  // any client that trusts the certificate's CA is served.
  if (!IsLoopbackListenAddress(listen) && !a->mtls() && !a->token_file() &&
      !o.insecure_listen_anywhere) {
    return absl::FailedPreconditionError(StrCat(
        "--listen=", listen,
        ": not a loopback address, and neither tokens nor mutual TLS are "
        "configured, so anyone who can reach it could run jobs (TLS with "
        "only --tls_cert encrypts but does not authenticate clients); give "
        "--token_file, or --tls_client_ca with --tls_cert and --tls_key, or "
        "--insecure_listen_anywhere to listen there anyway"));
  }
  return a;
}

std::shared_ptr<grpc::ServerCredentials> Authenticator::ServerCredentials()
    const {
  if (!tls()) return grpc::InsecureServerCredentials();
  // With mutual TLS the client's certificate is requested but verified by
  // the interceptor, so a missing or untrusted one gets UNAUTHENTICATED.
  grpc::SslServerCredentialsOptions ssl(
      mtls() ? GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY
             : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ssl.pem_root_certs = client_ca_pem_;
  ssl.pem_key_cert_pairs.push_back({key_pem_, cert_pem_});
  return grpc::SslServerCredentials(ssl);
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
Authenticator::NewInterceptorFactory() {
  if (!checks_calls()) return nullptr;
  return std::make_unique<AuthInterceptorFactory>(shared_from_this(), logger_);
}

absl::Status Authenticator::Check(
    std::string_view method,
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
    const grpc::AuthContext* auth_context) const {
  if (mtls()) {
    absl::Status s = CheckClientCert(auth_context);
    if (!s.ok()) return s;
  }
  if (token_file() && !TokenExempt(method)) return CheckToken(metadata);
  return absl::OkStatus();
}

absl::Status Authenticator::CheckBearer(std::string_view authorization) const {
  if (authorization.empty()) return absl::UnauthenticatedError(kMissingToken);
  std::multimap<grpc::string_ref, grpc::string_ref> metadata;
  metadata.emplace(
      grpc::string_ref("authorization"),
      grpc::string_ref(authorization.data(), authorization.size()));
  return CheckToken(metadata);
}

absl::Status Authenticator::CheckToken(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const {
  const auto [begin, end] = metadata.equal_range("authorization");
  if (begin == end) return absl::UnauthenticatedError(kMissingToken);
  const std::shared_ptr<const Digests> tokens = CurrentTokens();
  bool well_formed = false;
  bool match = false;
  for (auto it = begin; it != end; ++it) {
    const std::optional<std::string_view> token =
        BearerToken(std::string_view(it->second.data(), it->second.size()));
    if (!token) continue;
    well_formed = true;
    if (tokens == nullptr) continue;
    // Digests make the comparison independent of the token's length and
    // content; every stored token is compared (no early exit).
    const Digest d = Sha256(*token);
    for (const Digest& t : *tokens) {
      match |= CRYPTO_memcmp(d.data(), t.data(), d.size()) == 0;
    }
  }
  if (match) return absl::OkStatus();
  return absl::UnauthenticatedError(well_formed ? kInvalidToken
                                                : kMalformedAuthorization);
}

absl::Status Authenticator::CheckClientCert(
    const grpc::AuthContext* auth_context) const {
  if (auth_context == nullptr) {
    return absl::UnauthenticatedError(kNoClientCert);
  }
  const std::vector<grpc::string_ref> leaves =
      auth_context->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (leaves.empty()) return absl::UnauthenticatedError(kNoClientCert);
  const std::string leaf(leaves[0].data(), leaves[0].size());
  std::string chain;
  for (const grpc::string_ref& c : auth_context->FindPropertyValues(
           GRPC_X509_PEM_CERT_CHAIN_PROPERTY_NAME)) {
    chain.append(c.data(), c.size());
  }
  const Digest digest = Sha256(StrCat(leaf, "\n", chain));
  const std::string key(reinterpret_cast<const char*>(digest.data()),
                        digest.size());
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    const auto it = cert_cache_.find(key);
    if (it != cert_cache_.end() && now < it->second.expires) {
      return it->second.status;
    }
  }
  absl::Time not_after = absl::InfinitePast();
  absl::Status s = VerifyChain(leaf, chain, &not_after);
  if (!s.ok() && !absl::IsUnauthenticated(s)) return s;  // not cached
  const absl::Time expires = s.ok() ? std::min(now + kCertVerdictTtl, not_after)
                                    : now + kCertFailureTtl;
  absl::MutexLock lock(&mu_);
  if (cert_cache_.size() >= kMaxCachedCerts) cert_cache_.clear();
  cert_cache_[key] = CachedVerdict{s, expires};
  return s;
}

absl::Status Authenticator::VerifyChain(const std::string& leaf_pem,
                                        const std::string& chain_pem,
                                        absl::Time* expires) const {
  std::vector<X509Ptr> leaf = ParseCerts(leaf_pem);
  if (leaf.empty()) {
    return absl::UnauthenticatedError(
        StrCat(kUntrustedClientCert, ": not a PEM certificate"));
  }
  *expires = Asn1ToTime(X509_get0_notAfter(leaf[0].get()));
  std::vector<X509Ptr> chain = ParseCerts(chain_pem);
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  absl::Status status;
  if (untrusted == nullptr || ctx == nullptr) {
    status = absl::ResourceExhaustedError(
        "cannot verify the client's "
        "certificate: out of memory");
  } else {
    for (const X509Ptr& c : chain) sk_X509_push(untrusted, c.get());
    if (X509_STORE_CTX_init(ctx, static_cast<X509_STORE*>(client_ca_.get()),
                            leaf[0].get(), untrusted) != 1) {
      status = absl::ResourceExhaustedError(
          "cannot verify the client's certificate: X509_STORE_CTX_init");
    } else {
      X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
      if (X509_verify_cert(ctx) != 1) {
        status = absl::UnauthenticatedError(StrCat(
            kUntrustedClientCert, ": ",
            X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx))));
      }
    }
  }
  ERR_clear_error();
  if (ctx != nullptr) X509_STORE_CTX_free(ctx);
  if (untrusted != nullptr) sk_X509_free(untrusted);  // not the certs
  return status;
}

}  // namespace awaitd::server
