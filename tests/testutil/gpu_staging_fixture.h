// GpuStagingTest: the fixture of the integration tests of the GPU staging path (docs/gpu.md):
// a MountTest with a client context (CPU backend) and the comparison of staged reads against
// pread through the mount. Also RawClient, which speaks the socket protocol directly for what
// the library never sends. Header-only: the tests that include it link rankfs_gpu.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <string>

#include "gpu/include/rankfs_gpu.h"
#include "gpu/protocol.h"
#include "tests/testutil/mount_test.h"

namespace rankfs {

inline constexpr uint32_t kGpuSlots = 4;
inline constexpr uint64_t kGpuSlotBytes = 64 << 10;

// Compressible but not trivially so: words from a small vocabulary, seeded.
inline std::string GpuTextData(size_t n, uint32_t seed) {
  static const char* kWords[] = {"token ", "arrow ", "rank ", "chunk ", "42 ", "batch\n"};
  std::mt19937 rng(seed);
  std::string s;
  while (s.size() < n) s += kWords[rng() % 6];
  s.resize(n);
  return s;
}

inline int OpenOrDie(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags, 0644);
  EXPECT_GE(fd, 0) << path << ": " << strerror(errno);
  return fd;
}

inline void WriteAll(int fd, const std::string& data, off_t at) {
  ASSERT_EQ(pwrite(fd, data.data(), data.size(), at), ssize_t(data.size())) << strerror(errno);
}

// The gpu_socket name the stats file of the mount at `mnt` advertises ("" when none).
inline std::string GpuSocketName(const std::string& mnt) {
  std::ifstream stats(mnt + "/.rankfs-stats");
  for (std::string line; std::getline(stats, line);) {
    if (line.rfind("gpu_socket=@", 0) == 0) return line.substr(11);
  }
  return "";
}

class GpuStagingTest : public MountTest {
 protected:
  using MountTest::MountTest;

  // The daemon must end cleanly (exit status 0) whatever its clients did.
  void TearDown() override {
    if (ctx_ != nullptr) rankfs_gpu_close(ctx_);
    ctx_ = nullptr;
    if (fs_ != nullptr) Unmount();
  }

  void OpenContext(uint32_t delay_us = 100) {
    rankfs_gpu_options o{kGpuSlots, kGpuSlotBytes, RANKFS_GPU_BACKEND_CPU, delay_us};
    ASSERT_EQ(rankfs_gpu_open(mnt_.c_str(), &o, &ctx_), 0) << rankfs_gpu_last_error();
  }

  // Random (offset, length) reads of `path` through the library, each compared with pread
  // through the mount; some reach past the end of the file.
  void CompareRandomReads(const std::string& path, int reads, uint32_t seed) {
    int fd = OpenOrDie(path, O_RDONLY);
    CompareRandomReadsOn(fd, reads, seed);
    close(fd);
  }
  void CompareRandomReadsOn(int fd, int reads, uint32_t seed) {
    const off_t size = lseek(fd, 0, SEEK_END);
    ASSERT_GT(size, 0);
    rankfs_gpu_file file = rankfs_gpu_register(ctx_, fd);
    ASSERT_GT(file, 0) << rankfs_gpu_last_error();
    rankfs_gpu_stream* stream = nullptr;
    ASSERT_EQ(rankfs_gpu_stream_create(ctx_, &stream), 0);
    std::mt19937_64 rng(seed);
    for (int i = 0; i < reads; ++i) {
      const uint64_t off = rng() % uint64_t(size + 1000);
      const uint64_t len = rng() % (i % 4 == 0 ? 5 * kGpuSlotBytes : 9000);
      std::string want(len, '\0');
      const ssize_t got = pread(fd, want.data(), len, off_t(off));
      ASSERT_GE(got, 0);
      want.resize(size_t(got));
      std::string have(len, '\x5a');
      int64_t n;
      if (i % 2 == 0) {
        n = rankfs_gpu_read(ctx_, file, off, len, have.data(), stream);
        ASSERT_EQ(rankfs_gpu_stream_synchronize(stream), 0);
      } else {
        rankfs_gpu_ticket t = 0;
        ASSERT_EQ(rankfs_gpu_submit(ctx_, file, off, len, have.data(), stream, &t), 0);
        n = rankfs_gpu_wait(ctx_, t);
      }
      ASSERT_EQ(n, got) << "read " << i << " at " << off << "+" << len << ": "
                        << rankfs_gpu_last_error();
      have.resize(size_t(n));
      ASSERT_TRUE(have == want) << "read " << i << " at " << off << "+" << len;
    }
    rankfs_gpu_stream_destroy(stream);
    EXPECT_EQ(rankfs_gpu_unregister(ctx_, file), 0);
  }

  rankfs_gpu_ctx* ctx_ = nullptr;
};

// Speaks the protocol directly, for what the library itself never sends.
class RawClient {
 public:
  explicit RawClient(const std::string& mountpoint) {
    const std::string name = GpuSocketName(mountpoint);
    EXPECT_FALSE(name.empty()) << "no gpu_socket line in the stats file";
    fd_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name.data() + 1, name.size() - 1);
    EXPECT_EQ(connect(fd_, reinterpret_cast<sockaddr*>(&addr),
                      socklen_t(offsetof(sockaddr_un, sun_path) + name.size())),
              0)
        << strerror(errno);
  }
  ~RawClient() { close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  // Sends `r` with `fd`; returns the reply's value, and its text in *message.
  int64_t Call(const gpu::Request& r, int fd, std::string* message) {
    EXPECT_TRUE(Send(r, fd)) << strerror(errno);
    gpu::WireReply reply{};
    EXPECT_TRUE(Receive(&reply, message)) << "no reply";
    return reply.value;
  }

  // Makes sends fail with EAGAIN instead of waiting when the socket is full.
  void SetNonBlocking() { ASSERT_EQ(fcntl(fd_, F_SETFL, O_NONBLOCK), 0) << strerror(errno); }
  // Sends without waiting for the reply (several requests in flight).
  bool Send(const gpu::Request& r, int fd = -1) { return gpu::SendRequest(fd_, r, fd); }
  // Sends raw bytes as one message (what no encoder would produce).
  bool SendBytes(const void* bytes, size_t n) {
    return send(fd_, bytes, n, MSG_NOSIGNAL) == ssize_t(n);
  }
  // Receives the next reply; false when the daemon closed the connection (or sent less than
  // a reply).
  // On a non-blocking socket it waits up to 10 s for the reply.
  bool Receive(gpu::WireReply* reply, std::string* message) {
    char buf[gpu::kMaxReplyBytes];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    while (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      if (errno == EAGAIN) {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, 10000) != 1) return false;
      }
      n = recv(fd_, buf, sizeof buf, 0);
    }
    if (n < ssize_t(sizeof *reply)) return false;
    std::memcpy(reply, buf, sizeof *reply);
    message->assign(buf + sizeof *reply, size_t(n) - sizeof *reply);
    return true;
  }

 private:
  int fd_ = -1;
};

}  // namespace rankfs
