// Two job kinds of "a C++ team", registered either by a program that embeds
// the daemon (main.cc) or by a plugin the stock awaitd loads (plugin.cc):
//   word_count {text, min_length}  on the event loop
//   resolve {host}                 on the blocking pool (getaddrinfo)
#ifndef AWAITD_EXAMPLES_CUSTOM_KIND_KINDS_H_
#define AWAITD_EXAMPLES_CUSTOM_KIND_KINDS_H_

#include "absl/status/status.h"
#include "server/kinds/job_kind.h"

namespace custom_kind {

absl::Status RegisterKinds(awaitd::server::JobKindRegistry& kinds);

}  // namespace custom_kind

#endif  // AWAITD_EXAMPLES_CUSTOM_KIND_KINDS_H_
