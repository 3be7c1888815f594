#!/usr/bin/env python3
"""A/B of two rankfs builds (or option sets) on fsbench.py's write workloads, runs alternating.

    bench/ab.py --fsbench BUILD/bench/fsbench --a OLD/rankfs --b NEW/rankfs \
        [--a-options O] [--b-options O] [--reps 3] [--workloads pyjob4,nranks4]

Each repetition runs every workload once on A and once on B, the order swapped every other
repetition, each on a fresh store and mount, with fsbench.py's own workload functions and
CPU accounting. Prints each run and the medians of the daemon's CPU-s (what to compare on a
machine shared with other work), the job's CPU-s (writers + daemon), the wall time, the
daemon's peak RSS and its minor page faults (thousands, the whole mount's life).
"""
import argparse
import os
import statistics
import sys

import fsbench

MIB = fsbench.MIB


def minor_faults(pid):
    """The process's minor page faults so far (/proc/PID/stat field 10)."""
    return int(fsbench.proc_stat_fields(pid)[7])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fsbench", required=True, help="the fsbench binary")
    ap.add_argument("--a", required=True, help="rankfs binary A")
    ap.add_argument("--b", required=True, help="rankfs binary B")
    ap.add_argument("--a-options", default="")
    ap.add_argument("--b-options", default="")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workloads", default="pyjob4,nranks4")
    ap.add_argument("--size-mib", type=int, default=600, help="N-ranks data per writer")
    ap.add_argument("--pyjob-mib", type=int, default=200)
    ap.add_argument("--work", default="/var/tmp/rankfs-ab")
    args = ap.parse_args()
    args.fsbench = os.path.abspath(args.fsbench)
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    pair = []
    for label, binary, opts in (("A", args.a, args.a_options), ("B", args.b, args.b_options)):
        t = fsbench.Rankfs(os.path.join(work, label), os.path.abspath(binary), opts)
        os.makedirs(os.path.join(work, label), exist_ok=True)
        t.name = label
        pair.append(t)
    loads = {}
    for wl in args.workloads.split(","):
        if wl == "pyjob4":
            data = fsbench.make_dataset(args.fsbench, os.path.join(work, "pyjob.bin"),
                                        args.pyjob_mib * MIB, 4)
            headers = fsbench.pyjob_headers(work)
            loads[wl] = lambda t, root, h=headers, d=data: fsbench.pyjob(args, t, root, h, d)
        elif wl.startswith("nranks"):
            n = int(wl[len("nranks"):])
            data = fsbench.make_dataset(args.fsbench, os.path.join(work, "dataset.bin"),
                                        args.size_mib * MIB, 1)
            loads[wl] = lambda t, root, d=data, n=n: fsbench.nranks(args, t, root, d, n)
        else:
            sys.exit(f"ab: unknown workload {wl}")
    keys = ("daemon_cpu_s", "job_cpu_s", "wall_s", "peak_rss_mib", "minflt_k")
    runs = {}
    try:
        for rep in range(args.reps):
            order = pair if rep % 2 == 0 else pair[::-1]
            for wl, fn in loads.items():
                for t in order:
                    root = t.start(fresh=True)
                    try:
                        fsbench.drop_caches()
                        m = fn(t, root)
                        m["peak_rss_mib"] = (t.peak_rss() or 0) / MIB
                        m["minflt_k"] = minor_faults(t.proc.pid) / 1000
                    finally:
                        t.stop()
                        t.clean()
                    runs.setdefault((wl, t.name), []).append(m)
                    print(f"{wl} rep {rep + 1} {t.name}: " +
                          " ".join(f"{k}={m[k]:.3f}" for k in keys), flush=True)
    finally:
        for t in pair:
            t.clean()
    print(f"\nmedians of {args.reps} (A={args.a} {args.a_options}; B={args.b} {args.b_options})")
    for wl in loads:
        for k in keys:
            a = [m[k] for m in runs[(wl, "A")]]
            b = [m[k] for m in runs[(wl, "B")]]
            ma, mb = statistics.median(a), statistics.median(b)
            print(f"{wl:8} {k:13} A {ma:7.3f} [{min(a):.3f}-{max(a):.3f}]  "
                  f"B {mb:7.3f} [{min(b):.3f}-{max(b):.3f}]  B/A {mb / ma:.3f}")


if __name__ == "__main__":
    main()
