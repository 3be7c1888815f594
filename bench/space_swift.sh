#!/usr/bin/env bash
# ms-swift's persistent cache (issue #26, second workload): what rankfs stores for it today,
# against the zstd baselines, the levers of bench/space_levers and zstd --patch-from deltas
# (docs/benchmarks.md, "Space levers (issue #26)").
#
#   bench/space_swift.sh OUT [--megabytes N] [--build DIR] [--no-mount]
#
# 1. bench/space_workload.py --swift into OUT/plain: two `swift sft` jobs, caching on, that
#    differ only in --max_length, their hub on a plain directory. When OUT/plain.txt says that
#    step finished (a rerun of the script), its files are taken as they are.
# 2. bench/space_levers on the cache files it left (OUT/levers.txt).
# 3. zstd -1/-3/-19 --long=27 of all cache files concatenated in the order they were written.
# 4. zstd -3 of each Arrow file alone and with --patch-from= each other Arrow file, and two
#    depth-1 estimates from them (no base is itself a delta; other files zstd -3 alone):
#    "vs source": every file a delta against the source table (the Arrow file not named
#    cache-*) where that is smaller; "best bases": the set of files kept alone, and for each
#    other file its base among them, that store the fewest bytes (tried exhaustively). Then
#    bench/space_rowdelta.py: the same near-duplicates row by row (OUT/rowdelta_*.txt).
# 5. Unless --no-mount: the same workload with its hub on a fresh rankfs mount (OUT/mount),
#    the store's bytes right after the jobs, after 60 s idle and after the unmount; then
#    `cp -a` of OUT/plain's hub/datasets onto another fresh mount (OUT/cp). Needs root and
#    /dev/fuse. Bytes are the allocated ones (du -s -B1: hole-punched pack ranges do not
#    count), with the apparent size (du -sb) beside them.
# Prints "key=value" lines; OUT keeps the logs. Jobs run one at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

OUT="" MB=20 BUILD="$ROOT/build" MOUNT=1
while [ $# -gt 0 ]; do
  case "$1" in
    --megabytes) MB=$2; shift ;;
    --build) BUILD=$2; shift ;;
    --no-mount) MOUNT=0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) OUT=$1 ;;
  esac
  shift
done
[ -n "$OUT" ] || { sed -n '2,24p' "$0" >&2; exit 2; }
PY="$(scripts/deps.sh --pyenv-path)/bin/python"
RANKFS="$BUILD/mount-helper/rankfs"
LEVERS="$BUILD/bench/space_levers"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
echo "uptime_start=$(uptime)"

# The regular files under $1 but lock files, oldest first (the order the jobs wrote them).
cache_files() {
  find "$1" -type f ! -name '*.lock' -printf '%T@ %p\n' | sort -n | cut -d' ' -f2-
}
bytes() { wc -c <"$1"; }
allocated() { du -s -B1 "$1" | cut -f1; }
apparent() { du -sb "$1" | cut -f1; }

# 1. The workload on a plain directory (a finished one in OUT is reused).
if ! grep -q '^cache_dir=' "$OUT/plain.txt" 2>/dev/null; then
  $PY bench/space_workload.py --swift --out "$OUT/plain" --megabytes "$MB" >"$OUT/plain.txt"
fi
cat "$OUT/plain.txt"
mapfile -t FILES < <(cache_files "$OUT/plain/hub/datasets")
total=0
for f in "${FILES[@]}"; do total=$((total + $(bytes "$f"))); done
echo "files=${#FILES[@]} raw_bytes=$total"

# 2. The levers.
"$LEVERS" "${FILES[@]}" >"$OUT/levers.txt"
echo "levers=$OUT/levers.txt"

# 3. Baselines.
for level in 1 3 19; do
  echo "zstd_${level}_long27_bytes=$(cat "${FILES[@]}" | zstd -q -"$level" --long=27 -T1 -c | wc -c)"
done

# 4. Deltas between whole files: every Arrow file against every other one.
ARROW=()
for f in "${FILES[@]}"; do case "$f" in *.arrow) ARROW+=("$f") ;; esac; done
other=0  # the files that are not Arrow (dataset_info.json), zstd -3 each
for f in "${FILES[@]}"; do
  case "$f" in *.arrow) ;; *) other=$((other + $(zstd -q -3 -c "$f" | wc -c))) ;; esac
