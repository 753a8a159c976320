// SyncWaiter: the WaitNode of a task suspended on a synchronization
// primitive (Semaphore, Lock, Event, Queue), the primitive's FIFO list of
// them, and the list of tasks to wake once the primitive's mutex is released.
//
// How a primitive uses them (wait_node.h is the protocol):
//   awaiter:   w.Prepare(task, &mu_, &list_) and list_.PushBack(&w) under mu_,
//              then task->SuspendOn(&w) with mu_ released.
//   source:    under mu_, SyncWaiter* w = list_.PopFired() hands the resource
//              (a permit, an item) to the first waiter that was not cancelled
//              and returns it; cancelled ones are dropped on the way, so a
//              resource never goes to a cancelled waiter. The source records
//              w->task in a WakeList declared before its MutexLock, which
//              wakes the tasks after the unlock.
//   cancel:    SyncWaiter::OnCancel unlinks the node under *mu (if the source
//              has not dropped it already) and then wakes the task.
//
// Lifetime: a fired node stays alive until its task is woken (no one resumes
// it before), and a cancelled one until OnCancel has woken it; OnCancel takes
// the mutex before waking, so a source that dropped a cancelled node under
// the mutex is done with it by then. `linked` is cleared before the wake in
// both cases, so after resuming the awaiter may read it without the mutex.
//
// Thread safety: the list and each node's links and `linked` are guarded by
// the owning primitive's mutex (`*mu`); WakeList is used by one thread.
#ifndef AWAITD_RUNTIME_INTERNAL_SYNC_WAITER_H_
#define AWAITD_RUNTIME_INTERNAL_SYNC_WAITER_H_

#include <cstddef>
#include <vector>

#include "runtime/errors.h"
#include "runtime/internal/mutex.h"
#include "runtime/internal/task_header.h"
#include "runtime/internal/wait_node.h"

namespace awaitd::runtime::internal {

class SyncWaiterList;

struct SyncWaiter : WaitNode {
  SyncWaiter() noexcept : WaitNode(&SyncWaiter::OnCancel, nullptr) {}

  // Before linking the node: a source on another thread may fire it (and
  // read `task`) as soon as it is linked.
  void Prepare(TaskHeader* t, Mutex* m, SyncWaiterList* l) noexcept {
    task = t;
    mu = m;
    list = l;
  }

  Mutex* mu = nullptr;
  SyncWaiterList* list = nullptr;
  // Guarded by *mu.
  SyncWaiter* prev = nullptr;
  SyncWaiter* next = nullptr;
  bool linked = false;

  static void OnCancel(WaitNode* n);
};

// An intrusive FIFO list of waiters. Guarded by the primitive's mutex.
class SyncWaiterList {
 public:
  SyncWaiterList() = default;
  SyncWaiterList(const SyncWaiterList&) = delete;
  SyncWaiterList& operator=(const SyncWaiterList&) = delete;

  bool empty() const noexcept { return head_ == nullptr; }
  // Includes cancelled waiters that have not been unlinked yet.
  std::size_t size() const noexcept { return size_; }

  void PushBack(SyncWaiter* w) noexcept {
    w->prev = tail_;
    w->next = nullptr;
    if (tail_ != nullptr) {
      tail_->next = w;
    } else {
      head_ = w;
    }
    tail_ = w;
    w->linked = true;
    ++size_;
  }

  // Requires w->linked.
  void Remove(SyncWaiter* w) noexcept {
    if (w->prev != nullptr) {
      w->prev->next = w->next;
    } else {
      head_ = w->next;
    }
    if (w->next != nullptr) {
      w->next->prev = w->prev;
    } else {
      tail_ = w->prev;
    }
    w->prev = w->next = nullptr;
    w->linked = false;
    --size_;
  }

  // Unlinks waiters from the front until one is fired (it won the race
  // against a cancellation) and returns it, or nullptr if none is left. The
  // caller hands it the resource and wakes w->task. Cancelled waiters are
  // dropped: their OnCancel finds them unlinked.
  SyncWaiter* PopFired() noexcept {
    while (head_ != nullptr) {
      SyncWaiter* w = head_;
      Remove(w);
      if (w->TryFire()) return w;
    }
    return nullptr;
  }

