// Semaphore, BoundedSemaphore, Event, Lock and the queues: the asyncio
// contract rows of ASYNCIO_SEMANTICS.md section 1, cancellation included.
//
// Tests that check what happens between a hand-over and the woken task's
// resumption (cancel after wake, overtaking) run on one worker: there the
// woken task cannot run before the test task suspends, so the window is
// deterministic. The others run on two workers.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/errors.h"
#include "runtime/event.h"
#include "runtime/lock.h"
#include "runtime/queue.h"
#include "runtime/runtime.h"
#include "runtime/semaphore.h"
#include "runtime/task.h"
#include "runtime/time.h"

namespace awaitd::runtime {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// --- Helpers
// ------------------------------------------------------------------

// AWAITD_STRESS_SCALE (default 1.0), as in the other runtime tests.
double StressScale() {
  const char* s = std::getenv("AWAITD_STRESS_SCALE");
  if (s == nullptr || *s == '\0') return 1.0;
  const double v = std::strtod(s, nullptr);
  return v > 0 ? v : 1.0;
}

std::size_t Scaled(std::size_t n, std::size_t min = 1000) {
  const auto scaled =
      static_cast<std::size_t>(static_cast<double>(n) * StressScale());
  return std::max(scaled, std::min(n, min));
}

// SplitMix64: deterministic per-index pseudo-randomness.
std::uint64_t Mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Aborts with a message if not destroyed within `limit`: a lost wake-up
// fails the test at once instead of hanging until the ctest timeout.
class Watchdog {
 public:
  explicit Watchdog(seconds limit)
      : thread_([this, limit] {
          std::unique_lock lock(mu_);
          if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
            std::fprintf(stderr,
                         "WATCHDOG: sync test hung for %llds; aborting\n",
                         static_cast<long long>(limit.count()));
            std::abort();
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// Polls `pred` from inside a task, sleeping between polls (so other tasks,
// also on a single worker, get to run).
Task<void> WaitUntil(std::function<bool()> pred) {
  const auto deadline = std::chrono::steady_clock::now() + seconds(20);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline)
      throw std::runtime_error("WaitUntil timed out");
    co_await Sleep(std::chrono::microseconds(100));
  }
}

// "ok" if the task finished normally, "cancelled:<message>" if it ended by
// CancelledError (other exceptions propagate).
template <typename T>
Task<std::string> Outcome(JoinHandle<T>* h) {
  try {
    co_await *h;
    co_return "ok";
  } catch (const CancelledError& e) {
    co_return std::string("cancelled:") + e.what();
  }
}

// A thread-safe list of ids, in the order they were added.
class Recorder {
 public:
  void Add(int id) {
    std::lock_guard lock(mu_);
    ids_.push_back(id);
  }
  std::vector<int> ids() const {
    std::lock_guard lock(mu_);
    return ids_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<int> ids_;
};

std::vector<int> Iota(int n, int first = 0) {
  std::vector<int> v(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = first + i;
  return v;
}

// --- Semaphore
// -----------------------------------------------------------------

Task<void> AcquireRecordRelease(Semaphore* s, int id, Recorder* order) {
  co_await s->Acquire();
  order->Add(id);
  s->Release();
}

Task<void> FifoMain(Semaphore* s, Recorder* order, int n) {
  std::vector<JoinHandle<void>> hs;
  for (int i = 0; i < n; ++i) {
    hs.push_back(Spawn(AcquireRecordRelease(s, i, order)));
    const std::size_t queued = static_cast<std::size_t>(i) + 1;
    co_await WaitUntil([s, queued] { return s->Waiting() == queued; });
  }
  s->Release();  // one permit passes down the line
  for (auto& h : hs) co_await h;
}

TEST(SyncTest, SemaphoreServesWaitersFifo) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 2});
  Semaphore s(0);
  Recorder order;
  rt.BlockOn(FifoMain(&s, &order, 8));
  EXPECT_EQ(order.ids(), Iota(8));
  EXPECT_EQ(s.Value(), 1u);
  EXPECT_EQ(s.Waiting(), 0u);
}

Task<void> NoOvertakeMain(Semaphore* s, Recorder* order) {
  co_await s->Acquire();
  JoinHandle<void> first = Spawn(AcquireRecordRelease(s, 1, order));
  co_await WaitUntil([s] { return s->Waiting() == 1; });
  // The permit goes to the waiter, which cannot run before this task
  // suspends (one worker): a new Acquire must not take it meanwhile.
  s->Release();
  EXPECT_TRUE(s->Locked());
  EXPECT_EQ(s->Value(), 0u);
  EXPECT_FALSE(s->TryAcquire());
  JoinHandle<void> second = Spawn(AcquireRecordRelease(s, 2, order));
  co_await first;
  co_await second;
}

TEST(SyncTest, SemaphoreNewAcquireDoesNotOvertakeWaiters) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 1});
  Semaphore s(1);
  Recorder order;
  rt.BlockOn(NoOvertakeMain(&s, &order));
  EXPECT_EQ(order.ids(), (std::vector<int>{1, 2}));
  EXPECT_EQ(s.Value(), 1u);
}

struct HolderCount {
  std::atomic<int> now{0};
  std::atomic<int> max{0};
  void Enter() {
    const int n = now.fetch_add(1) + 1;
    int m = max.load();
    while (n > m && !max.compare_exchange_weak(m, n)) {
    }
  }
  void Leave() { now.fetch_sub(1); }
};

Task<void> HoldBriefly(Semaphore* s, HolderCount* count, int i) {
  PermitGuard permit = co_await s->Hold();
  count->Enter();
  co_await Yield();
  if (i % 3 == 0) co_await Sleep(std::chrono::microseconds(50));
  count->Leave();
}

