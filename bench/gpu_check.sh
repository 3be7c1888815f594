#!/usr/bin/env bash
# The GPU staging path on a machine with a GPU (issue #21 item 6; docs/benchmarks.md, "GPU
# staging"), in under 10 minutes: checks what the machine has, builds what it can (or takes a
# bundle built elsewhere), runs the GPU tests, and measures staged reads to device memory
# against read() + cudaMemcpy from pageable and from pinned memory, with the copy engine and the
# decompression workers measured in the same run. Every number is printed beside the card's
# name and the mode that gave it: "mount" (through a real rankfs mount) or "inproc" (the
# daemon's read path linked in-process over a store the bench builds: for a sandbox with no
# /dev/fuse).
#
#   bench/gpu_check.sh                     on the GPU machine (builds, or uses .gpubundle/)
#   bench/gpu_check.sh --dry-run           everything except the device parts (no GPU needed)
#   bench/gpu_check.sh --make-bundle DIR   here: build and pack gpu_bench, rankfs, the GPU tests
#                                          and the shared libraries they need into DIR, for a
#                                          machine without the Debian packages
# Options: --bundle DIR (default .gpubundle), --build DIR (default build-gpu), --size-mib N
# (default 1024), --runs N (default 3), --workers N (default 4), --out DIR (logs and reports),
# --use-bundle (the bundle even where it could build: to test the bundle here),
# --skip-tests (the script's own CTest, which must not run the suite inside the suite).
# An existing --build directory is used as it is configured (not reconfigured).
# Exit status: 0 when everything ran (targets missed are reported, not failures), 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DRY=0 SKIP_TESTS=0 USE_BUNDLE=0 MAKE_BUNDLE="" BUNDLE="$ROOT/.gpubundle" BUILD="$ROOT/build-gpu" SIZE=1024 RUNS=3 WORKERS=4
OUT="${OUT:-$ROOT/gpu-check-out}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --skip-tests) SKIP_TESTS=1 ;;
    --use-bundle) USE_BUNDLE=1 ;;
    --make-bundle) MAKE_BUNDLE=$2; shift ;;
    --bundle) BUNDLE=$2; shift ;;
    --build) BUILD=$2; shift ;;
    --size-mib) SIZE=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --workers) WORKERS=$2; shift ;;
    --out) OUT=$2; shift ;;
    *) echo "gpu_check: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUT"
BUILD=$(realpath -m "$BUILD") BUNDLE=$(realpath -m "$BUNDLE") OUT=$(realpath -m "$OUT")
[ -z "$MAKE_BUNDLE" ] || MAKE_BUNDLE=$(realpath -m "$MAKE_BUNDLE")
FAILED=0
note() { echo "gpu_check: $*"; }
fail() { echo "gpu_check: FAILED: $*"; FAILED=1; }
have() { command -v "$1" >/dev/null 2>&1; }

# ---- what the machine has --------------------------------------------------------------------
note "machine: $(uname -srm), $(nproc) CPUs, $(awk '/MemTotal/ {print int($2/1048576)}' /proc/meminfo) GiB"
GPU=0
if [ "$DRY" = 1 ]; then
  note "--dry-run: NO GPU PARTS: device tests, CUDA measurements and nvidia-smi are skipped"
elif have nvidia-smi && nvidia-smi -L >/dev/null 2>&1; then
  GPU=1
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/gpu_check: gpu: /'
else
  note "no GPU answers (nvidia-smi missing or failing): device parts skipped, as with --dry-run"
fi
have nvcc && note "nvcc: $(nvcc --version | tail -1)" || note "nvcc: not found"
for t in cmake ninja; do have $t && note "$t: $($t --version | head -1)" || note "$t: not found"; done
FUSE=0
if [ "$(id -u)" = 0 ] && [ -c /dev/fuse ] && have fusermount3; then FUSE=1; fi
note "/dev/fuse usable (root, device, fusermount3): $([ $FUSE = 1 ] && echo yes || echo no)"
MISSING=""
for p in libfuse3-dev librocksdb-dev libzstd-dev libssl-dev libgtest-dev libbenchmark-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || MISSING="$MISSING $p"
done
note "Debian packages missing:${MISSING:- none}"

