#!/usr/bin/env python3
"""Serve random samples of a cache file on a rankfs mount the way a training loader does.

    gpu_loader.py /mnt/cache/cache-abc.arrow --batch-size 32 --steps 100 [--backend cuda] [--verify]

The file is an Arrow IPC file or stream (what `datasets` writes; one column is served,
--column or the first one of fixed-width values or lists/strings of them) or a .npy array
(a sample is one row along the first axis). Each step draws --batch-size random sample indices,
turns each into the byte range of its values in the file, and reads those ranges through the
staging path into one batch buffer: a NumPy array with the CPU backend, a CUDA torch tensor with
--backend cuda. --verify compares every batch with os.pread of the same ranges.

Only the layout (Arrow metadata and offsets, the .npy header) is read through the mount with
ordinary reads; the samples' bytes come through rankfs_gpu. Prints key=value lines.
"""

import argparse
import os
import sys
import time

import numpy

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rankfs_gpu  # noqa: E402


class NpyLayout:
    """Sample i of a C-order .npy file: row i, at data_offset + i * row_bytes."""

    def __init__(self, path):
        with open(path, "rb") as f:
            version = numpy.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = numpy.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = numpy.lib.format.read_array_header_2_0(f)
            self.data_offset = f.tell()
        if fortran or dtype.hasobject or not shape:
            raise SystemExit("%s: only C-order arrays of plain dtypes with a first axis" % path)
        self.count = shape[0]
        self.row_bytes = dtype.itemsize * int(numpy.prod(shape[1:], dtype=numpy.int64))

    def ranges(self, indices):
        return [(self.data_offset + int(i) * self.row_bytes, self.row_bytes) for i in indices]


class ArrowLayout:
    """Sample i of one column of an Arrow IPC file or stream: the bytes of its values. The file
    is memory-mapped so that the arrays' buffers are views of it and their addresses give their
    offsets in the file; only the metadata and list offsets are touched through the map."""

    def __init__(self, path, column):
        import pyarrow as pa
        import pyarrow.ipc

        self._map = pa.memory_map(path)
        whole = self._map.read_buffer()
        base = whole.address
        try:
            reader = pa.ipc.open_file(whole)
            batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
        except pa.ArrowInvalid:
            batches = list(pa.ipc.open_stream(whole))
        if not batches:
            raise SystemExit("%s: no record batches" % path)
        schema = batches[0].schema
        name = column or self._pick(schema)
        if name not in schema.names:
            raise SystemExit("%s: no column %r (columns: %s)" % (path, name, schema.names))
        self.column = name
        self._parts = []  # (first row, array)
        self.count = 0
        for b in batches:
            self._parts.append((self.count, b.column(name)))
            self.count += b.num_rows
        self._base = base

    @staticmethod
    def _fixed(t):
        import pyarrow as pa

        return (pa.types.is_integer(t) or pa.types.is_floating(t)) and t.bit_width % 8 == 0

    @classmethod
    def _pick(cls, schema):
        import pyarrow as pa

        for f in schema:
            t = f.type
            if cls._fixed(t) or pa.types.is_string(t) or pa.types.is_binary(t) or (
                    (pa.types.is_list(t) or pa.types.is_large_list(t)) and cls._fixed(t.value_type)):
                return f.name
        raise SystemExit("no column of fixed-width values, strings or lists of fixed-width values")

    def _range(self, array, i):
        import pyarrow as pa

        t = array.type
        bufs = array.buffers()
        if self._fixed(t):
            width = t.bit_width // 8
            return bufs[1].address - self._base + (array.offset + i) * width, width
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            offsets_type = numpy.int64 if pa.types.is_large_list(t) else numpy.int32
            width = t.value_type.bit_width // 8
            data, values_offset = bufs[3], array.values.offset
        else:  # string / binary
            offsets_type = numpy.int32
            width = 1
            data, values_offset = bufs[2], 0
        offsets = numpy.frombuffer(bufs[1], dtype=offsets_type)
        start, end = int(offsets[array.offset + i]), int(offsets[array.offset + i + 1])
        return data.address - self._base + (values_offset + start) * width, (end - start) * width

    def ranges(self, indices):
        out = []
        for i in indices:
            i = int(i)
            for first, array in reversed(self._parts):
                if i >= first:
                    out.append(self._range(array, i - first))
                    break
        return out


def batch_buffer(nbytes, backend):
    if backend == "cuda":
        import torch

        return torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    return numpy.empty(nbytes, dtype=numpy.uint8)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", help="an .arrow or .npy file on a rankfs mount")
    ap.add_argument("--mount", help="the mountpoint (default: found from the path)")
    ap.add_argument("--column", help="Arrow: the column to serve")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--backend", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--slot-bytes", type=int, default=1 << 20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verify", action="store_true", help="compare every batch with os.pread")
    args = ap.parse_args()

    mount = args.mount or os.path.dirname(os.path.abspath(args.path))
    while not os.path.exists(os.path.join(mount, ".rankfs-stats")) and mount != "/":
        mount = os.path.dirname(mount)
    layout = NpyLayout(args.path) if args.path.endswith(".npy") else ArrowLayout(args.path,
                                                                                  args.column)
    rng = numpy.random.default_rng(args.seed)
    samples = total = verified = 0
    t0 = time.monotonic()
    with rankfs_gpu.Context(mount, slot_count=args.slots, slot_bytes=args.slot_bytes,
                            backend=args.backend) as ctx, open(args.path, "rb") as f, \
            ctx.register(f) as rf:
        for _ in range(args.steps):
            ranges = layout.ranges(rng.integers(0, layout.count, size=args.batch_size))
            nbytes = sum(n for _, n in ranges)
            batch = batch_buffer(nbytes, args.backend)
            at = 0
            for offset, n in ranges:  # queued on one stream, synchronized once per batch
                got = ctx.read_into(rf, offset, batch[at:at + n], synchronize=False)
                if got != n:
                    raise SystemExit("short read at %d+%d: %d" % (offset, n, got))
                at += n
            ctx.default_stream.synchronize()
            samples += len(ranges)
            total += nbytes
            if args.verify:
                want = b"".join(os.pread(f.fileno(), n, offset) for offset, n in ranges)
                have = batch.cpu().numpy() if args.backend == "cuda" else batch
                if have.tobytes() != want:
                    raise SystemExit("batch differs from pread")
                verified += len(ranges)
    seconds = time.monotonic() - t0
    print("layout=%s" % type(layout).__name__)
    print("samples=%d" % samples)
    print("bytes=%d" % total)
    print("verified=%d" % verified)
    print("seconds=%.3f" % seconds)


if __name__ == "__main__":
    main()
