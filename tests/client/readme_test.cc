// Runs the README's walk-through, so the docs cannot rot: every command in
// it, in order, against a fresh `awaitd` on its defaults (as `make run`
// starts it, on another port), and compares each command's output with the
// output printed under it.
//
// The walk-through is the part of README.md between the lines
// "<!-- walkthrough -->" and "<!-- /walkthrough -->". In it, every ```console
// block is a shell session: a line starting with "$ " is a command, the lines
// after it until the next command are what it prints (stdout and stderr, as
// a terminal shows them). A block runs in one bash, so `echo $?` shows the
// previous command's exit code.
//
// Outputs are compared word by word (so column alignment does not matter),
// where:
//   - a duration (1.002s, 350ms, 12µs, +2.001s) matches one within
//     0.35 s + 25 % of the printed value: the README's timings are checked,
//     loosely enough for a loaded 2-core machine;
//   - an RFC 3339 time, also inside a word, matches any time;
//   - event lines ("+1.002s ...", from --events) may come in any order
//     within their run of event lines: jobs that change state in the same
//     instant are reported in either order.
//
// After changing awaitctl's output or the walk-through, refresh the outputs
// in README.md from a real run with
//   AWAITD_UPDATE_README=1 ./build/tests/client/client_tests
//       --gtest_filter=ReadmeTest.*
// and read the diff before committing it.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/support/process.h"

namespace {

namespace fs = std::filesystem;
using ::awaitd::testing::Output;
using ::awaitd::testing::Process;
using ::awaitd::testing::ProcessResult;
using ::awaitd::testing::RunProcess;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// --- The README's shell sessions --------------------------------------------

struct Command {
  std::string text;                   // without the "$ "
  std::vector<std::string> expected;  // the lines printed under it
  int line = 0;                       // 1-based, in README.md
  // README lines [output_begin, output_end) (0-based) hold `expected`.
  int output_begin = 0;
  int output_end = 0;
};

struct Block {
  std::vector<Command> commands;
  int line = 0;
};

std::vector<Block> ParseWalkthrough(const std::string& readme) {
  std::vector<Block> blocks;
  bool in_walkthrough = false;
  bool in_block = false;
  int n = 0;
  for (absl::string_view raw : absl::StrSplit(readme, '\n')) {
    ++n;
    const std::string line(absl::StripTrailingAsciiWhitespace(raw));
    if (line == "<!-- walkthrough -->") {
      in_walkthrough = true;
      continue;
    }
    if (line == "<!-- /walkthrough -->") break;
    if (!in_walkthrough) continue;
    if (!in_block) {
      if (line == "```console") {
        in_block = true;
        blocks.push_back(Block{.line = n});
      }
      continue;
    }
    if (line == "```") {
      in_block = false;
      continue;
    }
    Block& b = blocks.back();
    if (absl::StartsWith(line, "$ ")) {
      b.commands.push_back(Command{.text = line.substr(2),
                                   .line = n,
                                   .output_begin = n,
                                   .output_end = n});
    } else if (!b.commands.empty() &&
               absl::EndsWith(b.commands.back().text, "\\") &&
               b.commands.back().expected.empty()) {
      // A command continued on the next line.
      b.commands.back().text += "\n" + line;
      b.commands.back().output_begin = b.commands.back().output_end = n;
    } else if (!b.commands.empty()) {
      b.commands.back().expected.push_back(line);
      b.commands.back().output_end = n;
    }
  }
  return blocks;
}

// --- Comparing outputs -------------------------------------------------

// The seconds a duration word stands for ("+1.002s", "350ms", "12µs",
// "1m30s", also followed by one of ",;:)"), or nullopt. (Hand-written: GCC
// 12's <regex> trips -Wmaybe-uninitialized in the sanitizer build.)
std::optional<double> DurationSeconds(std::string word) {
  if (!word.empty() && word[0] == '+') word.erase(0, 1);
  if (!word.empty() && absl::StrContains(",;:)", word.back())) word.pop_back();
  // absl::ParseDuration spells microseconds "us".
  for (std::size_t p; (p = word.find("µs")) != std::string::npos;) {
    word.replace(p, std::string("µs").size(), "us");
  }
  // Digits first, a unit last: "0" or "12" alone is a number, not a time.
  if (word.empty() || !absl::ascii_isdigit(word.front()) ||
      !absl::ascii_isalpha(word.back())) {
    return std::nullopt;
  }
  absl::Duration d;
  if (!absl::ParseDuration(word, &d)) return std::nullopt;
  return absl::ToDoubleSeconds(d);
}

// Replaces every RFC 3339 time in `line` (also inside a JSON string) by
// "<time>": YYYY-MM-DDTHH:MM:SS, then optional fraction and zone.
std::string MaskTimestamps(const std::string& line) {
  static constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd";
  auto fits = [&](std::size_t at) {
    if (at + kShape.size() > line.size()) return false;
    for (std::size_t k = 0; k < kShape.size(); ++k) {
      const char c = line[at + k];
      const bool ok = kShape[k] == 'd'   ? absl::ascii_isdigit(c)
                      : kShape[k] == 'T' ? (c == 'T' || c == ' ')
                                         : c == kShape[k];
      if (!ok) return false;
    }
    return true;
  };
  std::string out;
  for (std::size_t i = 0; i < line.size();) {
    if (!fits(i)) {
      out += line[i++];
      continue;
    }
    i += kShape.size();
    if (i < line.size() && line[i] == '.') {
      ++i;
      while (i < line.size() && absl::ascii_isdigit(line[i])) ++i;
    }
    if (i < line.size() && line[i] == 'Z') {
      ++i;
    } else if (i + 6 <= line.size() && (line[i] == '+' || line[i] == '-') &&
               line[i + 3] == ':') {
      i += 6;
    }
    out += "<time>";
  }
  return out;
}

bool WordsMatch(const std::string& want, const std::string& got) {
  if (want == got) return true;
  const std::optional<double> w = DurationSeconds(want);
  const std::optional<double> g = DurationSeconds(got);
  if (w && g) return std::fabs(*w - *g) <= 0.35 + 0.25 * *w;
  return false;
}

std::vector<std::string> Words(const std::string& line) {
  return absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
}

bool LinesMatch(const std::string& want, const std::string& got) {
  const std::vector<std::string> w = Words(MaskTimestamps(want));
  const std::vector<std::string> g = Words(MaskTimestamps(got));
  if (w.size() != g.size()) return false;
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (!WordsMatch(w[i], g[i])) return false;
  }
  return true;
}

