#!/usr/bin/env bash
# Builds rankfs and mounts it over the ModelScope/ms-swift dataset cache directory, with an
# embedded default store. Installs the Debian packages it needs first.
#
#   scripts/run.sh                      mount over ~/.cache/modelscope/hub/tmp
#   MOUNTPOINT=/x STORE=/y scripts/run.sh
#   build-release/mount-helper/rankfs unmount ~/.cache/modelscope/hub/tmp   (to unmount)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DRANKFS_BUILD_TESTS=OFF \
  -DRANKFS_BUILD_BENCH=OFF >/dev/null
cmake --build build-release -j "$(nproc)" --target rankfs

MOUNTPOINT=${MOUNTPOINT:-$HOME/.cache/modelscope/hub/tmp}
STORE=${STORE:-${XDG_DATA_HOME:-$HOME/.local/share}/rankfs/store}
mkdir -p "$MOUNTPOINT" "$(dirname "$STORE")"
if grep -qs " $(realpath "$MOUNTPOINT") fuse.rankfs " /proc/mounts; then
  echo "rankfs: already mounted on $MOUNTPOINT"
  exit 0
fi
if [ -n "$(ls -A "$MOUNTPOINT" 2>/dev/null)" ]; then
  echo "rankfs: note: $MOUNTPOINT is not empty; its files are hidden while rankfs is mounted"
fi
build-release/mount-helper/rankfs mount "$STORE" "$MOUNTPOINT"
echo "rankfs: mounted $MOUNTPOINT (store: $STORE)"
echo "rankfs: savings: build-release/mount-helper/rankfs stats $MOUNTPOINT   unmount: build-release/mount-helper/rankfs unmount $MOUNTPOINT"
