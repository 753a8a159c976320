// How jobs look to people: the job table, one job in detail, and event
// lines (watch, --events).
//
// The job table's columns are ID NAME KIND STATE TOOK RESULT: the one column
// of unbounded width comes last, so it never pushes the others apart. TOOK
// is started_at to finished_at; RESULT holds a failed job's error (as
// gather(return_exceptions=True) returns it), coloured as its state.
//
// Thread safety: functions are pure; an EventPrinter is externally
// synchronized.
#ifndef AWAITD_CLIENT_AWAITCTL_VIEWS_H_
#define AWAITD_CLIENT_AWAITCTL_VIEWS_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "awaitd/v1/jobs.pb.h"
#include "client/awaitctl/output.h"
#include "client/awaitctl/table.h"
#include "google/protobuf/struct.pb.h"

namespace awaitd::awaitctl {

// A table of more rows than this shows the first kHeadRows and a note (all
// of them: --json, or `awaitctl get`).
inline constexpr std::size_t kMaxTableRows = 20;
inline constexpr std::size_t kHeadRows = 10;

// A header row then one row per job (cut as above unless `all_rows`).
Table JobTable(std::span<const v1::Job> jobs, bool all_rows = false);
// The same table's rows under an existing header (for sectioned tables);
// returns how many were left out.
std::size_t AddJobRows(Table& table, std::span<const v1::Job> jobs,
                       bool all_rows = false);
// The job table's headers.
std::vector<std::string> JobHeaders();

// Every field of one job, one per line.
std::string JobDetail(const v1::Job& job, const Output& out);

// One line per state change:
//   +1.002s  2  Job-2  factorial  succeeded  2
//   2026-11-23T10:00:01.002Z  3  Job-3  fail  failed  ValueError: boom
// with columns as wide as the widest job it was told about (Learn).
class EventPrinter {
 public:
  enum class Clock {
    kElapsed,    // time since `start`, "+1.002s"
    kTimestamp,  // the event's own time, RFC 3339
  };
  EventPrinter(Clock clock, absl::Time start) : clock_(clock), start_(start) {}

  // Widens the columns to fit this job.
  void Learn(std::uint64_t id, std::string_view name, std::string_view kind);
  // The line for `event` (ended by '\n'), observed at `seen`; `result` is
  // the job's result for a SUCCEEDED event, if known.
  std::string Format(const v1::WatchResponse& event, absl::Time seen,
                     const google::protobuf::Value* result,
                     const Output& out) const;

 private:
  Clock clock_;
  absl::Time start_;
  std::size_t id_width_ = 0;
  std::size_t name_width_ = 0;
  std::size_t kind_width_ = 0;
};

}  // namespace awaitd::awaitctl

#endif  // AWAITD_CLIENT_AWAITCTL_VIEWS_H_
