// The daemon's command-line flags (absl flags), and their translation into
// DaemonOptions. `awaitd --help` lists them; `--flagfile=FILE` reads them from
// a file, one per line.
#ifndef AWAITD_SERVER_DAEMON_FLAGS_H_
#define AWAITD_SERVER_DAEMON_FLAGS_H_

#include "absl/status/statusor.h"
#include "server/daemon/daemon.h"

namespace awaitd::server {

// INVALID_ARGUMENT naming the flag for a bad value.
absl::StatusOr<DaemonOptions> DaemonOptionsFromFlags();

// --max_memory_bytes=0: half of the machine's memory, or of the cgroup's
// memory limit when that is lower.
std::size_t DefaultMemoryBudget();

// --repair_store: main repairs the store under --data_dir and exits.
bool RepairStoreRequested();

}  // namespace awaitd::server

#endif  // AWAITD_SERVER_DAEMON_FLAGS_H_
