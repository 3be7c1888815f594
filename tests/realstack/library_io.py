#!/usr/bin/env python3
"""What the training libraries do to a filesystem, one case at a time, in a directory.

Usage: library_io.py --dir DIR --data DATA [--case NAME ...]
Runs each case (all by default) in a fresh subdirectory of DIR and prints one line per case:
  case_NAME=ok            the case did what it does on ext4
  case_NAME=FAIL: ...     what went wrong (the traceback follows on stderr)
then "cases_done=N". A case that fails here but passes in a plain directory is a filesystem
bug. DATA is a realstack_data.py output directory (corpus.jsonl, tokenizer.json).
"""
import argparse
import glob
import multiprocessing
import os
import sys
import traceback


def rows(n, seed=0):
    import random

    rng = random.Random(seed)
    return [{"id": i, "text": " ".join(str(rng.randint(0, 9999)) for _ in range(rng.randint(5, 60)))}
            for i in range(n)]


def case_save_load_sharded(work, data):
    """save_to_disk with several shards, load_from_disk reads the same rows back."""
    import datasets

    ds = datasets.Dataset.from_list(rows(20000))
    target = os.path.join(work, "saved")
    ds.save_to_disk(target, num_shards=4, num_proc=2)
    shards = sorted(glob.glob(os.path.join(target, "data-*.arrow")))
    assert len(shards) == 4, shards
    back = datasets.load_from_disk(target)
    assert back.to_list() == ds.to_list(), "load_from_disk differs from what was saved"
    # Saving over an existing dataset directory is what a re-run does.
    ds.select(range(100)).save_to_disk(target, num_shards=2)
    assert len(datasets.load_from_disk(target)) == 100


def case_cleanup_cache_files(work, data):
    """Cached map files are listed, and cleanup_cache_files() deletes all but the current."""
    import datasets

    ds = datasets.load_dataset("json", data_files=os.path.join(data, "corpus.jsonl"),
                               split="train[:2000]", cache_dir=os.path.join(work, "cache"))
    a = ds.map(lambda r: {"n": len(r["text"])})
    b = a.map(lambda r: {"m": r["n"] * 2})
    c = b.filter(lambda r: r["m"] % 3 == 0)  # c reads b's table through an indices file
    old = [f["filename"] for f in a.cache_files]
    current = [f["filename"] for f in c.cache_files]
    assert not set(old) & set(current) and all(os.path.exists(f) for f in old), (old, current)
    removed = c.cleanup_cache_files()
    assert removed == len(old), "cleanup_cache_files removed %d, not %d" % (removed, len(old))
    assert not any(os.path.exists(f) for f in old), "a removed cache file is still there"
    assert all(os.path.exists(f) for f in current), "a current cache file is gone"
    assert c.to_list() == [r for r in b.to_list() if r["m"] % 3 == 0]  # c still reads


