#include "server/job.h"

#include <utility>

#include "runtime/internal/context.h"
#include "runtime/internal/task_header.h"
#include "server/limits.h"

namespace awaitd::server {

std::string_view JobStateName(JobState s) {
  switch (s) {
    case JobState::kUnstored:
      return "UNSTORED";
    case JobState::kPending:
      return "PENDING";
    case JobState::kRunning:
      return "RUNNING";
    case JobState::kSucceeded:
      return "SUCCEEDED";
    case JobState::kFailed:
      return "FAILED";
    case JobState::kCancelled:
      return "CANCELLED";
  }
  return "UNKNOWN";
}

std::unique_ptr<v1::JobError> MakeError(std::string_view type,
                                        std::string_view message) {
  auto e = std::make_unique<v1::JobError>();
  e->set_type(std::string(type));
  e->set_message(std::string(message));
  return e;
}

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  const absl::Duration since = t - absl::UnixEpoch();
  const std::int64_t s = absl::ToInt64Seconds(since);
  out->set_seconds(s);
  out->set_nanos(static_cast<std::int32_t>(
      absl::ToInt64Nanoseconds(since - absl::Seconds(s))));
}

void Job::SetTask(runtime::JoinHandle<void> task) {
  runtime::JoinHandle<void> drop;  // released after the lock
  absl::MutexLock lock(&mu_);
  // A Cancel() that came after the body started but before the job had its
  // task could not reach it. (Before the body starts, a cancel is seen by the
  // body itself: a task cancelled before it runs never runs at all.)
  if (cancel_requested_ && body_entered_) task.Cancel(*cancel_message_);
  if (IsFinal(decided_)) {
    drop = std::move(task);
  } else {
    task_ = std::move(task);
  }
}

bool Job::EnterBody() {
  absl::MutexLock lock(&mu_);
  if (IsFinal(decided_)) return false;
  body_entered_ = true;
  if (cancel_at_first_step_) {
    // CancelAfterStart came first: the body starts, and the cancellation
    // waits for its first suspension, as for a task that had started.
    runtime::internal::TaskHeader* t = runtime::internal::CurrentTaskHeader();
    if (t != nullptr) t->RequestCancel(*cancel_message_);
  }
  return true;
}

bool Job::CancelAfterStart(std::string_view message) {
  bool ended = false;
  {
    absl::MutexLock lock(&mu_);
    if (IsFinal(decided_)) return false;
    if (!body_entered_) {
      cancel_requested_ = true;
      cancel_message_ = std::make_unique<std::string>(message);
      cancel_at_first_step_ = true;
      return true;
    }
  }
  return CancelLeaf(message, &ended);  // started: an ordinary cancel
}

bool Job::MarkRunning() {
  absl::MutexLock lock(&mu_);
  if (decided_ != JobState::kPending) return false;
  started_at_ = absl::Now();
  ++attempt_;
  started_.store(true, std::memory_order_release);
  decided_ = JobState::kRunning;
  if (!attr_.durable) PublishLocked(JobState::kRunning);
  return true;
}

JobState Job::decided_state() const {
  absl::MutexLock lock(&mu_);
  return decided_;
}

bool Job::Publish(JobState s) {
  absl::MutexLock lock(&mu_);
  return PublishLocked(s);
}

bool Job::PublishLocked(JobState s) {
  // States only move forward (PENDING < RUNNING < the final ones): a RUNNING
  // stored after its job's end was published (the store was detached in
  // between) is not published again.
  if (s <= state_.load(std::memory_order_relaxed)) return false;
  state_.store(s, std::memory_order_release);
  NotifyLocked(s);
  return true;
}

void Job::Restore(JobState state, std::uint32_t attempts, absl::Time started_at,
                  absl::Time finished_at,
                  std::unique_ptr<google::protobuf::Value> result,
                  std::unique_ptr<v1::JobError> error) {
  absl::MutexLock lock(&mu_);
  attempt_ = attempts;
  if (!IsFinal(state)) {  // PENDING: it runs again
    state_.store(JobState::kPending, std::memory_order_release);
    return;
  }
  decided_ = state;
  started_at_ = started_at;
  finished_at_ = finished_at;
  result_ = std::move(result);
  error_ = std::move(error);
  started_.store(started_at != absl::Time(), std::memory_order_release);
  state_.store(state, std::memory_order_release);
}

void Job::RestoreCancel(std::string message) {
  absl::MutexLock lock(&mu_);
  cancel_requested_ = true;
  cancel_message_ = std::make_unique<std::string>(std::move(message));
}

bool Job::Finish(JobState final_state,
                 std::unique_ptr<google::protobuf::Value> result,
                 std::unique_ptr<v1::JobError> error,
                 bool (*cancel_pending)(const Job&)) {
  runtime::JoinHandle<void> task;  // released after the lock
  {
    absl::MutexLock lock(&mu_);
    if (IsFinal(decided_)) return false;
    if (final_state == JobState::kSucceeded && cancel_pending != nullptr &&
        cancel_requested_ && cancel_pending(*this)) {
      final_state = JobState::kCancelled;
      result.reset();
      error = MakeError("CancelledError", *cancel_message_);
    }
    result_ = std::move(result);
    error_ = std::move(error);
    task = std::move(task_);
    EndLocked(final_state);
  }
  return true;
}

