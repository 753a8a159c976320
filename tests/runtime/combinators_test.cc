// The asyncio combinator contract (../shared/ASYNCIO_SEMANTICS.md, section 1):
// gather, wait, wait_for, as_completed, TaskGroup and sleep, for Gather,
// Wait, WaitFor, AsCompleted, TaskGroup and Sleep.
//
// Each test is named after the rule it checks. Orders that asyncio fixes on
// its single loop are checked on a one-worker runtime; "before"/"after" is
// established with gates (a child blocks until the test opens its gate), not
// with timing. Coroutines are free functions taking pointers (lambda
// captures would dangle).
#include "runtime/combinators.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/errors.h"
#include "runtime/join_handle.h"
#include "runtime/runtime.h"
#include "runtime/time.h"
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

using Indices = std::vector<std::size_t>;

// How the children of a test ended.
struct Tracker {
  std::atomic<int> started{0};
  std::atomic<int> normal{0};
  std::atomic<int> cancelled{0};
  std::atomic<int> cleaned_up{0};
};

// Returns `v` once `gate` opens; counts how it ended. On cancellation it
// cleans up (a suspension of its own) before re-raising.
Task<int> Gated(int v, const Gate* gate, Tracker* t) {
  t->started.fetch_add(1);
  std::exception_ptr cancelled;
  try {
    co_await WaitGate(gate);
  } catch (const CancelledError&) {
    cancelled = std::current_exception();
  }
  if (cancelled) {
    t->cancelled.fetch_add(1);
    co_await Sleep(1ms);
    t->cleaned_up.fetch_add(1);
    std::rethrow_exception(cancelled);
  }
  t->normal.fetch_add(1);
  co_return v;
}

// Returns `v` after `yields` trips through the run queue; records `v` in
// `order` when it finishes.
Task<int> AfterYields(int v, int yields, Lines* order) {
  for (int i = 0; i < yields; ++i) co_await Yield();
  if (order != nullptr) order->Add(std::to_string(v));
  co_return v;
}

Task<int> FailAfterYield(std::string message) {
  co_await Yield();
  throw std::runtime_error(message);
}

Task<int> Value(int v) { co_return v; }

// Cancels `*h` after a short (scaled) sleep.
Task<void> CancelSoon(JoinHandle<int>* h) {
  co_await Sleep(2ms);
  h->Cancel("cancelled by a sibling");
}

// Awaits every handle, ignoring outcomes (so that no task outlives a test).
Task<void> SettleAll(std::vector<JoinHandle<int>>* hs) {
  for (auto& h : *hs) co_await Settle(&h);
}

// --- gather
// ------------------------------------------------------------------------

Task<std::vector<int>> GatherReversed(Lines* order) {
  std::vector<JoinHandle<int>> hs;
  for (int i = 0; i < 4; ++i) hs.push_back(Spawn(AfterYields(i, 4 - i, order)));
  co_return co_await Gather(std::move(hs));
}

TEST(GatherTest, GatherReturnsResultsInInputOrder) {
  Runtime rt({.workers = 1});
  Lines order;
  EXPECT_EQ(BlockOnWithin(rt, GatherReversed(&order)),
            (std::vector<int>{0, 1, 2, 3}));
  // They finished in the reverse order.
  EXPECT_EQ(order.Get(), (std::vector<std::string>{"3", "2", "1", "0"}));
}

// Gathers [blocked, failing, blocked]; reports what the siblings had done
// when the exception arrived.
Task<std::string> GatherWithFailure(const Gate* gate, Tracker* t) {
  std::vector<JoinHandle<int>> hs;
  hs.push_back(Spawn(Gated(0, gate, t)));
  hs.push_back(Spawn(FailAfterYield("boom")));
  hs.push_back(Spawn(Gated(2, gate, t)));
  std::string what;
  try {
    co_await Gather(std::move(hs));
    what = "no exception";
  } catch (const std::runtime_error& e) {
    what = e.what();
  }
  EXPECT_EQ(t->normal.load() + t->cancelled.load(), 0)
      << "siblings ended before the exception";
  co_return what;
}

TEST(GatherTest, GatherPropagatesFirstExceptionImmediately) {
  Runtime rt({.workers = 2});
  Gate gate;  // never opened before the gather returned
  Tracker t;
  EXPECT_EQ(BlockOnWithin(rt, GatherWithFailure(&gate, &t)), "boom");
  gate.Open();
  EXPECT_TRUE(
      WaitUntil([&] { return t.normal.load() + t.cancelled.load() == 2; }));
}

