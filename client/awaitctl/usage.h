// awaitctl's commands and options, as data: the parser (args.h) reads them to
// know which options exist and which take a value, and the help texts are
// rendered from them, so the two never disagree.
//
// Thread safety: the tables are immutable; the functions are pure.
#ifndef AWAITD_CLIENT_AWAITCTL_USAGE_H_
#define AWAITD_CLIENT_AWAITCTL_USAGE_H_

#include <span>
#include <string>
#include <string_view>

namespace awaitd::awaitctl {

// One option: "--name VALUE" (or a flag when `value` is empty).
struct OptionInfo {
  std::string_view name;   // without the leading "--"
  std::string_view value;  // the placeholder ("DURATION"); empty: a flag
  std::string_view help;
  char short_name = '\0';   // "-q" for --quiet; '\0' for none
  bool repeatable = false;  // every value is kept, not just the last
};

// One subcommand.
struct CommandInfo {
  std::string_view name;
  std::string_view summary;  // one line, for the command list
  std::string_view usage;    // after "awaitctl "
  std::string_view details;  // paragraphs (may be empty)
  std::span<const OptionInfo> options;
  std::string_view examples;  // lines, each a command without "$ "
  bool long_wait = false;     // waits on jobs: progress and Ctrl-C apply
};

// Every subcommand, in the order of the top-level help.
std::span<const CommandInfo> Commands();
// The options every command accepts, before or after its name.
std::span<const OptionInfo> GlobalOptions();

// The command named `name`, or null.
const CommandInfo* FindCommand(std::string_view name);
// `name` among the options of `command` (null: global ones only), or null.
const OptionInfo* FindOption(const CommandInfo* command, std::string_view name);
const OptionInfo* FindShortOption(const CommandInfo* command, char name);

// "awaitctl --help" and "awaitctl help CMD".
std::string TopLevelHelp();
std::string CommandHelp(const CommandInfo& command);

// The closest of `candidates` to `word` within a small edit distance, for
// "did you mean" hints; empty if none is close.
std::string ClosestMatch(std::string_view word,
                         std::span<const std::string_view> candidates);

}  // namespace awaitd::awaitctl

#endif  // AWAITD_CLIENT_AWAITCTL_USAGE_H_
