// JoinWait: the awaiter core for waiting on one task's completion.
//
// Used by JoinHandle (cancelling the waiter cancels the awaited task and
// keeps waiting for it, as asyncio's `await task` does) and by Shield
// (cancelling the waiter stops the wait at once and leaves the task alone).
//
// Thread safety: owned by one awaiting task; the callbacks run on other
// threads under the protocol of wait_node.h.
#ifndef AWAITD_RUNTIME_INTERNAL_JOIN_WAIT_H_
#define AWAITD_RUNTIME_INTERNAL_JOIN_WAIT_H_

#include <coroutine>
#include <string>
#include <vector>

#include "runtime/errors.h"
#include "runtime/internal/context.h"
#include "runtime/internal/task_header.h"
#include "runtime/internal/wait_node.h"

namespace awaitd::runtime::internal {

class JoinWait {
 public:
  JoinWait(TaskHeader* target, bool forward_cancel) noexcept
      : target_(target), node_(this, forward_cancel) {
    cb_.owner = this;
    cb_.fn = &JoinWait::OnDone;
  }
  JoinWait(const JoinWait&) = delete;
  JoinWait& operator=(const JoinWait&) = delete;
  ~JoinWait() {
    // Only if the waiting frame is destroyed mid-wait (runtime shutdown).
    if (cb_.linked) target_->RemoveDoneCallback(&cb_);
  }

  bool await_ready() const noexcept { return target_->IsComplete(); }

  bool await_suspend(std::coroutine_handle<> h) {
    TaskHeader* self = RequireCurrentTask("JoinHandle");
    self->set_resume_point(h);
    node_.task = self;
    if (!target_->AddDoneCallback(&cb_)) return false;  // finished meanwhile
    published_ = true;
    self->SuspendOn(&node_);
    return true;
  }

  // Ends the wait; raises CancelledError if the waiting task was cancelled.
  void Resume() {
    if (published_ && node_.task->EndWait(&node_)) {
      throw CancelledError(node_.task->CancelMessage());
    }
  }

 private:
  struct Node : WaitNode {
    Node(JoinWait* o, bool forward)
        : WaitNode(forward ? nullptr : &JoinWait::OnCancel,
                   forward ? &JoinWait::Forward : nullptr),
          owner(o) {}
    JoinWait* owner;
  };
  struct Callback : DoneCallback {
    JoinWait* owner = nullptr;
  };

  static void OnDone(DoneCallback* cb, TaskHeader*) {
    JoinWait* self = static_cast<Callback*>(cb)->owner;
    if (self->node_.TryFire()) self->node_.task->Wake();
  }
  static void OnCancel(WaitNode* n) {
    JoinWait* self = static_cast<Node*>(n)->owner;
    self->target_->RemoveDoneCallback(&self->cb_);
    n->task->Wake();
  }
  static void Forward(WaitNode* n, std::vector<TaskHeader*>* out) {
    JoinWait* self = static_cast<Node*>(n)->owner;
    if (!self->target_->IsComplete()) {
      self->target_->Ref();
      out->push_back(self->target_);
    }
  }

  TaskHeader* const target_;
  Node node_;
  Callback cb_;
  bool published_ = false;
};

}  // namespace awaitd::runtime::internal

#endif  // AWAITD_RUNTIME_INTERNAL_JOIN_WAIT_H_
