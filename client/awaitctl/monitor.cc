// Monitor: progress and event lines for the jobs of a long wait.
#include "client/awaitctl/monitor.h"

#include <algorithm>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "client/awaitctl/format.h"
#include "common/strings.h"

namespace awaitd::awaitctl {
namespace {

// How often the progress line is redrawn (its clock moves) and, when
// polling, how often the jobs are fetched.
constexpr absl::Duration kTick = absl::Milliseconds(200);
// How long Stop(settle) waits for done jobs' events still on their way.
constexpr absl::Duration kSettle = absl::Seconds(1);

int Rank(v1::JobState state) {
  if (IsFinal(state)) return 3;
  if (state == v1::JOB_STATE_RUNNING) return 2;
  if (state == v1::JOB_STATE_PENDING) return 1;
  return 0;
}

v1::WatchResponse EventOf(const v1::Job& job) {
  v1::WatchResponse e;
  e.set_id(job.id());
  e.set_name(job.name());
  e.set_kind(job.kind());
  e.set_state(job.state());
  const google::protobuf::Timestamp& t =
      IsSet(job.finished_at())  ? job.finished_at()
      : IsSet(job.started_at()) ? job.started_at()
                                : job.created_at();
  *e.mutable_time() = t;
  if (job.has_error()) *e.mutable_error() = job.error();
  return e;
}

}  // namespace

// What the monitor's thread shares with gRPC callbacks and its owner; held
// by shared_ptr so a late callback never outlives it.
struct Monitor::Shared {
  absl::Mutex mu;
  std::vector<std::uint64_t> groups ABSL_GUARDED_BY(mu);
  std::vector<std::uint64_t> follow ABSL_GUARDED_BY(mu);
  std::deque<std::pair<v1::WatchResponse, absl::Time>> events
      ABSL_GUARDED_BY(mu);
  // The watch call ended; `watch_status` says how.
  bool watch_ended ABSL_GUARDED_BY(mu) = false;
  absl::Status watch_status ABSL_GUARDED_BY(mu);
  std::size_t total ABSL_GUARDED_BY(mu) = 0;
  bool stop ABSL_GUARDED_BY(mu) = false;
  bool settle ABSL_GUARDED_BY(mu) = false;

  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return stop || !groups.empty() || !follow.empty() || !events.empty() ||
           watch_ended;
  }
};

Monitor::Monitor(client::Client& client, Output& out, Options options)
    : client_(client),
      out_(out),
      options_(std::move(options)),
      shared_(std::make_shared<Shared>()),
      printer_(EventPrinter::Clock::kElapsed, options_.start) {
  const bool progress = options_.progress && out_.options().progress;
  if (progress || options_.events) thread_ = std::thread([this] { Loop(); });
}

Monitor::~Monitor() { Stop(/*settle=*/false); }

void Monitor::SetTotal(std::size_t total) {
  absl::MutexLock lock(&shared_->mu);
  shared_->total = total;
}

void Monitor::Follow(std::vector<std::uint64_t> ids) {
  absl::MutexLock lock(&shared_->mu);
  shared_->follow.insert(shared_->follow.end(), ids.begin(), ids.end());
}

std::function<void(std::uint64_t)> Monitor::GroupSink() {
  return [shared = shared_](std::uint64_t group_id) {
    absl::MutexLock lock(&shared->mu);
    shared->groups.push_back(group_id);
  };
}

void Monitor::Stop(bool settle) {
  if (!thread_.joinable()) return;
  {
    absl::MutexLock lock(&shared_->mu);
    shared_->stop = true;
    shared_->settle = settle;
  }
  thread_.join();
}

