// The CPU backend (gpu/backend.h): host memory stands for the device and each stream is a
// CpuStream, a FIFO worker with random delays, so that a slot given back before its copy ran
// would show as wrong bytes in the tests.
#include <cerrno>
#include <cstring>

#include "gpu/backend.h"
#include "gpu/cpu_stream.h"

namespace rankfs::gpu {
namespace {

class CpuBackendStream : public BackendStream {
 public:
  explicit CpuBackendStream(uint32_t max_delay_us) : stream_(max_delay_us) {}

  BackendStatus CopyAsync(void* dst, const void* src, uint64_t n, Completion done) override {
    stream_.Enqueue([dst, src, n, done = std::move(done)] {
      std::memcpy(dst, src, n);
      done(BackendStatus{});
    });
    return {};
  }
  BackendStatus Then(Completion done) override {
    stream_.Enqueue([done = std::move(done)] { done(BackendStatus{}); });
    return {};
  }
  BackendStatus Synchronize() override {
    stream_.Synchronize();
    return {};
  }
  void* native() override { return nullptr; }
  BackendStatus WaitForNative(void* other) override {
    if (other == nullptr) return {};
    return {-EINVAL, "the CPU backend has no native streams to wait for"};
  }

 private:
  CpuStream stream_;  // its destructor runs what is queued
};

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(uint32_t max_delay_us) : max_delay_us_(max_delay_us) {}
  BackendStatus RegisterRing(void*, size_t) override { return {}; }
  BackendStatus CreateStream(std::unique_ptr<BackendStream>* out) override {
    *out = std::make_unique<CpuBackendStream>(max_delay_us_);
    return {};
  }

 private:
  const uint32_t max_delay_us_;
};

}  // namespace

std::unique_ptr<Backend> MakeCpuBackend(uint32_t max_delay_us) {
  return std::make_unique<CpuBackend>(max_delay_us);
}

}  // namespace rankfs::gpu