Task<void> ManyHolders(Semaphore* s, HolderCount* count, int n) {
  std::vector<JoinHandle<void>> hs;
  for (int i = 0; i < n; ++i) hs.push_back(Spawn(HoldBriefly(s, count, i)));
  for (auto& h : hs) co_await h;
}

TEST(SyncTest, SemaphoreAllowsAtMostNHolders) {
  Watchdog dog(seconds(120));
  Runtime rt(RuntimeOptions{.workers = 2});
  Semaphore s(3);
  HolderCount count;
  rt.BlockOn(ManyHolders(&s, &count, static_cast<int>(Scaled(2000, 200))));
  EXPECT_LE(count.max.load(), 3);
  EXPECT_GE(count.max.load(), 2);  // the tasks did overlap
  EXPECT_EQ(count.now.load(), 0);
  EXPECT_EQ(s.Value(), 3u);
}

TEST(SyncTest, BoundedSemaphoreRaisesOnOverRelease) {
  BoundedSemaphore b(2);
  EXPECT_THROW(b.Release(), std::invalid_argument);
  EXPECT_EQ(b.Value(), 2u);
  ASSERT_TRUE(b.TryAcquire());
  b.Release();
  EXPECT_EQ(b.Value(), 2u);
  EXPECT_THROW(b.Release(), std::invalid_argument);
}

TEST(SyncTest, SemaphoreReleaseAboveInitialValueIsAllowed) {
  Semaphore s(1);
  s.Release();
  EXPECT_EQ(s.Value(), 2u);
  EXPECT_TRUE(s.TryAcquire());
  EXPECT_TRUE(s.TryAcquire());
  EXPECT_FALSE(s.TryAcquire());
  EXPECT_TRUE(s.Locked());
}

Task<void> CancelledWaiterMain(Semaphore* s, Recorder* order) {
  co_await s->Acquire();
  JoinHandle<void> a = Spawn(AcquireRecordRelease(s, 1, order));
  co_await WaitUntil([s] { return s->Waiting() == 1; });
  JoinHandle<void> b = Spawn(AcquireRecordRelease(s, 2, order));
  co_await WaitUntil([s] { return s->Waiting() == 2; });
  EXPECT_TRUE(a.Cancel("skip me"));
  const std::string outcome_a = co_await Outcome(&a);
  EXPECT_EQ(outcome_a, "cancelled:skip me");
  EXPECT_TRUE(a.Cancelled());
  EXPECT_EQ(s->Waiting(), 1u);
  s->Release();  // goes to b, the live waiter
  const std::string outcome_b = co_await Outcome(&b);
  EXPECT_EQ(outcome_b, "ok");
}

TEST(SyncTest, SemaphoreCancelledWaiterIsSkipped) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 2});
  Semaphore s(1);
  Recorder order;
  rt.BlockOn(CancelledWaiterMain(&s, &order));
  EXPECT_EQ(order.ids(), (std::vector<int>{2}));
  EXPECT_EQ(s.Value(), 1u);  // no permit leaked
  EXPECT_EQ(s.Waiting(), 0u);
}

Task<void> CancelAfterWakeMain(Semaphore* s, Recorder* order) {
  co_await s->Acquire();
  JoinHandle<void> a = Spawn(AcquireRecordRelease(s, 1, order));
  co_await WaitUntil([s] { return s->Waiting() == 1; });
  JoinHandle<void> b = Spawn(AcquireRecordRelease(s, 2, order));
  co_await WaitUntil([s] { return s->Waiting() == 2; });
  // Hand the permit to `a`, then cancel `a` before it can run (one worker):
  // it must raise and pass the permit on to `b`.
  s->Release();
  EXPECT_TRUE(a.Cancel("too late"));
  const std::string outcome_a = co_await Outcome(&a);
  EXPECT_EQ(outcome_a, "cancelled:too late");
  EXPECT_TRUE(a.Cancelled());
  const std::string outcome_b = co_await Outcome(&b);
  EXPECT_EQ(outcome_b, "ok");
}

TEST(SyncTest, SemaphoreCancelAfterWakeReturnsPermit) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 1});
  Semaphore s(1);
  Recorder order;
  rt.BlockOn(CancelAfterWakeMain(&s, &order));
  EXPECT_EQ(order.ids(), (std::vector<int>{2}));
  EXPECT_EQ(s.Value(), 1u);
}

Task<void> CancelAfterWakeNoOtherWaiterMain(Semaphore* s, Recorder* order) {
  co_await s->Acquire();
  JoinHandle<void> a = Spawn(AcquireRecordRelease(s, 1, order));
  co_await WaitUntil([s] { return s->Waiting() == 1; });
  s->Release();
  EXPECT_EQ(s->Value(), 0u);  // handed to `a`
  EXPECT_TRUE(a.Cancel());
  const std::string outcome = co_await Outcome(&a);
  EXPECT_EQ(outcome, "cancelled:");
}

TEST(SyncTest, SemaphoreCancelAfterWakeWithNoOtherWaiterRestoresValue) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 1});
  Semaphore s(1);
  Recorder order;
  rt.BlockOn(CancelAfterWakeNoOtherWaiterMain(&s, &order));
  EXPECT_TRUE(order.ids().empty());
  EXPECT_EQ(s.Value(), 1u);
}

struct SelfCancelState {
  Event go;
  JoinHandle<void> self;
  Semaphore free_permit{1};
  Semaphore no_permit{0};
  bool acquired_free = false;
  bool raised_at_wait = false;
};

