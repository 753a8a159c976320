// JobManager, groups: Gather and TaskGroup, admitted, stored with their
// children's ids, started, and run (waiting for their children, cancelling
// siblings).
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "common/strings.h"
#include "runtime/time.h"
#include "server/jobs/job_manager.h"
#include "server/jobs/job_manager_internal.h"
#include "server/jobs/job_watcher.h"
#include "server/store/job_record.h"

namespace awaitd::server {

namespace {

// Marks the shielded children not seen yet as seen (no longer waited for).
void ForgetShielded(const std::vector<JobPtr>& children,
                    std::vector<bool>* seen, std::size_t* remaining) {
  for (std::size_t i = 0; i < children.size(); ++i) {
    if (!(*seen)[i] && children[i]->shield()) {
      (*seen)[i] = true;
      --*remaining;
    }
  }
}

}  // namespace

bool JobManager::CancelSibling(const JobPtr& job, std::string_view message) {
  if (job->type() != JobType::kLeaf) return Cancel(job, message);
  return job->CancelAfterStart(message);
}

absl::Status JobManager::AdmitGroup(std::size_t children,
                                    std::string_view field) const {
  const std::size_t before = not_done_.load(std::memory_order_relaxed);
  if (before + 1 > options_.max_pending_jobs) {
    return absl::ResourceExhaustedError(
        StrCat(field, ": ", before,
               " jobs are not done yet and a group would exceed "
               "--max_pending_jobs=",
               options_.max_pending_jobs));
  }
  return CheckMemory(kJobBaseBytes + kChildBytes * children, 1, field);
}

JobPtr JobManager::StartGather(std::uint64_t id, std::string name,
                               std::vector<JobPtr> children,
                               bool return_exceptions) {
  JobAttributes a;
  a.kind = "gather";
  a.type = JobType::kGather;
  a.return_exceptions = return_exceptions;
  return StartGroup(id, std::move(name), std::move(a), std::move(children));
}

JobPtr JobManager::StartTaskGroup(std::uint64_t id, std::string name,
                                  std::vector<JobPtr> children) {
  JobAttributes a;
  a.kind = "group";
  a.type = JobType::kTaskGroup;
  return StartGroup(id, std::move(name), std::move(a), std::move(children));
}

JobPtr JobManager::StartGroup(std::uint64_t id, std::string name,
                              JobAttributes a, std::vector<JobPtr> children) {
  a.id = id;
  a.name = name.empty() ? StrCat("Group-", ++group_names_) : std::move(name);
  a.created_at = a.scheduled_at = absl::Now();
  JobStore* const store = store_.load(std::memory_order_acquire);
  a.durable = store != nullptr;
  if (store != nullptr) {
    // Stored before the caller hears of it (see below), with its
    // children's ids: recovery rebuilds it.
    std::vector<std::uint64_t> ids;
    ids.reserve(children.size());
    for (const JobPtr& c : children) ids.push_back(c->id());
    JobStore::Batch batch;
    batch.PutJob(GroupRecord({.id = a.id,
                              .name = a.name,
                              .created_at = a.created_at,
                              .scheduled_at = a.scheduled_at},
                             a.type == JobType::kGather, a.return_exceptions,
                             ids));
    // Not waited for: the group's own transitions are committed after this
    // (commit order) and published only then, and the caller acknowledges
    // the group (sends its id) once it is published RUNNING. A full disk
    // delays it, like any state change.
    store->Commit(
        std::move(batch), [](absl::Status) {}, /*retry_while_full=*/true);
  }
  auto group = std::make_shared<Job>(std::move(a));
  if (store != nullptr) {
    // Its record lists them: theirs stay while it does.
    for (const JobPtr& c : children)
      c->referrers.fetch_add(1, std::memory_order_relaxed);
  }
  Charge(*group, kJobBaseBytes + kChildBytes * children.size());
  group->set_children(std::move(children));
  Adopt(group, /*not_done=*/true);
  // A durable group is told of once stored: its RUNNING is the first event.
  if (!group->attributes().durable) Publish(group, JobState::kPending);
  StartGroupTask(group);
  return group;
}

void JobManager::StartGroupTask(const JobPtr& group) {
  group->MarkRunning();
  OnStarted(group);
  group->SetTask(runtime_.Spawn(group->type() == JobType::kGather
                                    ? RunGather(group)
                                    : RunTaskGroup(group)));
}

void JobManager::Adopt(const JobPtr& job, bool not_done) {
  {
    absl::MutexLock lock(&table_mu_);
    // (Recovery adopts in id order: a key's newest job is the one it
    // names.)
    if (!job->attributes().idempotency_key.empty())
      idempotency_.insert_or_assign(job->attributes().idempotency_key,
                                    job->id());
    jobs_.emplace_hint(jobs_.end(), job->id(), job);
  }
  if (not_done) {
    not_done_.fetch_add(1, std::memory_order_relaxed);
    stats_.For(job->attributes().kind)->submitted.Add();
  } else {
    PushFinished(job.get());  // retained like any finished job
  }
}

runtime::Task<void> JobManager::RunGather(JobPtr group) {
  FinishGuard guard([this, &group] {
    if (group->done()) return;
    if (group->FinishGroup(
            [](bool, const std::string&, JobState* s, auto*, auto* e) {
              *s = JobState::kCancelled;
              *e = MakeError("CancelledError",
                             "the daemon shut down before the group finished");
            })) {
      OnFinished(group);
    }
  });
  if (!group->EnterBody()) co_return;
  const std::vector<JobPtr>& children = group->children();
  const bool return_exceptions = group->attributes().return_exceptions;
  JobWatcher watcher(children, /*all_changes=*/false);
  std::vector<bool> seen(children.size(), false);
  std::size_t remaining = children.size();
  int first_error = -1;
  // Cancel() on the group interrupts this wait (Job::InterruptTask), or, if
  // it came first, is seen here.
  bool cancelled = group->cancel_requested();
  for (;;) {
    if (cancelled) {
      // A cancelled gather's outer future ends at its first cancelled child
      // (at once); with return_exceptions it waits for its children, except
      // shielded ones, whose shield() wrappers ended when cancelled.
      if (!return_exceptions) break;
      ForgetShielded(children, &seen, &remaining);
    }
    if (remaining == 0 || first_error >= 0) break;
    try {
      co_await watcher.Changed();
    } catch (const runtime::CancelledError&) {
      cancelled = true;
      continue;
    }
    for (const JobWatcher::Change& c : watcher.Take()) {
      if (seen[c.slot]) continue;
      seen[c.slot] = true;
      --remaining;
      if (!return_exceptions && c.state != JobState::kSucceeded) {
        first_error = static_cast<int>(c.slot);
        break;
      }
    }
  }
  const bool ended =
      group->FinishGroup([&](bool cancel_requested, const std::string& msg,
                             JobState* s, auto* /*result*/, auto* error) {
        if (cancel_requested) {
          // The gather itself was cancelled (and so were its children).
          *s = JobState::kCancelled;
          *error = MakeError("CancelledError", msg);
          return;
        }
        if (first_error >= 0) {
          // The first exception propagates; the other children run on. A child
          // that was cancelled counts as having raised CancelledError: the
          // group fails with it but is not itself cancelled.
          const Job& child = *children[first_error];
          *s = JobState::kFailed;
          *error = std::make_unique<v1::JobError>(*child.error());
          auto& d = *(*error)->mutable_details()->mutable_fields();
          d["job_id"].set_number_value(static_cast<double>(child.id()));
          d["index"].set_number_value(first_error);
          return;
        }
        // Its result is its children's, by reference (Job::AppendResult).
        *s = JobState::kSucceeded;
      });
  if (ended) OnFinished(group);
}

runtime::Task<void> JobManager::RunTaskGroup(JobPtr group) {
  FinishGuard guard([this, &group] {
    if (group->done()) return;
    if (group->FinishGroup(
            [](bool, const std::string&, JobState* s, auto*, auto* e) {
              *s = JobState::kCancelled;
              *e = MakeError("CancelledError",
                             "the daemon shut down before the group finished");
            })) {
      OnFinished(group);
    }
  });
  if (!group->EnterBody()) co_return;
  const std::vector<JobPtr>& children = group->children();
  JobWatcher watcher(children, /*all_changes=*/false);
  std::vector<bool> seen(children.size(), false);
  std::size_t remaining = children.size();
  std::vector<std::uint32_t> failures;
  bool cancelled = group->cancel_requested();
  for (;;) {
    // Once the group is cancelled, or a child failed, shielded children are
    // no longer waited for (their shield() wrappers were cancelled).
    if (cancelled || !failures.empty()) {
      ForgetShielded(children, &seen, &remaining);
    }
    if (remaining == 0) break;
    try {
      co_await watcher.Changed();
    } catch (const runtime::CancelledError&) {
      cancelled = true;
      continue;
    }
    for (const JobWatcher::Change& c : watcher.Take()) {
      if (seen[c.slot]) continue;
      seen[c.slot] = true;
      --remaining;
      if (c.state != JobState::kFailed) continue;
      failures.push_back(c.slot);
      if (failures.size() == 1) {
        // The first failure cancels every other child (except shielded ones).
        const std::string msg =
            StrCat("TaskGroup ", group->name(), ": sibling ",
                   children[c.slot]->name(), " failed");
        for (std::uint32_t i = 0; i < children.size(); ++i) {
          if (i != c.slot && !children[i]->shield() && !children[i]->done()) {
            CancelSibling(children[i], msg);
          }
        }
      }
    }
  }
  const bool ended = group->FinishGroup([&](bool cancel_requested,
                                            const std::string& msg, JobState* s,
                                            auto* /*result*/, auto* error) {
    if (!failures.empty()) {
      *s = JobState::kFailed;
      *error =
          MakeError("ExceptionGroup",
                    StrCat("unhandled errors in a TaskGroup (", failures.size(),
                           failures.size() == 1 ? " sub-exception)"
                                                : " sub-exceptions)"));
      auto* list =
          (*(*error)->mutable_details()->mutable_fields())["exceptions"]
              .mutable_list_value();
      for (std::uint32_t slot : failures) {
        const Job& child = *children[slot];
        auto& f = *list->add_values()->mutable_struct_value()->mutable_fields();
        f["job_id"].set_number_value(static_cast<double>(child.id()));
        f["name"].set_string_value(child.name());
        f["index"].set_number_value(slot);
        f["type"].set_string_value(child.error()->type());
        f["message"].set_string_value(child.error()->message());
      }
      return;
    }
    if (cancel_requested) {
      *s = JobState::kCancelled;
      *error = MakeError("CancelledError", msg);
      return;
    }
    *s = JobState::kSucceeded;  // by reference, as for a gather
  });
  if (ended) OnFinished(group);
}

}  // namespace awaitd::server
