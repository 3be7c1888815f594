/* rankfs_gpu: read file ranges of a rankfs mount into device memory through a staging ring
 * that the mount's daemon fills (docs/gpu.md).
 *
 * A context is one connection to one mount's daemon plus a ring of `slot_count` slots of
 * `slot_bytes` each, in a sealed memfd shared with the daemon. The daemon reads (decompresses)
 * a requested range into a slot through its own read path, so a slot holds exactly what read()
 * through the mount would return at that moment; the backend then copies the slot to the
 * destination on a stream, and the slot is reused only once that copy has completed.
 *
 * Authorisation: a file is registered with a descriptor the caller opened for reading on the
 * mount; the daemon checks it and reads only that file. Nothing else crosses the socket.
 *
 * Backends (rankfs_gpu_backend_available says which this library has):
 * - RANKFS_GPU_BACKEND_CPU treats host memory as the "device": each stream is a FIFO worker
 *   thread that performs the copies after a random delay (0 to cpu_max_delay_us), so that a
 *   slot reused too early shows as wrong bytes. Always built.
 * - RANKFS_GPU_BACKEND_CUDA, built where the CUDA toolkit was found, on the device current on
 *   the thread calling rankfs_gpu_open. The ring is page-locked (cudaHostRegister, portable);
 *   each stream, the context's default stream included, is its own non-blocking cudaStream_t
 *   (it neither waits for nor holds back the legacy default stream: order other work after a
 *   read by synchronizing, or through rankfs_gpu_stream_native); each slot is copied with
 *   cudaMemcpyAsync(cudaMemcpyDefault), so `dst` may be device memory or host memory, and the
 *   slot is reused only after the event recorded behind its copy has completed.
 *
 * Results: functions return 0 (or a count) on success and a negative errno on failure;
 * rankfs_gpu_last_error() then describes the failure of the calling thread's last call.
 *
 * Thread-safety: every function may be called concurrently on the same context from any
 * thread (requests to the daemon are serialised on the context's connection), except that a
 * context, file or stream must not be used during or after its close/destroy call. A ticket
 * is waited for once. rankfs_gpu_backend_available needs no context. The CUDA backend's
 * copies complete on a thread of the library; the calling thread's current device is left as
 * it was.
 */
#ifndef RANKFS_GPU_H_
#define RANKFS_GPU_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rankfs_gpu_backend {
  RANKFS_GPU_BACKEND_CPU = 1,
  RANKFS_GPU_BACKEND_CUDA = 2, /* -ENOTSUP where not built, -ENODEV without a device */
} rankfs_gpu_backend;

typedef struct rankfs_gpu_options {
  uint32_t slot_count; /* slots in the ring, 1..4096 */
  uint64_t slot_bytes; /* bytes per slot, 1 B..64 MiB */
  rankfs_gpu_backend backend;
  uint32_t cpu_max_delay_us; /* CPU backend: each copy waits a random 0..this first */
} rankfs_gpu_options;

typedef struct rankfs_gpu_ctx rankfs_gpu_ctx;
typedef struct rankfs_gpu_stream rankfs_gpu_stream;
typedef int32_t rankfs_gpu_file;    /* a registered file: > 0 */
typedef uint64_t rankfs_gpu_ticket; /* an async read: > 0 */

/* Whether `backend` can be opened here: 1 yes; 0 not built into this library; -ENODEV built
 * but no usable device or driver (the message says what cudaGetDeviceCount answered);
 * -EINVAL an unknown backend. rankfs_gpu_last_error() says why when the result is not 1. */
int rankfs_gpu_backend_available(rankfs_gpu_backend backend);

/* Connects to the daemon serving `mountpoint` (found through its stats file) and hands it the
 * ring. -EINVAL for a bad geometry or an unknown backend; -ENOTSUP for a backend not built;
 * -ENODEV for the CUDA backend without a usable device (checked before the mount is looked
 * at); -ENOENT for a directory that is not a rankfs mount. */
int rankfs_gpu_open(const char* mountpoint, const rankfs_gpu_options* options,
                    rankfs_gpu_ctx** out);
