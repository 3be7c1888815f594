// Random-operations model test: a seeded sequence of file operations (writes of many sizes,
// ftruncate, hole punching, copy_file_range across and within files, pread, mmap reads and
// shared-mmap writes, fsync, rename with the descriptor kept, reopen) is applied to two files
// inside a rankfs mount and to two reference files on the backing filesystem (/tmp). After
// every operation the return values and file sizes must agree; after every read the bytes
// must; at the end the whole files must, and again after an unmount and remount (so that what
// was compared is the store's content, not the kernel's page cache).
//
// Environment: RANKFS_RANDOM_OPS (default 20000, 5000 in sanitizer builds, where the point
// is memory errors on the same paths rather than volume; the second test runs a quarter of
// it), RANKFS_RANDOM_SEED (default fixed; the seed is printed so that a failure can be
// replayed).
//
// Needs root and /dev/fuse (skips otherwise).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <string>

#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/mount_test.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

// Small files keep 20,000 operations fast: most of an operation's cost is the daemon
// re-chunking and storing the touched range (plus an fdatasync per flush).
constexpr uint64_t kMaxFileSize = 3ull << 20;
constexpr uint64_t kMaxOpBytes = 512 << 10;  // reads, copies, punches, mappings
constexpr size_t kPage = 4096;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr uint64_t kDefaultOps = 5000;
#else
constexpr uint64_t kDefaultOps = 20000;
#endif

uint64_t EnvU64(const char* name, uint64_t def) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 0) : def;
}

// Outcome of a syscall: the value, or -errno.
int64_t Outcome(int64_t rc) { return rc < 0 ? -int64_t(errno) : rc; }

// copy_file_range until `len` bytes are copied, the source ends or an error occurs.
int64_t CopyRange(int in, uint64_t in_off, int out, uint64_t out_off, uint64_t len) {
  loff_t i = loff_t(in_off), o = loff_t(out_off);
  uint64_t done = 0;
  while (done < len) {
    ssize_t n = copy_file_range(in, &i, out, &o, len - done, 0);
    if (n < 0) return done > 0 ? int64_t(done) : -int64_t(errno);
    if (n == 0) break;
    done += uint64_t(n);
  }
  return int64_t(done);
}

// pread until `len` bytes or EOF.
int64_t ReadRange(int fd, uint64_t off, size_t len, char* buf) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, buf + done, len - done, off_t(off + done));
    if (n < 0) return -int64_t(errno);
    if (n == 0) break;
    done += size_t(n);
  }
  return int64_t(done);
}

int64_t WriteRange(int fd, uint64_t off, const char* data, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pwrite(fd, data + done, len - done, off_t(off + done));
    if (n < 0) return -int64_t(errno);
    done += size_t(n);
  }
  return int64_t(done);
}

// Where two buffers first differ, for failure messages.
std::string FirstDifference(const char* a, const char* b, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) {
      char buf[128];
      std::snprintf(buf, sizeof buf, "first difference at +%zu: rankfs 0x%02x, reference 0x%02x", i,
                    unsigned(uint8_t(a[i])), unsigned(uint8_t(b[i])));
      return buf;
    }
  }
  return "no difference";
}

// One side of the comparison: a directory with two files, each under one of two names.
struct Side {
  std::string dir;
  int fd[2] = {-1, -1};
  int name_index[2] = {0, 0};  // file f is called Name(f, name_index[f])

  std::string Name(int f, int which) const {
    return dir + "/" + (f == 0 ? "alpha" : "beta") + (which == 0 ? "" : ".renamed");
  }
  std::string Path(int f) const { return Name(f, name_index[f]); }
  void CloseAll() {
    for (int& x : fd) {
      if (x >= 0) close(x);
      x = -1;
    }
  }
};

