// The example programs of the course notes (../shared/seeds/*.txt), run on
// awaitd: each test reproduces one program and expects the output the notes
// print, in the same order. print() becomes a line captured in a Lines.
//
// asyncio runs them on one event loop, so they run here on a one-worker
// runtime; time_scale makes their seconds milliseconds (0.01: a Sleep(1s)
// takes 10 ms). Times are checked as virtual seconds and only as lower
// bounds (timers never fire early); concurrency is shown by order, never by
// an upper bound on elapsed time.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/combinators.h"
#include "runtime/errors.h"
#include "runtime/join_handle.h"
#include "runtime/queue.h"
#include "runtime/runtime.h"
#include "runtime/semaphore.h"
#include "runtime/time.h"
#include "tests/runtime/contract_test_util.h"

namespace awaitd::runtime {
namespace {

using namespace std::chrono_literals;
using contract_test::BlockOnWithin;
using contract_test::Lines;
using contract_test::Stopwatch;

constexpr double kScale = 0.01;
using Strings = std::vector<std::string>;

// Virtual seconds elapsed since `clock` started.
double VirtualSeconds(const Stopwatch& clock) {
  return std::chrono::duration<double>(clock.Elapsed()).count() / kScale;
}

RuntimeOptions OneLoop() { return {.workers = 1, .time_scale = kScale}; }

// async def factorial(name, number):
//     f = 1
//     for i in range(2, number + 1):
//         print(f"Task {name}: Compute factorial({i})...")
//         await asyncio.sleep(1)
//         f *= i
//     print(f"Task {name}: factorial({number}) = {f}")
//     return f
Task<long> Factorial(std::string name, int number, Lines* out) {
  long f = 1;
  for (int i = 2; i <= number; ++i) {
    out->Add("Task " + name + ": Compute factorial(" + std::to_string(i) +
             ")...");
    co_await Sleep(1s);
    f *= i;
  }
  out->Add("Task " + name + ": factorial(" + std::to_string(number) +
           ") = " + std::to_string(f));
  co_return f;
}

TEST(SeedsExamplesTest, FactorialRunsItsStepsInSequence) {
  Runtime rt(OneLoop());
  Lines out;
  Stopwatch clock;
  EXPECT_EQ(BlockOnWithin(rt, Factorial("A", 4, &out)), 24);
  EXPECT_EQ(out.Get(), (Strings{"Task A: Compute factorial(2)...",
                                "Task A: Compute factorial(3)...",
                                "Task A: Compute factorial(4)...",
                                "Task A: factorial(4) = 24"}));
  EXPECT_GE(VirtualSeconds(clock), 3.0);
}

// await asyncio.gather(factorial("A", 2), factorial("B", 3), factorial("C", 4))
Task<std::vector<long>> GatherFactorials(
    std::vector<std::pair<std::string, int>> jobs, Lines* out) {
  std::vector<JoinHandle<long>> hs;
  for (auto& [name, n] : jobs) hs.push_back(Spawn(Factorial(name, n, out)));
  co_return co_await Gather(std::move(hs));
}

TEST(SeedsExamplesTest, FactorialGatherInterleavesStepsAndKeepsInputOrder) {
  Runtime rt(OneLoop());
  Lines out;
  std::vector<long> results =
      BlockOnWithin(rt, GatherFactorials({{"A", 2}, {"B", 3}, {"C", 4}}, &out));
  EXPECT_EQ(results, (std::vector<long>{2, 6, 24}));
  // The "Expected output" of the notes.
  EXPECT_EQ(out.Get(), (Strings{
                           "Task A: Compute factorial(2)...",
                           "Task B: Compute factorial(2)...",
                           "Task C: Compute factorial(2)...",
                           "Task A: factorial(2) = 2",
                           "Task B: Compute factorial(3)...",
                           "Task C: Compute factorial(3)...",
                           "Task B: factorial(3) = 6",
                           "Task C: Compute factorial(4)...",
                           "Task C: factorial(4) = 24",
                       }));
}

TEST(SeedsExamplesTest, FactorialGatherResultsComeInRequestOrder) {
  Runtime rt(OneLoop());
  Lines out;
  // "в примере результат всегда будет [24, 6, 2]": C finishes first, A last.
  std::vector<long> results =
      BlockOnWithin(rt, GatherFactorials({{"A", 4}, {"B", 3}, {"C", 2}}, &out));
  EXPECT_EQ(results, (std::vector<long>{24, 6, 2}));
  EXPECT_EQ(out.Get(), (Strings{
                           "Task A: Compute factorial(2)...",
                           "Task B: Compute factorial(2)...",
                           "Task C: Compute factorial(2)...",
                           "Task A: Compute factorial(3)...",
                           "Task B: Compute factorial(3)...",
                           "Task C: factorial(2) = 2",
                           "Task A: Compute factorial(4)...",
                           "Task B: factorial(3) = 6",
                           "Task A: factorial(4) = 24",
                       }));
}

// async def say_after(delay, what):
//     await asyncio.sleep(delay)
//     print(what)
Task<void> SayAfter(std::chrono::seconds delay, std::string what, Lines* out,
                    std::atomic<double>* sleep_started_at,
                    const Stopwatch* clock) {
  if (sleep_started_at != nullptr)
    sleep_started_at->store(VirtualSeconds(*clock));
  co_await Sleep(delay);
  out->Add(what);
}

// main() awaiting say_after(1, 'hello,') then say_after(2, 'world').
Task<double> SayInSequence(Lines* out) {
  Stopwatch clock;
  out->Add("started");
  co_await SayAfter(1s, "hello,", out, nullptr, &clock);
  co_await SayAfter(2s, "world", out, nullptr, &clock);
  out->Add("finished");
  co_return VirtualSeconds(clock);
}

TEST(SeedsExamplesTest, SayAfterAwaitedInSequenceTakesThreeSeconds) {
  Runtime rt(OneLoop());
  Lines out;
  EXPECT_GE(BlockOnWithin(rt, SayInSequence(&out)), 3.0);
  EXPECT_EQ(out.Get(), (Strings{"started", "hello,", "world", "finished"}));
}

struct SayTimes {
  std::atomic<double> world_sleep_started{-1};
  double hello_printed = -1;
  double finished = -1;
};

// task1 = create_task(say_after(1, 'hello,')); task2 = create_task(say_after(2,
// 'world')) print("started at"); await task1; await task2; print("finished at")
Task<void> SayWithCreateTask(Lines* out, SayTimes* times) {
  Stopwatch clock;
  JoinHandle<void> task1 = Spawn(SayAfter(1s, "hello,", out, nullptr, &clock));
  JoinHandle<void> task2 =
      Spawn(SayAfter(2s, "world", out, &times->world_sleep_started, &clock));
  out->Add("started");
  co_await task1;
  times->hello_printed = VirtualSeconds(clock);
  co_await task2;
  out->Add("finished");
  times->finished = VirtualSeconds(clock);
}

TEST(SeedsExamplesTest, SayAfterWithCreateTaskRunsBothSleepsConcurrently) {
  Runtime rt(OneLoop());
  Lines out;
  SayTimes times;
  BlockOnWithin(rt, SayWithCreateTask(&out, &times));
  EXPECT_EQ(out.Get(), (Strings{"started", "hello,", "world", "finished"}));
  // "должно пройти около 2 секунд": the 2 s sleep began before the 1 s one
  // ended, so both ran at once.
  EXPECT_GE(times.world_sleep_started.load(), 0.0);
  EXPECT_LT(times.world_sleep_started.load(), times.hello_printed);
  EXPECT_GE(times.finished, 2.0);
}

Task<int> Nested() { co_return 42; }

Task<void> PrintNested(Lines* out) {
  Task<int> never_awaited = Nested();  // "ничего не произойдет"
  (void)never_awaited;
  out->Add(std::to_string(co_await Nested()));
}

TEST(SeedsExamplesTest, CoroutineRunsOnlyWhenAwaited) {
  Runtime rt(OneLoop());
  Lines out;
  BlockOnWithin(rt, PrintNested(&out));
  EXPECT_EQ(out.Get(), (Strings{"42"}));
}

// async def async_func(task_no): print(f'{task_no}: Запуск ...');
//     await asyncio.sleep(1); print(f'{task_no}: ... Готово!')
// await asyncio.wait([taskA, taskB, taskC])
Task<void> AsyncFunc(std::string task_no, Lines* out) {
  out->Add(task_no + ": Запуск ...");
  co_await Sleep(1s);
  out->Add(task_no + ": ... Готово!");
}

Task<void> WaitThree(Lines* out) {
  std::vector<JoinHandle<void>> tasks;
  for (const char* name : {"taskA", "taskB", "taskC"})
    tasks.push_back(Spawn(AsyncFunc(name, out)));
  WaitResult r = co_await Wait(tasks);
  EXPECT_EQ(r.done.size(), 3u);
}

TEST(SeedsExamplesTest, WaitedTasksStartThenFinishInOrder) {
  Runtime rt(OneLoop());
  Lines out;
  BlockOnWithin(rt, WaitThree(&out));
  EXPECT_EQ(out.Get(), (Strings{"taskA: Запуск ...", "taskB: Запуск ...",
                                "taskC: Запуск ...", "taskA: ... Готово!",
                                "taskB: ... Готово!", "taskC: ... Готово!"}));
}

Task<std::string> MyFunction() { co_return "Hello World!"; }

// task = create_task(my_function()); print(task.done()); await task;
// print(task.done()); print(task.result())
Task<void> DoneThenResult(Lines* out) {
  JoinHandle<std::string> task = Spawn(MyFunction());
  out->Add(task.IsFinished() ? "True" : "False");
  std::string result = co_await task;
  out->Add(task.IsFinished() ? "True" : "False");
  out->Add(result);
}

TEST(SeedsExamplesTest, TaskDoneIsFalseUntilAwaitedThenResult) {
  Runtime rt(OneLoop());
  Lines out;
  BlockOnWithin(rt, DoneThenResult(&out));
  EXPECT_EQ(out.Get(), (Strings{"False", "True", "Hello World!"}));
}

// tasks = [create_task(job(), name=index) for index in range(1, 5)]
// done, pending = await asyncio.wait(tasks, return_when=FIRST_COMPLETED)
// print(f'The first task completed was {done.pop().get_name()}')
Task<void> Job(std::chrono::seconds d) { co_await Sleep(d); }

Task<void> FirstCompleted(Lines* out) {
  std::vector<JoinHandle<void>> tasks;
  const std::vector<int> seconds = {3, 1, 4, 2};  // random.randint(1, 5), fixed
  for (int s : seconds) tasks.push_back(Spawn(Job(std::chrono::seconds(s))));
  WaitResult r = co_await Wait(tasks, ReturnWhen::kFirstCompleted);
  // Names are 1..4: index + 1.
  out->Add("The first task completed was " +
           std::to_string(r.done.front() + 1));
  EXPECT_FALSE(r.pending.empty());
  for (auto& t : tasks) t.Cancel();
  for (auto& t : tasks) {
    try {
      co_await t;
    } catch (const CancelledError&) {
    }
  }
}

TEST(SeedsExamplesTest, WaitFirstCompletedNamesTheQuickestJob) {
  Runtime rt(OneLoop());
  Lines out;
  BlockOnWithin(rt, FirstCompleted(&out));
  EXPECT_EQ(out.Get(), (Strings{"The first task completed was 2"}));
}

// async def slow_function(): await asyncio.sleep(100)
// try: await asyncio.wait_for(slow_function(), timeout=5.0)
// except TimeoutError: print('Function was too slow :(')
Task<void> SlowFunction() { co_await Sleep(100s); }

Task<bool> WaitForSlowFunction(Lines* out) {
  JoinHandle<void> h = Spawn(SlowFunction());
  try {
    co_await WaitFor(h, 5s);
    out->Add("Function finished");
  } catch (const TimeoutError&) {
    out->Add("Function was too slow :(");
  }
  co_return h.Cancelled();
}

TEST(SeedsExamplesTest, WaitForSlowFunctionTimesOut) {
  Runtime rt(OneLoop());
  Lines out;
  Stopwatch clock;
  EXPECT_TRUE(
      BlockOnWithin(rt, WaitForSlowFunction(&out)));  // wait_for cancelled it
  EXPECT_EQ(out.Get(), (Strings{"Function was too slow :("}));
  EXPECT_GE(VirtualSeconds(clock), 5.0);
}

// async def job(id): print(f'Starting job {id}'); await
// asyncio.sleep(random...);
//     print(f'Finished job {id}'); return id
// results = await asyncio.gather(*[job(i) for i in range(4)]); print(f'Results:
// {results}')
Task<int> NumberedJob(int id, std::chrono::seconds d, Lines* out) {
  out->Add("Starting job " + std::to_string(id));
  co_await Sleep(d);
  out->Add("Finished job " + std::to_string(id));
  co_return id;
}

Task<void> GatherJobs(Lines* out) {
  const std::vector<int> seconds = {
      3, 1, 2, 4};  // random.randint(1, 3), fixed and distinct
  std::vector<JoinHandle<int>> hs;
  for (int i = 0; i < 4; ++i)
    hs.push_back(Spawn(NumberedJob(i, std::chrono::seconds(seconds[i]), out)));
  std::vector<int> results = co_await Gather(std::move(hs));
  std::string line = "Results: [";
  for (std::size_t i = 0; i < results.size(); ++i) {
    line += (i ? ", " : "") + std::to_string(results[i]);
  }
  out->Add(line + "]");
}

TEST(SeedsExamplesTest, GatherJobsFinishByDurationButResultsKeepOrder) {
  Runtime rt(OneLoop());
  Lines out;
  BlockOnWithin(rt, GatherJobs(&out));
  EXPECT_EQ(
      out.Get(),
      (Strings{"Starting job 0", "Starting job 1", "Starting job 2",
               "Starting job 3", "Finished job 1", "Finished job 2",
               "Finished job 0", "Finished job 3", "Results: [0, 1, 2, 3]"}));
}

// async def my_task(id): return f'I am number {id}'
// for coro in asyncio.as_completed([my_task(id) for id in range(5)]):
// print(await coro)
Task<std::string> MyTask(int id) {
  co_return "I am number " + std::to_string(id);
}

Task<void> PrintAsCompleted(Lines* out) {
  std::vector<JoinHandle<std::string>> tasks;
  for (int id = 0; id < 5; ++id) tasks.push_back(Spawn(MyTask(id)));
  AsCompleted ac(tasks);
  while (std::optional<std::size_t> i = co_await ac.Next())
    out->Add(co_await tasks[*i]);
}

TEST(SeedsExamplesTest, AsCompletedPrintsEachResult) {
  Runtime rt(OneLoop());
  Lines out;
  BlockOnWithin(rt, PrintAsCompleted(&out));
  // On one loop they finish in the order they were scheduled.
  EXPECT_EQ(out.Get(),
            (Strings{"I am number 0", "I am number 1", "I am number 2",
                     "I am number 3", "I am number 4"}));
}

// async with asyncio.TaskGroup() as tg:
//     task1 = tg.create_task(do_something()); task2 =
//     tg.create_task(do_something_else())
// print(f'Everything done: {task1.result()}, {task2.result()}')
Task<int> DoSomething() { co_return 1; }
Task<int> DoSomethingElse() { co_return 2; }

Task<void> TaskGroupExample(Lines* out) {
  TaskGroup tg;
  JoinHandle<int> task1 = tg.Spawn(DoSomething());
  JoinHandle<int> task2 = tg.Spawn(DoSomethingElse());
  co_await tg.Join();
  const int r1 = co_await task1;
  const int r2 = co_await task2;
  out->Add("Everything done: " + std::to_string(r1) + ", " +
           std::to_string(r2));
}

TEST(SeedsExamplesTest, TaskGroupReportsEverythingDone) {
  Runtime rt(OneLoop());
  Lines out;
  BlockOnWithin(rt, TaskGroupExample(&out));
  EXPECT_EQ(out.Get(), (Strings{"Everything done: 1, 2"}));
}

// main(): print('main coroutine started');
//   started_tasks = [create_task(task_coroutine(i)) for i in range(10)]
//   await asyncio.sleep(0.1); tasks = asyncio.all_tasks(); ...; await each
Task<void> TaskCoroutine(int value, Lines* out) {
  out->Add("task " + std::to_string(value) + " is running");
  co_await Sleep(1s);
}

Task<std::uint64_t> AllTasksExample(Runtime* rt, Lines* out) {
  out->Add("main coroutine started");
  std::vector<JoinHandle<void>> started;
  for (int i = 0; i < 10; ++i) started.push_back(Spawn(TaskCoroutine(i, out)));
  co_await Sleep(100ms);
  const std::uint64_t alive = rt->TasksAlive();  // len(all_tasks()): main + 10
  for (auto& t : started) co_await t;
  co_return alive;
}

TEST(SeedsExamplesTest, AllTasksListsMainAndItsTenTasks) {
  Runtime rt(OneLoop());
  Lines out;
  EXPECT_EQ(BlockOnWithin(rt, AllTasksExample(&rt, &out)), 11u);
  Strings expected = {"main coroutine started"};
  for (int i = 0; i < 10; ++i)
    expected.push_back("task " + std::to_string(i) + " is running");
  EXPECT_EQ(out.Get(), expected);
}

// sem = asyncio.Semaphore(10)
// async def fetch(url):
//     async with sem: return await do_io(url)      # at most 10 at a time
// await asyncio.gather(*(fetch(u) for u in urls))
struct Concurrency {
  std::atomic<int> now{0};
  std::atomic<int> max{0};
};

Task<int> Fetch(int url, Semaphore* sem, Concurrency* c) {
  PermitGuard permit = co_await sem->Hold();
  const int n = c->now.fetch_add(1) + 1;
  int seen = c->max.load();
  while (n > seen && !c->max.compare_exchange_weak(seen, n)) {
  }
  co_await Sleep(1s);  // do_io(url)
  c->now.fetch_sub(1);
  co_return url;
}

Task<std::vector<int>> FetchAll(int n, Semaphore* sem, Concurrency* c) {
  std::vector<JoinHandle<int>> hs;
  for (int url = 0; url < n; ++url) hs.push_back(Spawn(Fetch(url, sem, c)));
  co_return co_await Gather(std::move(hs));
}

TEST(SeedsExamplesTest, ThousandFetchesGatheredWithSemaphoreOfTen) {
  // The limit matters most with several event loops.
  Runtime rt({.workers = 2, .time_scale = 0.001});  // do_io: 1 ms
  Semaphore sem(10);
  Concurrency c;
  std::vector<int> results = BlockOnWithin(rt, FetchAll(1000, &sem, &c));
  ASSERT_EQ(results.size(), 1000u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(results[i], i);
  EXPECT_LE(c.max.load(), 10);
  EXPECT_GE(c.max.load(), 2);  // and they did overlap
  EXPECT_EQ(sem.Value(), 10u);
}

// async def worker(name, q):
//     while True:
//         url = await q.get()
//         try: await fetch(url)
//         finally: q.task_done()
// for u in urls: q.put_nowait(u)
// workers = [create_task(worker(i, q)) for i in range(5)]
// await q.join(); for w in workers: w.cancel()
Task<void> QueueWorker(Queue<int>* q, std::vector<std::atomic<int>>* fetched) {
  for (;;) {
    int url = co_await q->Get();
    co_await Sleep(10ms);  // fetch(url)
    (*fetched)[url].fetch_add(1);
    q->TaskDone();
  }
}

Task<int> WorkerPool(int n_urls, std::vector<std::atomic<int>>* fetched) {
  Queue<int> q;
  for (int u = 0; u < n_urls; ++u) EXPECT_TRUE(q.TryPut(u));
  std::vector<JoinHandle<void>> workers;
  for (int i = 0; i < 5; ++i)
    workers.push_back(Spawn(QueueWorker(&q, fetched)));
  co_await q.Join();
  for (auto& w : workers) w.Cancel();
  int cancelled = 0;
  for (auto& w : workers) {
    try {
      co_await w;
    } catch (const CancelledError&) {
      ++cancelled;
    }
  }
  co_return cancelled;
}

TEST(SeedsExamplesTest, WorkerPoolOverQueueFetchesEveryUrlOnce) {
  Runtime rt({.workers = 2, .time_scale = kScale});
  constexpr int kUrls = 100;
  std::vector<std::atomic<int>> fetched(kUrls);
  EXPECT_EQ(BlockOnWithin(rt, WorkerPool(kUrls, &fetched)),
            5);  // every worker cancelled
  for (int u = 0; u < kUrls; ++u)
    EXPECT_EQ(fetched[u].load(), 1) << "url " << u;
}

}  // namespace
}  // namespace awaitd::runtime