bool IsEventLine(const std::string& line) {
  const std::vector<std::string> w = Words(line);
  return !w.empty() && w[0][0] == '+' && DurationSeconds(w[0]).has_value();
}

// Empty if `got` matches `want`, else what differs.
std::string Compare(const std::vector<std::string>& want,
                    const std::vector<std::string>& got) {
  auto mismatch = [&](std::size_t i) {
    return absl::StrCat("first difference at output line ", i + 1,
                        ":\n  README: ", i < want.size() ? want[i] : "<end>",
                        "\n  actual: ", i < got.size() ? got[i] : "<end>");
  };
  std::size_t i = 0;
  while (i < want.size() || i < got.size()) {
    if (i >= want.size() || i >= got.size()) return mismatch(i);
    if (!IsEventLine(want[i])) {
      if (!LinesMatch(want[i], got[i])) return mismatch(i);
      ++i;
      continue;
    }
    // A run of event lines: the same lines, in any order.
    std::size_t end = i;
    while (end < want.size() && IsEventLine(want[end])) ++end;
    if (end > got.size()) return mismatch(got.size());
    std::vector<bool> used(end - i, false);
    for (std::size_t k = i; k < end; ++k) {
      bool found = false;
      for (std::size_t j = i; j < end && !found; ++j) {
        if (!used[j - i] && LinesMatch(want[j], got[k])) {
          used[j - i] = true;
          found = true;
        }
      }
      if (!found) {
        return absl::StrCat(
            "event line ", k + 1,
            " matches none of the README's:\n  actual: ", got[k],
            "\n  README:\n    ",
            absl::StrJoin(want.begin() + static_cast<long>(i),
                          want.begin() + static_cast<long>(end), "\n    "));
      }
    }
    i = end;
  }
  return "";
}

// --- Processes ----------------------------------------------------------

