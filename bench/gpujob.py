"""The GPU staging path in the filesystem benchmark (issue #21 item 5), for bench/fsbench.py.

One workload, "gpu", on rankfs only: bench/gpu_bench (C++) does the timing, interleaved and
repeated --reps times, and prints one JSON line at the end; this module runs it, keeps every
run in results.json under "gpu", its ratios under report["gpu"], and draws gpu_chart.png
(each ratio beside its target). What it compares (docs/benchmarks.md, "GPU staging"):
  staged reads into host memory (librankfs_gpu, CPU backend) vs read() through the mount plus
  a copy, cold (daemon restarted, caches dropped) and warm; four readers of four identical
  copies vs one; and the bound, zstd decompression of the same chunks from memory on as many
  threads as the daemon uses for one client.
"""
import json
import os
import shutil
import subprocess
import sys

WORKLOADS = ("gpu",)
REQUIRED = ("mode", "device", "size_bytes", "runs", "medians", "ratios")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def parse_report(text):
    """gpu_bench's report: the JSON object on the last line of its output. Raises ValueError
    saying what is missing or wrong."""
    lines = [l for l in text.strip().splitlines() if l.strip()]
    if not lines:
        raise ValueError("gpu_bench printed nothing")
    try:
        rep = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        raise ValueError(f"gpu_bench's last line is not JSON ({e}): {lines[-1][:200]}")
    missing = [k for k in REQUIRED if k not in rep]
    if missing:
        raise ValueError(f"gpu_bench's report lacks {missing}")
    if not rep["runs"]:
        raise ValueError("gpu_bench's report has no runs")
    for key, value in rep["medians"].items():
        if not isinstance(value, (int, float)) or value < 0 or value != value:
            raise ValueError(f"median {key} is {value!r}")
        if key.endswith("MBps") and value <= 0:
            raise ValueError(f"median {key} is {value}: nothing was read")
    for r in rep["ratios"]:
        if not {"name", "value", "target", "verdict"} <= set(r):
            raise ValueError(f"ratio {r} lacks a field")
        if r["target"] > 0 and r["verdict"] not in ("met", "MISSED") and \
                not r["verdict"].startswith(("met ", "MISSED ")):
            raise ValueError(f"ratio {r['name']} has no verdict")
    return rep


def run_gpu_bench(gpu_bench, argv, timeout=3600):
    """Runs gpu_bench with argv; returns (report, its whole output). Exit 77: returns None."""
    p = subprocess.run([gpu_bench] + argv, capture_output=True, text=True, timeout=timeout)
    if p.returncode == 77:
        log(f"gpujob: gpu_bench cannot run here: {p.stderr.strip()}")
        return None, p.stdout + p.stderr
    if p.returncode != 0:
        raise RuntimeError(f"gpu_bench {' '.join(argv)} failed ({p.returncode}): "
                           f"{p.stderr.strip()[-2000:]}")
    return parse_report(p.stdout), p.stdout + p.stderr


def run_workload(args, wanted, results, work):
    """The "gpu" workload when asked for: fills results["gpu"]["rankfs"] with gpu_bench's runs
    and returns its report (None when not asked for or not possible here)."""
    if "gpu" not in wanted:
        return None
    gpu_bench = os.path.abspath(os.path.join(args.build, "bench", "gpu_bench"))
    rankfs = os.path.abspath(os.path.join(args.build, "mount-helper", "rankfs"))
    if not os.access(gpu_bench, os.X_OK):
        raise RuntimeError(f"{gpu_bench} missing: build the gpu_bench target")
    d = os.path.join(work, "gpu")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    argv = ["mount", "--rankfs", rankfs, "--work", d, "--size-mib", str(args.gpu_mib),
            "--runs", str(args.reps)]
    log(f"fsbench: gpu: gpu_bench {' '.join(argv)}")
    try:
        rep, out = run_gpu_bench(gpu_bench, argv)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    log(out.strip())
    if rep is None:
        return None
    results["gpu"] = {"rankfs": rep["runs"]}
    return rep


def print_report(rep):
    print(f"\nGPU staging ({rep['mode']}, {rep['device']}; medians of {len(rep['runs'])} runs):")
    for r in rep["ratios"]:
        print(f"{r['name']:40} {r['value']:8.3f}  {r['verdict']}")


def write_chart(out_dir, rep):
    """gpu_chart.png: each ratio of the GPU staging workload beside its target."""
    if rep is None or shutil.which("gnuplot") is None:
        return None
    data = os.path.join(out_dir, "gpu_chart.dat")
    with open(data, "w") as f:
        for r in rep["ratios"]:
            name = r["name"].replace(" ", "_")
            target = r["target"] if r["target"] > 0 else "NaN"
            f.write(f"{name} {r['value']:.4f} {target}\n")
    png = os.path.join(out_dir, "gpu_chart.png")
    script = f"""
set terminal pngcairo size 1100,600 font ",11"
set output '{png}'
set title "GPU staging path ({rep['device']}, {rep['mode']}): ratios (medians) and targets" noenhanced
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel "ratio (higher is better)"
set xtics rotate by -20 noenhanced
set key top right noenhanced
set grid ytics
set yrange [0:*]
plot '{data}' using 2:xtic(1) title 'measured', '' using 3 title 'target'
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    return png
