// The CUDA backend of the GPU staging client (docs/gpu.md "CUDA backend"). Built wherever the
// CUDA toolkit was found.
// - CudaBackendOpensOrSaysWhyNot runs everywhere (CTest label integration): on a machine
//   without a device or driver, opening the CUDA backend on a real mount fails with -ENODEV and
//   says what cudaGetDeviceCount answered; with a device it opens and reads.
// - The other tests need a device (label gpu; bench/gpu_check.sh runs them on a GPU machine)
//   and skip saying why without one: the backend's contract (tests/testutil/
//   gpu_backend_contract.h) into device memory, and reads through a real mount into
//   cudaMalloc'd memory, copied back and compared byte for byte with pread.
#include <cuda_runtime_api.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gpu/backend.h"
#include "gpu/include/rankfs_gpu.h"
#include "tests/testutil/gpu_backend_contract.h"
#include "tests/testutil/gpu_staging_fixture.h"
#include "tests/testutil/mount_test.h"

namespace rankfs {
namespace {

constexpr uint32_t kSlots = 4;
constexpr uint64_t kSlotBytes = 64 << 10;

void WriteFile(const std::string& path, const std::string& data, off_t at = 0) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  ASSERT_EQ(pwrite(fd, data.data(), data.size(), at), ssize_t(data.size())) << strerror(errno);
  ASSERT_EQ(close(fd), 0);
}

gpu::Memory DeviceMemory() {
  return {[](size_t n) -> void* {
            void* p = nullptr;
            return cudaMalloc(&p, n) == cudaSuccess ? p : nullptr;
          },
          [](void* p) { cudaFree(p); },
          [](void* host, const void* dst, size_t n) {
            ASSERT_EQ(cudaMemcpy(host, dst, n, cudaMemcpyDeviceToHost), cudaSuccess);
          }};
}

// Skips the test (saying why) where the CUDA backend cannot run.
#define REQUIRE_CUDA_DEVICE()                                                   \
  do {                                                                          \
    if (rankfs_gpu_backend_available(RANKFS_GPU_BACKEND_CUDA) != 1) {           \
      GTEST_SKIP() << "needs a CUDA device: " << rankfs_gpu_last_error();       \
    }                                                                           \
  } while (0)

class GpuCudaTest : public MountTest {
 protected:
  void TearDown() override {
    if (ctx_ != nullptr) rankfs_gpu_close(ctx_);
    ctx_ = nullptr;
    if (fs_ != nullptr) Unmount();
  }

  int OpenCuda() {
    rankfs_gpu_options o{kSlots, kSlotBytes, RANKFS_GPU_BACKEND_CUDA, 0};
    return rankfs_gpu_open(mnt_.c_str(), &o, &ctx_);
  }

  // Random (offset, length) reads of `path` through the CUDA backend into device memory (or
  // pageable host memory when `host_dst`), each compared with pread through the mount; some
  // reach past the end of the file. Half use read + synchronize, half submit + wait.
  void CompareRandomReads(const std::string& path, int reads, uint32_t seed,
                          bool host_dst = false) {
    int fd = open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
    const off_t size = lseek(fd, 0, SEEK_END);
    rankfs_gpu_file file = rankfs_gpu_register(ctx_, fd);
    ASSERT_GT(file, 0) << rankfs_gpu_last_error();
    rankfs_gpu_stream* stream = nullptr;
    ASSERT_EQ(rankfs_gpu_stream_create(ctx_, &stream), 0) << rankfs_gpu_last_error();
    EXPECT_NE(rankfs_gpu_stream_native(ctx_, stream), nullptr);
    const size_t max_len = 5 * kSlotBytes;
    std::vector<char> host_buffer(host_dst ? max_len : 0);
    void* dst = host_buffer.data();
    if (!host_dst) {
      ASSERT_EQ(cudaMalloc(&dst, max_len), cudaSuccess);
    }
    std::mt19937_64 rng(seed);
    for (int i = 0; i < reads; ++i) {
      const uint64_t off = rng() % uint64_t(size + 1000);
      const uint64_t len = rng() % (i % 4 == 0 ? max_len : 9000);
      std::string want(len, '\0');
      const ssize_t got = pread(fd, want.data(), len, off_t(off));
      ASSERT_GE(got, 0);
      want.resize(size_t(got));
      if (host_dst) {
        std::memset(dst, 0x5a, max_len);
      } else {
        ASSERT_EQ(cudaMemset(dst, 0x5a, max_len), cudaSuccess);
      }
      int64_t n;
      if (i % 2 == 0) {
        n = rankfs_gpu_read(ctx_, file, off, len, dst, stream);
        ASSERT_EQ(rankfs_gpu_stream_synchronize(stream), 0) << rankfs_gpu_last_error();
      } else {
        rankfs_gpu_ticket t = 0;
        ASSERT_EQ(rankfs_gpu_submit(ctx_, file, off, len, dst, stream, &t), 0);
        n = rankfs_gpu_wait(ctx_, t);
      }
      ASSERT_EQ(n, got) << "read " << i << " at " << off << "+" << len << ": "
                        << rankfs_gpu_last_error();
      std::string have(size_t(n), '\0');
      ASSERT_EQ(cudaMemcpy(have.data(), dst, size_t(n), cudaMemcpyDefault), cudaSuccess);
      ASSERT_TRUE(have == want) << "read " << i << " at " << off << "+" << len;
    }
    if (!host_dst) cudaFree(dst);
    rankfs_gpu_stream_destroy(stream);
    EXPECT_EQ(rankfs_gpu_unregister(ctx_, file), 0);
    close(fd);
  }

