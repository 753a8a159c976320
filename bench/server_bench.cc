// server_bench: end-to-end benchmarks of the awaitd daemon over gRPC, with a
// bare gRPC echo server as the baseline for round-trip latency.
//
//   server_bench [--benchmarks=echo_rtt,batch_echo,sleep_1m,blocking_lateness]
//                [--awaitd=PATH] [--daemon_args="--workers=2 ..."]
//                [--repetitions=K] [--jobs=N] [--inflight=K] [--json=PATH]
//
// Every benchmark runs in a fresh child process (this binary re-executed with
// --child=<name>), which starts its own daemon (build/server/awaitd, or
// --awaitd=PATH) on 127.0.0.1 port 0, reads the address from the daemon's
// --port_file, drives it through one insecure channel, stops it with SIGTERM
// and prints one JSON line with its results. The parent prints one table per
// benchmark (value, baseline, value / baseline, target, PASS/FAIL) and, with
// --json, writes every figure to a file. A fresh daemon per benchmark keeps
// their memory and job tables apart; the daemon's own RSS and CPU time are
// read from /proc/<pid>. The daemon and every helper process die with the
// benchmark process (PR_SET_PDEATHSIG), so a crash leaves nothing behind.
//
// All processes share the machine: on a 2-core box the client, the daemon
// (and for echo_rtt the echo server) compete for the same cores, so client
// CPU is part of every throughput figure ("client included").
//
// Benchmarks:
//   echo_rtt   Sequential unary round trips, one at a time (1,000 warm-up,
//              then --rtt_calls), p50/p99/mean in microseconds, for:
//                bare echo:  a child process serving a callback-API unary
//                            method that returns its request bytes (the same
//                            server code path a generated callback service
//                            uses, with ByteBuffer messages since no proto
//                            may be added); the request is the serialized
//                            WaitForRequest below, so payloads match;
//                WaitFor(inline echo): WaitFor{job: {spec: echo{value: 1}}},
//                            i.e. "create the job and wait for it" in one RPC;
//                Submit+WaitFor(id): the two-RPC form of the same;
//                Submit(echo): the Submit alone (with --durability=sync in
//                            --daemon_args, the latency of an acknowledged,
//                            synced job).
//              Every client call is driven the same way (an async stub on a
//              completion queue polled by the calling thread, no thread
//              hand-off), so the ratio awaitd p50 / echo p50 is the daemon's
//              own overhead per job. Target: <= 1.25 for the single-RPC form.
//              Also the server process's CPU time per call (utime + stime
//              over the timed calls): daemon vs echo server tells CPU work
//              apart from latency added by thread hand-offs.
//   batch_echo --jobs (default 1,000,000) echo jobs, as Gather RPCs of 1,000
//              inline echo specs each (value = position in the batch), with
//              --inflight (default 8) Gathers in flight through the callback
//              API. Every response must hold 1,000 SUCCEEDED results with the
//              right values. Reports jobs/s (wall clock from the first send to
//              the last response, client included; target >= 500,000), the
//              daemon's CPU time (utime + stime) per job, the client's CPU
//              time per job, and Gather latency p50/p99.
//   sleep_1m   --jobs (default 1,000,000) `sleep {seconds: 5}` jobs through
//              Submit, 1,000 per call, --inflight calls in flight, on a daemon
//              started with --max_pending_jobs=2,000,000. Bytes per job is the
//              daemon's VmRSS growth from just before the first Submit to just
//              after the last one returned, divided by the job count (target
//              <= 1024 B; it includes whatever the daemon keeps per job:
//              record, coroutine frame, timer, id index). Then Wait
//              (ALL_COMPLETED) over the ids, 10,000 per call, all calls at
//              once; "submit to all done" is from the first Submit to the
//              last Wait's answer (target <= 7 s, i.e. <= 2 s over the 5 s
//              sleep). Also: peak RSS (VmHWM), daemon CPU per job, and the
//              lateness (finished_at - created_at - 5 s) of 1,000 jobs spread
//              over the run, from their server-side timestamps.
//   blocking_lateness
//              2,000 `sleep {seconds: 0.001}` jobs, one Submit every 0.5 ms;
//              lateness = finished_at - (created_at + 1 ms) from each job's
//              server-side timestamps. Measured first with the blocking pool
//              idle, then while 64 `blocking {seconds: 10}` jobs hold it (the
//              daemon runs with --blocking_max_threads=8, so 8 threads sleep
//              and 56 calls queue). A loop that never blocks keeps the second
//              p99 close to the first; the target on it (<= 1 ms) is the one
//              runtime_bench's `blocking` uses for the runtime alone. The
//              blocking jobs are cancelled before the daemon is stopped.
//
// Every benchmark also reports how the daemon took SIGTERM: its exit status
// (target 0) and the seconds it took to exit.
//
// --jobs=N scales batch_echo and sleep_1m down (or up) for a quick run.
// --repetitions=K repeats echo_rtt and batch_echo K times on the same daemon
// and reports the median of each figure.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "awaitd/v1/jobs.grpc.pb.h"
#include "awaitd/v1/jobs.pb.h"
#include "bench/harness/harness.h"
#include "boost/json/object.hpp"
#include "google/protobuf/arena.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/codegen/server_callback_handlers.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/channel_arguments.h"

ABSL_FLAG(std::string, benchmarks,
          "echo_rtt,batch_echo,sleep_1m,blocking_lateness",
          "Comma-separated benchmarks to run");
ABSL_FLAG(std::string, awaitd, "",
          "The daemon binary (default: ../server/awaitd next to this binary)");
ABSL_FLAG(std::string, daemon_args, "",
          "Extra daemon flags, separated by spaces; they come after the ones "
          "server_bench sets, so they override them");
ABSL_FLAG(std::string, json, "", "Write the results as JSON to this path");
ABSL_FLAG(int, repetitions, 1,
          "Repetitions of echo_rtt and batch_echo; the median is reported");
ABSL_FLAG(bool, verbose, false, "Print every repetition's value to stderr");
ABSL_FLAG(bool, fail_on_miss, false,
          "Exit with status 1 if any target is missed");
ABSL_FLAG(std::string, child, "",
          "Internal: run one benchmark (or the echo server) in this process");

ABSL_FLAG(std::int64_t, jobs, 0,
          "Jobs for batch_echo and sleep_1m (0: 1,000,000 each)");
ABSL_FLAG(int, inflight, 8,
          "batch_echo and sleep_1m: concurrent Gather / Submit calls");
ABSL_FLAG(int, batch, 1000,
          "batch_echo and sleep_1m: jobs per Gather / Submit call");
ABSL_FLAG(std::int64_t, rtt_calls, 20'000,
          "echo_rtt: measured round trips per variant");
ABSL_FLAG(std::int64_t, rtt_warmup, 1'000,
          "echo_rtt: warm-up round trips per variant");
