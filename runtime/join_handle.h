// JoinHandle<T>: the awaitable result of a spawned task.
//
// `co_await handle` suspends until the task has finished and yields its
// result, rethrowing its exception; a task that the runtime destroyed at
// shutdown raises CancelledError. A handle is awaited at most once (the
// result is moved out).
//
// Destroying a handle without awaiting it detaches the task, which keeps
// running (as an asyncio Task does when its reference is dropped); Detach()
// says so explicitly. A detached task that fails is logged.
//
// Thread safety: a JoinHandle is externally synchronized (one owner), but it
// may be moved to and awaited from any task on any worker; IsFinished() may
// be called from any thread.
#ifndef AWAITD_RUNTIME_JOIN_HANDLE_H_
#define AWAITD_RUNTIME_JOIN_HANDLE_H_

#include <coroutine>
#include <cstdint>
#include <utility>

#include "runtime/errors.h"
#include "runtime/internal/context.h"
#include "runtime/internal/task_header.h"
#include "runtime/task.h"

namespace awaitd::runtime {

template <typename T>
class [[nodiscard]] JoinHandle {
 public:
  JoinHandle() noexcept = default;
  JoinHandle(JoinHandle&& other) noexcept : header_(std::exchange(other.header_, nullptr)) {}
  JoinHandle& operator=(JoinHandle&& other) noexcept {
    if (this != &other) {
      Reset();
      header_ = std::exchange(other.header_, nullptr);
    }
    return *this;
  }
  JoinHandle(const JoinHandle&) = delete;
  JoinHandle& operator=(const JoinHandle&) = delete;
  ~JoinHandle() { Reset(); }

  bool valid() const noexcept { return header_ != nullptr; }
  // The task's id (as CurrentTaskId() reports inside it). Requires valid().
  std::uint64_t id() const noexcept { return header_->id(); }

  // True once the task finished (returned, raised, or was destroyed).
  bool IsFinished() const noexcept { return header_->IsComplete(); }

  // Lets the task run on without anyone awaiting it.
  void Detach() noexcept { Reset(); }

  class Awaiter {
   public:
    explicit Awaiter(internal::TaskHeader* h) noexcept : header_(h) {}
    bool await_ready() const noexcept { return header_->IsComplete(); }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      internal::TaskHeader* self = internal::RequireCurrentTask("JoinHandle");
      self->set_resume_point(h);
      // False: it completed meanwhile, resume at once.
      return header_->SetJoinWaker(self);
    }
    T await_resume() {
      if (header_->LoadState() & internal::TaskHeader::kCancelled) {
        throw CancelledError("task was cancelled");
      }
      using Handle = std::coroutine_handle<internal::Promise<T>>;
      return Handle::from_address(header_->root().address()).promise().TakeResult();
    }

   private:
    internal::TaskHeader* header_;
  };

  // Requires valid().
  Awaiter operator co_await() & noexcept { return Awaiter(header_); }
  Awaiter operator co_await() && noexcept { return Awaiter(header_); }

 private:
  friend class Runtime;
  template <typename U>
  friend JoinHandle<U> Spawn(Task<U> task);
  explicit JoinHandle(internal::TaskHeader* h) noexcept : header_(h) {}

  void Reset() noexcept {
    if (header_ != nullptr) {
      header_->DropJoinInterest();
      std::exchange(header_, nullptr)->Unref();
    }
  }

  internal::TaskHeader* header_ = nullptr;
};

}  // namespace awaitd::runtime

#endif  // AWAITD_RUNTIME_JOIN_HANDLE_H_
