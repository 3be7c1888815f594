// The GPU staging path under the conditions a training job brings (docs/gpu.md, issue 21):
// four processes reading four identical copies at once; a file truncated and rewritten while
// requests are in flight; descriptors that are no capability to read; a damaged chunk.
// Each mounts for real (MountTest: timeout, guaranteed unmount).
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/testutil/gpu_staging_fixture.h"
#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/pack_records.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

constexpr uid_t kNobody = 65534;

// Opens a context, registers `path` opened with `flags`, reads `reads` random ranges and
// compares each with pread of the same descriptor. Returns "" or what went wrong. For forked
// children: no gtest assertions.
std::string StageAndCompare(const std::string& mnt, const std::string& path, int reads,
                            uint64_t seed) {
  rankfs_gpu_options o{kGpuSlots, kGpuSlotBytes, RANKFS_GPU_BACKEND_CPU, 50};
  rankfs_gpu_ctx* ctx = nullptr;
  if (rankfs_gpu_open(mnt.c_str(), &o, &ctx) != 0) {
    return std::string("open: ") + rankfs_gpu_last_error();
  }
  std::string failure;
  const int fd = open(path.c_str(), O_RDONLY);
  const off_t size = fd < 0 ? 0 : lseek(fd, 0, SEEK_END);
  const rankfs_gpu_file file = fd < 0 ? -1 : rankfs_gpu_register(ctx, fd);
  if (file <= 0) failure = path + ": cannot open or register: " + rankfs_gpu_last_error();
  rankfs_gpu_stream* stream = nullptr;
  if (failure.empty() && rankfs_gpu_stream_create(ctx, &stream) != 0) failure = "no stream";
  std::mt19937_64 rng(seed);
  for (int i = 0; failure.empty() && i < reads; ++i) {
    const uint64_t off = rng() % uint64_t(size);
    const uint64_t len = 1 + rng() % (3 * kGpuSlotBytes);
    std::string want(len, '\0'), have(len, '\x5a');
    const ssize_t got = pread(fd, want.data(), len, off_t(off));
    const int64_t n = rankfs_gpu_read(ctx, file, off, len, have.data(), stream);
    if (rankfs_gpu_stream_synchronize(stream) != 0) failure = "synchronize failed";
    if (n != got || got < 0 || std::memcmp(have.data(), want.data(), size_t(got)) != 0) {
      failure = path + ": read at " + std::to_string(off) + "+" + std::to_string(len) +
                " gave " + std::to_string(n) + " bytes (" + rankfs_gpu_last_error() +
                "), pread " + std::to_string(got) + (n == got ? ", different bytes" : "");
    }
  }
  if (stream != nullptr) rankfs_gpu_stream_destroy(stream);
  if (fd >= 0) close(fd);
  rankfs_gpu_close(ctx);
  return failure;
}

TEST_F(GpuStagingTest, FourProcessesReadFourIdenticalCopiesAtOnce) {
  Mount();
  constexpr size_t kSize = 6 << 20;
  const std::string data = GpuTextData(kSize, 21);
  for (int r = 0; r < 4; ++r) {
    int fd = OpenOrDie(mnt_ + "/rank" + std::to_string(r), O_CREAT | O_WRONLY | O_TRUNC);
    WriteAll(fd, data, 0);
    ASSERT_EQ(fsync(fd), 0);
    ASSERT_EQ(close(fd), 0);
  }
  // The store holds one copy of the bytes, not four.
  EXPECT_EQ(StatValue(mnt_, "logical_bytes"), 4 * kSize);
  EXPECT_LE(StatValue(mnt_, "unique_bytes"), kSize);

  // Four processes, each its own context, released together.
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  std::vector<pid_t> children;
  std::vector<int> results;
  for (int r = 0; r < 4; ++r) {
    int out[2];
    ASSERT_EQ(pipe(out), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(go[1]);
      close(out[0]);
      char x;
      if (read(go[0], &x, 1) != 0) _exit(2);  // EOF: the parent let everyone go
      const std::string failure =
          StageAndCompare(mnt_, mnt_ + "/rank" + std::to_string(r), 60, 100 + r);
      if (write(out[1], failure.data(), failure.size()) != ssize_t(failure.size())) _exit(3);
      _exit(failure.empty() ? 0 : 1);
    }
    close(out[1]);
    children.push_back(pid);
    results.push_back(out[0]);
  }
  close(go[0]);
  close(go[1]);
  for (int r = 0; r < 4; ++r) {
    std::string text;
    char buf[512];
    for (ssize_t n; (n = read(results[r], buf, sizeof buf)) > 0;) text.append(buf, size_t(n));
    close(results[r]);
    int status = 0;
    ASSERT_EQ(waitpid(children[r], &status, 0), children[r]);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "rank " << r << " (status " << status << "): " << text;
  }
  // Staged reads take no space: still one copy.
  EXPECT_LE(StatValue(mnt_, "unique_bytes"), kSize);
}