ABSL_FLAG(double, sleep_seconds, 5, "sleep_1m: each job's sleep");
ABSL_FLAG(int, wait_chunk, 10'000, "sleep_1m: job ids per Wait call");
ABSL_FLAG(int, lateness_jobs, 2000, "blocking_lateness: 1 ms sleeps measured");
ABSL_FLAG(std::int64_t, lateness_interval_us, 500,
          "blocking_lateness: pace of the sleep submissions");
ABSL_FLAG(int, blocking_jobs, 64,
          "blocking_lateness: blocking jobs that hold the pool");
ABSL_FLAG(double, blocking_seconds, 10,
          "blocking_lateness: each blocking job's length");
ABSL_FLAG(int, blocking_max_threads, 8,
          "blocking_lateness: the daemon's --blocking_max_threads (0: not "
          "passed)");
ABSL_FLAG(int, daemon_workers, 0, "The daemon's --workers (0: not passed)");
ABSL_FLAG(double, start_timeout_s, 20,
          "How long to wait for the daemon's port file");
ABSL_FLAG(double, stop_timeout_s, 30,
          "How long to wait for the daemon to exit after SIGTERM before "
          "SIGKILL");

namespace {

namespace v1 = awaitd::v1;
using Clock = std::chrono::steady_clock;
namespace bench = awaitd::bench;
using bench::AtLeast;
using bench::AtMost;
using bench::DescribeExit;
using bench::kNaN;
using bench::Median;
using bench::Result;
using bench::SortedQuantile;
using bench::Target;

constexpr int kMaxReceiveMessageBytes = 256 << 20;
constexpr char kEchoMethod[] = "/server_bench.Echo/Echo";

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}
double Micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// With --verbose, prints the values of every repetition behind a median.
void LogReps(std::string_view what, const std::vector<double>& v) {
  bench::LogReps(absl::GetFlag(FLAGS_verbose), what, v);
}

double Mean(const std::vector<double>& v) {
  if (v.empty()) return kNaN;
  double sum = 0;
  for (double x : v) sum += x;
  return sum / static_cast<double>(v.size());
}

int Repetitions() { return std::max(1, absl::GetFlag(FLAGS_repetitions)); }
int Batch() { return std::max(1, absl::GetFlag(FLAGS_batch)); }
int Inflight() { return std::max(1, absl::GetFlag(FLAGS_inflight)); }
std::int64_t Jobs() {
  const std::int64_t n = absl::GetFlag(FLAGS_jobs);
  return n > 0 ? n : 1'000'000;
}

// --- Results -----------------------------------------------------------------

// A failed step of a benchmark, as a row that always FAILs.
Result ErrorRow(const std::string& benchmark, const absl::Status& status) {
  return {benchmark, "error: " + std::string(status.message()), "", kNaN, kNaN,
          AtMost(0)};
}

// --- Processes ---------------------------------------------------------------

// The directory of this executable.
std::filesystem::path SelfDir() {
  std::error_code ec;
  const std::filesystem::path exe =
      std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path(".") : exe.parent_path();
}

std::string DaemonPath() {
  const std::string flag = absl::GetFlag(FLAGS_awaitd);
  if (!flag.empty()) return flag;
  return (SelfDir() / ".." / "server" / "awaitd").lexically_normal().string();
}

// Forks and execs argv[0] with `argv`. The child's stdout is `stdout_fd`, or
// this process's stderr when it is -1 (so that nothing a daemon prints mixes
// with the JSON line a benchmark child writes on stdout). The child is killed
// if this process's calling thread exits first (PR_SET_PDEATHSIG), so no
// daemon outlives a crashed benchmark; call this from the main thread. Call it
// before this process creates any gRPC object: only async-signal-safe calls
// run between fork and exec, but gRPC's threads and fork are best kept apart.
absl::StatusOr<pid_t> SpawnProcess(const std::vector<std::string>& argv,
                                   int stdout_fd) {
  std::vector<char*> cargs;
  for (const std::string& a : argv)
    cargs.push_back(const_cast<char*>(a.data()));
  cargs.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", errno));
  if (pid == 0) {
    if (dup2(stdout_fd >= 0 ? stdout_fd : STDERR_FILENO, STDOUT_FILENO) < 0)
      _exit(127);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
      _exit(127);
    execv(cargs[0], cargs.data());
    _exit(127);
  }
  return pid;
}

// Waits up to `timeout` for `pid` to exit; nullopt if it has not.
std::optional<int> WaitPid(pid_t pid, std::chrono::duration<double> timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t got = waitpid(pid, &status, WNOHANG);
    if (got == pid) return status;
    if (got < 0 && errno != EINTR) return -1;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// A field of /proc/<pid>/status in bytes ("VmRSS", "VmHWM"); -1 if unreadable.
std::int64_t ProcStatusBytes(pid_t pid, std::string_view field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(f, line);) {
    if (line.size() > field.size() &&
        line.compare(0, field.size(), field) == 0 &&
        line[field.size()] == ':') {
      return std::strtoll(line.c_str() + field.size() + 1, nullptr, 10) * 1024;
    }
  }
  return -1;
}

// utime + stime of `pid` in seconds (NaN if unreadable).
double ProcCpuSeconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)),
                   std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces; fields 14 and 15 count from
  // the last ')'.
  const std::size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return kNaN;
  std::istringstream rest(stat.substr(paren + 2));
  std::string field;
  double utime = kNaN, stime = kNaN;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::strtod(field.c_str(), nullptr);
    if (i == 15) stime = std::strtod(field.c_str(), nullptr);
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// This process's user + system CPU time in seconds (all threads).
double SelfCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// --- The daemon --------------------------------------------------------------

// One awaitd process on 127.0.0.1 (any port). Not thread-safe; owned by the
// benchmark's main thread. Destroying a running daemon kills it.
class Daemon {
 public:
  struct StopResult {
    int status = 0;         // waitpid status
    bool killed = false;    // SIGTERM did not end it in time: SIGKILLed
    double seconds = kNaN;  // SIGTERM to exit
  };

