#!/usr/bin/env bash
# The 4-writer job of fsbench.py's rss workload, alone, with the daemon's memory sampled while
# it runs (docs/design.md, "Memory"). Mounts a fresh store, runs WRITERS x `fsbench write
# DATASET rankN/data.bin 8192 --fsync` at once, then `sync`, and prints one line: the
# daemon's peak RSS (VmHWM), the wall time and the heap malloc holds free at the end. With
# SAMPLES=FILE it also writes, every 0.25 s, VmRSS/RssAnon and the stats file's memory keys.
# Anything after MIB is put in the daemon's environment (GLIBC_TUNABLES=..., LD_PRELOAD=...).
#
#   bench/rss_job.sh BUILD_DIR WORK_DIR MIB [VAR=VALUE...]
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
build=$(realpath "$1") work=$2 mib=$3
shift 3
writers=${WRITERS:-4}
mkdir -p "$work"
work=$(realpath "$work")
data=$work/dataset-$mib.bin
[ -f "$data" ] || "$build/bench/fsbench" gen "$data" $((mib << 20)) 1 >/dev/null
rm -rf "$work/store" "$work/mnt"
mkdir -p "$work/store" "$work/mnt"
env "$@" "$build/mount-helper/rankfs" mount "$work/store" "$work/mnt" -f >"$work/daemon.log" 2>&1 &
daemon=$!
sampler=
cleanup() {
  [ -z "$sampler" ] || kill "$sampler" 2>/dev/null || true
  mountpoint -q "$work/mnt" && umount "$work/mnt"
  wait "$daemon" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do mountpoint -q "$work/mnt" && break; sleep 0.1; done
mountpoint -q "$work/mnt" || { echo "rss_job: no mount; see $work/daemon.log" >&2; exit 1; }
start=$(date +%s.%N)
if [ -n "${SAMPLES:-}" ]; then
  while :; do
    t=$(echo "$(date +%s.%N) - $start" | bc)
    rss=$(awk '/^VmRSS|^RssAnon/{sub(":", "", $1); printf "%s=%d ", $1, $2 / 1024}' "/proc/$daemon/status")
    mem=$(awk -F= '/^(dirty|chunk_cache|chunk_buffer|meta_memtable|meta_block_cache|meta_table_reader|heap_used|heap_free)_bytes/ {
                     printf "%s=%d ", $1, $2 / 1048576 }' "$work/mnt/.rankfs-stats")
    echo "t=$t $rss$mem"
    sleep 0.25
  done >"$SAMPLES" &
  sampler=$!
fi
pids=()
for ((r = 0; r < writers; r++)); do
  mkdir -p "$work/mnt/rank$r"
  "$build/bench/fsbench" write "$data" "$work/mnt/rank$r/data.bin" 8192 --fsync >/dev/null &
  pids+=($!)
done
wait "${pids[@]}"
sync
end=$(date +%s.%N)
if [ -n "$sampler" ]; then kill "$sampler"; wait "$sampler" 2>/dev/null || true; sampler=; fi
hwm=$(awk '/^VmHWM/{print int($2 / 1024)}' "/proc/$daemon/status")
free=$(awk -F= '/^heap_free_bytes/{print int($2 / 1048576)}' "$work/mnt/.rankfs-stats")
echo "mib=$mib writers=$writers peak_rss_mib=$hwm wall_s=$(echo "$end - $start" | bc) heap_free_mib=$free $*"