// A file that is truncated to zero, extended with zeros and rewritten whole, over and over,
// while two clients stage reads of it.
//
// What makes a mix checkable: generation g writes, at every 8-byte word i, the value
// Word(g, i), which names both the generation and the position. Between two generations the
// file is truncated to zero, so no moment ever holds bytes of two generations: a read() at any
// moment sees words that are either zero (the extended, not yet rewritten part, or a page of
// the rewrite not yet flushed) or Word(g, i) of one g, at their own positions; and its length
// is that of a file of size 0 or kSize. A request whose bytes hold two generations, or a word
// at the wrong place, was put together from two moments: no read() gives that.
class GpuStagingRewriteTest : public GpuStagingTest {
 protected:
  static constexpr uint64_t kSize = (1 << 20) + 4096;  // a multiple of 8
  static constexpr uint64_t kSlot = 1 << 20;

  static uint64_t Word(uint64_t g, uint64_t i) { return (g << 40) | (i + 1); }
  static std::string Generation(uint64_t g) {
    std::string s(kSize, '\0');
    for (uint64_t i = 0; i < kSize / 8; ++i) {
      const uint64_t w = Word(g, i);
      std::memcpy(s.data() + 8 * i, &w, 8);
    }
    return s;
  }

  // Checks one request's result; returns "" or why no read() could have returned it. Adds the
  // generation it saw (0 for none) to *seen.
  static std::string Check(uint64_t off, uint64_t len, int64_t n, const char* bytes,
                           std::set<uint64_t>* seen) {
    if (n < 0) return "error " + std::to_string(n) + ": " + rankfs_gpu_last_error();
    const uint64_t full = off >= kSize ? 0 : std::min(len, kSize - off);
    if (n != 0 && uint64_t(n) != full) {
      return "length " + std::to_string(n) + " is that of no file size this test makes";
    }
    const uint64_t end = off + uint64_t(n);
    // The generation: that of the first non-zero word wholly inside the range.
    uint64_t gen = 0;
    for (uint64_t pos = (off + 7) / 8 * 8; gen == 0 && pos + 8 <= end; pos += 8) {
      uint64_t w;
      std::memcpy(&w, bytes + (pos - off), 8);
      gen = w >> 40;
    }
    // Every word, the partial ones at the ends included: its bytes in the range are all zero,
    // or all those of Word(gen, i).
    for (uint64_t i = off / 8; i * 8 < end; ++i) {
      const uint64_t want = Word(gen, i);
      bool zero = true, match = true;
      for (uint64_t pos = std::max(i * 8, off); pos < std::min(i * 8 + 8, end); ++pos) {
        const uint8_t b = uint8_t(bytes[pos - off]);
        zero = zero && b == 0;
        match = match && b == uint8_t(want >> (8 * (pos % 8)));
      }
      if (!zero && !(match && gen != 0)) {
        return "the word at " + std::to_string(i * 8) + " is neither zero nor generation " +
               std::to_string(gen) + "'s: a mix or a misplaced word";
      }
    }
    seen->insert(gen);
    return "";
  }
};

