// The CUDA backend (gpu/backend.h, docs/gpu.md "CUDA backend"). Compiled by the host C++
// compiler against the CUDA runtime API and linked with the static runtime, so that
// librankfs_gpu.so loads on a machine without a CUDA install and answers -ENODEV there.
//
// The ring is page-locked with cudaHostRegister, so each slot's cudaMemcpyAsync is a DMA by the
// copy engine. Each rankfs stream is one cudaStream_t (non-blocking: it does not wait on the
// legacy default stream, nor make it wait) with a completion thread: after every copy an event
// is recorded; the thread waits for the events in order (cudaEventSynchronize, blocking-sync
// events so it sleeps rather than spins) and then runs the copy's completion, which gives the
// slot back. Why not cudaLaunchHostFunc: host functions run on one runtime thread shared by every
// stream, hold back the stream's later copies until they return, and cannot report a failed
// copy; the event wait can.
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "gpu/backend.h"

namespace rankfs::gpu {
namespace {

std::string CudaText(const char* call, cudaError_t e) {
  return std::string(call) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
}

BackendStatus CudaFail(int err, const char* call, cudaError_t e) {
  return {err, CudaText(call, e)};
}

// Restores the calling thread's current device when it goes out of scope.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    if (previous_ != device) cudaSetDevice(device);
  }
  ~DeviceGuard() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

class CudaBackendStream : public BackendStream {
 public:
  explicit CudaBackendStream(int device) : device_(device) {}

  BackendStatus Start() {
    DeviceGuard guard(device_);
    const cudaError_t e = cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
      stream_ = nullptr;
      return CudaFail(-EIO, "cudaStreamCreateWithFlags", e);
    }
    completer_ = std::thread([this] { Complete(); });
    return {};
  }

  ~CudaBackendStream() override {
    if (stream_ == nullptr) return;
    (void)Synchronize();
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    completer_.join();
    DeviceGuard guard(device_);
    for (cudaEvent_t ev : free_events_) cudaEventDestroy(ev);
    cudaStreamDestroy(stream_);
  }

  BackendStatus CopyAsync(void* dst, const void* src, uint64_t n, Completion done) override {
    const cudaError_t e = cudaMemcpyAsync(dst, src, n, cudaMemcpyDefault, stream_);
    if (e != cudaSuccess) {
      return CudaFail(e == cudaErrorInvalidValue ? -EINVAL : -EIO,
                      "cudaMemcpyAsync to the destination", e);
    }
    BackendStatus s = Then(std::move(done));
    // The copy is queued but nothing will say when it ends: wait here, so that the caller may
    // reuse the slot as the contract says.
    if (!s.ok()) cudaStreamSynchronize(stream_);
    return s;
  }

