#!/usr/bin/env bash
# The job-kind SDK, end to end against an installed awaitd: installs the build
# into a temporary prefix, builds examples/custom_kind/ against it both ways,
# and runs each:
#   1. custom_awaitd, the kinds registered through DaemonOptions;
#   2. the stock bin/awaitd with --plugin=libcustom_kinds.so;
# submitting word_count (event loop) and resolve (blocking pool) with the
# installed awaitctl. Then the refusals: plugins built against the package
# with another ABI version and against other headers, a missing file, a
# library without an entry point: each a clear message and exit 1.
#   sdk_install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build_dir="$1"
source_dir="$2"
work="$(mktemp -d)"
daemon_pid=""
cleanup() {
  if [[ -n "${daemon_pid}" ]]; then kill -KILL "${daemon_pid}" 2>/dev/null || true; fi
  rm -rf "${work}"
}
trap cleanup EXIT
prefix="${work}/prefix"
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "${build_dir}" --prefix "${prefix}" >/dev/null
for f in include/awaitd/server/kinds/args.h include/awaitd/server/kinds/plugin.h \
         include/awaitd/server/kinds/plugin_fingerprint.h \
         include/awaitd/server/daemon/daemon.h include/awaitd/awaitd_store.pb.h \
         include/awaitd/common/strings.h lib/libawaitd_daemon.a \
         lib/cmake/awaitd/FindAwaitdCivetweb.cmake; do
  [[ -e "${prefix}/${f}" ]] || fail "not installed: ${f}"
done

cmake -S "${source_dir}/examples/custom_kind" -B "${work}/example" -G Ninja \
  -DCMAKE_PREFIX_PATH="${prefix}" >/dev/null
cmake --build "${work}/example" >/dev/null
plugin="${work}/example/libcustom_kinds.so"
[[ -f "${plugin}" ]] || fail "the example did not build ${plugin}"

awaitctl() { "${prefix}/bin/awaitctl" --address "$(cat "${work}/port")" "$@"; }

# Starts "$@" in the background on port 0 and waits for its port file.
start() {
  rm -f "${work}/port"
  "$@" >"${work}/daemon.log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 1 200); do
    [[ -s "${work}/port" ]] && return 0
    kill -0 "${daemon_pid}" 2>/dev/null || { cat "${work}/daemon.log"; fail "$1 exited at start"; }
    sleep 0.05
  done
  cat "${work}/daemon.log"; fail "$1 did not write its port file"
}
stop() {
  kill -TERM "${daemon_pid}"
  wait "${daemon_pid}" || fail "$1 exited with $? after SIGTERM"
  daemon_pid=""
}
# Runs both custom kinds through awaitctl and checks their results.
check_kinds() {
  local out
  awaitctl kinds | grep -q word_count || fail "$1: word_count is not listed"
  out="$(awaitctl --json submit word_count 'text=the cat and the hat' --wait)" ||
    fail "$1: word_count failed: ${out}"
  grep -q '"result":{"words":5,"distinct":4}\|"result":{"distinct":4,"words":5}' <<<"${out}" ||
    fail "$1: word_count result: ${out}"
  out="$(awaitctl --json submit resolve host=localhost --wait)" ||
    fail "$1: resolve failed: ${out}"
  grep -q '"127.0.0.1"' <<<"${out}" || fail "$1: resolve result: ${out}"
  # A bad argument is refused at submit, with the field named.
  if out="$(awaitctl submit word_count text=1 2>&1)"; then
    fail "$1: word_count accepted a number as text"
  fi
  grep -q 'args.text: must be a string (got number)' <<<"${out}" ||
    fail "$1: word_count's refusal: ${out}"
}

# 1. A program embedding the daemon, its kinds registered in main().
start "${work}/example/custom_awaitd" 127.0.0.1:0 "${work}/port"
check_kinds custom_awaitd
stop custom_awaitd

# 2. The stock daemon with the plugin.
awaitd_flags=(--listen=127.0.0.1:0 --port_file="${work}/port" --durability=none
              --metrics_listen= --log_level=info)