// Runs `script` in bash with stdout and stderr into one file, as a terminal
// shows both, and `env` added to the environment; kills it after `timeout`.
// Returns the output, or nullopt on a timeout.
std::optional<std::string> RunBash(
    const std::string& script,
    const std::vector<std::pair<std::string, std::string>>& env,
    const fs::path& out_file, absl::Duration timeout) {
  const ProcessResult r = RunProcess({
      .argv = {"/bin/bash", "--noprofile", "--norc", "-c", script},
      .env = env,
      .timeout = absl::ToChronoMilliseconds(timeout),
      .stdout_to = Output::File(out_file.string()),
      .stderr_to = Output::Stdout(),
  });
  if (!r.error.empty() || r.timed_out) return std::nullopt;
  return ReadFile(out_file);
}

// An awaitd process on its defaults, but on a free port.
class AwaitdProcess {
 public:
  explicit AwaitdProcess(const fs::path& dir)
      : process_({
            .argv = {AWAITD_PATH, "--metrics_listen=", "--durability=none",
                     "--listen=127.0.0.1:0",
                     "--port_file=" + (dir / "port").string()},
            .stdout_to = Output::File((dir / "awaitd.err").string()),
            .stderr_to = Output::Stdout(),
        }) {
    const fs::path port_file = dir / "port";
    for (const absl::Time deadline = absl::Now() + absl::Seconds(30);
         process_.started() && absl::Now() < deadline;
         absl::SleepFor(absl::Milliseconds(20))) {
      if (fs::exists(port_file)) {
        address_ = std::string(
            absl::StripTrailingAsciiWhitespace(ReadFile(port_file)));
        if (!address_.empty()) return;
      }
    }
    log_ = process_.started() ? ReadFile(dir / "awaitd.err") : process_.error();
  }
  // Stopped with SIGTERM (killed if it does not stop within 30 s).
  ~AwaitdProcess() {
    process_.Signal(SIGTERM);
    process_.Wait(std::chrono::seconds(30));
  }
  const std::string& address() const { return address_; }
  const std::string& log() const { return log_; }

 private:
  Process process_;
  std::string address_;
  std::string log_;
};

// A command's printed output, to write into README.md in place of the
// lines [begin, end).
struct Update {
  int begin;
  int end;
  std::vector<std::string> lines;
};

void WriteOutputs(const std::vector<Update>& updates,
                  const std::string& readme) {
  std::vector<std::string> lines = absl::StrSplit(readme, '\n');
  // From the last to the first, so earlier line numbers stay valid.
  for (auto it = updates.rbegin(); it != updates.rend(); ++it) {
    lines.erase(lines.begin() + it->begin, lines.begin() + it->end);
    lines.insert(lines.begin() + it->begin, it->lines.begin(), it->lines.end());
  }
  std::ofstream out(fs::path(AWAITD_SOURCE_DIR) / "README.md");
  out << absl::StrJoin(lines, "\n");
}