configure() {  # a new build directory only: an existing one keeps its own settings
  [ -f "$BUILD/CMakeCache.txt" ] && return 0
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRANKFS_BUILD_BENCH=ON \
    -DRANKFS_BUILD_TESTS=ON -DRANKFS_CUDA="$(have nvcc && echo ON || echo OFF)" \
    $(have ccache && echo -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
}

# What the checks need: the bench, the daemon, the library and every GPU test (the CUDA
# backend's own tests exist where the toolkit was found; their names start with Gpu too).
targets() {
  local t="gpu_bench rankfs rankfs_gpu gpu_protocol_test gpu_backend_test gpu_staging_test"
  grep -q 'gpu_cuda_test' "$BUILD/build.ninja" 2>/dev/null &&
    t="$t gpu_cuda_test"
  echo "$t"
}

# ---- a bundle for a machine without the packages (run where they are) ------------------------
if [ -n "$MAKE_BUNDLE" ]; then
  configure >/dev/null || exit 1
  cmake --build "$BUILD" -j "$(nproc)" --target $(targets) || exit 1
  rm -rf "$MAKE_BUNDLE" && mkdir -p "$MAKE_BUNDLE/bin" "$MAKE_BUNDLE/lib" || exit 1
  cp "$BUILD/bench/gpu_bench" "$BUILD/mount-helper/rankfs" "$MAKE_BUNDLE/bin/"
  find "$BUILD/tests" -maxdepth 3 -type f -name 'gpu_*_test' -perm -u+x -exec cp {} "$MAKE_BUNDLE/bin/" \;
  cp "$BUILD"/gpu/librankfs_gpu.so* "$MAKE_BUNDLE/lib/"
  # Every shared library the programs need except the C library's own (the target's glibc,
  # as new or newer, runs them) and the CUDA driver (the target's).
  for b in "$MAKE_BUNDLE"/bin/*; do
    ldd "$b" | awk '/=> \// {print $3}'
  done | sort -u | grep -Ev '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*|libcuda)\.so' |
    while read -r lib; do cp -L "$lib" "$MAKE_BUNDLE/lib/"; done
  strip --strip-debug "$MAKE_BUNDLE"/bin/* "$MAKE_BUNDLE"/lib/* 2>/dev/null
  cp bench/gpu_check.sh "$MAKE_BUNDLE/"
  note "bundle in $MAKE_BUNDLE ($(du -sh "$MAKE_BUNDLE" | cut -f1)); on the GPU machine: bench/gpu_check.sh --bundle $MAKE_BUNDLE"
  exit 0
fi

# ---- build, or take the bundle ---------------------------------------------------------------
BIN="" RANKFS=""
if [ -z "$MISSING" ] && have cmake && have ninja && [ "$USE_BUNDLE" = 0 ]; then
  note "building in $BUILD (CUDA: $(have nvcc && echo ON || echo OFF))"
  if configure >"$OUT/cmake.log" 2>&1 &&
     cmake --build "$BUILD" -j "$(nproc)" --target $(targets) >"$OUT/build.log" 2>&1; then
    BIN="$BUILD/bench/gpu_bench" RANKFS="$BUILD/mount-helper/rankfs"
  else
    fail "build (see $OUT/cmake.log, $OUT/build.log)"; tail -20 "$OUT/build.log" 2>/dev/null
  fi
elif [ -x "$BUNDLE/bin/gpu_bench" ]; then
  note "using the bundle $BUNDLE ($([ "$USE_BUNDLE" = 1 ] && echo "--use-bundle" || echo "this machine cannot build: packages missing"))"
  export LD_LIBRARY_PATH="$BUNDLE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  BIN="$BUNDLE/bin/gpu_bench" RANKFS="$BUNDLE/bin/rankfs"
else
  fail "cannot build here (packages missing:$MISSING) and no bundle at $BUNDLE: make one on a" \
       "machine with the packages (bench/gpu_check.sh --make-bundle .gpubundle) and carry it"
fi

# ---- the GPU tests ---------------------------------------------------------------------------
# Without a device the CUDA tests skip saying why; --dry-run says so for all of them.
if [ "$SKIP_TESTS" = 1 ]; then
  note "GPU tests skipped (--skip-tests)"
elif [ -n "$BIN" ]; then
  if [ "$BIN" = "$BUILD/bench/gpu_bench" ]; then
    note "GPU tests: ctest -R Gpu (the GPU suites' tests)"
    ctest --test-dir "$BUILD" -R '^Gpu' --output-on-failure --timeout 240 >"$OUT/tests.log" 2>&1 ||
      fail "GPU tests (see $OUT/tests.log)"
  else
    for t in "$BUNDLE"/bin/gpu_*_test; do
      [ -x "$t" ] || continue
      note "GPU tests: $(basename "$t")"
      RANKFS_BINARY="$RANKFS" timeout 240 "$t" >>"$OUT/tests.log" 2>&1 ||
        fail "$(basename "$t") (see $OUT/tests.log)"
    done
  fi
  grep -E '(PASSED|FAILED|SKIPPED|tests passed|Skipped)' "$OUT/tests.log" | tail -15 | sed 's/^/  /'
fi

# ---- the measurements ------------------------------------------------------------------------
bench() {  # bench NAME ARGS...: runs gpu_bench, keeps its report, prints its summary
  local name=$1; shift
  note "gpu_bench $* (log: $OUT/$name.log)"
  timeout 240 "$BIN" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  if [ $rc = 77 ]; then note "$name: cannot run here: $(tail -1 "$OUT/$name.log")"; return; fi
  [ $rc = 0 ] || { fail "$name (exit $rc): $(tail -3 "$OUT/$name.log")"; return; }
  tail -1 "$OUT/$name.log" >"$OUT/$name.json"
  sed -n '/^gpu_bench /,$p' "$OUT/$name.log" | sed '$d'
}
if [ -n "$BIN" ]; then
  WORK=$(mktemp -d /var/tmp/rankfs-gpu-check.XXXXXX)
  trap 'rm -rf "$WORK"' EXIT
  DEV=cuda
  if [ "$GPU" = 0 ]; then
    DEV=cpu SIZE=$(( SIZE > 64 ? 64 : SIZE )) RUNS=1
    note "no GPU: the same pipeline with host memory as the device, $SIZE MiB, 1 run (not a measurement)"
  fi
  bench inproc inproc --device $DEV --work "$WORK/inproc" --size-mib "$SIZE" --runs "$RUNS" \
    --workers "$WORKERS"
  rm -rf "$WORK/inproc"
  if [ $FUSE = 1 ]; then
    bench mount mount --device $DEV --rankfs "$RANKFS" --work "$WORK/mount" --size-mib "$SIZE" \
      --runs "$RUNS"
  else
    note "mount mode skipped: no usable /dev/fuse here (the inproc numbers stand for it)"
  fi
fi
[ "$GPU" = 1 ] || note "NO GPU was used: the numbers above are the CPU pipeline's, not a GPU's"
note "$([ $FAILED = 0 ] && echo done || echo 'done, with failures'); reports in $OUT"
exit $FAILED
