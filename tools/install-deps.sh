#!/usr/bin/env bash
# Installs the Debian packages listed in deploy/debian-packages.txt that are
# not installed yet. Does nothing when everything is present.
#   - as root: apt-get directly
#   - otherwise: via sudo, if available
#   - otherwise: names the missing packages and exits 1
set -euo pipefail

root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
list_file="${1:-${root_dir}/deploy/debian-packages.txt}"

if [[ ! -r "${list_file}" ]]; then
  echo "install-deps: cannot read ${list_file}" >&2
  exit 1
fi

# Strip comments and blank lines.
mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]\+$//' -e 's/^[[:space:]]\+//' \
  "${list_file}" | grep -v '^$')

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps: dpkg-query not found (not Debian?); skipping package check." >&2
  echo "install-deps: make sure these are available: ${packages[*]}" >&2
  exit 0
fi

missing=()
for pkg in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null || true)"
  if [[ "${status}" != "install ok installed" ]]; then
    missing+=("${pkg}")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages installed."
  exit 0
fi

echo "install-deps: missing packages: ${missing[*]}"

install_cmd=(apt-get install -y --no-install-recommends "${missing[@]}")
export DEBIAN_FRONTEND=noninteractive
if [[ "$(id -u)" -eq 0 ]]; then
  apt-get update
  "${install_cmd[@]}"
elif command -v sudo >/dev/null 2>&1; then
  sudo env DEBIAN_FRONTEND=noninteractive apt-get update
  sudo env DEBIAN_FRONTEND=noninteractive "${install_cmd[@]}"
else
  echo "install-deps: ERROR: not root and sudo is not available." >&2
  echo "install-deps: install these packages as root and re-run:" >&2
  echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