done
for f in "${ARROW[@]}"; do
  echo "delta file=$(basename "$f") base=- bytes=$(zstd -q -3 -T1 -c "$f" | wc -c)"
  for b in "${ARROW[@]}"; do
    [ "$b" = "$f" ] && continue
    d=$(zstd -q -3 -T1 -c --patch-from="$b" "$f" 2>/dev/null | wc -c)
    echo "delta file=$(basename "$f") base=$(basename "$b") bytes=$d"
  done
done | tee "$OUT/deltas.txt"
python3 - "$OUT/deltas.txt" "$other" <<'PY'
import itertools, re, sys
size = {}
for line in open(sys.argv[1]):
    f, b, n = re.match(r"delta file=(\S+) base=(\S+) bytes=(\d+)", line).groups()
    size[f, b] = int(n)
files = sorted({f for f, _ in size})
alone = {f: size[f, "-"] for f in files}
source = next((f for f in files if not f.startswith("cache-")), files[0])
# Depth 1 against the source table: every other file a delta against it where that is smaller.
depth1 = sum(min(alone[f], size[f, source]) if f != source else alone[f] for f in files)
# Depth 1, the best choice of bases: some files are stored alone (bases), every other one is a
# delta against one base (never against a delta). Exhaustive over the sets of bases.
best, best_bases = None, None
for k in range(1, len(files) + 1):
    for bases in itertools.combinations(files, k):
        total = sum(alone[b] for b in bases) + sum(
            min([alone[f]] + [size[f, b] for b in bases]) for f in files if f not in bases)
        if best is None or total < best:
            best, best_bases = total, bases
other = int(sys.argv[2])
print("zstd3_alone_bytes=%d" % (sum(alone.values()) + other))
print("deltas_vs_source_bytes=%d source=%s" % (depth1 + other, source))
print("deltas_best_bases_bytes=%d bases=%s" % (best + other, ",".join(best_bases)))
PY

# 4b. Rows: exact dedup of the conversation column's rows plus per-row deltas of the JSON rows
#     against the source rows with the same messages (bench/space_rowdelta.py).
for frame in 32 128; do
  $PY bench/space_rowdelta.py --frame "$frame" "${ARROW[@]}" >"$OUT/rowdelta_$frame.txt"
  echo "rowdelta_frame_${frame}KiB: $(tail -1 "$OUT/rowdelta_$frame.txt")"
done

[ "$MOUNT" = 1 ] || exit 0

# 5. rankfs: the workload on a mount over its hub, then a copy of the plain files.
store_bytes() {
  echo "$1_store_allocated=$(allocated "$2") $1_packs_allocated=$(allocated "$2/packs")" \
       "$1_meta_allocated=$(allocated "$2/meta") $1_store_apparent=$(apparent "$2")"
}
for d in mount cp; do  # a rerun starts from fresh stores
  if mountpoint -q "$OUT/$d/mnt"; then echo "$OUT/$d/mnt is still mounted" >&2; exit 1; fi
  rm -rf "${OUT:?}/$d"
done
mkdir -p "$OUT/mount/mnt" "$OUT/cp/mnt"
cp -a "$OUT/plain/data" "$OUT/plain/model" "$OUT/mount/"
"$RANKFS" mount "$OUT/mount/store" "$OUT/mount/mnt"
trap 'if mountpoint -q "$OUT/mount/mnt"; then "$RANKFS" unmount "$OUT/mount/mnt"; fi' EXIT
$PY bench/space_workload.py --swift --out "$OUT/mount" --hub "$OUT/mount/mnt" \
  --megabytes "$MB" >"$OUT/mount.txt"
cat "$OUT/mount.txt"
"$RANKFS" stats "$OUT/mount/mnt" >"$OUT/mount_stats.txt"
store_bytes after_jobs "$OUT/mount/store"
sleep 60  # the issue measures space after 60 s idle
store_bytes after_idle "$OUT/mount/store"
"$RANKFS" unmount "$OUT/mount/mnt"
store_bytes after_unmount "$OUT/mount/store"
"$RANKFS" fsck "$OUT/mount/store" >"$OUT/mount_fsck.txt" 2>&1 && echo "fsck=0" || echo "fsck=$?"

"$RANKFS" mount "$OUT/cp/store" "$OUT/cp/mnt"
trap 'if mountpoint -q "$OUT/cp/mnt"; then "$RANKFS" unmount "$OUT/cp/mnt"; fi' EXIT
cp -a "$OUT/plain/hub/datasets" "$OUT/cp/mnt/"
"$RANKFS" unmount "$OUT/cp/mnt"
store_bytes cp "$OUT/cp/store"
echo "uptime_end=$(uptime)"
