// Output: stdout and stderr with colours, progress and whole writes.
#include "client/awaitctl/output.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "client/awaitctl/format.h"
#include "common/strings.h"

namespace awaitd::awaitctl {
namespace {

std::string_view Code(Color color) {
  switch (color) {
    case Color::kBold:
      return "\033[1m";
    case Color::kDim:
      return "\033[2m";
    case Color::kRed:
      return "\033[31m";
    case Color::kGreen:
      return "\033[32m";
    case Color::kYellow:
      return "\033[33m";
    case Color::kBlue:
      return "\033[34m";
    case Color::kCyan:
      return "\033[36m";
    default:
      return "";
  }
}

std::string Painted(std::string_view text, Color color, bool enabled) {
  if (!enabled || color == Color::kNone || text.empty()) {
    return std::string(text);
  }
  return StrCat(Code(color), text, "\033[0m");
}

// Columns of the terminal on `fd` (80 if unknown).
std::size_t TerminalColumns(int fd) {
  winsize ws{};
  if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

}  // namespace

Color StateColor(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_PENDING:
      return Color::kDim;
    case v1::JOB_STATE_RUNNING:
      return Color::kCyan;
    case v1::JOB_STATE_SUCCEEDED:
      return Color::kGreen;
    case v1::JOB_STATE_FAILED:
      return Color::kRed;
    case v1::JOB_STATE_CANCELLED:
      return Color::kYellow;
    default:
      return Color::kNone;
  }
}

OutputOptions OutputOptions::Detect(bool json, bool quiet, bool no_color) {
  OutputOptions o;
  o.json = json;
  o.quiet = quiet;
  o.out_is_terminal = isatty(STDOUT_FILENO) == 1;
  const bool err_is_terminal = isatty(STDERR_FILENO) == 1;
  const char* no_color_env = std::getenv("NO_COLOR");
  const char* term = std::getenv("TERM");
  const bool colors_allowed =
      !no_color && (no_color_env == nullptr || *no_color_env == '\0') &&
      (term == nullptr || std::string_view(term) != "dumb");
  o.color_out = colors_allowed && o.out_is_terminal && !json;
  o.color_err = colors_allowed && err_is_terminal;
  o.progress = err_is_terminal && !quiet &&
               (term == nullptr || std::string_view(term) != "dumb");
  return o;
}

Output::Output(OutputOptions options, std::FILE* out, std::FILE* err)
    : options_(options), out_(out), err_(err) {}

void Output::Print(std::string_view text) {
  absl::MutexLock lock(&mu_);
  Write(out_, text);
}

void Output::PrintErr(std::string_view text) {
  absl::MutexLock lock(&mu_);
  Write(err_, text);
}

void Output::Error(std::string_view message) {
  std::string line = StrCat(PaintErr("awaitctl:", Color::kRed), " ", message);
  if (line.empty() || line.back() != '\n') line += '\n';
  absl::MutexLock lock(&mu_);
  Write(err_, line);
}

std::string Output::Paint(std::string_view text, Color color) const {
  return Painted(text, color, options_.color_out);
}

std::string Output::PaintErr(std::string_view text, Color color) const {
  return Painted(text, color, options_.color_err);
}

void Output::SetProgress(std::string line) {
  if (!options_.progress) return;
  absl::MutexLock lock(&mu_);
  if (!line.empty()) {
    line = Ellipsize(line, TerminalColumns(fileno(err_)) - 1);
  }
  if (line == progress_ && progress_shown_) return;
  progress_ = std::move(line);
  EraseProgress();
  DrawProgress();
  std::fflush(err_);
}

void Output::Write(std::FILE* stream, std::string_view text) {
  const bool under_progress =
      progress_shown_ && (stream == err_ || options_.out_is_terminal);
  if (under_progress) {
    EraseProgress();
    std::fflush(err_);
  }
  std::fwrite(text.data(), 1, text.size(), stream);
  std::fflush(stream);
  if (under_progress) {
    DrawProgress();
    std::fflush(err_);
  }
}

void Output::DrawProgress() {
  if (progress_.empty()) return;
  const std::string line = PaintErr(progress_, Color::kDim);
  std::fwrite(line.data(), 1, line.size(), err_);
  progress_shown_ = true;
}

void Output::EraseProgress() {
  if (!progress_shown_) return;
  std::fputs("\r\033[K", err_);
  progress_shown_ = false;
}

}  // namespace awaitd::awaitctl