TEST(GatherTest, GatherDoesNotCancelSiblingsWhenOneRaises) {
  Runtime rt({.workers = 2});
  Gate gate;
  Tracker t;
  EXPECT_EQ(BlockOnWithin(rt, GatherWithFailure(&gate, &t)), "boom");
  gate.Open();  // the siblings were detached, not cancelled: they run on
  EXPECT_TRUE(
      WaitUntil([&] { return t.normal.load() + t.cancelled.load() == 2; }));
  EXPECT_EQ(t.normal.load(), 2);
  EXPECT_EQ(t.cancelled.load(), 0);
  EXPECT_TRUE(WaitUntil([&] { return rt.TasksAlive() == 0; }));
}

// The failing child has finished before the gather is awaited (so its
// wait is satisfied before any callback is registered); a sibling never ends.
Task<std::string> GatherAfterTheFailure(const Gate* never, Tracker* t) {
  std::vector<JoinHandle<int>> hs;
  hs.push_back(Spawn(Gated(0, never, t)));
  hs.push_back(Spawn(FailAfterYield("early boom")));
  co_await Until([&hs] { return hs[1].IsFinished(); });
  try {
    co_await Gather(std::move(hs));
  } catch (const std::runtime_error& e) {
    co_return e.what();
  }
  co_return "no exception";
}

TEST(GatherTest, GatherRaisesAnExceptionThatHappenedBeforeItWasAwaited) {
  // Once this hung: the gather waited for the blocked sibling instead.
  for (int workers : {1, 2}) {
    Runtime rt({.workers = static_cast<std::uint32_t>(workers)});
    Gate never;
    Tracker t;
    EXPECT_EQ(BlockOnWithin(rt, GatherAfterTheFailure(&never, &t),
                            std::chrono::seconds(20)),
              "early boom")
        << workers << " workers";
    EXPECT_EQ(t.normal.load() + t.cancelled.load(), 0);
  }
}

Task<std::vector<Outcome<int>>> GatherMixed(const Gate* never, Tracker* t) {
  std::vector<JoinHandle<int>> hs;
  hs.push_back(Spawn(Value(1)));
  hs.push_back(Spawn(FailAfterYield("bad")));
  hs.push_back(Spawn(Gated(3, never, t)));
  hs.push_back(Spawn(AfterYields(4, 2, nullptr)));
  hs[2].Cancel("cancelled child");
  co_return co_await Gather(std::move(hs), kReturnExceptions);
}

TEST(GatherTest, GatherReturnExceptionsReturnsThemInPlace) {
  Runtime rt({.workers = 1});
  Gate never;
  Tracker t;
  std::vector<Outcome<int>> r = BlockOnWithin(rt, GatherMixed(&never, &t));
  ASSERT_EQ(r.size(), 4u);
  ASSERT_TRUE(r[0].ok());
  EXPECT_EQ(r[0].value(), 1);
  ASSERT_FALSE(r[1].ok());
  EXPECT_FALSE(
      r[1].cancelled());  // a failure, distinguishable from a cancellation
  EXPECT_TRUE(Is<std::runtime_error>(r[1].error()));
  EXPECT_EQ(WhatOf(r[1].error()), "bad");
  ASSERT_FALSE(r[2].ok());
  EXPECT_TRUE(r[2].cancelled());
  EXPECT_EQ(WhatOf(r[2].error()), "cancelled child");
  ASSERT_TRUE(r[3].ok());
  EXPECT_EQ(r[3].value(), 4);
}

// On one worker, the cancelled child ends while the gather is waiting.
Task<std::string> GatherWithCancelledChild(const Gate* gate, Tracker* t) {
  std::vector<JoinHandle<int>> hs;
  hs.push_back(Spawn(Gated(0, gate, t)));
  hs.push_back(Spawn(Gated(1, gate, t)));
  co_await Until([t] { return t->started.load() == 2; });
  hs[1].Cancel("child only");
  std::string what = "no exception";
  try {
    co_await Gather(std::move(hs));
  } catch (const CancelledError& e) {
    what = std::string("CancelledError: ") + e.what();
  }
  // The gather itself was not cancelled: this task goes on suspending.
  co_await Yield();
  co_await Sleep(1ms);
  co_return what;
}

