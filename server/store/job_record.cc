#include "server/store/job_record.h"

#include <utility>

namespace awaitd::server {

namespace {

void PutHeader(const RecordHeader& h, StoredJob* r) {
  r->set_id(h.id);
  r->set_name(h.name.data(), h.name.size());
  r->set_group_id(h.group_id);
  ToProto(h.created_at, r->mutable_created_at());
  ToProto(h.scheduled_at, r->mutable_scheduled_at());
}

}  // namespace

StoredJob LeafRecord(const RecordHeader& header, const v1::JobSpec& spec) {
  StoredJob r;
  PutHeader(header, &r);
  r.set_type(StoredJob::LEAF);
  *r.mutable_spec() = spec;
  return r;
}

StoredJob GroupRecord(const RecordHeader& header, bool gather,
                      bool return_exceptions,
                      std::span<const std::uint64_t> children) {
  StoredJob r;
  PutHeader(header, &r);
  r.set_type(gather ? StoredJob::GATHER : StoredJob::TASK_GROUP);
  r.set_return_exceptions(return_exceptions);
  r.mutable_children()->Reserve(static_cast<int>(children.size()));
  for (std::uint64_t c : children) r.add_children(c);
  return r;
}

StoredState StateRecord(v1::Job& snapshot, bool forgotten) {
  StoredState st;
  st.set_state(snapshot.state());
  st.set_attempt(snapshot.attempt());
  if (snapshot.has_started_at())
    *st.mutable_started_at() = snapshot.started_at();
  if (snapshot.has_finished_at())
    *st.mutable_finished_at() = snapshot.finished_at();
  if (snapshot.has_result())
    st.mutable_result()->Swap(snapshot.mutable_result());
  if (snapshot.has_error()) st.mutable_error()->Swap(snapshot.mutable_error());
  st.set_forgotten(forgotten);
  return st;
}

StoredOutcome TakeOutcome(StoredJob& r) {
  StoredOutcome o;
  o.state = r.state();
  o.attempt = r.attempt();
  o.started_at = FromProto(r.started_at());
  o.finished_at = FromProto(r.finished_at());
  if (r.has_result()) {
    o.result = std::make_unique<google::protobuf::Value>(
        std::move(*r.mutable_result()));
  }
  if (r.has_error()) {
    o.error = std::make_unique<v1::JobError>(std::move(*r.mutable_error()));
  }
  return o;
}

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  const absl::Duration since = t - absl::UnixEpoch();
  const std::int64_t s = absl::ToInt64Seconds(since);
  out->set_seconds(s);
  out->set_nanos(static_cast<std::int32_t>(
      absl::ToInt64Nanoseconds(since - absl::Seconds(s))));
}

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

}  // namespace awaitd::server
