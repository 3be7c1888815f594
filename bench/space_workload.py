#!/usr/bin/env python3
"""One rank's `datasets` cache, as in issue #26, made deterministically with the real `datasets`.

A JSONL corpus and a BPE tokenizer from a fixed seed (tests/realstack/realstack_data.py), then
load_dataset("json"), a tokenising .map(batched, num_proc=2) that keeps the text, a .filter, and
.shuffle(seed).flatten_indices(), all cached in a plain directory. bench/space_levers then reads
the cache's Arrow files (docs/benchmarks.md, "Space levers (issue #26)").

Usage (the project's Python environment: `scripts/deps.sh --pyenv-path`):
  $PYENV/bin/python bench/space_workload.py --out DIR [--megabytes 50] [--seed 1]
Writes DIR/data (corpus, tokenizer) and DIR/cache (the datasets cache); prints one
"arrow_file=PATH bytes=N" line per cache file and "cache_dir=DIR/cache".
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    data = os.path.join(args.out, "data")
    cache = os.path.join(args.out, "cache")
    # Nothing from a hub, nothing in ~/.cache.
    os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1",
                      HF_HOME=os.path.join(args.out, "hf"), TOKENIZERS_PARALLELISM="false")
    if not os.path.exists(os.path.join(data, "tokenizer.json")):
        subprocess.run([sys.executable, os.path.join(HERE, "..", "tests", "realstack",
                                                     "realstack_data.py"),
                        "--out", data, "--megabytes", str(args.megabytes),
                        "--seed", str(args.seed)], check=True)

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


if __name__ == "__main__":
    main()
