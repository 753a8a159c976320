// Queue, PriorityQueue, LifoQueue: asyncio.Queue and friends for tasks.
// Producer/consumer queues whose Put and Get suspend the task (never block a
// worker thread) while the queue is full or empty.
//
// Example (the seeds' worker pool):
//
//   Task<void> Worker(Queue<Job>* q) {
//     for (;;) {
//       Job job = co_await q->Get();
//       co_await Process(job);
//       q->TaskDone();
//     }
//   }
//   Task<void> Main() {
//     Queue<Job> q(/*maxsize=*/5);
//     std::vector<JoinHandle<void>> workers;
//     for (int i = 0; i < 3; ++i) workers.push_back(Spawn(Worker(&q)));
//     for (Job& j : jobs) co_await q.Put(std::move(j));  // waits while full
//     co_await q.Join();                                  // every job done
//     for (auto& w : workers) w.Cancel();
//     for (auto& w : workers) { try { co_await w; } catch (const
//     CancelledError&) {} }
//   }
//
// Semantics (asyncio 3.12):
//   - maxsize 0 means unbounded. Put waits while the queue holds maxsize
//     items; Get waits while it is empty. Both serve their waiters first in,
//     first out, and neither lets a new caller overtake a waiter.
//   - Queue is FIFO; LifoQueue returns the newest item; PriorityQueue the
//     smallest by `Compare` (std::less: smallest first, like heapq), and
//     equal items in insertion order.
//   - A waiting getter is handed its item the moment one is available (the
//     first item by the queue's order), so the first getter to wait gets the
//     first item put, whatever order the woken tasks then run in on the
//     workers. A waiting putter is given a slot the moment one frees up, and
//     with it its item's place in the queue's order; it adds the item there
//     when it resumes. Items and slots given to woken tasks
//     that have not run yet are theirs: TryGet/TryPut cannot take them
//     (asyncio's get_nowait/put_nowait could, sending the woken task back to
//     the end of the line; we keep strict FIFO). Size(), Empty() and Full()
//     count handed items as still queued, like asyncio's qsize(), so Empty()
//     can be false while TryGet finds nothing to take.
//     One difference follows for PriorityQueue and LifoQueue: asyncio's woken
//     getter takes the best item present when it *runs*, ours the best
//     present when it was *woken* (for a waiting getter that is the first
//     item put, as the queue was empty).
//   - TryPut/TryGet are put_nowait/get_nowait, returning false/nullopt
//     instead of raising QueueFull/QueueEmpty.
//   - Every item put counts as unfinished until a TaskDone() for it; Join()
//     waits until none is unfinished (returns at once if none is). TaskDone
//     called more times than items were put throws std::logic_error
//     (asyncio's ValueError("task_done() called too many times"): it is a
//     broken caller invariant rather than a bad argument).
//   - Cancellation: Get, Put and Join raise CancelledError(message) when the
//     waiting task is cancelled. A cancelled getter takes no item and a
//     cancelled putter puts nothing. If a getter is cancelled after an item
//     was handed to it but before it ran, the item goes back to where it was
//     (the front of a Queue) and on to the next getter, as asyncio leaves it
//     in the queue and wakes the next getter; a putter cancelled likewise
//     passes its slot on. No item is ever lost. A Put/Get that does not have
//     to wait does not suspend and never raises.
//
// Lifetime: the queue must outlive every task waiting on it.
//
// Thread safety: safe for concurrent use from tasks on any worker; TryPut,
// TryGet, TaskDone and the queries may be called from any thread. Each
// awaiter is used once, inside a task. T must be movable.
#ifndef AWAITD_RUNTIME_QUEUE_H_
#define AWAITD_RUNTIME_QUEUE_H_

#include <algorithm>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "runtime/errors.h"
#include "runtime/internal/context.h"
#include "runtime/internal/mutex.h"
#include "runtime/internal/sync_waiter.h"

namespace awaitd::runtime {

namespace internal {

// An item with its put order (a sequence number), so that an item handed
// to a getter that was cancelled before it ran can go back where it was.
template <typename T>
struct QueueEntry {
  std::uint64_t seq;
  T item;
};

// Item stores: the order in which a queue hands out its items. Each keeps
// its entries so that PutBack restores an entry taken by Pop to the place
// its sequence number gives it (in front of every entry put after it).
template <typename T>
class FifoStore {
 public:
  using Entry = QueueEntry<T>;
  bool empty() const noexcept { return entries_.empty(); }
  std::size_t size() const noexcept { return entries_.size(); }
  void Push(Entry e) { entries_.push_back(std::move(e)); }  // e is the newest
  Entry Pop() {
    Entry e = std::move(entries_.front());
    entries_.pop_front();
    return e;
  }
  void PutBack(Entry e) {
    entries_.insert(SeqUpperBound(entries_, e.seq), std::move(e));
  }

