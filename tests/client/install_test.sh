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

# The systemd unit: paths filled in for this prefix, and clean under
# `systemd-analyze verify` (which exits 0 even when it reports problems, so
# any diagnostic fails the test) with a low exposure score.
unit="${work}/prefix/lib/systemd/system/awaitd.service"
env_file="${work}/prefix/etc/awaitd/awaitd.env"
for f in "${unit}" "${env_file}" "${work}/prefix/share/doc/awaitd/README.md"; do
  [[ -f "${f}" ]] || { echo "not installed: ${f}"; exit 1; }
done
grep -qx "ExecStart=${work}/prefix/bin/awaitd --data_dir=/var/lib/awaitd \$AWAITD_OPTS" "${unit}" ||
  { echo "unit does not run the installed awaitd:"; grep ExecStart "${unit}"; exit 1; }
grep -qx "EnvironmentFile=-${env_file}" "${unit}" ||
  { echo "unit does not read the installed env file"; exit 1; }
if grep -n '@[A-Z_]*@' "${unit}"; then echo "unit has unfilled @VARS@"; exit 1; fi
# The env file's flags are flags awaitd accepts.
(
  set -a; source "${env_file}"; set +a
  # shellcheck disable=SC2086
  "${work}/prefix/bin/awaitd" ${AWAITD_OPTS} --helpfull >/dev/null
) || { echo "awaitd rejects the flags in ${env_file}"; exit 1; }
if command -v systemd-analyze >/dev/null; then
  diagnostics="$(systemd-analyze verify "${unit}" 2>&1 || true)"
  if [[ -n "${diagnostics}" ]]; then
    echo "systemd-analyze verify ${unit}:"; echo "${diagnostics}"; exit 1
  fi
  systemd-analyze security --offline=true --threshold=20 "${unit}" >/dev/null ||
    { systemd-analyze security --offline=true "${unit}" | tail -3; exit 1; }
else
  echo "systemd-analyze not found (package systemd): unit not verified" >&2
  exit 1
fi
# A reinstall keeps an operator's edited env file.
echo '# edited' >> "${env_file}"
cmake --install "${build_dir}" --prefix "${work}/prefix" >/dev/null
grep -qx '# edited' "${env_file}" || { echo "reinstall overwrote ${env_file}"; exit 1; }

cmake -S "${source_dir}/tests/client/install_consumer" -B "${work}/build" \
  -G Ninja -DCMAKE_PREFIX_PATH="${work}/prefix" >/dev/null
cmake --build "${work}/build" >/dev/null
"${work}/build/consumer"
