#!/usr/bin/env bash
# Installs the build into a temporary prefix, then configures, builds and runs
# tests/client/install_consumer against the installed awaitd package: the
# install rules (cmake/AwaitdInstall.cmake) must give a usable client
# library, its headers and both programs.
#   install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build_dir="$1"
source_dir="$2"
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

cmake --install "${build_dir}" --prefix "${work}/prefix" >/dev/null
for f in bin/awaitd bin/awaitctl include/awaitd/client/client.h \
         include/awaitd/runtime/task.h include/awaitd/awaitd/v1/jobs.pb.h \
         lib/cmake/awaitd/awaitdConfig.cmake; do
  [[ -e "${work}/prefix/${f}" ]] || { echo "not installed: ${f}"; exit 1; }
done
"${work}/prefix/bin/awaitctl" --help >/dev/null

cmake -S "${source_dir}/tests/client/install_consumer" -B "${work}/build" \
  -G Ninja -DCMAKE_PREFIX_PATH="${work}/prefix" >/dev/null
cmake --build "${work}/build" >/dev/null
"${work}/build/consumer"