start "${prefix}/bin/awaitd" "${awaitd_flags[@]}" --plugin="${plugin}"
check_kinds "awaitd --plugin"
stop "awaitd --plugin"
grep -q 'event=plugin_loaded .*name=custom_kinds kinds=resolve,word_count' \
  "${work}/daemon.log" || { cat "${work}/daemon.log"; fail "no plugin_loaded line"; }

# 3. Plugins that awaitd refuses, built against the installed package.
mkdir -p "${work}/bad/src" "${work}/bad/other_headers/server/kinds"
cat >"${work}/bad/src/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(bad_plugins LANGUAGES CXX)
find_package(awaitd 0.1 CONFIG REQUIRED)
add_library(wrong_abi MODULE wrong_abi.cc)
target_link_libraries(wrong_abi PRIVATE awaitd::plugin)
# plugin.h finds this plugin_fingerprint.h first: "other headers".
add_library(other_headers MODULE other_headers.cc)
target_include_directories(other_headers BEFORE PRIVATE ${OTHER_HEADERS})
target_link_libraries(other_headers PRIVATE awaitd::plugin)
add_library(no_entry MODULE no_entry.cc)
CMAKE
cat >"${work}/bad/src/wrong_abi.cc" <<'CXX'
#include "server/kinds/plugin.h"
static absl::Status Register(awaitd::server::JobKindRegistry&) {
  return absl::OkStatus();
}
extern "C" const AwaitdPlugin* awaitd_plugin() {
  static constexpr AwaitdPlugin kPlugin = {AWAITD_PLUGIN_ABI_VERSION + 1,
                                           AWAITD_PLUGIN_FINGERPRINT,
                                           "wrong_abi", Register};
  return &kPlugin;
}
CXX
cat >"${work}/bad/src/other_headers.cc" <<'CXX'
#include "server/kinds/plugin.h"
static absl::Status Register(awaitd::server::JobKindRegistry&) {
  return absl::OkStatus();
}
AWAITD_PLUGIN("other_headers", Register)
CXX
echo 'extern "C" int not_a_plugin() { return 1; }' >"${work}/bad/src/no_entry.cc"
sed 's/AWAITD_PLUGIN_HEADERS_SHA256 ".*"/AWAITD_PLUGIN_HEADERS_SHA256 "0000"/' \
  "${prefix}/include/awaitd/server/kinds/plugin_fingerprint.h" \
  >"${work}/bad/other_headers/server/kinds/plugin_fingerprint.h"
cmake -S "${work}/bad/src" -B "${work}/bad/build" -G Ninja \
  -DCMAKE_PREFIX_PATH="${prefix}" -DOTHER_HEADERS="${work}/bad/other_headers" >/dev/null
cmake --build "${work}/bad/build" >/dev/null

# Runs the stock awaitd with --plugin= each of "${@:2}": it must exit 1 and
# log "$1".
expect_refused() {
  local message="$1" out code=0
  shift
  local flags=()
  for p in "$@"; do flags+=("--plugin=${p}"); done
  out="$("${prefix}/bin/awaitd" "${awaitd_flags[@]}" "${flags[@]}" 2>&1)" || code=$?
  [[ "${code}" == 1 ]] || { echo "${out}"; fail "${flags[*]}: exit ${code}, not 1"; }
  grep -qF -- "${message}" <<<"${out}" || { echo "${out}"; fail "${flags[*]}: no '${message}'"; }
}
bad="${work}/bad/build"
expect_refused \
  "plugin ${bad}/libwrong_abi.so: built for plugin ABI version 2, but this awaitd loads version 1" \
  "${bad}/libwrong_abi.so"
expect_refused \
  "plugin ${bad}/libother_headers.so: built against other awaitd headers or another compiler" \
  "${bad}/libother_headers.so"
expect_refused "headers 0000;" "${bad}/libother_headers.so"
expect_refused "plugin ${bad}/libno_entry.so: no awaitd_plugin() entry point" \
  "${bad}/libno_entry.so"
expect_refused "plugin ${work}/missing.so: cannot load it: No such file or directory" \
  "${work}/missing.so"
# --plugin repeats: the good one loads, then the missing one fails the start.
expect_refused "plugin ${work}/missing.so: cannot load it" "${plugin}" "${work}/missing.so"
echo "ok: custom_awaitd and awaitd --plugin ran word_count and resolve; bad plugins refused"
