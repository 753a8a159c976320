// Command: one awaitctl subcommand, in two steps: Parse reads its options
// and arguments (no daemon needed, so usage errors come first and fast),
// Run talks to the daemon and returns the exit code. Also the helpers the
// commands share: exit codes, error reports, interruptible calls.
//
// Exit codes (the table in `awaitctl --help`):
//   0 success; 1 a job failed or was cancelled, or the daemon refused the
//   call (NOT_FOUND, FAILED_PRECONDITION, ...); 2 usage error, also the
//   daemon's INVALID_ARGUMENT; 3 daemon unreachable (UNAVAILABLE); 4 timed
//   out (DEADLINE_EXCEEDED); 128 + signal when interrupted (130: Ctrl-C).
//
// Thread safety: a Command is used by one thread.
#ifndef AWAITD_CLIENT_AWAITCTL_COMMAND_H_
#define AWAITD_CLIENT_AWAITCTL_COMMAND_H_

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/awaitctl/args.h"
#include "client/awaitctl/interrupts.h"
#include "client/awaitctl/output.h"
#include "client/client.h"
#include "client/spec.h"

namespace awaitd::awaitctl {

enum ExitCode : int {
  kExitOk = 0,
  kExitFailed = 1,
  kExitUsage = 2,
  kExitUnreachable = 3,
  kExitTimeout = 4,
};

// What a running command works with.
struct Context {
  client::Client& client;
  Output& out;
  Interrupts& interrupts;
  // When the command started: the zero of --events times and of summaries.
  absl::Time start;
  // --deadline, for messages (the client applies it to every call).
  std::optional<absl::Duration> deadline;
};

class Command {
 public:
  virtual ~Command() = default;
  // Reads the options and arguments; INVALID_ARGUMENT names the bad one.
  virtual absl::Status Parse(const Invocation& inv) = 0;
  // Runs against the daemon; returns the exit code.
  virtual int Run(Context& ctx) = 0;
};

// The command named `name` (a name from usage.h's table; not "help").
std::unique_ptr<Command> NewCommand(std::string_view name);

// The subcommands, by file.
std::unique_ptr<Command> NewSubmitCommand();
std::unique_ptr<Command> NewGetCommand();
std::unique_ptr<Command> NewCancelCommand();
std::unique_ptr<Command> NewListCommand();
std::unique_ptr<Command> NewWatchCommand();
std::unique_ptr<Command> NewKindsCommand();
std::unique_ptr<Command> NewLimitsCommand();
std::unique_ptr<Command> NewLimitCommand();
std::unique_ptr<Command> NewDeleteLimitCommand();
std::unique_ptr<Command> NewHealthCommand();
std::unique_ptr<Command> NewWaitCommand();
std::unique_ptr<Command> NewGatherCommand();
std::unique_ptr<Command> NewWaitForCommand();
std::unique_ptr<Command> NewAsCompletedCommand();
std::unique_ptr<Command> NewGroupCommand();

// --- Shared by the commands ------------------------------------------------

// The exit code for a failed call (the table above).
int ExitCodeFor(const absl::Status& status);

// Prints why `status` failed (with a hint where one helps) and returns its
// exit code; when the user interrupted, says so instead and returns 130.
int Fail(Context& ctx, const absl::Status& status);

// An INVALID_ARGUMENT naming "jobs[i]" of a call whose jobs were `inputs`
// also shows that spec as it was typed; other statuses pass through.
absl::Status WithSpec(const absl::Status& status,
                      std::span<const client::Input> inputs);

// After Ctrl-C: says the call was cancelled, not the jobs, and how to
// cancel them (`ids`, when known); returns 130.
int Interrupted(Context& ctx, std::span<const std::uint64_t> ids);

// Job ids from words ("7"); INVALID_ARGUMENT names a bad word.
absl::StatusOr<std::vector<std::uint64_t>> ParseIds(
    std::span<const std::string> words);

// Inputs from words (ids and specs), `count` times over.
absl::StatusOr<std::vector<client::Input>> ParseInputWords(
    std::span<const std::string> words, long long count);

// The inputs as ids, in order: specs are submitted first, in one batch.
absl::StatusOr<std::vector<std::uint64_t>> SubmitSpecs(
    Context& ctx, const std::vector<client::Input>& inputs);

// `ids` without repeats, in first-seen order.
std::vector<std::uint64_t> Unique(std::span<const std::uint64_t> ids);

// Prints `text` (a JSON document or line) and a newline.
void PrintJson(Context& ctx, std::string_view text);

// Runs the callback form of a call and waits for its answer; Ctrl-C
// cancels it (CANCELLED, with ctx.interrupts.interrupted() true).
template <typename T>
absl::StatusOr<T> Await(
    Context& ctx,
    const std::function<client::CallHandle(client::Callback<T>)>& start) {
  // Shared with the callback: set_value may still be returning when get()
  // does.
  auto promise = std::make_shared<std::promise<absl::StatusOr<T>>>();
  std::future<absl::StatusOr<T>> future = promise->get_future();
  client::CallHandle handle = start(
      [promise](absl::StatusOr<T> r) { promise->set_value(std::move(r)); });
  Interrupts::Scope scope =
      ctx.interrupts.OnInterrupt([handle]() mutable { handle.Cancel(); });
  return future.get();
}

}  // namespace awaitd::awaitctl

#endif  // AWAITD_CLIENT_AWAITCTL_COMMAND_H_