// Cancels itself while running, so the cancellation is pending at its next
// Acquire.
Task<void> SelfCancelling(SelfCancelState* st) {
  co_await st->go.Wait();
  st->self.Cancel("self");
  co_await st->free_permit.Acquire();  // no wait: must not raise
  st->acquired_free = true;
  st->free_permit.Release();
  try {
    co_await st->no_permit.Acquire();  // must wait: raises at once
  } catch (const CancelledError&) {
    st->raised_at_wait = true;
    throw;
  }
}

Task<void> SelfCancelMain(SelfCancelState* st) {
  st->self = Spawn(SelfCancelling(st));
  st->go.Set();
  const std::string outcome = co_await Outcome(&st->self);
  EXPECT_EQ(outcome, "cancelled:self");
  EXPECT_TRUE(st->self.Cancelled());
}

TEST(SyncTest,
     SemaphoreAcquireThatNeedsNoWaitIgnoresPendingCancelAndOneThatWaitsRaises) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 2});
  SelfCancelState st;
  rt.BlockOn(SelfCancelMain(&st));
  EXPECT_TRUE(st.acquired_free);
  EXPECT_TRUE(st.raised_at_wait);
  EXPECT_EQ(st.free_permit.Value(), 1u);
  EXPECT_EQ(st.no_permit.Value(), 0u);
  EXPECT_EQ(st.no_permit.Waiting(), 0u);
}

Task<void> HoldUntilCancelled(Semaphore* s, std::atomic<bool>* holding) {
  PermitGuard permit = co_await s->Hold();
  holding->store(true);
  co_await Sleep(seconds(60));
}

Task<void> HoldCancelMain(Semaphore* s) {
  {
    PermitGuard permit = co_await s->Hold();
    EXPECT_TRUE(permit.owns_permit());
    EXPECT_EQ(s->Value(), 1u);
  }
  EXPECT_EQ(s->Value(), 2u);
  std::atomic<bool> holding{false};
  JoinHandle<void> h = Spawn(HoldUntilCancelled(s, &holding));
  co_await WaitUntil([&holding] { return holding.load(); });
  EXPECT_EQ(s->Value(), 1u);
  h.Cancel("stop");
  const std::string outcome = co_await Outcome(&h);
  EXPECT_EQ(outcome, "cancelled:stop");
}

TEST(SyncTest, SemaphoreHoldReleasesOnScopeExitAndOnCancellation) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 2});
  Semaphore s(2);
  rt.BlockOn(HoldCancelMain(&s));
  EXPECT_EQ(s.Value(), 2u);
}

// --- Semaphore stress
// ----------------------------------------------------------

enum StressOutcome : int {
  kNone = 0,
  kAcquiredReleased = 1,
  kCancelledWaiting = 2,
  kCancelledHolding = 3
};

struct StressState {
  explicit StressState(std::size_t n) : outcome(n) {}
  void Record(std::size_t i, int what) {
    int expected = kNone;
    if (!outcome[i].compare_exchange_strong(expected, what))
      double_records.fetch_add(1);
  }
  Semaphore sem{3};
  HolderCount holders;
  std::vector<std::atomic<int>> outcome;
  std::atomic<int> double_records{0};
};

Task<void> StressTask(StressState* st, std::size_t i) {
  bool acquired = false;
  try {
    PermitGuard permit = co_await st->sem.Hold();
    acquired = true;
    st->holders.Enter();
    struct Leave {
      HolderCount* h;
      ~Leave() { h->Leave(); }
    } leave{&st->holders};
    switch (Mix(i) % 4) {
      case 0:
        co_await Yield();
        break;
      case 1:
        co_await Sleep(std::chrono::microseconds(20));
        break;
      default:
        break;
    }
  } catch (const CancelledError&) {
    st->Record(i, acquired ? kCancelledHolding : kCancelledWaiting);
    throw;
  }
  st->Record(i, kAcquiredReleased);
}

Task<void> StressMain(StressState* st, std::size_t n, std::uint64_t seed) {
  std::vector<JoinHandle<void>> hs;
  hs.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    hs.push_back(Spawn(StressTask(st, i)));
    // Cancel a random earlier task (a third of the time) while it may be
    // queued, woken, holding or done.
    const std::uint64_t r = Mix(seed ^ i);
    if (r % 3 == 0) {
      const std::size_t back = static_cast<std::size_t>((r >> 8) % 256);
      hs[i >= back ? i - back : 0].Cancel("stress");
    }
    if (i % 97 == 0) co_await Yield();
  }
  for (std::size_t i = 0; i < n; ++i) {
    // Awaited inline, not through Outcome(): a chain of thousands of
    // awaits of finished child Tasks grows the stack where the compiler
    // does not turn symmetric transfer into a tail call (GCC with TSan).
    std::string outcome = "ok";
    try {
      co_await hs[i];
    } catch (const CancelledError& e) {
      outcome = std::string("cancelled:") + e.what();
    }
    const int recorded = st->outcome[i].load();
    if (outcome == "ok") {
      EXPECT_EQ(recorded, kAcquiredReleased) << "task " << i;
      EXPECT_FALSE(hs[i].Cancelled());
    } else {
      EXPECT_EQ(outcome, "cancelled:stress") << "task " << i;
      EXPECT_TRUE(hs[i].Cancelled());
      // kNone: cancelled before its body ran far enough to record.
      // kAcquiredReleased: the cancellation arrived after the body's last
      // suspension; asyncio then ends the task cancelled all the same (the
      // permit was released: the body ran to its end).
      EXPECT_TRUE(recorded == kCancelledWaiting ||
                  recorded == kCancelledHolding || recorded == kNone ||
                  recorded == kAcquiredReleased)
          << "task " << i << " recorded " << recorded;
    }
  }
}

