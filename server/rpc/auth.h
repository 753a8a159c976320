// Authenticator: who may call the daemon. TLS (and mutual TLS) credentials
// for the listener, bearer tokens from a file, and the server interceptor
// that checks every call against them.
//
//   auto auth = Authenticator::Create(options.auth, options.listen, logger);
//   if (!auth.ok()) return auth.status();       // names the flag
//   builder.AddListeningPort(listen, (*auth)->ServerCredentials(), &port);
//   if (auto f = (*auth)->NewInterceptorFactory()) interceptors.push_back(...);
//
// How a call is refused. gRPC's AuthMetadataProcessor cannot be used (it
// aborts on insecure credentials, and token-only daemons listen without
// TLS), and a C++ server interceptor cannot end a call itself. So the
// interceptor, at POST_RECV_INITIAL_METADATA (before gRPC invokes the
// method's handler), checks the call and, for a refused one:
//   - leaves a verdict in the call's received metadata (CallAuthVerdict()
//     reads it; any copy the client sent is removed first, so it cannot be
//     forged), which the Jobs handlers consult before doing anything;
//   - drops every message the handler sends (services we do not own, like
//     reflection, reveal nothing);
//   - rewrites the final status to UNAUTHENTICATED with the reason.
//
// What is checked, in this order (both when both are configured):
//   1. mutual TLS (--tls_client_ca): the client's certificate chain is
//      verified here against the CA, with OpenSSL (validity dates included),
//      and not in the TLS handshake, so that a missing or untrusted
//      certificate is refused with UNAUTHENTICATED rather than a failed
//      handshake (UNAVAILABLE). Verdicts are cached per distinct chain.
//   2. bearer tokens (--token_file): "authorization: Bearer <token>",
//      compared in constant time (SHA-256 digests) with every token of the
//      file. grpc.health.v1.Health/Check is exempt: load balancers and
//      probes cannot send tokens. Only Check, a unary call answered from
//      memory: Watch is a stream that never ends by itself, so an
//      unauthenticated client could hold any number of them open; it needs
//      a token like every other method.
//
// The token file is read at Create and again by ReloadTokens (SIGHUP): a
// reload swaps the whole set at once, and a file that cannot be read or
// holds no token leaves the old set in place.
//
// Who may listen where (Create refuses the rest):
//   - a loopback --listen (IsLoopbackListenAddress) needs nothing;
//   - any other needs tokens or mutual TLS: TLS with only a server
//     certificate encrypts but does not say who the client is; or
//     --insecure_listen_anywhere;
//   - --metrics_listen likewise (MetricsAccess): loopback is open; any
//     other address needs the tokens (scrapes send "Authorization: Bearer
//     <token>") or --metrics_public.
//
// Thread safety: after Create, all methods are safe for concurrent use.
#ifndef AWAITD_SERVER_RPC_AUTH_H_
#define AWAITD_SERVER_RPC_AUTH_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/logger.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_interceptor.h"
#include "grpcpp/support/string_ref.h"

namespace awaitd::server {

struct AuthOptions {
  // --tls_cert / --tls_key: the daemon's PEM certificate (chain) and key.
  // Both or neither.
  std::string tls_cert_file;
  std::string tls_key_file;
  // --tls_client_ca: PEM CA certificates that sign the clients'
  // certificates; turns on mutual TLS. Requires TLS.
  std::string tls_client_ca_file;
  // --token_file: bearer tokens, one per line ('#' comments and blank
  // lines ignored).
  std::string token_file;
  // --insecure_listen_anywhere: allow a non-loopback --listen without
  // tokens or mutual TLS.
  bool insecure_listen_anywhere = false;
  // --metrics_public: serve a non-loopback --metrics_listen to anyone, with
  // or without tokens.
  bool metrics_public = false;
};

// True for addresses only this machine can reach: 127.0.0.0/8, ::1,
// "localhost", and "unix:" sockets (file permissions guard them). "0.0.0.0",
// "[::]" and an empty host listen on every interface and are not loopback;
// nor is a "unix-abstract:" socket, which any process of the network
// namespace (every container sharing it) can connect to.
bool IsLoopbackListenAddress(std::string_view listen);

// The verdict the interceptor left for this call: OK, or UNAUTHENTICATED
// with the reason. OK when no Authenticator checks calls. Cheap (a lookup
// in the call's metadata); call it first thing in a handler.
absl::Status CallAuthVerdict(const grpc::ServerContextBase& context);

class Authenticator : public std::enable_shared_from_this<Authenticator> {
 public:
  // Reads and checks the files (errors name the flag: INVALID_ARGUMENT for
  // a bad combination or content, FAILED_PRECONDITION for an unreadable file
  // or a non-loopback `listen` without tokens or mutual TLS).
  static absl::StatusOr<std::shared_ptr<Authenticator>> Create(
      const AuthOptions& options, std::string_view listen,
      const Logger& logger);

