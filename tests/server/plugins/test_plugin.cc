// Job-kind plugins for plugin_loader_test.cc, one per AWAITD_TEST_PLUGIN
// value (tests/server/CMakeLists.txt builds each as a MODULE library that
// links awaitd::plugin only, as a real plugin does):
//   1 good               plugin_sleep (event loop), plugin_blocking (pool)
//   2 wrong ABI version  abi_version 99
//   3 wrong fingerprint  built "against other headers"
//   4 failing register   registers plugin_echo, then a second sleep
//   5 no entry point     a shared library without awaitd_plugin()
#include <chrono>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "runtime/internal/context.h"
#include "runtime/time.h"
#include "runtime/to_thread.h"
#include "server/kinds/args.h"
#include "server/kinds/job_kind.h"
#include "server/kinds/plugin.h"

namespace {

using awaitd::server::Args;
using awaitd::server::JobBody;
using awaitd::server::JobKindRegistry;
using google::protobuf::Struct;
using google::protobuf::Value;

// Whether the calling thread runs a task of the daemon's runtime, read
// through the runtime's inline thread-local: false if this plugin had a copy
// of its own instead of the daemon's.
bool InDaemonTask() {
  return awaitd::runtime::internal::CurrentTaskHeader() != nullptr;
}

JobBody SleepBody(double seconds, Value result) {
  const bool before = InDaemonTask();
  co_await awaitd::runtime::Sleep(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::duration<double>(seconds)));
  if (!before || !InDaemonTask()) {
    throw awaitd::server::JobFailure("PluginError",
                                     "not in the daemon's task context");
  }
  co_return std::move(result);
}

absl::StatusOr<JobBody> BindSleep(const Struct& args) {
  Args a(args, {"seconds", "result"});
  const double seconds = a.Number("seconds", {.min = 0, .max = 60});
  Value result = a.AnyOr("result", awaitd::server::NullValue());
  if (!a.ok()) return a.status();
  return SleepBody(seconds, std::move(result));
}

JobBody BlockingBody(std::string text) {
  auto work = [text]() -> std::string {
    // A pool thread: no worker, no task.
    if (awaitd::runtime::internal::tl_context.worker != nullptr) {
      return "ran on an event loop";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return "pool: " + text;
  };
  std::string out = co_await awaitd::runtime::ToThread(work);
  co_return awaitd::server::StringValue(std::move(out));
}

absl::StatusOr<JobBody> BindBlocking(const Struct& args) {
  Args a(args, {"text"});
  std::string text = a.String("text", {.max_length = 100});
  if (!a.ok()) return a.status();
  return BlockingBody(std::move(text));
}

JobBody EchoBody(Value v) { co_return std::move(v); }

absl::StatusOr<JobBody> BindEcho(const Struct& args) {
  Args a(args, {"value"});
  Value v = a.Any("value");
  if (!a.ok()) return a.status();
  return EchoBody(std::move(v));
}

[[maybe_unused]] absl::Status RegisterGood(JobKindRegistry& kinds) {
  if (absl::Status s = kinds.Register(
          {.name = "plugin_sleep",
           .description = "Sleeps on the event loop.\nargs: seconds, result",
           .retry_safe = true,
           .bind = BindSleep});
      !s.ok()) {
    return s;
  }
  return kinds.Register(
      {.name = "plugin_blocking",
       .description = "Runs on the blocking pool.\nargs: text",
       .blocking = true,
       .bind = BindBlocking});
}

[[maybe_unused]] absl::Status RegisterFailing(JobKindRegistry& kinds) {
  if (absl::Status s = kinds.Register({.name = "plugin_echo",
                                       .description = "echo\nargs: value",
                                       .bind = BindEcho});
      !s.ok()) {
    return s;
  }
  return kinds.Register({.name = "sleep",
                         .description = "a second sleep\nargs: value",
                         .bind = BindEcho});
}

}  // namespace

#if AWAITD_TEST_PLUGIN == 1
AWAITD_PLUGIN("test_good", RegisterGood)
#elif AWAITD_TEST_PLUGIN == 2
extern "C" __attribute__((visibility("default"))) const AwaitdPlugin*
awaitd_plugin() {
  static constexpr AwaitdPlugin kPlugin = {99, AWAITD_PLUGIN_FINGERPRINT,
                                           "test_wrong_abi", RegisterGood};
  return &kPlugin;
}
#elif AWAITD_TEST_PLUGIN == 3
extern "C" __attribute__((visibility("default"))) const AwaitdPlugin*
awaitd_plugin() {
  static constexpr AwaitdPlugin kPlugin = {
      AWAITD_PLUGIN_ABI_VERSION, "awaitd 0.0.1; headers 0123456789abcdef",
      "test_wrong_fingerprint", RegisterGood};
  return &kPlugin;
}
#elif AWAITD_TEST_PLUGIN == 4
AWAITD_PLUGIN("test_failing", RegisterFailing)
#elif AWAITD_TEST_PLUGIN == 5
// No entry point: only something to export.
extern "C" __attribute__((visibility("default"))) int not_an_awaitd_plugin() {
  return 5;
}
#else
#error "AWAITD_TEST_PLUGIN must be 1..5"
#endif
