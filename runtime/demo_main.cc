// awaitd_demo: runs the course's factorial example on the runtime and prints
// what happened, including the scheduler's counters. `make run` starts this
// until the daemon exists.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "runtime/runtime.h"
#include "runtime/time.h"
#include "runtime/to_thread.h"

namespace {

using awaitd::runtime::JoinHandle;
using awaitd::runtime::Runtime;
using awaitd::runtime::Sleep;
using awaitd::runtime::Task;
using awaitd::runtime::ToThread;

Task<long> Factorial(std::string name, long number) {
  long f = 1;
  for (long i = 2; i <= number; ++i) {
    std::printf("Task %s: Compute factorial(%ld), currently i=%ld...\n",
                name.c_str(), number, i);
    co_await Sleep(std::chrono::milliseconds(100));
    f *= i;
  }
  std::printf("Task %s: factorial(%ld) = %ld\n", name.c_str(), number, f);
  co_return f;
}

Task<int> Main() {
  std::vector<JoinHandle<long>> hs;
  hs.push_back(Spawn(Factorial("A", 2)));
  hs.push_back(Spawn(Factorial("B", 3)));
  hs.push_back(Spawn(Factorial("C", 4)));
  std::vector<long> results;
  for (auto& h : hs) results.push_back(co_await h);
  std::printf("results in input order:");
  for (long r : results) std::printf(" %ld", r);
  std::printf("\n");
  // Blocking work goes to the blocking pool, not an event loop.
  auto tid = co_await ToThread([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return std::hash<std::thread::id>{}(std::this_thread::get_id());
  });
  std::printf("to_thread ran on a pool thread (id hash %zu)\n", tid);
  co_return 0;
}

}  // namespace

int main() {
  Runtime rt;
  int rc = rt.BlockOn(Main());
  auto m = rt.Metrics();
  std::printf("workers=%zu spawned=%llu blocking_threads=%llu\n",
              m.workers.size(),
              static_cast<unsigned long long>(m.tasks_spawned),
              static_cast<unsigned long long>(m.blocking.threads));
  for (std::size_t i = 0; i < m.workers.size(); ++i) {
    std::printf(
        "  worker %zu: tasks_run=%llu steals=%llu parks=%llu "
        "timers_fired=%llu\n",
        i, static_cast<unsigned long long>(m.workers[i].tasks_run),
        static_cast<unsigned long long>(m.workers[i].steal_operations),
        static_cast<unsigned long long>(m.workers[i].parks),
        static_cast<unsigned long long>(m.workers[i].timers_fired));
  }
  return rc;
}
