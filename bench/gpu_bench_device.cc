#include "bench/gpu_bench_device.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#ifdef RANKFS_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace rankfs::bench {
namespace {

// Host memory stands for the device: every copy is a memcpy done at once, so a slot is free
// as soon as its copy was issued.
class CpuDevice : public BenchDevice {
 public:
  ~CpuDevice() override {
    for (void* p : owned_) std::free(p);
  }
  std::string Name() const override { return "cpu (host memory)"; }
  bool IsGpu() const override { return false; }
  void* Alloc(size_t bytes, std::string* error) override {
    void* p = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
    if (p == nullptr) {
      *error = "out of memory";
      return nullptr;
    }
    std::memset(p, 0, bytes);  // fault it in: page faults are no part of a copy's cost
    owned_.push_back(p);
    return p;
  }
  void* AllocPinned(size_t bytes, std::string* error) override { return Alloc(bytes, error); }
  void* AllocRing(size_t bytes, uint32_t, std::string* error) override {
    return Alloc(bytes, error);
  }
  bool CopyAsync(void* dst, const void* src, size_t n, std::string*) override {
    std::memcpy(dst, src, n);
    return true;
  }
  bool RecordSlot(uint32_t, std::string*) override { return true; }
  bool WaitSlot(uint32_t, std::string*) override { return true; }
  bool CopySync(void* dst, const void* src, size_t n, std::string*) override {
    std::memcpy(dst, src, n);
    return true;
  }
  bool Synchronize(std::string*) override { return true; }

 private:
  std::vector<void*> owned_;
};

#ifdef RANKFS_HAVE_CUDA

bool Check(cudaError_t e, const char* what, std::string* error) {
  if (e == cudaSuccess) return true;
  *error = std::string(what) + ": " + cudaGetErrorString(e);
  return false;
}

// One stream for every copy; one event per ring slot, recorded after the slot's copy, so that
// the slot is refilled only once its bytes have left it.
class CudaDevice : public BenchDevice {
 public:
  ~CudaDevice() override {
    cudaStreamSynchronize(stream_);
    for (cudaEvent_t e : events_) {
      if (e != nullptr) cudaEventDestroy(e);
    }
    if (ring_ != nullptr) {
      cudaHostUnregister(ring_);
      std::free(ring_);
    }
    for (void* p : device_) cudaFree(p);
    for (void* p : pinned_) cudaFreeHost(p);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  bool Init(std::string* why) {
    int count = 0;
    if (!Check(cudaGetDeviceCount(&count), "cudaGetDeviceCount", why)) return false;
    if (count == 0) {
      *why = "no CUDA device";
      return false;
    }
    cudaDeviceProp prop{};
    if (!Check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties", why)) return false;
    name_ = prop.name;
    return Check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate",
                 why);
  }
  std::string Name() const override { return name_; }
  bool IsGpu() const override { return true; }
  void* Alloc(size_t bytes, std::string* error) override {
    void* p = nullptr;
    if (!Check(cudaMalloc(&p, bytes), "cudaMalloc", error)) return nullptr;
    device_.push_back(p);
    return p;
  }
  void* AllocPinned(size_t bytes, std::string* error) override {
    void* p = nullptr;
    if (!Check(cudaMallocHost(&p, bytes), "cudaMallocHost", error)) return nullptr;
    pinned_.push_back(p);
    return p;
  }
  void* AllocRing(size_t bytes, uint32_t slots, std::string* error) override {
    if (ring_ != nullptr) {
      *error = "one ring per device";
      return nullptr;
    }
    void* base = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
    if (base == nullptr) {
      *error = "out of memory";
      return nullptr;
    }
    std::memset(base, 0, bytes);
    if (!Check(cudaHostRegister(base, bytes, cudaHostRegisterDefault), "cudaHostRegister",
               error)) {
      std::free(base);
      return nullptr;
    }
    ring_ = base;
    events_.resize(slots, nullptr);
    for (cudaEvent_t& e : events_) {
      if (!Check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate", error))
        return nullptr;
    }
    return base;
  }
  bool CopyAsync(void* dst, const void* src, size_t n, std::string* error) override {
    return Check(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync",
                 error);
  }
  bool RecordSlot(uint32_t slot, std::string* error) override {
    return Check(cudaEventRecord(events_.at(slot), stream_), "cudaEventRecord", error);
  }
  bool WaitSlot(uint32_t slot, std::string* error) override {
    return Check(cudaEventSynchronize(events_.at(slot)), "cudaEventSynchronize", error);
  }
  bool CopySync(void* dst, const void* src, size_t n, std::string* error) override {
    return Check(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice), "cudaMemcpy", error);
  }
  bool Synchronize(std::string* error) override {
    return Check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize", error);
  }

 private:
  std::string name_;
  cudaStream_t stream_ = nullptr;
  std::vector<cudaEvent_t> events_;
  void* ring_ = nullptr;
  std::vector<void*> device_;
  std::vector<void*> pinned_;
};

#endif  // RANKFS_HAVE_CUDA

}  // namespace

std::unique_ptr<BenchDevice> MakeCpuDevice() { return std::make_unique<CpuDevice>(); }

std::unique_ptr<BenchDevice> MakeCudaDevice(std::string* why) {
#ifdef RANKFS_HAVE_CUDA
  auto d = std::make_unique<CudaDevice>();
  if (!d->Init(why)) return nullptr;
  return d;
#else
  *why = "this build has no CUDA (nvcc was not found at configure time)";
  return nullptr;
#endif
}

std::unique_ptr<BenchDevice> MakeDevice(const std::string& kind, const char* who) {
  if (kind != "cuda") return MakeCpuDevice();
  std::string why;
  std::unique_ptr<BenchDevice> dev = MakeCudaDevice(&why);
  if (!dev) std::fprintf(stderr, "%s: --device cuda: %s\n", who, why.c_str());
  return dev;
}

}  // namespace rankfs::bench
