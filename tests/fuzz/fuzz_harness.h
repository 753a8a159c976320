// The libFuzzer harness of tests/fuzz: one in-process daemon per fuzzer
// process, and one entry point per request type of awaitd.v1.Jobs that sends
// a fuzzed request through the real gRPC service into the job manager.
//
//   // fuzz_main.cc, built once per RPC (AWAITD_FUZZ_RPC=Submit, ...):
//   extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
//     return awaitd::fuzz::FuzzSubmit(data, size);
//   }
//
// Each input is the binary encoding of that RPC's request message. An input
// that does not parse (with protobuf's default limits, the ones the daemon's
// gRPC server applies) is refused (-1: libFuzzer keeps it out of the corpus);
// the others are sent, with a short gRPC deadline, to a daemon that listens
// on 127.0.0.1:0 and stores its jobs (durability async) in a fresh mkdtemp
// directory. What must hold for every input, else the harness prints the
// request and aborts (libFuzzer then saves the input as crash-<sha1>):
//   - the daemon does not crash (ASan/UBSan report memory and UB errors);
//   - the reply's status is one the API documents for that RPC (or the
//     client's own DEADLINE_EXCEEDED), and an INVALID_ARGUMENT, NOT_FOUND,
//     RESOURCE_EXHAUSTED or FAILED_PRECONDITION message is not empty;
//   - an OK reply has the shape the API promises (one result per input, ...);
//   - afterwards the daemon still answers (grpc.health.v1 SERVING, and a Get
//     through the Jobs service).
// Between inputs every job not done is cancelled (JobManager::CancelAll),
// and the daemon's limits are small, so that state does not pile up.
//
// Ids 1..256 in a request name recent jobs, 1 the newest (kRelativeIds in
// the .cc), so that a seed "Gather of ids 1, 2, 3" reaches the jobs and
// groups earlier inputs created whenever it runs; others are sent as they
// are. The daemon's state carries over from input to input, so a finding
// may need the inputs before it to reproduce.
//
// Environment (all optional):
//   AWAITD_FUZZ_DEADLINE_MS   the deadline of each fuzzed call (default 30);
//   AWAITD_FUZZ_DURABILITY    "async" (default), "sync" or "none";
//   AWAITD_FUZZ_VERBOSE=1     print every call's status.
//
// Thread safety: libFuzzer calls the entry points from one thread.
#ifndef AWAITD_TESTS_FUZZ_FUZZ_HARNESS_H_
#define AWAITD_TESTS_FUZZ_FUZZ_HARNESS_H_

#include <cstddef>
#include <cstdint>

namespace awaitd::fuzz {

// Starts the daemon (once per process; aborts if it cannot start).
void InitDaemon();

int FuzzSubmit(const std::uint8_t* data, std::size_t size);
int FuzzGet(const std::uint8_t* data, std::size_t size);
int FuzzCancel(const std::uint8_t* data, std::size_t size);
int FuzzWait(const std::uint8_t* data, std::size_t size);
int FuzzGather(const std::uint8_t* data, std::size_t size);
int FuzzWaitFor(const std::uint8_t* data, std::size_t size);
int FuzzAsCompleted(const std::uint8_t* data, std::size_t size);
int FuzzRunGroup(const std::uint8_t* data, std::size_t size);
int FuzzWatch(const std::uint8_t* data, std::size_t size);
int FuzzList(const std::uint8_t* data, std::size_t size);
int FuzzDeclareLimit(const std::uint8_t* data, std::size_t size);
// ListLimitsRequest and ListKindsRequest have no fields: the input's first
// byte picks one, the rest is parsed as that (empty) message, so unknown
// fields are what gets fuzzed.
int FuzzListLimitsAndKinds(const std::uint8_t* data, std::size_t size);

}  // namespace awaitd::fuzz

#endif  // AWAITD_TESTS_FUZZ_FUZZ_HARNESS_H_
