#include "server/jobs/job_stats.h"

#include <algorithm>

namespace awaitd::server {

std::size_t StatShard() {
  static std::atomic<std::size_t> next{0};
  thread_local const std::size_t shard =
      next.fetch_add(1, std::memory_order_relaxed) % kStatShards;
  return shard;
}

void DurationHistogram::Observe(absl::Duration d) {
  const std::int64_t ns =
      std::max<std::int64_t>(0, absl::ToInt64Nanoseconds(d));
  // Bounds in integer nanoseconds, computed once.
  static const std::array<std::int64_t, kBoundsSeconds.size()> kBoundsNs = [] {
    std::array<std::int64_t, kBoundsSeconds.size()> b{};
    for (std::size_t i = 0; i < b.size(); ++i) {
      b[i] = static_cast<std::int64_t>(kBoundsSeconds[i] * 1e9);
    }
    return b;
  }();
  // Prometheus buckets are upper-inclusive (le).
  const std::size_t bucket = static_cast<std::size_t>(
      std::lower_bound(kBoundsNs.begin(), kBoundsNs.end(), ns) -
      kBoundsNs.begin());
  Shard& s = shards_[StatShard()];
  s.counts[bucket].fetch_add(1, std::memory_order_relaxed);
  s.sum_ns.fetch_add(ns, std::memory_order_relaxed);
}

DurationHistogram::Snapshot DurationHistogram::Read() const {
  Snapshot out;
  std::int64_t sum_ns = 0;
  for (const Shard& s : shards_) {
    for (std::size_t i = 0; i < kBuckets; ++i) {
      out.counts[i] += s.counts[i].load(std::memory_order_relaxed);
    }
    sum_ns += s.sum_ns.load(std::memory_order_relaxed);
  }
  for (std::uint64_t c : out.counts) out.count += c;
  out.sum_seconds = static_cast<double>(sum_ns) / 1e9;
  return out;
}

namespace {
std::uint64_t ClampedDifference(std::uint64_t a, std::uint64_t b) {
  return a > b ? a - b : 0;
}
}  // namespace

std::uint64_t KindStats::pending() const {
  // Read the later events first, so a job moving on between the loads is
  // never counted twice.
  const std::uint64_t unstarted = finished_unstarted.Value();
  const std::uint64_t s = started.Value();
  return ClampedDifference(submitted.Value(), s + unstarted);
}

std::uint64_t KindStats::running() const {
  std::uint64_t done = 0;
  for (const ShardedCounter& c : finished) done += c.Value();
  const std::uint64_t done_started =
      ClampedDifference(done, finished_unstarted.Value());
  return ClampedDifference(started.Value(), done_started);
}

KindStats* JobStats::For(std::string_view kind) {
  const std::size_t used = used_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < used; ++i) {
    const Slot& s = slots_[i];
    if (s.data.load(std::memory_order_acquire) == kind.data() &&
        s.size == kind.size()) {
      return s.stats.get();
    }
  }
  for (std::size_t i = 0; i < used; ++i) {
    if (slots_[i].stats->name == kind) return slots_[i].stats.get();
  }
  return Create(kind);
}

KindStats* JobStats::Create(std::string_view kind) {
  absl::MutexLock lock(&mu_);
  const std::size_t used = used_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < used; ++i) {
    if (slots_[i].stats->name == kind) return slots_[i].stats.get();
  }
  if (used == kMaxKinds) return &overflow_;
  Slot& s = slots_[used];
  s.stats = std::make_unique<KindStats>(kind);
  s.size = kind.size();
  s.data.store(kind.data(), std::memory_order_release);
  used_.store(used + 1, std::memory_order_release);
  return s.stats.get();
}

std::vector<const KindStats*> JobStats::All() const {
  std::vector<const KindStats*> out;
  const std::size_t used = used_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < used; ++i) out.push_back(slots_[i].stats.get());
  return out;
}

}  // namespace awaitd::server
