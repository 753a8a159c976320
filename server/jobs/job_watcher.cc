#include "server/jobs/job_watcher.h"

#include <utility>

namespace awaitd::server {

JobWatcher::JobWatcher(std::span<const JobPtr> jobs, bool all_changes)
    : jobs_(jobs.begin(), jobs.end()),
      links_(std::make_unique<Link[]>(jobs.size())) {
  for (std::uint32_t i = 0; i < jobs_.size(); ++i) {
    Link& l = links_[i];
    l.watch.fn = &JobWatcher::OnChange;
    l.watch.final_only = !all_changes;
    l.owner = this;
    l.slot = i;
    if (!jobs_[i]->Watch(&l.watch)) {
      absl::MutexLock lock(&mu_);
      changes_.push_back({i, jobs_[i]->state()});
      event_.Set();
    }
  }
}

JobWatcher::~JobWatcher() {
  for (std::uint32_t i = 0; i < jobs_.size(); ++i) {
    jobs_[i]->Unwatch(&links_[i].watch);
  }
}

void JobWatcher::OnChange(JobWatch* w, Job& /*job*/, JobState state) {
  Link* l = reinterpret_cast<Link*>(w);
  JobWatcher* self = l->owner;
  absl::MutexLock lock(&self->mu_);
  self->changes_.push_back({l->slot, state});
  self->event_.Set();
}

std::vector<JobWatcher::Change> JobWatcher::Take() {
  std::vector<Change> out;
  absl::MutexLock lock(&mu_);
  event_.Clear();
  out.swap(changes_);
  return out;
}

}  // namespace awaitd::server
