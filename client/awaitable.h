// co_await forms of the Client's calls, for tasks on awaitd's runtime.
//
//   runtime::Task<void> FanOut(Client& client) {
//     std::vector<Input> inputs = {Spec("sleep").Arg("seconds", 1),
//                                  Spec("echo").Arg("value", 2)};
//     absl::StatusOr<GatherResult> g =
//         co_await CoGather(client, std::move(inputs));
//     ...
//   }
//
// Build the arguments before the co_await: GCC 12 rejects a braced list
// inside a co_await expression ("array used as initializer"), and destroys
// a capturing lambda temporary there twice (so name callbacks first too).
//
// Each starts the callback form of the call and suspends the task (never the
// worker thread) until the answer arrives. Cancelling the awaiting task
// cancels the RPC, never the jobs, and raises runtime::CancelledError in it
// (asyncio: cancelling a task that awaits a call cancels the call).
//
// Thread safety: as Client; the Client must outlive the awaiting task. Must
// be awaited inside a runtime task.
#ifndef AWAITD_CLIENT_AWAITABLE_H_
#define AWAITD_CLIENT_AWAITABLE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "runtime/task.h"

namespace awaitd::client {

runtime::Task<absl::StatusOr<std::vector<JobRef>>> CoSubmit(
    Client& client, std::vector<Spec> specs, CallOptions call = {});
runtime::Task<absl::StatusOr<std::vector<v1::Job>>> CoGet(
    Client& client, std::vector<std::uint64_t> ids, CallOptions call = {});
runtime::Task<absl::StatusOr<std::vector<v1::CancelResult>>> CoCancel(
    Client& client, std::vector<std::uint64_t> ids, std::string message = "",
    CallOptions call = {});
runtime::Task<absl::StatusOr<WaitResult>> CoWait(Client& client,
                                                 std::vector<Input> inputs,
                                                 WaitOptions options = {},
                                                 CallOptions call = {});
runtime::Task<absl::StatusOr<GatherResult>> CoGather(Client& client,
                                                     std::vector<Input> inputs,
                                                     GatherOptions options = {},
                                                     CallOptions call = {});
runtime::Task<absl::StatusOr<v1::Job>> CoWaitFor(
    Client& client, Input input, std::optional<absl::Duration> timeout = {},
    CallOptions call = {});
runtime::Task<absl::StatusOr<GroupResult>> CoRunGroup(Client& client,
                                                      std::vector<Spec> specs,
                                                      GroupOptions options = {},
                                                      CallOptions call = {});

}  // namespace awaitd::client

#endif  // AWAITD_CLIENT_AWAITABLE_H_