  Authenticator(const Authenticator&) = delete;
  Authenticator& operator=(const Authenticator&) = delete;

  // TLS credentials when --tls_cert is set, else insecure ones.
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials() const;

  // The interceptor factory, or null when no call needs checking (neither
  // tokens nor mutual TLS). The factory shares ownership of this object.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  NewInterceptorFactory();

  bool tls() const { return !cert_pem_.empty(); }
  bool mtls() const { return client_ca_ != nullptr; }
  // Whether --token_file is set (calls need a token), and how many tokens
  // it holds now.
  bool token_file() const { return !token_file_.empty(); }
  std::size_t tokens() const ABSL_LOCKS_EXCLUDED(tokens_mu_);
  bool checks_calls() const { return mtls() || token_file(); }

  // Reads --token_file again and, if it holds tokens, replaces the set
  // (calls already checked are not affected). Returns how many tokens are
  // now valid; an error (naming the flag) leaves the old set in place.
  // FAILED_PRECONDITION without --token_file.
  absl::StatusOr<std::size_t> ReloadTokens() ABSL_LOCKS_EXCLUDED(tokens_mu_);

  // Whether `method` ("/pkg.Service/Method") needs a token.
  static bool TokenExempt(std::string_view method);

  // How the metrics endpoint on `metrics_listen` is protected: OK with
  // *needs_token set to whether a scrape must carry a bearer token, or
  // FAILED_PRECONDITION naming --metrics_listen for a non-loopback address
  // with neither tokens nor --metrics_public.
  absl::Status MetricsAccess(std::string_view metrics_listen,
                             bool* needs_token) const;

  // The verdict on an HTTP "Authorization" header value (empty: none): OK
  // for "Bearer <one of the tokens>", else UNAUTHENTICATED with the reason.
  absl::Status CheckBearer(std::string_view authorization) const
      ABSL_LOCKS_EXCLUDED(tokens_mu_);

  // The verdict for a call: OK, or UNAUTHENTICATED with the reason.
  absl::Status Check(
      std::string_view method,
      const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
      const grpc::AuthContext* auth_context) const ABSL_LOCKS_EXCLUDED(mu_);

  ~Authenticator();

 private:
  struct X509StoreDeleter {
    void operator()(void* store) const;
  };
  using Digest = std::array<std::uint8_t, 32>;
  struct CachedVerdict {
    absl::Status status;
    absl::Time expires;
  };

  using Digests = std::vector<Digest>;

  explicit Authenticator(const Logger& logger) : logger_(logger) {}
  // The tokens of `token_file_`, or an error naming the flag.
  absl::StatusOr<std::shared_ptr<const Digests>> LoadTokens() const;
  std::shared_ptr<const Digests> CurrentTokens() const
      ABSL_LOCKS_EXCLUDED(tokens_mu_);
  absl::Status CheckToken(
      const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const
      ABSL_LOCKS_EXCLUDED(tokens_mu_);
  absl::Status CheckClientCert(const grpc::AuthContext* auth_context) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Verifies a chain with OpenSSL; `expires` is when a success stops
  // holding (the leaf's notAfter).
  absl::Status VerifyChain(const std::string& leaf_pem,
                           const std::string& chain_pem,
                           absl::Time* expires) const;

  const Logger& logger_;
  std::string cert_pem_;
  std::string key_pem_;
  std::string client_ca_pem_;
  // An X509_STORE* (OpenSSL types stay out of this header).
  std::unique_ptr<void, X509StoreDeleter> client_ca_;
  std::string token_file_;
  bool metrics_public_ = false;

  // The valid tokens: replaced whole by ReloadTokens; a check holds its
  // snapshot without the lock.
  mutable absl::Mutex tokens_mu_;
  std::shared_ptr<const Digests> token_digests_ ABSL_GUARDED_BY(tokens_mu_);

  mutable absl::Mutex mu_;
  // Client chain (leaf + chain PEM) -> verdict; bounded, cleared when full.
  mutable absl::flat_hash_map<std::string, CachedVerdict> cert_cache_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace awaitd::server

#endif  // AWAITD_SERVER_RPC_AUTH_H_