  Daemon() = default;
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  ~Daemon() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  // Starts the daemon with the flags server_bench always sets, then `flags`,
  // then --daemon_args, and waits for its port file.
  absl::Status Start(const std::vector<std::string>& flags) {
    const std::string path = DaemonPath();
    if (access(path.c_str(), X_OK) != 0) {
      return absl::NotFoundError(
          absl::StrCat("no daemon binary at ", path,
                       " (build the awaitd target, or pass --awaitd=PATH)"));
    }
    char dir_template[] = "/tmp/server_bench.XXXXXX";
    if (mkdtemp(dir_template) == nullptr)
      return absl::InternalError("mkdtemp failed");
    dir_ = dir_template;
    const std::string port_file = dir_ + "/port";
    // Not durable unless --daemon_args says so (--durability=sync): the
    // figures compare with the in-memory daemon; a store goes in dir_.
    std::vector<std::string> argv = {path,
                                     "--listen=127.0.0.1:0",
                                     "--port_file=" + port_file,
                                     "--log_level=warning",
                                     "--durability=none",
                                     "--data_dir=" + dir_ + "/data"};
    if (const int w = absl::GetFlag(FLAGS_daemon_workers); w > 0)
      argv.push_back("--workers=" + std::to_string(w));
    argv.insert(argv.end(), flags.begin(), flags.end());
    for (absl::string_view a : absl::StrSplit(absl::GetFlag(FLAGS_daemon_args),
                                              ' ', absl::SkipEmpty())) {
      argv.emplace_back(a);
    }
    std::string command;
    for (const std::string& a : argv)
      command += (command.empty() ? "" : " ") + a;
    std::fprintf(stderr, "server_bench: starting %s\n", command.c_str());

    absl::StatusOr<pid_t> pid = SpawnProcess(argv, -1);
    if (!pid.ok()) return pid.status();
    pid_ = *pid;

    const auto deadline =
        Clock::now() +
        std::chrono::duration<double>(absl::GetFlag(FLAGS_start_timeout_s));
    for (;;) {
      std::ifstream f(port_file);
      std::string address;
      if (f && std::getline(f, address) &&
          address.find(':') != std::string::npos) {
        address_ = address;
        return absl::OkStatus();
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return absl::UnavailableError("daemon ended before listening: " +
                                      DescribeExit(status));
      }
      if (Clock::now() >= deadline) {
        return absl::DeadlineExceededError(
            "daemon wrote no port file within --start_timeout_s");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // SIGTERM, then waits up to --stop_timeout_s before SIGKILL.
  StopResult Stop() {
    StopResult r;
    if (pid_ <= 0) {
      r.status = -1;
      return r;
    }
    const auto start = Clock::now();
    kill(pid_, SIGTERM);
    std::optional<int> status = WaitPid(
        pid_,
        std::chrono::duration<double>(absl::GetFlag(FLAGS_stop_timeout_s)));
    if (!status) {
      r.killed = true;
      kill(pid_, SIGKILL);
      status = WaitPid(pid_, std::chrono::seconds(10));
    }
    r.seconds = Seconds(Clock::now() - start);
    r.status = status.value_or(-1);
    pid_ = -1;
    return r;
  }

  pid_t pid() const { return pid_; }
  const std::string& address() const { return address_; }
  std::int64_t RssBytes() const { return ProcStatusBytes(pid_, "VmRSS"); }
  std::int64_t PeakRssBytes() const { return ProcStatusBytes(pid_, "VmHWM"); }
  double CpuSeconds() const { return ProcCpuSeconds(pid_); }

 private:
  pid_t pid_ = -1;
  std::string dir_;
  std::string address_;
};

// --max_batch (jobs per call) large enough for every call server_bench makes,
// and never below the daemon's default (10,000).
std::string MaxBatchFlag() {
  const int most = std::max({10'000, Batch(), absl::GetFlag(FLAGS_wait_chunk),
                             absl::GetFlag(FLAGS_lateness_jobs),
                             absl::GetFlag(FLAGS_blocking_jobs)});
  return "--max_batch=" + std::to_string(most);
}

// Rows that say how the daemon took SIGTERM.
std::vector<Result> StopRows(const std::string& benchmark, Daemon& daemon) {
  const Daemon::StopResult r = daemon.Stop();
  double code = -1;
  if (r.status >= 0 && WIFEXITED(r.status)) code = WEXITSTATUS(r.status);
  if (r.status >= 0 && WIFSIGNALED(r.status)) code = 128 + WTERMSIG(r.status);
  if (r.killed || code != 0) {
    std::fprintf(stderr,
                 "server_bench: %s: daemon did not exit cleanly on "
                 "SIGTERM (%s%s)\n",
                 benchmark.c_str(), DescribeExit(r.status).c_str(),
                 r.killed ? ", SIGKILLed after --stop_timeout_s" : "");
  }
  return {
      {benchmark, "daemon exit status on SIGTERM", "", code, kNaN, AtMost(0)},
      {benchmark, "daemon SIGTERM to exit (info)", "s", r.seconds, kNaN,
       std::nullopt},
  };
}

std::shared_ptr<grpc::Channel> Connect(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   args);
}

absl::Status WaitConnected(grpc::Channel& channel, const std::string& what) {
  if (!channel.WaitForConnected(std::chrono::system_clock::now() +
                                std::chrono::seconds(10))) {
    return absl::UnavailableError("cannot connect to " + what);
  }
  return absl::OkStatus();
}

absl::Status FromGrpc(const grpc::Status& s, const std::string& what) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

// Fails unless the daemon has every kind in `kinds` (a clear message beats a
// thousand INVALID_ARGUMENTs).
absl::Status CheckKinds(v1::Jobs::Stub& stub,
                        const std::vector<std::string>& kinds) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ListKindsResponse resp;
  if (grpc::Status s = stub.ListKinds(&ctx, v1::ListKindsRequest(), &resp);
      !s.ok())
    return FromGrpc(s, "ListKinds");
  for (const std::string& k : kinds) {
    bool found = false;
    for (const v1::Kind& kind : resp.kinds()) found = found || kind.name() == k;
    if (!found)
      return absl::NotFoundError("daemon has no job kind '" + k + "'");
  }
  return absl::OkStatus();
}

// Runs `body` against a fresh daemon started with `flags`; adds the daemon's
// SIGTERM rows. `before_start` runs first, before any gRPC object exists
// (see SpawnProcess).
std::vector<Result> WithDaemon(
    const std::string& benchmark, const std::vector<std::string>& flags,
    const std::vector<std::string>& kinds,
    const std::function<absl::Status(Daemon&, v1::Jobs::Stub&,
                                     std::vector<Result>&)>& body) {
  std::vector<Result> results;
  Daemon daemon;
  if (absl::Status s = daemon.Start(flags); !s.ok()) {
    results.push_back(ErrorRow(benchmark, s));
    return results;
  }
  {
    std::shared_ptr<grpc::Channel> channel = Connect(daemon.address());
    std::unique_ptr<v1::Jobs::Stub> stub = v1::Jobs::NewStub(channel);
    absl::Status s =
        WaitConnected(*channel, "the daemon at " + daemon.address());
    if (s.ok()) s = CheckKinds(*stub, kinds);
    if (s.ok()) s = body(daemon, *stub, results);
    if (!s.ok()) {
      std::fprintf(stderr, "server_bench: %s: %s\n", benchmark.c_str(),
                   s.ToString().c_str());
      results.push_back(ErrorRow(benchmark, s));
    }
  }
  for (Result& r : StopRows(benchmark, daemon)) results.push_back(std::move(r));
  return results;
}

// --- Job specs and checks ----------------------------------------------------

v1::JobSpec EchoSpec(double value) {
  v1::JobSpec spec;
  spec.set_kind("echo");
  (*spec.mutable_args()->mutable_fields())["value"].set_number_value(value);
  return spec;
}

v1::JobSpec SecondsSpec(const std::string& kind, double seconds) {
  v1::JobSpec spec;
  spec.set_kind(kind);
  (*spec.mutable_args()->mutable_fields())["seconds"].set_number_value(seconds);
  return spec;
}

// Whether an echo job's result is `expected`: the value itself, or a struct
// whose "value" is.
bool EchoResultIs(const google::protobuf::Value& v, double expected) {
  if (v.kind_case() == google::protobuf::Value::kNumberValue)
    return v.number_value() == expected;
  if (v.kind_case() == google::protobuf::Value::kStructValue) {
    const auto& fields = v.struct_value().fields();
    auto it = fields.find("value");
    return it != fields.end() &&
           it->second.kind_case() == google::protobuf::Value::kNumberValue &&
           it->second.number_value() == expected;
  }
  return false;
}

absl::Status CheckEchoJob(const v1::Job& job, double expected,
                          const std::string& where) {
  if (job.state() != v1::JOB_STATE_SUCCEEDED) {
    return absl::InternalError(absl::StrCat(
        where, ": job ", job.id(), " is ", v1::JobState_Name(job.state()), " ",
        job.error().type(), ": ", job.error().message()));
  }
  if (!EchoResultIs(job.result(), expected)) {
    return absl::InternalError(
        absl::StrCat(where, ": job ", job.id(), " returned ",
                     job.result().ShortDebugString(), ", expected ", expected));
  }
  return absl::OkStatus();
}

std::int64_t TimestampNs(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1'000'000'000 + t.nanos();
}

// --- Calls -------------------------------------------------------------------

// Runs one prepared unary call to completion on `cq`, which only the calling
// thread polls: no thread hand-off, the cheapest way to drive a gRPC client.
template <typename Reader, typename Response>
grpc::Status Complete(grpc::CompletionQueue& cq, Reader& rpc,
                      Response* response) {
  grpc::Status status;
  rpc.StartCall();
  rpc.Finish(response, &status, &status);
  void* tag = nullptr;
  bool ok = false;
  if (!cq.Next(&tag, &ok) || tag != &status || !ok)
    return grpc::Status(grpc::StatusCode::INTERNAL, "completion queue failed");
  return status;
}

// Issues calls 0..count-1 through the callback API with at most `window` in
// flight. Each slot of the window owns a request (a copy of `prototype` that
// `prepare` adjusts per call, or leaves alone when every call is the same),
// and its response lives on the slot's arena, reset between calls, so a
// steady state allocates (almost) nothing. `done` checks each response; it
// runs on gRPC threads, for several slots at once. The first failure stops
// new calls and is returned once those in flight have finished.
//
// Thread safety: Run is called from one thread; it blocks until the end.
template <typename Request, typename Response>
class CallWindow {
 public:
  using StartFn =
      std::function<void(grpc::ClientContext*, const Request*, Response*,
                         std::function<void(grpc::Status)>)>;
  using PrepareFn = std::function<void(std::int64_t call, Request* request)>;
  using DoneFn =
      std::function<absl::Status(std::int64_t call, const Response& response)>;

