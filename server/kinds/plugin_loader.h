// LoadPlugin: loads a job-kind plugin (server/kinds/plugin.h) into a
// registry: `awaitd --plugin=PATH`, DaemonOptions::plugins.
//
//   absl::StatusOr<LoadedPlugin> p = LoadPlugin("/opt/kinds/libwc.so", kinds);
//   if (!p.ok()) return p.status();   // "plugin /opt/kinds/libwc.so: ..."
//
// Thread safety: call before the registry is shared (JobKindRegistry's
// rule); loads on different registries may run at once (dlopen locks).
#ifndef AWAITD_SERVER_KINDS_PLUGIN_LOADER_H_
#define AWAITD_SERVER_KINDS_PLUGIN_LOADER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/kinds/job_kind.h"

namespace awaitd::server {

struct LoadedPlugin {
  std::string path;
  std::string name;                // AwaitdPlugin::name
  std::vector<std::string> kinds;  // the kinds it registered
};

// Loads `path` (dlopen, RTLD_NOW | RTLD_LOCAL), checks its ABI version and
// fingerprint against this binary's, and calls its register_kinds with
// `registry`. Every error's message starts with "plugin PATH: " and says
// what to do:
//   NOT_FOUND            no such file;
//   FAILED_PRECONDITION  dlopen failed (not a shared library, an unresolved
//                        symbol: the binary does not export what the plugin
//                        uses), or no `awaitd_plugin` entry point, or a
//                        different ABI version or fingerprint (both shown);
//   the plugin's own code  register_kinds failed (its message follows).
// The library is never unloaded, even when refused (see plugin.h).
absl::StatusOr<LoadedPlugin> LoadPlugin(const std::string& path,
                                        JobKindRegistry& registry);

}  // namespace awaitd::server

#endif  // AWAITD_SERVER_KINDS_PLUGIN_LOADER_H_
