// The asyncio Task contract (../shared/ASYNCIO_SEMANTICS.md, section 1):
// create_task, the task life cycle, Task.cancel / cancelled / result,
// shield, to_thread and current_task / all_tasks, for JoinHandle.
//
// Each test is named after the rule it checks. Coroutines are free functions
// taking their state as pointer parameters (lambda captures would dangle).
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/combinators.h"
#include "runtime/errors.h"
#include "runtime/join_handle.h"
#include "runtime/runtime.h"
#include "runtime/time.h"
#include "runtime/to_thread.h"
#include "tests/runtime/contract_test_util.h"

namespace awaitd::runtime {
namespace {

using namespace std::chrono_literals;
using contract_test::BlockOnWithin;
using contract_test::Gate;
using contract_test::Is;
using contract_test::Lines;
using contract_test::Settle;
using contract_test::SettleFromOutside;
using contract_test::Stopwatch;
using contract_test::Until;
using contract_test::WaitGate;
using contract_test::WaitUntil;
using contract_test::WhatOf;

// Longer than any test could run: a sleep that only a cancellation ends.
constexpr auto kForever = std::chrono::hours(1);

Task<int> SleepLong(Gate* started, Lines* lines) {
  started->Open();
  co_await Sleep(kForever);
  lines->Add("woke up");
  co_return 1;
}

Task<int> Return(int v) { co_return v; }

Task<int> Raise(std::string message) {
  co_await Yield();
  throw std::runtime_error(message);
}

// --- Task.cancel(msg)
// ------------------------------------------------------------

TEST(TaskCancelTest, CancelRaisesCancelledErrorAtNextSuspension) {
  Runtime rt({.workers = 2});
  Gate started;
  Lines lines;
  Stopwatch clock;
  JoinHandle<int> h = rt.Spawn(SleepLong(&started, &lines));
  ASSERT_TRUE(WaitUntil([&] { return started.IsOpen(); }));

  EXPECT_TRUE(h.Cancel());
  Outcome<int> out = SettleFromOutside(rt, &h);

  EXPECT_TRUE(out.cancelled()) << WhatOf(out.error());
  EXPECT_TRUE(h.IsFinished());
  EXPECT_TRUE(h.Cancelled());
  EXPECT_TRUE(lines.Get().empty());  // nothing ran after the sleep
  EXPECT_LT(clock.Elapsed(),
            std::chrono::minutes(1));  // far less than its hour of sleep
}

Task<std::string> CatchMessage(Gate* started) {
  started->Open();
  try {
    co_await Sleep(kForever);
  } catch (const CancelledError& e) {
    co_return std::string(e.what());
  }
  co_return "not cancelled";
}

TEST(TaskCancelTest, CancelCarriesMessage) {
  Runtime rt({.workers = 2});
  // Inside the task.
  Gate started;
  JoinHandle<std::string> catcher = rt.Spawn(CatchMessage(&started));
  ASSERT_TRUE(WaitUntil([&] { return started.IsOpen(); }));
  ASSERT_TRUE(catcher.Cancel("shutting down"));
  EXPECT_EQ(SettleFromOutside(rt, &catcher).value(), "shutting down");

  // And for whoever awaits the cancelled task.
  Gate started2;
  Lines lines;
  JoinHandle<int> sleeper = rt.Spawn(SleepLong(&started2, &lines));
  ASSERT_TRUE(WaitUntil([&] { return started2.IsOpen(); }));
  ASSERT_TRUE(sleeper.Cancel("deadline passed"));
  Outcome<int> out = SettleFromOutside(rt, &sleeper);
  ASSERT_TRUE(out.cancelled());
  EXPECT_EQ(WhatOf(out.error()), "deadline passed");
}

// Runs (without suspending) until `go` opens, then suspends in a sleep.
Task<int> SpinThenSleep(Gate* running, Gate* go, Lines* lines) {
  running->Open();
  while (!go->IsOpen()) std::this_thread::yield();
  lines->Add("still running after cancel()");
  co_await Sleep(kForever);
  lines->Add("after sleep");
  co_return 1;
}

TEST(TaskCancelTest, CancelKeepsTheLastMessage) {
  Runtime rt({.workers = 2});
  Gate running, go;
  Lines lines;
  JoinHandle<int> h = rt.Spawn(SpinThenSleep(&running, &go, &lines));
  ASSERT_TRUE(WaitUntil([&] { return running.IsOpen(); }));
  // Two requests before the task reaches its next suspension: asyncio keeps
  // the message of the last one.
  EXPECT_TRUE(h.Cancel("first"));
  EXPECT_TRUE(h.Cancel("second"));
  go.Open();
  Outcome<int> out = SettleFromOutside(rt, &h);
  EXPECT_TRUE(out.cancelled());
  EXPECT_EQ(WhatOf(out.error()), "second");
}

TEST(TaskCancelTest, CancelOnFinishedTaskReturnsFalse) {
  Runtime rt({.workers = 2});
  JoinHandle<int> ok = rt.Spawn(Return(3));
  EXPECT_EQ(SettleFromOutside(rt, &ok).value(), 3);
  EXPECT_FALSE(ok.Cancel());
  EXPECT_FALSE(ok.Cancelled());

  JoinHandle<int> failed = rt.Spawn(Raise("boom"));
  EXPECT_FALSE(SettleFromOutside(rt, &failed).ok());
  EXPECT_FALSE(failed.Cancel());
  EXPECT_FALSE(failed.Cancelled());

  Gate started;
  Lines lines;
  JoinHandle<int> cancelled = rt.Spawn(SleepLong(&started, &lines));
  ASSERT_TRUE(WaitUntil([&] { return started.IsOpen(); }));
  EXPECT_TRUE(cancelled.Cancel());
  EXPECT_TRUE(SettleFromOutside(rt, &cancelled).cancelled());
  EXPECT_FALSE(cancelled.Cancel());
  EXPECT_TRUE(cancelled.Cancelled());
}

// Catches the cancellation and returns normally.
Task<int> SuppressOnce(Gate* started) {
  started->Open();
  try {
    co_await Sleep(kForever);
  } catch (const CancelledError&) {
    co_return 42;
  }
  co_return 0;
}

TEST(TaskCancelTest, CancelledIsTrueOnlyWhenEndedByCancelledError) {
  Runtime rt({.workers = 2});
  // Cancelled, but the body caught it and returned: not cancelled().
  Gate started;
  JoinHandle<int> suppressed = rt.Spawn(SuppressOnce(&started));
  ASSERT_TRUE(WaitUntil([&] { return started.IsOpen(); }));
  ASSERT_TRUE(suppressed.Cancel());
  Outcome<int> out = SettleFromOutside(rt, &suppressed);
  EXPECT_FALSE(suppressed.Cancelled());
  ASSERT_TRUE(out.ok()) << WhatOf(out.error());
  EXPECT_EQ(out.value(), 42);

  // Ended by another exception: not cancelled().
  JoinHandle<int> failed = rt.Spawn(Raise("boom"));
  SettleFromOutside(rt, &failed);
  EXPECT_FALSE(failed.Cancelled());

  // Ended by CancelledError: cancelled().
  Gate started2;
  Lines lines;
  JoinHandle<int> cancelled = rt.Spawn(SleepLong(&started2, &lines));
  ASSERT_TRUE(WaitUntil([&] { return started2.IsOpen(); }));
  cancelled.Cancel();
  SettleFromOutside(rt, &cancelled);
  EXPECT_TRUE(cancelled.Cancelled());
}

Task<int> RaiseCancelledErrorItself() {
  co_await Yield();
  throw CancelledError("by hand");
}

TEST(TaskCancelTest, TaskRaisingCancelledErrorItselfEndsCancelled) {
  Runtime rt({.workers = 2});
  JoinHandle<int> h = rt.Spawn(RaiseCancelledErrorItself());
  Outcome<int> out = SettleFromOutside(rt, &h);
  EXPECT_TRUE(out.cancelled());
  EXPECT_TRUE(h.Cancelled());
}

// Suppresses the cancellation, then keeps suspending: later waits are not
// cancelled again (the request was consumed).
Task<int> SuppressAndContinue(Gate* started, Lines* lines) {
  started->Open();
  try {
    co_await Sleep(kForever);
  } catch (const CancelledError& e) {
    lines->Add(std::string("caught: ") + e.what());
  }
  co_await Yield();
  co_await Sleep(1ms);
  lines->Add("continued");
  co_return 5;
}

TEST(TaskCancelTest, TaskMaySuppressCancellationAndContinue) {
  Runtime rt({.workers = 2});
  Gate started;
  Lines lines;
  JoinHandle<int> h = rt.Spawn(SuppressAndContinue(&started, &lines));
  ASSERT_TRUE(WaitUntil([&] { return started.IsOpen(); }));
  ASSERT_TRUE(h.Cancel("stop"));
  Outcome<int> out = SettleFromOutside(rt, &h);
  ASSERT_TRUE(out.ok()) << WhatOf(out.error());
  EXPECT_EQ(out.value(), 5);
  EXPECT_FALSE(h.Cancelled());
  EXPECT_EQ(lines.Get(),
            (std::vector<std::string>{"caught: stop", "continued"}));
}

TEST(TaskCancelTest, CancelWhileRunningTakesEffectAtNextAwait) {
  Runtime rt({.workers = 2});
  Gate running, go;
  Lines lines;
  Stopwatch clock;
  JoinHandle<int> h = rt.Spawn(SpinThenSleep(&running, &go, &lines));
  ASSERT_TRUE(WaitUntil([&] { return running.IsOpen(); }));
  EXPECT_TRUE(h.Cancel("while running"));
  go.Open();
  Outcome<int> out = SettleFromOutside(rt, &h);
  EXPECT_TRUE(out.cancelled());
  EXPECT_EQ(WhatOf(out.error()), "while running");
  EXPECT_EQ(lines.Get(),
            (std::vector<std::string>{"still running after cancel()"}));
  EXPECT_LT(clock.Elapsed(), std::chrono::minutes(1));
}

// Runs (without suspending) until `go` opens, then returns.
Task<int> SpinThenReturn(Gate* running, Gate* go) {
  running->Open();
  while (!go->IsOpen()) std::this_thread::yield();
  co_return 1;
}

// asyncio: a task whose cancel() returned True ends cancelled unless its
// coroutine caught the CancelledError; one that is cancelled while running
// and returns before suspending again ends cancelled too (Task.__step checks
// _must_cancel when the coroutine returns).
TEST(TaskCancelTest, CancelWhileRunningThenReturningEndsCancelled) {
  Runtime rt({.workers = 2});
  Gate running, go;
  JoinHandle<int> h = rt.Spawn(SpinThenReturn(&running, &go));
  ASSERT_TRUE(WaitUntil([&] { return running.IsOpen(); }));
  EXPECT_TRUE(h.Cancel("too late?"));
  go.Open();
  Outcome<int> out = SettleFromOutside(rt, &h);
  EXPECT_TRUE(out.cancelled())
      << "ended with " << (out.ok() ? "a value" : WhatOf(out.error()));
  EXPECT_TRUE(h.Cancelled());
}

Task<void> YieldForever(Gate* started, std::atomic<int>* rounds) {
  started->Open();
  for (;;) {
    co_await Yield();
    rounds->fetch_add(1, std::memory_order_relaxed);
  }
}

TEST(TaskCancelTest, CancelYieldingTask) {
  Runtime rt({.workers = 2});
  Gate started;
  std::atomic<int> rounds{0};
  JoinHandle<void> h = rt.Spawn(YieldForever(&started, &rounds));
  ASSERT_TRUE(WaitUntil([&] { return rounds.load() > 10; }));
  EXPECT_TRUE(h.Cancel("enough"));
  Outcome<void> out = SettleFromOutside(rt, &h);
  EXPECT_TRUE(out.cancelled());
  EXPECT_EQ(WhatOf(out.error()), "enough");
  EXPECT_TRUE(h.Cancelled());
}

Task<void> RecordThenYield(Lines* lines) {
  lines->Add("body started");
  co_await Yield();
  lines->Add("after yield");
}

// On one worker, a task spawned by the running task cannot start before the
// spawner suspends: cancel it first.
Task<bool> SpawnAndCancelBeforeStart(Lines* lines) {
  JoinHandle<void> child = Spawn(RecordThenYield(lines));
  const bool accepted = child.Cancel("never started");
  Outcome<void> out = co_await Settle(&child);
  EXPECT_TRUE(out.cancelled()) << WhatOf(out.error());
  EXPECT_EQ(WhatOf(out.error()), "never started");
  EXPECT_TRUE(child.Cancelled());
  co_return accepted;
}

// asyncio: cancelling a task before it first runs throws CancelledError into
// the coroutine at its start, so none of its body runs.
TEST(TaskCancelTest, CancelPendingTaskBeforeItStarts) {
  Runtime rt({.workers = 1});
  Lines lines;
  EXPECT_TRUE(BlockOnWithin(rt, SpawnAndCancelBeforeStart(&lines)));
  EXPECT_TRUE(lines.Get().empty()) << "the body ran: " << lines.Get().front();
}

// Awaits the child and rethrows; records what it saw.
Task<int> CleanupThenRethrowChild(Gate* started, Lines* lines) {
  started->Open();
  std::exception_ptr cancelled;
  try {
    co_await Sleep(kForever);
  } catch (const CancelledError& e) {
    cancelled = std::current_exception();
    lines->Add(std::string("child cancelled: ") + e.what());
  }
  if (cancelled) {
    co_await Sleep(1ms);  // cleanup that itself suspends
    lines->Add("child cleaned up");
    std::rethrow_exception(cancelled);
  }
  co_return 1;
}

Task<int> AwaitChild(Gate* child_started, Lines* lines) {
  JoinHandle<int> child = Spawn(CleanupThenRethrowChild(child_started, lines));
  std::exception_ptr error;
  try {
    co_return co_await child;
  } catch (const CancelledError&) {
    error = std::current_exception();
  }
  lines->Add(child.IsFinished() && child.Cancelled()
                 ? "parent: child ended cancelled"
                 : "parent: child still running");
  std::rethrow_exception(error);
}

TEST(TaskCancelTest, CancelWakesTaskWaitingOnChildAndCancelsChild) {
  Runtime rt({.workers = 2});
  Gate child_started;
  Lines lines;
  JoinHandle<int> parent = rt.Spawn(AwaitChild(&child_started, &lines));
  ASSERT_TRUE(WaitUntil([&] { return child_started.IsOpen(); }));
  ASSERT_TRUE(parent.Cancel("cascade"));
  Outcome<int> out = SettleFromOutside(rt, &parent);
  EXPECT_TRUE(out.cancelled());
  EXPECT_EQ(WhatOf(out.error()), "cascade");
  EXPECT_TRUE(parent.Cancelled());
  EXPECT_EQ(lines.Get(), (std::vector<std::string>{
                             "child cancelled: cascade", "child cleaned up",
                             "parent: child ended cancelled"}));
}

Task<int> AwaitSuppressingChild(Gate* child_started, Lines* lines) {
  JoinHandle<int> child = Spawn(SuppressOnce(child_started));
  const int v = co_await child;
  co_await Yield();  // no cancellation pending in the parent
  lines->Add("parent continued");
  co_return v;
}

// asyncio: cancelling a task that awaits another cancels the awaited one; if
// that one suppresses the cancellation and returns, the awaiter gets its
// result and is not cancelled itself.
TEST(TaskCancelTest, ParentAwaitingChildThatSuppressesCancelGetsItsResult) {
  Runtime rt({.workers = 2});
  Gate child_started;
  Lines lines;
  JoinHandle<int> parent =
      rt.Spawn(AwaitSuppressingChild(&child_started, &lines));
  ASSERT_TRUE(WaitUntil([&] { return child_started.IsOpen(); }));
  ASSERT_TRUE(parent.Cancel());
  Outcome<int> out = SettleFromOutside(rt, &parent);
  ASSERT_TRUE(out.ok()) << WhatOf(out.error());
  EXPECT_EQ(out.value(), 42);
  EXPECT_FALSE(parent.Cancelled());
  EXPECT_EQ(lines.Get(), (std::vector<std::string>{"parent continued"}));
}

// --- shield
// ------------------------------------------------------------------------

Task<int> SleepThenValue(Gate* started, std::chrono::milliseconds d, int v) {
  started->Open();
  co_await Sleep(d);
  co_return v;
}

Task<int> AwaitShielded(JoinHandle<int>* inner, Gate* waiting) {
  waiting->Open();
  co_return co_await Shield(*inner);
}

TEST(TaskCancelTest, ShieldSurvivesOuterCancel) {
  Runtime rt({.workers = 2});
  Gate inner_started, waiting, release;
  JoinHandle<int> inner = rt.Spawn(SleepThenValue(&inner_started, 20ms, 7));
  JoinHandle<int> outer = rt.Spawn(AwaitShielded(&inner, &waiting));
  ASSERT_TRUE(
      WaitUntil([&] { return waiting.IsOpen() && inner_started.IsOpen(); }));

  ASSERT_TRUE(outer.Cancel("outer only"));
  Outcome<int> outer_out = SettleFromOutside(rt, &outer);
  EXPECT_TRUE(outer_out.cancelled());
  EXPECT_EQ(WhatOf(outer_out.error()), "outer only");

  Outcome<int> inner_out = SettleFromOutside(rt, &inner);
  ASSERT_TRUE(inner_out.ok()) << WhatOf(inner_out.error());
  EXPECT_EQ(inner_out.value(), 7);
  EXPECT_FALSE(inner.Cancelled());
}

TEST(TaskCancelTest, ShieldedOuterCancelRaisesAtOnce) {
  Runtime rt({.workers = 2});
  Gate inner_started, waiting;
  Lines lines;
  JoinHandle<int> inner = rt.Spawn(SleepLong(&inner_started, &lines));
  JoinHandle<int> outer = rt.Spawn(AwaitShielded(&inner, &waiting));
  ASSERT_TRUE(
      WaitUntil([&] { return waiting.IsOpen() && inner_started.IsOpen(); }));
  ASSERT_TRUE(outer.Cancel());
  // The outer task does not wait for the (hour-long) inner one.
  EXPECT_TRUE(SettleFromOutside(rt, &outer).cancelled());
  EXPECT_FALSE(inner.IsFinished());
  inner.Cancel();
  EXPECT_TRUE(SettleFromOutside(rt, &inner).cancelled());
}

TEST(TaskCancelTest, CancellingShieldedTaskItselfStillCancelsIt) {
  Runtime rt({.workers = 2});
  Gate inner_started, waiting;
  Lines lines;
  JoinHandle<int> inner = rt.Spawn(SleepLong(&inner_started, &lines));
  JoinHandle<int> outer = rt.Spawn(AwaitShielded(&inner, &waiting));
  ASSERT_TRUE(
      WaitUntil([&] { return waiting.IsOpen() && inner_started.IsOpen(); }));

  ASSERT_TRUE(inner.Cancel("inner itself"));
  ASSERT_TRUE(WaitUntil([&] { return inner.IsFinished(); }));
  EXPECT_TRUE(inner.Cancelled());
  // The awaiter of the shield sees the inner task's CancelledError.
  Outcome<int> outer_out = SettleFromOutside(rt, &outer);
  EXPECT_TRUE(outer_out.cancelled());
  EXPECT_EQ(WhatOf(outer_out.error()), "inner itself");
}

// --- to_thread
// -------------------------------------------------------------------------

struct ThreadProbe {
  std::atomic<bool> started{false};
  std::atomic<bool> saw_stop{false};
  std::atomic<bool> finished{false};
  Gate release;  // the function returns only once this opens
};

Task<int> BlockingUntilStopped(std::shared_ptr<ThreadProbe> probe) {
  // Named, not a temporary inside co_await (see ToThread on GCC 12).
  auto fn = [probe](std::stop_token stop) {
    probe->started = true;
    while (!stop.stop_requested()) std::this_thread::sleep_for(100us);
    probe->saw_stop = true;
    while (!probe->release.IsOpen()) std::this_thread::sleep_for(100us);
    probe->finished = true;
    return 1;
  };
  co_return co_await ToThread(fn);
}

TEST(TaskCancelTest, ToThreadCancelStopsWaitingAtOnce) {
  Runtime rt({.workers = 2});
  auto probe = std::make_shared<ThreadProbe>();
  JoinHandle<int> h = rt.Spawn(BlockingUntilStopped(probe));
  ASSERT_TRUE(WaitUntil([&] { return probe->started.load(); }));

  ASSERT_TRUE(h.Cancel("no longer needed"));
  // The awaiter ends while the function is still running (it waits for
  // `release`, which only opens below).
  Outcome<int> out = SettleFromOutside(rt, &h);
  EXPECT_TRUE(out.cancelled());
  EXPECT_EQ(WhatOf(out.error()), "no longer needed");
  EXPECT_FALSE(probe->finished.load());
  // The function was told through its stop token.
  EXPECT_TRUE(WaitUntil([&] { return probe->saw_stop.load(); }));
  probe->release.Open();
  EXPECT_TRUE(WaitUntil([&] { return probe->finished.load(); }));
}

// Catches the cancellation of a ToThread await, then suspends again while
// the function completes: its late completion must not wake the task.
Task<int> DiscardThreadResult(std::shared_ptr<ThreadProbe> probe,
                              Lines* lines) {
  auto fn = [probe] {  // no stop token: cannot be told
    probe->started = true;
    while (!probe->release.IsOpen()) std::this_thread::sleep_for(100us);
    probe->finished = true;
    return 42;
  };
  try {
    co_return co_await ToThread(fn);
  } catch (const CancelledError&) {
    lines->Add("cancelled");
  }
  probe->saw_stop = true;  // here: "the awaiter saw its CancelledError"
  // Suspend until the function has returned (and tried to complete).
  std::function<bool()> finished = [p = probe.get()] {
    return p->finished.load();
  };
  co_await Until(finished);
  co_await Sleep(2ms);
  lines->Add("after the thread finished");
  co_return -1;
}

TEST(TaskCancelTest, ToThreadResultDiscardedAfterCancel) {
  Runtime rt({.workers = 2});
  auto probe = std::make_shared<ThreadProbe>();
  Lines lines;
  JoinHandle<int> h = rt.Spawn(DiscardThreadResult(probe, &lines));
  ASSERT_TRUE(WaitUntil([&] { return probe->started.load(); }));
  ASSERT_TRUE(h.Cancel());
  ASSERT_TRUE(WaitUntil([&] { return probe->saw_stop.load(); }));
  EXPECT_FALSE(probe->finished.load());
  probe->release.Open();
  Outcome<int> out = SettleFromOutside(rt, &h);
  ASSERT_TRUE(out.ok()) << WhatOf(out.error());
  EXPECT_EQ(out.value(), -1);  // never the thread's 42
  EXPECT_EQ(lines.Get(), (std::vector<std::string>{
                             "cancelled", "after the thread finished"}));
}

Task<int> BlockOnThread(std::shared_ptr<ThreadProbe> probe) {
  auto fn = [probe] {
    probe->started = true;
    while (!probe->release.IsOpen()) std::this_thread::sleep_for(100us);
    return 3;
  };
  co_return co_await ToThread(fn);
}

Task<void> OpenAfterYields(ThreadProbe* probe) {
  for (int i = 0; i < 100; ++i) co_await Yield();
  probe->release.Open();
}

// With one event loop: the blocking function waits for a gate that only
// another task on that same loop opens.
Task<int> ToThreadAndLoopTogether(std::shared_ptr<ThreadProbe> probe) {
  JoinHandle<int> blocking = Spawn(BlockOnThread(probe));
  std::function<bool()> started = [p = probe.get()] {
    return p->started.load();
  };
  co_await Until(started);
  JoinHandle<void> other = Spawn(OpenAfterYields(probe.get()));
  co_await other;
  co_return co_await blocking;
}

TEST(TaskCancelTest, ToThreadKeepsTheLoopServingOtherTasks) {
  Runtime rt({.workers = 1});
  auto probe = std::make_shared<ThreadProbe>();
  EXPECT_EQ(BlockOnWithin(rt, ToThreadAndLoopTogether(probe)), 3);
}

// --- create_task, life cycle, result(), current_task(), all_tasks() ---------

Task<void> Mark(Gate* done) {
  co_await Yield();
  done->Open();
}

TEST(TaskContractTest, SpawnSchedulesAtOnceWithoutBeingAwaited) {
  Runtime rt({.workers = 2});
  Gate done;
  rt.Spawn(Mark(&done)).Detach();  // nobody ever awaits it
  EXPECT_TRUE(WaitUntil([&] { return done.IsOpen(); }));
}

Task<std::string> HelloWorld() { co_return "Hello World!"; }

Task<void> LifeCycle(Lines* lines) {
  JoinHandle<std::string> t = Spawn(HelloWorld());
  lines->Add(t.IsFinished() ? "True" : "False");
  std::string r = co_await t;
  lines->Add(t.IsFinished() ? "True" : "False");
  lines->Add(r);
}

TEST(TaskContractTest, TaskIsDoneOnlyOnceFinished) {
  Runtime rt(
      {.workers = 1});  // the child cannot run before the parent suspends
  Lines lines;
  BlockOnWithin(rt, LifeCycle(&lines));
  EXPECT_EQ(lines.Get(),
            (std::vector<std::string>{"False", "True", "Hello World!"}));
}

TEST(TaskContractTest, TaskIsDoneAfterRaisingOrBeingCancelled) {
  Runtime rt({.workers = 2});
  JoinHandle<int> failed = rt.Spawn(Raise("x"));
  SettleFromOutside(rt, &failed);
  EXPECT_TRUE(failed.IsFinished());

  Gate started;
  Lines lines;
  JoinHandle<int> cancelled = rt.Spawn(SleepLong(&started, &lines));
  ASSERT_TRUE(WaitUntil([&] { return started.IsOpen(); }));
  EXPECT_FALSE(cancelled.IsFinished());
  cancelled.Cancel();
  SettleFromOutside(rt, &cancelled);
  EXPECT_TRUE(cancelled.IsFinished());
}

TEST(TaskContractTest, ResultReraisesTheTaskException) {
  Runtime rt({.workers = 2});
  JoinHandle<int> h = rt.Spawn(Raise("boom"));
  Outcome<int> out = SettleFromOutside(rt, &h);
  ASSERT_FALSE(out.ok());
  EXPECT_TRUE(Is<std::runtime_error>(out.error()));
  EXPECT_FALSE(out.cancelled());
  EXPECT_EQ(WhatOf(out.error()), "boom");
}

Task<int> AwaitValue(JoinHandle<int>* h) { co_return co_await *h; }

TEST(TaskContractTest, ResultRaisesCancelledErrorIfCancelled) {
  Runtime rt({.workers = 2});
  Gate started;
  Lines lines;
  JoinHandle<int> h = rt.Spawn(SleepLong(&started, &lines));
  ASSERT_TRUE(WaitUntil([&] { return started.IsOpen(); }));
  h.Cancel();
  EXPECT_THROW(BlockOnWithin(rt, AwaitValue(&h)), CancelledError);
}

Task<std::uint64_t> OwnId() { co_return CurrentTaskId(); }

TEST(TaskContractTest, CurrentTaskIdIsTheHandleId) {
  Runtime rt({.workers = 2});
  JoinHandle<std::uint64_t> a = rt.Spawn(OwnId());
  JoinHandle<std::uint64_t> b = rt.Spawn(OwnId());
  const std::uint64_t a_id = a.id(), b_id = b.id();
  EXPECT_NE(a_id, b_id);
  EXPECT_EQ(SettleFromOutside(rt, &a).value(), a_id);
  EXPECT_EQ(SettleFromOutside(rt, &b).value(), b_id);
  EXPECT_EQ(CurrentTaskId(), 0u);  // outside any task
}

TEST(TaskContractTest, TasksAliveCountsTasksNotDone) {
  Runtime rt({.workers = 2});
  Gate s1, s2;
  Lines lines;
  JoinHandle<int> a = rt.Spawn(SleepLong(&s1, &lines));
  JoinHandle<int> b = rt.Spawn(SleepLong(&s2, &lines));
  ASSERT_TRUE(WaitUntil([&] { return s1.IsOpen() && s2.IsOpen(); }));
  EXPECT_EQ(rt.TasksAlive(), 2u);
  a.Cancel();
  SettleFromOutside(rt, &a);
  EXPECT_TRUE(WaitUntil([&] { return rt.TasksAlive() == 1; }));
  b.Cancel();
  SettleFromOutside(rt, &b);
  EXPECT_TRUE(WaitUntil([&] { return rt.TasksAlive() == 0; }));
}

}  // namespace
}  // namespace awaitd::runtime
