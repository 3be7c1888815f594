#!/usr/bin/env python3
"""One writer of fsbench.py's Python job: a cache file written as a Python data job writes it.

    python_job.py HEADER DATA DIR

writes HEADER's bytes and then DATA's to DIR/cache.arrow.tmp through
open(tmp, "wb", buffering=8192) with 1 MiB write() calls (what pyarrow's stream writer hands a
buffered file), closes it, os.replace()s it to DIR/cache.arrow and chmod()s it 0644, as the
`datasets` library finishes a cache file. Both inputs are read into memory first, so that only
the writing is timed. Prints {"bytes": N, "seconds": S} on stdout.
"""
import json
import os
import sys
import time

MIB = 1 << 20


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    header_path, data_path, out_dir = sys.argv[1:]
    with open(header_path, "rb") as f:
        header = f.read()
    with open(data_path, "rb") as f:
        data = memoryview(f.read())
    tmp = os.path.join(out_dir, "cache.arrow.tmp")
    final = os.path.join(out_dir, "cache.arrow")
    t0 = time.monotonic()
    with open(tmp, "wb", buffering=8192) as f:
        f.write(header)
        for off in range(0, len(data), MIB):
            f.write(data[off:off + MIB])
    os.replace(tmp, final)
    os.chmod(final, 0o644)
    seconds = time.monotonic() - t0
    print(json.dumps({"bytes": len(header) + len(data), "seconds": seconds}))


if __name__ == "__main__":
    main()
