// SeqCstFence: a sequentially consistent fence that ThreadSanitizer builds
// accept.
//
// The parking handshakes (worker.cc, idle.cc) pair two seq_cst fences so that
// a worker going to sleep and a thread publishing work cannot both miss each
// other. GCC's TSan does not support atomic_thread_fence (-Wtsan, an error
// under -Werror) and TSan does not model fences anyway; there a seq_cst
// read-modify-write of a private atomic stands in, which is a full barrier on
// x86-64, the only target the sanitizer builds run on.
#ifndef AWAITD_RUNTIME_INTERNAL_FENCE_H_
#define AWAITD_RUNTIME_INTERNAL_FENCE_H_

#include <atomic>

namespace awaitd::runtime::internal {

inline void SeqCstFence() noexcept {
#if defined(__SANITIZE_THREAD__)
  static std::atomic<int> dummy{0};
  dummy.fetch_add(0, std::memory_order_seq_cst);
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

}  // namespace awaitd::runtime::internal

#endif  // AWAITD_RUNTIME_INTERNAL_FENCE_H_
