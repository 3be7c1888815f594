"""Checks of python/rankfs_gpu.py against a mount, run by gpu_python_test.cc.

    gpu_python_check.py MOUNT OUTSIDE_DIR

Writes data.npy and data.arrow (an Arrow IPC stream, as `datasets` writes) on the mount, then:
random reads through the wrapper (read, read_into a NumPy array and a bytearray, submit/wait, a
stream of its own) compared with os.pread; the library's refusals as OSError with their errno;
destinations the wrapper refuses before reading. Prints "check_<name>=ok" per check and
"checks_done=N"; any failure raises (exit status 1).
"""

import errno
import os
import random
import sys

import numpy
import pyarrow as pa
import pyarrow.ipc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "python"))
import rankfs_gpu  # noqa: E402

SLOT_BYTES = 64 << 10
done = []


def check(name):
    def run(fn):
        fn()
        print("check_%s=ok" % name, flush=True)
        done.append(name)
        return fn
    return run


def expect_oserror(code, fn, *args, contains=None):
    try:
        fn(*args)
    except OSError as e:
        assert e.errno == code, "errno %s (%s), wanted %s" % (e.errno, e, errno.errorcode[code])
        assert e.strerror, "OSError without a message"
        if contains:
            assert contains in e.strerror, "%r does not say %r" % (e.strerror, contains)
        return e
    raise AssertionError("no OSError(%s) from %s" % (errno.errorcode[code], fn.__name__))


def expect_refused(exc_type, contains, fn, *args):
    try:
        fn(*args)
    except exc_type as e:
        assert contains in str(e), "%r does not say %r" % (str(e), contains)
        return
    raise AssertionError("%s not refused with %s" % (fn.__name__, exc_type.__name__))


class FakeDeviceArray:
    """Claims to be device memory, as a CUDA tensor or a CuPy array does."""

    def __init__(self, nbytes, strides=None):
        self.__cuda_array_interface__ = {"shape": (nbytes,), "typestr": "|u1",
                                         "data": (0x7f0000000000, False), "version": 3,
                                         "strides": strides, "stream": None}


