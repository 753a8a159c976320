// String helpers over Abseil that accept std::string_view.
//
// Debian's Abseil 20220623 is built with ABSL_OPTION_USE_STD_STRING_VIEW=0:
// absl::string_view is its own type, and absl::StrCat and friends do not take
// a std::string_view. These thin wrappers convert, so the daemon and the
// client can use std::string_view everywhere.
//
// Thread safety: pure functions.
#ifndef AWAITD_COMMON_STRINGS_H_
#define AWAITD_COMMON_STRINGS_H_

#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace awaitd {

inline absl::string_view AbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

namespace strings_internal {
template <typename T>
decltype(auto) Adapt(const T& v) {
  if constexpr (std::is_same_v<T, std::string_view>) {
    return AbslView(v);
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

template <typename Int>
bool SimpleAtoi(std::string_view text, Int* out) {
  return absl::SimpleAtoi(AbslView(text), out);
}

inline std::string CHexEscape(std::string_view s) {
  return absl::CHexEscape(AbslView(s));
}

}  // namespace awaitd

#endif  // AWAITD_COMMON_STRINGS_H_
