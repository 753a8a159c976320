#include "server/daemon/flags.h"

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/strings.h"

namespace awaitd::server {

// --plugin's value: every path given, in command-line order. Abseil keeps
// only the last value of a repeated flag; this type accumulates instead:
// each occurrence is parsed once, in order, on main's thread before any
// other, and its parse appends to the paths seen so far (an empty value
// clears them).
struct PluginPaths {
  std::vector<std::string> paths;
};

namespace {
std::vector<std::string>& PluginPathsSeen() {
  static std::vector<std::string>* seen = new std::vector<std::string>();
  return *seen;
}
}  // namespace

bool AbslParseFlag(absl::string_view text, PluginPaths* out,
                   std::string* /*error*/) {
  std::vector<std::string>& seen = PluginPathsSeen();
  if (text.empty()) {
    seen.clear();
  } else {
    seen.emplace_back(text);
  }
  out->paths = seen;
  return true;
}

std::string AbslUnparseFlag(const PluginPaths& p) {
  return absl::StrJoin(p.paths, ",");
}

}  // namespace awaitd::server

ABSL_FLAG(awaitd::server::PluginPaths, plugin, {},
          "A shared library with more job kinds, loaded at start "
          "(server/kinds/plugin.h); repeat the flag for several. A plugin "
          "that cannot be loaded, or was built for another ABI version or "
          "against other awaitd headers, fails the start (exit 1)");
ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "Address to serve on: HOST:PORT (PORT 0 picks a free one) or "
          "unix:/path/to.sock");
ABSL_FLAG(std::string, port_file, "",
          "If set, write the bound HOST:PORT to this file once listening");
ABSL_FLAG(bool, reflection, true, "Serve gRPC server reflection");
ABSL_FLAG(std::vector<std::string>, limit, {},
          "Named concurrency limits jobs may hold while running, as "
          "NAME:PERMITS, comma-separated (e.g. db:10,http:50)");
ABSL_FLAG(int64_t, max_limits, 10000,
          "Most named limits declared at once (--limit flags included); "
          "beyond it DeclareLimit of a new name fails with "
          "RESOURCE_EXHAUSTED");
ABSL_FLAG(int, workers, 0, "Event-loop threads (0: one per core)");
ABSL_FLAG(int, blocking_max_threads, 512,
          "Most threads of the blocking (to_thread) pool");
ABSL_FLAG(int64_t, max_message_bytes, 64 << 20,
          "Largest request or response message");
ABSL_FLAG(int64_t, max_batch, 10000, "Most jobs created by one call");
ABSL_FLAG(int64_t, max_pending_jobs, 2000000,
          "Most jobs not done yet (pending + running); beyond it Submit fails "
          "with RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, max_args_bytes, 64 << 10,
          "Largest serialized args of one job");
ABSL_FLAG(int64_t, max_result_bytes, 16 << 20,
          "Largest serialized result of one job; a job that returns more "
          "ends FAILED (ResultTooLargeError)");
ABSL_FLAG(int64_t, max_memory_bytes, 0,
          "Bytes the daemon may hold for its jobs (records, args, kept "
          "results) before Submit, Gather and RunGroup fail with "
          "RESOURCE_EXHAUSTED (0: half of the machine's memory, or of the "
          "cgroup's memory.max when that is lower)");
ABSL_FLAG(int64_t, max_name_length, 256,
          "Longest job name, group name and idempotency key");
ABSL_FLAG(int64_t, max_ids_per_call, 1000000,
          "Most job ids or inputs in one call");
ABSL_FLAG(int64_t, max_streams, 10000,
          "Most Watch and AsCompleted streams open at once; one more fails "
          "with RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, max_streams_per_connection, 100,
          "Most Watch and AsCompleted streams open at once on one TCP "
          "connection; one more fails with RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, max_watch_backlog, 65536,
          "Events a Watch stream over every job may fall behind its reader; "
          "beyond it the stream ends with RESOURCE_EXHAUSTED and its events "
          "are dropped");