def main():
    mount, outside = sys.argv[1], sys.argv[2]
    rng = numpy.random.default_rng(1)
    npy = os.path.join(mount, "data.npy")
    numpy.save(npy, rng.integers(0, 50000, size=(3000, 61), dtype=numpy.int32))
    arrow = os.path.join(mount, "data.arrow")
    ids = [rng.integers(0, 50000, size=int(rng.integers(0, 300)), dtype=numpy.int32)
           for _ in range(4000)]
    table = pa.table({"input_ids": pa.array(ids, type=pa.list_(pa.int32())),
                      "label": pa.array(numpy.arange(4000, dtype=numpy.int64))})
    with pa.OSFile(arrow, "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        for batch in table.to_batches(max_chunksize=1000):
            w.write_batch(batch)

    ctx = rankfs_gpu.Context(mount, slot_count=4, slot_bytes=SLOT_BYTES, cpu_max_delay_us=50)

    @check("random_reads_match_pread")
    def _():
        r = random.Random(2)
        for path in (npy, arrow):
            with open(path, "rb") as f, ctx.register(f) as rf, ctx.stream() as s:
                size = os.fstat(f.fileno()).st_size
                for i in range(60):
                    off = r.randrange(size + 1000)
                    length = r.randrange(5 * SLOT_BYTES if i % 4 == 0 else 9000)
                    want = os.pread(f.fileno(), length, off)
                    kind = i % 4
                    if kind == 0:
                        have = ctx.read(rf, off, length).tobytes()
                    elif kind == 1:
                        buf = numpy.full(length, 0x5a, dtype=numpy.uint8)
                        n = ctx.read_into(rf, off, buf, stream=s)
                        have = buf[:n].tobytes()
                    elif kind == 2:
                        buf = bytearray(length)
                        n = ctx.read_into(rf, off, buf)
                        have = bytes(buf[:n])
                    else:
                        buf = numpy.zeros(length, dtype=numpy.uint8)
                        n = ctx.wait(ctx.submit(rf, off, buf))
                        have = buf[:n].tobytes()
                    assert have == want, "%s read %d at %d+%d differs" % (path, i, off, length)

    @check("typed_destination")
    def _():  # a destination of another dtype takes its nbytes: rows of the .npy as int32
        with ctx.register(npy) as rf:
            rows = numpy.empty((10, 61), dtype=numpy.int32)
            header = os.path.getsize(npy) - 3000 * 61 * 4
            assert ctx.read_into(rf, header + 5 * 61 * 4, rows) == rows.nbytes
            assert (rows == numpy.load(npy, mmap_mode="r")[5:15]).all()

    @check("library_errors_are_oserror")
    def _():
        wfd = os.open(os.path.join(mount, "wo"), os.O_WRONLY | os.O_CREAT, 0o644)
        expect_oserror(errno.EBADF, ctx.register, wfd, contains="not open for reading")
        os.close(wfd)
        other = os.path.join(outside, "outside")
        with open(other, "wb") as f:
            f.write(b"x" * 100)
        expect_oserror(errno.EXDEV, ctx.register, other, contains="not on this rankfs mount")
        expect_oserror(errno.ENOENT, rankfs_gpu.Context, outside, contains="GPU staging socket")
        expect_oserror(errno.EINVAL, rankfs_gpu.Context, mount, 0)
        ok, why = rankfs_gpu.backend_available("cuda")
        if not ok:  # no device (or not built): the reason comes back as the OSError's text
            e = expect_oserror(errno.ENODEV if "cudaGetDeviceCount" in why else errno.ENOTSUP,
                               rankfs_gpu.Context, mount, 4, SLOT_BYTES, "cuda")
            assert e.strerror == why, (e.strerror, why)
        assert rankfs_gpu.backend_available("cpu") == (True, "")

    @check("bad_destinations_refused")
    def _():
        with ctx.register(npy) as rf:
            expect_refused(ValueError, "backend='cuda'", ctx.read_into, rf, 0,
                           FakeDeviceArray(4096))
            expect_refused(ValueError, "not C-contiguous", ctx.read_into, rf, 0,
                           numpy.zeros((8, 8), dtype=numpy.uint8)[:, ::2])
            ro = numpy.zeros(100, dtype=numpy.uint8)
            ro.flags.writeable = False
            expect_refused(ValueError, "not writable", ctx.read_into, rf, 0, ro)
            expect_refused(ValueError, "read-only", ctx.read_into, rf, 0, b"immutable")
            expect_refused(TypeError, "NumPy array", ctx.read_into, rf, 0, 42)
            expect_refused(ValueError, "backend must be", rankfs_gpu.Context, mount, 4,
                           SLOT_BYTES, "tpu")
        # The same checks of a device destination the CUDA backend would apply.
        expect_refused(ValueError, "not C-contiguous", rankfs_gpu._cuda_destination,
                       FakeDeviceArray(4096, strides=(2,)))
        assert rankfs_gpu._cuda_destination(FakeDeviceArray(4096)) == (0x7f0000000000, 4096,
                                                                       None)

    @check("closed_objects_refused")
    def _():  # a closed stream or context is a Python error, never a NULL handed to the library
        s = ctx.stream()
        s.close()
        expect_refused(ValueError, "stream is closed", s.synchronize)
        other = rankfs_gpu.Context(mount, slot_count=2, slot_bytes=4096)
        rf = other.register(npy)
        other.close()
        expect_refused(ValueError, "context is closed", other.read, rf, 0, 10)
        expect_refused(ValueError, "context is closed", other.stream)
        rf.close()  # after its context: nothing left to unregister

    ctx.close()
    print("checks_done=%d" % len(done))


if __name__ == "__main__":
    main()
