// The backend seam of the GPU staging client (gpu/backend.h): the CPU backend against the
// contract every backend keeps (tests/testutil/gpu_backend_contract.h), and what
// rankfs_gpu_backend_available answers. The CUDA backend's contract runs on a device in
// tests/gpu/gpu_cuda_test.cc.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "gpu/backend.h"
#include "gpu/include/rankfs_gpu.h"
#include "tests/testutil/gpu_backend_contract.h"

namespace rankfs::gpu {
namespace {

Memory HostMemory() {
  return {[](size_t n) { return std::malloc(n); }, [](void* p) { std::free(p); },
          [](void* host, const void* dst, size_t n) { std::memcpy(host, dst, n); }};
}

TEST(GpuBackendTest, CpuSlotsAreReusedOnlyAfterTheirCopy) {
  CheckSlotsAreReusedOnlyAfterTheirCopy(MakeCpuBackend(200), HostMemory());
}

TEST(GpuBackendTest, CpuCompletionsRunInOrder) {
  std::unique_ptr<Backend> backend = MakeCpuBackend(50);
  CheckCompletionsRunInOrder(backend.get(), HostMemory());
}

TEST(GpuBackendTest, CpuHasNoNativeStream) {
  std::unique_ptr<Backend> backend = MakeCpuBackend(0);
  std::unique_ptr<BackendStream> stream;
  ASSERT_TRUE(backend->CreateStream(&stream).ok());
  EXPECT_EQ(stream->native(), nullptr);
  EXPECT_TRUE(stream->WaitForNative(nullptr).ok());
  BackendStatus s = stream->WaitForNative(reinterpret_cast<void*>(1));
  EXPECT_EQ(s.err, -EINVAL);
  EXPECT_NE(s.message.find("no native streams"), std::string::npos) << s.message;
}

TEST(GpuBackendTest, AvailabilityIsConsistentWithOpening) {
  EXPECT_EQ(rankfs_gpu_backend_available(RANKFS_GPU_BACKEND_CPU), 1);
  EXPECT_EQ(rankfs_gpu_backend_available(rankfs_gpu_backend(7)), -EINVAL);
  EXPECT_NE(std::string(rankfs_gpu_last_error()).find("unknown backend"), std::string::npos);

  // CUDA: whatever this build and machine have, availability and opening agree, and a "no"
  // always says why.
  const int cuda = rankfs_gpu_backend_available(RANKFS_GPU_BACKEND_CUDA);
  const std::string why = rankfs_gpu_last_error();
  std::unique_ptr<Backend> backend;
  const BackendStatus made = MakeCudaBackend(&backend);
  switch (cuda) {
    case 1:
      EXPECT_TRUE(made.ok()) << made.message;
      EXPECT_NE(backend, nullptr);
      break;
    case 0:
      EXPECT_EQ(made.err, -ENOTSUP);
      EXPECT_NE(why.find("not built"), std::string::npos) << why;
      break;
    case -ENODEV:
      EXPECT_EQ(made.err, -ENODEV);
      EXPECT_NE(why.find("cudaGetDeviceCount"), std::string::npos) << why;
      EXPECT_EQ(made.message, why);
      break;
    default:
      ADD_FAILURE() << "rankfs_gpu_backend_available(CUDA) = " << cuda << ": " << why;
  }
}

}  // namespace
}  // namespace rankfs::gpu