  CallWindow(int window, const Request& prototype,
             std::size_t arena_block_bytes, std::chrono::seconds deadline)
      : deadline_(deadline) {
    for (int i = 0; i < window; ++i)
      slots_.push_back(std::make_unique<Slot>(prototype, arena_block_bytes));
  }

  absl::Status Run(std::int64_t count, const PrepareFn& prepare,
                   const StartFn& start, const DoneFn& done) {
    count_ = count;
    prepare_ = &prepare;
    start_ = &start;
    done_ = &done;
    next_.store(0);
    failed_.store(false);
    latency_us_.assign(
        static_cast<std::size_t>(std::max<std::int64_t>(count, 0)), kNaN);
    {
      absl::MutexLock lock(&mu_);
      active_ = static_cast<int>(slots_.size());
      error_ = absl::OkStatus();
    }
    for (auto& slot : slots_) Launch(*slot);
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* active) { return *active == 0; }, &active_));
    return error_;
  }

  // Each call's latency (send to response) in microseconds, by call index.
  const std::vector<double>& latency_us() const { return latency_us_; }

 private:
  struct Slot {
    Slot(const Request& prototype, std::size_t block_bytes)
        : request(prototype), block(block_bytes), arena(Options(block)) {}
    static google::protobuf::ArenaOptions Options(std::vector<char>& block) {
      google::protobuf::ArenaOptions o;
      if (!block.empty()) {
        o.initial_block = block.data();
        o.initial_block_size = block.size();
      }
      return o;
    }
    Request request;
    std::vector<char> block;
    google::protobuf::Arena arena;
    Response* response = nullptr;
    std::unique_ptr<grpc::ClientContext> context;
    std::int64_t call = 0;
    Clock::time_point sent;
  };

  void Launch(Slot& slot) {
    const std::int64_t call = next_.fetch_add(1);
    if (call >= count_ || failed_.load()) {
      absl::MutexLock lock(&mu_);
      --active_;
      return;
    }
    (*prepare_)(call, &slot.request);
    slot.arena.Reset();
    slot.response =
        google::protobuf::Arena::CreateMessage<Response>(&slot.arena);
    slot.context = std::make_unique<grpc::ClientContext>();
    slot.context->set_deadline(std::chrono::system_clock::now() + deadline_);
    slot.call = call;
    slot.sent = Clock::now();
    (*start_)(slot.context.get(), &slot.request, slot.response,
              [this, &slot](grpc::Status s) { OnDone(slot, s); });
  }

  void OnDone(Slot& slot, const grpc::Status& s) {
    latency_us_[static_cast<std::size_t>(slot.call)] =
        Micros(Clock::now() - slot.sent);
    absl::Status st = s.ok() ? (*done_)(slot.call, *slot.response)
                             : FromGrpc(s, "call " + std::to_string(slot.call));
    if (!st.ok()) {
      absl::MutexLock lock(&mu_);
      if (error_.ok()) error_ = st;
      failed_.store(true);
    }
    Launch(slot);
  }

  const std::chrono::seconds deadline_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::int64_t count_ = 0;
  const PrepareFn* prepare_ = nullptr;
  const StartFn* start_ = nullptr;
  const DoneFn* done_ = nullptr;
  std::atomic<std::int64_t> next_{0};
  std::atomic<bool> failed_{false};
  std::vector<double> latency_us_;  // each slot writes its own calls' entries
  absl::Mutex mu_;
  int active_ ABSL_GUARDED_BY(mu_) = 0;  // slots with a call in flight
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

// The number of jobs in batch `call` when `total` jobs go `batch` per call.
int BatchSize(std::int64_t call, std::int64_t total, int batch) {
  return static_cast<int>(std::min<std::int64_t>(
      batch, total - call * static_cast<std::int64_t>(batch)));
}
std::int64_t BatchCount(std::int64_t total, int batch) {
  return (total + batch - 1) / batch;
}

// Keeps a reused request's first `size` jobs (only the last batch is short).
template <typename Request>
void TrimJobs(Request* request, int size) {
  if (request->jobs_size() > size)
    request->mutable_jobs()->DeleteSubrange(size, request->jobs_size() - size);
}

// --- The echo server (the baseline for echo_rtt) -----------------------------

// A callback-API service with one unary method that answers its request's
// bytes. It registers the method the way generated code does for a callback
// service, with ByteBuffer in place of a message type, so the server side of
// a call is the same as the daemon's minus the daemon's own work.
class EchoService final : public grpc::Service {
 public:
  EchoService() {
    AddMethod(new grpc::internal::RpcServiceMethod(
        kEchoMethod, grpc::internal::RpcMethod::NORMAL_RPC, nullptr));
    MarkMethodCallback(
        0, new grpc::internal::CallbackUnaryHandler<grpc::ByteBuffer,
                                                    grpc::ByteBuffer>(
               [](grpc::CallbackServerContext* ctx,
                  const grpc::ByteBuffer* request, grpc::ByteBuffer* response) {
                 *response = *request;
                 grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
                 reactor->Finish(grpc::Status::OK);
                 return reactor;
               }));
  }
};

// --child=echo_server: serves EchoService on 127.0.0.1 (any port), prints the
// port on stdout, and runs until SIGTERM.
int RunEchoServer() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  // Blocked before gRPC starts threads, so that they all inherit the mask and
  // only sigwait below takes the signal.
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  EchoService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "server_bench: echo server failed to start\n");
    return 1;
  }
  std::printf("%d\n", port);
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop_signals, &sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}

