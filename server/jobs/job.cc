#include "server/jobs/job.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/internal/context.h"
#include "runtime/internal/task_header.h"
#include "server/jobs/limits.h"

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

namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

// Depths with the container at `level`; the recursion stops one level past
// `limit`, so it is bounded by the limit, whatever the value's shape. The
// path to the first container past the limit is built on the way back up.
int ValueDepthAt(const Value& v, int level, int limit, std::string* path);

int StructDepthAt(const Struct& s, int level, int limit, std::string* path) {
  if (level > limit) return level;
  int max = level;
  for (const auto& [key, v] : s.fields()) {
    const int d = ValueDepthAt(v, level, limit, path);
    if (d > limit) {
      if (path != nullptr) path->insert(0, absl::StrCat(".", key));
      return d;
    }
    max = std::max(max, d);
  }
  return max;
}

int ListDepthAt(const ListValue& l, int level, int limit, std::string* path) {
  if (level > limit) return level;
  int max = level;
  for (int i = 0; i < l.values_size(); ++i) {
    const int d = ValueDepthAt(l.values(i), level, limit, path);
    if (d > limit) {
      if (path != nullptr) path->insert(0, absl::StrCat("[", i, "]"));
      return d;
    }
    max = std::max(max, d);
  }
  return max;
}

int ValueDepthAt(const Value& v, int level, int limit, std::string* path) {
  switch (v.kind_case()) {
    case Value::kStructValue:
      return StructDepthAt(v.struct_value(), level + 1, limit, path);
    case Value::kListValue:
      return ListDepthAt(v.list_value(), level + 1, limit, path);
    default:
      return level;
  }
}

constexpr std::size_t kSaturated = std::numeric_limits<std::size_t>::max() / 4;

std::size_t SaturatingAdd(std::size_t a, std::size_t b) {
  return a >= kSaturated || b >= kSaturated || a + b >= kSaturated ? kSaturated
                                                                   : a + b;
}

// Bytes of one element of a group's result list (an upper bound), at group
// depth `depth` (see Job::AppendResult): the child's result or its error
// entry (or the reference a group that deep is given), and per element what
// building it costs beyond its wire bytes. A small element is 2 bytes on
// the wire but a Value message of about 48 in memory while the reply is
// built, and the bound is on that (a gather of one big group repeated N
// times is N^2 elements: 2000 of them made 48 MB sent and 1.1 GB built).
std::size_t ElementBytes(const Job& child, int depth) {
  constexpr std::size_t kElementFraming = 48;
  constexpr std::size_t kErrorEntryFraming = 96;  // keys, job_id, framing
  constexpr std::size_t kRefBytes = 64;           // {"result_ref": ...}
  if (child.state() != JobState::kSucceeded) {
    return SaturatingAdd(child.outcome_bytes(),
                         kElementFraming + kErrorEntryFraming);
  }
  if (!child.is_group()) {
    return SaturatingAdd(child.outcome_bytes(), kElementFraming);
  }
  if (depth + 1 > kMaxInlineGroupDepth) return kElementFraming + kRefBytes;
  return SaturatingAdd(child.group_result_bytes(depth), kElementFraming);
}

// Destruction of Jobs on this thread that is in progress in an outer
// ~Job(): the children of inner ones are handed to it (see ~Job).
thread_local std::vector<JobPtr>* t_releasing = nullptr;

}  // namespace

int ValueDepth(const google::protobuf::Value& v, int limit,
               std::string* too_deep) {
  return ValueDepthAt(v, 0, limit, too_deep);
}

int StructDepth(const google::protobuf::Struct& s, int limit,
                std::string* too_deep) {
  return StructDepthAt(s, 1, limit, too_deep);
}

void AppendOutcomeValue(const Job& child, google::protobuf::Value* out,
                        int group_depth) {
  if (child.state() == JobState::kSucceeded) {
    if (child.is_group() && group_depth + 1 > kMaxInlineGroupDepth) {
      auto& ref =
          (*out->mutable_struct_value()->mutable_fields())["result_ref"];
      (*ref.mutable_struct_value()->mutable_fields())["job_id"]
          .set_number_value(static_cast<double>(child.id()));
      return;
    }
    child.AppendResult(out, group_depth);
    return;
  }
  auto& err = (*out->mutable_struct_value()->mutable_fields())["error"];
  auto& fields = *err.mutable_struct_value()->mutable_fields();
  if (child.error() != nullptr) {
    fields["type"].set_string_value(child.error()->type());
    fields["message"].set_string_value(child.error()->message());
  }
  fields["job_id"].set_number_value(static_cast<double>(child.id()));
}

