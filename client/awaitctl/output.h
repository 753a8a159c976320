// Output: where awaitctl writes, and how (colours, JSON, quiet, progress).
//
// stdout carries the command's result (tables or JSON); stderr carries
// errors, and on a terminal a progress line that is rewritten in place and
// cleared when done. Colours are used on a stream only when it is a
// terminal, NO_COLOR is unset (or empty), TERM is not "dumb" and --no-color
// was not given, so piped output never holds an escape sequence. Every write
// is flushed at once: streams (watch, as-completed) show each line as it
// happens.
//
//   Output out(OutputOptions::Detect(/*json=*/false, /*quiet=*/false,
//                                    /*no_color=*/false));
//   out.Print(out.Paint("succeeded", Color::kGreen) + "\n");
//   out.SetProgress("12/100 done");   // stderr, only on a terminal
//   out.SetProgress("");              // cleared
//
// Thread safety: safe for concurrent use; each call writes whole (a line
// printed by one thread is never split by another's).
#ifndef AWAITD_CLIENT_AWAITCTL_OUTPUT_H_
#define AWAITD_CLIENT_AWAITCTL_OUTPUT_H_

#include <cstdio>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "awaitd/v1/jobs.pb.h"

namespace awaitd::awaitctl {

enum class Color { kNone, kBold, kDim, kRed, kGreen, kYellow, kBlue, kCyan };

// The colour of a state: green succeeded, red failed, yellow cancelled,
// cyan running, dim pending.
Color StateColor(v1::JobState state);

struct OutputOptions {
  bool json = false;
  bool quiet = false;
  bool color_out = false;  // colour stdout
  bool color_err = false;  // colour stderr
  bool progress = false;   // draw a progress line on stderr
  bool out_is_terminal = false;

  // From the flags and the environment (isatty, NO_COLOR, TERM).
  static OutputOptions Detect(bool json, bool quiet, bool no_color);
};

class Output {
 public:
  explicit Output(OutputOptions options, std::FILE* out = stdout,
                  std::FILE* err = stderr);
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;

  const OutputOptions& options() const { return options_; }
  bool json() const { return options_.json; }
  bool quiet() const { return options_.quiet; }

  // Writes `text` to stdout as it is (the caller ends lines).
  void Print(std::string_view text) ABSL_LOCKS_EXCLUDED(mu_);
  // "awaitctl: <message>" on stderr; `message` may span lines.
  void Error(std::string_view message) ABSL_LOCKS_EXCLUDED(mu_);
  // Writes `text` to stderr as it is.
  void PrintErr(std::string_view text) ABSL_LOCKS_EXCLUDED(mu_);

  // `text` in `color` when stdout (or stderr) is coloured, else as it is.
  std::string Paint(std::string_view text, Color color) const;
  std::string PaintErr(std::string_view text, Color color) const;

  // Shows `line` as the progress line (stderr, terminals only; a no-op
  // otherwise); an empty line clears it.
  void SetProgress(std::string line) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Writes to `stream`, lifting the progress line off the terminal first
  // when the write would land under it.
  void Write(std::FILE* stream, std::string_view text)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DrawProgress() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseProgress() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const OutputOptions options_;
  std::FILE* const out_;
  std::FILE* const err_;
  absl::Mutex mu_;
  std::string progress_ ABSL_GUARDED_BY(mu_);
  bool progress_shown_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace awaitd::awaitctl

#endif  // AWAITD_CLIENT_AWAITCTL_OUTPUT_H_
