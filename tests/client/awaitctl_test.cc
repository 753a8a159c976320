// awaitctl end to end: the binary, spawned as a process, against a daemon
// running in this process (on 127.0.0.1:0). Each test asserts what a user
// or a script sees: stdout, stderr and the exit code, and parses --json
// output back into the proto messages.
//
// Jobs are short (well under a second) and every wait has a generous bound,
// so a loaded 2-core machine does not make the tests flaky.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "awaitd/v1/jobs.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/server/daemon_fixture.h"
#include "tests/support/process.h"

namespace awaitd {
namespace {

using ::awaitd::testing::ProcessOptions;
using ::awaitd::testing::ProcessResult;
using ::awaitd::testing::RunProcess;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// The environment every run gets: no address or token from the caller's
// shell, UTF-8 (the µ of durations), and NO_COLOR unset, so the tests also
// show that piped output has no colours by itself.
ProcessOptions Options(std::vector<std::string> args) {
  ProcessOptions o;
  o.argv = {AWAITCTL_PATH};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.unset_env = {"AWAITD_ADDRESS", "AWAITD_TOKEN", "NO_COLOR"};
  o.env = {{"LC_ALL", "C.UTF-8"}};
  o.timeout = std::chrono::seconds(60);
  return o;
}

ProcessResult Awaitctl(std::vector<std::string> args) {
  return RunProcess(Options(std::move(args)));
}

template <typename Message>
Message ParseJson(const std::string& text) {
  Message m;
  auto status = google::protobuf::util::JsonStringToMessage(text, &m);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\nin: " << text;
  return m;
}

bool IsFinal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

// The first word of each line (the job id in tables).
std::vector<std::string> FirstWords(const std::vector<std::string>& lines) {
  std::vector<std::string> words;
  for (const std::string& l : lines) {
    std::vector<std::string> w = absl::StrSplit(l, ' ', absl::SkipWhitespace());
    words.push_back(w.empty() ? "" : w[0]);
  }
  return words;
}

// --- Without a daemon: usage, help, exit codes 2 and 3 ----------------------

struct CommandOptions {
  std::string command;
  std::vector<std::string> options;
};

const std::vector<CommandOptions>& AllCommands() {
  static const auto* kCommands = new std::vector<CommandOptions>{
      {"submit",
       {"--name", "--timeout", "--delay", "--limit", "--shield",
        "--idempotency-key", "--count", "--wait"}},
      {"get", {}},
      {"cancel", {"--message"}},
      {"ls", {"--state", "--kind", "--name-prefix", "--limit", "--all"}},
      {"watch", {}},
      {"wait",
       {"--first-completed", "--first-exception", "--timeout", "--events"}},
      {"gather", {"--return-exceptions", "--name", "--count", "--events"}},
      {"wait-for", {"--timeout"}},
      {"as-completed", {"--timeout", "--events"}},
      {"group", {"--name", "--count", "--events"}},
      {"kinds", {}},
      {"limits", {}},
      {"limit", {}},
      {"delete-limit", {}},
      {"health", {}},
  };
  return *kCommands;
}

TEST(AwaitctlUsageTest, HelpOfEveryCommandExitsZeroAndNamesItsOptions) {
  for (const CommandOptions& c : AllCommands()) {
    for (const std::vector<std::string>& args :
         std::vector<std::vector<std::string>>{
             {c.command, "--help"}, {c.command, "-h"}, {"help", c.command}}) {
      SCOPED_TRACE(absl::StrJoin(args, " "));
      ProcessResult r = Awaitctl(args);
      ASSERT_EQ(r.exit_code, 0) << r.Describe();
      EXPECT_EQ(r.err, "");
      EXPECT_THAT(r.out, HasSubstr("Usage: awaitctl " + c.command));
      EXPECT_THAT(r.out, HasSubstr("Examples:"));
      EXPECT_THAT(r.out, HasSubstr("--address"));  // the global options
      for (const std::string& option : c.options) {
        EXPECT_THAT(r.out, HasSubstr(option)) << option;
      }
    }
  }
}

TEST(AwaitctlUsageTest, TopLevelHelpListsCommandsGlobalOptionsAndExitCodes) {
  for (std::string flag : {"--help", "-h", "help"}) {
    ProcessResult r = Awaitctl({flag});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    for (const CommandOptions& c : AllCommands()) {
      EXPECT_THAT(r.out, HasSubstr("  " + c.command + " ")) << c.command;
    }
    for (const char* option :
         {"--address", "--tls", "--tls-ca", "--tls-cert", "--tls-key",
          "--token", "--deadline", "--json", "--quiet", "--no-color"}) {
      EXPECT_THAT(r.out, HasSubstr(option));
    }
    EXPECT_THAT(r.out, HasSubstr("Exit codes:"));
    EXPECT_THAT(r.out, HasSubstr("130"));
    EXPECT_THAT(r.out, HasSubstr("AWAITD_ADDRESS"));
  }
}

TEST(AwaitctlUsageTest, HelpWinsOverOtherArgumentsOfAKnownCommand) {
  ProcessResult r = Awaitctl({"gather", "--bogus", "x=1", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_THAT(r.out, HasSubstr("Usage: awaitctl gather"));
}

TEST(AwaitctlUsageTest, VersionPrintsTheVersion) {
  ProcessResult r = Awaitctl({"--version"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_THAT(r.out, StartsWith("awaitctl "));
}

TEST(AwaitctlUsageTest, UnknownCommandExits2WithAHintOnStderr) {
  ProcessResult r = Awaitctl({"sumbit", "sleep", "seconds=1"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("unknown command 'sumbit'"));
  EXPECT_THAT(r.err, HasSubstr("did you mean 'submit'?"));
  EXPECT_THAT(r.err, HasSubstr("--help"));
  EXPECT_EQ(Lines(r.err).size(), 2u) << r.err;
}

TEST(AwaitctlUsageTest, MissingCommandExits2) {
  ProcessResult r = Awaitctl({});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("missing a command"));
  EXPECT_THAT(r.err, HasSubstr("awaitctl --help"));
}

TEST(AwaitctlUsageTest, UnknownOptionExits2NamingIt) {
  ProcessResult r = Awaitctl({"wait", "--first-complete", "7"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("unknown option '--first-complete' for wait"));
  EXPECT_THAT(r.err, HasSubstr("did you mean '--first-completed'?"));
  EXPECT_THAT(r.err, HasSubstr("Run 'awaitctl wait --help'"));

  // An option of another command.
  r = Awaitctl({"wait", "--count", "3", "7"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("'--count'"));
  EXPECT_THAT(r.err, HasSubstr("submit"));

  r = Awaitctl({"get", "-x", "7"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("unknown option '-x'"));

  r = Awaitctl({"submit", "--json=yes", "sleep", "seconds=1"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("'--json' takes no value"));

  r = Awaitctl({"wait-for", "7", "--timeout"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("'--timeout' needs a value"));
}

TEST(AwaitctlUsageTest, BadSpecWordsExit2NamingTheWord) {
  struct Case {
    std::vector<std::string> args;
    std::string word;
  };
  for (const Case& c : std::vector<Case>{
           {{"gather", "n=3", "factorial"}, "n=3"},
           {{"submit", "sleep", "@bogus=1"}, "@bogus"},
           {{"submit", "sleep", "seconds=1", "seconds=2"}, "seconds"},
           {{"wait", "sleep", "=1"}, "=1"},
           {{"submit", "sleep", "@timeout=soon"}, "soon"},
       }) {
    SCOPED_TRACE(absl::StrJoin(c.args, " "));
    ProcessResult r = Awaitctl(c.args);
    EXPECT_EQ(r.exit_code, 2) << r.Describe();
    EXPECT_EQ(r.out, "");
    EXPECT_THAT(r.err, HasSubstr(c.word));
    EXPECT_THAT(r.err, HasSubstr("--help"));
  }
}

TEST(AwaitctlUsageTest, BadValuesExit2NamingTheOption) {
  struct Case {
    std::vector<std::string> args;
    std::string needle;
  };
  for (const Case& c : std::vector<Case>{
           {{"wait-for", "--timeout", "abc", "7"}, "--timeout"},
           {{"submit", "--count", "0", "echo", "value=1"}, "--count"},
           {{"submit", "--count", "x", "echo", "value=1"}, "--count"},
           {{"ls", "--state", "sleepy"}, "--state"},
           {{"ls", "--limit", "-5"}, "--limit"},
           {{"get", "abc"}, "'abc' is not a job id"},
           {{"get"}, "get needs a job id"},
           {{"limit", "api"}, "NAME and a number of PERMITS"},
           {{"limit", "api", "0"}, "PERMITS"},
           {{"delete-limit"}, "delete-limit takes a NAME"},
           {{"wait-for", "1", "2"}, "one job"},
           {{"group", "7", "sleep", "seconds=1"}, "not ids"},
           {{"kinds", "extra"}, "takes no arguments"},
           {{"--deadline", "-1s", "health"}, "--deadline"},
           {{"submit", "--idempotency-key", "k", "--count", "2", "echo",
             "value=1"},
            "--idempotency-key"},
       }) {
    SCOPED_TRACE(absl::StrJoin(c.args, " "));
    ProcessResult r = Awaitctl(c.args);
    EXPECT_EQ(r.exit_code, 2) << r.Describe();
    EXPECT_THAT(r.err, HasSubstr(c.needle));
  }
}

TEST(AwaitctlUsageTest, UnreachableDaemonExits3) {
  for (std::string command : {"health", "ls"}) {
    ProcessResult r = Awaitctl(
        {"--address", "127.0.0.1:1", "--connect-timeout", "300ms", command});
    EXPECT_EQ(r.exit_code, 3) << r.Describe();
    EXPECT_EQ(r.out, "");
    EXPECT_THAT(r.err, HasSubstr("127.0.0.1:1"));
  }
}

TEST(AwaitctlUsageTest, AddressComesFromTheEnvironment) {
  ProcessOptions o = Options({"--connect-timeout", "300ms", "health"});
  o.env.push_back({"AWAITD_ADDRESS", "127.0.0.1:2"});
  ProcessResult r = RunProcess(o);
  EXPECT_EQ(r.exit_code, 3) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("127.0.0.1:2"));
}

// --- Against a daemon
// ---------------------------------------------------------

class AwaitctlTest : public server::testing::DaemonTest {
 protected:
  // awaitctl --address <daemon> args...
  ProcessResult Run(std::vector<std::string> args) {
    return RunProcess(WithAddress(std::move(args)));
  }
  ProcessOptions WithAddress(std::vector<std::string> args) {
    args.insert(args.begin(), {"--address", daemon_->address()});
    return Options(std::move(args));
  }
  // Runs, expects exit 0, returns stdout.
  std::string RunOk(std::vector<std::string> args) {
    ProcessResult r = Run(args);
    EXPECT_EQ(r.exit_code, 0) << absl::StrJoin(args, " ") << "\n"
                              << r.Describe();
    return r.out;
  }
  // The id of the one job `submit --json ...` created.
  std::uint64_t SubmitOne(std::vector<std::string> spec) {
    spec.insert(spec.begin(), {"--json", "submit"});
    const auto response = ParseJson<v1::SubmitResponse>(RunOk(spec));
    EXPECT_EQ(response.jobs_size(), 1);
    return response.jobs_size() == 1 ? response.jobs(0).id() : 0;
  }
  void CancelQuietly(std::uint64_t id) {
    v1::CancelRequest req;
    req.add_ids(id);
    v1::CancelResponse resp;
    (void)stub_->Cancel(Ctx().get(), req, &resp);
  }
};

TEST_F(AwaitctlTest, SubmitPrintsIdAndNameAndGetShowsTheJob) {
  ProcessResult r = Run({"submit", "echo", "value=42"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.err, "");
  std::vector<std::string> words = absl::StrSplit(
      absl::StripTrailingAsciiWhitespace(r.out), ' ', absl::SkipWhitespace());
  ASSERT_EQ(words.size(), 2u) << r.out;
  std::uint64_t id = 0;
  ASSERT_TRUE(absl::SimpleAtoi(words[0], &id)) << r.out;
  EXPECT_EQ(words[1], absl::StrCat("Job-", id));
  AwaitDone(id);

  const std::string detail = RunOk({"get", words[0]});
  EXPECT_THAT(detail, HasSubstr("state"));
  EXPECT_THAT(detail, HasSubstr("succeeded"));
  EXPECT_THAT(detail, HasSubstr("result"));
  EXPECT_THAT(detail, HasSubstr("42"));
  EXPECT_THAT(detail, HasSubstr("created"));
  EXPECT_THAT(detail, HasSubstr("finished"));

  const auto got =
      ParseJson<v1::GetResponse>(RunOk({"get", words[0], "--json"}));
  ASSERT_EQ(got.jobs_size(), 1);
  EXPECT_EQ(got.jobs(0).id(), id);
  EXPECT_EQ(got.jobs(0).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(got.jobs(0).result().number_value(), 42);
}

TEST_F(AwaitctlTest, SubmitQuietPrintsOnlyIdsAndSpecOptionsApply) {
  ProcessResult r =
      Run({"-q", "submit", "--name", "batch", "--timeout", "30s", "--shield",
           "sleep", "seconds=0", "echo", "value=1", "@name=own"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  std::uint64_t a = 0, b = 0;
  ASSERT_TRUE(absl::SimpleAtoi(lines[0], &a));
  ASSERT_TRUE(absl::SimpleAtoi(lines[1], &b));
  v1::Job ja = AwaitDone(a);
  v1::Job jb = AwaitDone(b);
  EXPECT_EQ(ja.name(), "batch");
  EXPECT_EQ(jb.name(), "own");  // the spec's own @name wins
  EXPECT_TRUE(ja.shield());
  EXPECT_TRUE(jb.shield());
}

TEST_F(AwaitctlTest, SubmitWaitPrintsTheJobAndExitsWithItsOutcome) {
  ProcessResult ok =
      Run({"submit", "--wait", "sleep", "seconds=0.05", "result=done"});
  EXPECT_EQ(ok.exit_code, 0) << ok.Describe();
  std::vector<std::string> lines = Lines(ok.out);
  ASSERT_EQ(lines.size(), 2u) << ok.out;
  EXPECT_THAT(lines[0],
              AllOf(HasSubstr("ID"), HasSubstr("STATE"), HasSubstr("RESULT")));
  EXPECT_THAT(lines[1], AllOf(HasSubstr("sleep"), HasSubstr("succeeded"),
                              HasSubstr("\"done\"")));

  ProcessResult failed =
      Run({"submit", "--wait", "fail", "type=ValueError", "message=boom"});
  EXPECT_EQ(failed.exit_code, 1) << failed.Describe();
  EXPECT_THAT(failed.out,
              AllOf(HasSubstr("failed"), HasSubstr("ValueError: boom")));
}

TEST_F(AwaitctlTest, SubmitCountBehindALimitRunsAtMostPermitsAtOnce) {
  ProcessResult declared = Run({"limit", "api", "2"});
  ASSERT_EQ(declared.exit_code, 0) << declared.Describe();
  EXPECT_EQ(declared.out, "limit api: 2 permits (0 held, 0 waiting)\n");

  const absl::Time start = absl::Now();
  ProcessResult r = Run({"--json", "submit", "--wait", "--count", "20",
                         "--limit", "api", "sleep", "seconds=0.05"});
  const absl::Duration took = absl::Now() - start;
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  const auto got = ParseJson<v1::GetResponse>(r.out);
  ASSERT_EQ(got.jobs_size(), 20);
  for (const v1::Job& j : got.jobs()) {
    EXPECT_EQ(j.state(), v1::JOB_STATE_SUCCEEDED);
    EXPECT_THAT(j.limits(), ElementsAre("api"));
  }
  // 20 jobs of 50 ms, 2 at a time: 10 rounds.
  EXPECT_GE(took, absl::Milliseconds(450));

  const auto limits =
      ParseJson<v1::ListLimitsResponse>(RunOk({"limits", "--json"}));
  ASSERT_EQ(limits.limits_size(), 1);
  EXPECT_EQ(limits.limits(0).name(), "api");
  EXPECT_EQ(limits.limits(0).permits(), 2u);
  const std::string table = RunOk({"limits"});
  EXPECT_THAT(table, HasSubstr("PERMITS"));
  EXPECT_THAT(table, HasSubstr("api"));
}

TEST_F(AwaitctlTest, DeleteLimitDeletesAnUnusedLimitAndNamesTheFailures) {
  RunOk({"limit", "api", "1"});
  const std::string id = Lines(RunOk({"--quiet", "submit", "--limit", "api",
                                      "sleep", "seconds=3600"}))
                             .at(0);
  ProcessResult busy = Run({"delete-limit", "api"});
  EXPECT_EQ(busy.exit_code, 1) << busy.Describe();
  EXPECT_THAT(busy.err, HasSubstr("limit api is in use: 1 jobs not done"));
  RunOk({"cancel", id});
  RunOk({"wait", id});  // asyncio.wait: returns once it is done
  ProcessResult deleted = Run({"delete-limit", "api"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.Describe();
  EXPECT_EQ(deleted.out, "limit api: deleted\n");
  ProcessResult again = Run({"delete-limit", "api"});
  EXPECT_EQ(again.exit_code, 1) << again.Describe();
  EXPECT_THAT(again.err, HasSubstr("no limit \"api\" is declared"));
  EXPECT_THAT(RunOk({"limits"}), Not(HasSubstr("api")));
}

TEST_F(AwaitctlTest, SubmitManyPrintsASummary) {
  ProcessResult r = Run({"submit", "--count", "30", "echo", "value=1"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_THAT(r.out, StartsWith("submitted 30 jobs: "));
  EXPECT_EQ(Lines(r.out).size(), 1u) << r.out;
}

TEST_F(AwaitctlTest, DaemonInvalidArgumentExits2AndShowsTheSpec) {
  ProcessResult r = Run({"submit", "echo", "value=1", "sleep", "seconds=-1"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("seconds"));
  EXPECT_THAT(r.err, HasSubstr("job spec 2: sleep seconds=-1"));
  EXPECT_THAT(r.err, HasSubstr("awaitctl kinds"));

  r = Run({"gather", "nosuchkind"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("nosuchkind"));
}

TEST_F(AwaitctlTest, GatherPrintsResultsInInputOrder) {
  // Completion order is b, c, a; results come in input order a, b, c.
  ProcessResult r =
      Run({"gather", "sleep", "seconds=0.3", "result=a", "sleep",
           "seconds=0.05", "result=b", "sleep", "seconds=0.15", "result=c"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 5u) << r.out;
  EXPECT_THAT(lines[1], HasSubstr("\"a\""));
  EXPECT_THAT(lines[2], HasSubstr("\"b\""));
  EXPECT_THAT(lines[3], HasSubstr("\"c\""));
  EXPECT_THAT(lines[4], StartsWith("gathered 3 jobs in "));
  EXPECT_THAT(lines[4], HasSubstr("(group "));

  const auto json = ParseJson<v1::GatherResponse>(
      RunOk({"--json", "gather", "factorial", "n=2", "factorial", "n=3",
             "factorial", "n=4"}));
  ASSERT_EQ(json.results_size(), 3);
  EXPECT_EQ(json.results(0).result().number_value(), 2);
  EXPECT_EQ(json.results(1).result().number_value(), 6);
  EXPECT_EQ(json.results(2).result().number_value(), 24);
  EXPECT_NE(json.group_id(), 0u);
}

TEST_F(AwaitctlTest, GatherOfIdsAndCopies) {
  const std::uint64_t id = SubmitOne({"echo", "value=7"});
  const auto json = ParseJson<v1::GatherResponse>(
      RunOk({"--json", "gather", "--count", "3", absl::StrCat(id), "echo",
             "value=8"}));
  ASSERT_EQ(json.results_size(), 6);
  for (int i = 0; i < 6; i += 2) {
    EXPECT_EQ(json.results(i).id(), id);
    EXPECT_EQ(json.results(i + 1).result().number_value(), 8);
  }
}

TEST_F(AwaitctlTest, GatherFailureExits1AndTheOthersKeepRunning) {
  ProcessResult r = Run({"gather", "sleep", "seconds=0.5", "fail",
                         "type=ValueError", "message=boom"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("ValueError: boom"));
  EXPECT_THAT(r.err, HasSubstr("keeps running"));
  EXPECT_THAT(r.out, HasSubstr("failed"));
  EXPECT_THAT(r.out, HasSubstr("running"));
}

TEST_F(AwaitctlTest, GatherReturnExceptionsExits0WithTheErrorAsAResult) {
  ProcessResult r = Run({"--json", "gather", "--return-exceptions", "echo",
                         "value=1", "fail", "message=boom"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  const auto json = ParseJson<v1::GatherResponse>(r.out);
  ASSERT_EQ(json.results_size(), 2);
  EXPECT_EQ(json.results(0).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(json.results(1).state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(json.results(1).error().type(), "RuntimeError");

  r = Run({"gather", "--return-exceptions", "echo", "value=1", "fail",
           "message=boom"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_THAT(r.out, HasSubstr("RuntimeError: boom"));
  EXPECT_THAT(r.out, HasSubstr("1 succeeded, 1 failed"));
}

TEST_F(AwaitctlTest, GatherEventsShowStateChangesTimedFromTheStart) {
  ProcessResult r =
      Run({"gather", "--events", "factorial", "n=3", "step_seconds=0.1",
           "factorial", "n=2", "step_seconds=0.1"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  const std::regex event(R"(^\+\d+\.\d{3}s  \d+  Job-\d+  factorial  (\w+).*)");
  std::vector<std::string> states;
  std::vector<std::string> rest;
  for (const std::string& line : Lines(r.out)) {
    std::smatch m;
    if (std::regex_match(line, m, event)) {
      states.push_back(m[1]);
    } else {
      rest.push_back(line);
    }
  }
  EXPECT_EQ(std::count(states.begin(), states.end(), "succeeded"), 2) << r.out;
  EXPECT_GE(std::count(states.begin(), states.end(), "running"), 1) << r.out;
  // After the events: the table in input order (6, then 2), and the summary.
  ASSERT_EQ(rest.size(), 4u) << r.out;
  EXPECT_THAT(rest[1], HasSubstr("  6"));
  EXPECT_THAT(rest[2], HasSubstr("  2"));
  // The events of a job come in life-cycle order, each after the start.
  const std::string& out = r.out;
  EXPECT_LT(out.find("succeeded  2"), out.find("succeeded  6")) << out;
}

TEST_F(AwaitctlTest, WaitFirstCompletedReturnsWithPendingJobsAndExits0) {
  ProcessResult r = Run({"--json", "wait", "--first-completed", "sleep",
                         "seconds=0.05", "sleep", "seconds=20"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  // {"done":[job],"pending":[job]}
  const std::regex shape(R"(^\{"done":\[\{.*\}\],"pending":\[\{.*\}\]\}\n$)");
  EXPECT_TRUE(std::regex_match(r.out, shape)) << r.out;
  const auto split = r.out.find("],\"pending\":[");
  ASSERT_NE(split, std::string::npos);
  const auto done = ParseJson<v1::Job>(r.out.substr(9, split - 9));
  const auto pending = ParseJson<v1::Job>(
      r.out.substr(split + 13, r.out.size() - split - 13 - 3));
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_FALSE(IsFinal(pending.state()));
  CancelQuietly(pending.id());
}

TEST_F(AwaitctlTest, WaitTimeoutLeavesJobsPendingAndIsNotAnError) {
  const std::uint64_t id = SubmitOne({"sleep", "seconds=20"});
  ProcessResult r = Run({"wait", "--timeout", "100ms", absl::StrCat(id)});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_THAT(r.out, HasSubstr("done (0)"));
  EXPECT_THAT(r.out, HasSubstr("pending (1)"));
  EXPECT_THAT(r.out, HasSubstr("0 done, 1 pending"));
  // wait cancels nothing.
  EXPECT_FALSE(IsFinal(GetOk(id).state()));
  CancelQuietly(id);
}

TEST_F(AwaitctlTest, WaitFirstExceptionAndTable) {
  ProcessResult r = Run({"wait", "--first-exception", "sleep", "seconds=20",
                         "fail", "message=x", "after_seconds=0.05"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 7u) << r.out;
  EXPECT_EQ(lines[0], "done (1)");
  EXPECT_THAT(lines[2], AllOf(HasSubstr("fail"), HasSubstr("failed")));
  EXPECT_EQ(lines[3], "pending (1)");
  EXPECT_THAT(lines[5], AllOf(HasSubstr("sleep"), HasSubstr("running")));
  CancelQuietly(std::stoull(FirstWords({lines[5]})[0]));
}

TEST_F(AwaitctlTest, WaitForTimeoutCancelsTheJobAndExits4) {
  ProcessResult r =
      Run({"wait-for", "--timeout", "200ms", "sleep", "seconds=20"});
  EXPECT_EQ(r.exit_code, 4) << r.Describe();
  const std::regex message(
      R"(awaitctl: timed out after 200ms; job (\d+) \(Job-\d+\) was cancelled\n)");
  std::smatch m;
  ASSERT_TRUE(std::regex_match(r.err, m, message)) << r.err;
  EXPECT_THAT(r.out, HasSubstr("cancelled"));
  const auto got =
      ParseJson<v1::GetResponse>(RunOk({"--json", "get", m[1].str()}));
  ASSERT_EQ(got.jobs_size(), 1);
  EXPECT_EQ(got.jobs(0).state(), v1::JOB_STATE_CANCELLED);
  EXPECT_THAT(RunOk({"get", m[1].str()}), HasSubstr("CancelledError"));
}

TEST_F(AwaitctlTest, WaitForShieldedJobTimesOutButKeepsRunning) {
  const std::uint64_t id = SubmitOne({"--shield", "sleep", "seconds=20"});
  ProcessResult r = Run({"wait-for", "--timeout", "100ms", absl::StrCat(id)});
  EXPECT_EQ(r.exit_code, 4) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("is shielded and keeps running"));
  EXPECT_FALSE(IsFinal(GetOk(id).state()));
  CancelQuietly(id);
}

TEST_F(AwaitctlTest, WaitForPrintsTheJobOrExits1) {
  const auto ok = ParseJson<v1::WaitForResponse>(
      RunOk({"--json", "wait-for", "factorial", "n=5"}));
  EXPECT_EQ(ok.job().result().number_value(), 120);

  ProcessResult failed = Run({"wait-for", "fail", "type=KeyError"});
  EXPECT_EQ(failed.exit_code, 1) << failed.Describe();
  EXPECT_THAT(failed.err, HasSubstr("KeyError"));
  EXPECT_THAT(failed.out, HasSubstr("failed"));
}

TEST_F(AwaitctlTest, AsCompletedPrintsJobsInCompletionOrder) {
  ProcessResult r =
      Run({"--json", "as-completed", "sleep", "seconds=0.3", "result=slow",
           "sleep", "seconds=0.05", "result=fast"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  const auto ids = ParseJson<v1::AsCompletedResponse>(lines[0]);
  ASSERT_EQ(ids.ids_size(), 2);
  const auto first = ParseJson<v1::AsCompletedResponse>(lines[1]);
  const auto second = ParseJson<v1::AsCompletedResponse>(lines[2]);
  EXPECT_EQ(first.index(), 1u);
  EXPECT_EQ(first.job().result().string_value(), "fast");
  EXPECT_EQ(first.job().id(), ids.ids(1));
  EXPECT_EQ(second.index(), 0u);
  EXPECT_EQ(second.job().result().string_value(), "slow");

  r = Run({"as-completed", "sleep", "seconds=0.2", "result=slow", "echo",
           "value=fast"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 4u) << r.out;
  EXPECT_THAT(lines[0], AllOf(StartsWith("ID"), HasSubstr("RESULT")));
  EXPECT_THAT(lines[1], HasSubstr("\"fast\""));
  EXPECT_THAT(lines[2], HasSubstr("\"slow\""));
  EXPECT_THAT(lines[3], StartsWith("2 jobs completed in "));
}

TEST_F(AwaitctlTest, AsCompletedTimeoutExits4AndCancelsNothing) {
  ProcessResult r = Run({"as-completed", "--timeout", "200ms", "echo",
                         "value=1", "sleep", "seconds=20"});
  EXPECT_EQ(r.exit_code, 4) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("timed out after 200ms: 1 of 2 completed"));
  EXPECT_THAT(r.out, HasSubstr("succeeded"));
  const auto jobs =
      ParseJson<v1::GetResponse>(RunOk({"--json", "ls", "--kind", "sleep"}));
  ASSERT_EQ(jobs.jobs_size(), 1);
  EXPECT_FALSE(IsFinal(jobs.jobs(0).state()));
  CancelQuietly(jobs.jobs(0).id());
}

TEST_F(AwaitctlTest, AsCompletedWithAFailureExits1) {
  ProcessResult r = Run({"as-completed", "echo", "value=1", "fail"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_THAT(r.out, HasSubstr("1 succeeded, 1 failed"));
}

TEST_F(AwaitctlTest, GroupFailingFastExits1ListingTheFailures) {
  ProcessResult r =
      Run({"group", "sleep", "seconds=20", "fail", "type=ValueError",
           "message=boom", "after_seconds=0.05"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("ExceptionGroup"));
  EXPECT_THAT(r.err, HasSubstr("ValueError: boom"));
  std::vector<std::string> err = Lines(r.err);
  ASSERT_EQ(err.size(), 2u) << r.err;
  EXPECT_THAT(err[1],
              AllOf(StartsWith("  job "), HasSubstr("ValueError: boom")));
  // The sibling was cancelled by the failure.
  EXPECT_THAT(r.out, HasSubstr("cancelled"));

  r = Run(
      {"--json", "group", "sleep", "seconds=20", "fail", "after_seconds=0.05"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  const auto json = ParseJson<v1::RunGroupResponse>(r.out);
  ASSERT_EQ(json.results_size(), 2);
  EXPECT_EQ(json.results(0).state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(json.results(1).state(), v1::JOB_STATE_FAILED);
}

TEST_F(AwaitctlTest, GroupSucceedsWithEveryResult) {
  ProcessResult r =
      Run({"group", "--name", "pair", "echo", "value=1", "factorial", "n=3"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 4u) << r.out;
  EXPECT_THAT(lines[3], StartsWith("ran 2 jobs in "));
  const std::uint64_t group =
      std::stoull(lines[3].substr(lines[3].find("(group ") + 7));
  EXPECT_EQ(GetOk(group).name(), "pair");
}

TEST_F(AwaitctlTest, CancelSaysPerIdWhetherItTookEffect) {
  const std::uint64_t running = SubmitOne({"sleep", "seconds=20"});
  const std::uint64_t done = SubmitOne({"echo", "value=1"});
  AwaitDone(done);
  ProcessResult r = Run({"cancel", "--message", "enough", absl::StrCat(running),
                         absl::StrCat(done)});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_THAT(lines[0], StartsWith(absl::StrCat(running, "  ")));
  EXPECT_THAT(lines[0], HasSubstr("cancel"));
  EXPECT_THAT(lines[0], Not(HasSubstr("not cancelled")));
  EXPECT_THAT(lines[1], HasSubstr("not cancelled: already succeeded"));
  const v1::Job j = AwaitDone(running);
  EXPECT_EQ(j.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(j.error().message(), "enough");

  const auto json = ParseJson<v1::CancelResponse>(
      RunOk({"--json", "cancel", absl::StrCat(done)}));
  ASSERT_EQ(json.results_size(), 1);
  EXPECT_FALSE(json.results(0).cancelled());
}

TEST_F(AwaitctlTest, UnknownJobExits1WithTheDaemonsMessage) {
  for (std::string command : {"get", "cancel", "watch", "wait-for"}) {
    ProcessResult r = Run({command, "987654"});
    EXPECT_EQ(r.exit_code, 1) << command << "\n" << r.Describe();
    EXPECT_THAT(r.err, HasSubstr("987654")) << command;
  }
}

TEST_F(AwaitctlTest, LsFiltersByStateKindAndNamePrefix) {
  const std::uint64_t a = SubmitOne({"echo", "value=1", "@name=alpha-1"});
  const std::uint64_t b = SubmitOne({"echo", "value=2", "@name=alpha-2"});
  const std::uint64_t c = SubmitOne({"sleep", "seconds=20", "@name=beta"});
  AwaitDone(a);
  AwaitDone(b);
  auto ids_of = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--json", "ls"});
    std::vector<std::uint64_t> ids;
    const auto listed = ParseJson<v1::GetResponse>(RunOk(args));
    for (const v1::Job& j : listed.jobs()) {
      ids.push_back(j.id());
    }
    return ids;
  };
  EXPECT_THAT(ids_of({}), ElementsAre(a, b, c));
  EXPECT_THAT(ids_of({"--kind", "echo"}), ElementsAre(a, b));
  EXPECT_THAT(ids_of({"--state", "running"}), ElementsAre(c));
  EXPECT_THAT(ids_of({"--state", "SUCCEEDED"}), ElementsAre(a, b));
  EXPECT_THAT(ids_of({"--name-prefix", "alpha-"}), ElementsAre(a, b));
  EXPECT_THAT(ids_of({"--limit", "2"}), ElementsAre(a, b));
  EXPECT_THAT(ids_of({"--all"}), ElementsAre(a, b, c));

  ProcessResult r = Run({"ls", "--limit", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(Lines(r.out).size(), 2u) << r.out;
  EXPECT_THAT(r.err, HasSubstr("more match"));
  EXPECT_EQ(RunOk({"ls", "--kind", "nothing"}), "no jobs\n");
  CancelQuietly(c);
}

TEST_F(AwaitctlTest, WatchPrintsEachStateChangeUntilTheJobsAreDone) {
  const std::uint64_t id = SubmitOne({"sleep", "seconds=0.5", "result=x"});
  ProcessResult r = Run({"watch", absl::StrCat(id)});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  // Its state now (running, unless this machine is very slow), then each
  // change, until it is done.
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_GE(lines.size(), 1u) << r.out;
  const std::regex line(
      R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z  \d+  Job-\d+  sleep  \w+.*)");
  for (const std::string& l : lines) {
    EXPECT_TRUE(std::regex_match(l, line)) << l;
  }
  EXPECT_THAT(lines.back(), AllOf(HasSubstr("succeeded"), HasSubstr("\"x\"")));

  r = Run({"--json", "watch", absl::StrCat(id)});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 1u) << r.out;  // already done: its state, then end
  EXPECT_EQ(ParseJson<v1::WatchResponse>(lines[0]).state(),
            v1::JOB_STATE_SUCCEEDED);
}

TEST_F(AwaitctlTest, KindsHealthAndNoEscapesWhenNotATerminal) {
  const std::string kinds = RunOk({"kinds"});
  for (const char* kind : {"sleep", "echo", "fail", "factorial", "blocking"}) {
    EXPECT_THAT(kinds, HasSubstr(kind));
  }
  EXPECT_THAT(kinds, HasSubstr("args: seconds"));
  const auto json =
      ParseJson<v1::ListKindsResponse>(RunOk({"kinds", "--json"}));
  EXPECT_GE(json.kinds_size(), 5);

  EXPECT_EQ(RunOk({"health"}), "SERVING\n");
  EXPECT_EQ(RunOk({"health", "--json"}), "{\"status\":\"SERVING\"}\n");

  // Output that is not a terminal carries no escape sequence, also where
  // colours would go (states, errors, headers).
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"kinds"},
           {"gather", "--return-exceptions", "--events", "echo", "value=1",
            "fail"},
           {"ls"},
           {"wait-for", "fail"},
           {"bogus"}}) {
    ProcessResult r = Run(args);
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
    EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find('\r'), std::string::npos) << r.err;
  }
}

TEST_F(AwaitctlTest, TextFromJobsCannotInjectEscapes) {
  ProcessResult r = Run({"gather", "echo", "value=\"\x1b[31mred\n\"", "echo",
                         "value=\"\\u001b[31mred\""});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
  EXPECT_THAT(r.out, HasSubstr("\\u001b"));
}

TEST_F(AwaitctlTest, DeadlineEndsTheCallWithExit4) {
  ProcessResult r = Run({"--deadline", "500ms", "wait", "sleep", "seconds=20"});
  EXPECT_EQ(r.exit_code, 4) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("deadline"));
  const auto jobs =
      ParseJson<v1::GetResponse>(RunOk({"--json", "ls", "--kind", "sleep"}));
  ASSERT_EQ(jobs.jobs_size(), 1);
  EXPECT_FALSE(IsFinal(jobs.jobs(0).state()));  // the job was not cancelled
  CancelQuietly(jobs.jobs(0).id());
}

TEST_F(AwaitctlTest, CtrlCCancelsTheCallNotTheJobsAndExits130) {
  for (std::string command : {"wait", "gather", "as-completed"}) {
    SCOPED_TRACE(command);
    ProcessOptions o =
        WithAddress({command, "--events", "sleep", "seconds=30"});
    bool sent = false;
    o.on_output = [&](pid_t pid, const std::string& out, const std::string&) {
      if (!sent && out.find("running") != std::string::npos) {
        kill(pid, SIGINT);
        sent = true;
      }
    };
    ProcessResult r = RunProcess(o);
    ASSERT_TRUE(sent) << r.Describe();
    EXPECT_EQ(r.exit_code, 130) << r.Describe();
    EXPECT_THAT(r.err, HasSubstr("interrupted"));
    EXPECT_THAT(r.err, HasSubstr("awaitctl cancel "));
    const auto jobs = ParseJson<v1::GetResponse>(
        RunOk({"--json", "ls", "--kind", "sleep", "--state", "running"}));
    ASSERT_EQ(jobs.jobs_size(), 1);  // it keeps running
    CancelQuietly(jobs.jobs(0).id());
    AwaitDone(jobs.jobs(0).id());
  }
}

TEST_F(AwaitctlTest, JsonEventsAreWatchResponsesBeforeTheResult) {
  ProcessResult r =
      Run({"--json", "gather", "--events", "factorial", "n=3",
           "step_seconds=0.05", "factorial", "n=2", "step_seconds=0.05"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_GE(lines.size(), 3u) << r.out;
  int succeeded = 0;
  for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
    const auto event = ParseJson<v1::WatchResponse>(lines[i]);
    EXPECT_EQ(event.kind(), "factorial");
    if (event.state() == v1::JOB_STATE_SUCCEEDED) ++succeeded;
  }
  EXPECT_EQ(succeeded, 2) << r.out;
  const auto result = ParseJson<v1::GatherResponse>(lines.back());
  EXPECT_EQ(result.results_size(), 2);
}

TEST_F(AwaitctlTest, WatchOfEverythingEndsWithCtrlC) {
  ProcessOptions o = WithAddress({"watch"});
  std::atomic<bool> sent{false};
  o.on_output = [&](pid_t pid, const std::string& out, const std::string&) {
    if (!sent && out.find("echo") != std::string::npos) {
      kill(pid, SIGINT);
      sent = true;
    }
  };
  // Jobs keep coming until the watch has seen one.
  std::thread jobs([&] {
    while (!sent) {
      SubmitOk({server::testing::Spec("echo", R"({"value": 1})")});
      absl::SleepFor(absl::Milliseconds(100));
    }
  });
  ProcessResult r = RunProcess(o);
  sent = true;
  jobs.join();
  EXPECT_EQ(r.exit_code, 130) << r.Describe();
  EXPECT_EQ(r.err, "");  // the usual way to end it: no message
  EXPECT_THAT(r.out, HasSubstr("echo"));
}

TEST_F(AwaitctlTest, UnreadableTlsFileExits2NamingTheOption) {
  ProcessResult r = Run({"--tls-ca", "/nonexistent/ca.pem", "health"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("--tls-ca: cannot read '/nonexistent/ca.pem'"));
  r = Run({"--tls-cert", "/etc/hostname", "health"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("--tls-key"));
}

TEST_F(AwaitctlTest, OddWordsNeverCrashIt) {
  const std::vector<std::string> odd = {"",
                                        "-",
                                        "--",
                                        "---",
                                        "-=",
                                        "--=",
                                        "--=x",
                                        "@",
                                        "=",
                                        "==",
                                        "a=",
                                        "@=",
                                        "@name",
                                        "@limit=",
                                        "0",
                                        "-0",
                                        "18446744073709551616",
                                        "99999999999999999999999",
                                        "\xff\xfe",
                                        "\xc3\xbc=\xc3\xbc",
                                        "--count=",
                                        "--timeout=1e400",
                                        "--timeout=nan",
                                        "--timeout=-0",
                                        "value={",
                                        "n=[1,",
                                        "@timeout=1e999",
                                        "--limit=",
                                        "\x1b[31m"};
  const std::vector<std::vector<std::string>> shapes = {
      {"W"},
      {"submit", "W"},
      {"submit", "echo", "W"},
      {"gather", "W"},
      {"wait-for", "W"},
      {"get", "W"},
      {"ls", "--limit", "W"},
      {"limit", "W", "W"},
      {"help", "W"},
      {"wait", "--timeout", "W", "echo", "value=1"},
  };
  for (const std::vector<std::string>& shape : shapes) {
    for (const std::string& word : odd) {
      std::vector<std::string> args;
      for (const std::string& s : shape) args.push_back(s == "W" ? word : s);
      ProcessResult r = Run(args);
      EXPECT_EQ(r.term_signal, 0) << absl::StrJoin(args, " ") << "\n"
                                  << r.Describe();
      EXPECT_TRUE(r.exit_code >= 0 && r.exit_code <= 2)
          << absl::StrJoin(args, " ") << "\n"
          << r.Describe();
    }
  }
}

// --- On a terminal
// ------------------------------------------------------------

// Single-quoted for sh.
std::string ShellQuote(const std::string& word) {
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

class AwaitctlTerminalTest : public AwaitctlTest {
 protected:
  void SetUp() override {
    if (access("/usr/bin/script", X_OK) != 0) {
      GTEST_SKIP() << "needs util-linux script(1) for a pseudo-terminal";
    }
    AwaitctlTest::SetUp();
  }
  // awaitctl on a pseudo-terminal (stdout and stderr both on it), as a
  // person at a terminal runs it.
  ProcessResult RunOnTerminal(
      std::vector<std::string> args,
      std::vector<std::pair<std::string, std::string>> env = {}) {
    std::string command = ShellQuote(AWAITCTL_PATH);
    args.insert(args.begin(), {"--address", daemon_->address()});
    for (const std::string& a : args) command += " " + ShellQuote(a);
    ProcessOptions o = Options({});
    o.argv = {"/usr/bin/script", "-qefc", command, "/dev/null"};
    o.env.push_back({"TERM", "xterm"});
    o.env.insert(o.env.end(), env.begin(), env.end());
    return RunProcess(o);
  }
};

const std::regex& ColourCode() {
  static const auto* kColour = new std::regex("\x1b\\[[0-9;]*m");
  return *kColour;
}

TEST_F(AwaitctlTerminalTest, ColoursStatesAndDrawsAProgressLineItClears) {
  ProcessResult r =
      RunOnTerminal({"gather", "factorial", "n=3", "step_seconds=0.2",
                     "factorial", "n=2", "step_seconds=0.2"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_THAT(r.out, HasSubstr("\x1b[32msucceeded\x1b[0m"));
  EXPECT_THAT(r.out, HasSubstr("/2 done"));
  // The progress line is rewritten in place and erased before the table.
  EXPECT_THAT(r.out, HasSubstr("\r\x1b[K"));
  const std::size_t table = r.out.find("ID");
  ASSERT_NE(table, std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("done", table), std::string::npos) << r.out;
}

TEST_F(AwaitctlTerminalTest, NoColorAndFlagTurnColoursOff) {
  for (const bool env : {true, false}) {
    SCOPED_TRACE(env ? "NO_COLOR=1" : "--no-color");
    ProcessResult r =
        env ? RunOnTerminal({"gather", "echo", "value=1"}, {{"NO_COLOR", "1"}})
            : RunOnTerminal({"--no-color", "gather", "echo", "value=1"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_THAT(r.out, HasSubstr("succeeded"));
    EXPECT_FALSE(std::regex_search(r.out, ColourCode())) << r.out;
  }
}

TEST_F(AwaitctlTerminalTest, QuietDrawsNoProgress) {
  ProcessResult r = RunOnTerminal(
      {"-q", "gather", "sleep", "seconds=0.5", "sleep", "seconds=0.5"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_THAT(r.out, Not(HasSubstr("done")));
  EXPECT_THAT(r.out, Not(HasSubstr("\r\x1b[K")));
}

}  // namespace
}  // namespace awaitd
