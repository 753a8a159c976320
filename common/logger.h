// Logger: the daemon's structured log lines (`key=value`, one per event).
//
//   logger.Log(LogLevel::kInfo, "component=server event=listening address=",
//              address);
//
// Lifecycle events are logged at debug level; warnings and errors always.
// Lines go to a runtime::LogSink (stderr by default, with a timestamp).
//
// Thread safety: safe for concurrent use; the level is fixed at
// construction.
#ifndef AWAITD_COMMON_LOGGER_H_
#define AWAITD_COMMON_LOGGER_H_

#include <string_view>
#include <utility>

#include "common/strings.h"
#include "runtime/log.h"

namespace awaitd {

using runtime::LogLevel;

class Logger {
 public:
  // A null sink means TimestampedStderrSink.
  explicit Logger(LogLevel min_level = LogLevel::kInfo,
                  runtime::LogSink sink = nullptr);

  bool Enabled(LogLevel level) const { return level >= min_level_; }

  template <typename... Args>
  void Log(LogLevel level, const Args&... args) const {
    if (!Enabled(level)) return;
    sink_(level, StrCat(args...));
  }

  // For the runtime's own lines (stalls, shutdown): filtered by level.
  runtime::LogSink AsSink() const;

 private:
  LogLevel min_level_;
  runtime::LogSink sink_;
};

// "time=2026-11-23T15:04:05.123456Z level=info <message>\n" to stderr, in one
// write.
void TimestampedStderrSink(LogLevel level, std::string_view message);

// Parses "debug", "info", "warning", "error".
bool ParseLogLevel(std::string_view text, LogLevel* out);

// Quotes a value for a key=value line when it has spaces or quotes.
std::string LogQuote(std::string_view value);

}  // namespace awaitd

#endif  // AWAITD_COMMON_LOGGER_H_