/* Waits for every queued copy, then closes the connection and frees the ring. */
void rankfs_gpu_close(rankfs_gpu_ctx* ctx);

/* A stream: copies queued on it complete in order. */
int rankfs_gpu_stream_create(rankfs_gpu_ctx* ctx, rankfs_gpu_stream** out);
/* Returns once every copy queued on the stream so far has completed: 0, or the negative errno
 * of the first copy that failed on it (-EIO, e.g. a CUDA fault). */
int rankfs_gpu_stream_synchronize(rankfs_gpu_stream* stream);
/* The backend's own stream (a cudaStream_t for CUDA; NULL for the CPU backend) of `stream`, or
 * of the context's default stream when `stream` is NULL: for making other work wait for the
 * copies (e.g. torch.cuda.ExternalStream). Owned by the library. */
void* rankfs_gpu_stream_native(rankfs_gpu_ctx* ctx, rankfs_gpu_stream* stream);
/* Makes the copies queued on `stream` (NULL: the default stream) from now on wait for the work
 * queued so far on the native stream `other` (a cudaStream_t; cudaStreamLegacy and
 * cudaStreamPerThread too), without blocking the caller: for a destination that GPU work on
 * `other` still writes. The CPU backend accepts only NULL (-EINVAL otherwise). */
int rankfs_gpu_stream_wait_native(rankfs_gpu_ctx* ctx, rankfs_gpu_stream* stream, void* other);
/* Synchronizes, then frees the stream. Streams go before their context. */
void rankfs_gpu_stream_destroy(rankfs_gpu_stream* stream);

/* Registers `fd`, which must be open for reading on this mount (the daemon refuses other
 * descriptors: -EBADF not readable, -EXDEV another filesystem). The caller keeps `fd`; the
 * daemon holds its own reference until rankfs_gpu_unregister or rankfs_gpu_close. Returns the
 * file (> 0) or a negative errno. */
rankfs_gpu_file rankfs_gpu_register(rankfs_gpu_ctx* ctx, int fd);
int rankfs_gpu_unregister(rankfs_gpu_ctx* ctx, rankfs_gpu_file file);

/* Reads [offset, offset+length) of `file` into `dst` on `stream`. Returns once every copy is
 * queued: the number of bytes that will land (short only at end of file) or a negative errno
 * (-EIO for a damaged range). Work queued on `stream` afterwards, and a synchronize, see the
 * bytes. On error, copies queued before the failing piece still complete. `stream` NULL: the
 * context's default stream. A destination the backend cannot copy to gives -EINVAL (CUDA:
 * cudaMemcpyAsync refused it) when queued, or -EIO from the stream's synchronize. */
int64_t rankfs_gpu_read(rankfs_gpu_ctx* ctx, rankfs_gpu_file file, uint64_t offset, uint64_t length,
                        void* dst, rankfs_gpu_stream* stream);

/* The asynchronous pair: submit queues the read and returns at once with a ticket in *out;
 * wait returns what rankfs_gpu_read would have, once the bytes are in `dst` (or -EIO when a
 * queued copy failed). `dst` and the
 * stream must stay valid until the ticket has been waited for. */
int rankfs_gpu_submit(rankfs_gpu_ctx* ctx, rankfs_gpu_file file, uint64_t offset, uint64_t length,
                      void* dst, rankfs_gpu_stream* stream, rankfs_gpu_ticket* out);
int64_t rankfs_gpu_wait(rankfs_gpu_ctx* ctx, rankfs_gpu_ticket ticket);

/* Low level, for tests of the daemon's checks: reads into slot `slot` directly and returns the
 * daemon's answer (bytes or negative errno); the bytes are then at rankfs_gpu_slot(ctx, slot).
 * Must not be mixed with reads in flight on the same context. */
int64_t rankfs_gpu_read_slot(rankfs_gpu_ctx* ctx, rankfs_gpu_file file, uint64_t offset,
                             uint64_t length, uint32_t slot);
const void* rankfs_gpu_slot(rankfs_gpu_ctx* ctx, uint32_t slot);

/* The message of the calling thread's last failed call ("" if none). Valid until the thread's
 * next call. */
const char* rankfs_gpu_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* RANKFS_GPU_H_ */
