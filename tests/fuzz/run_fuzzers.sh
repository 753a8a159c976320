#!/usr/bin/env bash
# Runs every fuzz target of tests/fuzz for a fixed number of inputs (`make
# fuzz`, CI), each on its own corpus seeded by the generated seeds, and
# prints per target how many inputs ran and what was found.
#
#   tests/fuzz/run_fuzzers.sh <build-dir> [runs] [libFuzzer flags...]
#
# runs: inputs per target (default 3000), counting the seeds' first pass;
# 0 runs none, -1 runs until another flag (-max_total_time=S) stops them.
# Extra flags go to every target (e.g. -max_total_time=60 with runs -1).
# Per target, in <build-dir>/tests/fuzz/: corpus/<target>/ (the inputs it
# found interesting, kept between runs), artifacts/<target>-crash-<sha1> (a
# crash, a failed check or a timeout: the input that caused it) and
# logs/<target>.log (its whole output).
set -uo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 <build-dir> [runs] [libFuzzer flags...]" >&2
  exit 2
fi
build="$1"
runs="${2:-3000}"
shift $(( $# >= 2 ? 2 : 1 ))

dir="${build}/tests/fuzz"
source_dir="$(cd "$(dirname "$0")/../.." && pwd)"
regressions="${source_dir}/tests/fuzz/regressions"
if [[ "${runs}" == 0 ]]; then
  echo "run_fuzzers: runs=0: the fuzzers are built, none is run"
  exit 0
fi
targets=(fuzz_submit fuzz_get fuzz_cancel fuzz_wait fuzz_gather fuzz_wait_for
         fuzz_as_completed fuzz_run_group fuzz_watch fuzz_list
         fuzz_declare_limit fuzz_list_limits_and_kinds)

# Leaks are checked (libFuzzer's -detect_leaks, with LSan's suppressions of
# `make asan`); UBSan stops at the first report.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=${source_dir}/tools/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

mkdir -p "${dir}/logs" "${dir}/artifacts"
failed=()
summary=()
total_runs=0
for t in "${targets[@]}"; do
  bin="${dir}/${t}"
  if [[ ! -x "${bin}" ]]; then
    echo "run_fuzzers: ${bin} missing (build the 'fuzzers' target)" >&2
    failed+=("${t}")
    continue
  fi
  mkdir -p "${dir}/corpus/${t}"
  log="${dir}/logs/${t}.log"
  start=${SECONDS}
  # -timeout: an input that takes longer is a hang (the harness's calls
  # have deadlines of 30 ms to 10 s). corpus/ first: new inputs go there.
  # Reproducers of past findings (tests/fuzz/regressions/<target>/) join
  # the seeds.
  corpora=("${dir}/corpus/${t}" "${dir}/seeds/${t}")
  if [[ -d "${regressions}/${t}" ]]; then corpora+=("${regressions}/${t}"); fi
  "${bin}" -runs="${runs}" -timeout=30 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="${dir}/artifacts/${t}-" \
    "$@" "${corpora[@]}" >"${log}" 2>&1
  rc=$?
  elapsed=$(( SECONDS - start ))
  done_runs="$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "${log}" | tail -1)"
  if [[ ${rc} -eq 0 && -n "${done_runs}" ]]; then
    total_runs=$(( total_runs + done_runs ))
    cov="$(grep -o 'cov: [0-9]*' "${log}" | tail -1)"
    summary+=("$(printf 'PASS  %-28s %8s inputs  %4ds  %s, nothing found' \
      "${t}" "${done_runs}" "${elapsed}" "${cov}")")
  else
    summary+=("$(printf 'FAIL  %-28s exit %d after %ds: see %s' \
      "${t}" "${rc}" "${elapsed}" "${log}")")
    failed+=("${t}")
    echo "---- ${t} (exit ${rc}), last lines of ${log}:"
    tail -n 60 "${log}"
  fi
done

echo
printf '%s\n' "${summary[@]}"
echo "fuzz: ${total_runs} inputs in all"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: FAILED: ${failed[*]} (reproducers in ${dir}/artifacts/)"
  exit 1
fi
