#include "server/kinds/plugin_loader.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "absl/status/status.h"
#include "common/strings.h"
#include "server/kinds/plugin.h"

namespace awaitd::server {

namespace {

std::vector<std::string> KindNames(const JobKindRegistry& registry) {
  std::vector<std::string> names;
  for (const JobKind* kind : registry.List()) names.push_back(kind->name);
  return names;
}

std::string DlError() {
  const char* e = dlerror();
  return e == nullptr ? std::string("unknown dlopen error") : std::string(e);
}

}  // namespace

absl::StatusOr<LoadedPlugin> LoadPlugin(const std::string& path,
                                        JobKindRegistry& registry) {
  const std::string where = StrCat("plugin ", path, ": ");
  // A path without '/' would be searched for (LD_LIBRARY_PATH, ...): the
  // operator named a file, so check that it is there first.
  struct stat st;
  if (path.find('/') != std::string::npos && stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(
        StrCat(where, "cannot load it: ", std::strerror(errno)));
  }
  // Never dlclose'd (plugin.h): the handle is deliberately not kept.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    return absl::FailedPreconditionError(
        StrCat(where, "cannot load it: ", DlError(),
               " (a plugin is a shared library built against the headers of "
               "this awaitd; it may use only what the awaitd binary exports)"));
  }
  dlerror();  // clear, so a null symbol is told apart from an error
  void* symbol = dlsym(handle, AWAITD_PLUGIN_ENTRY_SYMBOL);
  if (symbol == nullptr) {
    return absl::FailedPreconditionError(
        StrCat(where, "no ", AWAITD_PLUGIN_ENTRY_SYMBOL,
               "() entry point: not an awaitd plugin (define one with "
               "AWAITD_PLUGIN(name, register_function) from "
               "server/kinds/plugin.h)"));
  }
  const auto entry = reinterpret_cast<AwaitdPluginEntry>(symbol);
  const AwaitdPlugin* plugin = entry();
  if (plugin == nullptr) {
    return absl::FailedPreconditionError(
        StrCat(where, AWAITD_PLUGIN_ENTRY_SYMBOL, "() returned null"));
  }
  if (plugin->abi_version != AWAITD_PLUGIN_ABI_VERSION) {
    return absl::FailedPreconditionError(
        StrCat(where, "built for plugin ABI version ", plugin->abi_version,
               ", but this awaitd loads version ", AWAITD_PLUGIN_ABI_VERSION,
               "; rebuild the plugin against the headers of this awaitd"));
  }
  constexpr std::string_view kFingerprint = AWAITD_PLUGIN_FINGERPRINT;
  const std::string_view theirs = plugin->fingerprint == nullptr
                                      ? std::string_view("(none)")
                                      : std::string_view(plugin->fingerprint);
  if (theirs != kFingerprint) {
    return absl::FailedPreconditionError(StrCat(
        where,
        "built against other awaitd headers or another compiler; rebuild "
        "the plugin against the headers installed with this awaitd (plugin: ",
        theirs, "; awaitd: ", kFingerprint, ")"));
  }
  LoadedPlugin loaded{.path = path,
                      .name = plugin->name == nullptr ? "" : plugin->name};
  if (plugin->register_kinds == nullptr) {
    return absl::FailedPreconditionError(
        StrCat(where, "its register_kinds is null"));
  }
  const std::vector<std::string> before = KindNames(registry);
  if (absl::Status s = plugin->register_kinds(registry); !s.ok()) {
    return absl::Status(s.code(),
                        StrCat(where, "(", loaded.name, ") ", s.message()));
  }
  for (std::string& name : KindNames(registry)) {
    if (!std::binary_search(before.begin(), before.end(), name)) {
      loaded.kinds.push_back(std::move(name));
    }
  }
  return loaded;
}

}  // namespace awaitd::server
