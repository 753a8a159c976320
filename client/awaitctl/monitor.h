// Monitor: follows the jobs of a long wait while the call runs, for a
// "done/total" progress line on stderr (terminals only) and, with --events,
// one stdout line per state change, timed from the command's start (with
// --json: one WatchResponse object per line, as `watch --json` prints).
//
// It watches the jobs (Watch) on its own thread; if the daemon refuses the
// watch it polls Get every 200 ms instead. The ids come at once (Follow) or
// from a group job whose children it looks up (GroupSink, for on_group).
// Stop(settle=true) is called once the call returned: it waits (briefly)
// until it has reported every job the daemon then shows as done, so event
// lines never lag behind the result printed after them, and clears the
// progress line.
//
//   Monitor monitor(client, out, {.progress = true, .label = "gather"});
//   options.on_group = monitor.GroupSink();
//   auto result = client.Gather(inputs, options);
//   monitor.Stop(/*settle=*/true);
//
// Thread safety: Follow, GroupSink's function and SetTotal may be called
// from any thread; Stop from the owning thread.
#ifndef AWAITD_CLIENT_AWAITCTL_MONITOR_H_
#define AWAITD_CLIENT_AWAITCTL_MONITOR_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "client/awaitctl/output.h"
#include "client/awaitctl/views.h"
#include "client/client.h"

namespace awaitd::awaitctl {

class Monitor {
 public:
  struct Options {
    bool progress = false;  // draw "done/total" (Output drops it off TTYs)
    bool events = false;    // print each state change on stdout
    absl::Time start = absl::Now();  // of the command
    std::string label;               // the progress line's first word
  };

  // Starts the monitor's thread when there is something to show.
  Monitor(client::Client& client, Output& out, Options options);
  ~Monitor();  // Stop(/*settle=*/false)
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  // The number of jobs, for the progress line before their ids are known.
  void SetTotal(std::size_t total);
  // Follows these jobs (their ids, once; later calls add more).
  void Follow(std::vector<std::uint64_t> ids);
  // A function that follows the children of a group job, for
  // GatherOptions::on_group; it never blocks and may outlive the Monitor.
  std::function<void(std::uint64_t)> GroupSink();

  // Stops following. With `settle`, first waits (at most ~1 s) for the
  // state changes of jobs that are already done to be reported, and
  // reports any still missing from a last snapshot.
  void Stop(bool settle);

  struct Shared;

 private:
  struct Seen {
    int rank = 0;  // 1 pending, 2 running, 3 done
  };

  void Loop();
  // Starts watching `ids` (or polling, if the watch fails).
  void StartFollowing(std::vector<std::uint64_t> ids);
  // Reports the events in `events` that advance a job's state.
  void Report(std::vector<std::pair<v1::WatchResponse, absl::Time>> events);
  // Reports what a Get of every followed job shows (polling, settling).
  void ReportSnapshot();
  void DrawProgress();

  client::Client& client_;
  Output& out_;
  const Options options_;
  std::shared_ptr<Shared> shared_;
  std::thread thread_;

  // Owned by the monitor's thread.
  std::vector<std::uint64_t> ids_;
  std::map<std::uint64_t, Seen> seen_;
  std::size_t done_ = 0;
  std::size_t running_ = 0;
  bool polling_ = false;
  client::CallHandle watch_;
  EventPrinter printer_;
};

}  // namespace awaitd::awaitctl

#endif  // AWAITD_CLIENT_AWAITCTL_MONITOR_H_