TEST(GatherTest, GatherCancelledChildCountsAsCancelledError) {
  Runtime rt({.workers = 1});
  Gate gate;
  Tracker t;
  JoinHandle<std::string> h = rt.Spawn(GatherWithCancelledChild(&gate, &t));
  Outcome<std::string> out = SettleFromOutside(rt, &h);
  ASSERT_TRUE(out.ok()) << WhatOf(out.error());
  EXPECT_EQ(out.value(), "CancelledError: child only");
  EXPECT_FALSE(h.Cancelled());
  // The other child was not cancelled.
  gate.Open();
  EXPECT_TRUE(WaitUntil([&] { return t.normal.load() == 1; }));
  EXPECT_EQ(t.cancelled.load(), 1);
}

Task<int> GatherOfGated(const Gate* gate, Tracker* t, int n,
                        bool return_exceptions) {
  std::vector<JoinHandle<int>> hs;
  for (int i = 0; i < n; ++i) hs.push_back(Spawn(Gated(i, gate, t)));
  if (return_exceptions) {
    co_return static_cast<int>(
        (co_await Gather(std::move(hs), kReturnExceptions)).size());
  }
  co_return static_cast<int>((co_await Gather(std::move(hs))).size());
}

void ExpectGatherCancelCancelsChildren(bool return_exceptions) {
  Runtime rt({.workers = 2});
  Gate gate;  // never opened
  Tracker t;
  JoinHandle<int> outer =
      rt.Spawn(GatherOfGated(&gate, &t, 3, return_exceptions));
  ASSERT_TRUE(WaitUntil([&] { return t.started.load() == 3; }));
  ASSERT_TRUE(outer.Cancel("stop all"));
  Outcome<int> out = SettleFromOutside(rt, &outer);
  // Raised only once every child finished its cleanup.
  EXPECT_EQ(t.cleaned_up.load(), 3);
  EXPECT_EQ(t.cancelled.load(), 3);
  EXPECT_TRUE(out.cancelled()) << (out.ok() ? "a value" : WhatOf(out.error()));
  EXPECT_EQ(WhatOf(out.error()), "stop all");
  EXPECT_TRUE(outer.Cancelled());
}

TEST(GatherTest, GatherCancelledCancelsChildren) {
  ExpectGatherCancelCancelsChildren(false);
}

TEST(GatherTest, GatherWithReturnExceptionsCancelledCancelsChildren) {
  ExpectGatherCancelCancelsChildren(true);
}

Task<int> SuppressCancel(Tracker* t) {
  t->started.fetch_add(1);
  try {
    co_await Sleep(std::chrono::hours(1));
  } catch (const CancelledError&) {
    t->cancelled.fetch_add(1);
  }
  co_return 7;
}

Task<int> GatherOfSuppressor(Tracker* t) {
  std::vector<JoinHandle<int>> hs;
  hs.push_back(Spawn(SuppressCancel(t)));
  co_return (co_await Gather(std::move(hs)))[0];
}

// asyncio: a cancelled gather raises CancelledError even if a child
// swallowed its cancellation and returned a value.
TEST(GatherTest, GatherCancelledRaisesEvenIfAChildSuppresses) {
  Runtime rt({.workers = 2});
  Tracker t;
  JoinHandle<int> outer = rt.Spawn(GatherOfSuppressor(&t));
  ASSERT_TRUE(WaitUntil([&] { return t.started.load() == 1; }));
  ASSERT_TRUE(outer.Cancel());
  EXPECT_TRUE(SettleFromOutside(rt, &outer).cancelled());
  EXPECT_EQ(t.cancelled.load(), 1);
}

// --- wait
// ----------------------------------------------------------------------------

Task<WaitResult> WaitFirstCompleted(Gate* gate, Tracker* t) {
  std::vector<JoinHandle<int>> hs;
  hs.push_back(Spawn(Gated(0, gate, t)));
  hs.push_back(Spawn(AfterYields(1, 3, nullptr)));
  hs.push_back(Spawn(Gated(2, gate, t)));
  WaitResult r = co_await Wait(hs, ReturnWhen::kFirstCompleted);
  const int first = co_await hs[1];
  EXPECT_EQ(first, 1);
  EXPECT_EQ(t->normal.load() + t->cancelled.load(), 0);
  // Nothing was cancelled: the pending ones finish once released.
  gate->Open();
  const int v0 = co_await hs[0];
  const int v2 = co_await hs[2];
  EXPECT_EQ(v0, 0);
  EXPECT_EQ(v2, 2);
  co_return r;
}

TEST(WaitTest, WaitFirstCompletedReturnsWhenAnyFinishes) {
  Runtime rt({.workers = 2});
  Gate gate;
  Tracker t;
  WaitResult r = BlockOnWithin(rt, WaitFirstCompleted(&gate, &t));
  EXPECT_EQ(r.done, (Indices{1}));
  EXPECT_EQ(r.pending, (Indices{0, 2}));
}

