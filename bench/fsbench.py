#!/usr/bin/env python3
"""The filesystem benchmark: ext4, libfuse's passthrough_ll and rankfs side by side, one run.

Runs every workload on the targets in turn (targets interleaved within each repetition so that
a noisy minute hurts all alike), repeats each >= 3 times, and prints medians plus the ratios
rankfs/ext4 and rankfs/passthrough_ll with the targets of docs/benchmarks.md. A fourth target,
fuse_null (bench/fuse_null.cc: FUSE that throws data away), shows the floor that FUSE itself
puts under every FUSE filesystem on this machine; it runs the write and metadata workloads
(it stores nothing, so it has no reads) and gets the ratio rankfs/fuse_null, with no target.
Each timed phase also records the machine's busy CPU-seconds (cpu_s), and the report turns
them into the best ratio rankfs could reach at that CPU cost with every CPU busy the whole
phase: a target past that bound is out of reach without less CPU per byte or more CPUs.
The real training jobs (datasets4, swift4, swift4cache: ext4 and rankfs only) are in
bench/realjobs.py.
Writes results.json (every raw run, medians, ratios, CPU bounds, machine facts) and chart.png
(gnuplot) into --out. The workload itself runs in bench/fsbench.cc (plain syscalls); this
script only mounts, drops caches, starts processes and does arithmetic.

Needs root (mounts, drop_caches), /dev/fuse, a build with bench/fsbench and rankfs
(scripts/bench.sh builds them) and the C compiler (passthrough_ll is compiled here from the
source Debian's libfuse3-dev ships).
"""
import argparse
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time

import gpujob
import realjobs

PASSTHROUGH_SRC = "/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c"
MIB = 1 << 20


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(argv, timeout=1800, **kw):
    """Runs argv; returns stdout. Raises with the output on failure."""
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


def fsbench_json(argv, timeout=1800):
    return json.loads(run(argv, timeout).strip().splitlines()[-1])


def fsbench_json_cpu(argv, target=None):
    """fsbench_json, and the machine's busy CPU-seconds (busy_cpu_s) while it ran; with a
    target, also its daemon's CPU-seconds (None for ext4)."""
    phase = CpuPhase(target)
    out = fsbench_json(argv)
    cpu, daemon, job = phase.end()
    return (out, cpu, daemon, job) if target is not None else (out, cpu)


def drop_caches():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as e:
        log(f"fsbench: cannot drop caches ({e}); cold numbers are warm")


def busy_cpu_s():
    """CPU-seconds the whole machine has spent busy since boot (/proc/stat: user, nice, system,
    irq, softirq; not idle, iowait or time stolen by a hypervisor). The difference over a timed
    phase is what that phase cost every process together: the workload, the kernel, the daemon."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def children_cpu_s():
    """user + system CPU-seconds of this process's children that have been waited for."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class CpuPhase:
    """The CPU cost of one timed phase, from construction to end(): the machine's busy
    CPU-seconds (every process, the kernel included); for a FUSE target its daemon's own
    (utime + stime of all its threads, /proc/PID/stat); and the job's: the workload processes
    started and waited for in the phase plus the daemon. The job's figure leaves out whatever
    else runs on the machine (a shared machine's builds), and kernel threads (the flusher's
    writeback to a disk)."""

    def __init__(self, target=None):
        self.target = target
        self.d0 = target.daemon_cpu_s() if target is not None else None
        self.w0 = children_cpu_s()
        self.c0 = busy_cpu_s()

    def end(self):
        """(machine CPU-s, daemon CPU-s or None, job CPU-s)."""
        cpu = busy_cpu_s() - self.c0
        writers = children_cpu_s() - self.w0
        d1 = self.target.daemon_cpu_s() if self.target is not None else None
        daemon = d1 - self.d0 if d1 is not None and self.d0 is not None else None
        return cpu, daemon, writers + (daemon or 0.0)


