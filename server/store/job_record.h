// The mapping between a job and its stored records, both ways, in one place:
// what Submit and a group's start store (StoredJob), what each state change
// stores (StoredState), and what recovery reads back (RecordTime,
// TakeOutcome). The records are defined in awaitd_store.proto.
//
//   JobStore::Batch batch;
//   batch.PutJob(LeafRecord({.id = 7, .name = "Job-7", ...}, spec));
//   batch.PutState(7, StateRecord(std::move(snapshot), /*forgotten=*/false));
//   ...
//   StoredOutcome o = TakeOutcome(record);   // at recovery
//
// The jobs side (server/jobs/) passes plain values and v1 snapshots, so this
// folder needs nothing of it.
//
// Thread safety: pure functions.
#ifndef AWAITD_SERVER_STORE_JOB_RECORD_H_
#define AWAITD_SERVER_STORE_JOB_RECORD_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "absl/time/time.h"
#include "awaitd/v1/jobs.pb.h"
#include "awaitd_store.pb.h"  // server/store/awaitd_store.proto
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace awaitd::server {

using StoredJob = store::v1::StoredJob;
using StoredState = store::v1::StoredState;
using StoredLimit = store::v1::StoredLimit;

// What every job's record starts with.
struct RecordHeader {
  std::uint64_t id = 0;
  std::string_view name;
  std::uint64_t group_id = 0;  // the group that created it, if any
  absl::Time created_at;
  absl::Time scheduled_at;
};

// A leaf job as accepted, with its spec.
StoredJob LeafRecord(const RecordHeader& header, const v1::JobSpec& spec);

// A Gather (`gather`) or a TaskGroup, with its children's ids in input order.
StoredJob GroupRecord(const RecordHeader& header, bool gather,
                      bool return_exceptions,
                      std::span<const std::uint64_t> children);

// A job's latest state from its snapshot; the result and error are moved
// out of `snapshot`. `forgotten`: see StoredState.forgotten.
StoredState StateRecord(v1::Job& snapshot, bool forgotten);

// A stored final state and outcome, moved out of `record` for Job::Restore.
struct StoredOutcome {
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
  std::uint32_t attempt = 0;
  absl::Time started_at;
  absl::Time finished_at;
  std::unique_ptr<google::protobuf::Value> result;  // null unless stored
  std::unique_ptr<v1::JobError> error;              // null unless stored
};
StoredOutcome TakeOutcome(StoredJob& record);

// Timestamps, both ways (the API's snapshots use them too).
void ToProto(absl::Time t, google::protobuf::Timestamp* out);
absl::Time FromProto(const google::protobuf::Timestamp& t);

}  // namespace awaitd::server

#endif  // AWAITD_SERVER_STORE_JOB_RECORD_H_
