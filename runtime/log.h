// Logging hook of the runtime.
//
// The runtime does not own a logging framework: it reports the few events an
// operator must see (stalls, a detached task that failed, shutdown steps) to a
// sink supplied in RuntimeOptions. The default sink writes one line per event
// to stderr in `key=value` form. Sinks may be called from any runtime thread,
// concurrently; they must be thread-safe and must not block for long.
#ifndef AWAITD_RUNTIME_LOG_H_
#define AWAITD_RUNTIME_LOG_H_

#include <functional>
#include <string_view>

namespace awaitd::runtime {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// `message` is a complete line without the trailing newline.
using LogSink = std::function<void(LogLevel level, std::string_view message)>;

// Writes "level=<level> <message>\n" to stderr with a single write call.
void StderrLogSink(LogLevel level, std::string_view message);

std::string_view LogLevelName(LogLevel level);

}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_LOG_H_
