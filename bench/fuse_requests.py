#!/usr/bin/env python3
"""FUSE requests per file of files100k's phases, rankfs against passthrough_ll, from the kernel.

For each target: mount it (as bench/fsbench.py does), run the many-files sequence (`fsbench
files create`, `list`, drop caches, `list`, `rm`) and, around each phase, record the kernel's
`fuse:fuse_request_send` / `fuse:fuse_request_end` tracepoints of that mount's connection
(`perf record -a`, filtered by the mount's device) and the daemon's CPU (/proc/PID/stat).
Prints (JSON) per phase: its seconds, the daemon's CPU per file and, per opcode, requests per
file and the mean time from the kernel queueing a request to its answer (the daemon's work plus
the two context switches). FORGETs travel on a queue of their own and pass no tracepoint.

The timings are taken under tracing: they explain, the harness measures (docs/benchmarks.md).
Needs root, perf, a build with bench/fsbench and rankfs.

  python3 bench/fuse_requests.py --build build --files 19000 [--targets rankfs,passthrough_ll]
"""
import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsbench  # noqa: E402  (the harness's targets and helpers)

OPCODES = {1: "LOOKUP", 3: "GETATTR", 4: "SETATTR", 10: "UNLINK", 11: "RMDIR", 14: "OPEN",
           18: "RELEASE", 22: "GETXATTR", 25: "FLUSH", 27: "OPENDIR", 28: "READDIR",
           29: "RELEASEDIR", 35: "CREATE", 44: "READDIRPLUS", 50: "SYNCFS"}


def mount_dev(mnt):
    """The kernel's dev_t of a mount (what the tracepoints' `connection` field holds)."""
    st = os.stat(mnt)
    return (os.major(st.st_dev) << 20) | os.minor(st.st_dev)


def requests_by_opcode(script, dev):
    """{opcode: [requests answered, total seconds from send to end]} of connection `dev` in the
    text of `perf script -F time,event,trace` of the two tracepoints. A request sent before the
    trace began (no send line) or not answered before it ended (no end line) is left out."""
    sent, per_op = {}, collections.defaultdict(lambda: [0, 0.0])
    for line in script.splitlines():
        parts = line.split()
        if len(parts) < 6 or "connection" not in parts:
            continue
        fields = dict(zip(parts[2::2], parts[3::2]))
        if int(fields.get("connection", -1)) != dev:
            continue
        t, req = float(parts[0].rstrip(":")), int(fields["req"])
        if parts[1].startswith("fuse:fuse_request_send"):
            sent[req] = (int(fields["opcode"]), t)
        elif parts[1].startswith("fuse:fuse_request_end") and req in sent:
            op, t0 = sent.pop(req)
            per_op[op][0] += 1
            per_op[op][1] += t - t0
    return dict(per_op)


def traced(argv, dev, trace_dir):
    """Runs argv under `perf record` of the FUSE tracepoints; returns (stdout,
    requests_by_opcode of the trace)."""
    data = os.path.join(trace_dir, "perf.data")
    perf = subprocess.Popen(["perf", "record", "-q", "-a", "-o", data,
                             "-e", "fuse:fuse_request_send", "-e", "fuse:fuse_request_end"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # perf needs a moment before its events are on
    try:
        out = fsbench.run(argv)
    finally:
        perf.send_signal(signal.SIGINT)
        perf.wait()
    script = subprocess.run(["perf", "script", "-i", data, "-F", "time,event,trace"],
                            capture_output=True, text=True, check=True).stdout
    return out, requests_by_opcode(script, dev)


def run_target(args, target, work, trace_dir):
    d = os.path.join(target.start(), "many")
    dev = mount_dev(target.mnt)
    rows = {}
    try:
        for phase, cmd, cold in (("create", "create", False), ("ls", "list", False),
                                 ("ls_cold", "list", True), ("rm", "rm", False)):
            if cold:
                fsbench.drop_caches()
            d0 = target.daemon_cpu_s()
            out, per_op = traced([args.fsbench, "files", cmd, d, str(args.files)], dev,
                                 trace_dir)
            d1 = target.daemon_cpu_s()
            m = json.loads(out.strip().splitlines()[-1])
            rows[phase] = {
                "seconds": m["seconds"],
                "daemon_cpu_us_per_file": (d1 - d0) * 1e6 / args.files,
                "requests": {OPCODES.get(op, str(op)): {
                    "per_file": n / args.files, "mean_us": s * 1e6 / n}
                    for op, (n, s) in sorted(per_op.items())},
            }
        if target.name == "rankfs":
            stats = target.stats()
            rows["stats"] = {k: v for k, v in stats.items() if k.endswith("_requests")}
    finally:
        target.clean()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--work", default="/var/tmp/rankfs-fuse-requests")
    ap.add_argument("--files", type=int, default=19000)
    ap.add_argument("--targets", default="passthrough_ll,rankfs")
    ap.add_argument("--rankfs-options", default="")
    args = ap.parse_args()
    args.fsbench = os.path.abspath(os.path.join(args.build, "bench", "fsbench"))
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    make = {
        "passthrough_ll": lambda: fsbench.Passthrough(work, fsbench.build_passthrough(work)),
        "rankfs": lambda: fsbench.Rankfs(
            work, os.path.abspath(os.path.join(args.build, "mount-helper", "rankfs")),
            args.rankfs_options),
    }
    result = {}
    with tempfile.TemporaryDirectory(dir=work) as trace_dir:
        for name in args.targets.split(","):
            target = make[name]()
            if name == "passthrough_ll" and target.max_files() < args.files:
                sys.exit(f"passthrough_ll can hold {target.max_files()} files here")
            result[name] = run_target(args, target, work, trace_dir)
    print(json.dumps({"files": args.files, "targets": result}, indent=1))


if __name__ == "__main__":
    main()
