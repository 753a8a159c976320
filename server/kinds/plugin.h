// The plugin ABI: job kinds in a shared library that the stock daemon loads
// with `awaitd --plugin=PATH` (or DaemonOptions::plugins).
//
//   // word_count.cc, built as a MODULE library that links awaitd::plugin
//   #include "server/kinds/plugin.h"
//
//   absl::Status RegisterKinds(awaitd::server::JobKindRegistry& kinds) {
//     return kinds.Register({.name = "word_count", ..., .bind =
//     BindWordCount});
//   }
//   AWAITD_PLUGIN("word_count", RegisterKinds)
//
// The entry point is C: awaitd looks up the unmangled symbol
// `awaitd_plugin` (AWAITD_PLUGIN defines it), calls it, and reads the two
// first fields of the AwaitdPlugin it returns, which keep their place in
// every ABI version:
//   1. abi_version: refused unless it equals this awaitd's
//      AWAITD_PLUGIN_ABI_VERSION (a later ABI may change every other field);
//   2. fingerprint: refused unless it equals this awaitd's own
//      AWAITD_PLUGIN_FINGERPRINT: the awaitd version, a SHA-256 of the headers
//      plugins compile against (runtime/, common/, server/kinds/), the
//      compiler and its version, the C++ standard, libstdc++, Abseil,
//      protobuf, and the sanitizer. Only then is register_kinds called.
//
// The honest constraint: kinds are C++ objects (JobKind holds a
// std::function; a JobBody is a runtime::Task coroutine whose frame, promise
// and awaiters the daemon and the plugin both touch), so the C entry point
// is only the door and the version check. Past it, the plugin and the daemon
// share C++ types and must agree on their layout: a plugin is built against
// the headers installed with the awaitd binary that loads it, by the same
// compiler, which is what the fingerprint checks.
//
// Linking: the runtime has per-thread state (the current event loop, the
// running task) that must exist once per process, so a plugin links none of
// awaitd's libraries. It compiles against the headers (the awaitd::plugin
// CMake target), and its references to awaitd's functions are resolved at
// load time against the awaitd executable, which exports its symbols (it is
// linked with ENABLE_EXPORTS). It may link shared third-party libraries
// (Abseil, protobuf): the dynamic linker loads each once.
//
// Lifetime: a plugin is loaded with RTLD_NOW | RTLD_LOCAL (an unresolved
// symbol fails the load at once, not when a job first runs) and never
// unloaded, even when refused: its static initializers have run, and its code
// may run until the process exits (kinds' std::function targets, coroutine
// frames of jobs still unwinding).
//
// Thread safety: register_kinds runs once, on the thread that starts the
// daemon, before it serves; what it registers follows JobKind's rules
// (server/kinds/job_kind.h).
#ifndef AWAITD_SERVER_KINDS_PLUGIN_H_
#define AWAITD_SERVER_KINDS_PLUGIN_H_

#include <cstdint>

#include "absl/base/config.h"
#include "absl/status/status.h"
#include "google/protobuf/stubs/common.h"
#include "server/kinds/job_kind.h"
#include "server/kinds/plugin_fingerprint.h"

// The layout of AwaitdPlugin and the meaning of register_kinds. A change to
// either is a new version.
#define AWAITD_PLUGIN_ABI_VERSION 1

// The entry point's name, for dlsym.
#define AWAITD_PLUGIN_ENTRY_SYMBOL "awaitd_plugin"

#define AWAITD_PLUGIN_STR_(x) #x
#define AWAITD_PLUGIN_STR(x) AWAITD_PLUGIN_STR_(x)

#if defined(__clang__)
#define AWAITD_PLUGIN_COMPILER_ "clang " __clang_version__
#elif defined(__GNUC__)
#define AWAITD_PLUGIN_COMPILER_ "gcc " __VERSION__
#else
#define AWAITD_PLUGIN_COMPILER_ "unknown compiler"
#endif

#if defined(__GLIBCXX__)
#define AWAITD_PLUGIN_STDLIB_ "libstdc++ " AWAITD_PLUGIN_STR(__GLIBCXX__)
#elif defined(_LIBCPP_VERSION)
#define AWAITD_PLUGIN_STDLIB_ "libc++ " AWAITD_PLUGIN_STR(_LIBCPP_VERSION)
#else
#define AWAITD_PLUGIN_STDLIB_ "unknown standard library"
#endif

#if defined(__SANITIZE_ADDRESS__)
#define AWAITD_PLUGIN_SANITIZER_ "; asan"
#elif defined(__SANITIZE_THREAD__)
#define AWAITD_PLUGIN_SANITIZER_ "; tsan"
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AWAITD_PLUGIN_SANITIZER_ "; asan"
#elif __has_feature(thread_sanitizer)
#define AWAITD_PLUGIN_SANITIZER_ "; tsan"
#endif
#endif
#ifndef AWAITD_PLUGIN_SANITIZER_
#define AWAITD_PLUGIN_SANITIZER_ ""
#endif

// What a plugin and the daemon loading it must agree on, as one string (the
// daemon shows both when they differ).
// clang-format off
#define AWAITD_PLUGIN_FINGERPRINT                                    \
  "awaitd " AWAITD_VERSION_STRING                                    \
  "; headers " AWAITD_PLUGIN_HEADERS_SHA256                          \
  "; " AWAITD_PLUGIN_COMPILER_                                       \
  "; C++ " AWAITD_PLUGIN_STR(__cplusplus)                            \
  "; " AWAITD_PLUGIN_STDLIB_                                         \
  "; abseil " AWAITD_PLUGIN_STR(ABSL_LTS_RELEASE_VERSION)            \
  "; protobuf " AWAITD_PLUGIN_STR(GOOGLE_PROTOBUF_VERSION)           \
  AWAITD_PLUGIN_SANITIZER_
// clang-format on

// What `awaitd_plugin()` returns; static storage, never freed.
struct AwaitdPlugin {
  // --- The same in every ABI version ---
  std::uint32_t abi_version;  // AWAITD_PLUGIN_ABI_VERSION
  const char* fingerprint;    // AWAITD_PLUGIN_FINGERPRINT
  // --- ABI version 1 ---
  // Shown in logs and errors ("word_count").
  const char* name;
  // Registers the plugin's kinds; an error refuses the plugin (and fails
  // the daemon's start). Kinds registered before the error stay registered.
  absl::Status (*register_kinds)(awaitd::server::JobKindRegistry& registry);
};

// The entry point a plugin exports. Use AWAITD_PLUGIN rather than defining
// it by hand.
extern "C" {
using AwaitdPluginEntry = const AwaitdPlugin* (*)();
}

// Defines the entry point of a plugin named `plugin_name` (a string literal)
// whose kinds `register_function` registers. Once per plugin, at namespace
// scope.
#define AWAITD_PLUGIN(plugin_name, register_function)                      \
  extern "C" __attribute__((visibility("default"))) const AwaitdPlugin*    \
  awaitd_plugin() {                                                        \
    static constexpr AwaitdPlugin kAwaitdPlugin = {                        \
        AWAITD_PLUGIN_ABI_VERSION, AWAITD_PLUGIN_FINGERPRINT, plugin_name, \
        register_function};                                                \
    return &kAwaitdPlugin;                                                 \
  }

#endif  // AWAITD_SERVER_KINDS_PLUGIN_H_
