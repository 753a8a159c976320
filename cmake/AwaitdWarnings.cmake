include_guard(GLOBAL)

# awaitd_target_warnings(<target>)
#
# Strict warnings for awaitd's own targets only. Third-party headers come in
# through imported targets (or /usr/include) and are therefore SYSTEM includes,
# so their warnings do not trip -Werror. -Wpedantic is deliberately not used:
# coroutine code and Boost headers trigger it.
function(awaitd_target_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall
    -Wextra
    -Werror
    -Wno-missing-field-initializers)
  # Clang checks the ABSL_GUARDED_BY / ABSL_EXCLUSIVE_LOCKS_REQUIRED
  # annotations (`make thread-safety`, run by CI).
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    target_compile_options(${target} PRIVATE -Wthread-safety)
  endif()
endfunction()
