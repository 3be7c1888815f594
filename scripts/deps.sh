#!/usr/bin/env bash
# Installs what rankfs needs to build and test.
#
#   scripts/deps.sh              the Debian 12 packages (nothing comes from anywhere else)
#   scripts/deps.sh --python     also the pinned Python stack the real-stack tests drive
#                                (Hugging Face datasets, ms-swift, torch from PyPI), in a
#                                virtual environment outside the clone (see below)
#   scripts/deps.sh --pyenv-path prints that environment's directory if it is complete, else
#                                nothing; installs nothing
#
# The environment lives in ${RANKFS_PYENV_ROOT:-~/.cache/rankfs/pyenv}/<key>, where <key> is a
# hash of python/requirements/*.txt and the interpreter's version: a second run, or a CI run
# on a fresh clone of the same commit, finds it complete and installs nothing. A partly built
# one (interrupted install) is removed and built again. Where PyPI cannot be reached the
# Python part says so and is left out (the real-stack tests then skip with that reason);
# with CI=true that is an error instead. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=debian
case "${1:-}" in
  "") ;;
  --python) mode=python ;;
  --pyenv-path) mode=path ;;
  *) echo "usage: scripts/deps.sh [--python | --pyenv-path]" >&2; exit 2 ;;
esac

pyenv_dir() {
  local key
  key=$( (cat python/requirements/*; /usr/bin/python3 -c 'import sys; print(sys.version)') |
         sha256sum | cut -c1-16)
  echo "${RANKFS_PYENV_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/rankfs/pyenv}/$key"
}

if [ "$mode" = path ]; then
  dir=$(pyenv_dir)
  [ -f "$dir/.complete" ] && echo "$dir"
  exit 0
fi

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libfuse3-dev fuse3 librocksdb-dev libzstd-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-venv util-linux e2fsprogs
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
[ "$mode" = python ] || exit 0

# The Python stack: exact versions from python/requirements/realstack.lock (every package,
# dependencies included; realstack.txt names the ones the tests ask for).
dir=$(pyenv_dir)
if [ -f "$dir/.complete" ]; then
  echo "rankfs: Python environment up to date: $dir"
  exit 0
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
# Reachability of the package index pip is configured for (a mirror, where one is set).
if ! { timeout 120 /usr/bin/python3 -m venv "$probe/venv" &&
       timeout 120 "$probe/venv/bin/pip" download --quiet --no-deps --dest "$probe" \
         six==1.16.0; } >"$probe/log" 2>&1; then
  echo "rankfs: PyPI cannot be reached; the Python stack is not installed and the real-stack" \
       "tests will be skipped:" >&2
  tail -3 "$probe/log" >&2
  case "${CI:-}" in true | 1) echo "rankfs: CI=$CI needs them: failing" >&2; exit 1 ;; esac
  exit 0
fi
echo "rankfs: building the Python environment in $dir (torch brings ~6 GB of CUDA libraries;" \
     "about 5 minutes, once per machine)"
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
/usr/bin/python3 -m venv "$dir"
"$dir/bin/pip" install --quiet --disable-pip-version-check --upgrade pip==26.3
"$dir/bin/pip" install --quiet --disable-pip-version-check -r python/requirements/realstack.lock
"$dir/bin/python" -c 'import datasets, swift, torch, tokenizers, pyarrow'
touch "$dir/.complete"
echo "rankfs: Python environment ready: $dir"