ABSL_FLAG(int64_t, max_concurrent_streams, 1000,
          "Most calls (HTTP/2 streams) open at once on one connection; the "
          "client queues more");
ABSL_FLAG(absl::Duration, keepalive_time, absl::Minutes(1),
          "Ping each connection this often (a vanished client's calls end)");
ABSL_FLAG(absl::Duration, keepalive_timeout, absl::Seconds(20),
          "Close a connection whose keepalive ping is not answered within "
          "this");
ABSL_FLAG(int64_t, grpc_memory_bytes, int64_t{1} << 30,
          "Memory gRPC's buffers may use (its ResourceQuota); under pressure "
          "it shrinks reads and closes idle connections");
ABSL_FLAG(int64_t, grpc_max_threads, 256,
          "Most threads gRPC may run (its ResourceQuota)");
ABSL_FLAG(absl::Duration, result_ttl, absl::Hours(1),
          "How long finished jobs are kept (then Get says NOT_FOUND)");
ABSL_FLAG(int64_t, max_finished_jobs, 1000000,
          "Most finished jobs kept; the oldest are forgotten first");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "On SIGTERM/SIGINT: how long running jobs may finish before they are "
          "cancelled");
ABSL_FLAG(absl::Duration, stall_threshold, absl::Milliseconds(100),
          "Log a job that runs this long on an event loop without yielding "
          "(0: off)");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "Serve Prometheus metrics at http://HOST:PORT/metrics (port 0 "
          "picks one; empty: off). Beyond loopback, scrapes need a token of "
          "--token_file (\"Authorization: Bearer <token>\") unless "
          "--metrics_public");
ABSL_FLAG(bool, metrics_public, false,
          "Serve a non-loopback --metrics_listen to anyone, without tokens "
          "(the metrics show kinds, limits and method names, never job "
          "data)");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");
ABSL_FLAG(std::string, tls_cert, "",
          "Serve TLS with this PEM certificate (chain); needs --tls_key");
ABSL_FLAG(std::string, tls_key, "",
          "The PEM private key of --tls_cert (unencrypted)");
ABSL_FLAG(std::string, tls_client_ca, "",
          "Mutual TLS: PEM CA certificates that must sign every client's "
          "certificate (a missing or untrusted one: UNAUTHENTICATED); needs "
          "--tls_cert");
ABSL_FLAG(std::string, token_file, "",
          "Require a bearer token (\"authorization: Bearer <token>\") on "
          "every call but health Check: the tokens, one per line ('#' "
          "comments and blank lines ignored); SIGHUP reads it again");
ABSL_FLAG(bool, insecure_listen_anywhere, false,
          "Allow a non-loopback --listen without --token_file or mutual TLS "
          "(anyone who reaches the port can run jobs)");

ABSL_FLAG(std::string, data_dir, "./var",
          "Where the job store lives (<data_dir>/jobs), with --durability "
          "other than none");
ABSL_FLAG(std::string, durability, "sync",
          "none: jobs live in memory only; sync: a Submit is answered once "
          "its jobs are on disk (fsync), nothing acknowledged is lost; "
          "async: answered once written, synced every 100 ms (a power loss "
          "can lose the last 100 ms)");
ABSL_FLAG(absl::Duration, store_timeout, absl::Seconds(10),
          "How long a Submit or Cancel waits for the job store to confirm its "
          "write; past it the call fails with UNAVAILABLE (a hung disk "
          "cannot hold the daemon's threads; retry with the same "
          "idempotency key)");
ABSL_FLAG(bool, repair_store, false,
          "Repair the job store under --data_dir (after a refusal to start "
          "with a damaged store; keeps what can be read), then exit");

