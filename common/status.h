// Status helpers Abseil 20220623 does not ship.
//
//   absl::Status Load() {
//     AWAITD_RETURN_IF_ERROR(Open());
//     ...
//   }
//
// Thread safety: macros over the caller's own values.
#ifndef AWAITD_COMMON_STATUS_H_
#define AWAITD_COMMON_STATUS_H_

#include "absl/status/status.h"

// Returns from the enclosing function with the status if it is not OK.
#define AWAITD_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    const ::absl::Status awaitd_status_ = (expr);    \
    if (!awaitd_status_.ok()) return awaitd_status_; \
  } while (false)

#endif  // AWAITD_COMMON_STATUS_H_
