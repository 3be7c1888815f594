// Backend: where the client library's copies out of the staging ring run (docs/gpu.md). The
// client (gpu/client.cc) owns the ring, the slots and the connection to the daemon; a backend
// only moves filled slots to their destinations, in order, per stream, and says when each copy
// has completed, so that the client can give the slot back to the daemon.
//
// Two implementations: the CPU backend (gpu/cpu_backend.cc: host memory as the "device", a FIFO
// worker per stream with random delays) and the CUDA backend (gpu/cuda_backend.cc: pinned ring,
// cudaMemcpyAsync, an event per copy).
//
// Thread-safety: a Backend's methods may be called from any thread. A BackendStream's methods
// may be called from any thread, but the client serialises the copies of one read on it; the
// completion callbacks run on a thread of the backend, one at a time per stream, in enqueue
// order, and must not call back into the stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "gpu/include/rankfs_gpu.h"

namespace rankfs::gpu {

// 0 or a negative errno, and what failed.
struct [[nodiscard]] BackendStatus {
  int err = 0;
  std::string message;
  bool ok() const { return err == 0; }
};

// Runs once the work it follows has completed; `status` says whether that work failed (a CUDA
// copy can fail after it was queued).
using Completion = std::function<void(const BackendStatus& status)>;

class BackendStream {
 public:
  virtual ~BackendStream() = default;  // implementations synchronize first

  // Queues a copy of `n` bytes from `src` (inside the registered ring) to `dst`; `done` runs
  // once the copy has completed, never before. On error nothing was queued and `done` will
  // not run.
  virtual BackendStatus CopyAsync(void* dst, const void* src, uint64_t n, Completion done) = 0;
  // `done` runs once everything queued on the stream before it has completed.
  virtual BackendStatus Then(Completion done) = 0;
  // Returns once everything queued before the call has completed (and its callbacks have run);
  // the first asynchronous failure seen on the stream, if any.
  virtual BackendStatus Synchronize() = 0;
  // The native stream (a cudaStream_t), or nullptr for the CPU backend.
  virtual void* native() = 0;
  // Makes what is queued on this stream from now on wait for the work queued so far on the
  // native stream `other` (CUDA: an event recorded there, waited for here; no host wait).
  // The CPU backend has no native streams: -EINVAL for any but nullptr.
  virtual BackendStatus WaitForNative(void* other) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;  // REQUIRES: every stream destroyed; unregisters the ring

  // Called once, before any stream exists, with the ring's mapping (it stays mapped until the
  // backend is destroyed).
  virtual BackendStatus RegisterRing(void* base, size_t bytes) = 0;
  virtual BackendStatus CreateStream(std::unique_ptr<BackendStream>* out) = 0;
};

// The CPU backend: each stream waits a random 0..max_delay_us before each task.
std::unique_ptr<Backend> MakeCpuBackend(uint32_t max_delay_us);

// The CUDA backend on the device current on the calling thread. -ENOTSUP where this library
// was built without CUDA; -ENODEV (saying what cudaGetDeviceCount answered) where there is no
// usable device or driver.
BackendStatus MakeCudaBackend(std::unique_ptr<Backend>* out);

// Whether `backend` can be opened here: 1 yes; 0 not built into this library; a negative
// errno when built but unusable here (-ENODEV) or unknown (-EINVAL). *why says why not.
int BackendAvailable(rankfs_gpu_backend backend, std::string* why);

}  // namespace rankfs::gpu
