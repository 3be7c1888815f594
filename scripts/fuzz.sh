#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang, ASan+UBSan, in build-fuzz) and runs each for a
# bounded time. Usage: scripts/fuzz.sh [SECONDS_PER_TARGET (default 30)] [TARGET...]
# Fails when any target crashes, leaks, times out or breaks an invariant; the reproducer is
# printed. New interesting inputs accumulate in build-fuzz/fuzz-work/<target>/corpus (not
# checked in). docs/fuzzing.md explains the targets and how to turn a crash into a regression.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-30}
shift || true
BUILD=${RANKFS_FUZZ_BUILD:-build-fuzz}
# -max_len per target: a little above the largest input its decoder can meaningfully read.
declare -A MAX_LEN=([pack_header]=64 [record_header]=128 [scan_pack]=16384 [meta_value]=4200
                    [meta_key]=512 [superblock]=128 [chunk_read]=8192
                    [gpu_request]=64 [arrow_ipc]=16384)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(pack_header record_header scan_pack meta_value meta_key
                                     superblock chunk_read gpu_request arrow_ipc)

cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DRANKFS_FUZZ=ON -DRANKFS_BUILD_TESTS=OFF \
  -DRANKFS_BUILD_BENCH=OFF -DRANKFS_CUDA=OFF >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target "${TARGETS[@]/#/fuzz_}"

failed=()
for t in "${TARGETS[@]}"; do
  work="$BUILD/fuzz-work/$t"
  mkdir -p "$work/corpus" "$work/artifacts"
  echo "== fuzz_$t: ${SECONDS_PER_TARGET}s, -max_len=${MAX_LEN[$t]}"
  rc=0
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$BUILD/fuzz/fuzz_$t" -max_total_time="$SECONDS_PER_TARGET" -max_len="${MAX_LEN[$t]}" \
      -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 \
      -artifact_prefix="$work/artifacts/" "$work/corpus" "fuzz/corpus/$t" \
      >"$work/log" 2>&1 || rc=$?
  grep -E "stat::(number_of_executed_units|average_exec_per_sec|new_units_added)" \
    "$work/log" | sed 's/^/   /' || true
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    echo "FAILED: fuzz_$t exited with $rc; log: $work/log"
    grep -E "ERROR|SUMMARY|invariant failed" "$work/log" | head -5 | sed 's/^/   /' || true
    for a in "$work"/artifacts/*; do
      [ -e "$a" ] && echo "   reproducer: $a  (rerun: $BUILD/fuzz/fuzz_$t $a)"
    done
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "rankfs fuzz: FAILED targets: ${failed[*]}"
  exit 1
fi
echo "rankfs fuzz: all ${#TARGETS[@]} targets ran ${SECONDS_PER_TARGET}s without a finding"
