#!/usr/bin/env python3
"""Writes the small Arrow IPC streams that tests/unit/arrow_ipc_test.cc reads, with pyarrow.

Run with the project's Python environment after changing it (`scripts/deps.sh --pyenv-path`):
  $PYENV/bin/python tests/data/arrow_ipc/make_streams.py
Each stream is written by pyarrow's own IPC writer, the one `datasets` uses, so the test checks
store/arrow_ipc.cc against real bytes and not only against the test's own writer.
  dataset.arrows     id: int64, text: string, input_ids: list<int32>; two batches of 3 rows
  types.arrows       null, bool, struct<a: fixed_size_list<int16>[2], b: large_string>,
                     large_list<float64>, timestamp, decimal128, dictionary<int8, string>
  compressed.arrows  dataset.arrows's table with zstd-compressed buffers
"""
import os

import pyarrow as pa

HERE = os.path.dirname(os.path.abspath(__file__))


def write(name, table, **options):
    with pa.OSFile(os.path.join(HERE, name), "wb") as f:
        with pa.ipc.new_stream(f, table.schema, options=pa.ipc.IpcWriteOptions(**options)) as w:
            for batch in table.to_batches(max_chunksize=3):
                w.write_batch(batch)


def main():
    texts = ["the first row's text", "a second, longer row of text here", "three",
             "row four", "", "the sixth and last row"]
    dataset = pa.table({
        "id": pa.array(range(6), pa.int64()),
        "text": pa.array(texts, pa.string()),
        "input_ids": pa.array([[i * 10 + k for k in range(i + 1)] for i in range(6)],
                              pa.list_(pa.int32())),
    })
    write("dataset.arrows", dataset)
    write("compressed.arrows", dataset, compression="zstd")
    types = pa.table({
        "nothing": pa.nulls(4),
        "flag": pa.array([True, False, None, True]),
        "pair": pa.array([{"a": [1, 2], "b": "x"}, {"a": [3, 4], "b": "yy"}, None,
                          {"a": [7, 8], "b": "zzzz"}],
                         pa.struct([("a", pa.list_(pa.int16(), 2)), ("b", pa.large_string())])),
        "values": pa.array([[1.5], [], None, [2.5, 3.5]], pa.large_list(pa.float64())),
        "when": pa.array([0, 1, 2, 3], pa.timestamp("us")),
        "money": pa.array([1, 2, 3, 4], pa.decimal128(10, 2)),
        "label": pa.array(["cat", "dog", "cat", None]).dictionary_encode(),
    })
    with pa.OSFile(os.path.join(HERE, "types.arrows"), "wb") as f:
        with pa.ipc.new_stream(f, types.schema) as w:
            w.write_table(types)


if __name__ == "__main__":
    main()