void Monitor::Loop() {
  std::optional<absl::Time> settle_until;
  std::set<std::uint64_t> done_in_snapshot;
  while (true) {
    std::vector<std::uint64_t> groups;
    std::vector<std::uint64_t> follow;
    std::vector<std::pair<v1::WatchResponse, absl::Time>> events;
    bool stop = false;
    bool settle = false;
    bool watch_failed = false;
    {
      absl::MutexLock lock(&shared_->mu);
      shared_->mu.AwaitWithTimeout(
          absl::Condition(shared_.get(), &Shared::HasWork), kTick);
      groups.swap(shared_->groups);
      follow.swap(shared_->follow);
      events.assign(std::make_move_iterator(shared_->events.begin()),
                    std::make_move_iterator(shared_->events.end()));
      shared_->events.clear();
      if (shared_->watch_ended) {
        shared_->watch_ended = false;
        watch_failed = !shared_->watch_status.ok() &&
                       !absl::IsCancelled(shared_->watch_status);
      }
      stop = shared_->stop;
      settle = shared_->settle;
    }
    for (std::uint64_t group : groups) {
      absl::StatusOr<v1::Job> g = client_.Get(group);
      if (g.ok()) {
        follow.insert(follow.end(), g->children().begin(), g->children().end());
      }
    }
    if (!follow.empty() && !(stop && !settle)) StartFollowing(follow);
    if (watch_failed) polling_ = true;
    Report(std::move(events));
    if (polling_ && !stop) ReportSnapshot();

    if (stop && !settle) break;
    if (stop && settle) {
      if (!options_.events) break;  // progress only: nothing to settle
      if (!settle_until) {
        settle_until = absl::Now() + kSettle;
        // Which jobs are done now; their events should all arrive.
        std::vector<std::uint64_t> ids(ids_.begin(), ids_.end());
        absl::StatusOr<std::vector<v1::Job>> jobs = client_.Get(ids);
        if (jobs.ok()) {
          for (const v1::Job& j : *jobs) {
            if (IsFinal(j.state())) done_in_snapshot.insert(j.id());
          }
        }
      }
      const bool all_seen =
          std::all_of(done_in_snapshot.begin(), done_in_snapshot.end(),
                      [&](std::uint64_t id) { return seen_[id].rank == 3; });
      if (all_seen || polling_ || absl::Now() >= *settle_until) {
        ReportSnapshot();  // whatever is still missing
        break;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    DrawProgress();
  }
  watch_.Cancel();
  out_.SetProgress("");
}

void Monitor::StartFollowing(std::vector<std::uint64_t> ids) {
  std::vector<std::uint64_t> fresh;
  for (std::uint64_t id : ids) {
    if (seen_.emplace(id, Seen{}).second) fresh.push_back(id);
  }
  if (fresh.empty()) return;
  ids_.insert(ids_.end(), fresh.begin(), fresh.end());
  if (options_.events) {
    // Names and kinds first, so event columns line up from the first line.
    absl::StatusOr<std::vector<v1::Job>> jobs = client_.Get(fresh);
    if (jobs.ok()) {
      for (const v1::Job& j : *jobs) printer_.Learn(j.id(), j.name(), j.kind());
    }
  }
  if (polling_) return;
  // One watch for everything followed: a new one replaces the old.
  watch_.Cancel();
  std::shared_ptr<Shared> shared = shared_;
  watch_ = client_.WatchAsync(
      ids_,
      [shared](v1::WatchResponse event) {
        absl::MutexLock lock(&shared->mu);
        shared->events.emplace_back(std::move(event), absl::Now());
      },
      [shared](absl::Status status) {
        absl::MutexLock lock(&shared->mu);
        shared->watch_ended = true;
        shared->watch_status = std::move(status);
      });
}

void Monitor::Report(
    std::vector<std::pair<v1::WatchResponse, absl::Time>> events) {
  std::vector<std::pair<v1::WatchResponse, absl::Time>> shown;
  for (auto& [event, seen_at] : events) {
    auto it = seen_.find(event.id());
    if (it == seen_.end()) continue;
    const int rank = Rank(event.state());
    if (rank <= it->second.rank) continue;  // old news
    if (it->second.rank == 2) --running_;
    it->second.rank = rank;
    if (rank == 3) ++done_;
    if (rank == 2) ++running_;
    if (options_.events) shown.emplace_back(std::move(event), seen_at);
  }
  if (shown.empty()) return;
  if (out_.json()) {
    // One WatchResponse per line, as `watch --json` prints them.
    std::string text;
    for (const auto& [event, unused] : shown) {
      StrAppend(&text, ToJson(event), "\n");
    }
    out_.Print(text);
    return;
  }
  // Results of the jobs that succeeded, in one call.
  std::vector<std::uint64_t> succeeded;
  for (const auto& [event, unused] : shown) {
    if (event.state() == v1::JOB_STATE_SUCCEEDED) {
      succeeded.push_back(event.id());
    }
  }
  std::map<std::uint64_t, google::protobuf::Value> results;
  if (!succeeded.empty()) {
    absl::StatusOr<std::vector<v1::Job>> jobs = client_.Get(succeeded);
    if (jobs.ok()) {
      for (const v1::Job& j : *jobs) {
        if (j.has_result()) results[j.id()] = j.result();
      }
    }
  }
  std::string text;
  for (const auto& [event, seen_at] : shown) {
    auto r = results.find(event.id());
    text += printer_.Format(event, seen_at,
                            r == results.end() ? nullptr : &r->second, out_);
  }
  out_.Print(text);
}

void Monitor::ReportSnapshot() {
  if (ids_.empty()) return;
  absl::StatusOr<std::vector<v1::Job>> jobs = client_.Get(ids_);
  if (!jobs.ok()) return;
  std::vector<std::pair<v1::WatchResponse, absl::Time>> events;
  const absl::Time now = absl::Now();
  for (const v1::Job& j : *jobs) events.emplace_back(EventOf(j), now);
  Report(std::move(events));
}

void Monitor::DrawProgress() {
  if (!options_.progress) return;
  std::size_t total = ids_.size();
  if (total == 0) {
    absl::MutexLock lock(&shared_->mu);
    total = shared_->total;
  }
  std::string line = StrCat(options_.label, "  ", done_, "/", total, " done");
  if (running_ > 0) StrAppend(&line, ", ", running_, " running");
  StrAppend(&line, "  ",
            absl::StrFormat(
                "%.1fs", absl::ToDoubleSeconds(absl::Now() - options_.start)));
  out_.SetProgress(std::move(line));
}

}  // namespace awaitd::awaitctl
