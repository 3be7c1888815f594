"""rankfs_gpu: read file ranges of a rankfs mount into NumPy arrays or GPU memory.

A ctypes wrapper of librankfs_gpu.so (gpu/include/rankfs_gpu.h; docs/gpu.md). The mount's
daemon reads (decompresses) each requested range into a staging ring shared with this process,
and the library copies it to the destination: host memory with the "cpu" backend, device
memory (or host memory) with the "cuda" backend.

    with rankfs_gpu.Context("/mnt/cache", backend="cpu") as ctx:
        with ctx.register(open("/mnt/cache/data.arrow", "rb")) as f:
            batch = ctx.read(f, offset=4096, length=1 << 20)   # numpy.ndarray, uint8

The library is found through RANKFS_GPU_LIB (a path to the .so), else next to this module,
else in the build tree (build/gpu/), else by the dynamic loader (the package installs it in
/usr/lib, and this module in /usr/share/rankfs/python). Failures of the library raise OSError(errno, message);
a destination this wrapper cannot use raises TypeError or ValueError before anything is read.

Thread-safety: as the C library's (every call may come from any thread; a Context, File or
Stream must not be used while or after it is closed).
"""

import ctypes
import errno
import os

__all__ = ["Context", "File", "Stream", "Ticket", "backend_available", "library_path"]

_BACKENDS = {"cpu": 1, "cuda": 2}


class _Options(ctypes.Structure):
    _fields_ = [
        ("slot_count", ctypes.c_uint32),
        ("slot_bytes", ctypes.c_uint64),
        ("backend", ctypes.c_int),
        ("cpu_max_delay_us", ctypes.c_uint32),
    ]


def _candidates():
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "librankfs_gpu.so")
    yield os.path.join(os.path.dirname(here), "build", "gpu", "librankfs_gpu.so")


def library_path():
    """The path of librankfs_gpu.so this module uses; OSError(ENOENT) when there is none."""
    env = os.environ.get("RANKFS_GPU_LIB")
    if env:
        if not os.path.isfile(env):
            raise OSError(errno.ENOENT, "RANKFS_GPU_LIB=%s: no such file" % env)
        return env
    looked = list(_candidates())
    for path in looked:
        if os.path.isfile(path):
            return path
    # Installed (the .deb puts it in /usr/lib): the dynamic loader finds it by name.
    try:
        ctypes.CDLL("librankfs_gpu.so")
        return "librankfs_gpu.so"
    except OSError:
        pass
    raise OSError(errno.ENOENT, "librankfs_gpu.so not found: set RANKFS_GPU_LIB to its path "
                  "(looked in %s and the dynamic loader's path)" % ", ".join(looked))


_lib = None


def _library():
    global _lib
    if _lib is not None:
        return _lib
    lib = ctypes.CDLL(library_path())
    P, U64, I64 = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int64
    sigs = {
        "rankfs_gpu_backend_available": (ctypes.c_int, [ctypes.c_int]),
        "rankfs_gpu_open": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(_Options),
                                           ctypes.POINTER(P)]),
        "rankfs_gpu_close": (None, [P]),
        "rankfs_gpu_stream_create": (ctypes.c_int, [P, ctypes.POINTER(P)]),
        "rankfs_gpu_stream_synchronize": (ctypes.c_int, [P]),
        "rankfs_gpu_stream_destroy": (None, [P]),
        "rankfs_gpu_stream_native": (P, [P, P]),
        "rankfs_gpu_stream_wait_native": (ctypes.c_int, [P, P, P]),
        "rankfs_gpu_register": (ctypes.c_int32, [P, ctypes.c_int]),
        "rankfs_gpu_unregister": (ctypes.c_int, [P, ctypes.c_int32]),
        "rankfs_gpu_read": (I64, [P, ctypes.c_int32, U64, U64, P, P]),
        "rankfs_gpu_submit": (ctypes.c_int, [P, ctypes.c_int32, U64, U64, P, P,
                                             ctypes.POINTER(U64)]),
        "rankfs_gpu_wait": (I64, [P, U64]),
        "rankfs_gpu_last_error": (ctypes.c_char_p, []),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    _lib = lib
    return lib


def _check(result):
    """Raises OSError(errno, message) for a negative result; returns it otherwise."""
    if result < 0:
        message = _library().rankfs_gpu_last_error().decode("utf-8", "replace")
        raise OSError(-result, message or os.strerror(-result))
    return result


def _backend_code(backend):
    try:
        return _BACKENDS[backend]
    except KeyError:
        raise ValueError("backend must be one of %s, not %r" % (sorted(_BACKENDS), backend))


def backend_available(backend):
    """(True, "") where `backend` ("cpu" or "cuda") can be opened here, else (False, why)."""
    lib = _library()
    r = lib.rankfs_gpu_backend_available(_backend_code(backend))
    if r == 1:
        return True, ""
    return False, lib.rankfs_gpu_last_error().decode("utf-8", "replace")