Job::~Job() {
  if (children_.empty()) return;
  if (t_releasing != nullptr) {
    // An outer ~Job on this thread releases them, in its loop.
    for (JobPtr& c : children_) t_releasing->push_back(std::move(c));
    return;
  }
  std::vector<JobPtr> pending = std::move(children_);
  t_releasing = &pending;
  while (!pending.empty()) {
    JobPtr last = std::move(pending.back());
    pending.pop_back();
    last.reset();  // may append its own children to `pending`
  }
  t_releasing = nullptr;
}

void Job::AppendResult(google::protobuf::Value* out, int group_depth) const {
  if (!is_group()) {
    if (result_ != nullptr) *out = *result_;
    return;
  }
  auto* list = out->mutable_list_value();
  list->mutable_values()->Reserve(static_cast<int>(children_.size()));
  for (const JobPtr& c : children_) {
    AppendOutcomeValue(*c, list->add_values(), group_depth + 1);
  }
}

std::size_t Job::SnapshotBytes() const noexcept {
  // Ids, times, state, attempt, flags and the field tags: under 128 bytes.
  std::size_t n = 128 + attr_.name.size() + attr_.kind.size();
  for (const auto& l : attr_.limits) n += l->name().size() + 2;
  n += 11 * children_.size();
  return SaturatingAdd(n, outcome_bytes_);
}

void Job::SetOutcomeBytesLocked(JobState s) {
  if (s != JobState::kSucceeded) {
    outcome_bytes_ = error_ != nullptr ? error_->ByteSizeLong() : 0;
  } else if (!is_group()) {
    outcome_bytes_ = result_ != nullptr ? result_->ByteSizeLong() : 0;
  } else {
    // Every child is done (a group succeeds only then): their sizes are
    // final. One bound per depth this group's list may be built at: a
    // chain of 10,000 groups is inlined 8 levels deep, never 10,000.
    group_bytes_.assign(kMaxInlineGroupDepth, 0);
    for (int d = 0; d < kMaxInlineGroupDepth; ++d) {
      std::size_t n = 0;
      for (const JobPtr& c : children_) {
        n = SaturatingAdd(n, ElementBytes(*c, d + 1));
      }
      group_bytes_[static_cast<std::size_t>(d)] = n;
    }
    outcome_bytes_ = group_bytes_[0];
  }
}

std::size_t Job::group_result_bytes(int depth) const noexcept {
  if (group_bytes_.empty()) return outcome_bytes_;
  return group_bytes_[static_cast<std::size_t>(
      std::clamp(depth, 0, kMaxInlineGroupDepth - 1))];
}

bool Job::BeginCancelGroup() {
  mu_.Lock();
  if (IsFinal(decided_)) {
    mu_.Unlock();
    return false;
  }
  return true;
}

void Job::EndCancelGroup(bool record, std::string_view message) {
  if (record) {
    cancel_requested_ = true;
    cancel_message_ = std::make_unique<std::string>(message);
  }
  mu_.Unlock();
}

void Job::SetTask(runtime::JoinHandle<void> task) {
  runtime::JoinHandle<void> drop;  // released after the lock
  absl::MutexLock lock(&mu_);
  // A Cancel() that came after the body started but before the job had its
  // task could not reach it. (Before the body starts, a cancel is seen by the
  // body itself: a task cancelled before it runs never runs at all.)
  if (cancel_requested_ && body_entered_) {
    task.Cancel(*cancel_message_);
    cancel_undelivered_ = false;
  }
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
  SetOutcomeBytesLocked(state);
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
    // A Cancel() that took effect but never reached the body (undelivered:
    // it came before the job had its task's handle) counts as pending too.
    if (final_state == JobState::kSucceeded && cancel_pending != nullptr &&
        cancel_requested_ && (cancel_undelivered_ || cancel_pending(*this))) {
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
    if (task_.valid()) {
      task_.Cancel(message);
    } else if (body_entered_) {
      // The body runs, but its task's handle has not reached the job yet
      // (SetTask comes just after the spawn): SetTask delivers the cancel,
      // or, should the body return first, Finish sees it.
      cancel_undelivered_ = true;
    }
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
  SetOutcomeBytesLocked(s);
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
    // The store keeps a group's result by reference (its children), so
    // the decided view has none; the published one inlines it.
    if (s == JobState::kSucceeded && is_group()) {
      if (!decided) AppendResult(out->mutable_result());
    } else if (result_ != nullptr) {
      *out->mutable_result() = *result_;
    }
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
