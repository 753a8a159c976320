// absl::StrCat and absl::StrAppend that also take std::string_view.
//
// Debian's Abseil is built with ABSL_OPTION_USE_STD_STRING_VIEW=0, so
// absl::string_view is its own type and Abseil's string functions do not
// take a std::string_view; these wrappers convert, so awaitctl can use
// std::string_view throughout.
//
// Thread safety: pure functions.
#ifndef AWAITD_CLIENT_AWAITCTL_STRINGS_H_
#define AWAITD_CLIENT_AWAITCTL_STRINGS_H_

#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace awaitd::awaitctl {

inline absl::string_view AV(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

namespace strings_internal {
template <typename T>
decltype(auto) Adapt(const T& v) {
  if constexpr (std::is_same_v<T, std::string_view>) {
    return AV(v);
  } else {
    return (v);
  }
}
}  // namespace strings_internal

template <typename... Args>
std::string StrCat(const Args&... args) {
  return absl::StrCat(strings_internal::Adapt(args)...);
}

template <typename... Args>
void StrAppend(std::string* out, const Args&... args) {
  absl::StrAppend(out, strings_internal::Adapt(args)...);
}

}  // namespace awaitd::awaitctl

#endif  // AWAITD_CLIENT_AWAITCTL_STRINGS_H_
