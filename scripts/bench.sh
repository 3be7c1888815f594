#!/usr/bin/env bash
# The filesystem benchmark (issue #4, docs/benchmarks.md): ext4, libfuse's passthrough_ll and
# rankfs side by side. Installs what it needs, builds an optimized rankfs and the workload
# driver, then runs bench/fsbench.py with the arguments given (see --help). Root is needed.
#
#   scripts/bench.sh                          the full run (~15-25 min on 2 cores)
#   scripts/bench.sh --reps 1 --size-mib 64 --single-mib 128 --workloads nranks4,single
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
if ! command -v gnuplot >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox
fi
cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DRANKFS_BUILD_TESTS=ON \
  -DRANKFS_BUILD_BENCH=ON >/dev/null
cmake --build build-bench -j "$(nproc)" --target rankfs fsbench fuse_null
exec python3 bench/fsbench.py --build build-bench "$@"