  // Unlinks every waiter without firing it (the primitive is being destroyed,
  // which only happens at runtime shutdown if anyone still waits).
  void DetachAll() noexcept {
    while (head_ != nullptr) Remove(head_);
  }

 private:
  SyncWaiter* head_ = nullptr;
  SyncWaiter* tail_ = nullptr;
  std::size_t size_ = 0;
};

inline void SyncWaiter::OnCancel(WaitNode* n) {
  auto* w = static_cast<SyncWaiter*>(n);
  {
    MutexLock lock(w->mu);
    if (w->linked) w->list->Remove(w);
  }
  w->task->Wake();
}

// Tasks to wake after the primitive's mutex is released: declare it before
// the MutexLock, so that its destructor runs after the unlock. (The woken
// tasks' nodes must not be touched after the unlock: only the task pointers
// are kept, and a task cannot finish before it is woken.)
class WakeList {
 public:
  WakeList() = default;
  WakeList(const WakeList&) = delete;
  WakeList& operator=(const WakeList&) = delete;
  ~WakeList() {
    for (std::size_t i = 0; i < n_inline_; ++i) inline_[i]->Wake();
    for (TaskHeader* t : overflow_) t->Wake();
  }

  // Makes room for `n` more tasks, so that Add does not allocate (and cannot
  // fail) after a waiter was fired.
  void Reserve(std::size_t n) {
    if (n_inline_ + overflow_.size() + n > kInline)
      overflow_.reserve(overflow_.size() + n);
  }

  void Add(TaskHeader* t) {
    if (n_inline_ < kInline) {
      inline_[n_inline_++] = t;
    } else {
      overflow_.push_back(t);
    }
  }

 private:
  static constexpr std::size_t kInline = 4;
  TaskHeader* inline_[kInline];
  std::size_t n_inline_ = 0;
  std::vector<TaskHeader*> overflow_;
};

// The awaiter side of one wait: owns the node, links it, publishes it, ends
// the wait, and unlinks it if the awaiting frame is destroyed mid-wait
// (runtime shutdown). `Node` is SyncWaiter or a subclass carrying a payload.
template <typename Node = SyncWaiter>
class SyncWait {
 public:
  SyncWait() = default;
  SyncWait(const SyncWait&) = delete;
  SyncWait& operator=(const SyncWait&) = delete;
  ~SyncWait() {
    // Reading `linked` without the mutex is safe: after a resume it was
    // cleared before the wake; at shutdown no worker runs. It is still set
    // only if the frame is destroyed mid-wait; a primitive destroyed first
    // detached the node already.
    if (published_ && node.linked) {
      MutexLock lock(node.mu);
      if (node.linked) node.list->Remove(&node);
    }
  }

  // In await_suspend, with `*mu` held, once the awaiter must wait: links the
  // node at the back of `list`. The task's resume point must be set already.
  void Enqueue(TaskHeader* task, Mutex* mu, SyncWaiterList* list)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    node.Prepare(task, mu, list);
    list->PushBack(&node);
    task_ = task;
    published_ = true;
  }

  // In await_suspend, after Enqueue and with the mutex released: publishes
  // the wait (this may deliver a pending cancellation at once).
  void Suspend() { task_->SuspendOn(&node); }

  // True if the awaiter suspended (Enqueue ran).
  bool published() const noexcept { return published_; }

  // In await_resume, if published(): ends the wait. True if the awaiter must
  // raise CancelledError; if fired() as well, the resource was handed over
  // and must be given back first.
  bool End() noexcept { return task_->EndWait(&node); }
  // For waits that hand nothing over (Event::Wait, Queue::Join): ends the
  // wait, if any, and raises CancelledError if it was cancelled.
  void EndOrRaise() {
    if (published_ && End()) throw CancelledError(task_->CancelMessage());
  }
  bool fired() const noexcept { return node.state() == WaitNode::kFired; }
  TaskHeader* task() const noexcept { return task_; }

  Node node;

 private:
  TaskHeader* task_ = nullptr;
  bool published_ = false;
};

}  // namespace awaitd::runtime::internal

#endif  // AWAITD_RUNTIME_INTERNAL_SYNC_WAITER_H_
