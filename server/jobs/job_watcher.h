// JobWatcher: waits, inside a runtime task, for state changes of a set of
// jobs (the building block of Wait, WaitFor, Gather, AsCompleted, Watch and
// the group jobs).
//
//   JobWatcher w(jobs, /*all_changes=*/false);
//   while (remaining > 0) {
//     co_await w.Changed();                  // CancelledError if cancelled
//     for (JobWatcher::Change c : w.Take()) { ... jobs[c.slot] ... }
//   }
//
// Each job's final state is reported exactly once (at once for a job that is
// already final when the watcher is constructed); with `all_changes` every
// earlier state change (RUNNING) is reported too. Changes come in the order
// they happened.
//
// Thread safety: construct, await and destroy it in one task (changes are
// recorded from any thread, under the changing job's lock). The destructor
// unlinks from every job, so it may run at any time, also when the runtime
// destroys the frame at shutdown.
#ifndef AWAITD_SERVER_JOBS_JOB_WATCHER_H_
#define AWAITD_SERVER_JOBS_JOB_WATCHER_H_

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "runtime/event.h"
#include "server/jobs/job.h"

namespace awaitd::server {

class JobWatcher {
 public:
  struct Change {
    std::uint32_t slot;  // index into the jobs given to the constructor
    JobState state;
  };

  JobWatcher(std::span<const JobPtr> jobs, bool all_changes);
  ~JobWatcher();
  JobWatcher(const JobWatcher&) = delete;
  JobWatcher& operator=(const JobWatcher&) = delete;

  // Ready once Take() has something; suspends until then.
  runtime::Event::WaitAwaiter Changed() { return event_.Wait(); }

  // The changes recorded since the last Take, oldest first.
  std::vector<Change> Take() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Link {
    JobWatch watch;  // first member: a JobWatch* is a Link*
    JobWatcher* owner;
    std::uint32_t slot;
  };
  static void OnChange(JobWatch* w, Job& job, JobState state);

  std::vector<JobPtr> jobs_;
  std::unique_ptr<Link[]> links_;
  runtime::Event event_;
  absl::Mutex mu_;
  std::vector<Change> changes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace awaitd::server

#endif  // AWAITD_SERVER_JOBS_JOB_WATCHER_H_
