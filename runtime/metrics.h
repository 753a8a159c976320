// Snapshots of the runtime's counters and gauges, for tests, logs and the
// daemon's metrics exporter. Plain values: taking a snapshot is cheap and
// thread-safe; the numbers are read with relaxed loads and so are only
// approximately simultaneous.
#ifndef AWAITD_RUNTIME_METRICS_H_
#define AWAITD_RUNTIME_METRICS_H_

#include <cstdint>
#include <vector>

namespace awaitd::runtime {

struct WorkerMetrics {
  std::uint64_t tasks_spawned = 0;     // spawned by tasks running here
  std::uint64_t tasks_completed = 0;   // finished their body here
  std::uint64_t tasks_run = 0;         // task resumptions (polls)
  std::uint64_t steal_operations = 0;  // successful steals from other workers
  std::uint64_t tasks_stolen = 0;      // tasks moved by those steals
  std::uint64_t parks = 0;             // times the worker went to sleep
  std::uint64_t overflows = 0;         // local-queue spills to the global queue
  std::uint64_t timers_fired = 0;
  std::uint64_t busy_ns = 0;  // time not parked, since start
  std::uint64_t local_queue_depth = 0;
  std::uint64_t inbox_depth = 0;
  std::uint64_t timers_pending = 0;
  std::uint64_t stalls = 0;  // tasks that ran past the stall threshold
};

struct BlockingPoolMetrics {
  std::uint64_t threads = 0;  // live pool threads
  std::uint64_t idle_threads = 0;
  std::uint64_t queued = 0;     // jobs waiting for a thread
  std::uint64_t completed = 0;  // jobs run to the end
  std::uint64_t threads_retired = 0;
};

struct RuntimeMetrics {
  std::vector<WorkerMetrics> workers;
  std::uint64_t global_queue_depth = 0;
  std::uint64_t tasks_spawned = 0;  // in total, from workers and outside
  std::uint64_t tasks_alive = 0;    // spawned and not yet finished
  std::uint64_t stalls = 0;         // sum over workers
  std::uint32_t searching_workers = 0;
  std::uint32_t unparked_workers = 0;
  BlockingPoolMetrics blocking;
};

}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_METRICS_H_