TEST(SyncTest, SemaphoreStressEveryTaskAcquiresOrIsCancelledExactlyOnce) {
  Watchdog dog(seconds(300));
  Runtime rt(RuntimeOptions{.workers = 2});
  const std::size_t n = Scaled(20000);
  const std::uint64_t seed = 0x5eed0001;
  SCOPED_TRACE("seed " + std::to_string(seed) + ", tasks " + std::to_string(n));
  StressState st(n);
  rt.BlockOn(StressMain(&st, n, seed));
  EXPECT_EQ(st.double_records.load(), 0);
  EXPECT_LE(st.holders.max.load(), 3);
  EXPECT_EQ(st.holders.now.load(), 0);
  EXPECT_EQ(st.sem.Value(), 3u);
  EXPECT_EQ(st.sem.Waiting(), 0u);
  std::size_t ok = 0, waiting = 0, holding = 0;
  for (auto& o : st.outcome) {
    ok += o.load() == kAcquiredReleased;
    waiting += o.load() == kCancelledWaiting;
    holding += o.load() == kCancelledHolding;
  }
  std::printf(
      "semaphore stress: %zu tasks, %zu acquired, %zu cancelled waiting, %zu "
      "cancelled holding\n",
      n, ok, waiting, holding);
  EXPECT_GT(ok, 0u);
  EXPECT_GT(waiting + holding, 0u);
}

// --- Event
// ---------------------------------------------------------------------

Task<void> WaitThenFlag(Event* ev, std::atomic<int>* woken) {
  co_await ev->Wait();
  woken->fetch_add(1);
}

Task<void> EventBlocksMain(Event* ev, std::atomic<int>* woken) {
  JoinHandle<void> h = Spawn(WaitThenFlag(ev, woken));
  co_await WaitUntil([ev] { return ev->Waiting() == 1; });
  co_await Sleep(milliseconds(5));
  EXPECT_EQ(woken->load(), 0);
  EXPECT_FALSE(h.IsFinished());
  ev->Set();
  co_await h;
  EXPECT_EQ(woken->load(), 1);
}

TEST(SyncTest, EventWaitBlocksUntilSet) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 2});
  Event ev;
  std::atomic<int> woken{0};
  rt.BlockOn(EventBlocksMain(&ev, &woken));
}

Task<void> EventAllMain(Event* ev, std::atomic<int>* woken, int n) {
  std::vector<JoinHandle<void>> hs;
  for (int i = 0; i < n; ++i) hs.push_back(Spawn(WaitThenFlag(ev, woken)));
  const auto want = static_cast<std::size_t>(n);
  co_await WaitUntil([ev, want] { return ev->Waiting() == want; });
  ev->Set();
  for (auto& h : hs) co_await h;
}

TEST(SyncTest, EventSetWakesAllWaiters) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 2});
  Event ev;
  std::atomic<int> woken{0};
  rt.BlockOn(EventAllMain(&ev, &woken, 10));
  EXPECT_EQ(woken.load(), 10);
  EXPECT_TRUE(ev.IsSet());
  EXPECT_EQ(ev.Waiting(), 0u);
}

Task<void> EventAtOnceMain(Event* ev) {
  ev->Set();
  co_await ev->Wait();
  co_await ev->Wait();
  EXPECT_EQ(ev->Waiting(), 0u);
}

TEST(SyncTest, EventWaitReturnsAtOnceWhenSet) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 2});
  Event ev;
  rt.BlockOn(EventAtOnceMain(&ev));
}

Task<void> EventCancelMain(Event* ev, std::atomic<int>* woken) {
  JoinHandle<void> a = Spawn(WaitThenFlag(ev, woken));
  JoinHandle<void> b = Spawn(WaitThenFlag(ev, woken));
  co_await WaitUntil([ev] { return ev->Waiting() == 2; });
  EXPECT_TRUE(a.Cancel("no longer needed"));
  const std::string outcome_a = co_await Outcome(&a);
  EXPECT_EQ(outcome_a, "cancelled:no longer needed");
  EXPECT_TRUE(a.Cancelled());
  EXPECT_EQ(ev->Waiting(), 1u);
  ev->Set();
  const std::string outcome_b = co_await Outcome(&b);
  EXPECT_EQ(outcome_b, "ok");
}

TEST(SyncTest, EventCancelledWaiterRaisesCancelledError) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 2});
  Event ev;
  std::atomic<int> woken{0};
  rt.BlockOn(EventCancelMain(&ev, &woken));
  EXPECT_EQ(woken.load(), 1);
}

Task<void> EventClearMain(Event* ev, std::atomic<int>* woken) {
  ev->Set();
  ev->Clear();
  EXPECT_FALSE(ev->IsSet());
  JoinHandle<void> h = Spawn(WaitThenFlag(ev, woken));
  co_await WaitUntil([ev] { return ev->Waiting() == 1; });
  EXPECT_EQ(woken->load(), 0);
  ev->Set();
  co_await h;
}

TEST(SyncTest, EventClearMakesWaitSuspendAgain) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 2});
  Event ev;
  std::atomic<int> woken{0};
  rt.BlockOn(EventClearMain(&ev, &woken));
  EXPECT_EQ(woken.load(), 1);
}

Task<void> EventSetClearMain(Event* ev, std::atomic<int>* woken) {
  JoinHandle<void> h = Spawn(WaitThenFlag(ev, woken));
  co_await WaitUntil([ev] { return ev->Waiting() == 1; });
  ev->Set();
  ev->Clear();  // before the waiter runs (one worker): it still returns
  co_await h;
}