Task<WaitResult> WaitFirstCompletedWithCancel(Gate* gate, Tracker* t) {
  std::vector<JoinHandle<int>> hs;
  for (int i = 0; i < 3; ++i) hs.push_back(Spawn(Gated(i, gate, t)));
  JoinHandle<void> canceller = Spawn(CancelSoon(&hs[1]));
  WaitResult r = co_await Wait(hs, ReturnWhen::kFirstCompleted);
  co_await canceller;
  EXPECT_TRUE(hs[1].Cancelled());
  gate->Open();
  co_await SettleAll(&hs);
  co_return r;
}

TEST(WaitTest, WaitFirstCompletedCountsCancellation) {
  Runtime rt({.workers = 2});
  Gate gate;
  Tracker t;
  WaitResult r = BlockOnWithin(rt, WaitFirstCompletedWithCancel(&gate, &t));
  EXPECT_EQ(r.done, (Indices{1}));
  EXPECT_EQ(r.pending, (Indices{0, 2}));
}

// Raises once `*other` has finished.
Task<int> FailAfter(const JoinHandle<int>* other, std::string message) {
  co_await Until([other] { return other->IsFinished(); });
  throw std::runtime_error(message);
}

Task<WaitResult> WaitFirstException(Gate* gate, Tracker* t) {
  std::vector<JoinHandle<int>> hs;
  hs.reserve(3);
  hs.push_back(Spawn(AfterYields(0, 2, nullptr)));  // finishes normally first
  hs.push_back(Spawn(FailAfter(&hs[0], "first failure")));
  hs.push_back(Spawn(Gated(2, gate, t)));
  WaitResult r = co_await Wait(hs, ReturnWhen::kFirstException);
  EXPECT_EQ(t->normal.load() + t->cancelled.load(), 0);
  gate->Open();
  co_await SettleAll(&hs);
  co_return r;
}

TEST(WaitTest, WaitFirstExceptionReturnsOnFirstRaise) {
  Runtime rt({.workers = 2});
  Gate gate;
  Tracker t;
  WaitResult r = BlockOnWithin(rt, WaitFirstException(&gate, &t));
  EXPECT_EQ(r.done, (Indices{0, 1}));
  EXPECT_EQ(r.pending, (Indices{2}));
  EXPECT_EQ(t.cancelled.load(), 0);
}

// Returns once `*other` has finished.
Task<int> ReturnAfter(const JoinHandle<int>* other, int v) {
  co_await Until([other] { return other->IsFinished(); });
  co_await Sleep(1ms);
  co_return v;
}

Task<WaitResult> WaitFirstExceptionWithCancel(const Gate* never, Tracker* t) {
  std::vector<JoinHandle<int>> hs;
  hs.reserve(2);
  hs.push_back(Spawn(Gated(0, never, t)));
  hs.push_back(Spawn(ReturnAfter(&hs[0], 1)));
  JoinHandle<void> canceller = Spawn(CancelSoon(&hs[0]));
  WaitResult r = co_await Wait(hs, ReturnWhen::kFirstException);
  co_await canceller;
  co_await SettleAll(&hs);
  co_return r;
}

TEST(WaitTest, WaitFirstExceptionDoesNotCountCancellation) {
  Runtime rt({.workers = 2});
  Gate never;
  Tracker t;
  WaitResult r = BlockOnWithin(rt, WaitFirstExceptionWithCancel(&never, &t));
  // The cancellation of [0] did not end the wait; [1] finishing after it did.
  EXPECT_EQ(r.done, (Indices{0, 1}));
  EXPECT_TRUE(r.pending.empty());
}

Task<WaitResult> WaitAllOf(ReturnWhen when, bool with_failure_and_cancel,
                           Tracker* t) {
  std::vector<JoinHandle<int>> hs;
  hs.reserve(4);
  hs.push_back(Spawn(AfterYields(0, 5, nullptr)));
  hs.push_back(Spawn(AfterYields(1, 1, nullptr)));
  if (with_failure_and_cancel) {
    hs.push_back(Spawn(FailAfter(&hs[0], "late failure")));
    hs.push_back(Spawn(SuppressCancel(t)));
    hs[3].Cancel();  // it swallows the cancellation, returns 7
  } else {
    hs.push_back(Spawn(AfterYields(2, 3, nullptr)));
  }
  WaitResult r = co_await Wait(hs, when);
  for (auto& h : hs) EXPECT_TRUE(h.IsFinished());
  co_await SettleAll(&hs);
  co_return r;
}

