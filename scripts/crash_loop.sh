#!/usr/bin/env bash
# The full-length crash loop (issue #6, docs/testing.md): builds rankfs and the crash tests
# (optimized, in $BUILD, default build-crash) and runs
#   - crash_loop_test: N rounds of concurrent writers, kill -9 of the daemon at a random moment,
#     offline `rankfs fsck`, remount and check (needs root and /dev/fuse);
#   - power_cut_test: N rounds of the same writers on FsCore with the store's writes cut at a
#     random moment through the fault-injecting Env.
# Each prints its seed; RANKFS_CRASH_SEED / RANKFS_POWER_CUT_SEED rerun a failing sequence.
#
#   scripts/crash_loop.sh          50 rounds of each (~3 min on 2 cores, plus the build)
#   scripts/crash_loop.sh 200      200 rounds of each
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50}
BUILD=${BUILD:-build-crash}
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" -j "$(nproc)" --target rankfs crash_loop_test power_cut_test
RANKFS_CRASH_ITERATIONS=$N "$BUILD/tests/crash_loop_test"
RANKFS_POWER_CUT_ITERATIONS=$N "$BUILD/tests/power_cut_test"
