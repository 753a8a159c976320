// awaitctl's main: command line -> help or command -> connect -> run.
#include "client/awaitctl/app.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "client/awaitctl/args.h"
#include "client/awaitctl/command.h"
#include "client/awaitctl/format.h"
#include "client/awaitctl/interrupts.h"
#include "client/awaitctl/output.h"
#include "client/awaitctl/usage.h"
#include "client/client.h"
#include "common/strings.h"

#ifndef AWAITCTL_VERSION
#define AWAITCTL_VERSION "unknown"
#endif

namespace awaitd::awaitctl {
namespace {

constexpr char kDefaultAddress[] = "127.0.0.1:50051";

// The environment variable `name`, if set and not empty.
std::optional<std::string> Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

// A usage error: the reason, and where to read more. Exit code 2.
int UsageError(Output& out, const CommandInfo* command,
               const absl::Status& status) {
  const std::string_view message(status.message().data(),
                                 status.message().size());
  if (command != nullptr && command->name != "help") {
    out.Error(StrCat(command->name, ": ", message));
    out.PrintErr(
        StrCat("Run 'awaitctl ", command->name, " --help' for its usage.\n"));
  } else {
    out.Error(message);
    out.PrintErr("Run 'awaitctl --help' for usage.\n");
  }
  return kExitUsage;
}

// The client's options from the global flags and the environment.
absl::StatusOr<client::ClientOptions> ReadClientOptions(const Invocation& inv) {
  client::ClientOptions o;
  o.address = inv.Value("address").value_or(
      Env("AWAITD_ADDRESS").value_or(kDefaultAddress));
  if (o.address.empty()) {
    return absl::InvalidArgumentError("--address: must not be empty");
  }
  o.tls = inv.Has("tls");
  o.tls_ca_file = inv.Value("tls-ca").value_or("");
  o.tls_cert_file = inv.Value("tls-cert").value_or("");
  o.tls_key_file = inv.Value("tls-key").value_or("");
  o.tls_server_name = inv.Value("tls-server-name").value_or("");
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert and --tls-key: give both (mutual TLS) or neither");
  }
  for (const auto& [option, path] :
       {std::pair<const char*, const std::string&>{"--tls-ca", o.tls_ca_file},
        {"--tls-cert", o.tls_cert_file},
        {"--tls-key", o.tls_key_file}}) {
    if (!path.empty() && access(path.c_str(), R_OK) != 0) {
      return absl::InvalidArgumentError(StrCat(option, ": cannot read '",
                                               Printable(path),
                                               "': ", std::strerror(errno)));
    }
  }
  if (!o.tls_server_name.empty() && !o.tls && o.tls_ca_file.empty() &&
      o.tls_cert_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-server-name: given without TLS (add --tls)");
  }
  o.token_file = inv.Value("token-file").value_or("");
  if (!o.token_file.empty()) {
    if (inv.Has("token")) {
      return absl::InvalidArgumentError(
          "--token and --token-file: give one or the other");
    }
    if (access(o.token_file.c_str(), R_OK) != 0) {
      return absl::InvalidArgumentError(StrCat("--token-file: cannot read '",
                                               Printable(o.token_file),
                                               "': ", std::strerror(errno)));
    }
  } else {
    o.token = inv.Value("token").value_or(Env("AWAITD_TOKEN").value_or(""));
  }
  absl::StatusOr<std::optional<absl::Duration>> deadline =
      inv.Duration("deadline");
  if (!deadline.ok()) return deadline.status();
  if (*deadline) {
    if (**deadline <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError("--deadline: must be more than 0");
    }
    o.default_deadline = **deadline;
  }
  absl::StatusOr<std::optional<absl::Duration>> connect =
      inv.Duration("connect-timeout");
  if (!connect.ok()) return connect.status();
  if (*connect) o.connect_timeout = **connect;
  return o;
}

}  // namespace

int Main(int argc, char** argv) {
  // Before any thread exists, so every thread inherits the mask.
  Interrupts::BlockSignals();
  const absl::Time start = absl::Now();
  const std::vector<std::string> words(argv + (argc > 0 ? 1 : 0), argv + argc);
  const Invocation inv = ParseCommandLine(words);
  Output out(OutputOptions::Detect(inv.Has("json"), inv.Has("quiet"),
                                   inv.Has("no-color")));

  // Help and version first: they need neither valid arguments nor a daemon.
  if (inv.command != nullptr && inv.command->name == "help" && inv.error.ok()) {
    if (inv.args.empty()) {
      out.Print(TopLevelHelp());
      return kExitOk;
    }
    const CommandInfo* about = FindCommand(inv.args[0]);
    if (about == nullptr || inv.args.size() > 1) {
      return UsageError(
          out, nullptr,
          absl::InvalidArgumentError(
              about == nullptr ? StrCat("help: unknown command '",
                                        Printable(inv.args[0]), "'")
                               : std::string("help: takes one command")));
    }
    out.Print(CommandHelp(*about));
    return kExitOk;
  }
  if (inv.help && (inv.command != nullptr || inv.error.ok())) {
    out.Print(inv.command != nullptr ? CommandHelp(*inv.command)
                                     : TopLevelHelp());
    return kExitOk;
  }
  if (inv.version && inv.error.ok()) {
    out.Print(StrCat("awaitctl ", AWAITCTL_VERSION, "\n"));
    return kExitOk;
  }
  if (!inv.error.ok()) return UsageError(out, inv.command, inv.error);
  if (inv.command == nullptr) {
    return UsageError(out, nullptr,
                      absl::InvalidArgumentError("missing a command"));
  }

  std::unique_ptr<Command> command = NewCommand(inv.command->name);
  if (command == nullptr) {  // the table and the factories disagree
    return UsageError(out, inv.command,
                      absl::InvalidArgumentError("not implemented"));
  }
  if (absl::Status s = command->Parse(inv); !s.ok()) {
    return UsageError(out, inv.command, s);
  }
  absl::StatusOr<client::ClientOptions> options = ReadClientOptions(inv);
  if (!options.ok()) return UsageError(out, nullptr, options.status());

  Interrupts interrupts;
  const std::optional<absl::Duration> deadline =
      options->default_deadline == absl::InfiniteDuration()
          ? std::nullopt
          : std::optional<absl::Duration>(options->default_deadline);
  absl::StatusOr<std::unique_ptr<client::Client>> client =
      client::Client::Connect(*std::move(options));
  if (!client.ok()) {
    out.Error(Printable(std::string_view(client.status().message().data(),
                                         client.status().message().size())));
    return ExitCodeFor(client.status());
  }
  // The client lives until the process ends, never destroyed: destroying
  // its channel releases gRPC's callback completion queue while the
  // queue's thread may still be finishing the last callback, and gRPC 1.51
  // then aborts (grpc_cq_internal_unref: "prior > 0"), in about one run of
  // a hundred. Kept in a static, so leak checkers see it is still reachable.
  static client::Client* const kept = client->release();
  Context ctx{.client = *kept,
              .out = out,
              .interrupts = interrupts,
              .start = start,
              .deadline = deadline};
  return command->Run(ctx);
}

}  // namespace awaitd::awaitctl
