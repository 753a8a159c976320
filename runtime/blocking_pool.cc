// Elastic pool of threads for blocking work; see blocking_pool.h.
#include "runtime/blocking_pool.h"

#include <pthread.h>

#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

namespace awaitd::runtime {

BlockingPool::BlockingPool(Options options) : options_(std::move(options)) {
  internal::MutexLock lock(&mu_);
  for (std::uint32_t i = 0; i < options_.min_threads; ++i) {
    (void)SpawnThreadLocked();  // one that cannot start is missing
  }
}

BlockingPool::~BlockingPool() { Shutdown(); }

BlockingPool::SubmitResult BlockingPool::Submit(Job* job) {
  job->next = nullptr;
  internal::MutexLock lock(&mu_);
  if (shutdown_) return {Refusal::kShutdown, {}};
  if (idle_ > pending_wakeups_) {
    ++pending_wakeups_;
    work_cv_.Signal();
  } else if (threads_ < options_.max_threads) {
    // Started before the job is queued, so a refused job was never seen by
    // any thread. (The new thread waits for mu_ before it looks.)
    if (const std::error_code ec = SpawnThreadLocked(); ec) {
      return {Refusal::kNoThread,
              "cannot start a blocking-pool thread: " + ec.message() + " (" +
                  std::to_string(threads_) + " threads, at most " +
                  std::to_string(options_.max_threads) + ")"};
    }
  }
  // Otherwise every thread is busy and the pool is at its maximum: the job
  // waits for the next thread to finish.
  if (tail_ == nullptr) {
    head_ = job;
  } else {
    tail_->next = job;
  }
  tail_ = job;
  ++queued_;
  return {};
}

std::error_code BlockingPool::SpawnThreadLocked() {
  // Detached: a retiring thread cannot join itself. Shutdown waits on
  // `threads_` instead, and a thread touches no member after it has
  // decremented it.
  std::function<void()> body = [this] { ThreadMain(); };
  std::error_code ec;
  if (options_.start_thread) {
    ec = options_.start_thread(std::move(body));
  } else {
    try {
      std::thread(std::move(body)).detach();
    } catch (const std::system_error& e) {
      ec = e.code();
    } catch (const std::bad_alloc&) {
      ec = std::make_error_code(std::errc::not_enough_memory);
    }
  }
  if (!ec) ++threads_;  // the thread waits for mu_, held here
  return ec;
}

void BlockingPool::ThreadMain() {
  {
    std::string name = options_.thread_name.substr(0, 15);
    pthread_setname_np(pthread_self(), name.c_str());
  }
  internal::MutexLock lock(&mu_);
  for (;;) {
    if (Job* job = head_) {
      head_ = job->next;
      if (head_ == nullptr) tail_ = nullptr;
      --queued_;
      mu_.Unlock();
      job->run(job);
      mu_.Lock();
      ++completed_;
      job->complete(job, /*cancelled=*/false);
      continue;
    }
    if (shutdown_) break;
    ++idle_;
    const auto deadline =
        std::chrono::steady_clock::now() + options_.keep_alive;
    bool timed_out = false;
    while (head_ == nullptr && !shutdown_ && pending_wakeups_ == 0) {
      if (!work_cv_.WaitUntil(&mu_, deadline)) {
        timed_out = true;
        break;
      }
    }
    --idle_;
    if (pending_wakeups_ > 0) --pending_wakeups_;
    if (timed_out && head_ == nullptr && !shutdown_ &&
        threads_ > options_.min_threads) {
      ++retired_;
      break;
    }
  }
  --threads_;
  exit_cv_.SignalAll();
  // `lock` releases mu_ here; after that this thread touches nothing of the
  // pool, which Shutdown may already be destroying.
}

void BlockingPool::Shutdown() {
  Job* cancelled;
  {
    internal::MutexLock lock(&mu_);
    if (shutdown_ && threads_ == 0 && head_ == nullptr) return;
    shutdown_ = true;
    cancelled = head_;
    head_ = tail_ = nullptr;
    queued_ = 0;
    work_cv_.SignalAll();
  }
  while (cancelled != nullptr) {
    Job* next = cancelled->next;
    cancelled->complete(cancelled, /*cancelled=*/true);
    cancelled = next;
  }
  internal::MutexLock lock(&mu_);
  while (threads_ > 0) exit_cv_.Wait(&mu_);
}

BlockingPoolMetrics BlockingPool::Metrics() const {
  internal::MutexLock lock(&mu_);
  return {threads_, idle_, queued_, completed_, retired_};
}

}  // namespace awaitd::runtime