  // Entries are kept sorted by seq (Push appends the newest).
  static auto SeqUpperBound(std::deque<Entry>& entries, std::uint64_t seq) {
    return std::upper_bound(
        entries.begin(), entries.end(), seq,
        [](std::uint64_t s, const Entry& e) { return s < e.seq; });
  }

 private:
  std::deque<Entry> entries_;
};

template <typename T>
class LifoStore {
 public:
  using Entry = QueueEntry<T>;
  bool empty() const noexcept { return entries_.empty(); }
  std::size_t size() const noexcept { return entries_.size(); }
  void Push(Entry e) { entries_.push_back(std::move(e)); }
  Entry Pop() {
    Entry e = std::move(entries_.back());
    entries_.pop_back();
    return e;
  }
  void PutBack(Entry e) {
    entries_.insert(FifoStore<T>::SeqUpperBound(entries_, e.seq), std::move(e));
  }

 private:
  std::deque<Entry> entries_;  // sorted by seq, newest at the back
};

// A binary heap; the sequence number keeps equal items in put order.
template <typename T, typename Compare>
class PriorityStore {
 public:
  using Entry = QueueEntry<T>;
  bool empty() const noexcept { return heap_.empty(); }
  std::size_t size() const noexcept { return heap_.size(); }
  void Push(Entry e) {
    heap_.push_back(std::move(e));
    std::push_heap(heap_.begin(), heap_.end(), Later{&compare_});
  }
  Entry Pop() {
    std::pop_heap(heap_.begin(), heap_.end(), Later{&compare_});
    Entry e = std::move(heap_.back());
    heap_.pop_back();
    return e;
  }
  void PutBack(Entry e) { Push(std::move(e)); }

 private:
  // The heap's "less": a is served after b. std heaps put the greatest on
  // top, so the first to serve must be the greatest.
  struct Later {
    const Compare* compare;
    bool operator()(const Entry& a, const Entry& b) const {
      if ((*compare)(b.item, a.item)) return true;
      if ((*compare)(a.item, b.item)) return false;
      return a.seq > b.seq;
    }
  };

  Compare compare_;
  std::vector<Entry> heap_;
};

// The queue proper, for any store. See the file comment.
//
// Invariants (under mu_):
//   - An item in store_ implies no getter waits, and a free slot
//     (maxsize_ == 0 || store_.size() + handed_ + reserved_ < maxsize_)
//     implies no putter waits: every change that adds an item or frees a
//     slot hands it to the first live waiter at once (PumpLocked).
//   - handed_ items sit in the nodes of getters that were woken and have not
//     run yet; reserved_ slots belong to putters woken and not run yet. Both
//     count against maxsize_, and handed_ items count in Size().
template <typename T, typename Store>
class BasicQueue {
  using Entry = QueueEntry<T>;
  struct GetNode : SyncWaiter {
    std::optional<Entry> entry;  // set (under mu_) when fired
  };
  struct PutNode : SyncWaiter {
    std::uint64_t seq = 0;  // its place in the queue's order, set when fired
  };

 public:
  class [[nodiscard]] GetAwaiter {
   public:
    explicit GetAwaiter(BasicQueue* q) noexcept : q_(q) {}
    GetAwaiter(const GetAwaiter&) = delete;
    GetAwaiter& operator=(const GetAwaiter&) = delete;

    bool await_ready() {
      WakeList wakes;  // wakes after the unlock
      MutexLock lock(&q_->mu_);
      return q_->TryGetLocked(&item_, &wakes);
    }

    bool await_suspend(std::coroutine_handle<> h) {
      TaskHeader* task = RequireCurrentTask("Queue::Get");
      task->set_resume_point(h);
      {
        WakeList wakes;
        MutexLock lock(&q_->mu_);
        if (q_->TryGetLocked(&item_, &wakes)) return false;  // put meanwhile
        wait_.Enqueue(task, &q_->mu_, &q_->getters_);
      }
      wait_.Suspend();
      return true;
    }

    T await_resume() {
      if (!wait_.published()) return std::move(*item_);
      const bool cancelled = wait_.End();
      if (wait_.fired()) {
        // An item was handed to us (wait_.node.entry, written under mu_).
        WakeList wakes;
        MutexLock lock(&q_->mu_);
        --q_->handed_;
        if (cancelled) {
          // Back where it was, then on to the next getter if there is one.
          q_->store_.PutBack(std::move(*wait_.node.entry));
          wait_.node.entry.reset();
        }
        q_->PumpLocked(&wakes);
      }
      if (cancelled) throw CancelledError(wait_.task()->CancelMessage());
      return std::move(wait_.node.entry->item);
    }