  rankfs_gpu_ctx* ctx_ = nullptr;
};

TEST_F(GpuCudaTest, CudaBackendOpensOrSaysWhyNot) {
  Mount();
  WriteFile(mnt_ + "/f", GpuTextData(100000, 1));
  const int available = rankfs_gpu_backend_available(RANKFS_GPU_BACKEND_CUDA);
  const std::string why = rankfs_gpu_last_error();
  const int opened = OpenCuda();
  if (available == 1) {
    ASSERT_EQ(opened, 0) << rankfs_gpu_last_error();
    CompareRandomReads(mnt_ + "/f", 4, 2);
    return;
  }
  EXPECT_EQ(available, -ENODEV) << why;
  EXPECT_EQ(opened, -ENODEV);
  EXPECT_EQ(ctx_, nullptr);
  const std::string message = rankfs_gpu_last_error();
  EXPECT_NE(message.find("cudaGetDeviceCount"), std::string::npos) << message;
  EXPECT_EQ(message, why);
  // The CPU backend of the same library still works on the same mount.
  rankfs_gpu_options o{kSlots, kSlotBytes, RANKFS_GPU_BACKEND_CPU, 0};
  ASSERT_EQ(rankfs_gpu_open(mnt_.c_str(), &o, &ctx_), 0) << rankfs_gpu_last_error();
}

// No mount: the backend alone, on a device.
TEST(GpuCudaBackendTest, SlotsAreReusedOnlyAfterTheirCopy) {
  REQUIRE_CUDA_DEVICE();
  std::unique_ptr<gpu::Backend> backend;
  gpu::BackendStatus s = gpu::MakeCudaBackend(&backend);
  ASSERT_TRUE(s.ok()) << s.message;
  gpu::CheckSlotsAreReusedOnlyAfterTheirCopy(std::move(backend), DeviceMemory());
}

TEST(GpuCudaBackendTest, CompletionsRunInOrder) {
  REQUIRE_CUDA_DEVICE();
  std::unique_ptr<gpu::Backend> backend;
  gpu::BackendStatus s = gpu::MakeCudaBackend(&backend);
  ASSERT_TRUE(s.ok()) << s.message;
  gpu::CheckCompletionsRunInOrder(backend.get(), DeviceMemory());
}

TEST_F(GpuCudaTest, ReadsMatchPreadForCompressedSharedAndSparseData) {
  REQUIRE_CUDA_DEVICE();
  Mount();
  const std::string data = GpuTextData(3 << 20, 3);
  WriteFile(mnt_ + "/a", data);
  WriteFile(mnt_ + "/b", data);  // shares every chunk of a
  WriteFile(mnt_ + "/sparse", GpuTextData(100000, 4), 1 << 20);
  WriteFile(mnt_ + "/sparse", GpuTextData(5000, 5), 3 << 20);
  ASSERT_EQ(truncate((mnt_ + "/sparse").c_str(), (4 << 20) + 123), 0);
  sync();
  ASSERT_EQ(OpenCuda(), 0) << rankfs_gpu_last_error();
  CompareRandomReads(mnt_ + "/a", 30, 11);
  CompareRandomReads(mnt_ + "/b", 30, 12);
  CompareRandomReads(mnt_ + "/sparse", 30, 13);
  CompareRandomReads(mnt_ + "/a", 10, 14, /*host_dst=*/true);  // cudaMemcpyDefault to host
}

TEST_F(GpuCudaTest, ReadsMatchPreadUncompressedAndDirty) {
  REQUIRE_CUDA_DEVICE();
  Mount("compress=0");
  WriteFile(mnt_ + "/raw", GpuTextData(1 << 20, 6));
  int dirty = open((mnt_ + "/dirty").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(dirty, 0);
  const std::string d = GpuTextData(1 << 20, 7);
  ASSERT_EQ(pwrite(dirty, d.data(), d.size(), 0), ssize_t(d.size()));  // left open, unflushed
  ASSERT_EQ(OpenCuda(), 0) << rankfs_gpu_last_error();
  CompareRandomReads(mnt_ + "/raw", 30, 15);
  CompareRandomReads(mnt_ + "/dirty", 30, 16);
  close(dirty);
}

}  // namespace
}  // namespace rankfs