TEST(WaitTest, WaitFirstExceptionWithoutExceptionsWaitsForAll) {
  Runtime rt({.workers = 2});
  Tracker t;
  WaitResult r =
      BlockOnWithin(rt, WaitAllOf(ReturnWhen::kFirstException, false, &t));
  EXPECT_EQ(r.done, (Indices{0, 1, 2}));
  EXPECT_TRUE(r.pending.empty());
}

TEST(WaitTest, WaitAllCompletedWaitsForAll) {
  Runtime rt({.workers = 2});
  Tracker t;
  WaitResult r =
      BlockOnWithin(rt, WaitAllOf(ReturnWhen::kAllCompleted, true, &t));
  EXPECT_EQ(r.done, (Indices{0, 1, 2, 3}));
  EXPECT_TRUE(r.pending.empty());
}

Task<std::vector<WaitResult>> WaitWithTimeouts(Gate* gate, Tracker* t) {
  std::vector<JoinHandle<int>> hs;
  for (int i = 0; i < 3; ++i) hs.push_back(Spawn(Gated(i, gate, t)));
  std::vector<WaitResult> rs;
  for (ReturnWhen when :
       {ReturnWhen::kFirstCompleted, ReturnWhen::kFirstException,
        ReturnWhen::kAllCompleted}) {
    rs.push_back(co_await Wait(
        hs, when, std::chrono::milliseconds(500)));  // 5 ms at 0.01
  }
  EXPECT_EQ(t->cancelled.load(), 0);
  gate->Open();
  for (int i = 0; i < 3; ++i) {
    const int v = co_await hs[i];  // never cancelled
    EXPECT_EQ(v, i);
  }
  co_return rs;
}

TEST(WaitTest, WaitTimeoutNeverRaisesAndNeverCancels) {
  Runtime rt({.workers = 2, .time_scale = 0.01});
  Gate gate;
  Tracker t;
  std::vector<WaitResult> rs = BlockOnWithin(rt, WaitWithTimeouts(&gate, &t));
  for (const WaitResult& r : rs) {
    EXPECT_TRUE(r.done.empty());
    EXPECT_EQ(r.pending, (Indices{0, 1, 2}));
  }
  EXPECT_EQ(t.normal.load(), 3);
  EXPECT_EQ(t.cancelled.load(), 0);
}

// --- wait_for
// ------------------------------------------------------------------------

Task<int> SleepThen(std::chrono::milliseconds d, int v) {
  co_await Sleep(d);
  co_return v;
}

Task<int> WaitForSleeper(std::chrono::milliseconds sleep,
                         std::optional<std::chrono::nanoseconds> timeout) {
  JoinHandle<int> h = Spawn(SleepThen(sleep, 3));
  co_return co_await WaitFor(h, timeout);
}

TEST(WaitForTest, WaitForReturnsResultBeforeTimeout) {
  Runtime rt({.workers = 2});
  EXPECT_EQ(BlockOnWithin(rt, WaitForSleeper(5ms, std::chrono::hours(1))), 3);
}

TEST(WaitForTest, WaitForNoneWaitsForever) {
  Runtime rt({.workers = 2, .time_scale = 0.01});
  // 20 s of virtual sleep (200 ms real) with no timeout at all.
  Stopwatch clock;
  EXPECT_EQ(BlockOnWithin(rt, WaitForSleeper(20s, std::nullopt)), 3);
  EXPECT_GE(clock.Elapsed(), 200ms);
}

Task<int> CleanupOnCancel(Lines* lines) {
  std::exception_ptr cancelled;
  try {
    co_await Sleep(std::chrono::hours(1));
  } catch (const CancelledError&) {
    cancelled = std::current_exception();
  }
  co_await Sleep(20ms);  // cleanup takes a while
  lines->Add("child cleaned up");
  std::rethrow_exception(cancelled);
}

Task<std::string> WaitForTimesOut(Lines* lines) {
  JoinHandle<int> h = Spawn(CleanupOnCancel(lines));
  std::string what = "no timeout";
  try {
    co_await WaitFor(h, std::chrono::milliseconds(5));
  } catch (const TimeoutError&) {
    lines->Add("TimeoutError");
    what = h.IsFinished() && h.Cancelled() ? "child cancelled and finished"
                                           : "child still running";
  }
  co_return what;
}

TEST(WaitForTest, WaitForTimeoutCancelsAndWaits) {
  Runtime rt({.workers = 2});
  Lines lines;
  EXPECT_EQ(BlockOnWithin(rt, WaitForTimesOut(&lines)),
            "child cancelled and finished");
  EXPECT_EQ(lines.Get(),
            (std::vector<std::string>{"child cleaned up", "TimeoutError"}));
}

