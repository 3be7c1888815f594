#!/usr/bin/env python3
"""Deterministic training data for the real-stack tests: a JSONL corpus and a BPE tokenizer.

Nothing comes from a hub: the corpus is synthetic text drawn from a seeded generator, and the
tokenizer is trained on it with the `tokenizers` BPE trainer. The same --megabytes and --seed
give the same bytes on every machine (Python's `random` is specified to be reproducible for a
given seed, and the BPE trainer breaks ties deterministically), so a test can compare digests
between runs and between filesystems.

Usage:
  python realstack_data.py --out DIR --megabytes N --seed S [--format text|messages]
Writes:
  DIR/corpus.jsonl      N MiB (at least; whole records) of JSON lines:
                          text:     {"id": i, "text": "..."}
                          messages: {"messages": [{"role": "system", ...}, {"role": "user", ...},
                                                  {"role": "assistant", ...}]}
  DIR/tokenizer.json    a byte-level BPE tokenizer (PreTrainedTokenizerFast(tokenizer_file=...))
  DIR/tokenizer_config.json, DIR/special_tokens_map.json
                        so that transformers.AutoTokenizer.from_pretrained(DIR) works too.
Prints "corpus_bytes=...", "records=..." and "tokenizer_sha256=..." lines.
"""
import argparse
import hashlib
import json
import os
import random

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]
VOCAB_SIZE = 8000
# The tokenizer is trained on the first records only: enough text for a realistic vocabulary,
# and training time that does not grow with the corpus.
TRAIN_BYTES = 8 << 20


def make_lexicon(rng, words=20000):
    """Pseudo-words built from syllables, with Zipf-like weights (a few frequent, many rare)."""
    onsets = ["", "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v",
              "w", "z", "st", "tr", "pl", "ch", "sh", "th", "gr", "br"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "io", "y"]
    codas = ["", "", "n", "r", "s", "t", "l", "m", "ng", "ck", "st"]
    seen, lexicon = set(), []
    while len(lexicon) < words:
        word = "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas)
                       for _ in range(rng.choice((1, 1, 2, 2, 2, 3, 3, 4))))
        if word not in seen:
            seen.add(word)
            lexicon.append(word)
    cum, total = [], 0.0
    for rank in range(1, len(lexicon) + 1):
        total += 1.0 / rank
        cum.append(total)
    return lexicon, cum


def sentence(rng, lexicon, cum):
    words = rng.choices(lexicon, cum_weights=cum, k=rng.randint(4, 24))
    if rng.random() < 0.15:  # numbers, as real text has them
        words.insert(rng.randrange(len(words)), str(rng.randint(0, 99999)))
    if rng.random() < 0.3 and len(words) > 6:
        words[rng.randrange(1, len(words) - 1)] += ","
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice((".", ".", ".", "?", "!"))


def paragraph(rng, lexicon, cum, sentences):
    return " ".join(sentence(rng, lexicon, cum) for _ in range(sentences))


def record(rng, lexicon, cum, index, fmt):
    if fmt == "text":
        return {"id": index, "text": paragraph(rng, lexicon, cum, rng.randint(3, 40))}
    return {"messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": paragraph(rng, lexicon, cum, rng.randint(1, 6))},
        {"role": "assistant", "content": paragraph(rng, lexicon, cum, rng.randint(2, 30))},
    ]}


def write_corpus(path, megabytes, seed, fmt):
    """Writes whole records until at least `megabytes` MiB; returns (bytes, records)."""
    rng = random.Random(seed)
    lexicon, cum = make_lexicon(rng)
    want, written, count = megabytes << 20, 0, 0
    with open(path + ".partial", "w", encoding="utf-8", newline="\n") as f:
        while written < want:
            line = json.dumps(record(rng, lexicon, cum, count, fmt), ensure_ascii=True) + "\n"
            f.write(line)
            written += len(line)
            count += 1
    os.replace(path + ".partial", path)  # a killed run never leaves a short corpus behind
    return written, count


def training_texts(path, fmt):
    """The corpus's text fields, from the first TRAIN_BYTES bytes of records."""
    read = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            read += len(line)
            row = json.loads(line)
            if fmt == "text":
                yield row["text"]
            else:
                for message in row["messages"]:
                    yield message["content"]
            if read >= TRAIN_BYTES:
                return


def train_tokenizer(corpus, out_dir, fmt):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(training_texts(corpus, fmt), trainer=trainer)
    path = os.path.join(out_dir, "tokenizer.json")
    tokenizer.save(path + ".partial")
    os.replace(path + ".partial", path)

    specials = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
                "unk_token": "<unk>"}
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
        json.dump(specials, f, indent=2, sort_keys=True)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(dict(specials, tokenizer_class="PreTrainedTokenizerFast",
                       model_max_length=2048, clean_up_tokenization_spaces=False,
                       model_input_names=["input_ids", "attention_mask"]),
                  f, indent=2, sort_keys=True)
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output directory (created)")
    parser.add_argument("--megabytes", type=int, required=True, help="corpus size in MiB")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", choices=("text", "messages"), default="text",
                        help="text: {id, text} rows; messages: chat rows (ms-swift)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    corpus = os.path.join(args.out, "corpus.jsonl")
    size, records = write_corpus(corpus, args.megabytes, args.seed, args.format)
    print("corpus_bytes=%d" % size)
    print("records=%d" % records)
    print("tokenizer_sha256=%s" % train_tokenizer(corpus, args.out, args.format))


if __name__ == "__main__":
    main()
