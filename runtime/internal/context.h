// Thread-local context: which worker and which task the calling thread is
// running. Set only by Worker; read by awaiters and free functions.
#ifndef AWAITD_RUNTIME_INTERNAL_CONTEXT_H_
#define AWAITD_RUNTIME_INTERNAL_CONTEXT_H_

#include "runtime/internal/task_header.h"

namespace awaitd::runtime::internal {

class Worker;

struct ThreadContext {
  Worker* worker = nullptr;
  TaskHeader* task = nullptr;  // the task being run, null between tasks
};

inline thread_local ThreadContext tl_context;

inline TaskHeader* CurrentTaskHeader() { return tl_context.task; }

// For awaiters: the running task, which must exist (it is a programming
// error to await a runtime primitive outside a spawned task). Aborts with a
// message otherwise.
TaskHeader* RequireCurrentTask(const char* what);

}  // namespace awaitd::runtime::internal

#endif  // AWAITD_RUNTIME_INTERNAL_CONTEXT_H_