class RandomOpsTest : public MountTest {
 protected:
  RandomOpsTest() : MountTest(std::chrono::seconds(600)) {}
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    rk_.dir = mnt_;
    ref_.dir = tmp_.Join("ref");
    ASSERT_EQ(mkdir(ref_.dir.c_str(), 0755), 0);
  }
  void TearDown() override {
    rk_.CloseAll();
    ref_.CloseAll();
  }

  void Run(uint64_t ops);

  std::string RecentOps() const {
    std::string s = "seed " + std::to_string(seed_) + "; last operations:\n";
    for (const std::string& op : log_) s += "  " + op + "\n";
    return s;
  }
  void Log(uint64_t i, const std::string& what) {
    log_.push_back("#" + std::to_string(i) + " " + what);
    if (log_.size() > 24) log_.pop_front();
  }

  // Compares [off, off+len) of file f on both sides through pread.
  void CompareRange(int f, uint64_t off, size_t len, const char* context) {
    std::string a(len, '\0'), b(len, '\0');
    const int64_t ra = ReadRange(rk_.fd[f], off, len, a.data());
    const int64_t rb = ReadRange(ref_.fd[f], off, len, b.data());
    ASSERT_EQ(ra, rb) << context << ": read count of file " << f << " @" << off << "+" << len
                      << "\n"
                      << RecentOps();
    ASSERT_TRUE(std::memcmp(a.data(), b.data(), size_t(std::max<int64_t>(ra, 0))) == 0)
        << context << ": bytes of file " << f << " @" << off << "+" << len << " differ, "
        << FirstDifference(a.data(), b.data(), size_t(ra)) << "\n"
        << RecentOps();
  }

  Side rk_, ref_;        // the rankfs mount and the reference directory
  std::string options_;  // mount options
  uint64_t seed_ = 0;
  std::deque<std::string> log_;
};