TEST_F(GpuStagingRewriteTest, EachRequestReturnsWhatOneReadWould) {
  Mount();
  const std::string path = mnt_ + "/gen";
  int wfd = OpenOrDie(path, O_CREAT | O_RDWR | O_TRUNC);
  WriteAll(wfd, Generation(1), 0);
  ASSERT_EQ(fsync(wfd), 0);

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> generations{1};
  std::thread writer([&] {
    std::vector<std::string> gens = {Generation(2), Generation(3), Generation(4)};
    for (uint64_t g = 2; !stop; ++g) {
      if (ftruncate(wfd, 0) != 0 || ftruncate(wfd, off_t(kSize)) != 0) break;
      std::string& bytes = gens[g % 3];
      for (uint64_t i = 0; i < kSize / 8; ++i) {  // this generation's words
        const uint64_t w = Word(g, i);
        std::memcpy(bytes.data() + 8 * i, &w, 8);
      }
      if (pwrite(wfd, bytes.data(), kSize, 0) != ssize_t(kSize)) break;
      // Every other generation goes to the store: reads then meet stored chunks as well as
      // bytes still buffered in the daemon or the kernel.
      if (g % 2 == 0 && fdatasync(wfd) != 0) break;
      generations = g;
    }
  });

  std::atomic<int> bad{0};
  std::vector<std::string> failures(2);
  std::vector<std::set<uint64_t>> seen(2);
  // The generations any reader has seen so far. Each reader makes at least 400 requests and
  // goes on (up to a deadline) until three generations were seen, so the last check below does
  // not depend on how the scheduler shares the CPUs between the writer and the readers.
  std::mutex seen_mu;
  std::set<uint64_t> seen_all;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto seen_enough = [&] {
    std::lock_guard<std::mutex> l(seen_mu);
    return seen_all.size() - seen_all.count(0) >= 3;
  };
  auto reader = [&](int r) {
    rankfs_gpu_options o{kGpuSlots, kSlot, RANKFS_GPU_BACKEND_CPU, 0};
    rankfs_gpu_ctx* ctx = nullptr;
    if (rankfs_gpu_open(mnt_.c_str(), &o, &ctx) != 0) {
      failures[r] = std::string("open: ") + rankfs_gpu_last_error();
      ++bad;
      return;
    }
    const int fd = open(path.c_str(), O_RDONLY);
    const rankfs_gpu_file file = rankfs_gpu_register(ctx, fd);
    std::mt19937_64 rng(300 + r);
    // One request at a time, straight into a slot: the unit whose atomicity is checked.
    for (int i = 0; failures[r].empty() && bad == 0 &&
                    (i < 400 || (!seen_enough() && std::chrono::steady_clock::now() < deadline));
         ++i) {
      const uint64_t off = rng() % kSize;
      const uint64_t len = 1 + rng() % kSlot;
      const uint32_t slot = uint32_t(i) % kGpuSlots;
      const int64_t n = rankfs_gpu_read_slot(ctx, file, off, len, slot);
      const char* bytes = static_cast<const char*>(rankfs_gpu_slot(ctx, slot));
      std::string why = Check(off, len, n, bytes, &seen[r]);
      if (!why.empty()) {
        failures[r] = "request at " + std::to_string(off) + "+" + std::to_string(len) + ": " + why;
        ++bad;
      }
      std::lock_guard<std::mutex> l(seen_mu);
      seen_all.insert(seen[r].begin(), seen[r].end());
    }
    close(fd);
    rankfs_gpu_close(ctx);
  };
  std::thread r0(reader, 0), r1(reader, 1);
  r0.join();
  r1.join();
  stop = true;
  writer.join();
  ASSERT_EQ(close(wfd), 0);
  EXPECT_EQ(failures[0], "");
  EXPECT_EQ(failures[1], "");
  // The writer moved on while the readers read: they saw several generations.
  std::set<uint64_t> all = seen[0];
  all.insert(seen[1].begin(), seen[1].end());
  all.erase(0);
  EXPECT_GE(all.size(), 3u) << "generations written: " << generations;
}

