#!/usr/bin/env python3
"""An unmodified training job's cache writer, imitated with Python's standard library only.

What HuggingFace `datasets` `.map()` does on every rank (see shared/DESIGN.md):
  tempfile.TemporaryDirectory(dir=<cache>) -> buffered 8 KiB writes into a tmpXXXX name ->
  os.replace to the final name -> os.chmod -> read back with mmap -> rmtree at the end.

Usage: python_job.py BASE_DIR RANK MEGABYTES [BARRIER_DIR]
  Every rank writes the same MEGABYTES of payload (real bytes read from /usr/bin, the same
  for every rank) behind a small rank-specific header, so the payload is shifted by a few
  bytes between ranks. With BARRIER_DIR, the rank creates BARRIER_DIR/ready-RANK once its
  file is verified and waits (up to 120 s) for BARRIER_DIR/go before cleaning up, so that
  the caller can measure the store with all ranks' files present.
Exits 0 on success; prints what failed otherwise.
"""
import hashlib
import mmap
import os
import random
import sys
import tempfile
import time


def payload(size):
    """The first `size` bytes of the regular files in /usr/bin, in name order."""
    out = bytearray()
    for name in sorted(os.listdir("/usr/bin")):
        path = os.path.join("/usr/bin", name)
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        try:
            with open(path, "rb") as f:
                out += f.read(size - len(out))
        except OSError:
            continue
        if len(out) >= size:
            break
    if len(out) < size:  # a tiny /usr/bin: repeat what there is
        out = (bytes(out) * (size // max(len(out), 1) + 1))[:size]
    return bytes(out)


def main():
    base, rank, megabytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    barrier = sys.argv[4] if len(sys.argv) > 4 else None
    data = payload(megabytes << 20)
    header = ("ARROW1 rank=%d fingerprint=%s\n" % (rank, "f" * (rank * 3 + 1))).encode()
    content = header + data
    want = hashlib.sha256(content).hexdigest()
    rng = random.Random(rank)
    started = time.monotonic()

    with tempfile.TemporaryDirectory(dir=base, prefix="hf_datasets-") as cache:
        # tempfile.NamedTemporaryFile(delete=False) is what `datasets` uses for the tmp name.
        with tempfile.NamedTemporaryFile(dir=cache, prefix="tmp", delete=False) as tmp:
            tmp_name = tmp.name
        # Default buffering of io is 8 KiB (io.DEFAULT_BUFFER_SIZE); passed explicitly so the
        # write pattern does not depend on the st_blksize the mount reports.
        with open(tmp_name, "wb", buffering=8192) as f:
            f.write(header)
            pos = 0
            while pos < len(data):
                # Record batches: mostly small, now and then a big one that bypasses the buffer.
                n = rng.choice((300, 1000, 4096, 5000, 7000)) if rng.random() < 0.97 else 300000
                f.write(data[pos:pos + n])
                pos += n
        final = os.path.join(cache, "cache-%05d.arrow" % rank)
        os.replace(tmp_name, final)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(final, 0o666 & ~umask)
        if os.path.exists(tmp_name):
            print("rank %d: %s still exists after os.replace" % (rank, tmp_name))
            return 1
        if os.stat(final).st_mode & 0o777 != 0o666 & ~umask:
            print("rank %d: chmod did not take: %o" % (rank, os.stat(final).st_mode))
            return 1

        # Read back through mmap: random record reads first, then everything in order.
        with open(final, "rb") as f:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                if len(m) != len(content):
                    print("rank %d: size %d, expected %d" % (rank, len(m), len(content)))
                    return 1
                for _ in range(500):
                    off = rng.randrange(0, len(content) - 4096)
                    if m[off:off + 4096] != content[off:off + 4096]:
                        print("rank %d: mmap bytes differ at %d" % (rank, off))
                        return 1
                got = hashlib.sha256(m).hexdigest()
        if got != want:
            print("rank %d: sha256 %s, expected %s" % (rank, got, want))
            return 1
        if barrier:
            open(os.path.join(barrier, "ready-%d" % rank), "w").close()
            deadline = time.monotonic() + 120
            while not os.path.exists(os.path.join(barrier, "go")):
                if time.monotonic() > deadline:
                    print("rank %d: no go from the test within 120 s" % rank)
                    return 1
                time.sleep(0.02)
    # TemporaryDirectory's cleanup (shutil.rmtree) has run.
    if os.path.exists(cache):
        print("rank %d: %s still exists after cleanup" % (rank, cache))
        return 1
    print("rank %d: %d bytes written, verified and removed in %.2f s"
          % (rank, len(content), time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