def _cuda_destination(obj):
    """(pointer, nbytes, producer stream or None) of an object exposing
    __cuda_array_interface__ (a CUDA torch tensor, a CuPy array), after checking it is writable
    and C-contiguous."""
    cai = obj.__cuda_array_interface__
    ptr, readonly = cai["data"]
    if readonly:
        raise ValueError("the destination's __cuda_array_interface__ says it is read-only")
    shape = tuple(cai["shape"])
    typestr = cai["typestr"]
    try:
        itemsize = int(typestr[2:])
    except ValueError:
        raise ValueError("unsupported __cuda_array_interface__ typestr %r" % typestr)
    strides = cai.get("strides")
    if strides is not None:
        expected, step = [], itemsize
        for extent in reversed(shape):
            expected.append(step)
            step *= extent
        expected.reverse()
        # A dimension of extent 1 may have any stride.
        if any(s != e for s, e, n in zip(strides, expected, shape) if n > 1):
            raise ValueError("the destination is not C-contiguous (shape %s, strides %s): "
                             "pass a contiguous tensor" % (shape, tuple(strides)))
    nbytes = itemsize
    for extent in shape:
        nbytes *= extent
    if nbytes > 0 and not ptr:
        raise ValueError("the destination's __cuda_array_interface__ has no data pointer")
    # Version 3: the stream whose work must be waited for before the memory is used (1 and 2
    # are the legacy and per-thread default streams, as cudaStreamLegacy/PerThread; 0 is
    # disallowed).
    producer = cai.get("stream") if cai.get("version", 0) >= 3 else None
    if producer == 0:
        raise ValueError("__cuda_array_interface__ stream 0 is ambiguous (version 3 forbids it)")
    return ptr, nbytes, producer


def _host_destination(obj):
    """(pointer, nbytes) of a writable, C-contiguous NumPy array or buffer (bytearray, ...)."""
    import numpy

    if not isinstance(obj, numpy.ndarray):
        try:
            view = memoryview(obj)
        except TypeError:
            raise TypeError("the destination must be a NumPy array, a writable buffer, or an "
                            "object with __cuda_array_interface__; not %s" % type(obj).__name__)
        if view.readonly:
            raise ValueError("the destination buffer is read-only")
        obj = numpy.frombuffer(view, dtype=numpy.uint8) if view.nbytes else numpy.empty(0)
    if not obj.flags.c_contiguous:
        raise ValueError("the destination array is not C-contiguous: pass "
                         "numpy.ascontiguousarray(...) and copy back, or a contiguous slice")
    if not obj.flags.writeable:
        raise ValueError("the destination array is not writable")
    return obj.ctypes.data, obj.nbytes, None


class Stream:
    """A stream of the context: copies queued on it complete in order."""

    def __init__(self, ctx, handle):
        self._ctx, self._handle = ctx, handle

    def _live(self):
        if not self._handle:
            raise ValueError("the stream is closed")
        return self._handle

    @property
    def native(self):
        """The backend's own stream as an int (a cudaStream_t for "cuda", for example for
        torch.cuda.ExternalStream), or None for the CPU backend."""
        return self._ctx._lib.rankfs_gpu_stream_native(self._ctx._live(), self._live())

    def synchronize(self):
        """Returns once every copy queued so far has completed (OSError if one failed)."""
        _check(self._ctx._lib.rankfs_gpu_stream_synchronize(self._live()))

    def close(self):
        if self._handle:
            self._ctx._lib.rankfs_gpu_stream_destroy(self._handle)
            self._ctx._streams.discard(self)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class File:
    """A file registered with the daemon. Keeps the descriptor it was registered with open
    (and closes it at close() when the wrapper opened it from a path)."""

    def __init__(self, ctx, handle, fd, owned, keep):
        self._ctx, self.handle, self.fd, self._owned, self._keep = ctx, handle, fd, owned, keep
        self.size = os.fstat(fd).st_size

    def close(self):
        if self.handle > 0:
            handle, self.handle = self.handle, 0
            if self._ctx._ctx:
                _check(self._ctx._lib.rankfs_gpu_unregister(self._ctx._ctx, handle))
            if self._owned:
                os.close(self.fd)
            self._keep = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Ticket:
    """An asynchronous read: Context.wait(ticket) gives its result. Keeps its destination alive
    until then."""

    def __init__(self, value, dst):
        self.value, self._dst = value, dst