bool Job::CancelLeaf(std::string_view message, bool* ended) {
  runtime::JoinHandle<void> task;  // released after the lock
  {
    absl::MutexLock lock(&mu_);
    if (IsFinal(decided_)) return false;
    cancel_requested_ = true;
    cancel_message_ = std::make_unique<std::string>(message);
    if (task_.valid()) task_.Cancel(message);
    if (body_entered_) return true;
    // Not started: the task will never run its body (a task cancelled before
    // it starts does not), so the job ends here.
    error_ = MakeError("CancelledError", message);
    task = std::move(task_);
    EndLocked(JobState::kCancelled);
    *ended = true;
  }
  return true;
}

void Job::EndLocked(JobState s) {
  finished_at_ = absl::Now();
  decided_ = s;
  if (!attr_.durable) PublishLocked(s);
}

void Job::InterruptTask(std::string_view message) {
  absl::MutexLock lock(&mu_);
  if (body_entered_ && task_.valid()) task_.Cancel(message);
}

bool Job::cancel_requested() const {
  absl::MutexLock lock(&mu_);
  return cancel_requested_;
}

std::string Job::cancel_message() const {
  absl::MutexLock lock(&mu_);
  return cancel_message_ ? *cancel_message_ : std::string();
}

bool Job::Watch(JobWatch* w) {
  absl::MutexLock lock(&mu_);
  // Published, not decided: a watch waits for the publication.
  if (IsFinal(state_.load(std::memory_order_relaxed))) return false;
  w->prev = nullptr;
  w->next = watches_;
  if (watches_ != nullptr) watches_->prev = w;
  watches_ = w;
  w->linked = true;
  return true;
}

void Job::Unwatch(JobWatch* w) {
  absl::MutexLock lock(&mu_);
  if (!w->linked) return;
  if (w->prev != nullptr) {
    w->prev->next = w->next;
  } else {
    watches_ = w->next;
  }
  if (w->next != nullptr) w->next->prev = w->prev;
  w->prev = w->next = nullptr;
  w->linked = false;
}

void Job::NotifyLocked(JobState state) {
  const bool final_state = IsFinal(state);
  JobWatch* w = watches_;
  if (final_state) watches_ = nullptr;
  while (w != nullptr) {
    JobWatch* next = w->next;
    if (final_state) {
      w->prev = w->next = nullptr;
      w->linked = false;
    }
    if (final_state || !w->final_only) w->fn(w, *this, state);
    w = next;
  }
}

void Job::Snapshot(v1::Job* out) const {
  out->set_id(attr_.id);
  out->set_name(attr_.name);
  out->set_kind(std::string(attr_.kind));
  ToProto(attr_.created_at, out->mutable_created_at());
  ToProto(attr_.scheduled_at, out->mutable_scheduled_at());
  out->set_shield(attr_.shield);
  for (const auto& l : attr_.limits) out->add_limits(l->name());
  out->set_group_id(attr_.group_id);
  for (const JobPtr& c : children_) out->add_children(c->id());
  absl::MutexLock lock(&mu_);
  OutcomeLocked(out, /*decided=*/false);
  out->set_cancel_requested(cancel_requested_);
}

void Job::SnapshotDecided(v1::Job* out) const {
  absl::MutexLock lock(&mu_);
  OutcomeLocked(out, /*decided=*/true);
}

void Job::OutcomeLocked(v1::Job* out, bool decided) const {
  const JobState s =
      decided ? decided_ : state_.load(std::memory_order_relaxed);
  out->set_state(ToProto(s));
  if (IsFinal(s)) {
    if (result_ != nullptr) *out->mutable_result() = *result_;
    if (error_ != nullptr) *out->mutable_error() = *error_;
    ToProto(finished_at_, out->mutable_finished_at());
  }
  // A run decided but not published yet does not show (its start time, the
  // attempt it counts).
  const bool unpublished_run =
      s <= JobState::kPending && started_.load(std::memory_order_relaxed);
  if (started_at_ != absl::Time() && !unpublished_run)
    ToProto(started_at_, out->mutable_started_at());
  out->set_attempt(attempt_ - (unpublished_run ? 1 : 0));
}

absl::Duration Job::run_time() const {
  absl::MutexLock lock(&mu_);
  if (started_at_ == absl::Time() || finished_at_ == absl::Time()) {
    return absl::ZeroDuration();
  }
  return finished_at_ - started_at_;
}

absl::Time Job::finished_at() const {
  absl::MutexLock lock(&mu_);
  return finished_at_;
}

}  // namespace awaitd::server
