// Runtime construction and shutdown.
#include "runtime/runtime.h"

namespace awaitd::runtime {

Runtime::Runtime(RuntimeOptions options)
    : policy_(options.shutdown_policy), grace_(options.shutdown_grace) {
  scheduler_ = std::make_unique<internal::Scheduler>(std::move(options));
  scheduler_->Start();
}

Runtime::~Runtime() { Shutdown(); }

bool Runtime::Shutdown(ShutdownPolicy policy, std::chrono::nanoseconds grace) {
  return scheduler_->Shutdown(policy, grace);
}

}  // namespace awaitd::runtime