def proc_stat_fields(pid):
    """The fields of /proc/PID/stat from field 3 on (after "pid (comm) "), so field N is
    [N - 3]; None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def process_cpu_s(pid):
    """utime + stime of every thread of process pid, in seconds (/proc/PID/stat fields 14 and
    15); None when it is gone."""
    fields = proc_stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


allocated_bytes = realjobs.allocated_bytes  # du's count: st_blocks of everything under a path


def is_mounted(path):
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == real for line in f)


def wait_mounted(path, proc, what):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if is_mounted(path):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before mounting {path}")
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not mount {path} within 30 s")


def rmtree(path):
    shutil.rmtree(path, ignore_errors=True)


class Ext4:
    """A plain directory on the disk the work directory lives on."""

    name = "ext4"
    stores_data = True

    def __init__(self, work):
        self.dir = os.path.join(work, "ext4")

    def start(self, fresh=True):
        if fresh:
            rmtree(self.dir)
        os.makedirs(self.dir, exist_ok=True)
        return self.dir

    def stop(self):
        pass

    def disk_bytes(self):
        return allocated_bytes(self.dir)

    def peak_rss(self):
        return None

    def daemon_cpu_s(self):
        return None

    def settle(self):
        os.sync()

    def clean(self):
        rmtree(self.dir)


class Btrfs:
    """The peer (issue #22 item 4): btrfs with compress=zstd:1 on a loop file on the same disk,
    deduplicated afterwards by `duperemove -dr`. Runs the N-ranks workloads only. finalize()
    runs duperemove; the bytes on disk are final after it."""

    name = "btrfs"
    stores_data = True

    def __init__(self, work, size_gib):
        self.image = os.path.join(work, "btrfs.img")
        self.mnt = os.path.join(work, "btrfs-mnt")
        self.size = size_gib << 30

    @staticmethod
    def available():
        """None when it can run here, else why not."""
        for tool in ("mkfs.btrfs", "duperemove", "losetup"):
            if shutil.which(tool) is None:
                return f"{tool} not found (apt-get install btrfs-progs duperemove)"
        with open("/proc/filesystems") as f:
            if "btrfs" not in f.read():
                return "the kernel has no btrfs"
        return None

    def start(self, fresh=True):
        if fresh:
            self.clean()
            with open(self.image, "wb") as f:
                f.truncate(self.size)  # sparse: the disk holds only what btrfs writes
            run(["mkfs.btrfs", "-q", "-f", self.image])
        os.makedirs(self.mnt, exist_ok=True)
        run(["mount", "-o", "loop,compress=zstd:1", self.image, self.mnt])
        return self.mnt

    def stop(self):
        if is_mounted(self.mnt):
            run(["umount", self.mnt])

    def finalize(self):
        run(["duperemove", "-dr", "-q", self.mnt], timeout=3600)

    def disk_bytes(self):
        """What the filesystem holds on its device (data after compression and dedup, metadata
        with its DUP copy): `btrfs filesystem usage -b`'s first Used line, after a sync."""
        os.sync()
        for line in run(["btrfs", "filesystem", "usage", "-b", self.mnt]).splitlines():
            if line.strip().startswith("Used:"):
                return int(line.split()[-1])
        raise RuntimeError("btrfs filesystem usage printed no Used line")

    def peak_rss(self):
        return None

    def daemon_cpu_s(self):
        return None

    def settle(self):
        os.sync()

    def clean(self):
        self.stop()
        if os.path.exists(self.image):
            os.unlink(self.image)


class FuseDaemon:
    """A FUSE daemon run in the foreground as a child; stop() always leaves no mount behind."""

    stores_data = True
    preexec = None  # run in the child before exec (Popen's preexec_fn)

    def __init__(self, work, name, backing):
        self.name = name
        self.mnt = os.path.join(work, name + "-mnt")
        self.backing = os.path.join(work, backing)
        self.proc = None
        self.log = os.path.join(work, name + ".log")

    def argv(self):
        raise NotImplementedError

    def start(self, fresh=True):
        if fresh:
            rmtree(self.backing)
        os.makedirs(self.backing, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)
        with open(self.log, "ab") as log_file:
            self.proc = subprocess.Popen(self.argv(), stdout=log_file, stderr=log_file,
                                         stdin=subprocess.DEVNULL, preexec_fn=self.preexec)
        wait_mounted(self.mnt, self.proc, self.name)
        return self.mnt

    def daemon_cpu_s(self):
        return process_cpu_s(self.proc.pid) if self.proc is not None else None

    def settle(self):
        """Returns once the data written so far is where this target keeps it: the kernel's
        dirty pages written back to the daemon (sync), and whatever the daemon buffers stored."""
        os.sync()

    def peak_rss(self):
        if self.proc is None:
            return None
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None

    def stop(self):
        if self.proc is None:
            return
        subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-uz", self.mnt], capture_output=True)
        if self.proc.returncode not in (0, None):
            log(f"fsbench: {self.name} exited with {self.proc.returncode}; log: {self.log}")
        self.proc = None

    def disk_bytes(self):
        return allocated_bytes(self.backing)

    def clean(self):
        self.stop()
        rmtree(self.backing)


class Passthrough(FuseDaemon):
    """libfuse's passthrough_ll example with its default options (multi-threaded). It holds an
    O_PATH descriptor for every inode the kernel knows, so it runs with its soft limit of open
    files raised to the hard limit, and holds no more files than that allows (max_files)."""

    def __init__(self, work, binary):
        super().__init__(work, "passthrough_ll", "passthrough-src")
        self.binary = binary

    @staticmethod
    def preexec():
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    @staticmethod
    def max_files():
        """Files one directory may hold here: the hard limit, less room for the other
        descriptors (the directory, open files, libfuse's own)."""
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        return hard if hard == resource.RLIM_INFINITY else max(hard - 1000, 0)

    def argv(self):
        return [self.binary, "-f", "-o", f"source={self.backing}", self.mnt]


class Rankfs(FuseDaemon):
    """rankfs with its default options (plus --rankfs-options); the store is the backing dir."""

    def __init__(self, work, binary, options):
        super().__init__(work, "rankfs", "rankfs-store")
        self.binary = binary
        self.options = options

    def argv(self):
        argv = [self.binary, "mount", self.backing, self.mnt, "-f"]
        return argv + (["-o", self.options] if self.options else [])

    def stats(self):
        """The mount's .rankfs-stats as {key: int} (the numeric keys only)."""
        out = {}
        with open(os.path.join(self.mnt, ".rankfs-stats")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                if v.isdigit():
                    out[k] = int(v)
        return out

    def settle(self, timeout=300):
        # A sync hands the kernel's dirty pages to the daemon; the daemon stores what it holds
        # in the background (a FUSE sync does not wait for that), until dirty_bytes is 0. A
        # stats read costs the daemon ~0.5 ms (mallinfo2, a scan of the inodes): every 50 ms
        # keeps that near 1 % of a CPU.
        os.sync()
        deadline = time.monotonic() + timeout
        while self.stats().get("dirty_bytes", 0) > 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"rankfs still holds dirty bytes after {timeout} s")
            time.sleep(0.05)


class FuseNull(FuseDaemon):
    """bench/fuse_null: FUSE with rankfs's kernel options that acknowledges writes and keeps
    nothing (reads give zeros): what the kernel and /dev/fuse cost on their own."""

    stores_data = False

    def __init__(self, work, binary):
        super().__init__(work, "fuse_null", "fuse-null-unused")
        self.binary = binary

    def argv(self):
        return [self.binary, self.mnt]


def build_passthrough(work):
    out = os.path.join(work, "passthrough_ll")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(PASSTHROUGH_SRC):
        flags = run(["pkg-config", "--cflags", "--libs", "fuse3"]).split()
        run(["cc", "-O2", "-o", out, PASSTHROUGH_SRC] + flags)
    return out


def make_dataset(fsbench, path, size, seed):
    if os.path.exists(path) and os.path.getsize(path) == size:
        return path
    log(f"fsbench: generating {size / MIB:.0f} MiB of real data in {path}")
    fsbench_json([fsbench, "gen", path, str(size), str(seed)])
    return path


# ---- workloads: each takes a started target's directory and returns {metric: value} ----------

def nranks(args, target, root, dataset, writers):
    """N writers, each copying the same dataset with 8 KiB writes into its own directory and
    fsync()ing it, then one sync: wall time and bytes on disk."""
    dirs = [os.path.join(root, f"rank{i}") for i in range(writers)]
    for d in dirs:
        os.makedirs(d)
    t0 = time.monotonic()
    phase = CpuPhase(target)
    procs = [subprocess.Popen([args.fsbench, "write", dataset, os.path.join(d, "data.bin"),
                               "8192", "--fsync"], stdout=subprocess.PIPE, text=True)
             for d in dirs]
    for p in procs:
        out, _ = p.communicate(timeout=3600)
        if p.returncode != 0:
            raise RuntimeError(f"{target.name}: writer failed with {p.returncode}")
    os.sync()
    wall = time.monotonic() - t0
    cpu, daemon, job = phase.end()
    m = with_daemon({"wall_s": wall, "cpu_s": cpu, "job_cpu_s": job}, "daemon_cpu_s", daemon)
    # final_s: until the bytes on disk are final. The same as wall_s but for a target that
    # deduplicates afterwards (btrfs + duperemove); final_cpu_s the machine's CPU until then.
    if hasattr(target, "finalize"):
        target.finalize()
    m["final_s"] = time.monotonic() - t0
    m["final_cpu_s"] = busy_cpu_s() - phase.c0
    m["disk_bytes"] = target.disk_bytes()
    return m


def with_daemon(metrics, key, daemon_cpu):
    """metrics with key: daemon_cpu added when the target has a daemon."""
    if daemon_cpu is not None:
        metrics[key] = daemon_cpu
    return metrics


PYJOB_WRITERS = 4


def pyjob_headers(work):
    """The Python job's four headers: different lengths, none a multiple of a page, so that
    each file's copy of the data lies at a different offset and the files differ from their
    first byte (as `datasets` fingerprints make them)."""
    paths = []
    for i in range(PYJOB_WRITERS):
        length = 517 + 1531 * i
        text = f"python job writer {i}; fingerprint {i * 2654435761 % 2**32:08x}\n".encode()
        path = os.path.join(work, f"pyjob-header{i}.bin")
        with open(path, "wb") as f:
            f.write((text * (length // len(text) + 1))[:length])
        paths.append(path)
    return paths


def pyjob(args, target, root, headers, data):
    """The Python job: four Python processes (bench/python_job.py), each writing the same data
    behind its own header through an 8 KiB-buffered file with 1 MiB writes, then os.replace
    and chmod. wall_s is the write phase (all writers started until all exited); cpu_s and
    daemon_cpu_s run on until the target has settled (synced, and rankfs's buffers stored),
    so that work the daemon defers is counted; settled_s is when that was."""
    writer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "python_job.py")
    dirs = [os.path.join(root, f"rank{i}") for i in range(len(headers))]
    for d in dirs:
        os.makedirs(d)
    t0 = time.monotonic()
    phase = CpuPhase(target)
    procs = [subprocess.Popen([sys.executable, writer, h, data, d], stdout=subprocess.PIPE,
                              text=True) for h, d in zip(headers, dirs)]
    written = 0
    for p in procs:
        out, _ = p.communicate(timeout=3600)
        if p.returncode != 0:
            raise RuntimeError(f"{target.name}: python writer failed with {p.returncode}")
        written += json.loads(out.strip().splitlines()[-1])["bytes"]
    wall = time.monotonic() - t0
    target.settle()
    settled = time.monotonic() - t0
    cpu, daemon, job = phase.end()
    m = with_daemon({"wall_s": wall, "settled_s": settled, "cpu_s": cpu, "job_cpu_s": job,
                     "disk_bytes": target.disk_bytes()}, "daemon_cpu_s", daemon)
    if isinstance(target, Rankfs):
        st = target.stats()  # a fresh mount per run: the counters are this job's
        fast = st["stream_hashed_bytes"] + st["stream_predicted_bytes"]
        m["fast_path_fraction"] = fast / written
        m["stream_predicted_fraction"] = st["stream_predicted_bytes"] / written
    return m


def single_stream(args, target, root, unique):
    """1 MiB writes of unique data + fsync; sequential reads cold (daemon restarted, page cache
    dropped) and warm; then 4 KiB random reads through mmap (page cache dropped first)."""
    path = os.path.join(root, "single.bin")
    w, write_cpu, write_daemon, write_job = fsbench_json_cpu(
        [args.fsbench, "write", unique, path, str(MIB), "--fsync"], target)
    if not target.stores_data:  # fuse_null: nothing to read back
        return with_daemon({"write_MBps": w["bytes"] / w["seconds"] / 1e6,
                            "write_cpu_s": write_cpu, "write_job_cpu_s": write_job},
                           "write_daemon_cpu_s", write_daemon)
    target.stop()
    root = target.start(fresh=False)
    path = os.path.join(root, "single.bin")
    drop_caches()
    cold, cold_cpu = fsbench_json_cpu([args.fsbench, "read", path, str(MIB)])
    warm = fsbench_json([args.fsbench, "read", path, str(MIB)])
    drop_caches()
    mm = fsbench_json([args.fsbench, "mmaprand", path, str(args.mmap_ops), "7"])
    if not cold["bytes"] == warm["bytes"] == w["bytes"]:
        raise RuntimeError(f"{target.name}: read {cold['bytes']}/{warm['bytes']} of {w['bytes']}")
    if cold["checksum"] != warm["checksum"]:
        raise RuntimeError(f"{target.name}: cold and warm reads differ")
    return with_daemon({
        "write_MBps": w["bytes"] / w["seconds"] / 1e6,
        "write_cpu_s": write_cpu,
        "write_job_cpu_s": write_job,
        "read_cold_MBps": cold["bytes"] / cold["seconds"] / 1e6,
        "read_cold_cpu_s": cold_cpu,
        "read_warm_MBps": warm["bytes"] / warm["seconds"] / 1e6,
        "mmap_rand_4k_ops": mm["ops"] / mm["seconds"],
    }, "write_daemon_cpu_s", write_daemon)


def metadata(args, target, root):
    d = os.path.join(root, "meta")
    os.makedirs(d)
    m, cpu, daemon, _ = fsbench_json_cpu([args.fsbench, "meta", d, str(args.meta_files)],
                                         target)
    return with_daemon({"meta_ops": 3 * m["files"] / m["seconds"], "cpu_s": cpu},
                       "daemon_cpu_s", daemon)


def files100k(args, target, root):
    """--many-files (100,000) empty files in one directory, three phases timed apart: create;
    `ls -l`'s work (readdir + lstat of each), right after and again with caches dropped; and
    `rm -rf`'s (readdir, unlink each, rmdir). Files per second of each phase, the machine's
    busy CPU-seconds over it and, for a FUSE target, its daemon's. A target that cannot hold
    that many (passthrough_ll under a low limit of open files) runs at the count it can hold,
    recorded as `files`."""
    d = os.path.join(root, "many")
    files = args.many_files
    if hasattr(target, "max_files") and target.max_files() < files:
        files = target.max_files()
        log(f"fsbench: files100k: {target.name} can hold {files} files here (its limit of open "
            f"files); its rates are measured at that count")
    out = {"files": files}
    for phase, cmd, cold in (("create", "create", False), ("ls", "list", False),
                             ("ls_cold", "list", True), ("rm", "rm", False)):
        if cold:
            drop_caches()
        m, cpu, daemon, _ = fsbench_json_cpu([args.fsbench, "files", cmd, d, str(files)],
                                             target)
        out[f"{phase}_fps"] = m["files"] / m["seconds"]
        out[f"{phase}_cpu_s"] = cpu
        with_daemon(out, f"{phase}_daemon_cpu_s", daemon)
    return out


# metric -> (workload, better: "lower"/"higher", baseline, bound). The bound is on
# rankfs/baseline of the metric itself (time ratio for wall_s, speed ratio for the rest).
TARGETS = {
    "nranks4.wall_s": ("ext4", "<=", 0.6),
    "nranks4.disk_bytes": ("ext4", "<=", 0.1),
    "nranks8.wall_s": ("ext4", "<=", 0.4),
    "nranks4.final_s": ("btrfs", "<=", 1.0),
    "nranks8.final_s": ("btrfs", "<=", 1.0),
    "single.write_MBps": ("passthrough_ll", ">=", 0.8),
    "single.read_cold_MBps": ("passthrough_ll", ">=", 0.8),
    "single.read_warm_MBps": ("passthrough_ll", ">=", 0.8),
    "single.mmap_rand_4k_ops": ("passthrough_ll", ">=", 0.5),
    "meta.meta_ops": ("passthrough_ll", ">=", 0.5),
    "pyjob4.wall_s": ("ext4", "<=", 1.0),
    "files100k.create_fps": ("passthrough_ll", ">=", 0.8),
    "files100k.ls_fps": ("passthrough_ll", ">=", 0.8),
    "files100k.ls_cold_fps": ("passthrough_ll", ">=", 0.8),
    "files100k.rm_fps": ("passthrough_ll", ">=", 0.8),
    **realjobs.TARGETS,
}

# Targets against the peer, beside the ones above: rankfs must stay ahead of btrfs + duperemove
# in the bytes on disk too.
PEER_TARGETS = {
    "nranks4.disk_bytes": ("btrfs", "<=", 1.0),
    "nranks8.disk_bytes": ("btrfs", "<=", 1.0),
}

# Each time or speed target -> the machine's busy CPU-seconds over the same timed phase.
CPU_OF = {
    "nranks4.wall_s": "nranks4.cpu_s",
    "nranks8.wall_s": "nranks8.cpu_s",
    "single.write_MBps": "single.write_cpu_s",
    "single.read_cold_MBps": "single.read_cold_cpu_s",
    "meta.meta_ops": "meta.cpu_s",
    "pyjob4.wall_s": "pyjob4.cpu_s",
    **realjobs.CPU_OF,
}

# The floor (issue #22): write workload -> the metric of its machine CPU-seconds. A job's floor
# is fuse_null's CPU-seconds for the same job (what FUSE and the writers cost) plus the SHA-256
# and zstd CPU-seconds of the job's unique chunks (`fsbench floor`: what storing them costs at
# the least); every target's CPU is reported as a multiple of it, rankfs's against the target.
FLOOR_OF = {
    "nranks4": "nranks4.cpu_s",
    "nranks8": "nranks8.cpu_s",
    "single": "single.write_cpu_s",
    "pyjob4": "pyjob4.cpu_s",
}
FLOOR_TARGET = 1.25  # rankfs CPU / floor <=


def floor_medians(floors):
    """{workload: [fsbench floor outputs]} -> {workload: {key: median}}."""
    return {wl: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            for wl, runs in floors.items() if runs}


def floor_rows(med, floor_med):
    """Each write workload's floor, and every target's CPU-seconds over it (with the daemon's
    own CPU-seconds beside, where it has one). The same again from the job's CPU-seconds
    (job_*: the workload's processes and the daemon, which a shared machine's other work does
    not inflate), where measured. A workload without a fuse_null run or a floor measurement
    has no row."""
    rows = []
    for wl, cpu_key in FLOOR_OF.items():
        cpu, parts = med.get(cpu_key, {}), floor_med.get(wl)
        if not parts or "fuse_null" not in cpu or "rankfs" not in cpu:
            continue
        store = parts["sha256_cpu_s"] + parts["zstd_cpu_s"]
        floor = cpu["fuse_null"] + store
        daemon = med.get(cpu_key.replace("cpu_s", "daemon_cpu_s"), {})
        job = med.get(cpu_key.replace("cpu_s", "job_cpu_s"), {})
        ratio = cpu["rankfs"] / floor
        if "fuse_null" in job and "rankfs" in job:
            job_floor = job["fuse_null"] + store
            job_part = {"job_floor_cpu_s": job_floor, "job_cpu_s": dict(job),
                        "job_ratio": job["rankfs"] / job_floor}
        else:
            job_part = {}
        rows.append({**job_part,
            "workload": wl, "metric": cpu_key, "floor_cpu_s": floor,
            "fuse_null_cpu_s": cpu["fuse_null"], "store_cpu_s": store,
            "sha256_cpu_s": parts["sha256_cpu_s"], "zstd_cpu_s": parts["zstd_cpu_s"],
            "unique_bytes": parts["unique_bytes"],
            "cpu_s": dict(cpu), "daemon_cpu_s": dict(daemon),
            "over_floor": {t: v / floor for t, v in cpu.items()},
            "ratio": ratio,
            "verdict": f"{'met' if ratio <= FLOOR_TARGET else 'MISSED'} "
                       f"(target <= {FLOOR_TARGET})",
        })
    return rows


def run_workload(args, targets, name, fn, results, floor=None, floors=None):
    """Runs fn on every target, args.reps times, targets interleaved within each repetition;
    with floor (argv of `fsbench floor`), measures the workload's floor once per repetition too,
    into floors[name]."""
    for rep in range(args.reps):
        if floor is not None:
            f = fsbench_json(floor)
            floors.setdefault(name, []).append(f)
            log(f"fsbench: {name} rep {rep + 1}/{args.reps} floor: sha256 "
                f"{f['sha256_cpu_s']:.3f} + zstd {f['zstd_cpu_s']:.3f} CPU-s for "
                f"{f['unique_bytes'] / 1e6:.0f} MB unique")
        for t in targets:
            root = t.start(fresh=True)
            try:
                drop_caches()
                metrics = fn(t, root)
                rss = t.peak_rss()
            finally:
                t.stop()
                t.clean()
            if rss is not None:
                metrics["peak_rss_bytes"] = rss
            results.setdefault(name, {}).setdefault(t.name, []).append(metrics)
            log(f"fsbench: {name} rep {rep + 1}/{args.reps} {t.name}: " +
                ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))


def medians(results):
    out = {}
    for wl, per_target in results.items():
        for tname, runs in per_target.items():
            for key in runs[0]:
                out.setdefault(f"{wl}.{key}", {})[tname] = statistics.median(r[key] for r in runs)
    return out


BASELINES = ("ext4", "passthrough_ll", "fuse_null", "btrfs")
COLUMNS = ("ext4", "passthrough_ll", "fuse_null", "btrfs", "rankfs")


def ratios(med):
    rows = []
    for metric, vals in med.items():
        if "rankfs" not in vals or metric.endswith(("peak_rss_bytes", "teardown_aborts",
                                                    "files100k.files")):
            continue
        for base in BASELINES:
            if base not in vals or vals[base] == 0:
                continue
            r = vals["rankfs"] / vals[base]
            want = TARGETS.get(metric)
            if not want or want[0] != base:
                want = PEER_TARGETS.get(metric)
            verdict = ""
            if want and want[0] == base:
                ok = r <= want[2] if want[1] == "<=" else r >= want[2]
                verdict = f"{'met' if ok else 'MISSED'} (target {want[1]} {want[2]})"
            rows.append({"metric": metric, "baseline": base, "ratio": r, "verdict": verdict})
    return rows


def cpu_rows(med, args, cpus):
    """How far rankfs's CPU cost alone lets it go. Were every CPU busy for the whole phase (no
    waiting, perfect overlap), the phase would still take cpu_s / cpus seconds; that best case,
    as a ratio to the target's baseline, is a bound that no scheduling can beat at this CPU
    cost. A target past it needs less CPU per byte, or more CPUs."""
    work = {"single.write_MBps": args.single_mib * MIB / 1e6,  # the metric's unit, per phase
            "single.read_cold_MBps": args.single_mib * MIB / 1e6,
            "meta.meta_ops": 3 * args.meta_files}
    rows = []
    for metric, cpu_key in CPU_OF.items():
        vals, cpu = med.get(metric, {}), med.get(cpu_key, {})
        base, op, bound = TARGETS[metric]
        if cpu.get("rankfs", 0) <= 0 or not vals.get(base):
            continue
        best_wall = cpu["rankfs"] / cpus
        if metric.endswith("wall_s"):
            best = best_wall / vals[base]
        else:
            best = work[metric] / best_wall / vals[base]
        ok = best <= bound if op == "<=" else best >= bound
        rows.append({"metric": metric, "baseline": base, "cpus": cpus,
                     "rankfs_cpu_s": cpu["rankfs"], "fuse_null_cpu_s": cpu.get("fuse_null"),
                     "best_ratio": best,
                     "verdict": f"{'within reach' if ok else 'out of reach'} at this CPU cost "
                                f"(target {op} {bound})"})
    return rows


RSS_CAP = 1 << 30


def rss_rows(results):
    """The two memory targets: rankfs's peak RSS in every run stays <= 1 GiB, and the 4-writer
    job at twice the dataset does not peak higher than the base size does. A single peak is a
    noisy maximum, so 'does not grow' is read as: the 2x median lies within the range of the 1x
    runs' peaks."""
    peaks = [(wl, r["peak_rss_bytes"]) for wl, per_target in results.items()
             for r in per_target.get("rankfs", []) if "peak_rss_bytes" in r]
    rows = []
    if peaks:
        wl, top = max(peaks, key=lambda p: p[1])
        rows.append({"metric": "peak_rss_bytes (all runs)", "value": top, "worst": wl,
                     "verdict": f"{'met' if top <= RSS_CAP else 'MISSED'} (target <= 1 GiB)"})
    one = [r["peak_rss_bytes"] for r in results.get("rss_1x", {}).get("rankfs", [])]
    two = [r["peak_rss_bytes"] for r in results.get("rss_2x", {}).get("rankfs", [])]
    if one and two:
        m1, m2 = statistics.median(one), statistics.median(two)
        ok = m2 <= max(one)
        rows.append({"metric": "rss_2x / rss_1x", "value": m2 / m1,
                     "range_1x": [min(one), max(one)], "range_2x": [min(two), max(two)],
                     "verdict": f"{'met' if ok else 'MISSED'} (2x median within the 1x peaks)"})
    return rows


def write_chart(out_dir, med, floor=()):
    """chart.png: each metric as rankfs's and passthrough_ll's speed relative to ext4 (ext4 = 1,
    higher is better; times and bytes inverted so that higher is always better), and for each
    write workload a row "<workload> floor/CPU": the floor's CPU-seconds over each target's
    (1 = at the floor; rankfs's target is >= 1/1.25 = 0.8 there)."""
    if shutil.which("gnuplot") is None:
        log("fsbench: gnuplot not found; no chart (apt-get install gnuplot-nox)")
        return None
    data = os.path.join(out_dir, "chart.dat")
    shown = set()  # the columns with a value: gnuplot refuses a histogram of NaNs only
    with open(data, "w") as f:
        for metric, vals in med.items():
            if (metric.endswith(("peak_rss_bytes", "cpu_s", "aborts", "files100k.files"))
                    or "ext4" not in vals):
                continue
            lower_better = metric.endswith(("wall_s", "final_s", "settled_s", "disk_bytes"))
            rel = []
            for t in COLUMNS:
                v = vals.get(t)
                if v is None or v == 0:
                    rel.append("NaN")
                else:
                    rel.append(f"{(vals['ext4'] / v) if lower_better else (v / vals['ext4']):.4f}")
                    shown.add(t)
            f.write(f"{metric} {' '.join(rel)}\n")
        for r in floor:
            rel = []
            for t in COLUMNS:
                v = r["cpu_s"].get(t)
                rel.append(f"{r['floor_cpu_s'] / v:.4f}" if v else "NaN")
                if v:
                    shown.add(t)
            f.write(f"{r['workload']}_floor/CPU {' '.join(rel)}\n")
    if not shown:  # only workloads without ext4 (gpu): nothing to plot here
        return None
    png = os.path.join(out_dir, "chart.png")
    titles = {"ext4": "ext4", "passthrough_ll": "passthrough_ll", "btrfs": "btrfs+duperemove",
              "fuse_null": "fuse_null (FUSE floor)", "rankfs": "rankfs"}
    plots = [f"using {i + 2} title '{titles[t]}'" for i, t in enumerate(COLUMNS) if t in shown]
    plots[0] = plots[0].replace(" title", ":xtic(1) title", 1)
    script = f"""
set terminal pngcairo size 1400,700 font ",11"
set output '{png}'
set title "rankfs vs ext4, passthrough_ll and the FUSE floor (medians; relative to ext4 = 1, floor/CPU rows: relative to the CPU floor = 1; higher is better)" noenhanced
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y 2
set yrange [0.002:*]
set ylabel "relative to ext4 (log scale)"
set xtics rotate by -30 noenhanced
set key top left
set grid ytics
set key noenhanced
plot '{data}' {", '' ".join(plots)}
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    return png


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build-bench", help="build dir with rankfs and fsbench")
    ap.add_argument("--work", default="/var/tmp/rankfs-bench",
                    help="scratch dir on the disk to measure (ext4)")
    ap.add_argument("--out", default="bench-results", help="where results.json/chart.png go")
    ap.add_argument("--size-mib", type=int, default=600, help="N-ranks dataset size per writer")
    ap.add_argument("--single-mib", type=int, default=1024, help="single-stream file size")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--mmap-ops", type=int, default=100000)
    ap.add_argument("--meta-files", type=int, default=10000)
    ap.add_argument("--many-files", type=int, default=100000,
                    help="files100k's number of files in its one directory")
    ap.add_argument("--workloads",
                    default="nranks4,nranks8,single,pyjob4,meta,files100k,rss,datasets4,swift4",
                    help="comma-separated subset of nranks4,nranks8,single,pyjob4,meta,files100k,"
                         "rss, "
                         "the real jobs (bench/realjobs.py) datasets4,swift4,swift4cache, "
                         "and gpu (bench/gpujob.py)")
    ap.add_argument("--pyjob-mib", type=int, default=200, help="the Python job's data per writer")
    ap.add_argument("--btrfs", action=argparse.BooleanOptionalAction, default=True,
                    help="btrfs (compress=zstd:1, then duperemove -dr) on a loop file as a peer "
                         "in the N-ranks workloads, where btrfs-progs and duperemove are "
                         "installed")
    ap.add_argument("--btrfs-gib", type=int, default=32, help="the loop file's (sparse) size")
    ap.add_argument("--datasets-mib", type=int, default=50, help="datasets4's corpus size")
    ap.add_argument("--swift-mib", type=int, default=8, help="swift4's corpus size")
    ap.add_argument("--gpu-mib", type=int, default=1024,
                    help="gpu workload's file size (bench/gpujob.py; not in the default list)")
    ap.add_argument("--rankfs-options", default="", help="-o options for rankfs (default: none)")
    ap.add_argument("--deadline", type=int, default=0,
                    help="abort (unmounting everything) after this many seconds; 0 = none")
    args = ap.parse_args()
    if args.reps < 1:
        ap.error("--reps must be >= 1")
    if os.geteuid() != 0 or not os.access("/dev/fuse", os.R_OK | os.W_OK):
        print("fsbench: needs root and /dev/fuse; skipped", file=sys.stderr)
        sys.exit(77)  # CTest's SKIP_RETURN_CODE for the smoke test

    def on_deadline(signum, frame):
        raise TimeoutError(f"fsbench: deadline of {args.deadline} s passed")
    signal.signal(signal.SIGALRM, on_deadline)
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit("fsbench: terminated"))
    if args.deadline > 0:
        signal.alarm(args.deadline)

    args.fsbench = os.path.abspath(os.path.join(args.build, "bench", "fsbench"))
    rankfs_bin = os.path.abspath(os.path.join(args.build, "mount-helper", "rankfs"))
    null_bin = os.path.abspath(os.path.join(args.build, "bench", "fuse_null"))
    for b in (args.fsbench, rankfs_bin, null_bin):
        if not os.access(b, os.X_OK):
            sys.exit(f"fsbench: {b} missing: build it first (scripts/bench.sh does)")
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    work = os.path.abspath(args.work)
    targets = [Ext4(work), Passthrough(work, build_passthrough(work)), FuseNull(work, null_bin),
               Rankfs(work, rankfs_bin, args.rankfs_options)]
    wanted = set(args.workloads.split(","))
    # The peer runs the N-ranks workloads only.
    peers = []
    if args.btrfs and wanted & {"nranks4", "nranks8"}:
        why_not = Btrfs.available()
        if why_not:
            log(f"fsbench: no btrfs peer: {why_not}")
        else:
            peers.append(Btrfs(work, args.btrfs_gib))
    dataset = make_dataset(args.fsbench, os.path.join(work, "dataset.bin"),
                           args.size_mib * MIB, 1)
    results, floors = {}, {}
    started = time.time()
    try:
        for n in (4, 8):
            if f"nranks{n}" in wanted:
                # Every writer writes the same file: its unique chunks are the job's.
                run_workload(args, targets[:-1] + peers + targets[-1:], f"nranks{n}",
                             lambda t, root, n=n: nranks(args, t, root, dataset, n), results,
                             [args.fsbench, "floor", dataset], floors)
        if "single" in wanted:
            unique = make_dataset(args.fsbench, os.path.join(work, "unique.bin"),
                                  args.single_mib * MIB, 2)
            run_workload(args, targets, "single",
                         lambda t, root: single_stream(args, t, root, unique), results,
                         [args.fsbench, "floor", unique], floors)
        if "pyjob4" in wanted:
            data = make_dataset(args.fsbench, os.path.join(work, "pyjob.bin"),
                                args.pyjob_mib * MIB, 4)
            headers = pyjob_headers(work)
            run_workload(args, targets, "pyjob4",
                         lambda t, root: pyjob(args, t, root, headers, data), results,
                         [args.fsbench, "floor"] + [f"{h}+{data}" for h in headers], floors)
        if "meta" in wanted:
            run_workload(args, targets, "meta", lambda t, root: metadata(args, t, root), results)
        if "files100k" in wanted:  # fuse_null has no directories to list
            run_workload(args, [t for t in targets if t.stores_data], "files100k",
                         lambda t, root: files100k(args, t, root), results)
        if "rss" in wanted:
            # Peak daemon RSS must not grow with the dataset: the 4-writer job at the base size
            # and at twice it, rankfs only, up to 3 times each (a single peak is noisy).
            big = make_dataset(args.fsbench, os.path.join(work, "dataset2x.bin"),
                               2 * args.size_mib * MIB, 3)
            rk = [t for t in targets if t.name == "rankfs"]
            save = args.reps
            args.reps = min(3, args.reps)
            for label, data in (("rss_1x", dataset), ("rss_2x", big)):
                run_workload(args, rk, label,
                             lambda t, root, data=data: nranks(args, t, root, data, 4), results)
            args.reps = save
        realjobs.run_workloads(args, targets, wanted, results, work)
        gpu = gpujob.run_workload(args, wanted, results, work)
    finally:
        for t in targets + peers:
            t.clean()

    signal.alarm(0)
    for wl, per_target in results.items():
        if wl.startswith("rss") or wl in realjobs.WORKLOADS or wl in gpujob.WORKLOADS:  # rankfs only; ext4 and rankfs
            continue
        expected = len(targets) + (len(peers) if wl.startswith("nranks") else 0)
        if wl == "files100k":  # fuse_null has no directories to list
            expected = len([t for t in targets if t.stores_data])
        if len(per_target) != expected:
            sys.exit(f"fsbench: {wl} ran on {sorted(per_target)} only")
    med = medians(results)
    rows = ratios(med)
    mem = rss_rows(results)
    cpu = cpu_rows(med, args, os.cpu_count())
    floor_med = floor_medians(floors)
    floor = floor_rows(med, floor_med)
    report = {
        "machine": {"host": platform.node(), "kernel": platform.release(),
                    "cpus": os.cpu_count(), "work": work},
        "options": vars(args),
        "elapsed_s": time.time() - started,
        "runs": results,
        "medians": med,
        "ratios": rows,
        "memory": mem,
        "cpu": cpu,
        "gpu": gpu,
        "floor_runs": floors,
        "floor_medians": floor_med,
        "floor": floor,
    }
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
    png = write_chart(args.out, med, floor)
    gpu_png = gpujob.write_chart(args.out, gpu)

    print(f"\nmedians of {args.reps} runs ({report['elapsed_s']:.0f} s in all):")
    print(f"{'metric':34} {'ext4':>12} {'passthrough_ll':>15} {'fuse_null':>12} {'btrfs':>12} "
          f"{'rankfs':>12}")
    for metric, vals in med.items():
        cells = [f"{vals[t]:.4g}" if t in vals else "-" for t in COLUMNS]
        print(f"{metric:34} {cells[0]:>12} {cells[1]:>15} {cells[2]:>12} {cells[3]:>12} "
              f"{cells[4]:>12}")
    print("\nratios rankfs/baseline (wall_s, cpu_s, disk_bytes: lower is better; others: higher):")
    for r in rows:
        print(f"{r['metric']:34} / {r['baseline']:15} {r['ratio']:8.3f}  {r['verdict']}")
    if cpu:
        print(f"\nCPU (busy CPU-seconds of the whole machine over each timed phase; best = the "
              f"ratio were they spread over all {cpu[0]['cpus']} CPUs with no waiting):")
    for r in cpu:
        null = r["fuse_null_cpu_s"]
        null = f", fuse_null {null:.2f}" if null is not None else ""
        print(f"{r['metric']:34} rankfs {r['rankfs_cpu_s']:6.2f} CPU-s{null:17}  best "
              f"{r['best_ratio']:.3f} x {r['baseline']:15} {r['verdict']}")
    if floor:
        print("\nCPU over the floor (floor = fuse_null's CPU-s + SHA-256 and zstd of the job's "
              "unique chunks, one thread; daemon = the FUSE daemon's own CPU-s):")
    for r in floor:
        per = "  ".join(f"{t} {r['cpu_s'][t]:.2f}" +
                        (f" (daemon {r['daemon_cpu_s'][t]:.2f})" if t in r["daemon_cpu_s"] else "")
                        for t in COLUMNS if t in r["cpu_s"])
        print(f"{r['workload']:9} floor {r['floor_cpu_s']:6.2f} = fuse_null "
              f"{r['fuse_null_cpu_s']:.2f} + sha256 {r['sha256_cpu_s']:.2f} + zstd "
              f"{r['zstd_cpu_s']:.2f}; rankfs/floor {r['ratio']:.3f} {r['verdict']}\n"
              f"{'':9} CPU-s: {per}")
        if "job_ratio" in r:
            print(f"{'':9} job CPU-s (writers + daemon): floor {r['job_floor_cpu_s']:.2f}, " +
                  "  ".join(f"{t} {r['job_cpu_s'][t]:.2f}" for t in COLUMNS
                            if t in r["job_cpu_s"]) +
                  f"; rankfs/floor {r['job_ratio']:.3f}")
    if mem:
        print("\nmemory (rankfs daemon):")
    mib = 1 << 20
    for r in mem:
        if "range_1x" in r:
            (a, b), (c, d) = r["range_1x"], r["range_2x"]
            print(f"{r['metric']:34} {r['value']:8.3f}  1x {a / mib:.0f}-{b / mib:.0f} MiB, "
                  f"2x {c / mib:.0f}-{d / mib:.0f} MiB  {r['verdict']}")
        else:
            print(f"{r['metric']:34} {r['value'] / mib:8.0f} MiB ({r['worst']})  {r['verdict']}")
    if gpu:
        gpujob.print_report(gpu)
    print(f"\nresults: {os.path.join(args.out, 'results.json')}" +
          (f", gpu chart: {gpu_png}" if gpu_png else "") +
          (f", chart: {png}" if png else ""))


if __name__ == "__main__":
    main()