// The whole test: `ops` random operations, then the final comparisons.
void RandomOpsTest::Run(uint64_t ops) {
  std::printf("random_ops: seed %llu (RANKFS_RANDOM_SEED), %llu ops, mount options \"%s\"\n",
              (unsigned long long)seed_, (unsigned long long)ops, options_.c_str());
  std::fflush(stdout);
  ASSERT_NO_FATAL_FAILURE(Mount(options_));

  // Written bytes are slices of real data (so that chunks repeat and dedup is exercised) or
  // of random data (incompressible).
  const std::string real = MakeRealData(12 << 20, seed_);
  const std::string random = MakeRandomData(4 << 20, seed_ + 1);

  for (Side* s : {&rk_, &ref_}) {
    for (int f = 0; f < 2; ++f) {
      s->fd[f] = open(s->Path(f).c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
      ASSERT_GE(s->fd[f], 0) << s->Path(f) << ": " << strerror(errno);
    }
  }

  std::mt19937_64 rng(seed_);
  auto uniform = [&](uint64_t lo, uint64_t hi) {  // [lo, hi]
    return lo + (hi <= lo ? 0 : rng() % (hi - lo + 1));
  };
  auto write_len = [&]() -> uint64_t {
    const uint64_t p = uniform(0, 99);
    if (p < 30) return uniform(1, 4096);
    if (p < 55) return 8192;
    if (p < 75) return uniform(4097, 65536);
    if (p < 95) return uniform(65537, 262144);
    return 1 << 20;
  };
  auto payload = [&](uint64_t len) -> const char* {
    const std::string& src = uniform(0, 3) == 0 ? random : real;
    return src.data() + uniform(0, src.size() - len);
  };
  auto size_of = [&](int fd) -> uint64_t {
    struct stat st;
    return fstat(fd, &st) == 0 ? uint64_t(st.st_size) : 0;
  };

  // Weights of the operations, in the order of the switch below.
  // The ones that make the daemon flush (copies, msync, fsync, reopen) cost ~5-10 ms each,
  // the others well under 1 ms.
  const int weights[] = {30, 22, 8, 6, 6, 6, 4, 3, 1, 6, 1};
  int total_weight = 0;
  for (int w : weights) total_weight += w;
  uint64_t counts[11] = {};
  double op_seconds[11] = {};
  const auto start = std::chrono::steady_clock::now();

  for (uint64_t i = 0; i < ops; ++i) {
    int pick = int(uniform(0, total_weight - 1)), op = 0;
    while (pick >= weights[op]) pick -= weights[op++];
    ++counts[op];
    const auto op_start = std::chrono::steady_clock::now();
    const int f = int(uniform(0, 1));
    const uint64_t size = size_of(ref_.fd[f]);
    char what[256];

    switch (op) {
      case 0: {  // write: append half of the time, else anywhere up to just past EOF
        const uint64_t len = write_len();
        if (len > kMaxFileSize) break;
        const uint64_t off = uniform(0, 1) == 0
                                 ? std::min(size, kMaxFileSize - len)
                                 : uniform(0, std::min(size + 65536, kMaxFileSize - len));
        const char* data = payload(len);
        std::snprintf(what, sizeof what, "pwrite f%d @%llu +%llu", f, (unsigned long long)off,
                      (unsigned long long)len);
        Log(i, what);
        const int64_t a = WriteRange(rk_.fd[f], off, data, len);
        const int64_t b = WriteRange(ref_.fd[f], off, data, len);
        ASSERT_EQ(a, b) << what << "\n" << RecentOps();
        break;
      }
      case 1: {  // pread, possibly across EOF
        const uint64_t len = uniform(1, kMaxOpBytes);
        const uint64_t off = uniform(0, size + 4096);
        std::snprintf(what, sizeof what, "pread f%d @%llu +%llu", f, (unsigned long long)off,
                      (unsigned long long)len);
        Log(i, what);
        ASSERT_NO_FATAL_FAILURE(CompareRange(f, off, len, what));
        break;
      }
      case 2:    // mmap read (MAP_SHARED, PROT_READ)
      case 3: {  // mmap write (MAP_SHARED, PROT_WRITE, sometimes msync)
        if (size == 0) break;
        const uint64_t off = uniform(0, (size - 1) / kPage) * kPage;
        const uint64_t len = uniform(1, std::min<uint64_t>(size - off, kMaxOpBytes));
        const bool write = op == 3;
        std::snprintf(what, sizeof what, "mmap %s f%d @%llu +%llu", write ? "write" : "read", f,
                      (unsigned long long)off, (unsigned long long)len);
        Log(i, what);
        void* map = mmap(nullptr, len, write ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED,
                         rk_.fd[f], off_t(off));
        ASSERT_NE(map, MAP_FAILED) << what << ": " << strerror(errno) << "\n" << RecentOps();
        if (write) {
          // A write that starts inside the mapping at a random place.
          const uint64_t woff = uniform(0, len - 1);
          const uint64_t wlen = uniform(1, len - woff);
          const char* data = payload(wlen);
          std::memcpy(static_cast<char*>(map) + woff, data, wlen);
          // msync(MS_SYNC) is an fsync through FUSE (~10 ms): one write in five syncs; the
          // others leave dirty pages for the kernel to write back while later operations
          // (truncate, punch, copy_file_range, reads) run against them.
          const bool sync = uniform(0, 4) == 0;
          const int rc = sync ? msync(map, len, MS_SYNC) : 0;
          const int err = errno;
          munmap(map, len);
          ASSERT_EQ(rc, 0) << what << ": msync: " << strerror(err) << "\n" << RecentOps();
          ASSERT_EQ(WriteRange(ref_.fd[f], off + woff, data, wlen), int64_t(wlen));
        } else {
          std::string b(len, '\0');
          ASSERT_EQ(ReadRange(ref_.fd[f], off, len, b.data()), int64_t(len));
          const bool same = std::memcmp(map, b.data(), len) == 0;
          std::string diff = same ? "" : FirstDifference(static_cast<char*>(map), b.data(), len);
          munmap(map, len);
          ASSERT_TRUE(same) << what << ": mapped bytes differ, " << diff << "\n" << RecentOps();
        }
        break;
      }
      case 4: {  // ftruncate: shrink, grow, or move by less than a page
        const uint64_t p = uniform(0, 9);
        const uint64_t new_size =
            p < 4 ? uniform(0, size)
            : p < 7
                ? uniform(size, kMaxFileSize)
                : std::min(kMaxFileSize, uint64_t(std::max<int64_t>(
                                             0, int64_t(size) + int64_t(uniform(0, 8191)) - 4096)));
        std::snprintf(what, sizeof what, "ftruncate f%d %llu (was %llu)", f,
                      (unsigned long long)new_size, (unsigned long long)size);
        Log(i, what);
        const int64_t a = Outcome(ftruncate(rk_.fd[f], off_t(new_size)));
        const int64_t b = Outcome(ftruncate(ref_.fd[f], off_t(new_size)));
        ASSERT_EQ(a, b) << what << "\n" << RecentOps();
        break;
      }
      case 5: {  // punch a hole, keeping the size
        const uint64_t off = uniform(0, size + 8192);
        const uint64_t len = uniform(1, kMaxOpBytes);
        std::snprintf(what, sizeof what, "punch f%d @%llu +%llu", f, (unsigned long long)off,
                      (unsigned long long)len);
        Log(i, what);
        const int mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
        const int64_t a = Outcome(fallocate(rk_.fd[f], mode, off_t(off), off_t(len)));
        const int64_t b = Outcome(fallocate(ref_.fd[f], mode, off_t(off), off_t(len)));
        ASSERT_EQ(a, b) << what << "\n" << RecentOps();
        break;
      }
      case 6: {  // copy_file_range from the other file
        const int src = 1 - f;
        const uint64_t src_size = size_of(ref_.fd[src]);
        const uint64_t len = uniform(1, kMaxOpBytes);
        const uint64_t in_off = uniform(0, src_size + 4096);
        const uint64_t out_off = uniform(0, std::min(size + 4096, kMaxFileSize - len));
        std::snprintf(what, sizeof what, "copy_file_range f%d @%llu -> f%d @%llu +%llu", src,
                      (unsigned long long)in_off, f, (unsigned long long)out_off,
                      (unsigned long long)len);
        Log(i, what);
        const int64_t a = CopyRange(rk_.fd[src], in_off, rk_.fd[f], out_off, len);
        const int64_t b = CopyRange(ref_.fd[src], in_off, ref_.fd[f], out_off, len);
        ASSERT_EQ(a, b) << what << "\n" << RecentOps();
        break;
      }
      case 7: {  // copy_file_range within one file, ranges not overlapping
        if (size < 2) break;
        const uint64_t len = uniform(1, std::min<uint64_t>(size / 2, kMaxOpBytes));
        const uint64_t in_off = uniform(0, size - len);
        uint64_t out_off;
        // A destination at least len away from the source, before it or after it.
        if (in_off >= len && (uniform(0, 1) == 0 || in_off + 2 * len > kMaxFileSize)) {
          out_off = uniform(0, in_off - len);
        } else if (in_off + 2 * len <= kMaxFileSize) {
          out_off = uniform(in_off + len, std::min(size + 4096, kMaxFileSize - len));
          out_off = std::max(out_off, in_off + len);
        } else {
          break;
        }
        std::snprintf(what, sizeof what, "copy_file_range f%d @%llu -> @%llu +%llu", f,
                      (unsigned long long)in_off, (unsigned long long)out_off,
                      (unsigned long long)len);
        Log(i, what);
        const int64_t a = CopyRange(rk_.fd[f], in_off, rk_.fd[f], out_off, len);
        const int64_t b = CopyRange(ref_.fd[f], in_off, ref_.fd[f], out_off, len);
        ASSERT_EQ(a, b) << what << "\n" << RecentOps();
        break;
      }
      case 8: {  // fsync
        std::snprintf(what, sizeof what, "fsync f%d", f);
        Log(i, what);
        ASSERT_EQ(fsync(rk_.fd[f]), 0) << what << ": " << strerror(errno) << "\n" << RecentOps();
        break;
      }
      case 9: {  // rename to the file's other name (same directory), keeping the descriptor
        const int to = 1 - rk_.name_index[f];
        std::snprintf(what, sizeof what, "rename f%d -> name %d", f, to);
        Log(i, what);
        for (Side* s : {&rk_, &ref_}) {
          ASSERT_EQ(rename(s->Path(f).c_str(), s->Name(f, to).c_str()), 0)
              << what << " in " << s->dir << ": " << strerror(errno) << "\n"
              << RecentOps();
          s->name_index[f] = to;
        }
        break;
      }
      case 10: {  // close and reopen under the current name
        std::snprintf(what, sizeof what, "reopen f%d", f);
        Log(i, what);
        for (Side* s : {&rk_, &ref_}) {
          ASSERT_EQ(close(s->fd[f]), 0) << what << ": close: " << strerror(errno) << "\n"
                                        << RecentOps();
          s->fd[f] = open(s->Path(f).c_str(), O_RDWR);
          ASSERT_GE(s->fd[f], 0) << what << ": open " << s->Path(f) << ": " << strerror(errno)
                                 << "\n"
                                 << RecentOps();
        }
        break;
      }
    }
    op_seconds[op] +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - op_start).count();
    // Sizes agree after every operation.
    for (int g = 0; g < 2; ++g) {
      ASSERT_EQ(size_of(rk_.fd[g]), size_of(ref_.fd[g]))
          << "size of file " << g << " after #" << i << "\n"
          << RecentOps();
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "random_ops: %llu ops in %.1f s (%.0f ops/s); per kind: write %llu, pread %llu, "
      "mmap read %llu, mmap write %llu, ftruncate %llu, punch %llu, copy across %llu, "
      "copy within %llu, fsync %llu, rename %llu, reopen %llu\n",
      (unsigned long long)ops, secs, double(ops) / secs, (unsigned long long)counts[0],
      (unsigned long long)counts[1], (unsigned long long)counts[2], (unsigned long long)counts[3],
      (unsigned long long)counts[4], (unsigned long long)counts[5], (unsigned long long)counts[6],
      (unsigned long long)counts[7], (unsigned long long)counts[8], (unsigned long long)counts[9],
      (unsigned long long)counts[10]);
  std::printf("random_ops: seconds per kind:");
  for (double t : op_seconds) std::printf(" %.1f", t);
  std::printf("\n");

  // The whole files, through the open descriptors...
  for (int f = 0; f < 2; ++f) {
    ASSERT_NO_FATAL_FAILURE(CompareRange(f, 0, kMaxFileSize + 4096, "final whole-file compare"));
  }
  // ...and from the store after a clean remount.
  rk_.CloseAll();
  Status s = fs_->Unmount();
  ASSERT_TRUE(s.ok()) << s.ToString();
  fs_.reset();
  ASSERT_NO_FATAL_FAILURE(Mount(options_));
  for (int f = 0; f < 2; ++f) {
    rk_.fd[f] = open(rk_.Path(f).c_str(), O_RDONLY);
    ASSERT_GE(rk_.fd[f], 0) << rk_.Path(f) << ": " << strerror(errno);
    ASSERT_NO_FATAL_FAILURE(
        CompareRange(f, 0, kMaxFileSize + 4096, "whole-file compare after remount"));
  }
}

TEST_F(RandomOpsTest, MatchesTheBackingFilesystem) {
  seed_ = EnvU64("RANKFS_RANDOM_SEED", 0x5eed2024);
  ASSERT_NO_FATAL_FAILURE(Run(EnvU64("RANKFS_RANDOM_OPS", kDefaultOps)));
}

// The other data path: without the kernel's write-back cache every write(2) and every mmap
// page write-back is its own request, and tiny daemon buffers and cache force flushes and
// evictions on almost every operation.
TEST_F(RandomOpsTest, MatchesWithoutWritebackCacheAndWithTinyBuffers) {
  seed_ = EnvU64("RANKFS_RANDOM_SEED", 0x5eed2024) + 1;
  options_ = "writeback_cache=off,write_buffer=1M,cache_size=1M";
  ASSERT_NO_FATAL_FAILURE(Run(EnvU64("RANKFS_RANDOM_OPS", kDefaultOps) / 4));
}

}  // namespace
}  // namespace rankfs