namespace awaitd::server {

namespace {

absl::Status Positive(int64_t v, const char* flag) {
  if (v <= 0) {
    return absl::InvalidArgumentError(
        StrCat("--", flag, "=", v, ": must be > 0"));
  }
  return absl::OkStatus();
}

}  // namespace

bool RepairStoreRequested() { return absl::GetFlag(FLAGS_repair_store); }

absl::StatusOr<DaemonOptions> DaemonOptionsFromFlags() {
  DaemonOptions o;
  o.listen = absl::GetFlag(FLAGS_listen);
  if (o.listen.empty())
    return absl::InvalidArgumentError("--listen: must not be empty");
  o.port_file = absl::GetFlag(FLAGS_port_file);
  o.reflection = absl::GetFlag(FLAGS_reflection);
  o.limits = absl::GetFlag(FLAGS_limit);
  o.plugins = absl::GetFlag(FLAGS_plugin).paths;
  o.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  // Checked (files read, the --listen policy applied) by Daemon::Start.
  o.auth.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  o.auth.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  o.auth.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  o.auth.token_file = absl::GetFlag(FLAGS_token_file);
  o.auth.insecure_listen_anywhere =
      absl::GetFlag(FLAGS_insecure_listen_anywhere);
  o.auth.metrics_public = absl::GetFlag(FLAGS_metrics_public);
  const int workers = absl::GetFlag(FLAGS_workers);
  if (workers < 0 || workers > 1024) {
    return absl::InvalidArgumentError(
        StrCat("--workers=", workers, ": must be in 0..1024"));
  }
  o.runtime.workers = static_cast<std::uint32_t>(workers);
  const int blocking = absl::GetFlag(FLAGS_blocking_max_threads);
  if (blocking < 1 || blocking > 65536) {
    return absl::InvalidArgumentError(
        StrCat("--blocking_max_threads=", blocking, ": must be in 1..65536"));
  }
  o.runtime.blocking_max_threads = static_cast<std::uint32_t>(blocking);
  const absl::Duration stall = absl::GetFlag(FLAGS_stall_threshold);
  if (stall < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--stall_threshold: must be >= 0");
  }
  o.runtime.stall_threshold = absl::ToChronoNanoseconds(stall);
  o.runtime.shutdown_policy = runtime::ShutdownPolicy::kCancel;

  struct SizeFlag {
    const char* name;
    int64_t value;
    std::size_t* out;
  } sizes[] = {
      {"max_message_bytes", absl::GetFlag(FLAGS_max_message_bytes),
       &o.max_message_bytes},
      {"max_batch", absl::GetFlag(FLAGS_max_batch), &o.jobs.max_batch},
      {"max_pending_jobs", absl::GetFlag(FLAGS_max_pending_jobs),
       &o.jobs.max_pending_jobs},
      {"max_args_bytes", absl::GetFlag(FLAGS_max_args_bytes),
       &o.jobs.max_args_bytes},
      {"max_name_length", absl::GetFlag(FLAGS_max_name_length),
       &o.jobs.max_name_length},
      {"max_ids_per_call", absl::GetFlag(FLAGS_max_ids_per_call),
       &o.service.max_ids_per_call},
      {"max_finished_jobs", absl::GetFlag(FLAGS_max_finished_jobs),
       &o.jobs.max_finished_jobs},
      {"max_result_bytes", absl::GetFlag(FLAGS_max_result_bytes),
       &o.jobs.max_result_bytes},
      {"max_limits", absl::GetFlag(FLAGS_max_limits), &o.jobs.max_limits},
      {"max_streams", absl::GetFlag(FLAGS_max_streams), &o.service.max_streams},
      {"max_streams_per_connection",
       absl::GetFlag(FLAGS_max_streams_per_connection),
       &o.service.max_streams_per_connection},
      {"max_watch_backlog", absl::GetFlag(FLAGS_max_watch_backlog),
       &o.service.max_watch_backlog},
      {"grpc_memory_bytes", absl::GetFlag(FLAGS_grpc_memory_bytes),
       &o.grpc_memory_bytes},
  };
  for (const SizeFlag& f : sizes) {
    absl::Status s = Positive(f.value, f.name);
    if (!s.ok()) return s;
    *f.out = static_cast<std::size_t>(f.value);
  }
  const int64_t memory = absl::GetFlag(FLAGS_max_memory_bytes);
  if (memory < 0) {
    return absl::InvalidArgumentError(StrCat(
        "--max_memory_bytes: must be >= 0 (0: automatic; got ", memory, ")"));
  }
  o.jobs.max_memory_bytes =
      memory > 0 ? static_cast<std::size_t>(memory) : DefaultMemoryBudget();
  if (o.max_message_bytes > INT32_MAX) {
    return absl::InvalidArgumentError(
        "--max_message_bytes: must be below 2 GiB");
  }
  struct IntFlag {
    const char* name;
    int64_t value;
    int* out;
  } ints[] = {
      {"max_concurrent_streams", absl::GetFlag(FLAGS_max_concurrent_streams),
       &o.max_concurrent_streams},
      {"grpc_max_threads", absl::GetFlag(FLAGS_grpc_max_threads),
       &o.grpc_max_threads},
  };
  for (const IntFlag& f : ints) {
    if (f.value <= 0 || f.value > INT32_MAX) {
      return absl::InvalidArgumentError(
          StrCat("--", f.name, "=", f.value, ": must be in 1..", INT32_MAX));
    }
    *f.out = static_cast<int>(f.value);
  }
  struct DurationFlag {
    const char* name;
    absl::Duration value;
    absl::Duration* out;
  } durations[] = {
      {"keepalive_time", absl::GetFlag(FLAGS_keepalive_time),
       &o.keepalive_time},
      {"keepalive_timeout", absl::GetFlag(FLAGS_keepalive_timeout),
       &o.keepalive_timeout},
  };
  for (const DurationFlag& f : durations) {
    if (f.value < absl::Milliseconds(1) || f.value > absl::Hours(24 * 24)) {
      return absl::InvalidArgumentError(StrCat("--", f.name, "=",
                                               absl::FormatDuration(f.value),
                                               ": must be in 1ms..576h"));
    }
    *f.out = f.value;
  }
  o.jobs.result_ttl = absl::GetFlag(FLAGS_result_ttl);
  if (o.jobs.result_ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--result_ttl: must be > 0");
  }
  o.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  if (o.shutdown_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--shutdown_grace: must be >= 0");
  }
  o.jobs.store_timeout = absl::GetFlag(FLAGS_store_timeout);
  if (o.jobs.store_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        StrCat("--store_timeout=", absl::FormatDuration(o.jobs.store_timeout),
               ": must be > 0"));
  }
  o.data_dir = absl::GetFlag(FLAGS_data_dir);
  auto durability = ParseDurability(absl::GetFlag(FLAGS_durability));
  if (!durability.ok()) return durability.status();
  o.durability = *durability;
  if (o.durability != Durability::kNone && o.data_dir.empty()) {
    return absl::InvalidArgumentError("--data_dir: must not be empty");
  }
  const std::string level = absl::GetFlag(FLAGS_log_level);
  if (!ParseLogLevel(level, &o.log_level)) {
    return absl::InvalidArgumentError(StrCat(
        "--log_level=", level, ": must be debug, info, warning or error"));
  }
  return o;
}

std::size_t DefaultMemoryBudget() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  std::uint64_t total = pages > 0 && page_size > 0
                            ? static_cast<std::uint64_t>(pages) *
                                  static_cast<std::uint64_t>(page_size)
                            : std::uint64_t{4} << 30;
  // A container's limit: cgroup v2's memory.max ("max" when unlimited),
  // else v1's memory.limit_in_bytes (a huge number when unlimited).
  for (const char* path : {"/sys/fs/cgroup/memory.max",
                           "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(path);
    std::string text;
    std::uint64_t limit = 0;
    if (in >> text && absl::SimpleAtoi(text, &limit) && limit > 0) {
      total = std::min(total, limit);
      break;
    }
  }
  return static_cast<std::size_t>(total / 2);
}

}  // namespace awaitd::server
