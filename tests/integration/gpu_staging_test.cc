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

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/testutil/gpu_staging_fixture.h"
#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/wait_until.h"

namespace rankfs {
namespace {

constexpr uint32_t kSlots = kGpuSlots;
constexpr uint64_t kSlotBytes = kGpuSlotBytes;

// Writes `data` as the files a and b of the mount.
void WriteTwoCopies(const std::string& mnt, const std::string& data) {
  for (const char* name : {"a", "b"}) {
    int fd = OpenOrDie(mnt + "/" + name, O_CREAT | O_WRONLY | O_TRUNC);
    WriteAll(fd, data, 0);
    ASSERT_EQ(close(fd), 0);
  }
}

TEST_F(GpuStagingTest, ReadsMatchPreadForCompressedSharedAndSparseData) {
  Mount();
  const std::string data = GpuTextData(3 << 20, 1);
  ASSERT_NO_FATAL_FAILURE(WriteTwoCopies(mnt_, data));  // b shares every chunk of a
  int fd = OpenOrDie(mnt_ + "/sparse", O_CREAT | O_WRONLY | O_TRUNC);
  WriteAll(fd, GpuTextData(100000, 2), 1 << 20);
  WriteAll(fd, GpuTextData(5000, 3), 3 << 20);
  ASSERT_EQ(ftruncate(fd, (4 << 20) + 123), 0);
  ASSERT_EQ(close(fd), 0);
  sync();
  OpenContext();
  CompareRandomReads(mnt_ + "/a", 40, 11);
  CompareRandomReads(mnt_ + "/b", 40, 12);
  CompareRandomReads(mnt_ + "/sparse", 40, 13);
}

// A chunk decompressed straight into a slot is kept in the chunk cache only when other
// references hold it and another client is connected (fs/stage_read.cc): a lone client pays no
// copy into the cache; ranks staging copies share each decompression.
TEST_F(GpuStagingTest, SharedChunksAreCachedOnlyWhileAnotherClientIsConnected) {
  Mount();
  const std::string data = GpuTextData(2 << 20, 5);
  ASSERT_NO_FATAL_FAILURE(WriteTwoCopies(mnt_, data));  // b shares every chunk of a
  sync();
  Unmount();
  Mount();  // a fresh daemon: the writers' chunks are not in its cache
  auto cache_bytes = [&] {
    std::ifstream stats(mnt_ + "/.rankfs-stats");
    for (std::string line; std::getline(stats, line);) {
      if (line.rfind("chunk_cache_bytes=", 0) == 0) return std::stoull(line.substr(18));
    }
    ADD_FAILURE() << "no chunk_cache_bytes line in the stats file";
    return 0ull;
  };
  // The whole file in one request (one slot holds it): every chunk whole, straight into it.
  auto stage = [&](rankfs_gpu_ctx* ctx, const char* name) {
    int fd = OpenOrDie(mnt_ + "/" + name, O_RDONLY);
    rankfs_gpu_file file = rankfs_gpu_register(ctx, fd);
    EXPECT_GT(file, 0) << rankfs_gpu_last_error();
    std::string have(data.size(), '\x5a');
    rankfs_gpu_ticket t = 0;
    EXPECT_EQ(rankfs_gpu_submit(ctx, file, 0, data.size(), have.data(), nullptr, &t), 0);
    EXPECT_EQ(rankfs_gpu_wait(ctx, t), int64_t(data.size())) << rankfs_gpu_last_error();
    EXPECT_TRUE(have == data) << name;
    EXPECT_EQ(rankfs_gpu_unregister(ctx, file), 0);
    close(fd);
  };
  const rankfs_gpu_options o{2, 4 << 20, RANKFS_GPU_BACKEND_CPU, 0};
  rankfs_gpu_ctx* one = nullptr;
  ASSERT_EQ(rankfs_gpu_open(mnt_.c_str(), &o, &one), 0) << rankfs_gpu_last_error();
  stage(one, "a");
  EXPECT_EQ(cache_bytes(), 0u) << "one client kept chunks no one else reads";
  rankfs_gpu_ctx* two = nullptr;
  ASSERT_EQ(rankfs_gpu_open(mnt_.c_str(), &o, &two), 0) << rankfs_gpu_last_error();
  stage(one, "a");  // decompressed again, and kept for the other client
  EXPECT_GT(cache_bytes(), data.size() * 9 / 10);
  stage(two, "b");
  rankfs_gpu_close(two);
  rankfs_gpu_close(one);
}

TEST_F(GpuStagingTest, ReadsMatchPreadUncompressed) {
  Mount("compress=0");
  int fd = OpenOrDie(mnt_ + "/raw", O_CREAT | O_WRONLY | O_TRUNC);
  WriteAll(fd, GpuTextData(1 << 20, 4), 0);
  ASSERT_EQ(close(fd), 0);
  OpenContext();
  CompareRandomReads(mnt_ + "/raw", 40, 14);
}

// Written and not flushed: in the kernel's writeback cache, or buffered in the daemon.
TEST_F(GpuStagingTest, ReadsSeeStillDirtyData) {
  Mount();
  int fd = OpenOrDie(mnt_ + "/dirty", O_CREAT | O_RDWR | O_TRUNC);
  WriteAll(fd, GpuTextData(1 << 20, 5), 0);
  OpenContext();
  CompareRandomReadsOn(fd, 20, 15);
  WriteAll(fd, std::string(70000, 'Z'), 300000);  // over bytes already read once
  CompareRandomReadsOn(fd, 20, 16);
  ASSERT_EQ(close(fd), 0);
}

TEST_F(GpuStagingTest, RefusesWhatItMust) {
  Mount();
  int fd = OpenOrDie(mnt_ + "/f", O_CREAT | O_WRONLY | O_TRUNC);
  WriteAll(fd, GpuTextData(200000, 6), 0);
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

// The daemon's threads that serve GPU staging clients (named "gpu-client", fs/gpu_server.cc),
// or that stage their reads ("gpu-stage").
size_t ClientThreads(pid_t pid, const std::string& kind = "gpu-client") {
  size_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::ifstream comm(it->path() / "comm");
    std::string name;
    if (std::getline(comm, name) && name == kind) ++n;
  }
  return n;
}

// Bytes of the daemon's address space mapped from memfds: the clients' rings.
uint64_t RingBytes(pid_t pid) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  uint64_t bytes = 0;
  for (std::string line; std::getline(maps, line);) {
    if (line.find("/memfd:") == std::string::npos) continue;
    unsigned long long start = 0, end = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx", &start, &end) == 2) bytes += end - start;
  }
  return bytes;
}

TEST_F(GpuStagingTest, ACallerKilledMidRequestCostsNothing) {
  Mount();
  const std::string data = GpuTextData(2 << 20, 7);
  int fd = OpenOrDie(mnt_ + "/f", O_CREAT | O_WRONLY | O_TRUNC);
  WriteAll(fd, data, 0);
  ASSERT_EQ(close(fd), 0);
  const pid_t daemon = fs_->pid();
  const size_t baseline = GpuFds(daemon, mnt_);
  ASSERT_GT(baseline, 0u);
  const uint64_t ring_bytes = RingBytes(daemon);
  ASSERT_EQ(ClientThreads(daemon), 0u);

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
  EXPECT_EQ(ClientThreads(daemon), 1u) << "a daemon thread serves the child";
  EXPECT_EQ(RingBytes(daemon), ring_bytes + kSlots * kSlotBytes) << "the child's ring is mapped";
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
  // The client threads end and the rings are unmapped (threads are joined when the next
  // client connects or at unmount, but a finished thread leaves /proc/PID/task at once).
  EXPECT_TRUE(WaitUntil([&] { return ClientThreads(daemon) == 0; }))
      << "client threads left: " << ClientThreads(daemon);
  EXPECT_TRUE(WaitUntil([&] { return ClientThreads(daemon, "gpu-stage") == 0; }))
      << "staging threads left: " << ClientThreads(daemon, "gpu-stage");
  EXPECT_EQ(RingBytes(daemon), ring_bytes) << "a ring is still mapped in the daemon";
}

// The daemon stages one client's reads on several threads (when it has more than one CPU) and
// still answers in request order, whichever read finishes first: reads of random lengths (one
// byte to a whole slot, cold and cached) complete out of order. A Register/Unregister after
// reads is answered after them and sees them done; an undecodable request is answered after
// the reads before it, and then the connection is closed.
TEST_F(GpuStagingTest, RepliesGoOutInRequestOrderWhileReadsRunConcurrently) {
  // Each Read request is held 2 ms before it is served (fs/daemon.cc's test knob), so that
  // two staging threads are seen serving at once even on a loaded machine.
  setenv("RANKFS_TEST_STAGE_DELAY_US", "2000", 1);
  Mount();
  unsetenv("RANKFS_TEST_STAGE_DELAY_US");
  constexpr uint32_t kRingSlots = 8;
  constexpr uint64_t kRingSlotBytes = 256 << 10;
  const std::string data = GpuTextData(8 << 20, 21);
  int wfd = OpenOrDie(mnt_ + "/f", O_CREAT | O_WRONLY | O_TRUNC);
  WriteAll(wfd, data, 0);
  ASSERT_EQ(fsync(wfd), 0);
  ASSERT_EQ(close(wfd), 0);
  int memfd = memfd_create("ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ASSERT_GE(memfd, 0);
  ASSERT_EQ(ftruncate(memfd, off_t(kRingSlots * kRingSlotBytes)), 0);
  ASSERT_EQ(fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
  const char* ring = static_cast<const char*>(
      mmap(nullptr, kRingSlots * kRingSlotBytes, PROT_READ, MAP_SHARED, memfd, 0));
  ASSERT_NE(ring, MAP_FAILED);
  RawClient raw(mnt_);
  std::string message;
  ASSERT_EQ(raw.Call(gpu::Request{gpu::Op::kRing, 1, 0, kRingSlots, 0, kRingSlotBytes}, memfd,
                     &message),
            0)
      << message;
  const int rfd = OpenOrDie(mnt_ + "/f", O_RDONLY);
  const int64_t handle = raw.Call(gpu::Request{gpu::Op::kRegister, 2, 0, 0, 0, 0}, rfd, &message);
  ASSERT_GT(handle, 0) << message;

  std::mt19937_64 rng(5);
  uint64_t tag = 10;
  struct Sent {
    uint64_t tag, offset, length;
  };
  // Sends one read per slot, then checks the replies: in order, each with pread's bytes.
  auto round = [&](std::vector<Sent>* sent) {
    for (uint32_t slot = 0; slot < kRingSlots; ++slot) {
      const uint64_t len = rng() % 3 == 0 ? 1 + rng() % 100 : 1 + rng() % kRingSlotBytes;
      const uint64_t off = rng() % data.size();
      sent->push_back(Sent{++tag, off, len});
      ASSERT_TRUE(raw.Send(gpu::Request{gpu::Op::kRead, tag, uint32_t(handle), slot, off, len}));
    }
  };
  auto check = [&](const std::vector<Sent>& sent) {
    for (uint32_t slot = 0; slot < sent.size(); ++slot) {
      gpu::WireReply reply{};
      ASSERT_TRUE(raw.Receive(&reply, &message)) << "no reply to read " << slot;
      ASSERT_EQ(reply.tag, sent[slot].tag) << "reply out of order";
      ASSERT_EQ(reply.slot, slot);
      const uint64_t want = std::min<uint64_t>(sent[slot].length, data.size() - sent[slot].offset);
      ASSERT_EQ(reply.value, int64_t(want)) << message;
      ASSERT_EQ(std::memcmp(ring + slot * kRingSlotBytes, data.data() + sent[slot].offset, want),
                0)
          << "read " << slot << " at " << sent[slot].offset << "+" << want;
    }
  };
  const bool pool = std::thread::hardware_concurrency() >= 2;
  for (int r = 0; r < 100; ++r) {
    std::vector<Sent> sent;
    round(&sent);
    check(sent);
    if (HasFatalFailure()) return;
    // Enough rounds to see reads overlap (or, with one CPU, that they never do).
    if (r >= 20 && StatValue(mnt_, "gpu_max_concurrent_reads") > 1) break;
  }
  if (pool) {
    EXPECT_GT(StatValue(mnt_, "gpu_max_concurrent_reads"), 1u)
        << "one client's reads were never staged at once";
  } else {
    EXPECT_EQ(StatValue(mnt_, "gpu_max_concurrent_reads"), 1u);
  }

  // Reads, then an Unregister sent before their replies came: the reads are served (with the
  // file still registered), then the Unregister, then a read of the gone handle fails.
  std::vector<Sent> sent;
  round(&sent);
  ASSERT_TRUE(raw.Send(gpu::Request{gpu::Op::kUnregister, 100000, uint32_t(handle), 0, 0, 0}));
  ASSERT_TRUE(raw.Send(gpu::Request{gpu::Op::kRead, 100001, uint32_t(handle), 0, 0, 10}));
  // More reads (of the unknown handle), then bytes no decoder accepts.
  for (uint32_t slot = 0; slot < kRingSlots; ++slot) {
    ASSERT_TRUE(raw.Send(gpu::Request{gpu::Op::kRead, 100002 + slot, uint32_t(handle), slot, 0,
                                      10}));
  }
  const char garbage[40] = "not a request";
  ASSERT_TRUE(raw.SendBytes(garbage, sizeof garbage));
  check(sent);
  gpu::WireReply reply{};
  ASSERT_TRUE(raw.Receive(&reply, &message));
  EXPECT_EQ(reply.tag, 100000u);
  EXPECT_EQ(reply.value, 0) << message;
  for (uint64_t t = 100001; t < 100002 + kRingSlots; ++t) {
    ASSERT_TRUE(raw.Receive(&reply, &message));
    EXPECT_EQ(reply.tag, t);
    EXPECT_EQ(reply.value, -EBADF) << message;
  }
  ASSERT_TRUE(raw.Receive(&reply, &message)) << "no error reply to the undecodable request";
  EXPECT_LT(reply.value, 0);
  EXPECT_FALSE(raw.Receive(&reply, &message)) << "the connection stays open after garbage";
  munmap(const_cast<char*>(ring), kRingSlots * kRingSlotBytes);
  close(memfd);
  close(rfd);
}

// A client that sends far more reads than it has slots, without reading the replies, must not
// make the daemon queue them all: the daemon takes a read off the socket only when fewer than
// a slot count of reads are unanswered, so the socket fills and stays full. (Before that
// bound, the receiving thread took every request at once while the pool staged them slowly:
// anyone able to connect could grow the daemon's memory without limit.)
TEST_F(GpuStagingTest, AClientFloodingReadsIsHeldBackByItsSocket) {
  if (std::thread::hardware_concurrency() < 2) {
    GTEST_SKIP() << "one CPU: the daemon stages inline, with no queue to bound";
  }
  setenv("RANKFS_TEST_STAGE_DELAY_US", "20000", 1);  // each read takes 20 ms or more
  Mount();
  unsetenv("RANKFS_TEST_STAGE_DELAY_US");
  constexpr uint32_t kRingSlots = 2;
  constexpr uint64_t kRingSlotBytes = 4096;
  int memfd = memfd_create("ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ASSERT_GE(memfd, 0);
  ASSERT_EQ(ftruncate(memfd, off_t(kRingSlots * kRingSlotBytes)), 0);
  ASSERT_EQ(fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
  RawClient raw(mnt_);
  std::string message;
  ASSERT_EQ(raw.Call(gpu::Request{gpu::Op::kRing, 1, 0, kRingSlots, 0, kRingSlotBytes}, memfd,
                     &message),
            0)
      << message;
  close(memfd);
  raw.SetNonBlocking();
  // Reads of a handle that does not exist: each still goes through the pool and its delay.
  uint64_t tag = 10;
  auto fill = [&] {
    size_t n = 0;
    while (n < 100000 &&
           raw.Send(gpu::Request{gpu::Op::kRead, ++tag, 7, uint32_t(tag % kRingSlots), 0, 10})) {
      ++n;
    }
    EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << strerror(errno);
    return n;
  };
  // How many requests a full socket holds: a socket pair of the same kind, nobody reading.
  size_t holds = 0;
  {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
    while (holds < 100000 &&
           gpu::SendRequest(sv[0], gpu::Request{gpu::Op::kRead, 1, 7, 0, 0, 10}, -1)) {
      ++holds;
    }
    close(sv[0]);
    close(sv[1]);
  }
  ASSERT_GE(holds, 150u) << "a socket holds too few requests to tell";
  fill();  // full now (the daemon takes a few meanwhile)
  // Ten replies mean ten reads answered (20 ms or more each, two at a time), so the daemon
  // has taken about that many more off the socket; unbounded, it would have taken a
  // socketful by then.
  for (int i = 0; i < 10; ++i) {
    gpu::WireReply reply{};
    ASSERT_TRUE(raw.Receive(&reply, &message)) << "no reply to read " << i;
  }
  const size_t refilled = fill();
  EXPECT_LT(refilled, 60u) << "the daemon took " << refilled << " more requests off a full "
                           << "socket (it holds " << holds << ") while it answered ten reads: "
                           << "it queues reads beyond its slots";
}

}  // namespace
}  // namespace rankfs
