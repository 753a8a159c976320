#!/usr/bin/env bash
# The container image end to end: builds the debootstrap bases (once; they
# are reused while deploy/make-base-images.sh is unchanged) and the image,
# runs it, checks its health and its user, submits a job from outside with
# the host's awaitctl, and stops it gracefully.
#   container_test.sh SOURCE_DIR AWAITCTL
# Exit 77 (CTest: skipped) only where podman cannot run containers.
set -euo pipefail
src="$1"
awaitctl="$2"
export CONTAINERS_CONF="${src}/deploy/container/containers.conf"
podman() { command podman --runtime runc "$@"; }

skip() { echo "SKIPPED: $*"; exit 77; }
command -v podman >/dev/null || skip "podman is not installed (Debian package podman)"
info_err="$(podman info 2>&1 >/dev/null)" || skip "podman cannot run here: ${info_err}"

start=${SECONDS}
bases="$("${src}/deploy/make-base-images.sh")"
build_base="$(sed -n 1p <<<"${bases}")"
runtime_base="$(sed -n 2p <<<"${bases}")"
run_err="$(podman run --rm --network none "${runtime_base}" true 2>&1)" ||
  skip "podman cannot start a container here: ${run_err}"
echo "bases ready in $((SECONDS - start)) s: ${build_base} ${runtime_base}"

tag="localhost/awaitd-test:$$"
name="awaitd-test-$$"
cleanup() {
  podman rm -f "${name}" >/dev/null 2>&1 || true
  podman rmi -f "${tag}" >/dev/null 2>&1 || true
}
trap cleanup EXIT

start=${SECONDS}
# --layers=false: no intermediate images (the build stage's tree) are kept
# between runs; ccache's cache mount is what makes a rebuild fast.
podman build --quiet --format docker --network none --layers=false \
  --build-arg BUILD_BASE="${build_base}" \
  --build-arg RUNTIME_BASE="${runtime_base}" \
  -f "${src}/deploy/container/Containerfile" -t "${tag}" "${src}" >/dev/null
echo "image built in $((SECONDS - start)) s, $(podman image inspect -f '{{.Size}}' "${tag}") bytes"

# Every shared library the two programs load is in the runtime base.
missing="$(podman run --rm --network none --no-healthcheck --entrypoint /bin/sh "${tag}" -c \
  'ldd /usr/local/bin/awaitd /usr/local/bin/awaitctl' | grep 'not found' || true)"
[[ -z "${missing}" ]] || { echo "libraries missing from the image:"; echo "${missing}"; exit 1; }

# A random free host port on loopback, published to the daemon's 50051.
# Periodic health checks are podman's systemd timers; without systemd as init
# podman 4.3 logs an error about them (even with the interval disabled) and
# goes on. They are not needed: `podman healthcheck run` below runs the
# image's check once, on demand. Drop those lines only.
no_timer_noise() { "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }
no_timer_noise podman run -d --name "${name}" --health-interval=disable \
  -p 127.0.0.1::50051 "${tag}" >/dev/null
port="$(podman port "${name}" 50051/tcp | sed -n 's/.*://p' | head -1)"
[[ -n "${port}" ]] || { echo "no published port"; podman logs "${name}"; exit 1; }
address="127.0.0.1:${port}"

for _ in $(seq 1 150); do
  if "${awaitctl}" --address="${address}" --connect-timeout=1s health >/dev/null 2>&1; then
    break
  fi
  sleep 0.2
done
"${awaitctl}" --address="${address}" health | grep -qx SERVING ||
  { echo "the daemon in the container never served"; podman logs "${name}"; exit 1; }

out="$("${awaitctl}" --address="${address}" --json submit --wait factorial n=5)"
grep -q '"result": *120' <<<"${out}" ||
  { echo "factorial n=5 from outside did not return 120:"; echo "${out}"; exit 1; }

uid="$(podman exec "${name}" id -u)"
[[ "${uid}" != 0 ]] || { echo "the container runs as root"; exit 1; }
user="$(podman top "${name}" user | sed -n 2p | tr -d ' ')"
[[ "${user}" != root ]] || { echo "awaitd runs as root"; exit 1; }

podman healthcheck run "${name}" ||
  { echo "the image's HEALTHCHECK failed"; exit 1; }

no_timer_noise podman stop -t 30 "${name}" >/dev/null
code="$(podman inspect -f '{{.State.ExitCode}}' "${name}")"
[[ "${code}" == 0 ]] || { echo "awaitd exited ${code} on SIGTERM"; podman logs "${name}"; exit 1; }
podman logs "${name}" 2>&1 | grep -q 'event=shutdown_complete' ||
  { echo "no graceful shutdown in the log"; podman logs "${name}"; exit 1; }
echo "ok: uid ${uid}, job result 120, healthy, exit 0 on SIGTERM"