Task<int> WaitForSuppressor(Tracker* t) {
  JoinHandle<int> h = Spawn(SuppressCancel(t));
  co_return co_await WaitFor(h, std::chrono::milliseconds(5));
}

// asyncio 3.12: if the cancelled task swallows the cancellation and returns
// a value, wait_for returns that value instead of raising TimeoutError.
TEST(WaitForTest, WaitForReturnsResultIfTaskSuppressesTheTimeoutCancel) {
  Runtime rt({.workers = 2});
  Tracker t;
  EXPECT_EQ(BlockOnWithin(rt, WaitForSuppressor(&t)), 7);
  EXPECT_EQ(t.cancelled.load(), 1);
}

Task<int> WaitForFinished() {
  JoinHandle<int> h = Spawn(Value(11));
  co_await Until([&h] { return h.IsFinished(); });
  co_return co_await WaitFor(h, std::chrono::nanoseconds(0));
}

TEST(WaitForTest, WaitForZeroTimeoutReturnsResultOfFinishedTask) {
  Runtime rt({.workers = 2});
  EXPECT_EQ(BlockOnWithin(rt, WaitForFinished()), 11);
}

Task<int> WaitForGated(const Gate* never, Tracker* t) {
  JoinHandle<int> h = Spawn(Gated(1, never, t));
  co_return co_await WaitFor(h, std::chrono::hours(1));
}

TEST(WaitForTest, WaitForWaiterCancelledCancelsTask) {
  Runtime rt({.workers = 2});
  Gate never;
  Tracker t;
  JoinHandle<int> outer = rt.Spawn(WaitForGated(&never, &t));
  ASSERT_TRUE(WaitUntil([&] { return t.started.load() == 1; }));
  ASSERT_TRUE(outer.Cancel("waiter cancelled"));
  Outcome<int> out = SettleFromOutside(rt, &outer);
  EXPECT_TRUE(out.cancelled()) << WhatOf(out.error());  // not TimeoutError
  EXPECT_FALSE(Is<TimeoutError>(out.error()));
  EXPECT_EQ(t.cancelled.load(), 1);
  EXPECT_EQ(t.cleaned_up.load(), 1);
}

// --- as_completed
// --------------------------------------------------------------------

Task<std::vector<int>> CompletionOrder() {
  std::vector<JoinHandle<int>> hs;
  hs.push_back(Spawn(AfterYields(0, 6, nullptr)));
  hs.push_back(Spawn(AfterYields(1, 2, nullptr)));
  hs.push_back(Spawn(AfterYields(2, 4, nullptr)));
  AsCompleted ac(hs);
  std::vector<int> got;
  while (std::optional<std::size_t> i = co_await ac.Next())
    got.push_back(co_await hs[*i]);
  co_return got;
}

TEST(AsCompletedTest, AsCompletedYieldsInCompletionOrder) {
  Runtime rt({.workers = 1});
  EXPECT_EQ(BlockOnWithin(rt, CompletionOrder()), (std::vector<int>{1, 2, 0}));
}

Task<std::string> AsCompletedTimesOut(Gate* gate, Tracker* t) {
  std::vector<JoinHandle<int>> hs;
  hs.push_back(Spawn(Gated(0, gate, t)));
  hs.push_back(Spawn(Value(1)));
  hs.push_back(Spawn(Gated(2, gate, t)));
  AsCompleted ac(hs, std::chrono::milliseconds(500));  // 5 ms at 0.01
  std::string log;
  try {
    for (;;) {
      std::optional<std::size_t> i = co_await ac.Next();
      if (!i) break;
      log += std::to_string(*i) + " ";
    }
  } catch (const TimeoutError&) {
    log += "TimeoutError";
  }
  EXPECT_EQ(t->cancelled.load(), 0);
  gate->Open();
  const int v0 = co_await hs[0];  // not cancelled
  const int v2 = co_await hs[2];
  EXPECT_EQ(v0, 0);
  EXPECT_EQ(v2, 2);
  co_return log;
}

TEST(AsCompletedTest, AsCompletedTimeoutRaisesAndCancelsNothing) {
  Runtime rt({.workers = 2, .time_scale = 0.01});
  Gate gate;
  Tracker t;
  EXPECT_EQ(BlockOnWithin(rt, AsCompletedTimesOut(&gate, &t)),
            "1 TimeoutError");
  EXPECT_EQ(t.normal.load(), 2);
}

