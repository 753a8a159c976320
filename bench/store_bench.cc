// store_bench: the durable job store (server/store/store.h) alone, without
// gRPC: what a Submit of a batch costs with each --durability, and the latency
// of a single-job commit with sync.
//
//   store_bench [--dir=PATH] [--jobs=N] [--batch=K] [--committers=C]
//               [--single=M]
//
// For each of sync and async, in one run on the same disk: C threads commit
// N jobs in batches of K (a Submit of K jobs is one batch), each thread
// waiting for its batch before the next, as a Submit handler would. Reports
// jobs/s, batches/s, the mean batches per group (fsyncs shared), and bytes
// per job. Then M single-job commits one after another with sync, p50/p99
// latency in microseconds. --dir defaults to a fresh directory under
// /var/tmp (a real disk: /tmp may be tmpfs, where fsync is free).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "server/store/store.h"

ABSL_FLAG(std::string, dir, "",
          "Directory for the stores (default: a new one under /var/tmp)");
ABSL_FLAG(int, jobs, 200'000, "Jobs per durability mode");
ABSL_FLAG(int, batch, 1'000, "Jobs per commit (one Submit)");
ABSL_FLAG(int, committers, 8, "Threads committing at once");
ABSL_FLAG(int, single, 2'000, "Single-job commits for the latency figure");

namespace {

using awaitd::server::Durability;
using awaitd::server::JobStore;
using awaitd::server::StoredJob;
using Clock = std::chrono::steady_clock;

StoredJob EchoJob(std::uint64_t id) {
  StoredJob job;
  job.set_id(id);
  job.set_name("Job-" + std::to_string(id));
  job.mutable_spec()->set_kind("echo");
  (*job.mutable_spec()->mutable_args()->mutable_fields())["value"]
      .set_number_value(static_cast<double>(id % 1000));
  job.set_state(awaitd::v1::JOB_STATE_PENDING);
  job.mutable_created_at()->set_seconds(1'765'000'000);
  job.mutable_scheduled_at()->set_seconds(1'765'000'000);
  return job;
}

std::unique_ptr<JobStore> OpenOrDie(const std::string& dir, Durability d) {
  auto store = JobStore::Open({.dir = dir, .durability = d});
  if (!store.ok()) {
    std::fprintf(stderr, "store_bench: %s\n",
                 std::string(store.status().message()).c_str());
    std::exit(1);
  }
  return *std::move(store);
}

void Throughput(const std::string& dir, Durability d) {
  const int jobs = absl::GetFlag(FLAGS_jobs);
  const int batch = std::max(1, absl::GetFlag(FLAGS_batch));
  const int committers = std::max(1, absl::GetFlag(FLAGS_committers));
  auto store = OpenOrDie(dir, d);
  const int batches = jobs / batch;
  std::atomic<int> next{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < committers; ++t) {
    threads.emplace_back([&] {
      for (int b; (b = next.fetch_add(1)) < batches;) {
        JobStore::Batch out;
        for (int i = 0; i < batch; ++i)
          out.PutJob(EchoJob(static_cast<std::uint64_t>(b) * batch + i + 1));
        if (absl::Status s = store->CommitAndWait(std::move(out)); !s.ok()) {
          std::fprintf(stderr, "store_bench: %s\n",
                       std::string(s.message()).c_str());
          std::exit(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double secs =
      std::chrono::duration<double>(Clock::now() - start).count();
  const awaitd::server::StoreStats st = store->stats();
  std::printf(
      "%-6s %9.0f jobs/s  %7.0f batches/s  %5.2f batches/group  %6.1f "
      "B/job  (%d jobs, batches of %d, %d committers, %.2f s)\n",
      std::string(awaitd::server::DurabilityName(d)).c_str(),
      batches * batch / secs, batches / secs,
      static_cast<double>(st.commits) / std::max<std::uint64_t>(1, st.groups),
      static_cast<double>(st.bytes) / std::max(1, batches * batch),
      batches * batch, batch, committers, secs);
}

void SingleLatency(const std::string& dir) {
  const int n = absl::GetFlag(FLAGS_single);
  auto store = OpenOrDie(dir, Durability::kSync);
  std::vector<double> us;
  us.reserve(n);
  for (int i = 0; i < n; ++i) {
    JobStore::Batch b;
    b.PutJob(EchoJob(10'000'000 + i));
    const auto t0 = Clock::now();
    if (!store->CommitAndWait(std::move(b)).ok()) std::exit(1);
    us.push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  std::printf(
      "sync single-job commit: p50 %.0f us  p99 %.0f us  (%d commits)\n",
      us[us.size() / 2], us[us.size() * 99 / 100], n);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::string dir = absl::GetFlag(FLAGS_dir);
  bool remove = false;
  if (dir.empty()) {
    std::string tmpl = "/var/tmp/awaitd-store-bench-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::perror("store_bench: mkdtemp");
      return 1;
    }
    dir = tmpl;
    remove = true;
  }
  Throughput(dir + "/sync", Durability::kSync);
  Throughput(dir + "/async", Durability::kAsync);
  SingleLatency(dir + "/single");
  if (remove) std::filesystem::remove_all(dir);
  return 0;
}
