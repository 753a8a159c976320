// The command line of awaitctl, split into a command, its options and its
// positional words, against the tables of usage.h.
//
//   awaitctl [global options] COMMAND [options and arguments, in any order]
//
// Options are "--name VALUE", "--name=VALUE" or a flag "--name"; "-h" and
// "-q" are short for --help and --quiet. Global options may come before or
// after the command; a command's own options only after it. "--" ends the
// options: every later word is an argument. A word starting with '-' and a
// digit ("-1") is an argument, so a bad number reaches the command's own
// check and gets its message.
//
// Thread safety: ParseCommandLine is pure; an Invocation is a value.
#ifndef AWAITD_CLIENT_AWAITCTL_ARGS_H_
#define AWAITD_CLIENT_AWAITCTL_ARGS_H_

#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/awaitctl/usage.h"

namespace awaitd::awaitctl {

struct Invocation {
  // The command named (null if none). For "help CMD" this is the help
  // command and args[0] is CMD.
  const CommandInfo* command = nullptr;
  // --help or -h was given (anywhere before "--").
  bool help = false;
  bool version = false;
  // The first usage error, if any. Parsing goes on after one, so --help
  // given later on the line is still seen.
  absl::Status error;
  // Positional words after the command, in order.
  std::vector<std::string> args;
  // Option values by name (without "--"), in the order given; "" for flags.
  std::map<std::string, std::vector<std::string>, std::less<>> options;

  bool Has(std::string_view name) const;
  // The last value given for `name`, or nullopt.
  std::optional<std::string> Value(std::string_view name) const;
  std::vector<std::string> Values(std::string_view name) const;

  // Typed readers; INVALID_ARGUMENT names the option and the reason.
  // A duration: seconds ("1.5") or "500ms", "1m30s"; nullopt if absent.
  absl::StatusOr<std::optional<absl::Duration>> Duration(
      std::string_view name) const;
  // An integer in [min, max]; `fallback` if absent.
  absl::StatusOr<long long> Integer(std::string_view name, long long fallback,
                                    long long min, long long max) const;
};

// Parses `words` (argv without argv[0]). Never fails: a usage error is
// recorded in Invocation::error.
Invocation ParseCommandLine(std::span<const std::string> words);

// An integer in [min, max] from `text` (all of it); INVALID_ARGUMENT says
// `what` and why.
absl::StatusOr<long long> ParseInteger(std::string_view text,
                                       std::string_view what, long long min,
                                       long long max);

// A job id: a positive integer; INVALID_ARGUMENT names the word.
absl::StatusOr<std::uint64_t> ParseJobId(std::string_view text);

}  // namespace awaitd::awaitctl

#endif  // AWAITD_CLIENT_AWAITCTL_ARGS_H_
