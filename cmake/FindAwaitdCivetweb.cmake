# FindAwaitdCivetweb: civetweb, the HTTP server that serves /metrics
# (server/rpc/metrics.cc), as the imported target AwaitdCivetweb::civetweb.
# It finds the library and its header alone rather than through civetweb's
# own CMake package, which also wants the civetweb program installed.
# Installed next to awaitdConfig.cmake: awaitd::rpc links it, so a program
# that links the installed awaitd::server needs it found too.
include(FindPackageHandleStandardArgs)
find_path(AWAITD_CIVETWEB_INCLUDE_DIR civetweb.h)
find_library(AWAITD_CIVETWEB_LIBRARY NAMES civetweb)
find_package_handle_standard_args(AwaitdCivetweb
  REQUIRED_VARS AWAITD_CIVETWEB_LIBRARY AWAITD_CIVETWEB_INCLUDE_DIR)
if(AwaitdCivetweb_FOUND AND NOT TARGET AwaitdCivetweb::civetweb)
  add_library(AwaitdCivetweb::civetweb UNKNOWN IMPORTED)
  set_target_properties(AwaitdCivetweb::civetweb PROPERTIES
    IMPORTED_LOCATION "${AWAITD_CIVETWEB_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${AWAITD_CIVETWEB_INCLUDE_DIR}")
endif()
