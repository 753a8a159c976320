// The default log sink.
#include "runtime/log.h"

#include <unistd.h>

#include <string>

namespace awaitd::runtime {

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "unknown";
}

void StderrLogSink(LogLevel level, std::string_view message) {
  std::string line;
  line.reserve(message.size() + 16);
  line.append("level=")
      .append(LogLevelName(level))
      .append(" ")
      .append(message)
      .append("\n");
  // One write keeps concurrent lines whole.
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace awaitd::runtime
