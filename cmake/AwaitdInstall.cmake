# What `cmake --install <build> [--prefix P]` installs:
#   bin/awaitd, bin/awaitctl
#   lib/libawaitd_{client,proto,runtime}.a and their headers under
#   include/awaitd/ (client/, runtime/, awaitd/v1/, grpc/health/v1/)
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
install(TARGETS awaitd_client awaitd_proto awaitd_runtime
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