  BackendStatus Then(Completion done) override {
    cudaEvent_t ev = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_events_.empty()) {
        ev = free_events_.back();
        free_events_.pop_back();
      }
    }
    if (ev == nullptr) {
      const cudaError_t e =
          cudaEventCreateWithFlags(&ev, cudaEventDisableTiming | cudaEventBlockingSync);
      if (e != cudaSuccess) return CudaFail(-ENOMEM, "cudaEventCreateWithFlags", e);
    }
    // Recorded under mu_, so that the completion thread's queue is in the stream's order.
    std::lock_guard<std::mutex> lock(mu_);
    const cudaError_t e = cudaEventRecord(ev, stream_);
    if (e != cudaSuccess) {
      free_events_.push_back(ev);
      return CudaFail(-EIO, "cudaEventRecord", e);
    }
    pending_.push_back({ev, std::move(done)});
    ++enqueued_;
    cv_.notify_all();
    return {};
  }

  BackendStatus Synchronize() override {
    std::unique_lock<std::mutex> lock(mu_);
    const uint64_t target = enqueued_;
    cv_.wait(lock, [&] { return completed_ >= target; });
    return first_error_;
  }

  void* native() override { return stream_; }

  BackendStatus WaitForNative(void* other) override {
    cudaEvent_t ev = nullptr;
    cudaError_t e = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
    if (e != cudaSuccess) return CudaFail(-ENOMEM, "cudaEventCreateWithFlags", e);
    e = cudaEventRecord(ev, static_cast<cudaStream_t>(other));
    BackendStatus s;
    if (e != cudaSuccess) {
      s = CudaFail(-EINVAL, "cudaEventRecord on the stream to wait for", e);
    } else if ((e = cudaStreamWaitEvent(stream_, ev, 0)) != cudaSuccess) {
      s = CudaFail(-EIO, "cudaStreamWaitEvent", e);
    }
    cudaEventDestroy(ev);  // the wait already queued holds what it needs
    return s;
  }

 private:
  struct Pending {
    cudaEvent_t event;
    Completion done;
  };

  // The completion thread: waits for each event in order, then runs its completion.
  void Complete() {
    cudaSetDevice(device_);
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !pending_.empty(); });
      if (pending_.empty()) return;  // stop_, and nothing left
      Pending p = std::move(pending_.front());
      pending_.pop_front();
      lock.unlock();
      const cudaError_t e = cudaEventSynchronize(p.event);
      BackendStatus status;
      if (e != cudaSuccess) status = CudaFail(-EIO, "a copy on the CUDA stream failed", e);
      p.done(status);
      lock.lock();
      if (!status.ok() && first_error_.ok()) first_error_ = status;
      free_events_.push_back(p.event);
      ++completed_;
      cv_.notify_all();
    }
  }

  const int device_;
  cudaStream_t stream_ = nullptr;
  std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::deque<Pending> pending_;
  std::vector<cudaEvent_t> free_events_;
  uint64_t enqueued_ = 0, completed_ = 0;
  BackendStatus first_error_;
  bool stop_ = false;
  std::thread completer_;
};

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {}
  ~CudaBackend() override {
    if (ring_ != nullptr) {
      DeviceGuard guard(device_);
      cudaHostUnregister(ring_);
    }
  }

  BackendStatus RegisterRing(void* base, size_t bytes) override {
    DeviceGuard guard(device_);
    // Portable: the pinning holds for every device of the process, not only this one.
    const cudaError_t e = cudaHostRegister(base, bytes, cudaHostRegisterPortable);
    if (e != cudaSuccess) {
      return CudaFail(e == cudaErrorMemoryAllocation ? -ENOMEM : -EIO,
                      "cudaHostRegister of the staging ring", e);
    }
    ring_ = base;
    return {};
  }

  BackendStatus CreateStream(std::unique_ptr<BackendStream>* out) override {
    auto s = std::make_unique<CudaBackendStream>(device_);
    BackendStatus st = s->Start();
    if (st.ok()) *out = std::move(s);
    return st;
  }

 private:
  const int device_;
  void* ring_ = nullptr;
};

bool DriverLoadable() {
  void* h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (h != nullptr) dlclose(h);
  return h != nullptr;
}

// The number of devices, or -ENODEV with what cudaGetDeviceCount said.
int DeviceCount(std::string* why) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    *why = "no usable CUDA device: " + CudaText("cudaGetDeviceCount", e);
    if (e == cudaErrorInsufficientDriver && !DriverLoadable()) {
      // What the runtime says where there is no driver at all: say that instead of "too old".
      *why += "; the driver library libcuda.so.1 cannot be loaded (no NVIDIA driver here?)";
    }
    return -ENODEV;
  }
  if (count == 0) {
    *why = "no usable CUDA device: cudaGetDeviceCount found 0 devices";
    return -ENODEV;
  }
  why->clear();
  return count;
}

}  // namespace

int CudaAvailable(std::string* why) {
  const int n = DeviceCount(why);
  return n < 0 ? n : 1;
}

BackendStatus MakeCudaBackend(std::unique_ptr<Backend>* out) {
  out->reset();
  std::string why;
  if (DeviceCount(&why) < 0) return {-ENODEV, why};
  int device = 0;
  const cudaError_t e = cudaGetDevice(&device);
  if (e != cudaSuccess) return CudaFail(-ENODEV, "cudaGetDevice", e);
  *out = std::make_unique<CudaBackend>(device);
  return {};
}

}  // namespace rankfs::gpu
