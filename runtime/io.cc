// CurrentIoContext.
#include "runtime/io.h"

#include <cstdio>
#include <cstdlib>

#include "runtime/internal/worker.h"

namespace awaitd::runtime {

boost::asio::io_context& CurrentIoContext() {
  internal::Worker* w = internal::Worker::Current();
  if (w == nullptr) {
    std::fprintf(
        stderr, "awaitd runtime: CurrentIoContext() called outside a worker\n");
    std::abort();
  }
  return w->io_context();
}

}  // namespace awaitd::runtime
