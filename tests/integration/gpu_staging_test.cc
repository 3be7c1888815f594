// The GPU staging path against a real mount (docs/gpu.md): reads through the client library
// (CPU backend) must give the bytes pread gives through the mount, for every kind of data;
// the daemon refuses what it must; a client killed mid-request costs the daemon nothing.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "gpu/include/rankfs_gpu.h"
#include "gpu/protocol.h"
#include "tests/testutil/mount_test.h"
#include "tests/testutil/wait_until.h"

namespace rankfs {
namespace {

constexpr uint32_t kSlots = 4;
constexpr uint64_t kSlotBytes = 64 << 10;

// Compressible but not trivially so: words from a small vocabulary, seeded.
std::string TextData(size_t n, uint32_t seed) {
  static const char* kWords[] = {"token ", "arrow ", "rank ", "chunk ", "42 ", "batch\n"};
  std::mt19937 rng(seed);
  std::string s;
  while (s.size() < n) s += kWords[rng() % 6];
  s.resize(n);
  return s;
}

int OpenOrDie(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags, 0644);
  EXPECT_GE(fd, 0) << path << ": " << strerror(errno);
  return fd;
}

void WriteAll(int fd, const std::string& data, off_t at) {
  ASSERT_EQ(pwrite(fd, data.data(), data.size(), at), ssize_t(data.size())) << strerror(errno);
}

class GpuStagingTest : public MountTest {
 protected:
  // The daemon must end cleanly (exit status 0) whatever its clients did.
  void TearDown() override {
    if (ctx_ != nullptr) rankfs_gpu_close(ctx_);
    ctx_ = nullptr;
    if (fs_ != nullptr) Unmount();
  }