// The echo server child process. Killed (SIGTERM, then SIGKILL) on
// destruction.
class EchoServerProcess {
 public:
  EchoServerProcess() = default;
  EchoServerProcess(const EchoServerProcess&) = delete;
  EchoServerProcess& operator=(const EchoServerProcess&) = delete;
  ~EchoServerProcess() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    if (!WaitPid(pid_, std::chrono::seconds(5))) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  absl::Status Start() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
    std::error_code ec;
    const std::string self =
        std::filesystem::read_symlink("/proc/self/exe", ec);
    absl::StatusOr<pid_t> pid = SpawnProcess(
        {ec ? "/proc/self/exe" : self, "--child=echo_server"}, fds[1]);
    close(fds[1]);
    if (!pid.ok()) {
      close(fds[0]);
      return pid.status();
    }
    pid_ = *pid;
    std::string line;
    char c = 0;
    while (read(fds[0], &c, 1) == 1 && c != '\n') line += c;
    close(fds[0]);
    const int port = std::atoi(line.c_str());
    if (port <= 0) return absl::UnavailableError("echo server gave no port");
    address_ = "127.0.0.1:" + std::to_string(port);
    return absl::OkStatus();
  }

  pid_t pid() const { return pid_; }
  const std::string& address() const { return address_; }

 private:
  pid_t pid_ = -1;
  std::string address_;
};

// --- 1. echo_rtt -------------------------------------------------------------

struct RttStats {
  double p50_us = kNaN;
  double p99_us = kNaN;
  double mean_us = kNaN;
  double server_cpu_us = kNaN;  // the server process's CPU time per call
};

// Times `warmup` + `calls` sequential calls of `one_call`; statistics over the
// last `calls`, and the CPU time process `server` spent on them.
absl::StatusOr<RttStats> MeasureRtt(
    std::int64_t warmup, std::int64_t calls, pid_t server,
    const std::function<absl::Status()>& one_call) {
  for (std::int64_t i = 0; i < warmup; ++i) {
    if (absl::Status s = one_call(); !s.ok()) return s;
  }
  const double cpu0 = ProcCpuSeconds(server);
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(calls));
  for (std::int64_t i = 0; i < calls; ++i) {
    const auto t0 = Clock::now();
    if (absl::Status s = one_call(); !s.ok()) return s;
    us.push_back(Micros(Clock::now() - t0));
  }
  RttStats r;
  r.server_cpu_us =
      (ProcCpuSeconds(server) - cpu0) * 1e6 / static_cast<double>(calls);
  r.mean_us = Mean(us);
  std::sort(us.begin(), us.end());
  r.p50_us = SortedQuantile(us, 0.5);
  r.p99_us = SortedQuantile(us, 0.99);
  return r;
}

std::vector<Result> RunEchoRtt() {
  const std::string name = "echo_rtt";
  // Started before any gRPC object exists in this process.
  EchoServerProcess echo_server;
  if (absl::Status s = echo_server.Start(); !s.ok()) return {ErrorRow(name, s)};

  return WithDaemon(
      name, {MaxBatchFlag()}, {"echo"},
      [&](Daemon& daemon, v1::Jobs::Stub& stub, std::vector<Result>& results) {
        std::shared_ptr<grpc::Channel> echo_channel =
            Connect(echo_server.address());
        if (absl::Status s = WaitConnected(*echo_channel, "the echo server");
            !s.ok())
          return s;
        grpc::GenericStub echo_stub(echo_channel);
        grpc::CompletionQueue cq;

        v1::WaitForRequest wait_for_inline;
        *wait_for_inline.mutable_job()->mutable_spec() = EchoSpec(1);
        v1::SubmitRequest submit;
        *submit.add_jobs() = EchoSpec(1);

        // The echo request is the WaitFor request's bytes.
        const std::string payload = wait_for_inline.SerializeAsString();
        grpc::Slice slice(payload);
        const grpc::ByteBuffer echo_request(&slice, 1);

        auto echo = [&]() -> absl::Status {
          grpc::ClientContext ctx;
          grpc::ByteBuffer response;
          auto rpc =
              echo_stub.PrepareUnaryCall(&ctx, kEchoMethod, echo_request, &cq);
          grpc::Status s = Complete(cq, *rpc, &response);
          if (!s.ok()) return FromGrpc(s, "echo");
          if (response.Length() != payload.size())
            return absl::InternalError("echo answered the wrong bytes");
          return absl::OkStatus();
        };
        auto wait_for = [&]() -> absl::Status {
          grpc::ClientContext ctx;
          v1::WaitForResponse response;
          auto rpc = stub.PrepareAsyncWaitFor(&ctx, wait_for_inline, &cq);
          grpc::Status s = Complete(cq, *rpc, &response);
          if (!s.ok()) return FromGrpc(s, "WaitFor");
          return CheckEchoJob(response.job(), 1, "WaitFor");
        };
        // One echo job; its id.
        auto submit_one = [&]() -> absl::StatusOr<std::uint64_t> {
          v1::SubmitResponse submitted;
          grpc::ClientContext ctx;
          auto rpc = stub.PrepareAsyncSubmit(&ctx, submit, &cq);
          grpc::Status s = Complete(cq, *rpc, &submitted);
          if (!s.ok()) return FromGrpc(s, "Submit");
          if (submitted.jobs_size() != 1)
            return absl::InternalError("Submit returned no job");
          return submitted.jobs(0).id();
        };
        auto submit_only = [&]() -> absl::Status {
          return submit_one().status();
        };
        auto submit_wait_for = [&]() -> absl::Status {
          absl::StatusOr<std::uint64_t> id = submit_one();
          if (!id.ok()) return id.status();
          grpc::ClientContext ctx;
          v1::WaitForRequest request;
          request.mutable_job()->set_id(*id);
          v1::WaitForResponse response;
          auto rpc = stub.PrepareAsyncWaitFor(&ctx, request, &cq);
          grpc::Status s = Complete(cq, *rpc, &response);
          if (!s.ok()) return FromGrpc(s, "WaitFor(id)");
          return CheckEchoJob(response.job(), 1, "WaitFor(id)");
        };

        const std::int64_t warmup = absl::GetFlag(FLAGS_rtt_warmup);
        const std::int64_t calls =
            std::max<std::int64_t>(1, absl::GetFlag(FLAGS_rtt_calls));
        struct Variant {
          const char* label;
          pid_t server;
          std::function<absl::Status()> call;
          std::vector<RttStats> reps;
        };
        std::vector<Variant> variants = {
            {"bare echo", echo_server.pid(), echo, {}},
            {"WaitFor(inline echo)", daemon.pid(), wait_for, {}},
            {"Submit+WaitFor(id)", daemon.pid(), submit_wait_for, {}},
            {"Submit(echo)", daemon.pid(), submit_only, {}},
        };
        for (int rep = 0; rep < Repetitions(); ++rep) {
          for (Variant& v : variants) {
            absl::StatusOr<RttStats> r =
                MeasureRtt(warmup, calls, v.server, v.call);
            if (!r.ok()) return r.status();
            v.reps.push_back(*r);
          }
        }
        auto median = [](const Variant& v, double RttStats::*field,
                         const std::string& what) {
          std::vector<double> xs;
          for (const RttStats& r : v.reps) xs.push_back(r.*field);
          LogReps(std::string(v.label) + " " + what, xs);
          return Median(xs);
        };
        const Variant& base = variants[0];
        const double base_p50 = median(base, &RttStats::p50_us, "p50");
        const double base_p99 = median(base, &RttStats::p99_us, "p99");
        const double base_mean = median(base, &RttStats::mean_us, "mean");
        const double base_cpu = median(base, &RttStats::server_cpu_us, "cpu");
        results.push_back(
            {name, "bare echo rtt p50", "us", base_p50, kNaN, std::nullopt});
        results.push_back(
            {name, "bare echo rtt p99", "us", base_p99, kNaN, std::nullopt});
        results.push_back(
            {name, "bare echo rtt mean", "us", base_mean, kNaN, std::nullopt});
        results.push_back({name, "bare echo server CPU per call (info)", "us",
                           base_cpu, kNaN, std::nullopt});
        for (std::size_t i = 1; i < variants.size(); ++i) {
          const Variant& v = variants[i];
          const std::string label = v.label;
          std::optional<Target> p50_target;
          if (i == 1) p50_target = AtMost(1.25, Target::On::kRatio);
          results.push_back({name, label + " rtt p50 (base: echo)", "us",
                             median(v, &RttStats::p50_us, "p50"), base_p50,
                             p50_target});
          results.push_back({name, label + " rtt p99 (base: echo)", "us",
                             median(v, &RttStats::p99_us, "p99"), base_p99,
                             std::nullopt});
          results.push_back({name, label + " rtt mean (base: echo)", "us",
                             median(v, &RttStats::mean_us, "mean"), base_mean,
                             std::nullopt});
          results.push_back({name,
                             label + " daemon CPU per call (base: echo server)",
                             "us", median(v, &RttStats::server_cpu_us, "cpu"),
                             base_cpu, std::nullopt});
        }
        return absl::OkStatus();
      });
}

