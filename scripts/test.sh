#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the Debian packages and the pinned Python stack
# (scripts/deps.sh --python: outside the clone, once per machine), builds rankfs twice
# (optimized, then with ASan+UBSan) and runs every test of both builds with CTest; the
# real-stack tests (datasets, ms-swift; label "realstack") run in the optimized build only. Add
# RANKFS_TSAN=0 to skip the unit tests under ThreadSanitizer, RANKFS_FUZZ=0 to skip the fuzzers.
# With CI=true (.ci/run sets it) a test that skips -- e.g. every mount test on a machine
# without /dev/fuse -- fails the run instead (scripts/ctest_checked.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --python
RANKFS_PYENV=$(scripts/deps.sh --pyenv-path)
export RANKFS_PYENV  # empty where PyPI was out of reach: the real-stack tests then skip, saying so
JOBS=$(nproc)

build_and_test() {  # dir, ctest label regex, cmake args...
  local dir=$1 labels=$2
  shift 2
  cmake -S . -B "$dir" -G Ninja -DRANKFS_BUILD_BENCH=ON "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
  scripts/ctest_checked.sh "$dir" -j "$JOBS" -L "$labels"
}

echo "== rankfs: optimized build =="
build_and_test build "unit|integration|realstack"
echo "== rankfs: ASan+UBSan build =="
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  build_and_test build-asan "unit|integration" -DRANKFS_SANITIZE=address -DRANKFS_BUILD_BENCH=OFF
if [ "${RANKFS_TSAN:-1}" = "1" ]; then
  echo "== rankfs: TSan build (unit tests) =="
  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp" \
    build_and_test build-tsan "unit" -DRANKFS_SANITIZE=thread -DRANKFS_BUILD_BENCH=OFF
fi
if [ "${RANKFS_FUZZ:-1}" = "1" ]; then  # docs/fuzzing.md; RANKFS_FUZZ=0 skips
  echo "== rankfs: fuzzing (clang, ${RANKFS_FUZZ_SECONDS:-20}s per target) =="
  scripts/fuzz.sh "${RANKFS_FUZZ_SECONDS:-20}"
fi
echo "rankfs: all test builds passed"