  void OpenContext(uint32_t delay_us = 100) {
    rankfs_gpu_options o{kSlots, kSlotBytes, RANKFS_GPU_BACKEND_CPU, delay_us};
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
      const uint64_t len = rng() % (i % 4 == 0 ? 5 * kSlotBytes : 9000);
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

TEST_F(GpuStagingTest, ReadsMatchPreadForCompressedSharedAndSparseData) {
  Mount();
  const std::string data = TextData(3 << 20, 1);
  for (const char* name : {"a", "b"}) {  // b shares every chunk of a
    int fd = OpenOrDie(mnt_ + "/" + name, O_CREAT | O_WRONLY | O_TRUNC);
    WriteAll(fd, data, 0);
    ASSERT_EQ(close(fd), 0);
  }
  int fd = OpenOrDie(mnt_ + "/sparse", O_CREAT | O_WRONLY | O_TRUNC);
  WriteAll(fd, TextData(100000, 2), 1 << 20);
  WriteAll(fd, TextData(5000, 3), 3 << 20);
  ASSERT_EQ(ftruncate(fd, (4 << 20) + 123), 0);
  ASSERT_EQ(close(fd), 0);
  sync();
  OpenContext();
  CompareRandomReads(mnt_ + "/a", 40, 11);
  CompareRandomReads(mnt_ + "/b", 40, 12);
  CompareRandomReads(mnt_ + "/sparse", 40, 13);
}

TEST_F(GpuStagingTest, ReadsMatchPreadUncompressed) {
  Mount("compress=0");
  int fd = OpenOrDie(mnt_ + "/raw", O_CREAT | O_WRONLY | O_TRUNC);
  WriteAll(fd, TextData(1 << 20, 4), 0);
  ASSERT_EQ(close(fd), 0);
  OpenContext();
  CompareRandomReads(mnt_ + "/raw", 40, 14);
}

// Written and not flushed: in the kernel's writeback cache, or buffered in the daemon.
TEST_F(GpuStagingTest, ReadsSeeStillDirtyData) {
  Mount();
  int fd = OpenOrDie(mnt_ + "/dirty", O_CREAT | O_RDWR | O_TRUNC);
  WriteAll(fd, TextData(1 << 20, 5), 0);
  OpenContext();
  CompareRandomReadsOn(fd, 20, 15);
  WriteAll(fd, std::string(70000, 'Z'), 300000);  // over bytes already read once
  CompareRandomReadsOn(fd, 20, 16);
  ASSERT_EQ(close(fd), 0);
}

// Speaks the protocol directly, for what the library itself never sends.
class RawClient {
 public:
  explicit RawClient(const std::string& mountpoint) {
    std::ifstream stats(mountpoint + "/.rankfs-stats");
    std::string name;
    for (std::string line; std::getline(stats, line);) {
      if (line.rfind("gpu_socket=@", 0) == 0) name = line.substr(11);
    }
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

  // Sends `r` with `fd`; returns the reply's value, and its text in *message.
  int64_t Call(const gpu::Request& r, int fd, std::string* message) {
    EXPECT_TRUE(gpu::SendRequest(fd_, r, fd)) << strerror(errno);
    char buf[gpu::kMaxReplyBytes];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    gpu::WireReply reply{};
    EXPECT_GE(n, ssize_t(sizeof reply));
    if (n < ssize_t(sizeof reply)) return 0;
    std::memcpy(&reply, buf, sizeof reply);
    message->assign(buf + sizeof reply, size_t(n) - sizeof reply);
    return reply.value;
  }

 private:
  int fd_ = -1;
};

TEST_F(GpuStagingTest, RefusesWhatItMust) {
  Mount();
  int fd = OpenOrDie(mnt_ + "/f", O_CREAT | O_WRONLY | O_TRUNC);
  WriteAll(fd, TextData(200000, 6), 0);
  OpenContext();

  // Opened write-only: not a capability to read.
  EXPECT_EQ(rankfs_gpu_register(ctx_, fd), -EBADF);
  EXPECT_NE(std::string(rankfs_gpu_last_error()).find("not open for reading"), std::string::npos)
      << rankfs_gpu_last_error();
  ASSERT_EQ(close(fd), 0);

  // Another filesystem's file.
  const std::string outside = tmp_.Join("outside");
  int other = OpenOrDie(outside, O_CREAT | O_RDWR | O_TRUNC);
  EXPECT_EQ(rankfs_gpu_register(ctx_, other), -EXDEV);
  EXPECT_NE(std::string(rankfs_gpu_last_error()).find("not on this rankfs mount"),
            std::string::npos)
      << rankfs_gpu_last_error();
  close(other);

  // A slot out of bounds, and a length over the slot size.
  int rfd = OpenOrDie(mnt_ + "/f", O_RDONLY);
  rankfs_gpu_file file = rankfs_gpu_register(ctx_, rfd);
  ASSERT_GT(file, 0) << rankfs_gpu_last_error();
  EXPECT_EQ(rankfs_gpu_read_slot(ctx_, file, 0, 100, kSlots), -ERANGE);
  EXPECT_STREQ(rankfs_gpu_last_error(), "slot out of bounds");
  EXPECT_EQ(rankfs_gpu_read_slot(ctx_, file, 0, kSlotBytes + 1, 0), -ERANGE);
  EXPECT_EQ(rankfs_gpu_read_slot(ctx_, file + 100, 0, 100, 0), -EBADF);
  // ... and the connection still serves a good request afterwards.
  ASSERT_EQ(rankfs_gpu_read_slot(ctx_, file, 10, 100, kSlots - 1), 100);
  std::string want(100, '\0');
  ASSERT_EQ(pread(rfd, want.data(), 100, 10), 100);
  EXPECT_EQ(std::memcmp(rankfs_gpu_slot(ctx_, kSlots - 1), want.data(), 100), 0);
  close(rfd);

  // A ring the caller could still shrink under the daemon.
  int memfd = memfd_create("unsealed", MFD_CLOEXEC);
  ASSERT_GE(memfd, 0);
  ASSERT_EQ(ftruncate(memfd, 4 * 4096), 0);
  RawClient raw(mnt_);
  std::string message;
  EXPECT_EQ(raw.Call(gpu::Request{gpu::Op::kRing, 1, 0, 4, 0, 4096}, memfd, &message), -EINVAL);
  EXPECT_NE(message.find("F_SEAL_SHRINK"), std::string::npos) << message;
  close(memfd);
}

// The daemon's descriptors that the staging path can hold: sockets and files on the mount.
// (Pack files the store opens for reading come and go with reads; they do not count.)
size_t GpuFds(pid_t pid, const std::string& mnt) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string target = std::filesystem::read_symlink(it->path(), ec).string();
    if (target.rfind("socket:", 0) == 0 || target.rfind(mnt + "/", 0) == 0) ++n;
  }
  return n;
}

TEST_F(GpuStagingTest, ACallerKilledMidRequestCostsNothing) {
  Mount();
  const std::string data = TextData(2 << 20, 7);
  int fd = OpenOrDie(mnt_ + "/f", O_CREAT | O_WRONLY | O_TRUNC);
  WriteAll(fd, data, 0);
  ASSERT_EQ(close(fd), 0);
  const pid_t daemon = fs_->pid();
  const size_t baseline = GpuFds(daemon, mnt_);
  ASSERT_GT(baseline, 0u);

  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Reads forever with no delay, so the kill lands while requests are in flight.
    rankfs_gpu_options o{kSlots, kSlotBytes, RANKFS_GPU_BACKEND_CPU, 0};
    rankfs_gpu_ctx* ctx = nullptr;
    if (rankfs_gpu_open(mnt_.c_str(), &o, &ctx) != 0) _exit(2);
    int rfd = open((mnt_ + "/f").c_str(), O_RDONLY);
    rankfs_gpu_file file = rankfs_gpu_register(ctx, rfd);
    if (file <= 0) _exit(3);
    std::vector<char> buf(1 << 20);
    if (write(ready[1], "x", 1) != 1) _exit(4);
    for (uint64_t i = 0;; ++i) {
      rankfs_gpu_read(ctx, file, (i * 4096) % (1 << 20), buf.size(), buf.data(), nullptr);
    }
  }
  close(ready[1]);
  char x;
  ASSERT_EQ(read(ready[0], &x, 1), 1) << "the child never started reading";
  close(ready[0]);
  EXPECT_GT(GpuFds(daemon, mnt_), baseline) << "the daemon holds the child's socket and file";
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child ended by itself: " << status;

  // The daemon goes on serving another client.
  OpenContext();
  CompareRandomReads(mnt_ + "/f", 20, 17);
  rankfs_gpu_close(ctx_);
  ctx_ = nullptr;
  EXPECT_TRUE(WaitUntil([&] { return GpuFds(daemon, mnt_) == baseline; }))
      << "daemon fds: " << GpuFds(daemon, mnt_) << ", baseline " << baseline;
}

}  // namespace
}  // namespace rankfs
