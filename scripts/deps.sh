#!/usr/bin/env bash
# deps.sh: install the Debian packages heapreplay needs, skipping those already installed.
# Usage: scripts/deps.sh [--test]   (--test also installs clang, for the libFuzzer build)
set -euo pipefail
pkgs=(gcc pkg-config meson ninja-build python3 zstd libzstd-dev liblua5.4-dev lua5.4
      gnuplot-nox hyperfine
      libpython3.11-dev libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev)
if [ "${1:-}" = "--test" ]; then
  pkgs+=(clang)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
