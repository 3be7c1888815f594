#!/usr/bin/env python3
"""The caches of issue #26, made deterministically with the real `datasets` and ms-swift.

Default mode: one rank's `datasets` cache. A JSONL corpus and a BPE tokenizer from a fixed seed
(tests/realstack/realstack_data.py), then load_dataset("json"), a tokenising .map(batched,
num_proc=2) that keeps the text, a .filter, and .shuffle(seed).flatten_indices(), all cached in a
plain directory.

--swift: ms-swift's persistent cache. A chat corpus (realstack_data.py --format messages) and the
tiny local Qwen2 of the real-stack tests (tests/realstack/swift_tiny_model.py), then one `swift
sft` job per --max-lengths value, one after the other, single process, with `datasets` caching on
(ms-swift's default) and MODELSCOPE_CACHE=HUB: the jobs differ only in --max_length and leave
their cache files under HUB/datasets. Training is one step; the cache is written while
preprocessing. Offline: nothing comes from a hub.

bench/space_levers then reads the cache files (docs/benchmarks.md, "Space levers (issue #26)").

Usage (the project's Python environment: `scripts/deps.sh --pyenv-path`):
  $PYENV/bin/python bench/space_workload.py --out DIR [--megabytes 50] [--seed 1]
  $PYENV/bin/python bench/space_workload.py --swift --out DIR [--megabytes 20] [--seed 25]
      [--hub HUB] [--max-lengths 512,1024]
Default mode writes DIR/data (corpus, tokenizer) and DIR/cache (the datasets cache); prints one
"arrow_file=PATH bytes=N" line per cache file and "cache_dir=DIR/cache".
--swift writes DIR/data, DIR/model, DIR/home (HOME and TMPDIR of the jobs), DIR/out-* (the jobs'
output), DIR/*.log and HUB (default DIR/hub; give a directory on a mount to run the jobs' cache
there); prints "job=NAME seconds=S" per job, one "cache_file=PATH bytes=N" line per file under
HUB/datasets (lock files excepted), and "cache_dir=HUB/datasets".
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REALSTACK = os.path.join(HERE, "..", "tests", "realstack")


def make_data(data, megabytes, seed, fmt):
    if not os.path.exists(os.path.join(data, "tokenizer.json")):
        subprocess.run([sys.executable, os.path.join(REALSTACK, "realstack_data.py"),
                        "--out", data, "--megabytes", str(megabytes), "--seed", str(seed),
                        "--format", fmt], check=True)


def datasets_workload(args):
    data = os.path.join(args.out, "data")
    cache = os.path.join(args.out, "cache")
    # Nothing from a hub, nothing in ~/.cache.
    os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1",
                      HF_HOME=os.path.join(args.out, "hf"), TOKENIZERS_PARALLELISM="false")
    make_data(data, args.megabytes, args.seed, "text")

    import datasets
    from transformers import PreTrainedTokenizerFast

    datasets.disable_progress_bars()
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(data, "tokenizer.json"))
    ds = datasets.load_dataset("json", data_files=os.path.join(data, "corpus.jsonl"),
                               split="train", cache_dir=cache)

    def tokenize(batch):
        return {"input_ids": tok(batch["text"])["input_ids"]}

    ds = ds.map(tokenize, batched=True, num_proc=2)
    ds = ds.filter(lambda row: len(row["input_ids"]) >= 64, num_proc=1)
    ds = ds.shuffle(seed=args.seed).flatten_indices()
    print("rows=%d" % len(ds))
    for root, _, names in sorted(os.walk(cache)):
        for name in sorted(names):
            if name.endswith(".arrow"):
                path = os.path.join(root, name)
                print("arrow_file=%s bytes=%d" % (path, os.path.getsize(path)))
    print("cache_dir=%s" % cache)


def swift_env(out, hub):
    """The environment of tests/testutil/real_stack.cc's RealStackEnv, plus MODELSCOPE_CACHE."""
    home = os.path.join(out, "home")
    os.makedirs(os.path.join(home, "tmp"), exist_ok=True)
    bin_dir = os.path.dirname(sys.executable)
    return {
        "HOME": home,
        "XDG_CACHE_HOME": os.path.join(home, ".cache"),
        "PATH": bin_dir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "VIRTUAL_ENV": os.path.dirname(bin_dir),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TMPDIR": os.path.join(home, "tmp"),
        "MODELSCOPE_CACHE": hub,
    }


def swift_workload(args):
    data = os.path.join(args.out, "data")
    model = os.path.join(args.out, "model")
    hub = os.path.abspath(args.hub or os.path.join(args.out, "hub"))
    os.makedirs(hub, exist_ok=True)
    env = swift_env(os.path.abspath(args.out), hub)
    make_data(data, args.megabytes, args.seed, "messages")
    if not os.path.exists(os.path.join(model, "config.json")):
        subprocess.run([sys.executable, os.path.join(REALSTACK, "swift_tiny_model.py"),
                        "--tokenizer", data, "--out", model], check=True, env=env)
    swift = os.path.join(os.path.dirname(sys.executable), "swift")
    for max_length in args.max_lengths.split(","):
        name = "sft-%s" % max_length
        argv = [swift, "sft", "--model", model, "--model_type", "qwen2", "--template", "qwen",
                "--check_model", "false", "--tuner_type", "full", "--torch_dtype", "float32",
                "--dataset", os.path.join(data, "corpus.jsonl"), "--dataset_num_proc", "1",
                "--dataloader_num_workers", "0", "--max_steps", "1",
                "--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "1",
                "--save_strategy", "no", "--report_to", "none",
                "--output_dir", os.path.join(args.out, "out-" + name),
                "--max_length", max_length]
        start = time.monotonic()
        with open(os.path.join(args.out, name + ".log"), "w") as log:
            job = subprocess.run(argv, env=env, cwd=args.out, stdout=log,
                                 stderr=subprocess.STDOUT)
        print("job=%s seconds=%.1f" % (name, time.monotonic() - start))
        if job.returncode != 0:
            sys.exit("%s failed (exit %d), see %s" % (name, job.returncode,
                                                     os.path.join(args.out, name + ".log")))
    cache = os.path.join(hub, "datasets")
    for root, _, names in sorted(os.walk(cache)):
        for name in sorted(names):
            path = os.path.join(root, name)
            if not name.endswith(".lock") and os.path.isfile(path):
                print("cache_file=%s bytes=%d" % (path, os.path.getsize(path)))
    print("cache_dir=%s" % cache)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--swift", action="store_true", help="ms-swift's persistent cache")
    parser.add_argument("--megabytes", type=int, help="corpus MiB (default 50; --swift: 20)")
    parser.add_argument("--seed", type=int, help="default 1; --swift: 25")
    parser.add_argument("--hub", help="--swift: MODELSCOPE_CACHE (default OUT/hub)")
    parser.add_argument("--max-lengths", default="512,1024",
                        help="--swift: one job per --max_length, in this order")
    args = parser.parse_args()
    if args.megabytes is None:
        args.megabytes = 20 if args.swift else 50
    if args.seed is None:
        args.seed = 25 if args.swift else 1
    os.makedirs(args.out, exist_ok=True)
    if args.swift:
        swift_workload(args)
    else:
        datasets_workload(args)


if __name__ == "__main__":
    main()
