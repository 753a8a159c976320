#!/usr/bin/env bash
# Builds the two base images the container build needs, from Debian 12 with
# debootstrap (no registry can be reached here, so nothing is pulled):
#
#   awaitd-build-base:<hash>    minbase + compilers, CMake, Ninja, ccache and
#                               the -dev packages awaitd and awaitctl build with
#   awaitd-runtime-base:<hash>  minbase + only the shared libraries they load
#
# <hash> covers this script (package lists included), so a base is built once
# and rebuilt only when the script changes; each is also tagged :latest.
# Prints the two image names. Root (or rootful podman) and debootstrap needed.
#
#   deploy/make-base-images.sh            # build what is missing
#   AWAITD_DEBIAN_MIRROR=http://... deploy/make-base-images.sh
set -euo pipefail

suite=bookworm
mirror="${AWAITD_DEBIAN_MIRROR:-}"
if [[ -z "${mirror}" ]]; then
  # The host's own mirror (deb822 or one-line sources), else Debian's.
  mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  [[ -n "${mirror}" ]] ||
    mirror="$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
  [[ -n "${mirror}" ]] || mirror=http://deb.debian.org/debian
fi

# What `cmake --build ... --target awaitd awaitctl` needs (a subset of
# deploy/debian-packages.txt: no test or benchmark packages).
build_packages=(
  g++ make cmake ninja-build ccache pkg-config binutils file
  libboost1.81-dev libabsl-dev
  libgrpc++-dev libgrpc-dev libprotobuf-dev protobuf-compiler
  protobuf-compiler-grpc libjemalloc-dev prometheus-cpp-dev libssl-dev
  librocksdb-dev
)
# What `ldd awaitd awaitctl` lists, by package (tests/deploy/container_test.sh
# checks that nothing is missing).
runtime_packages=(
  libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 libc-ares2 libre2-9
  libjemalloc2 libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0
  libcivetweb1 libssl3 zlib1g librocksdb7.8 ca-certificates
)

log() { echo "make-base-images: $*" >&2; }

command -v podman >/dev/null || { log "podman is not installed"; exit 1; }
command -v debootstrap >/dev/null || { log "debootstrap is not installed"; exit 1; }

hash="$(sha256sum "$0" | cut -c1-12)"

# build_base NAME STRIP PACKAGE...: debootstrap a minbase root with the
# packages, trim it when STRIP is "strip", import it as NAME:hash.
build_base() {
  local name="$1" strip="$2"; shift 2
  local image="${name}:${hash}"
  if podman image exists "${image}"; then
    log "${image} exists"
  else
    local root
    root="$(mktemp -d /var/tmp/awaitd-base.XXXXXX)"
    # shellcheck disable=SC2064
    trap "rm -rf '${root}'" RETURN
    log "debootstrap ${suite} (${mirror}) for ${image}: $*"
    local include
    include="$(IFS=,; echo "$*")"
    debootstrap --variant=minbase --include="${include}" "${suite}" \
      "${root}" "${mirror}" > "${root}.log" 2>&1 ||
      { tail -20 "${root}.log" >&2; rm -f "${root}.log"; exit 1; }
    rm -f "${root}.log"
    rm -rf "${root}"/var/cache/apt/archives/*.deb "${root}"/var/lib/apt/lists/*
    if [[ "${strip}" == strip ]]; then
      rm -rf "${root}"/usr/share/doc/* "${root}"/usr/share/man/* \
        "${root}"/usr/share/info/* "${root}"/usr/share/locale/* \
        "${root}"/var/cache/debconf/*-old "${root}"/var/log/*.log
    fi
    tar --numeric-owner -C "${root}" -c . |
      podman import --quiet --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' \
        - "${image}" >/dev/null
    log "built ${image}"
  fi
  podman tag "${image}" "${name}:latest"
  echo "${image}"
}

build_base awaitd-build-base keep "${build_packages[@]}"
build_base awaitd-runtime-base strip "${runtime_packages[@]}"
