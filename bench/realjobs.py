"""The real training jobs in the filesystem benchmark (issue #25 item 6), for bench/fsbench.py.

Two workloads, each on ext4 and rankfs, interleaved within each repetition:
  datasets4  plain Hugging Face `datasets` preprocessing on four torchrun ranks
             (tests/realstack/datasets_job.py, caching on): every rank writes its own
             hf_datasets-* cache directory under ~/.cache/modelscope/hub/tmp, the target;
  swift4     ms-swift `swift sft`, four ranks on CPU, datasets caching off by a plugin
             (tests/realstack/swift_no_cache_plugin.py): every rank writes its own
             hf_datasets-* directory under ~/.cache/modelscope/hub/tmp, the target.
  swift4cache (not in the default list) ms-swift's default, caching on, with the target over
             the whole ~/.cache/modelscope/hub: two jobs that differ only in --max_length,
             the bytes the persistent cache holds after each.
Each run gets a private HOME under the work directory with the target (a plain ext4 directory,
or rankfs mounted there) at the cache location, and hubs offline; the corpus, tokenizer and
tiny model are made once per bench run, outside the target. Measured per run:
  wall_s           the whole job, from starting the launcher to its exit;
  cpu_s            the job's CPU-seconds (user + system of the launcher and every rank it
                   waited for, from wait4) plus the rankfs daemon's (/proc/PID/stat) over
                   the job;
  peak_disk_bytes  ext4: the largest allocated size (st_blocks) of the cache directory,
                   sampled every 50 ms; rankfs: the same of the whole store (packs and
                   RocksDB), sampled likewise.
The jobs run in the Python environment of `scripts/deps.sh --python` (RANKFS_PYENV, or
`scripts/deps.sh --pyenv-path`). A job that exits non-zero fails the bench, except the known
torch/ms-swift teardown race (docs/testing.md): every rank reached its normal exit and the ranks
torchrun reports failed all died of SIGABRT; such a run is kept and counted in teardown_aborts.
"""
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "tests", "realstack")
RANKS = 4
WORKLOADS = ("datasets4", "swift4", "swift4cache")
DEFAULT = ("datasets4", "swift4")
# metric -> (baseline, op, bound), as fsbench.TARGETS.
TARGETS = {
    "datasets4.wall_s": ("ext4", "<=", 1.03),
    "datasets4.peak_disk_bytes": ("ext4", "<=", 0.15),
    "swift4.wall_s": ("ext4", "<=", 1.03),
    "swift4.peak_disk_bytes": ("ext4", "<=", 0.15),
}
CPU_OF = {"datasets4.wall_s": "datasets4.cpu_s", "swift4.wall_s": "swift4.cpu_s"}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def pyenv_python():
    """The real-stack environment's interpreter; raises saying how to build it."""
    d = os.environ.get("RANKFS_PYENV")
    if not d:
        p = subprocess.run([os.path.join(ROOT, "scripts", "deps.sh"), "--pyenv-path"],
                           capture_output=True, text=True)
        d = p.stdout.strip() if p.returncode == 0 else ""
    python = os.path.join(d, "bin", "python") if d else ""
    if not python or not os.access(python, os.X_OK):
        raise RuntimeError("realjobs: no Python environment; build it with "
                           "`scripts/deps.sh --python`")
    return python


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job_env(python, home, extra=None):
    """What tests/testutil/real_stack.cc's RealStackEnv gives a job: private HOME, hubs offline,
    one thread per op library."""
    bin_dir = os.path.dirname(python)
    env = {
        "HOME": home, "XDG_CACHE_HOME": os.path.join(home, ".cache"),
        "PATH": bin_dir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "VIRTUAL_ENV": os.path.dirname(bin_dir), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": SCRIPTS, "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TMPDIR": os.path.join(home, "tmp"),
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
    }
    env.update(extra or {})
    return env


