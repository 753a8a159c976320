// Exception classification helpers.
#include "runtime/errors.h"

#include <typeinfo>

namespace awaitd::runtime::internal {

bool IsCancelledError(const std::exception_ptr& e) noexcept {
  if (!e) return false;
#if defined(__GLIBCXX__)
  if (const std::type_info* t = e.__cxa_exception_type(); t != nullptr) {
    if (*t == typeid(CancelledError)) return true;
  }
#endif
  // Slow path: a type derived from CancelledError, or another library.
  try {
    std::rethrow_exception(e);
  } catch (const CancelledError&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace awaitd::runtime::internal
