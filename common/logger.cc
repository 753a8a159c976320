#include "common/logger.h"

#include <unistd.h>

#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace awaitd {

Logger::Logger(LogLevel min_level, runtime::LogSink sink)
    : min_level_(min_level),
      sink_(sink ? std::move(sink) : runtime::LogSink(&TimestampedStderrSink)) {
}

runtime::LogSink Logger::AsSink() const {
  return [this](LogLevel level, std::string_view message) {
    if (Enabled(level)) sink_(level, message);
  };
}

void TimestampedStderrSink(LogLevel level, std::string_view message) {
  std::string line =
      StrCat("time=",
             absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(),
                              absl::UTCTimeZone()),
             " level=", runtime::LogLevelName(level), " ", message, "\n");
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) break;  // nowhere to report a failing stderr
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

bool ParseLogLevel(std::string_view text, LogLevel* out) {
  if (text == "debug") {
    *out = LogLevel::kDebug;
  } else if (text == "info") {
    *out = LogLevel::kInfo;
  } else if (text == "warning") {
    *out = LogLevel::kWarning;
  } else if (text == "error") {
    *out = LogLevel::kError;
  } else {
    return false;
  }
  return true;
}

std::string LogQuote(std::string_view value) {
  if (!value.empty() &&
      value.find_first_of(" \"=\n\t\\") == std::string_view::npos) {
    return std::string(value);
  }
  return StrCat("\"", CHexEscape(value), "\"");
}

}  // namespace awaitd