def run_logged(argv, env, cwd, log_path, timeout=1800):
    """Runs argv as a process group of its own; returns (exit status, wall s, CPU-s of it and
    the descendants it waited for, log text). Kills the group on timeout and at the end."""
    with open(log_path, "wb") as out:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        timer = threading.Timer(timeout, lambda: os.killpg(p.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
            try:
                os.killpg(p.pid, signal.SIGKILL)  # a rank orphaned by its launcher
            except ProcessLookupError:
                pass
        wall = time.monotonic() - t0
    with open(log_path, errors="replace") as f:
        text = f.read()
    return os.waitstatus_to_exitcode(status), wall, ru.ru_utime + ru.ru_stime, text


def key_values(text):
    out = {}
    for line in text.splitlines():
        k, eq, v = line.partition("=")
        if eq and k and not re.search(r"[\s:/]", k):
            out[k] = v
    return out


def teardown_abort(code, text, done_key):
    """Whether a failed job is the known teardown race: every rank printed `done_key % rank`
    and every rank torchrun lists as failed died of SIGABRT (exitcode -6)."""
    kv = key_values(text)
    if code == 0 or not all((done_key % r) in kv for r in range(RANKS)):
        return False
    codes = re.findall(r"exitcode\s*:\s*(-?\d+)", text)
    return bool(codes) and all(c == "-6" for c in codes)


def daemon_cpu_s(target):
    proc = getattr(target, "proc", None)
    if proc is None:
        return 0.0
    try:
        with open(f"/proc/{proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


class PeakSampler:
    """Samples fn() every `period` seconds on a thread; peak is the largest value seen."""

    def __init__(self, fn, period=0.05):
        self.fn, self.period, self.peak = fn, period, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.fn())
            self._stop.wait(self.period)

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.fn())
        return self.peak


class Inputs:
    """Corpus, tokenizer and tiny model, made once per bench run under WORK/realjobs-inputs."""

    def __init__(self, work, python, datasets_mib, swift_mib):
        self.python, self.datasets_mib, self.swift_mib = python, datasets_mib, swift_mib
        self.dir = os.path.join(work, "realjobs-inputs")
        self._made = {}

    def _make(self, name, argv):
        path = os.path.join(self.dir, name)
        stamp = os.path.join(path, ".made")
        want = json.dumps(argv)
        if not (os.path.exists(stamp) and open(stamp).read() == want):
            shutil.rmtree(path, ignore_errors=True)
            log(f"realjobs: making {name}")
            p = subprocess.run([self.python] + argv + ["--out", path], capture_output=True,
                               text=True, env=job_env(self.python, self.dir))
            if p.returncode != 0:
                raise RuntimeError(f"realjobs: {name}: {p.stdout}{p.stderr}")
            with open(stamp, "w") as f:
                f.write(want)
        return path

    def data(self, fmt):
        mib = self.datasets_mib if fmt == "text" else self.swift_mib
        return self._make(f"data-{fmt}-{mib}", [
            os.path.join(SCRIPTS, "realstack_data.py"), "--megabytes", str(mib), "--seed", "25",
            "--format", fmt])

    def model(self):
        return self._make(f"model-{self.swift_mib}", [
            os.path.join(SCRIPTS, "swift_tiny_model.py"), "--tokenizer", self.data("messages")])


def swift_argv(inputs, out_dir, max_length, plugins):
    scripts = [os.path.join(SCRIPTS, p) for p in ["swift_exit_marker_plugin.py"] + plugins]
    return ["swift", "sft", "--model", inputs.model(), "--model_type", "qwen2", "--template",
            "qwen", "--check_model", "false", "--tuner_type", "full", "--torch_dtype",
            "float32", "--ddp_backend", "gloo", "--dataset",
            os.path.join(inputs.data("messages"), "corpus.jsonl"), "--dataset_num_proc", "1",
            "--dataloader_num_workers", "0", "--max_steps", "2",
            "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
            "--logging_steps", "1", "--save_strategy", "no", "--report_to", "none",
            "--output_dir", out_dir, "--max_length", str(max_length),
            "--external_plugins"] + scripts


def datasets_argv(inputs, cache_root):
    return [inputs.python, "-m", "torch.distributed.run", "--nproc_per_node", str(RANKS),
            "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
            os.path.join(SCRIPTS, "datasets_job.py"), "--data", inputs.data("text"),
            "--cache-root", cache_root]


class Run:
    """One job run on one target: a fresh HOME with the target placed at HOME/`rel`."""

    def __init__(self, work, target, rel, python):
        self.target, self.python = target, python
        self.home = os.path.join(work, "realjobs-home")
        shutil.rmtree(self.home, ignore_errors=True)
        os.makedirs(os.path.join(self.home, "tmp"))
        self.place = os.path.join(self.home, rel)
        os.makedirs(self.place)
        if hasattr(target, "mnt"):
            target.mnt = self.place
        else:
            target.dir = self.place
        target.start(fresh=True)
        store = getattr(target, "backing", self.place)
        self.disk = lambda: allocated_bytes(store)

    def job(self, name, argv, env_extra, done_key, metrics, prefix=""):
        env = job_env(self.python, self.home, env_extra)
        logf = os.path.join(os.path.dirname(self.home), f"realjobs-{name}.log")
        sampler = PeakSampler(self.disk)
        cpu0 = daemon_cpu_s(self.target)
        code, wall, cpu, text = run_logged(argv, env, self.home, logf)
        cpu += daemon_cpu_s(self.target) - cpu0
        peak = sampler.stop()
        aborted = teardown_abort(code, text, done_key)
        if code != 0 and not aborted:
            raise RuntimeError(f"realjobs: {name} on {self.target.name} exited {code}; "
                               f"log: {logf}")
        metrics[prefix + "wall_s"] = wall
        metrics[prefix + "cpu_s"] = cpu
        metrics[prefix + "peak_disk_bytes"] = peak
        metrics["teardown_aborts"] = metrics.get("teardown_aborts", 0) + int(aborted)
        loss = re.search(r"'train_loss': ([^,}]+)", text)
        if loss and not math.isfinite(float(loss.group(1))):
            raise RuntimeError(f"realjobs: {name} on {self.target.name}: loss {loss.group(1)}")
        return text


def allocated_bytes(path):
    """Bytes the files under path occupy on disk (st_blocks), as du counts them."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def run_once(name, work, target, inputs):
    """One run of workload `name` on `target`; returns its metrics."""
    rel = {"datasets4": ".cache/modelscope/hub/tmp", "swift4": ".cache/modelscope/hub/tmp",
           "swift4cache": ".cache/modelscope/hub"}[name]
    saved = dict(vars(target))  # Run moves the target's directory or mountpoint
    out = os.path.join(work, "realjobs-out")
    metrics = {}
    try:
        run = Run(work, target, rel, inputs.python)
        if name == "datasets4":
            run.job(name, datasets_argv(inputs, run.place), {}, "rank=%d done", metrics)
        elif name == "swift4":
            run.job(name, swift_argv(inputs, out, 512, ["swift_no_cache_plugin.py"]),
                    {"NPROC_PER_NODE": str(RANKS)}, "rank%d_exit_begin", metrics)
        else:
            for i, length in enumerate((512, 1024)):
                run.job(name, swift_argv(inputs, out, length, []),
                        {"NPROC_PER_NODE": str(RANKS)}, "rank%d_exit_begin", metrics,
                        prefix=f"job{i + 1}_")
                metrics[f"job{i + 1}_disk_bytes"] = run.disk()
    finally:
        target.stop()
        target.clean()
        vars(target).update(saved)
        shutil.rmtree(out, ignore_errors=True)
    return metrics


def run_workloads(args, targets, wanted, results, work):
    """Runs the wanted real-job workloads on ext4 and rankfs into `results` (fsbench's)."""
    names = [n for n in WORKLOADS if n in wanted]
    if not names:
        return
    inputs = Inputs(work, pyenv_python(), args.datasets_mib, args.swift_mib)
    pair = [t for t in targets if t.name in ("ext4", "rankfs")]
    for name in names:
        for rep in range(args.reps):
            for t in pair:
                metrics = run_once(name, work, t, inputs)
                results.setdefault(name, {}).setdefault(t.name, []).append(metrics)
                log(f"fsbench: {name} rep {rep + 1}/{args.reps} {t.name}: " +
                    ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
