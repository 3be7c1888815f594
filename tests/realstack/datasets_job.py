#!/usr/bin/env python3
"""Plain Hugging Face `datasets` preprocessing on every rank, as a torchrun job does it.

Run under `python -m torch.distributed.run --nproc_per_node N datasets_job.py ...` (gloo, CPU).
Every rank, in lockstep:
  - makes its own tempfile.TemporaryDirectory(prefix="hf_datasets-") under --cache-root (the
    ms-swift layout: ~/.cache/modelscope/hub/tmp) and loads --data/corpus.jsonl into it;
  - tokenizes with the corpus's BPE tokenizer: .map(batched, num_proc=2), .filter,
    .shuffle(seed).flatten_indices();
  - prints the digest of its tokenized table ("digest_rankR=...") and the directory of the
    file that holds it ("table_dir_rankR=..."), runs a few all-reduced
    steps reading rows ("steps_sum=..." on rank 0), and prints "rank=R done" at the very end.
With --disable-caching, datasets.disable_caching() is called first: the transforms' files then
go to a directory under TMPDIR instead (what ms-swift <= 3.4.0 did; see DESIGN.md).
With --keep DIR, rank 0 copies its cache directory to DIR before cleaning up (the tests store
that copy alone to learn what one compressed copy costs).
For the fault tests: each rank prints "pid_rankR=PID" at start; with --fsync-marker, each rank
writes and fsyncs CACHE_ROOT/fsynced-R.bin (content: marker_bytes(R)) before preprocessing and
prints "fsynced_sha256_rankR=HEX" and "fsynced_rankR=1"; "phase_rankR=map" is printed as the map starts.
"""
import argparse
import hashlib
import os
import shutil
import sys
import tempfile

MARKER_BYTES = 3 << 20


def marker_bytes(rank):
    """Deterministic, incompressible-enough bytes the fault tests check after a remount."""
    out, block = bytearray(), hashlib.sha256(b"rankfs-marker-%d" % rank).digest()
    while len(out) < MARKER_BYTES:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:MARKER_BYTES])


def say(key, value):
    """A "key=value" line for the test, on a line of its own even after a progress bar's \r."""
    print("\n%s=%s" % (key, value), flush=True)


def write_fsynced(path, data):
    with open(path + ".tmp", "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)
    fd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename is durable too
    finally:
        os.close(fd)


def table_digest(ds, column="input_ids"):
    """SHA-256 over the row lengths and token ids of `column`, in row order. Independent of
    how the table is split into record batches and of which files hold it."""
    import numpy as np

    h = hashlib.sha256()
    for chunk in ds.data.table.column(column).chunks:
        offsets = chunk.offsets.to_numpy()
        h.update(np.diff(offsets).astype("<i8").tobytes())
        h.update(chunk.flatten().to_numpy().astype("<i4").tobytes())
    h.update(b"rows=%d" % len(ds))
    return h.hexdigest()


def preprocess(args, rank, cache):
    import datasets
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(args.data, "tokenizer.json"))
    ds = datasets.load_dataset("json", data_files=os.path.join(args.data, "corpus.jsonl"),
                               split="train", cache_dir=cache)
    say("phase_rank%d" % rank, "map")

    def tokenize(batch):
        return {"input_ids": tok(batch["text"])["input_ids"]}

    ds = ds.map(tokenize, batched=True, num_proc=2, remove_columns=["text"])
    say("phase_rank%d" % rank, "filter")
    ds = ds.filter(lambda row: len(row["input_ids"]) >= 64)
    ds = ds.shuffle(seed=1234).flatten_indices()
    return ds


def train_steps(ds, rank, world, steps):
    """A few data-parallel steps: each rank reads its rows, the sums are all-reduced."""
    import torch
    import torch.distributed as dist

    total = 0
    batch = 8
    for step in range(steps):
        start = (step * world + rank) * batch
        rows = ds[start:start + batch]["input_ids"]
        t = torch.tensor([sum(sum(r) for r in rows)], dtype=torch.float64)
        dist.all_reduce(t)
        total += int(t.item())
    return total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="directory of realstack_data.py output")
    parser.add_argument("--cache-root", required=True, help="where the per-rank caches go")
    parser.add_argument("--disable-caching", action="store_true")
    parser.add_argument("--keep", help="rank 0 copies its cache directory here")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--fsync-marker", action="store_true")
    args = parser.parse_args()

    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    say("pid_rank%d" % rank, os.getpid())
    if args.fsync_marker:
        marker = marker_bytes(rank)
        write_fsynced(os.path.join(args.cache_root, "fsynced-%d.bin" % rank), marker)
        say("fsynced_sha256_rank%d" % rank, hashlib.sha256(marker).hexdigest())
        say("fsynced_rank%d" % rank, 1)
    if args.disable_caching:
        import datasets

        datasets.disable_caching()

    with tempfile.TemporaryDirectory(dir=args.cache_root, prefix="hf_datasets-") as cache:
        ds = preprocess(args, rank, cache)
        say("digest_rank%d" % rank, table_digest(ds))
        say("rows_rank%d" % rank, len(ds))
        say("table_dir_rank%d" % rank, os.path.dirname(ds.cache_files[0]["filename"]))
        total = train_steps(ds, rank, world, args.steps)
        if rank == 0:
            say("steps_sum", total)
            if args.keep:
                shutil.copytree(cache, os.path.join(args.keep, "cache"))
                if args.disable_caching:
                    from datasets.fingerprint import get_temporary_cache_files_directory

                    shutil.copytree(get_temporary_cache_files_directory(),
                                    os.path.join(args.keep, "tmp"))
        del ds  # the memory maps go before the directory does
        dist.barrier()
    dist.destroy_process_group()
    print("\nrank=%d done" % rank, flush=True)


if __name__ == "__main__":
    sys.exit(main())
