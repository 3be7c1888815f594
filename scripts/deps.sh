#!/usr/bin/env bash
# Installs the Debian 12 packages rankfs needs to build and test. Nothing comes from anywhere
# but Debian's archive. Safe to run again: apt-get skips what is already installed.
set -euo pipefail
PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libfuse3-dev fuse3 librocksdb-dev libzstd-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 util-linux e2fsprogs
  clang libclang-rt-14-dev  # scripts/fuzz.sh: clang 14 and its libFuzzer/sanitizer runtimes
  dpkg-dev  # dpkg-shlibdeps: the .deb's Depends (cmake/Packaging.cmake)
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "rankfs: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