TEST(SyncTest, EventWaitersWokenBySetReturnEvenIfClearedBeforeTheyRun) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 1});
  Event ev;
  std::atomic<int> woken{0};
  rt.BlockOn(EventSetClearMain(&ev, &woken));
  EXPECT_EQ(woken.load(), 1);
}

Task<void> EventCancelAfterSetMain(Event* ev, std::atomic<int>* woken) {
  JoinHandle<void> h = Spawn(WaitThenFlag(ev, woken));
  co_await WaitUntil([ev] { return ev->Waiting() == 1; });
  ev->Set();
  h.Cancel("after set");  // before the waiter runs (one worker)
  const std::string outcome = co_await Outcome(&h);
  EXPECT_EQ(outcome, "cancelled:after set");
}

TEST(SyncTest, EventWaiterCancelledAfterSetStillRaises) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 1});
  Event ev;
  std::atomic<int> woken{0};
  rt.BlockOn(EventCancelAfterSetMain(&ev, &woken));
  EXPECT_EQ(woken.load(), 0);
}

// --- Lock
// ----------------------------------------------------------------------

struct LockState {
  Lock lock;
  std::atomic<bool> inside{false};
  std::atomic<int> overlaps{0};
  Recorder order;
};

Task<void> LockedSection(LockState* st, int id) {
  PermitGuard held = co_await st->lock.Hold();
  if (st->inside.exchange(true)) st->overlaps.fetch_add(1);
  st->order.Add(id);
  co_await Yield();
  st->inside.store(false);
}

Task<void> LockFifoMain(LockState* st, int queued, int extra) {
  co_await st->lock.Acquire();
  std::vector<JoinHandle<void>> hs;
  for (int i = 0; i < queued; ++i) {
    hs.push_back(Spawn(LockedSection(st, i)));
    const auto want = static_cast<std::size_t>(i) + 1;
    co_await WaitUntil([st, want] { return st->lock.Waiting() == want; });
  }
  st->lock.Release();
  // Then a crowd contending from both workers.
  for (int i = 0; i < extra; ++i)
    hs.push_back(Spawn(LockedSection(st, queued + i)));
  for (auto& h : hs) co_await h;
}

TEST(SyncTest, LockIsMutuallyExclusiveAndFifo) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 2});
  LockState st;
  rt.BlockOn(LockFifoMain(&st, 6, 300));
  std::vector<int> ids = st.order.ids();
  ASSERT_EQ(ids.size(), 306u);
  EXPECT_EQ(std::vector<int>(ids.begin(), ids.begin() + 6), Iota(6));
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, Iota(306));
  EXPECT_EQ(st.overlaps.load(), 0);
  EXPECT_FALSE(st.lock.Locked());
}

TEST(SyncTest, LockReleaseUnlockedThrows) {
  Lock lock;
  EXPECT_FALSE(lock.Locked());
  EXPECT_THROW(lock.Release(), std::logic_error);
  ASSERT_TRUE(lock.TryAcquire());
  EXPECT_TRUE(lock.Locked());
  EXPECT_FALSE(lock.TryAcquire());
  lock.Release();
  EXPECT_FALSE(lock.Locked());
  EXPECT_THROW(lock.Release(), std::logic_error);
}

Task<void> LockCancelMain(LockState* st) {
  co_await st->lock.Acquire();
  JoinHandle<void> a = Spawn(LockedSection(st, 1));
  co_await WaitUntil([st] { return st->lock.Waiting() == 1; });
  JoinHandle<void> b = Spawn(LockedSection(st, 2));
  co_await WaitUntil([st] { return st->lock.Waiting() == 2; });
  st->lock.Release();     // handed to `a`...
  a.Cancel("cancelled");  // ...which is cancelled before it runs (one worker)
  const std::string outcome_a = co_await Outcome(&a);
  EXPECT_EQ(outcome_a, "cancelled:cancelled");
  const std::string outcome_b = co_await Outcome(&b);
  EXPECT_EQ(outcome_b, "ok");
}

TEST(SyncTest, LockCancelledWaiterPassesTheLockOn) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 1});
  LockState st;
  rt.BlockOn(LockCancelMain(&st));
  EXPECT_EQ(st.order.ids(), (std::vector<int>{2}));
  EXPECT_FALSE(st.lock.Locked());
}

// --- Queue
// ---------------------------------------------------------------------

Task<void> PutOne(Queue<int>* q, int v) { co_await q->Put(v); }

Task<int> GetOne(Queue<int>* q) { co_return co_await q->Get(); }

Task<void> PutWaitsMain(Queue<int>* q) {
  co_await q->Put(1);
  co_await q->Put(2);
  EXPECT_TRUE(q->Full());
  JoinHandle<void> p = Spawn(PutOne(q, 3));
  co_await WaitUntil([q] { return q->WaitingPutters() == 1; });
  EXPECT_FALSE(p.IsFinished());
  EXPECT_FALSE(q->TryPut(4));
  EXPECT_EQ(q->Size(), 2u);
  EXPECT_EQ(q->TryGet(), std::optional<int>(1));  // frees a slot for the putter
  co_await p;
  EXPECT_EQ(q->Size(), 2u);
  EXPECT_EQ(q->TryGet(), std::optional<int>(2));
  EXPECT_EQ(q->TryGet(), std::optional<int>(3));
  EXPECT_TRUE(q->Empty());
}

TEST(SyncTest, QueuePutWaitsWhenFull) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 2});
  Queue<int> q(2);
  rt.BlockOn(PutWaitsMain(&q));
}

