# What `cmake --install <build> [--prefix P]` installs:
#   bin/awaitd, bin/awaitctl
#   lib/libawaitd_{client,common,proto,runtime}.a and their headers under
#   include/awaitd/ (client/, common/, runtime/, awaitd/v1/, grpc/health/v1/)
#   lib/cmake/awaitd/: a CMake package, so another project can write
#     find_package(awaitd CONFIG REQUIRED)
#     target_link_libraries(app PRIVATE awaitd::client)
# tests/client/install_test.sh installs into a temporary prefix and builds a
# program against that package.
include(CMakePackageConfigHelpers)

set(AWAITD_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/awaitd)
set(AWAITD_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/awaitd)

install(TARGETS awaitd awaitctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

set_target_properties(awaitd_client PROPERTIES EXPORT_NAME client)
set_target_properties(awaitd_proto PROPERTIES EXPORT_NAME proto)
set_target_properties(awaitd_runtime PROPERTIES EXPORT_NAME runtime)
set_target_properties(awaitd_common PROPERTIES EXPORT_NAME common)
install(TARGETS awaitd_client awaitd_common awaitd_proto awaitd_runtime
  EXPORT awaitdTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})

install(DIRECTORY ${PROJECT_SOURCE_DIR}/client/
  DESTINATION ${AWAITD_INSTALL_INCLUDEDIR}/client
  FILES_MATCHING PATTERN "*.h"
  PATTERN "awaitctl" EXCLUDE)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/common/
  DESTINATION ${AWAITD_INSTALL_INCLUDEDIR}/common
  FILES_MATCHING PATTERN "*.h")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/runtime/
  DESTINATION ${AWAITD_INSTALL_INCLUDEDIR}/runtime
  FILES_MATCHING PATTERN "*.h")
install(DIRECTORY ${PROJECT_BINARY_DIR}/proto/
  DESTINATION ${AWAITD_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.pb.h"
  PATTERN "CMakeFiles" EXCLUDE)

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