// --- 2. batch_echo -----------------------------------------------------------

std::vector<Result> RunBatchEcho() {
  const std::string name = "batch_echo";
  return WithDaemon(
      name, {MaxBatchFlag()}, {"echo"},
      [&](Daemon& daemon, v1::Jobs::Stub& stub, std::vector<Result>& results) {
        const std::int64_t total = Jobs();
        const int batch = Batch();
        // One template: batch i's job j echoes j, the same in every batch.
        v1::GatherRequest prototype;
        prototype.set_return_exceptions(false);
        for (int j = 0; j < batch; ++j)
          *prototype.add_jobs()->mutable_spec() = EchoSpec(j);

        // Room for one response: ~1 KiB per job on the arena is plenty.
        CallWindow<v1::GatherRequest, v1::GatherResponse> window(
            Inflight(), prototype, static_cast<std::size_t>(batch) * 1024,
            std::chrono::seconds(120));
        CallWindow<v1::GatherRequest, v1::GatherResponse>::StartFn start =
            [&stub](grpc::ClientContext* ctx, const v1::GatherRequest* req,
                    v1::GatherResponse* resp,
                    std::function<void(grpc::Status)> done) {
              stub.async()->Gather(ctx, req, resp, std::move(done));
            };
        auto run = [&](std::int64_t jobs) {
          const std::int64_t calls = BatchCount(jobs, batch);
          return window.Run(
              calls,
              [&](std::int64_t call, v1::GatherRequest* req) {
                TrimJobs(req, BatchSize(call, jobs, batch));
              },
              start,
              [&](std::int64_t call,
                  const v1::GatherResponse& resp) -> absl::Status {
                const int size = BatchSize(call, jobs, batch);
                if (resp.results_size() != size) {
                  return absl::InternalError(absl::StrCat(
                      "Gather ", call, " returned ", resp.results_size(),
                      " results, not ", size));
                }
                for (int j = 0; j < size; ++j) {
                  if (absl::Status s =
                          CheckEchoJob(resp.results(j), j, "Gather result");
                      !s.ok())
                    return s;
                }
                return absl::OkStatus();
              });
        };

        // Warm-up: connections, daemon and client allocators, code paths.
        if (absl::Status s = run(std::min<std::int64_t>(total, 20 * batch));
            !s.ok())
          return s;

        std::vector<double> jobs_per_s, daemon_us, client_us, p50, p99;
        for (int rep = 0; rep < Repetitions(); ++rep) {
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          const double daemon_cpu0 = daemon.CpuSeconds();
          const double client_cpu0 = SelfCpuSeconds();
          const auto t0 = Clock::now();
          if (absl::Status s = run(total); !s.ok()) return s;
          const double wall = Seconds(Clock::now() - t0);
          const double n = static_cast<double>(total);
          jobs_per_s.push_back(n / wall);
          daemon_us.push_back((daemon.CpuSeconds() - daemon_cpu0) * 1e6 / n);
          client_us.push_back((SelfCpuSeconds() - client_cpu0) * 1e6 / n);
          std::vector<double> lat = window.latency_us();
          std::sort(lat.begin(), lat.end());
          p50.push_back(SortedQuantile(lat, 0.5));
          p99.push_back(SortedQuantile(lat, 0.99));
        }
        LogReps("jobs/s", jobs_per_s);
        LogReps("daemon cpu us/job", daemon_us);
        const std::string per =
            absl::StrCat(total, " echo jobs, Gather of ", batch, " x ",
                         Inflight(), " in flight");
        results.push_back({name, "throughput, " + per + ", client included",
                           "jobs/s", Median(jobs_per_s), kNaN,
                           AtLeast(500'000)});
        results.push_back({name, "daemon CPU (utime+stime) per job (info)",
                           "us", Median(daemon_us), kNaN, std::nullopt});
        results.push_back({name, "client CPU per job (info)", "us",
                           Median(client_us), kNaN, std::nullopt});
        results.push_back({name, "Gather latency p50 (info)", "us", Median(p50),
                           kNaN, std::nullopt});
        results.push_back({name, "Gather latency p99 (info)", "us", Median(p99),
                           kNaN, std::nullopt});
        return absl::OkStatus();
      });
}

// --- 3. sleep_1m -------------------------------------------------------------

std::vector<Result> RunSleep1m() {
  const std::string name = "sleep_1m";
  const std::int64_t total = Jobs();
  const int batch = Batch();
  const int chunk = std::max(1, absl::GetFlag(FLAGS_wait_chunk));
  return WithDaemon(
      name,
      {"--max_pending_jobs=" +
           std::to_string(std::max<std::int64_t>(2'000'000, 2 * total)),
       MaxBatchFlag()},
      {"sleep"},
      [&](Daemon& daemon, v1::Jobs::Stub& stub, std::vector<Result>& results) {
        const double sleep_s = absl::GetFlag(FLAGS_sleep_seconds);
        v1::SubmitRequest prototype;
        for (int j = 0; j < batch; ++j)
          *prototype.add_jobs() = SecondsSpec("sleep", sleep_s);
        std::vector<std::uint64_t> ids(static_cast<std::size_t>(total), 0);

        // Let the daemon settle after the connection and ListKinds.
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        const std::int64_t rss0 = daemon.RssBytes();
        const double cpu0 = daemon.CpuSeconds();
        const auto t0 = Clock::now();

        CallWindow<v1::SubmitRequest, v1::SubmitResponse> submits(
            Inflight(), prototype, static_cast<std::size_t>(batch) * 64,
            std::chrono::seconds(120));
        absl::Status s = submits.Run(
            BatchCount(total, batch),
            [&](std::int64_t call, v1::SubmitRequest* req) {
              TrimJobs(req, BatchSize(call, total, batch));
            },
            [&stub](grpc::ClientContext* ctx, const v1::SubmitRequest* req,
                    v1::SubmitResponse* resp,
                    std::function<void(grpc::Status)> done) {
              stub.async()->Submit(ctx, req, resp, std::move(done));
            },
            [&](std::int64_t call,
                const v1::SubmitResponse& resp) -> absl::Status {
              const int size = BatchSize(call, total, batch);
              if (resp.jobs_size() != size)
                return absl::InternalError("Submit returned too few jobs");
              for (int j = 0; j < size; ++j)
                ids[static_cast<std::size_t>(call * batch + j)] =
                    resp.jobs(j).id();
              return absl::OkStatus();
            });
        if (!s.ok()) return s;
        const double submit_s = Seconds(Clock::now() - t0);
        const std::int64_t rss1 = daemon.RssBytes();
        const double n = static_cast<double>(total);
        const double bytes_per_job = static_cast<double>(rss1 - rss0) / n;
        if (submit_s >= sleep_s) {
          std::fprintf(stderr,
                       "server_bench: sleep_1m: submitting took %.2f s, longer "
                       "than the sleep: the RSS sample missed finished jobs\n",
                       submit_s);
        }

        // Every chunk's Wait at once.
        const std::int64_t chunks = BatchCount(total, chunk);
        CallWindow<v1::WaitRequest, v1::WaitResponse> waits(
            static_cast<int>(chunks), v1::WaitRequest(), 0,
            std::chrono::seconds(600));
        s = waits.Run(
            chunks,
            [&](std::int64_t call, v1::WaitRequest* req) {
              req->Clear();
              req->set_return_when(v1::ALL_COMPLETED);
              const int size = BatchSize(call, total, chunk);
              req->mutable_jobs()->Reserve(size);
              for (int j = 0; j < size; ++j)
                req->add_jobs()->set_id(
                    ids[static_cast<std::size_t>(call * chunk + j)]);
            },
            [&stub](grpc::ClientContext* ctx, const v1::WaitRequest* req,
                    v1::WaitResponse* resp,
                    std::function<void(grpc::Status)> done) {
              stub.async()->Wait(ctx, req, resp, std::move(done));
            },
            [&](std::int64_t call,
                const v1::WaitResponse& resp) -> absl::Status {
              const int size = BatchSize(call, total, chunk);
              if (resp.done_size() != size || resp.pending_size() != 0) {
                return absl::InternalError(absl::StrCat(
                    "Wait ", call, ": ", resp.done_size(), " done, ",
                    resp.pending_size(), " pending of ", size));
              }
              return absl::OkStatus();
            });
        if (!s.ok()) return s;
        const double all_done_s = Seconds(Clock::now() - t0);
        const std::int64_t peak = daemon.PeakRssBytes();
        const double cpu = daemon.CpuSeconds() - cpu0;

        // Server-side lateness of a sample spread over the run.
        v1::GetRequest get;
        const std::int64_t samples = std::min<std::int64_t>(1000, total);
        for (std::int64_t i = 0; i < samples; ++i)
          get.add_ids(ids[static_cast<std::size_t>(i * total / samples)]);
        v1::GetResponse got;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
        if (grpc::Status gs = stub.Get(&ctx, get, &got); !gs.ok())
          return FromGrpc(gs, "Get");
        std::vector<double> late_ms;
        for (const v1::Job& job : got.jobs()) {
          if (job.state() != v1::JOB_STATE_SUCCEEDED) {
            return absl::InternalError(
                absl::StrCat("sleep job ", job.id(), " is ",
                             v1::JobState_Name(job.state())));
          }
          late_ms.push_back(static_cast<double>(TimestampNs(job.finished_at()) -
                                                TimestampNs(job.created_at())) /
                                1e6 -
                            sleep_s * 1e3);
        }
        std::sort(late_ms.begin(), late_ms.end());

        const std::string jobs =
            absl::StrCat(total, " x sleep ", sleep_s, " s");
        results.push_back({name, "RSS growth per job after submit, " + jobs,
                           "B", bytes_per_job, kNaN, AtMost(1024)});
        results.push_back({name, "submit to all done (Wait ALL_COMPLETED)", "s",
                           all_done_s, kNaN, AtMost(sleep_s + 2)});
        results.push_back(
            {name, "submit time (info)", "s", submit_s, kNaN, std::nullopt});
        results.push_back({name, "submit rate (info)", "jobs/s", n / submit_s,
                           kNaN, std::nullopt});
        results.push_back({name, "daemon peak RSS, VmHWM (info)", "MB",
                           static_cast<double>(peak) / 1e6, kNaN,
                           std::nullopt});
        results.push_back({name, "daemon RSS before submit (info)", "MB",
                           static_cast<double>(rss0) / 1e6, kNaN,
                           std::nullopt});
        results.push_back({name, "daemon CPU per job, submit to done (info)",
                           "us", cpu * 1e6 / n, kNaN, std::nullopt});
        results.push_back({name, "sleep lateness p50, sampled (info)", "ms",
                           SortedQuantile(late_ms, 0.5), kNaN, std::nullopt});
        results.push_back({name, "sleep lateness max, sampled (info)", "ms",
                           SortedQuantile(late_ms, 1.0), kNaN, std::nullopt});
        return absl::OkStatus();
      });
}

// --- 4. blocking_lateness ----------------------------------------------------

// Submits `n` 1 ms sleeps one per call, paced `interval` apart, waits for
// them, and returns each one's lateness in microseconds from its timestamps:
// finished_at - (created_at + 1 ms).
absl::StatusOr<std::vector<double>> SleepLateness(v1::Jobs::Stub& stub, int n,
                                                  Clock::duration interval) {
  constexpr double kSleepS = 0.001;
  v1::SubmitRequest submit;
  *submit.add_jobs() = SecondsSpec("sleep", kSleepS);
  v1::WaitRequest wait;
  wait.set_return_when(v1::ALL_COMPLETED);
  v1::GetRequest get;
  const auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    std::this_thread::sleep_until(start + i * interval);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    v1::SubmitResponse resp;
    if (grpc::Status s = stub.Submit(&ctx, submit, &resp); !s.ok())
      return FromGrpc(s, "Submit");
    if (resp.jobs_size() != 1) return absl::InternalError("Submit: no job");
    wait.add_jobs()->set_id(resp.jobs(0).id());
    get.add_ids(resp.jobs(0).id());
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(60));
    v1::WaitResponse resp;
    if (grpc::Status s = stub.Wait(&ctx, wait, &resp); !s.ok())
      return FromGrpc(s, "Wait");
    if (resp.pending_size() != 0)
      return absl::InternalError("Wait returned pending jobs");
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::GetResponse got;
  if (grpc::Status s = stub.Get(&ctx, get, &got); !s.ok())
    return FromGrpc(s, "Get");
  std::vector<double> late_us;
  for (const v1::Job& job : got.jobs()) {
    if (job.state() != v1::JOB_STATE_SUCCEEDED) {
      return absl::InternalError(absl::StrCat("sleep job ", job.id(), " is ",
                                              v1::JobState_Name(job.state())));
    }
    late_us.push_back(static_cast<double>(TimestampNs(job.finished_at()) -
                                          TimestampNs(job.created_at())) /
                          1e3 -
                      kSleepS * 1e6);
  }
  std::sort(late_us.begin(), late_us.end());
  return late_us;
}

std::vector<Result> RunBlockingLateness() {
  const std::string name = "blocking_lateness";
  std::vector<std::string> flags = {MaxBatchFlag()};
  if (const int t = absl::GetFlag(FLAGS_blocking_max_threads); t > 0)
    flags.push_back("--blocking_max_threads=" + std::to_string(t));
  return WithDaemon(
      name, flags, {"sleep", "blocking"},
      [&](Daemon&, v1::Jobs::Stub& stub, std::vector<Result>& results) {
        const int n = std::max(1, absl::GetFlag(FLAGS_lateness_jobs));
        const auto interval = std::chrono::microseconds(
            absl::GetFlag(FLAGS_lateness_interval_us));
        // Warm-up, not measured.
        if (auto w = SleepLateness(stub, std::min(n, 200), interval); !w.ok())
          return w.status();
        absl::StatusOr<std::vector<double>> idle =
            SleepLateness(stub, n, interval);
        if (!idle.ok()) return idle.status();

        // Saturate the blocking pool.
        const int blockers = std::max(0, absl::GetFlag(FLAGS_blocking_jobs));
        v1::SubmitRequest submit;
        for (int i = 0; i < blockers; ++i) {
          *submit.add_jobs() =
              SecondsSpec("blocking", absl::GetFlag(FLAGS_blocking_seconds));
        }
        v1::SubmitResponse submitted;
        {
          grpc::ClientContext ctx;
          if (grpc::Status s = stub.Submit(&ctx, submit, &submitted); !s.ok())
            return FromGrpc(s, "Submit(blocking)");
        }
        v1::GetRequest blocking_ids;
        v1::CancelRequest cancel;
        cancel.set_message("server_bench: done");
        for (const v1::JobRef& ref : submitted.jobs()) {
          blocking_ids.add_ids(ref.id());
          cancel.add_ids(ref.id());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        absl::StatusOr<std::vector<double>> busy =
            SleepLateness(stub, n, interval);

        // Were they all still holding the pool? Then cancel them, whatever
        // happened above.
        double still_running = kNaN;
        {
          grpc::ClientContext ctx;
          v1::GetResponse got;
          if (stub.Get(&ctx, blocking_ids, &got).ok()) {
            still_running = 0;
            for (const v1::Job& job : got.jobs()) {
              if (job.state() == v1::JOB_STATE_RUNNING ||
                  job.state() == v1::JOB_STATE_PENDING)
                ++still_running;
            }
          }
        }
        double cancelled = kNaN;
        {
          grpc::ClientContext ctx;
          v1::CancelResponse resp;
          grpc::Status s = stub.Cancel(&ctx, cancel, &resp);
          if (!s.ok()) return FromGrpc(s, "Cancel");
          cancelled = 0;
          for (const v1::CancelResult& r : resp.results())
            cancelled += r.cancelled() ? 1 : 0;
        }
        if (!busy.ok()) return busy.status();

        const double idle_p99 = SortedQuantile(*idle, 0.99);
        results.push_back({name, "1ms sleep lateness p50, pool idle", "us",
                           SortedQuantile(*idle, 0.5), kNaN, std::nullopt});
        results.push_back({name, "1ms sleep lateness p99, pool idle", "us",
                           idle_p99, kNaN, std::nullopt});
        results.push_back({name,
                           absl::StrCat("1ms sleep lateness p50, ", blockers,
                                        " blocking jobs (base: idle)"),
                           "us", SortedQuantile(*busy, 0.5),
                           SortedQuantile(*idle, 0.5), std::nullopt});
        results.push_back({name,
                           absl::StrCat("1ms sleep lateness p99, ", blockers,
                                        " blocking jobs (base: idle)"),
                           "us", SortedQuantile(*busy, 0.99), idle_p99,
                           AtMost(1000)});
        results.push_back({name, "1ms sleep lateness max, blocking (info)",
                           "us", SortedQuantile(*busy, 1.0), kNaN,
                           std::nullopt});
        results.push_back({name, "blocking jobs still running after (info)",
                           "jobs", still_running, static_cast<double>(blockers),
                           std::nullopt});
        results.push_back({name, "blocking jobs cancelled (info)", "jobs",
                           cancelled, static_cast<double>(blockers),
                           std::nullopt});
        return absl::OkStatus();
      });
}

// --- Driver ------------------------------------------------------------------

constexpr bench::Benchmark kBenchmarks[] = {
    {"echo_rtt", RunEchoRtt},
    {"batch_echo", RunBatchEcho},
    {"sleep_1m", RunSleep1m},
    {"blocking_lateness", RunBlockingLateness},
};

// A benchmark's child process: SpawnProcess with an error message.
pid_t SpawnChild(const std::vector<std::string>& argv, int stdout_fd,
                 std::string* error) {
  absl::StatusOr<pid_t> pid = SpawnProcess(argv, stdout_fd);
  if (!pid.ok()) {
    *error = std::string(pid.status().message());
    return -1;
  }
  return *pid;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (const std::string child = absl::GetFlag(FLAGS_child); !child.empty()) {
    if (child == "echo_server") return RunEchoServer();
    return bench::RunChild("server_bench", kBenchmarks, child);
  }

  const std::optional<std::vector<std::string>> names = bench::SelectBenchmarks(
      "server_bench", absl::GetFlag(FLAGS_benchmarks), kBenchmarks);
  if (!names) return 2;
  const bench::HostInfo host = bench::ReadHostInfo();
  const std::string daemon = DaemonPath();
  const std::string daemon_args = absl::GetFlag(FLAGS_daemon_args);
  if (access(daemon.c_str(), X_OK) != 0) {
    std::fprintf(stderr,
                 "server_bench: no daemon binary at %s (build the awaitd "
                 "target, or pass --awaitd=PATH)\n",
                 daemon.c_str());
    return 2;
  }
  // Children are this binary, by its real path.
  std::vector<std::string> args(argv, argv + argc);
  std::error_code ec;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe", ec);
  args[0] = ec ? "/proc/self/exe" : self;
  const std::vector<Result> results =
      bench::RunAllInChildren("server_bench", *names, args, SpawnChild);

  std::printf(
      "# server_bench: nproc=%u cpu=\"%s\" loadavg=%s repetitions=%d jobs=%lld "
      "inflight=%d\n# daemon: %s %s\n",
      host.nproc, host.cpu_model.c_str(), host.loadavg.c_str(), Repetitions(),
      static_cast<long long>(Jobs()), Inflight(), daemon.c_str(),
      daemon_args.c_str());
  bench::PrintTablesByBenchmark(results);
  if (const std::string path = absl::GetFlag(FLAGS_json); !path.empty()) {
    const boost::json::object machine = {{"nproc", host.nproc},
                                         {"cpu_model", host.cpu_model},
                                         {"loadavg", host.loadavg},
                                         {"daemon", daemon},
                                         {"daemon_args", daemon_args},
                                         {"repetitions", Repetitions()},
                                         {"jobs", Jobs()},
                                         {"inflight", Inflight()}};
    if (!bench::WriteJsonFile(path, machine, results)) {
      std::fprintf(stderr, "server_bench: cannot write %s\n", path.c_str());
      return 1;
    }
  }
  return bench::AllPassed(results) || !absl::GetFlag(FLAGS_fail_on_miss) ? 0
                                                                         : 1;
}
