# What `cmake --install <build> [--prefix P]` installs:
#   bin/awaitd, bin/awaitctl
#   lib/libawaitd_{client,proto,runtime}.a, the client side, and
#   lib/libawaitd_{common,kinds,store,jobs,rpc,daemon}.a, the daemon as a
#   library, with their headers under include/awaitd/ (client/, runtime/,
#   common/, server/, awaitd/v1/, grpc/health/v1/ and the generated
#   awaitd_store.pb.h, server/kinds/plugin_fingerprint.h)
#   lib/cmake/awaitd/: a CMake package, so another project can write
#     find_package(awaitd CONFIG REQUIRED)
#     target_link_libraries(app PRIVATE awaitd::client)   # a client
#     target_link_libraries(app PRIVATE awaitd::server)   # a daemon with its
#                                                         # own kinds
#     target_link_libraries(kinds PRIVATE awaitd::plugin) # a MODULE plugin
# tests/client/install_test.sh installs into a temporary prefix and builds a
# program against that package; tests/server/sdk_install_test.sh builds
# examples/custom_kind/ (both ways) against it and runs them.
include(CMakePackageConfigHelpers)

set(AWAITD_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/awaitd)
set(AWAITD_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/awaitd)

install(TARGETS awaitd awaitctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# awaitd_<name> is exported as awaitd::<name>.
set(_awaitd_installed_libraries client proto runtime common kinds plugin
    store jobs rpc daemon server)
foreach(name IN LISTS _awaitd_installed_libraries)
  set_target_properties(awaitd_${name} PROPERTIES EXPORT_NAME ${name})
endforeach()
list(TRANSFORM _awaitd_installed_libraries PREPEND awaitd_)
install(TARGETS ${_awaitd_installed_libraries}
  EXPORT awaitdTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})

install(DIRECTORY ${PROJECT_SOURCE_DIR}/client/
  DESTINATION ${AWAITD_INSTALL_INCLUDEDIR}/client
  FILES_MATCHING PATTERN "*.h"
  PATTERN "awaitctl" EXCLUDE)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/runtime/
  DESTINATION ${AWAITD_INSTALL_INCLUDEDIR}/runtime
  FILES_MATCHING PATTERN "*.h")
install(DIRECTORY ${PROJECT_BINARY_DIR}/proto/
  DESTINATION ${AWAITD_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.pb.h"
  PATTERN "CMakeFiles" EXCLUDE)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/common/
  DESTINATION ${AWAITD_INSTALL_INCLUDEDIR}/common
  FILES_MATCHING PATTERN "*.h")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/server/
  DESTINATION ${AWAITD_INSTALL_INCLUDEDIR}/server
  FILES_MATCHING PATTERN "*.h")
# Generated: store.h includes "awaitd_store.pb.h" by its name alone; plugin.h
# includes the fingerprint of the headers installed with it.
install(FILES ${PROJECT_BINARY_DIR}/server/store/awaitd_store.pb.h
  DESTINATION ${AWAITD_INSTALL_INCLUDEDIR})
install(FILES
  ${PROJECT_BINARY_DIR}/generated/server/kinds/plugin_fingerprint.h
  DESTINATION ${AWAITD_INSTALL_INCLUDEDIR}/server/kinds)

install(EXPORT awaitdTargets
  NAMESPACE awaitd::
  DESTINATION ${AWAITD_INSTALL_CMAKEDIR})
configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/awaitdConfig.cmake.in
  ${PROJECT_BINARY_DIR}/awaitdConfig.cmake
  INSTALL_DESTINATION ${AWAITD_INSTALL_CMAKEDIR})
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/awaitdConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/awaitdConfig.cmake
  ${PROJECT_BINARY_DIR}/awaitdConfigVersion.cmake
  ${PROJECT_SOURCE_DIR}/cmake/FindAwaitdCivetweb.cmake
  DESTINATION ${AWAITD_INSTALL_CMAKEDIR})

# The systemd unit and its default flags (deploy/systemd/):
#   lib/systemd/system/awaitd.service  paths filled in for the install prefix
#   <sysconfdir>/awaitd/awaitd.env     only if absent: an operator's edits
#                                      survive reinstalls
#   share/doc/awaitd/README.md         the unit's Documentation=
# Paths are computed at install time, so `cmake --install --prefix P` gets a
# unit that runs P/bin/awaitd. A prefix of /usr uses /etc, as Debian does.
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(CODE "
  set(_prefix \"\${CMAKE_INSTALL_PREFIX}\")
  if(_prefix STREQUAL \"/usr\")
    set(_etc \"/etc\")
  else()
    set(_etc \"\${_prefix}/etc\")
  endif()
  set(AWAITD_BINDIR \"\${_prefix}/${CMAKE_INSTALL_BINDIR}\")
  set(AWAITD_DOCDIR \"\${_prefix}/${CMAKE_INSTALL_DOCDIR}\")
  set(AWAITD_ENV_FILE \"\${_etc}/awaitd/awaitd.env\")
  set(_unit \"\$ENV{DESTDIR}\${_prefix}/lib/systemd/system/awaitd.service\")
  message(STATUS \"Installing: \${_unit}\")
  configure_file(\"${PROJECT_SOURCE_DIR}/deploy/systemd/awaitd.service.in\"
                 \"\${_unit}\" @ONLY)
  set(_env \"\$ENV{DESTDIR}\${AWAITD_ENV_FILE}\")
  if(EXISTS \"\${_env}\")
    message(STATUS \"Keeping existing: \${_env}\")
  else()
    message(STATUS \"Installing: \${_env}\")
    file(INSTALL \"${PROJECT_SOURCE_DIR}/deploy/systemd/awaitd.env\"
         DESTINATION \"\$ENV{DESTDIR}\${_etc}/awaitd\")
  endif()
")
