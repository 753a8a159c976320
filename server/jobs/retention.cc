// JobManager, retention: finished jobs are kept for --result_ttl, at most
// --max_finished_jobs of them, then forgotten in memory and in the store (a
// forgotten child some stored group lists stays stored for it).
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "runtime/time.h"
#include "server/jobs/job_manager.h"
#include "server/jobs/job_manager_internal.h"

namespace awaitd::server {

namespace {

constexpr std::size_t kSweepChunk = 4096;

}  // namespace

void JobManager::PushFinished(Job* job) {
  // Retention: onto the finished stack (the table keeps the job alive).
  Job* head = finished_head_.load(std::memory_order_relaxed);
  do {
    job->finished_next_ = head;
  } while (!finished_head_.compare_exchange_weak(
      head, job, std::memory_order_release, std::memory_order_relaxed));
  finished_unswept_.fetch_add(1, std::memory_order_relaxed);
}

void JobManager::EraseKeyLocked(const Job& job) {
  const std::string& key = job.attributes().idempotency_key;
  if (key.empty()) return;
  auto k = idempotency_.find(key);
  if (k != idempotency_.end() && k->second == job.id()) idempotency_.erase(k);
}

runtime::Task<void> JobManager::Sweeper() {
  absl::Time last = absl::Now();
  while (!sweeping_stopped_.load(std::memory_order_acquire)) {
    co_await runtime::Sleep(std::chrono::milliseconds(50));
    const bool over_count = finished_unswept_.load(std::memory_order_relaxed) >
                            options_.max_finished_jobs / 8;
    const absl::Time now = absl::Now();
    if (!over_count && now - last < options_.sweep_interval) continue;
    last = now;
    while (SweepSome(now, kSweepChunk)) co_await runtime::Yield();
  }
}

void JobManager::SweepNow() {
  const absl::Time now = absl::Now();
  while (SweepSome(now, kSweepChunk)) {
  }
}

bool JobManager::SweepSome(absl::Time now, std::size_t max_evictions) {
  std::vector<JobPtr> doomed;  // destroyed after the locks
  {
    absl::MutexLock sweep_lock(&sweep_mu_);
    // Take the jobs that finished since the last sweep, oldest first.
    Job* head = finished_head_.exchange(nullptr, std::memory_order_acquire);
    std::vector<Job*> fresh;
    for (Job* j = head; j != nullptr; j = j->finished_next_) fresh.push_back(j);
    finished_unswept_.fetch_sub(fresh.size(), std::memory_order_relaxed);
    for (auto it = fresh.rbegin(); it != fresh.rend(); ++it) {
      retained_.push_back({*it, now});
    }
    const absl::Time expired_before = now - options_.result_ttl;
    std::size_t evict = 0;
    while (evict < retained_.size() && evict < max_evictions &&
           (retained_.size() - evict > options_.max_finished_jobs ||
            retained_[evict].finished_seen <= expired_before)) {
      ++evict;
    }
    if (evict == 0) return false;
    doomed.reserve(evict);
    {
      absl::MutexLock lock(&table_mu_);
      for (std::size_t i = 0; i < evict; ++i) {
        Job* j = retained_[i].job;
        auto it = jobs_.find(j->id());
        if (it == jobs_.end()) continue;
        EraseKeyLocked(*j);
        doomed.push_back(std::move(it->second));
        jobs_.erase(it);
      }
    }
    retained_.erase(retained_.begin(), retained_.begin() + evict);
    for (const JobPtr& j : doomed) {
      memory_.fetch_sub(j->charged_bytes.exchange(0),
                        std::memory_order_relaxed);
    }
    if (JobStore* store = store_.load(std::memory_order_acquire);
        store != nullptr) {
      JobStore::Batch forget;
      for (const JobPtr& j : doomed) ForgetStoredLocked(j.get(), &forget);
      if (!forget.empty()) {
        store->Commit(
            std::move(forget), [](absl::Status) {}, /*retry_while_full=*/true);
      }
    }
  }
  // `doomed` goes last, after the locks: a group frees its children (and a
  // chain of groups its whole chain, see ~Job) here.
  return true;
}

void JobManager::ForgetStoredLocked(Job* job, JobStore::Batch* batch) {
  if (!job->attributes().idempotency_key.empty()) {
    batch->DeleteIdempotencyKey(job->attributes().idempotency_key);
  }
  std::vector<Job*> work{job};
  while (!work.empty()) {
    Job* j = work.back();
    work.pop_back();
    if (j->referrers.load(std::memory_order_acquire) > 0) {
      // Its last referrer deletes it; until then recovery rebuilds it for
      // them alone.
      j->forgotten_with_referrers = true;
      PutState(*j, batch, /*forgotten=*/true);
      continue;
    }
    batch->DeleteJob(j->id(), /*idempotency_key=*/"");
    for (const JobPtr& c : j->children()) {
      if (c->referrers.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
          c->forgotten_with_referrers) {
        c->forgotten_with_referrers = false;
        work.push_back(c.get());
      }
    }
  }
}

}  // namespace awaitd::server