// A file the caller could not open is not readable through the staging path: a descriptor
// that grants no reading (O_PATH, which needs no permission on the file; O_WRONLY, handed
// over by a process that could open it for writing) is refused.
TEST_F(GpuStagingTest, RefusesDescriptorsThatGrantNoReading) {
  // The premise must be the file's mode, not the test directory's (mkdtemp makes it 0700).
  ASSERT_EQ(chmod(tmp_.Join("").c_str(), 0755), 0);
  Mount("allow_other");
  const std::string secret = mnt_ + "/secret", open_file = mnt_ + "/public";
  for (const auto& [path, mode] : {std::pair(secret, 0600), std::pair(open_file, 0666)}) {
    int fd = OpenOrDie(path, O_CREAT | O_WRONLY | O_TRUNC);
    WriteAll(fd, GpuTextData(100000, 22), 0);
    ASSERT_EQ(fchmod(fd, mode_t(mode)), 0);
    ASSERT_EQ(close(fd), 0);
  }
  // Root's write-only descriptor of the 0666 file, inherited by the child as one a process
  // with O_WRONLY hands over (the descriptor, not who holds it, is the capability).
  const int wronly = OpenOrDie(open_file, O_WRONLY);
  ChildResult r = RunAsUser(kNobody, [&] {
    std::string out;
    auto note = [&](const std::string& what, int64_t rc) {
      out += what + "=" + std::to_string(rc) + " (" + rankfs_gpu_last_error() + ")\n";
    };
    int fd = open(secret.c_str(), O_RDONLY);
    out += "open secret=" + std::string(fd < 0 ? strerror(errno) : "opened") + "\n";
    rankfs_gpu_options o{kGpuSlots, kGpuSlotBytes, RANKFS_GPU_BACKEND_CPU, 0};
    rankfs_gpu_ctx* ctx = nullptr;
    if (rankfs_gpu_open(mnt_.c_str(), &o, &ctx) != 0) {
      return out + "context: " + rankfs_gpu_last_error();
    }
    const int path_fd = open(secret.c_str(), O_PATH);
    out += "O_PATH secret=" + std::string(path_fd < 0 ? strerror(errno) : "opened") + "\n";
    note("register O_PATH", rankfs_gpu_register(ctx, path_fd));
    note("register O_WRONLY", rankfs_gpu_register(ctx, wronly));
    // Control: nobody may read the public file, so that descriptor is accepted and read.
    const int pub = open(open_file.c_str(), O_RDONLY);
    const rankfs_gpu_file file = rankfs_gpu_register(ctx, pub);
    note("register public", file > 0 ? 1 : file);
    note("read public", rankfs_gpu_read_slot(ctx, file, 0, 1000, 0));
    rankfs_gpu_close(ctx);
    return out;
  });
  close(wronly);
  ASSERT_TRUE(r.exited_cleanly) << r.output;
  const std::string& out = r.output;
  auto has = [&](const std::string& s) {
    EXPECT_NE(out.find(s), std::string::npos) << "expected \"" << s << "\" in:\n" << out;
  };
  has("open secret=Permission denied");  // the premise: nobody cannot open it
  has("O_PATH secret=opened");
  for (const char* what : {"register O_PATH=", "register O_WRONLY="}) {
    const size_t at = out.find(what);
    ASSERT_NE(at, std::string::npos) << what << " missing in:\n" << out;
    const std::string line = out.substr(at, out.find('\n', at) - at);
    EXPECT_EQ(line.rfind(what + std::to_string(-EBADF) + " (", 0), 0u) << line;
    EXPECT_NE(line.find("the descriptor is not open for reading"), std::string::npos) << line;
  }
  has("register public=1");
  has("read public=1000");
}