Task<void> GetWaitsMain(Queue<int>* q) {
  JoinHandle<int> g = Spawn(GetOne(q));
  co_await WaitUntil([q] { return q->WaitingGetters() == 1; });
  EXPECT_FALSE(g.IsFinished());
  co_await q->Put(7);
  EXPECT_EQ(co_await g, 7);
  EXPECT_TRUE(q->Empty());
}

TEST(SyncTest, QueueGetWaitsWhenEmpty) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 2});
  Queue<int> q;
  rt.BlockOn(GetWaitsMain(&q));
}

Task<void> GettersFifoMain(Queue<int>* q) {
  std::vector<JoinHandle<int>> gs;
  for (int i = 0; i < 5; ++i) {
    gs.push_back(Spawn(GetOne(q)));
    const auto want = static_cast<std::size_t>(i) + 1;
    co_await WaitUntil([q, want] { return q->WaitingGetters() == want; });
  }
  for (int i = 0; i < 5; ++i) co_await q->Put(100 + i);
  // Handed over in FIFO order, whatever order the getters then run in.
  for (int i = 0; i < 5; ++i) {
    const int got = co_await gs[static_cast<std::size_t>(i)];
    EXPECT_EQ(got, 100 + i);
  }
}

TEST(SyncTest, QueueServesGettersFifo) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 2});
  for (int round = 0; round < 20; ++round) {
    Queue<int> q;
    rt.BlockOn(GettersFifoMain(&q));
  }
}

Task<void> PuttersFifoMain(Queue<int>* q) {
  co_await q->Put(0);
  std::vector<JoinHandle<void>> ps;
  for (int i = 1; i <= 4; ++i) {
    ps.push_back(Spawn(PutOne(q, i)));
    const auto want = static_cast<std::size_t>(i);
    co_await WaitUntil([q, want] { return q->WaitingPutters() == want; });
  }
  for (int i = 0; i <= 4; ++i) {
    const int got = co_await q->Get();
    EXPECT_EQ(got, i);
  }
  for (auto& p : ps) co_await p;
}

TEST(SyncTest, QueueServesPuttersFifo) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 2});
  Queue<int> q(1);
  rt.BlockOn(PuttersFifoMain(&q));
}

TEST(SyncTest, QueueTryPutAndTryGetNeverWait) {
  Queue<std::string> q(1);
  EXPECT_EQ(q.TryGet(), std::nullopt);
  EXPECT_TRUE(q.TryPut("a"));
  std::string b = "b";
  EXPECT_FALSE(q.TryPut(std::move(b)));
  EXPECT_EQ(b, "b");  // not moved from when refused
  EXPECT_TRUE(q.Full());
  EXPECT_EQ(q.Size(), 1u);
  EXPECT_EQ(q.TryGet(), std::optional<std::string>("a"));
  EXPECT_TRUE(q.Empty());
  Queue<int> unbounded;
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(unbounded.TryPut(i));
  EXPECT_FALSE(unbounded.Full());
  EXPECT_EQ(unbounded.MaxSize(), 0u);
}

Task<void> JoinOnly(Queue<int>* q) { co_await q->Join(); }

Task<void> JoinMain(Queue<int>* q) {
  for (int i = 0; i < 3; ++i) co_await q->Put(i);
  JoinHandle<void> j = Spawn(JoinOnly(q));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(q->TryGet().has_value());
  q->TaskDone();
  q->TaskDone();
  co_await Sleep(milliseconds(5));
  EXPECT_FALSE(j.IsFinished());  // one item is still unfinished
  EXPECT_EQ(q->Unfinished(), 1u);
  q->TaskDone();
  co_await j;
  co_await q->Join();  // nothing unfinished: returns at once
}

TEST(SyncTest, QueueJoinWaitsForEveryTaskDone) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 2});
  Queue<int> q;
  rt.BlockOn(JoinMain(&q));
  EXPECT_EQ(q.Unfinished(), 0u);
}

TEST(SyncTest, QueueTaskDoneTooManyThrows) {
  Queue<int> q;
  EXPECT_THROW(q.TaskDone(), std::logic_error);
  ASSERT_TRUE(q.TryPut(1));
  ASSERT_TRUE(q.TryGet().has_value());
  q.TaskDone();
  EXPECT_THROW(q.TaskDone(), std::logic_error);
}

struct Keyed {
  int key;
  char tag;
};
struct ByKey {
  bool operator()(const Keyed& a, const Keyed& b) const {
    return a.key < b.key;
  }
};

TEST(SyncTest, PriorityQueueGetsSmallestFirst) {
  PriorityQueue<int> q;
  for (int v : {5, 1, 4, 2, 3}) ASSERT_TRUE(q.TryPut(v));
  for (int want = 1; want <= 5; ++want)
    EXPECT_EQ(q.TryGet(), std::optional<int>(want));

  PriorityQueue<Keyed, ByKey> ties;
  for (Keyed k : {Keyed{2, 'a'}, Keyed{1, 'b'}, Keyed{2, 'c'}, Keyed{1, 'd'},
                  Keyed{2, 'e'}}) {
    ASSERT_TRUE(ties.TryPut(k));
  }
  std::string order;
  while (auto k = ties.TryGet()) order += k->tag;
  EXPECT_EQ(order, "bdace");  // smallest first, equal keys in insertion order
}

Task<int> GetOnePq(PriorityQueue<int>* q) { co_return co_await q->Get(); }

Task<void> PqWaitingGetterMain(PriorityQueue<int>* q) {
  JoinHandle<int> g = Spawn(GetOnePq(q));
  co_await WaitUntil([q] { return q->WaitingGetters() == 1; });
  co_await q->Put(5);  // handed to g at once, the only item there
  co_await q->Put(1);
  EXPECT_EQ(q->Size(), 2u);
  EXPECT_EQ(q->TryGet(), std::optional<int>(1));
  EXPECT_EQ(co_await g, 5);
}

