// The command and option tables of awaitctl, and the help rendered from them.
#include "client/awaitctl/usage.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/strings.h"

namespace awaitd::awaitctl {
namespace {

constexpr OptionInfo kGlobalOptions[] = {
    {.name = "address",
     .value = "ADDR",
     .help = "the daemon: host:port or unix:/path (default: $AWAITD_ADDRESS, "
             "else 127.0.0.1:50051)"},
    {.name = "tls",
     .help = "connect with TLS (implied by the three --tls-* files)"},
    {.name = "tls-ca",
     .value = "FILE",
     .help = "PEM roots that sign the daemon's certificate (default: the "
             "system's)"},
    {.name = "tls-cert",
     .value = "FILE",
     .help = "this client's PEM certificate, for mutual TLS"},
    {.name = "tls-key",
     .value = "FILE",
     .help = "this client's PEM private key, for mutual TLS"},
    {.name = "tls-server-name",
     .value = "NAME",
     .help = "the name checked against the daemon's certificate"},
    {.name = "token",
     .value = "TOKEN",
     .help = "bearer token sent with every call (default: $AWAITD_TOKEN)"},
    {.name = "token-file",
     .value = "FILE",
     .help = "read the bearer token from FILE (its first line that is not "
             "blank or a # comment); unlike --token, not visible to ps"},
    {.name = "deadline",
     .value = "DURATION",
     .help = "deadline of each call (default: none); when it passes the call "
             "ends (exit 4), the jobs do not"},
    {.name = "connect-timeout",
     .value = "DURATION",
     .help = "how long to wait for the daemon to answer (default 5s; exit 3 "
             "after it)"},
    {.name = "json",
     .help = "print JSON for scripts: one document, or one object per line "
             "for streams"},
    {.name = "quiet",
     .help = "no progress line and no summary lines; submit prints only ids",
     .short_name = 'q'},
    {.name = "no-color",
     .help = "never colour the output (also: NO_COLOR set, or not a "
             "terminal)"},
    {.name = "help", .help = "show help and exit", .short_name = 'h'},
    {.name = "version", .help = "print the version and exit"},
};

constexpr OptionInfo kSubmitOptions[] = {
    {.name = "name",
     .value = "NAME",
     .help = "name of each job (default Job-<n>); a spec's @name= wins"},
    {.name = "timeout",
     .value = "DURATION",
     .help = "each job's own run-time limit: past it the job is cancelled "
             "and fails with TimeoutError"},
    {.name = "delay",
     .value = "DURATION",
     .help = "start the jobs after DURATION (loop.call_later)"},
    {.name = "limit",
     .value = "NAME",
     .help = "hold a permit of the declared limit NAME while running "
             "(repeatable)",
     .repeatable = true},
    {.name = "shield",
     .help = "shield the jobs (asyncio.shield): wait-for timeouts and group "
             "cancellation leave them running"},
    {.name = "idempotency-key",
     .value = "KEY",
     .help = "if a job with KEY exists, return it instead of creating one "
             "(one job only; per spec: @idempotency_key=)"},
    {.name = "count",
     .value = "N",
     .help = "submit N copies of the spec(s), in one batch"},
    {.name = "wait",
     .help = "wait until the jobs are done and print them (exit 1 if one "
             "failed)"},
};

constexpr OptionInfo kCancelOptions[] = {
    {.name = "message",
     .value = "TEXT",
     .help = "the message given to CancelledError (shown in the job's error)"},
};

constexpr OptionInfo kListOptions[] = {
    {.name = "state",
     .value = "STATE",
     .help = "only jobs in STATE: pending, running, succeeded, failed or "
             "cancelled"},
    {.name = "kind", .value = "KIND", .help = "only jobs of KIND"},
    {.name = "name-prefix",
     .value = "PREFIX",
     .help = "only jobs whose name starts with PREFIX"},
    {.name = "limit",
     .value = "N",
     .help = "show at most N jobs (default 100), the oldest first"},
    {.name = "all", .help = "show every matching job"},
};

constexpr OptionInfo kWaitOptions[] = {
    {.name = "first-completed",
     .help = "return when any job is done (FIRST_COMPLETED)"},
    {.name = "first-exception",
     .help = "return when any job fails or is cancelled, else when all are "
             "done (FIRST_EXCEPTION)"},
    {.name = "timeout",
     .value = "DURATION",
     .help = "return after DURATION at the latest; cancels nothing, and is "
             "not an error"},
    {.name = "events",
     .help = "print each state change of the jobs as it happens (with "
             "--json: one WatchResponse object per line, before the result)"},
};

constexpr OptionInfo kGatherOptions[] = {
    {.name = "return-exceptions",
     .help = "report failures as results instead of failing at the first "
             "(exit 0)"},
    {.name = "name",
     .value = "NAME",
     .help = "name of the group job (default Group-<n>)"},
    {.name = "count",
     .value = "N",
     .help = "gather N copies of the given inputs"},
    {.name = "events",
     .help = "print each state change of the jobs as it happens (with "
             "--json: one WatchResponse object per line, before the result)"},
};

constexpr OptionInfo kWaitForOptions[] = {
    {.name = "timeout",
     .value = "DURATION",
     .help = "cancel the job when DURATION passes, wait until it is "
             "cancelled, and exit 4 (default: wait forever)"},
};

constexpr OptionInfo kAsCompletedOptions[] = {
    {.name = "timeout",
     .value = "DURATION",
     .help = "stop after DURATION and exit 4; the jobs left are not "
             "cancelled"},
    {.name = "events",
     .help = "also print each state change of the jobs as it happens (with "
             "--json: one WatchResponse object per line)"},
};

constexpr OptionInfo kGroupOptions[] = {
    {.name = "name",
     .value = "NAME",
     .help = "name of the group job (default Group-<n>)"},
    {.name = "count", .value = "N", .help = "run N copies of the given specs"},
    {.name = "events",
     .help = "print each state change of the jobs as it happens (with "
             "--json: one WatchResponse object per line, before the result)"},
};

constexpr std::string_view kCtrlC =
    "Ctrl-C ends the call, not the jobs: they keep running ('awaitctl cancel "
    "ID' cancels them); awaitctl then exits with 130.";

const std::array<CommandInfo, 16>& CommandTable() {
  static const std::array<CommandInfo, 16> kCommands = {{
      {.name = "submit",
       .summary = "create jobs (asyncio.create_task)",
       .usage = "submit [options] KIND [key=value...] [KIND [key=value...]...]",
       .details =
           "Creates the jobs in one batch, admitted whole or not at all, and "
           "prints each one's id and name (more than 20: a summary). The "
           "options set every spec that does not set its own with @name=, "
           "@timeout=, @delay=, @limit=, @shield or @idempotency_key=.",
       .options = kSubmitOptions,
       .examples = "awaitctl submit sleep seconds=2 result=done\n"
                   "awaitctl submit factorial n=5 factorial n=10 @name=big\n"
                   "awaitctl limit api 10\n"
                   "awaitctl submit --limit api --count 1000 sleep "
                   "seconds=0.1"},
      {.name = "get",
       .summary = "show jobs: state, result or error, times",
       .usage = "get ID...",
       .details = "One id: every field of the job. Several: a table. Exits "
                  "0 whatever the jobs' states.",
       .examples = "awaitctl get 7\nawaitctl --json get 7 8 9"},
      {.name = "cancel",
       .summary = "cancel jobs (Task.cancel)",
       .usage = "cancel [--message TEXT] ID...",
       .details = "Requests cancellation: CancelledError is raised in each "
                  "job at its next suspension point. Prints per id whether "
                  "the request took effect (not for a job already done). "
                  "Cancelling a group job cancels its children.",
       .options = kCancelOptions,
       .examples = "awaitctl cancel 7\nawaitctl cancel --message 'no longer "
                   "needed' 7 8"},
      {.name = "ls",
       .summary = "list jobs (asyncio.all_tasks)",
       .usage = "ls [options]",
       .details = "Lists the jobs the daemon still retains, oldest first.",
       .options = kListOptions,
       .examples = "awaitctl ls --state running\nawaitctl ls --kind sleep "
                   "--limit 10"},
      {.name = "watch",
       .summary = "print state changes as they happen (add_done_callback)",
       .usage = "watch [ID...]",
       .details = "With ids: each job's current state, then its changes, "
                  "until all of them are done. Without: every change of "
                  "every job from now on, until Ctrl-C.",
       .examples = "awaitctl watch 7 8\nawaitctl watch",
       .long_wait = true},
      {.name = "wait",
       .summary = "wait for jobs, print done and pending (asyncio.wait)",
       .usage = "wait [options] INPUT...",
       .details =
           "An INPUT is a job id or a spec; specs are submitted first. "
           "Waits for all jobs (or the first completed / first exception), "
           "then prints the done and the pending ones. Like asyncio.wait it "
           "never fails: exit 0 also with pending or failed jobs.",
       .options = kWaitOptions,
       .examples = "awaitctl wait 7 8 9\nawaitctl wait --first-completed "
                   "sleep seconds=1 sleep seconds=5\nawaitctl wait "
                   "--timeout 2s 7 8",
       .long_wait = true},
      {.name = "gather",
       .summary = "run jobs as a group, results in input order "
                  "(asyncio.gather)",
       .usage = "gather [options] INPUT...",
       .details =
           "An INPUT is a job id or a spec. Prints one row per input, in "
           "input order whatever the completion order. Without "
           "--return-exceptions the first failure ends the command (exit "
           "1) and the other jobs keep running, as in asyncio.",
       .options = kGatherOptions,
       .examples = "awaitctl gather factorial n=2 factorial n=3 factorial "
                   "n=4\n"
                   "awaitctl gather --events sleep seconds=1 sleep "
                   "seconds=0.5\n"
                   "awaitctl gather --return-exceptions 7 fail message=boom",
       .long_wait = true},
      {.name = "wait-for",
       .summary = "wait for one job; a timeout cancels it (asyncio.wait_for)",
       .usage = "wait-for [--timeout DURATION] INPUT",
       .details = "INPUT is a job id or one spec. Prints the job when it "
                  "succeeded; exit 1 if it failed or was cancelled; exit 4 "
                  "on the timeout, after the job was cancelled (a shielded "
                  "job keeps running).",
       .options = kWaitForOptions,
       .examples = "awaitctl wait-for 7\nawaitctl wait-for --timeout 1s "
                   "sleep seconds=5",
       .long_wait = true},
      {.name = "as-completed",
       .summary = "print jobs as they complete (asyncio.as_completed)",
       .usage = "as-completed [--timeout DURATION] [--events] INPUT...",
       .details = "An INPUT is a job id or a spec; specs are submitted "
                  "first. Prints one row per job, in completion order. Exit "
                  "1 if a job failed or was cancelled; exit 4 on the "
                  "timeout (nothing is cancelled).",
       .options = kAsCompletedOptions,
       .examples = "awaitctl as-completed sleep seconds=0.3 result=slow "
                   "echo value=fast",
       .long_wait = true},
      {.name = "group",
       .summary = "run jobs as a TaskGroup: the first failure cancels the "
                  "rest",
       .usage = "group [options] SPEC...",
       .details = "Creates the jobs as one group (asyncio.TaskGroup) and "
                  "waits for all of them. The first job that fails cancels "
                  "its siblings (not shielded ones); then every failure is "
                  "printed and awaitctl exits 1.",
       .options = kGroupOptions,
       .examples = "awaitctl group sleep seconds=1 factorial n=5\nawaitctl "
                   "group sleep seconds=5 fail message=boom after_seconds=0.1",
       .long_wait = true},
      {.name = "kinds",
       .summary = "list the job kinds and their arguments",
       .usage = "kinds",
       .examples = "awaitctl kinds"},
      {.name = "limits",
       .summary = "list the concurrency limits",
       .usage = "limits",
       .examples = "awaitctl limits"},
      {.name = "limit",
       .summary = "declare a concurrency limit (asyncio.Semaphore)",
       .usage = "limit NAME PERMITS",
       .details = "Declares a FIFO semaphore of PERMITS (at least 1) that "
                  "jobs hold while they run (submit --limit NAME, or "
                  "@limit=NAME in a spec). Declaring it again with the same "
                  "size does nothing; with another size fails.",
       .examples = "awaitctl limit api 10"},
      {.name = "delete-limit",
       .summary = "delete an unused concurrency limit",
       .usage = "delete-limit NAME",
       .details = "Deletes a limit declared with `awaitctl limit`. Refused "
                  "while a job that is not done names it (pending or "
                  "running), and for a limit from the daemon's --limit "
                  "flag. Jobs already done keep the name.",
       .examples = "awaitctl delete-limit api"},
      {.name = "health",
       .summary = "check that the daemon is serving",
       .usage = "health",
       .details = "Prints SERVING (exit 0) or NOT_SERVING (exit 1); exit 3 "
                  "if the daemon cannot be reached.",
       .examples = "awaitctl health"},
      {.name = "help",
       .summary = "show help for a command",
       .usage = "help [COMMAND]",
       .examples = "awaitctl help gather"},
  }};
  return kCommands;
}

// "  --name VALUE" or "  -q, --quiet".
std::string OptionSignature(const OptionInfo& o) {
  std::string s = "  ";
  if (o.short_name != '\0')
    StrAppend(&s, "-", std::string(1, o.short_name), ", ");
  StrAppend(&s, "--", o.name);
  if (!o.value.empty()) StrAppend(&s, " ", o.value);
  return s;
}

// Greedy word wrap of `text` into lines of at most kWidth columns, the
// first starting at column `first`, the others indented to `indent`.
constexpr std::size_t kWidth = 79;

std::string Wrap(std::string_view text, std::size_t first, std::size_t indent) {
  std::string out;
  std::size_t column = first;
  bool line_empty = true;
  for (absl::string_view word :
       absl::StrSplit(AbslView(text), ' ', absl::SkipEmpty())) {
    if (!line_empty && column + 1 + word.size() > kWidth) {
      StrAppend(&out, "\n", std::string(indent, ' '));
      column = indent;
      line_empty = true;
    } else if (!line_empty) {
      out += ' ';
      ++column;
    }
    out.append(word.data(), word.size());
    column += word.size();
    line_empty = false;
  }
  return out;
}

void AppendOptions(std::string* out, std::span<const OptionInfo> options) {
  constexpr std::size_t kColumn = 26;
  for (const OptionInfo& o : options) {
    std::string sig = OptionSignature(o);
    if (sig.size() + 2 > kColumn) {
      StrAppend(out, sig, "\n", std::string(kColumn, ' '));
    } else {
      StrAppend(out, sig, std::string(kColumn - sig.size(), ' '));
    }
    StrAppend(out, Wrap(o.help, kColumn, kColumn), "\n");
  }
}

std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::span<const CommandInfo> Commands() { return CommandTable(); }

std::span<const OptionInfo> GlobalOptions() { return kGlobalOptions; }

const CommandInfo* FindCommand(std::string_view name) {
  for (const CommandInfo& c : CommandTable()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

const OptionInfo* FindOption(const CommandInfo* command,
                             std::string_view name) {
  if (command != nullptr) {
    for (const OptionInfo& o : command->options) {
      if (o.name == name) return &o;
    }
  }
  for (const OptionInfo& o : kGlobalOptions) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

const OptionInfo* FindShortOption(const CommandInfo* command, char name) {
  if (command != nullptr) {
    for (const OptionInfo& o : command->options) {
      if (o.short_name == name) return &o;
    }
  }
  for (const OptionInfo& o : kGlobalOptions) {
    if (o.short_name == name) return &o;
  }
  return nullptr;
}

std::string TopLevelHelp() {
  std::string out =
      "awaitctl: the command-line client of awaitd, asyncio's tasks over "
      "gRPC.\n\n"
      "Usage: awaitctl [global options] COMMAND [options] [arguments]\n\n"
      "Commands:\n";
  for (const CommandInfo& c : CommandTable()) {
    std::string name(c.name);
    StrAppend(&out, "  ", name, std::string(15 - name.size(), ' '), c.summary,
              "\n");
  }
  StrAppend(
      &out,
      "\nJob specs: a kind, then its arguments as key=value, then the next "
      "kind:\n"
      "  awaitctl gather factorial n=2 factorial n=3 factorial n=4\n"
      "Values are JSON where they parse (n=3 a number, v=[1,2] a list, "
      "s='\"3\"' the\nstring \"3\"), else text (result=done). Words starting "
      "with @ set the job itself:\n"
      "  @name=NAME @timeout=2s @delay=500ms @start_at=RFC3339 @limit=NAME "
      "@shield\n"
      "  @idempotency_key=KEY\n"
      "Where a command takes INPUTs, a word of digits is an existing job's "
      "id.\n"
      "Durations: seconds (1.5) or 500ms, 2s, 1m30s. 'awaitctl kinds' lists "
      "the kinds.\n\n"
      "Global options (before or after the command):\n");
  AppendOptions(&out, kGlobalOptions);
  StrAppend(
      &out,
      "\nOutput: tables for people (colours only on a terminal), --json for "
      "scripts.\nLong waits show a done/total line on stderr when it is a "
      "terminal.\n\n"
      "Exit codes:\n"
      "  0    success (wait also with pending jobs; gather "
      "--return-exceptions also\n"
      "       with failed ones)\n"
      "  1    a job failed or was cancelled, or the daemon refused the call\n"
      "       (NOT_FOUND, FAILED_PRECONDITION, RESOURCE_EXHAUSTED, ...); "
      "health: not\n"
      "       serving\n"
      "  2    usage error: an unknown command or option, a bad value or job "
      "spec\n"
      "       (also the daemon's INVALID_ARGUMENT)\n"
      "  3    the daemon cannot be reached (UNAVAILABLE)\n"
      "  4    timed out: wait-for or as-completed --timeout, or --deadline\n"
      "  130  interrupted by Ctrl-C: the call was cancelled, the jobs keep "
      "running\n\n"
      "Run 'awaitctl help COMMAND' (or COMMAND --help) for a command's "
      "options.\n");
  return out;
}

std::string CommandHelp(const CommandInfo& command) {
  std::string out = StrCat("awaitctl ", command.name, ": ", command.summary,
                           ".\n\nUsage: awaitctl ", command.usage, "\n");
  if (!command.details.empty()) {
    StrAppend(&out, "\n", Wrap(command.details, 0, 0), "\n");
  }
  if (command.long_wait) {
    StrAppend(&out, "\n", Wrap(kCtrlC, 0, 0), "\n");
  }
  if (!command.options.empty()) {
    StrAppend(&out, "\nOptions:\n");
    AppendOptions(&out, command.options);
  }
  std::string globals;
  for (const OptionInfo& o : kGlobalOptions) {
    StrAppend(&globals, globals.empty() ? "" : " ", "--", o.name);
  }
  StrAppend(&out, "\nGlobal options: ",
            Wrap(StrCat(globals, " (see 'awaitctl --help')"), 16, 16), "\n");
  if (!command.examples.empty()) {
    StrAppend(&out, "\nExamples:\n");
    for (absl::string_view line :
         absl::StrSplit(AbslView(command.examples), '\n', absl::SkipEmpty())) {
      StrAppend(&out, "  ", line, "\n");
    }
  }
  return out;
}

std::string ClosestMatch(std::string_view word,
                         std::span<const std::string_view> candidates) {
  // Short words are close only to a word one edit away.
  const std::size_t threshold = word.size() <= 3 ? 1 : 2;
  std::string best;
  std::size_t best_distance = threshold + 1;
  for (std::string_view c : candidates) {
    const std::size_t d = EditDistance(word, c);
    if (d < best_distance) {
      best = std::string(c);
      best_distance = d;
    }
  }
  return best;
}

}  // namespace awaitd::awaitctl
