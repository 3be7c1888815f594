// BenchDevice: where bench/gpu_bench.cc puts the bytes it reads, so that one timing loop serves
// the CPU ("device" = host memory, copies are memcpy) and a CUDA device (device memory,
// cudaMemcpy/cudaMemcpyAsync on one stream, an event per staging slot). The CUDA calls are the
// bench's own (written here, not through the gpu/ library's backend), so the in-process
// pipeline can be measured on a GPU machine whatever state the library's CUDA backend is in.
// The CUDA variant exists only in builds with RANKFS_HAVE_CUDA.
//
// Thread-safety: CopyAsync, CopySync, RecordSlot and Synchronize are called from one thread
// (the bench's copier); WaitSlot may be called from any thread for a slot whose event that
// thread knows was recorded (the copier recorded it before publishing the slot's next use).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace rankfs::bench {

class BenchDevice {
 public:
  virtual ~BenchDevice() = default;
  // The card's name ("cpu (host memory)" for the CPU).
  virtual std::string Name() const = 0;
  virtual bool IsGpu() const = 0;
  // Device memory of `bytes` (freed with the device); nullptr with *error set on failure.
  virtual void* Alloc(size_t bytes, std::string* error) = 0;
  // Host memory of `bytes` that the device copies from at full speed (pinned); plain memory
  // on the CPU. Freed with the device.
  virtual void* AllocPinned(size_t bytes, std::string* error) = 0;
  // The staging ring: page-aligned host memory of `bytes`, pinned (cudaHostRegister, as a
  // ring in a memfd would be), with `slots` slot events. Once per device; freed with it.
  virtual void* AllocRing(size_t bytes, uint32_t slots, std::string* error) = 0;
  // Queues a host-to-device copy (CPU: copies at once).
  virtual bool CopyAsync(void* dst, const void* src, size_t n, std::string* error) = 0;
  // After the copies of a slot were queued: records the slot's event.
  virtual bool RecordSlot(uint32_t slot, std::string* error) = 0;
  // Returns once the copies queued before the slot's last RecordSlot have run.
  virtual bool WaitSlot(uint32_t slot, std::string* error) = 0;
  // A synchronous copy from any host memory (pageable or pinned), as cudaMemcpy.
  virtual bool CopySync(void* dst, const void* src, size_t n, std::string* error) = 0;
  // Returns once every queued copy has run.
  virtual bool Synchronize(std::string* error) = 0;
};

// The CPU device: always available.
std::unique_ptr<BenchDevice> MakeCpuDevice();
// The first CUDA device; nullptr with *why when the build has no CUDA or no device answers.
std::unique_ptr<BenchDevice> MakeCudaDevice(std::string* why);
// The device --device names ("cpu" or "cuda"), or null after saying on stderr, prefixed with
// `who`, why a CUDA device cannot be had.
std::unique_ptr<BenchDevice> MakeDevice(const std::string& kind, const char* who);

}  // namespace rankfs::bench
