#!/usr/bin/env bash
# The filesystem benchmark (issue #4, docs/benchmarks.md): ext4, libfuse's passthrough_ll and
# rankfs side by side, and the real training jobs (bench/realjobs.py) on ext4 and rankfs.
# Installs what it needs (the real jobs' pinned Python environment too), builds an optimized
# rankfs and the workload driver, then runs bench/fsbench.py with the arguments given (see
# --help). Root is needed.
#
#   scripts/bench.sh                          the full run (~25-35 min on 2 cores)
#   scripts/bench.sh --reps 1 --size-mib 64 --single-mib 128 --workloads nranks4,single
#   scripts/bench.sh --size-mib 8 --workloads datasets4,swift4     the real jobs (~12 min)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --python
if ! command -v gnuplot >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox
fi
# The N-ranks workloads' peer: btrfs (compress=zstd:1) on a loop file, then duperemove.
if ! command -v mkfs.btrfs >/dev/null || ! command -v duperemove >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends btrfs-progs \
    duperemove
fi
cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DRANKFS_BUILD_TESTS=ON \
  -DRANKFS_BUILD_BENCH=ON >/dev/null
cmake --build build-bench -j "$(nproc)" --target rankfs fsbench fuse_null
exec python3 bench/fsbench.py --build build-bench "$@"