// --- TaskGroup
// -----------------------------------------------------------------------

Task<int> GroupOfSleepers(Tracker* t) {
  TaskGroup g;
  Gate open;
  open.Open();
  for (int i = 0; i < 3; ++i) g.Spawn(Gated(i, &open, t)).Detach();
  JoinHandle<int> a = g.Spawn(SleepThen(3ms, 1));
  JoinHandle<int> b = g.Spawn(SleepThen(1ms, 2));
  co_await g.Join();
  EXPECT_TRUE(a.IsFinished());
  EXPECT_TRUE(b.IsFinished());
  co_return t->normal.load();
}

TEST(TaskGroupTest, TaskGroupWaitsForAll) {
  Runtime rt({.workers = 2});
  Tracker t;
  EXPECT_EQ(BlockOnWithin(rt, GroupOfSleepers(&t)), 3);
}

Task<std::vector<std::string>> GroupWithOneFailure(const Gate* never,
                                                   Tracker* t) {
  TaskGroup g;
  JoinHandle<int> a = g.Spawn(Gated(0, never, t));
  JoinHandle<int> b = g.Spawn(Gated(1, never, t));
  co_await Until([t] { return t->started.load() == 2; });
  g.Spawn(FailAfterYield("boom")).Detach();
  std::vector<std::string> errors;
  try {
    co_await g.Join();
  } catch (const ExceptionGroup& eg) {
    for (const auto& e : eg.exceptions()) errors.push_back(WhatOf(e));
  }
  EXPECT_TRUE(a.Cancelled());
  EXPECT_TRUE(b.Cancelled());
  co_return errors;
}

TEST(TaskGroupTest, TaskGroupFirstFailureCancelsTheRest) {
  Runtime rt({.workers = 2});
  Gate never;
  Tracker t;
  EXPECT_EQ(BlockOnWithin(rt, GroupWithOneFailure(&never, &t)),
            (std::vector<std::string>{"boom"}));
  EXPECT_EQ(t.cancelled.load(), 2);
  EXPECT_EQ(t.cleaned_up.load(), 2);  // Join waited for their cleanup
}

// Raises once `peers` such tasks are running at the same time (a barrier in
// running code, no suspension): no cancellation can reach any of them first.
Task<int> FailTogether(std::string message, std::atomic<int>* arrived,
                       int peers) {
  arrived->fetch_add(1);
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (arrived->load() < peers &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::yield();
  }
  throw std::runtime_error(message);
  co_return 0;
}

Task<std::vector<std::string>> GroupWithTwoFailures(const Gate* never,
                                                    Tracker* t) {
  TaskGroup g;
  std::atomic<int> arrived{0};
  g.Spawn(Gated(0, never, t)).Detach();
  g.Spawn(FailTogether("first", &arrived, 2)).Detach();
  g.Spawn(FailTogether("second", &arrived, 2)).Detach();
  std::vector<std::string> errors;
  try {
    co_await g.Join();
  } catch (const ExceptionGroup& eg) {
    for (const auto& e : eg.exceptions()) errors.push_back(WhatOf(e));
  }
  std::sort(errors.begin(), errors.end());
  co_return errors;
}

TEST(TaskGroupTest, TaskGroupReportsEveryFailure) {
  Runtime rt({.workers = 2});  // the two failing tasks run at once
  Gate never;
  Tracker t;
  EXPECT_EQ(BlockOnWithin(rt, GroupWithTwoFailures(&never, &t)),
            (std::vector<std::string>{"first", "second"}));
  EXPECT_EQ(t.cancelled.load(),
            t.started.load());  // the bystander was cancelled
}

Task<std::vector<std::string>> GroupFailingAfterTheSameYield() {
  TaskGroup g;
  g.Spawn(FailAfterYield("a")).Detach();
  g.Spawn(FailAfterYield("b")).Detach();
  std::vector<std::string> errors;
  try {
    co_await g.Join();
  } catch (const ExceptionGroup& eg) {
    for (const auto& e : eg.exceptions()) errors.push_back(WhatOf(e));
  }
  std::sort(errors.begin(), errors.end());
  co_return errors;
}

// asyncio (one loop): both tasks are ready when the first raises; the
// group's done callback runs later (call_soon), so the second one raises
// too and the ExceptionGroup holds both.
// awaitd likewise queues the group's abort as a task behind the ready ones.
TEST(TaskGroupTest, TaskGroupReportsFailuresRaisedAfterTheSameYield) {
  Runtime rt({.workers = 1});
  EXPECT_EQ(BlockOnWithin(rt, GroupFailingAfterTheSameYield()),
            (std::vector<std::string>{"a", "b"}));
}