// One damaged chunk: the staging path fails exactly the blocks pread through the mount fails
// (with EIO), and serves every other block's bytes; a request spanning the damage fails whole.
TEST_F(GpuStagingTest, ADamagedChunkFailsExactlyTheRangesTouchingIt) {
  constexpr uint64_t kBlock = 4096;
  const std::string data = GpuTextData(3 << 20, 23);
  Mount();
  int fd = OpenOrDie(mnt_ + "/f", O_CREAT | O_WRONLY | O_TRUNC);
  WriteAll(fd, data, 0);
  ASSERT_EQ(fsync(fd), 0);
  ASSERT_EQ(close(fd), 0);
  Unmount();
  const std::string pack = store_ + "/packs/000001.pack";
  const std::vector<PackRecord> recs = PackRecords(pack);
  ASSERT_GT(recs.size(), 10u);
  {
    const PackRecord r = recs[recs.size() / 2];
    FILE* f = std::fopen(pack.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fseek(f, long(r.offset + 56 + r.length / 2), SEEK_SET);
    const char junk[4] = {'\x5a', '\xa5', '\x5a', '\xa5'};
    std::fwrite(junk, 1, sizeof junk, f);
    std::fclose(f);
  }
  Mount();
  OpenContext();
  const int rfd = OpenOrDie(mnt_ + "/f", O_RDONLY);
  const rankfs_gpu_file file = rankfs_gpu_register(ctx_, rfd);
  ASSERT_GT(file, 0) << rankfs_gpu_last_error();
  // The staging path first (cold), block by block.
  std::set<uint64_t> staged_eio;
  for (uint64_t off = 0; off < data.size(); off += kBlock) {
    const int64_t n = rankfs_gpu_read_slot(ctx_, file, off, kBlock, 0);
    if (n == -EIO) {
      staged_eio.insert(off);
      continue;
    }
    ASSERT_EQ(n, int64_t(kBlock)) << off << ": " << rankfs_gpu_last_error();
    ASSERT_EQ(std::memcmp(rankfs_gpu_slot(ctx_, 0), data.data() + off, kBlock), 0) << off;
  }
  // pread through the mount, with O_DIRECT so that readahead cannot widen a read.
  std::set<uint64_t> pread_eio;
  const int dfd = OpenOrDie(mnt_ + "/f", O_RDONLY | O_DIRECT);
  void* mem = nullptr;
  ASSERT_EQ(posix_memalign(&mem, kBlock, kBlock), 0);
  for (uint64_t off = 0; off < data.size(); off += kBlock) {
    const ssize_t n = pread(dfd, mem, kBlock, off_t(off));
    if (n < 0 && errno == EIO) {
      pread_eio.insert(off);
      continue;
    }
    ASSERT_EQ(n, ssize_t(kBlock)) << off << ": " << strerror(errno);
    ASSERT_EQ(std::memcmp(mem, data.data() + off, kBlock), 0) << off;
  }
  free(mem);
  close(dfd);
  ASSERT_FALSE(staged_eio.empty()) << "the damage was never seen";
  EXPECT_EQ(staged_eio, pread_eio);
  // Whole ranges: one touching the damage fails, with the chunk named; those ending just
  // before it and starting just after it read back exactly.
  const uint64_t first = *staged_eio.begin(), past = *staged_eio.rbegin() + kBlock;
  EXPECT_EQ(rankfs_gpu_read_slot(ctx_, file, first - 3 * kBlock, 5 * kBlock, 1), -EIO);
  EXPECT_NE(std::string(rankfs_gpu_last_error()).find("damaged"), std::string::npos)
      << rankfs_gpu_last_error();
  const uint64_t before = std::min<uint64_t>(first, kGpuSlotBytes);
  ASSERT_EQ(rankfs_gpu_read_slot(ctx_, file, first - before, before, 2), int64_t(before));
  EXPECT_EQ(std::memcmp(rankfs_gpu_slot(ctx_, 2), data.data() + first - before, before), 0);
  const uint64_t after = std::min<uint64_t>(data.size() - past, kGpuSlotBytes);
  ASSERT_EQ(rankfs_gpu_read_slot(ctx_, file, past, after, 3), int64_t(after));
  EXPECT_EQ(std::memcmp(rankfs_gpu_slot(ctx_, 3), data.data() + past, after), 0);
  close(rfd);
  EXPECT_TRUE(fs_->IsMounted()) << fs_->DaemonLog();
}

}  // namespace
}  // namespace rankfs