def _locked_increments(path, worker, count, errors):
    from datasets.utils._filelock import FileLock

    counter, holder = path + ".count", path + ".holder"
    for _ in range(count):
        with FileLock(path + ".lock"):
            try:  # nobody else may hold the lock now
                fd = os.open(holder, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                errors.put("worker %d: another process held the lock" % worker)
                continue
            with open(counter) as f:
                value = int(f.read() or 0)
            with open(counter + ".tmp", "w") as f:  # rename-replace, as datasets writes
                f.write(str(value + 1))
            os.replace(counter + ".tmp", counter)
            os.close(fd)
            os.unlink(holder)


def case_filelock(work, data):
    """datasets' FileLock taken by several processes at once: mutual exclusion, no lost update."""
    path = os.path.join(work, "shared")
    with open(path + ".count", "w") as f:
        f.write("0")
    ctx = multiprocessing.get_context("spawn")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_locked_increments, args=(path, w, 50, errors)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0, "a locking process exited with %s" % p.exitcode
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert not found, found
    with open(path + ".count") as f:
        assert f.read() == "200", "lost updates under the lock"


def case_from_generator(work, data):
    """Dataset.from_generator writes its Arrow file through the builder into cache_dir."""
    import datasets

    def gen():
        for r in rows(5000, seed=7):
            yield r

    ds = datasets.Dataset.from_generator(gen, cache_dir=os.path.join(work, "cache"))
    assert ds.to_list() == rows(5000, seed=7)
    assert any(f["filename"].startswith(work) for f in ds.cache_files), ds.cache_files


def case_torch_save_mmap(work, data):
    """torch.save (zipfile format) and torch.load(mmap=True) of a checkpoint."""
    import torch

    gen = torch.Generator().manual_seed(3)
    state = {"w%d" % i: torch.randn(256, 1024, generator=gen) for i in range(8)}
    state["step"] = torch.tensor(17)
    path = os.path.join(work, "ckpt.pt")
    torch.save(state, path)
    back = torch.load(path, mmap=True, weights_only=True)
    for k, v in state.items():
        assert torch.equal(back[k], v), k
    # Overwrite in place, as a job saving every N steps does, then read the new one mapped.
    state["step"] = torch.tensor(18)
    torch.save(state, path)
    again = torch.load(path, mmap=True, weights_only=True)
    assert int(again["step"]) == 18


def case_trainer_checkpoints(work, data):
    """transformers' Trainer saving every N steps, rotating with save_total_limit (rm -rf)."""
    import datasets
    import torch
    from transformers import (GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast, Trainer,
                              TrainingArguments, DataCollatorForLanguageModeling)

    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(data, "tokenizer.json"),
                                  pad_token="<pad>", eos_token="</s>")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32,
                                       n_layer=2, n_head=2))
    ds = datasets.load_dataset("json", data_files=os.path.join(data, "corpus.jsonl"),
                               split="train[:64]", cache_dir=os.path.join(work, "cache"))
    ds = ds.map(lambda b: tok(b["text"], truncation=True, max_length=64), batched=True,
                remove_columns=ds.column_names)
    out = os.path.join(work, "out")
    targs = TrainingArguments(output_dir=out, max_steps=8, per_device_train_batch_size=4,
                              save_strategy="steps", save_steps=2, save_total_limit=2,
                              logging_steps=100, report_to=[], use_cpu=True,
                              dataloader_num_workers=0, disable_tqdm=True)
    trainer = Trainer(model=model, args=targs, train_dataset=ds,
                      data_collator=DataCollatorForLanguageModeling(tok, mlm=False))
    trainer.train()
    kept = sorted(os.path.basename(p) for p in glob.glob(os.path.join(out, "checkpoint-*")))
    assert kept == ["checkpoint-6", "checkpoint-8"], kept
    for name in kept:
        loaded = GPT2LMHeadModel.from_pretrained(os.path.join(out, name))
        assert os.path.exists(os.path.join(out, name, "optimizer.pt")), name
        assert os.path.exists(os.path.join(out, name, "trainer_state.json")), name
    final = {k: v for k, v in trainer.model.state_dict().items()}
    for k, v in loaded.state_dict().items():
        assert torch.equal(final[k].cpu(), v), "checkpoint-8 differs from the model: " + k
    # Resuming reads the optimizer, scheduler and RNG states back from the mount.
    targs.max_steps = 10
    Trainer(model=model, args=targs, train_dataset=ds,
            data_collator=DataCollatorForLanguageModeling(tok, mlm=False)).train(
                resume_from_checkpoint=os.path.join(out, "checkpoint-8"))
    kept = sorted(os.path.basename(p) for p in glob.glob(os.path.join(out, "checkpoint-*")))
    assert kept == ["checkpoint-10", "checkpoint-8"], kept


CASES = {
    "save_load_sharded": case_save_load_sharded,
    "cleanup_cache_files": case_cleanup_cache_files,
    "filelock": case_filelock,
    "from_generator": case_from_generator,
    "torch_save_mmap": case_torch_save_mmap,
    "trainer_checkpoints": case_trainer_checkpoints,
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--case", action="append", choices=sorted(CASES))
    args = parser.parse_args()
    done = 0
    for name in args.case or list(CASES):
        work = os.path.join(args.dir, name)
        os.makedirs(work)
        try:
            CASES[name](work, args.data)
            print("case_%s=ok" % name, flush=True)
        except Exception as e:  # noqa: BLE001  (every failure is reported, then the next case)
            traceback.print_exc()
            print("case_%s=FAIL: %s: %s" % (name, type(e).__name__, str(e)[:300]), flush=True)
        done += 1
    print("cases_done=%d" % done, flush=True)


if __name__ == "__main__":
    sys.exit(main())