class Context:
    """A connection to the daemon of the rankfs mount `mountpoint` with a staging ring of
    `slot_count` slots of `slot_bytes` bytes; `backend` is "cpu" or "cuda" (the device current
    in this thread). `cpu_max_delay_us` delays the CPU backend's copies at random (tests)."""

    def __init__(self, mountpoint, slot_count=16, slot_bytes=4 << 20, backend="cpu",
                 cpu_max_delay_us=0):
        self._lib = _library()
        self._ctx = None
        self.backend = backend
        opts = _Options(slot_count, slot_bytes, _backend_code(backend), cpu_max_delay_us)
        out = ctypes.c_void_p()
        _check(self._lib.rankfs_gpu_open(os.fsencode(mountpoint), ctypes.byref(opts),
                                         ctypes.byref(out)))
        self._ctx = out.value
        self._streams = set()
        # The stream used where none is given. Not the C library's default stream: the wrapper
        # must be able to synchronize it, and the C ABI has no handle for that one.
        self._default = self.stream()

    def _live(self):
        if not self._ctx:
            raise ValueError("the context is closed")
        return self._ctx

    def close(self):
        """Waits for every queued copy, then disconnects. Streams still open are closed."""
        if self._ctx:
            for s in list(self._streams):
                s.close()
            self._lib.rankfs_gpu_close(self._ctx)
            self._ctx = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_ctx", None):
            self.close()

    def register(self, f):
        """Registers a file opened for reading on the mount: a file object (anything with
        fileno()), a descriptor, or a path (opened read-only here). Returns a File."""
        keep, owned = None, False
        if isinstance(f, int):
            fd = f
        elif hasattr(f, "fileno"):
            fd, keep = f.fileno(), f
        elif isinstance(f, (str, bytes, os.PathLike)):
            fd, owned = os.open(f, os.O_RDONLY | os.O_CLOEXEC), True
        else:
            raise TypeError("register() takes a file object, a descriptor or a path, not %s"
                            % type(f).__name__)
        try:
            handle = _check(self._lib.rankfs_gpu_register(self._live(), fd))
        except BaseException:
            if owned:
                os.close(fd)
            raise
        return File(self, handle, fd, owned, keep)

    def stream(self):
        """A new Stream (close it, or use it as a context manager)."""
        out = ctypes.c_void_p()
        _check(self._lib.rankfs_gpu_stream_create(self._live(), ctypes.byref(out)))
        s = Stream(self, out.value)
        self._streams.add(s)
        return s

    def _destination(self, dst, stream):
        """(pointer, nbytes) of `dst`; a device destination's producer stream is waited for
        on `stream` first."""
        if hasattr(dst, "__cuda_array_interface__"):
            if self.backend != "cuda":
                raise ValueError("the destination is device memory (it has "
                                 "__cuda_array_interface__) but this context's backend is %r: "
                                 "open the Context with backend='cuda'" % self.backend)
            ptr, nbytes, producer = _cuda_destination(dst)
        else:
            ptr, nbytes, producer = _host_destination(dst)
        if producer is not None:
            _check(self._lib.rankfs_gpu_stream_wait_native(self._live(), stream._live(),
                                                           producer))
        return ptr, nbytes

    def _stream_of(self, stream):
        return stream if stream is not None else self._default

    def read_into(self, file, offset, dst, stream=None, synchronize=True):
        """Reads dst's size in bytes from `file` at `offset` into `dst`: a writable C-contiguous
        NumPy array (or buffer), or, with the "cuda" backend, an object exposing
        __cuda_array_interface__ (the copies wait for the work on the stream it names, from
        version 3; torch tensors name none: they must have no pending writes).
        Returns the bytes read (short only at end of file). With synchronize=False it returns
        once the copies are queued on `stream` (the default stream when None): later work on
        that stream, or its synchronize(), sees them."""
        s = self._stream_of(stream)
        ptr, nbytes = self._destination(dst, s)
        n = _check(self._lib.rankfs_gpu_read(self._live(), file.handle, offset, nbytes, ptr,
                                             s._live()))
        if synchronize:
            s.synchronize()
        return n

    @property
    def default_stream(self):
        """The Stream that reads without a `stream` argument use."""
        return self._default

    def read(self, file, offset, length, stream=None):
        """Reads up to `length` bytes of `file` at `offset` into a new numpy.ndarray of uint8
        (shorter at end of file)."""
        import numpy

        out = numpy.empty(length, dtype=numpy.uint8)
        n = self.read_into(file, offset, out, stream)
        return out[:n]

    def submit(self, file, offset, dst, stream=None):
        """Queues a read of dst's size at `offset` into `dst` and returns a Ticket at once;
        wait(ticket) returns the bytes read once they are in dst."""
        s = self._stream_of(stream)
        ptr, nbytes = self._destination(dst, s)
        t = ctypes.c_uint64()
        _check(self._lib.rankfs_gpu_submit(self._live(), file.handle, offset, nbytes, ptr,
                                           s._live(), ctypes.byref(t)))
        return Ticket(t.value, dst)

    def wait(self, ticket):
        """The result of a submitted read (bytes read), once the bytes are in its dst."""
        n = _check(self._lib.rankfs_gpu_wait(self._live(), ticket.value))
        ticket._dst = None
        return n