// Documents the difference from asyncio written in queue.h: a waiting getter
// is served when it is woken, not when it runs.
TEST(SyncTest, PriorityQueueWaitingGetterIsServedTheItemThatWokeIt) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 1});
  PriorityQueue<int> q;
  rt.BlockOn(PqWaitingGetterMain(&q));
}

Task<void> PuttersWokenTogetherMain(Queue<int>* q) {
  co_await q->Put(0);
  co_await q->Put(1);
  std::vector<JoinHandle<void>> ps;
  for (int i = 2; i <= 5; ++i) {
    ps.push_back(Spawn(PutOne(q, i)));
    const auto want = static_cast<std::size_t>(i) - 1;
    co_await WaitUntil([q, want] { return q->WaitingPutters() == want; });
  }
  // Free both slots at once: two putters are woken together and may run in
  // either order, on either worker; their items still go in in the order
  // the putters waited.
  for (int round = 0; round < 2; ++round) {
    EXPECT_EQ(q->TryGet(), std::optional<int>(2 * round));
    EXPECT_EQ(q->TryGet(), std::optional<int>(2 * round + 1));
    co_await ps[static_cast<std::size_t>(2 * round)];
    co_await ps[static_cast<std::size_t>(2 * round + 1)];
  }
  EXPECT_EQ(q->TryGet(), std::optional<int>(4));
  EXPECT_EQ(q->TryGet(), std::optional<int>(5));
}

TEST(SyncTest, QueuePuttersWokenTogetherKeepTheirOrder) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 2});
  for (int round = 0; round < 20; ++round) {
    Queue<int> q(2);
    rt.BlockOn(PuttersWokenTogetherMain(&q));
  }
}

TEST(SyncTest, LifoQueueGetsNewestFirst) {
  LifoQueue<int> q(3);
  for (int v : {1, 2, 3}) ASSERT_TRUE(q.TryPut(v));
  EXPECT_FALSE(q.TryPut(4));
  for (int want : {3, 2, 1}) EXPECT_EQ(q.TryGet(), std::optional<int>(want));
}

Task<void> CancelledGetterMain(Queue<int>* q) {
  JoinHandle<int> a = Spawn(GetOne(q));
  co_await WaitUntil([q] { return q->WaitingGetters() == 1; });
  JoinHandle<int> b = Spawn(GetOne(q));
  co_await WaitUntil([q] { return q->WaitingGetters() == 2; });
  co_await q->Put(42);  // wakes `a`...
  a.Cancel("gone");     // ...which is cancelled before it runs (one worker)
  const std::string outcome_a = co_await Outcome(&a);
  EXPECT_EQ(outcome_a, "cancelled:gone");
  EXPECT_EQ(co_await b, 42);  // the item went on to `b`
}

TEST(SyncTest, QueueCancelledGetterLosesNoItem) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 1});
  Queue<int> q;
  rt.BlockOn(CancelledGetterMain(&q));
  EXPECT_TRUE(q.Empty());
  EXPECT_EQ(q.Unfinished(), 1u);
}

Task<void> CancelledLoneGetterMain(Queue<int>* q) {
  JoinHandle<int> a = Spawn(GetOne(q));
  co_await WaitUntil([q] { return q->WaitingGetters() == 1; });
  co_await q->Put(1);  // wakes `a`...
  co_await q->Put(2);
  a.Cancel();  // ...which is cancelled before it runs (one worker)
  const std::string outcome = co_await Outcome(&a);
  EXPECT_EQ(outcome, "cancelled:");
  // Both items are still there, in order.
  EXPECT_EQ(q->TryGet(), std::optional<int>(1));
  EXPECT_EQ(q->TryGet(), std::optional<int>(2));
}

TEST(SyncTest, QueueItemWokenForCancelledGetterStaysAtTheFront) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 1});
  Queue<int> q;
  rt.BlockOn(CancelledLoneGetterMain(&q));
}

Task<void> CancelledPutterMain(Queue<int>* q) {
  co_await q->Put(1);
  JoinHandle<void> a = Spawn(PutOne(q, 2));
  co_await WaitUntil([q] { return q->WaitingPutters() == 1; });
  JoinHandle<void> b = Spawn(PutOne(q, 3));
  co_await WaitUntil([q] { return q->WaitingPutters() == 2; });
  EXPECT_EQ(q->TryGet(), std::optional<int>(1));  // the slot goes to `a`...
  a.Cancel("no put");  // ...which is cancelled before it runs (one worker)
  const std::string outcome_a = co_await Outcome(&a);
  EXPECT_EQ(outcome_a, "cancelled:no put");
  co_await b;  // the slot went on to `b`
  EXPECT_EQ(q->TryGet(), std::optional<int>(3));
  EXPECT_TRUE(q->Empty());
}

TEST(SyncTest, QueueCancelledPutterPutsNothing) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 1});
  Queue<int> q(1);
  rt.BlockOn(CancelledPutterMain(&q));
  EXPECT_EQ(q.Unfinished(), 2u);  // 1 and 3
}