   private:
    BasicQueue* const q_;
    std::optional<T> item_;  // fast path
    SyncWait<GetNode> wait_;
  };

  class [[nodiscard]] PutAwaiter {
   public:
    PutAwaiter(BasicQueue* q, T item) : q_(q), item_(std::move(item)) {}
    PutAwaiter(const PutAwaiter&) = delete;
    PutAwaiter& operator=(const PutAwaiter&) = delete;

    bool await_ready() {
      WakeList wakes;
      MutexLock lock(&q_->mu_);
      return q_->TryPutLocked(&item_, &wakes);
    }

    bool await_suspend(std::coroutine_handle<> h) {
      TaskHeader* task = RequireCurrentTask("Queue::Put");
      task->set_resume_point(h);
      {
        WakeList wakes;
        MutexLock lock(&q_->mu_);
        if (q_->TryPutLocked(&item_, &wakes)) return false;  // room meanwhile
        wait_.Enqueue(task, &q_->mu_, &q_->putters_);
      }
      wait_.Suspend();
      return true;
    }

    void await_resume() {
      if (!wait_.published()) return;
      const bool cancelled = wait_.End();
      if (wait_.fired()) {
        // A slot was reserved for us: fill it, or pass it on.
        WakeList wakes;
        MutexLock lock(&q_->mu_);
        --q_->reserved_;
        if (!cancelled) {
          // In the place it was given when the slot was granted, so that
          // putters woken together keep their order whichever runs first.
          q_->store_.PutBack(Entry{wait_.node.seq, std::move(item_)});
          ++q_->unfinished_;
        }
        q_->PumpLocked(&wakes);
      }
      if (cancelled) throw CancelledError(wait_.task()->CancelMessage());
    }

   private:
    BasicQueue* const q_;
    T item_;
    SyncWait<PutNode> wait_;
  };

  class [[nodiscard]] JoinAwaiter {
   public:
    explicit JoinAwaiter(BasicQueue* q) noexcept : q_(q) {}
    JoinAwaiter(const JoinAwaiter&) = delete;
    JoinAwaiter& operator=(const JoinAwaiter&) = delete;

    bool await_ready() {
      MutexLock lock(&q_->mu_);
      return q_->unfinished_ == 0;
    }

    bool await_suspend(std::coroutine_handle<> h) {
      TaskHeader* task = RequireCurrentTask("Queue::Join");
      task->set_resume_point(h);
      {
        MutexLock lock(&q_->mu_);
        if (q_->unfinished_ == 0) return false;
        wait_.Enqueue(task, &q_->mu_, &q_->joiners_);
      }
      wait_.Suspend();
      return true;
    }

    void await_resume() { wait_.EndOrRaise(); }

   private:
    BasicQueue* const q_;
    SyncWait<> wait_;
  };

  // maxsize 0: unbounded.
  explicit BasicQueue(std::size_t maxsize = 0) : maxsize_(maxsize) {}
  BasicQueue(const BasicQueue&) = delete;
  BasicQueue& operator=(const BasicQueue&) = delete;
  ~BasicQueue() {
    // Anyone still linked is a frame the runtime destroys at shutdown.
    MutexLock lock(&mu_);
    getters_.DetachAll();
    putters_.DetachAll();
    joiners_.DetachAll();
  }

  // Removes and returns an item, suspending the task while the queue is
  // empty. Raises CancelledError (taking nothing) if cancelled meanwhile.
  GetAwaiter Get() noexcept { return GetAwaiter(this); }
  // Adds `item`, suspending the task while the queue is full. Raises
  // CancelledError (adding nothing) if cancelled meanwhile.
  PutAwaiter Put(T item) { return PutAwaiter(this, std::move(item)); }
  // Waits until every item put so far got its TaskDone().
  JoinAwaiter Join() noexcept { return JoinAwaiter(this); }

  // put_nowait: adds `item` if that needs no wait; false (leaving `item`
  // untouched) if the queue is full.
  bool TryPut(const T& item) ABSL_LOCKS_EXCLUDED(mu_) {
    WakeList wakes;
    MutexLock lock(&mu_);
    return TryPutLocked(&item, &wakes);
  }
  bool TryPut(T&& item) ABSL_LOCKS_EXCLUDED(mu_) {
    WakeList wakes;
    MutexLock lock(&mu_);
    return TryPutLocked(&item, &wakes);
  }

  // get_nowait: an item if one is there for the taking, else nullopt.
  std::optional<T> TryGet() ABSL_LOCKS_EXCLUDED(mu_) {
    std::optional<T> item;
    WakeList wakes;
    MutexLock lock(&mu_);
    TryGetLocked(&item, &wakes);
    return item;
  }

