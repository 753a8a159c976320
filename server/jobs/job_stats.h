// Counters and histograms the job manager keeps for the metrics endpoint
// (server/rpc/metrics.h exports them; nothing here knows about Prometheus).
//
// Built for the job hot path (hundreds of thousands of jobs a second from
// every gRPC thread and event loop at once): no lock and no shared cache
// line per event. A counter is a set of cache-line-sized shards, each thread
// adding to its own; readers sum the shards. A histogram has fixed bucket
// bounds and the same sharding. Reads are approximately simultaneous (relaxed
// loads), as a scrape can tolerate.
//
//   KindStats* k = stats.For(job.attributes().kind);  // resolved per event,
//   k->submitted.Add();                                // a pointer scan
//   k->run_seconds.Observe(absl::Milliseconds(3));
//
// Thread safety: every method may be called from any thread.
#ifndef AWAITD_SERVER_JOBS_JOB_STATS_H_
#define AWAITD_SERVER_JOBS_JOB_STATS_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace awaitd::server {

inline constexpr std::size_t kStatShards = 8;

// This thread's shard (threads are dealt shards round robin).
std::size_t StatShard();

class ShardedCounter {
 public:
  void Add(std::uint64_t n = 1) {
    shards_[StatShard()].value.fetch_add(n, std::memory_order_relaxed);
  }
  std::uint64_t Value() const {
    std::uint64_t sum = 0;
    for (const Shard& s : shards_) {
      sum += s.value.load(std::memory_order_relaxed);
    }
    return sum;
  }

 private:
  struct alignas(64) Shard {
    std::atomic<std::uint64_t> value{0};
  };
  std::array<Shard, kStatShards> shards_;
};

// Durations in fixed buckets, 100 us to 5 min, for queue waits, run times
// and RPC latencies alike (so dashboards can compare them).
class DurationHistogram {
 public:
  static constexpr std::array<double, 18> kBoundsSeconds = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,    0.25,    0.5,    1,     2.5,    5,     10,   60,    300};
  static constexpr std::size_t kBuckets = kBoundsSeconds.size() + 1;  // +Inf

  void Observe(absl::Duration d);

  struct Snapshot {
    // Per bucket, not cumulative; the last one is (kBoundsSeconds.back(),
    // +Inf).
    std::array<std::uint64_t, kBuckets> counts{};
    std::uint64_t count = 0;
    double sum_seconds = 0;
  };
  Snapshot Read() const;

 private:
  struct alignas(64) Shard {
    std::array<std::atomic<std::uint64_t>, kBuckets> counts{};
    std::atomic<std::int64_t> sum_ns{0};
  };
  std::array<Shard, kStatShards> shards_;
};

enum class JobOutcome : std::uint8_t { kSucceeded, kFailed, kCancelled };
inline constexpr std::array<std::string_view, 3> kJobOutcomeNames = {
    "succeeded", "failed", "cancelled"};

// One job kind's numbers (groups count under "gather" and "group").
struct KindStats {
  explicit KindStats(std::string_view kind) : name(kind) {}
  const std::string name;
  ShardedCounter submitted;  // accepted (an idempotent retry is not)
  ShardedCounter started;    // reached RUNNING
  std::array<ShardedCounter, 3> finished;  // by JobOutcome
  ShardedCounter finished_unstarted;       // cancelled while pending
  DurationHistogram queue_wait;  // ready to start (its start time) -> RUNNING
  DurationHistogram run_time;    // RUNNING -> final

  // Gauges derived from the counters (clamped at 0: the loads are not one
  // snapshot).
  std::uint64_t pending() const;
  std::uint64_t running() const;
};

class JobStats {
 public:
  JobStats() = default;
  JobStats(const JobStats&) = delete;
  JobStats& operator=(const JobStats&) = delete;

  // The stats of `kind`, created on first use. Job kinds are string_views
  // into the kind registry, so the usual lookup is a scan comparing data
  // pointers; other spellings fall back to comparing text.
  KindStats* For(std::string_view kind);

  // Every kind seen so far, in order of first use.
  std::vector<const KindStats*> All() const;

 private:
  static constexpr std::size_t kMaxKinds = 128;
  struct Slot {
    std::atomic<const char*> data{nullptr};
    std::size_t size = 0;  // written before `data` is published
    std::unique_ptr<KindStats> stats;
  };
  KindStats* Create(std::string_view kind) ABSL_LOCKS_EXCLUDED(mu_);

  std::array<Slot, kMaxKinds> slots_;
  std::atomic<std::size_t> used_{0};
  absl::Mutex mu_;  // serializes Create
  // Kinds past kMaxKinds share one entry (a registry bug, not a job's).
  KindStats overflow_{"other"};
};

}  // namespace awaitd::server

#endif  // AWAITD_SERVER_JOBS_JOB_STATS_H_
