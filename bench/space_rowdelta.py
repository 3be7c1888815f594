#!/usr/bin/env python3
"""Near-duplicate rows in ms-swift's cache: what per-row deltas would add to exact row dedup.

ms-swift's source table (json-train.arrow) stores each conversation as a list of structs of
strings; its preprocessed and encoded tables store the same conversation as a list of JSON
strings. A row's bytes are then never a copy of the source row's, but they contain its text.
This script takes every row's slice of the conversation column as one piece (as bench/
space_levers' Arrow cuts do: the row's slice of the values buffer, here the message contents
or the JSON strings, concatenated), deduplicates the pieces by SHA-256 over all files, and for
each unique piece that is not from the source table compresses it with zstd twice: alone, and
with the source row holding the same messages as a prefix (ZSTD_CCtx_refPrefix through the
`zstandard` module; the base found by matching the message texts: an oracle, the best any
resemblance search could pick). A delta is kept when it is under 0.8x the piece alone; every
delta is decoded with its base and compared with the row (exit 1 if one differs).
With --frame KIB, the pieces kept whole are also packed, in first-seen order, into frames of
about KIB KiB (as space_levers' framed layouts) and the deltas stay on their own: "framed".

Only the conversation column is counted; the other buffers (offsets, lengths, the role
strings) are left out, so the totals are those of that column's pieces.

Usage (the project's Python environment):
  $PYENV/bin/python bench/space_rowdelta.py [--level 1] FILE.arrow...   (in the order written)
Prints one line per file and a total.
"""
import argparse
import hashlib
import json
import sys

import pyarrow as pa
import zstandard


def conversation_rows(table):
    """(name, [(piece bytes, message texts)]) of the table's conversation column, or None."""
    for name in table.column_names:
        col = table.column(name)
        typ = col.type
        if not pa.types.is_list(typ):
            continue
        item = typ.value_type
        rows = []
        if pa.types.is_struct(item) and item.get_field_index("content") >= 0:
            for conv in col.to_pylist():
                texts = tuple(m["content"] for m in conv)
                rows.append(("".join(texts).encode(), texts))
            return "struct", rows
        storage = item.storage_type if isinstance(item, pa.BaseExtensionType) else item
        if pa.types.is_string(storage) or pa.types.is_large_string(storage):
            for conv in col.to_pylist():  # arrow.json values come back as their strings
                texts = tuple(json.loads(s)["content"] for s in conv)
                rows.append(("".join(conv).encode(), texts))
            return "json", rows
    return None, []


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--level", type=int, default=1)
    parser.add_argument("--frame", type=int, default=32, help="KiB")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    seen = set()
    source_rows = {}  # message texts -> the source table's piece
    total = {"rows": 0, "dup": 0, "raw": 0, "alone": 0, "best": 0, "deltas": 0, "based": 0}
    plain = zstandard.ZstdCompressor(level=args.level)
    frame, framed = bytearray(), [0]  # the open frame; bytes of the closed ones and deltas

    def close_frame():
        if frame:
            framed[0] += min(len(plain.compress(bytes(frame))), len(frame))
            frame.clear()
    for path in args.files:
        with pa.OSFile(path, "rb") as f:
            try:
                table = pa.ipc.open_stream(f).read_all()
            except pa.ArrowInvalid:
                continue
        kind, rows = conversation_rows(table)
        if kind is None:
            continue
        n = {"rows": len(rows), "dup": 0, "raw": 0, "alone": 0, "best": 0, "deltas": 0,
             "based": 0}
        for piece, texts in rows:
            digest = hashlib.sha256(piece).digest()
            if digest in seen:
                n["dup"] += 1
                continue
            seen.add(digest)
            alone = len(plain.compress(piece))
            best = alone
            if kind == "struct":
                source_rows.setdefault(texts, piece)
            elif texts in source_rows:
                n["based"] += 1
                base = zstandard.ZstdCompressionDict(source_rows[texts],
                                                     dict_type=zstandard.DICT_TYPE_RAWCONTENT)
                coded = zstandard.ZstdCompressor(level=args.level, dict_data=base).compress(piece)
                # Each delta is decoded with its base: a size counts only if it round-trips.
                if zstandard.ZstdDecompressor(dict_data=base).decompress(coded) != piece:
                    sys.exit("%s: a delta does not decode to its row" % path)
                delta = len(coded)
                if delta < 0.8 * alone:
                    best = delta
                    n["deltas"] += 1
            n["raw"] += len(piece)
            n["alone"] += alone
            n["best"] += best
            if best < alone:
                framed[0] += best
            else:
                if frame and len(frame) + len(piece) > args.frame << 10:
                    close_frame()
                frame.extend(piece)
        print("file=%s column=%s rows=%d duplicate_rows=%d unique_raw=%d zstd%d_alone=%d "
              "with_deltas=%d rows_with_a_base=%d deltas_kept=%d"
              % (path.rsplit("/", 1)[-1], kind, n["rows"], n["dup"], n["raw"], args.level,
                 n["alone"], n["best"], n["based"], n["deltas"]))
        for k in total:
            total[k] += n[k]
    close_frame()
    print("total rows=%d duplicate_rows=%d unique_raw=%d zstd%d_alone=%d with_deltas=%d "
          "rows_with_a_base=%d deltas_kept=%d with_deltas_framed_%dKiB=%d"
          % (total["rows"], total["dup"], total["raw"], args.level, total["alone"],
             total["best"], total["based"], total["deltas"], args.frame, framed[0]))


if __name__ == "__main__":
    sys.exit(main())
