// The libFuzzer entry points of one fuzz target: built once per request type
// of awaitd.v1.Jobs, with AWAITD_FUZZ_RPC naming it
// (tests/fuzz/CMakeLists.txt).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_harness.h"

#ifndef AWAITD_FUZZ_RPC
#error "AWAITD_FUZZ_RPC must name the RPC (Submit, Get, ...)"
#endif

#define AWAITD_FUZZ_CONCAT_(a, b) a##b
#define AWAITD_FUZZ_CONCAT(a, b) AWAITD_FUZZ_CONCAT_(a, b)

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  awaitd::fuzz::InitDaemon();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  return awaitd::fuzz::AWAITD_FUZZ_CONCAT(Fuzz, AWAITD_FUZZ_RPC)(data, size);
}