TEST(ReadmeTest, WalkthroughCommandsPrintWhatTheReadmeShows) {
  const std::string readme =
      ReadFile(fs::path(AWAITD_SOURCE_DIR) / "README.md");
  const std::vector<Block> blocks = ParseWalkthrough(readme);
  ASSERT_GE(blocks.size(), 8u) << "README.md has no walk-through, or lost "
                                  "the <!-- walkthrough --> markers";

  const fs::path dir =
      fs::path(::testing::TempDir()) / absl::StrCat("awaitd_readme_", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  AwaitdProcess daemon(dir);
  ASSERT_FALSE(daemon.address().empty()) << "awaitd did not start:\n"
                                         << daemon.log();

  const std::string awaitctl_dir = fs::path(AWAITCTL_PATH).parent_path();
  const std::vector<std::pair<std::string, std::string>> env = {
      {"PATH", absl::StrCat(awaitctl_dir, ":/usr/bin:/bin")},
      {"AWAITD_ADDRESS", daemon.address()},
      {"NO_COLOR", "1"},
      {"LC_ALL", "C.UTF-8"},
  };
  const char* update_env = std::getenv("AWAITD_UPDATE_README");
  const bool update = update_env != nullptr && std::string(update_env) == "1";
  std::vector<Update> updates;
  // Marks where each command's output starts; no command prints it.
  const std::string kMarker = "@@awaitd-readme-command@@";
  int commands = 0;
  for (const Block& block : blocks) {
    std::string script = "set +e\n";
    for (const Command& c : block.commands) {
      // The marker keeps $? for the command after it (`echo $?`).
      absl::StrAppend(&script, "awaitd_rc=$?; echo '", kMarker,
                      "'; (exit $awaitd_rc)\n", c.text, "\n");
    }
    const std::optional<std::string> out =
        RunBash(script, env, dir / "out", absl::Seconds(120));
    ASSERT_TRUE(out.has_value())
        << "README.md:" << block.line << ": the block did not finish in 120 s";
    std::vector<std::string> parts = absl::StrSplit(*out, kMarker + "\n");
    ASSERT_EQ(parts.size(), block.commands.size() + 1)
        << "README.md:" << block.line << ": output:\n"
        << *out;
    for (std::size_t k = 0; k < block.commands.size(); ++k) {
      const Command& c = block.commands[k];
      std::vector<std::string> got = absl::StrSplit(parts[k + 1], '\n');
      for (std::string& line : got) {
        line = std::string(absl::StripTrailingAsciiWhitespace(line));
      }
      while (!got.empty() && got.back().empty()) got.pop_back();
      std::vector<std::string> want = c.expected;
      while (!want.empty() && want.back().empty()) want.pop_back();
      const std::string diff = Compare(want, got);
      EXPECT_EQ(diff, "") << "README.md:" << c.line << ": $ " << c.text
                          << "\nprinted:\n"
                          << absl::StrJoin(got, "\n");
      if (update) {
        updates.push_back({c.output_begin, c.output_end, std::move(got)});
      }
      ++commands;
    }
  }
  EXPECT_GE(commands, 15) << "the walk-through lost commands";
  fs::remove_all(dir);
  if (update) WriteOutputs(updates, readme);
}

// The comparison itself: what it forgives and what it does not.
TEST(ReadmeCompareTest, DurationsWithinToleranceMatch) {
  EXPECT_EQ(Compare({"took 1.002s"}, {"took 1.180s"}), "");
  EXPECT_EQ(Compare({"took 12ms"}, {"took 250µs"}), "");
  EXPECT_EQ(Compare({"waited 1.99s: 2 done"}, {"waited 2.01s: 2 done"}), "");
  EXPECT_NE(Compare({"took 1.002s"}, {"took 2.100s"}), "");
  EXPECT_NE(Compare({"took 3s"}, {"took 1s"}), "");
}

TEST(ReadmeCompareTest, OtherWordsMustBeEqualButSpacingIsFree) {
  EXPECT_EQ(Compare({"1  Job-1   succeeded  24"}, {"1 Job-1 succeeded 24"}),
            "");
  EXPECT_NE(Compare({"1  Job-1  succeeded  24"}, {"1  Job-1  succeeded  6"}),
            "");
  EXPECT_NE(Compare({"a", "b"}, {"a"}), "");
  EXPECT_NE(Compare({"4"}, {"0"}), "");  // `echo $?`: a number, not a time
  EXPECT_NE(Compare({"a"}, {"a", "b"}), "");
}

TEST(ReadmeCompareTest, EventLinesMayComeInAnyOrderWithinTheirRun) {
  EXPECT_EQ(Compare({"+0.001s A running", "+0.001s B running", "done"},
                    {"+0.002s B running", "+0.000s A running", "done"}),
            "");
  EXPECT_NE(Compare({"+0.001s A running", "+0.001s B running"},
                    {"+0.001s A running", "+0.001s A running"}),
            "");
  EXPECT_NE(Compare({"+1.000s A succeeded"}, {"+3.000s A succeeded"}), "");
}

TEST(ReadmeCompareTest, TimestampsMatchAnyTime) {
  EXPECT_EQ(Compare({"created 2026-11-23T10:00:00.123Z"},
                    {"created 2027-01-01T00:00:59Z"}),
            "");
  EXPECT_EQ(Compare({R"({"id":"3","createdAt":"2026-11-23T10:00:00.1Z"})"},
                    {R"({"id":"3","createdAt":"2026-11-24T11:00:00.2Z"})"}),
            "");
  EXPECT_NE(Compare({R"({"id":"3","createdAt":"2026-11-23T10:00:00.1Z"})"},
                    {R"({"id":"4","createdAt":"2026-11-23T10:00:00.1Z"})"}),
            "");
}

}  // namespace