Task<void> CancelWaitingGetterAndPutter(Queue<int>* q) {
  JoinHandle<int> g = Spawn(GetOne(q));
  co_await WaitUntil([q] { return q->WaitingGetters() == 1; });
  g.Cancel("g");
  const std::string outcome_g = co_await Outcome(&g);
  EXPECT_EQ(outcome_g, "cancelled:g");
  EXPECT_EQ(q->WaitingGetters(), 0u);
  co_await q->Put(1);
  JoinHandle<void> p = Spawn(PutOne(q, 2));
  co_await WaitUntil([q] { return q->WaitingPutters() == 1; });
  p.Cancel("p");
  const std::string outcome_p = co_await Outcome(&p);
  EXPECT_EQ(outcome_p, "cancelled:p");
  EXPECT_EQ(q->WaitingPutters(), 0u);
  EXPECT_EQ(q->TryGet(), std::optional<int>(1));
  EXPECT_TRUE(q->Empty());
}

TEST(SyncTest, QueueWaitingGetterAndPutterRaiseCancelledError) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 2});
  Queue<int> q(1);
  rt.BlockOn(CancelWaitingGetterAndPutter(&q));
}

// The seeds' worker pool: a producer, a bounded queue, three workers.
struct PoolState {
  static constexpr int kJobs = 20;
  Queue<int> q{5};
  std::array<std::atomic<int>, kJobs> processed{};
  Recorder order;
};

Task<void> PoolWorker(PoolState* st) {
  for (;;) {
    const int job = co_await st->q.Get();
    co_await Sleep(milliseconds(1 + job % 4));
    st->processed[static_cast<std::size_t>(job)].fetch_add(1);
    st->order.Add(job);
    st->q.TaskDone();
  }
}

Task<void> PoolProducer(PoolState* st) {
  for (int j = 0; j < PoolState::kJobs; ++j) co_await st->q.Put(j);
}

Task<void> PoolMain(PoolState* st) {
  std::vector<JoinHandle<void>> workers;
  for (int i = 0; i < 3; ++i) workers.push_back(Spawn(PoolWorker(st)));
  JoinHandle<void> producer = Spawn(PoolProducer(st));
  co_await producer;
  co_await st->q.Join();
  for (auto& w : workers) EXPECT_TRUE(w.Cancel("shutdown"));
  for (auto& w : workers) {
    const std::string outcome = co_await Outcome(&w);
    EXPECT_EQ(outcome, "cancelled:shutdown");
    EXPECT_TRUE(w.Cancelled());
  }
}

TEST(SyncTest, QueueWorkerPoolProcessesEveryJobOnce) {
  Watchdog dog(seconds(60));
  Runtime rt(RuntimeOptions{.workers = 2});
  PoolState st;
  rt.BlockOn(PoolMain(&st));
  for (int j = 0; j < PoolState::kJobs; ++j) {
    EXPECT_EQ(st.processed[static_cast<std::size_t>(j)].load(), 1)
        << "job " << j;
  }
  EXPECT_EQ(st.order.ids().size(), static_cast<std::size_t>(PoolState::kJobs));
  EXPECT_TRUE(st.q.Empty());
  EXPECT_EQ(st.q.Unfinished(), 0u);
}

// Producers and consumers on both workers, consumers cancelled at random:
// every item is consumed exactly once (Join would hang on a lost one).
struct QueueStressState {
  explicit QueueStressState(std::size_t n) : seen(n) {}
  Queue<std::size_t> q{8};
  std::vector<std::atomic<int>> seen;
};

Task<void> StressProducer(QueueStressState* st, std::size_t first,
                          std::size_t step, std::size_t n) {
  for (std::size_t i = first; i < n; i += step) co_await st->q.Put(i);
}

Task<void> StressConsumerCancelSafe(QueueStressState* st) {
  for (;;) {
    const std::size_t item = co_await st->q.Get();
    st->seen[item].fetch_add(1);
    st->q.TaskDone();
    if (item % 5 == 0) co_await Yield();  // cancellation may land here too
  }
}

Task<void> QueueStressMainSafe(QueueStressState* st, std::size_t n,
                               std::uint64_t seed) {
  constexpr std::size_t kProducers = 4;
  constexpr std::size_t kConsumers = 16;
  std::vector<JoinHandle<void>> consumers;
  for (std::size_t i = 0; i < kConsumers; ++i) {
    consumers.push_back(Spawn(StressConsumerCancelSafe(st)));
  }
  std::vector<JoinHandle<void>> producers;
  for (std::size_t p = 0; p < kProducers; ++p) {
    producers.push_back(Spawn(StressProducer(st, p, kProducers, n)));
  }
  for (std::size_t i = 2; i < kConsumers; ++i) {
    co_await Sleep(std::chrono::microseconds(Mix(seed ^ i) % 500));
    consumers[i].Cancel("stress");
  }
  for (auto& p : producers) co_await p;
  co_await st->q.Join();
  for (auto& c : consumers) c.Cancel("done");
  for (auto& c : consumers) {
    const std::string outcome = co_await Outcome(&c);
    EXPECT_NE(outcome, "ok");
  }
}

TEST(SyncTest, QueueStressEveryItemConsumedOnceWhileConsumersAreCancelled) {
  Watchdog dog(seconds(300));
  Runtime rt(RuntimeOptions{.workers = 2});
  const std::size_t n = Scaled(50000);
  const std::uint64_t seed = 0x5eed0002;
  SCOPED_TRACE("seed " + std::to_string(seed) + ", items " + std::to_string(n));
  QueueStressState st(n);
  rt.BlockOn(QueueStressMainSafe(&st, n, seed));
  std::size_t bad = 0;
  for (std::size_t i = 0; i < n; ++i) bad += st.seen[i].load() != 1;
  EXPECT_EQ(bad, 0u);
  EXPECT_TRUE(st.q.Empty());
  EXPECT_EQ(st.q.Unfinished(), 0u);
  EXPECT_EQ(st.q.WaitingGetters(), 0u);
}

}  // namespace
}  // namespace awaitd::runtime