  // Marks one item as processed. Throws std::logic_error if called more
  // times than items were put.
  void TaskDone() ABSL_LOCKS_EXCLUDED(mu_) {
    WakeList wakes;
    MutexLock lock(&mu_);
    if (unfinished_ == 0)
      throw std::logic_error("task_done() called too many times");
    if (--unfinished_ > 0) return;
    wakes.Reserve(joiners_.size());
    while (SyncWaiter* w = joiners_.PopFired()) wakes.Add(w->task);
  }

  // Items in the queue (asyncio's qsize()), counting those handed to woken
  // getters that have not run yet.
  std::size_t Size() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return store_.size() + handed_;
  }
  bool Empty() const { return Size() == 0; }
  // True if the queue holds maxsize items (never for an unbounded queue).
  bool Full() const { return maxsize_ > 0 && Size() >= maxsize_; }
  std::size_t MaxSize() const noexcept { return maxsize_; }
  // Items put and not yet marked TaskDone().
  std::size_t Unfinished() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return unfinished_;
  }
  // Tasks waiting in Get / in Put (cancelled ones may count for a moment).
  std::size_t WaitingGetters() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return getters_.size();
  }
  std::size_t WaitingPutters() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return putters_.size();
  }

 private:
  bool HasFreeSlotLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return maxsize_ == 0 || store_.size() + handed_ + reserved_ < maxsize_;
  }

  // Adds an item to the store (the caller then pumps it to a getter).
  template <typename U>
  void PushLocked(U&& item) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    store_.Push(Entry{next_seq_, T(std::forward<U>(item))});
    ++next_seq_;
    ++unfinished_;
  }

  // A put that needs no wait: a free slot (by the invariant no putter waits
  // then). Moves from *item only on success.
  template <typename P>
  bool TryPutLocked(P* item, WakeList* wakes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!HasFreeSlotLocked() || !putters_.empty()) return false;
    PushLocked(std::move(*item));
    PumpLocked(wakes);
    return true;
  }

  // A get that needs no wait: an item in the store (by the invariant no
  // getter waits then).
  bool TryGetLocked(std::optional<T>* out, WakeList* wakes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (store_.empty() || !getters_.empty()) return false;
    out->emplace(std::move(store_.Pop().item));
    PumpLocked(wakes);
    return true;
  }

  // Restores the invariants: hands stored items to waiting getters and free
  // slots to waiting putters, first come first served.
  void PumpLocked(WakeList* wakes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (!store_.empty()) {
      SyncWaiter* w = getters_.PopFired();
      if (w == nullptr) break;
      static_cast<GetNode*>(w)->entry.emplace(store_.Pop());
      ++handed_;
      wakes->Add(w->task);
    }
    while (HasFreeSlotLocked()) {
      SyncWaiter* w = putters_.PopFired();
      if (w == nullptr) break;
      static_cast<PutNode*>(w)->seq = next_seq_++;
      ++reserved_;
      wakes->Add(w->task);
    }
  }

  const std::size_t maxsize_;
  mutable Mutex mu_;
  Store store_ ABSL_GUARDED_BY(mu_);
  std::uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  // Items handed to getters that were woken and have not run yet.
  std::size_t handed_ ABSL_GUARDED_BY(mu_) = 0;
  // Slots reserved for putters that were woken and have not run yet.
  std::size_t reserved_ ABSL_GUARDED_BY(mu_) = 0;
  std::size_t unfinished_ ABSL_GUARDED_BY(mu_) = 0;
  SyncWaiterList getters_ ABSL_GUARDED_BY(mu_);
  SyncWaiterList putters_ ABSL_GUARDED_BY(mu_);
  SyncWaiterList joiners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace internal

// asyncio.Queue: first in, first out.
template <typename T>
class Queue : public internal::BasicQueue<T, internal::FifoStore<T>> {
 public:
  using internal::BasicQueue<T, internal::FifoStore<T>>::BasicQueue;
};

// asyncio.PriorityQueue: Get returns the smallest item by `Compare` first;
// equal items in the order they were put.
template <typename T, typename Compare = std::less<T>>
class PriorityQueue
    : public internal::BasicQueue<T, internal::PriorityStore<T, Compare>> {
 public:
  using internal::BasicQueue<T,
                             internal::PriorityStore<T, Compare>>::BasicQueue;
};

// asyncio.LifoQueue: Get returns the most recently put item first.
template <typename T>
class LifoQueue : public internal::BasicQueue<T, internal::LifoStore<T>> {
 public:
  using internal::BasicQueue<T, internal::LifoStore<T>>::BasicQueue;
};

}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_QUEUE_H_