Task<int> GroupWithCancelledMember(Gate* gate, Tracker* t) {
  TaskGroup g;
  g.Spawn(Gated(0, gate, t)).Detach();
  JoinHandle<int> b = g.Spawn(Gated(1, gate, t));
  co_await Until([t] { return t->started.load() == 2; });
  b.Cancel("just this one");
  co_await Until([&b] { return b.IsFinished(); });
  gate->Open();
  co_await g.Join();  // no ExceptionGroup, no CancelledError
  co_await Yield();
  co_return t->normal.load();
}

TEST(TaskGroupTest, TaskGroupCancelledErrorIsNotAFailure) {
  Runtime rt({.workers = 2});
  Gate gate;
  Tracker t;
  JoinHandle<int> h = rt.Spawn(GroupWithCancelledMember(&gate, &t));
  Outcome<int> out = SettleFromOutside(rt, &h);
  ASSERT_TRUE(out.ok()) << WhatOf(out.error());
  EXPECT_EQ(out.value(), 1);  // the other member was not cancelled
  EXPECT_EQ(t.cancelled.load(), 1);
}

Task<void> GroupOfGated(const Gate* never, Tracker* t) {
  TaskGroup g;
  for (int i = 0; i < 3; ++i) g.Spawn(Gated(i, never, t)).Detach();
  co_await g.Join();
}

TEST(TaskGroupTest, TaskGroupJoinCancelledCancelsChildren) {
  Runtime rt({.workers = 2});
  Gate never;
  Tracker t;
  JoinHandle<void> outer = rt.Spawn(GroupOfGated(&never, &t));
  ASSERT_TRUE(WaitUntil([&] { return t.started.load() == 3; }));
  ASSERT_TRUE(outer.Cancel("group cancelled"));
  Outcome<void> out = SettleFromOutside(rt, &outer);
  EXPECT_EQ(t.cleaned_up.load(), 3);  // raised only after they finished
  EXPECT_TRUE(out.cancelled()) << WhatOf(out.error());
  EXPECT_EQ(WhatOf(out.error()), "group cancelled");
  EXPECT_TRUE(outer.Cancelled());
}

// --- sleep
// -------------------------------------------------------------------------

Task<void> SleepZeroLoop(std::string name, int rounds, Lines* lines) {
  for (int i = 0; i < rounds; ++i) {
    lines->Add(name);
    co_await Sleep(std::chrono::nanoseconds(0));
  }
}

Task<void> TwoSleepZeroLoops(int rounds, Lines* lines) {
  JoinHandle<void> a = Spawn(SleepZeroLoop("A", rounds, lines));
  JoinHandle<void> b = Spawn(SleepZeroLoop("B", rounds, lines));
  co_await a;
  co_await b;
}

TEST(SleepContractTest, SleepZeroYields) {
  Runtime rt({.workers = 1});
  constexpr int kRounds = 200;
  Lines lines;
  BlockOnWithin(rt, TwoSleepZeroLoops(kRounds, &lines));
  std::vector<std::string> expected;
  for (int i = 0; i < kRounds; ++i) {
    expected.push_back("A");
    expected.push_back("B");
  }
  EXPECT_EQ(lines.Get(), expected);
}

Task<std::int64_t> TimedSleep(std::chrono::milliseconds d, Lines* lines) {
  Stopwatch clock;
  co_await Sleep(d);
  lines->Add(std::to_string(d.count()));
  co_return std::chrono::duration_cast<std::chrono::microseconds>(
      clock.Elapsed())
      .count();
}

Task<std::vector<std::int64_t>> SleepsOf(Lines* lines) {
  std::vector<JoinHandle<std::int64_t>> hs;
  for (int ms : {60, 20, 40})
    hs.push_back(Spawn(TimedSleep(std::chrono::milliseconds(ms), lines)));
  co_return co_await Gather(std::move(hs));
}

TEST(SleepContractTest, SleepResultOrder) {
  Runtime rt({.workers = 1});
  Lines lines;
  std::vector<std::int64_t> us = BlockOnWithin(rt, SleepsOf(&lines));
  // Woken in deadline order, none early.
  EXPECT_EQ(lines.Get(), (std::vector<std::string>{"20", "40", "60"}));
  EXPECT_GE(us[0], 60'000);
  EXPECT_GE(us[1], 20'000);
  EXPECT_GE(us[2], 40'000);
}

}  // namespace
}  // namespace awaitd::runtime
