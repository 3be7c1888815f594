// The workload rankfs exists for, end to end through a real mount:
//
// NRanksWritingTheSameDataStoreOneCompressedCopy: 4 processes (one per "GPU rank") write the
// same 256 MiB of real data at the same time into their own directories, each with a different
// write pattern (8 KiB write(2)s; 1 MiB writes; ftruncate + shared mmap + memcpy + msync;
// a tmpXXXXXX name, then rename(2) in the same directory and chmod). Every file must read back
// byte-exact (through the page cache and again after a remount), the store's packs must take
// at most 1.05x the space of ONE compressed copy, and rm -rf must give the space back.
//
// ShiftedCopiesShareTheirChunks: the same 64 MiB payload behind headers of 3 lengths (schema
// headers with different fingerprints) must share >= 90 % of its bytes (content-defined
// chunking realigns after the header).
//
// RANKFS_TEST_SCALE (default 1.0; 0.25 in sanitizer builds) scales the data sizes. On the
// 2-core development machine the optimized build runs this file in ~25-40 s at full size
// (256 MiB per rank), the ASan build in ~15 s at 0.25 (~105 s at full size).
//
// Needs root and /dev/fuse (skips otherwise).
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#if __has_include(<zstd.h>)
#include <zstd.h>
#define RANKFS_TEST_HAVE_ZSTD 1
#endif

#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/mount_test.h"
#include "tests/testutil/test_data.h"
#include "tests/testutil/wait_until.h"

namespace rankfs {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kRanks = 4;

// Sanitizer builds default to a quarter of the data: they look for memory errors on the same
// paths; the space and sharing ratios are measured at full size by the optimized build.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr double kDefaultScale = 0.25;
#else
constexpr double kDefaultScale = 1.0;
#endif

double Scale() {
  const char* v = std::getenv("RANKFS_TEST_SCALE");
  double s = v != nullptr && *v != '\0' ? std::atof(v) : kDefaultScale;
  return s > 0 ? s : kDefaultScale;
}

// `mib` MiB times the scale, rounded down to whole pages, at least 4 MiB.
size_t ScaledSize(double mib) {
  const double bytes = mib * Scale() * 1048576.0;
  return std::max<size_t>(4 << 20, size_t(bytes) / 4096 * 4096);
}

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

double MiB(double bytes) { return bytes / 1048576.0; }

std::map<std::string, std::string> ReadStats(const std::string& mnt) {
  std::map<std::string, std::string> out;
  std::ifstream in(mnt + "/.rankfs-stats");
  std::string line;
  while (std::getline(in, line)) {
    const size_t eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

uint64_t Stat(const std::map<std::string, std::string>& stats, const std::string& key) {
  auto it = stats.find(key);
  return it == stats.end() ? ~0ull : std::stoull(it->second);
}

// Allocated bytes (st_blocks * 512) of the store's pack files.
uint64_t PackBytes(const std::string& store) {
  uint64_t total = 0;
  DIR* d = opendir((store + "/packs").c_str());
  if (d == nullptr) return 0;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() < 5 || name.compare(name.size() - 5, 5, ".pack") != 0) continue;
    struct stat st;
    if (stat((store + "/packs/" + name).c_str(), &st) == 0) total += uint64_t(st.st_blocks) * 512;
  }
  closedir(d);
  return total;
}

// Waits (up to 60 s) until the daemon holds no buffered data and no space waits to be
// released, so that the stats and the packs' sizes are final. Returns the last stats.
std::map<std::string, std::string> WaitQuiet(const std::string& mnt) {
  std::map<std::string, std::string> stats;
  WaitUntil(
      [&] {
        stats = ReadStats(mnt);
        return Stat(stats, "dirty_bytes") == 0 && Stat(stats, "reclaim_backlog_bytes") == 0;
      },
      std::chrono::seconds(60), std::chrono::milliseconds(50));
  return stats;
}

bool WriteAllIn(int fd, const char* data, size_t size, size_t piece) {
  for (size_t off = 0; off < size; off += piece) {
    const size_t n = std::min(piece, size - off);
    if (write(fd, data + off, n) != ssize_t(n)) return false;
  }
  return true;
}

// One rank's job; runs in a forked child. Returns 0 on success; on failure prints why.
int RankMain(int rank, const std::string& dir, const std::string& data) {
  const std::string path = dir + "/cache-00000-of-00001.arrow";
  auto fail = [&](const char* what) {
    std::fprintf(stderr, "rank %d: %s: %s\n", rank, what, strerror(errno));
    return 1;
  };
  switch (rank) {
    case 0: {  // 8 KiB write(2)s, as a Python file with default buffering does
      int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0) return fail("open");
      if (!WriteAllIn(fd, data.data(), data.size(), 8192)) return fail("write 8 KiB");
      if (close(fd) != 0) return fail("close");
      return 0;
    }
    case 1: {  // 1 MiB writes
      int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0) return fail("open");
      if (!WriteAllIn(fd, data.data(), data.size(), 1 << 20)) return fail("write 1 MiB");
      if (close(fd) != 0) return fail("close");
      return 0;
    }
    case 2: {  // ftruncate to the final size, MAP_SHARED, memcpy, msync
      int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
      if (fd < 0) return fail("open");
      if (ftruncate(fd, off_t(data.size())) != 0) return fail("ftruncate");
      void* map = mmap(nullptr, data.size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (map == MAP_FAILED) return fail("mmap");
      for (size_t off = 0; off < data.size(); off += 1 << 20) {
        std::memcpy(static_cast<char*>(map) + off, data.data() + off,
                    std::min<size_t>(1 << 20, data.size() - off));
      }
      if (msync(map, data.size(), MS_SYNC) != 0) return fail("msync");
      if (munmap(map, data.size()) != 0) return fail("munmap");
      if (close(fd) != 0) return fail("close");
      return 0;
    }
    case 3: {  // tmpXXXXXX, mostly 8 KiB writes with some big odd ones, rename, chmod
      std::string tmp = dir + "/tmpXXXXXX";
      int fd = mkstemp(tmp.data());
      if (fd < 0) return fail("mkstemp");
      size_t off = 0;
      for (int i = 0; off < data.size(); ++i) {
        const size_t n = std::min<size_t>(i % 50 == 49 ? (1 << 20) + 77 : 8192, data.size() - off);
        if (write(fd, data.data() + off, n) != ssize_t(n)) return fail("write");
        off += n;
      }
      if (close(fd) != 0) return fail("close");
      if (rename(tmp.c_str(), path.c_str()) != 0) return fail("rename");
      if (chmod(path.c_str(), 0644) != 0) return fail("chmod");
      return 0;
    }
  }
  return 2;
}

class NRanksTest : public MountTest {
 protected:
  NRanksTest() : MountTest(std::chrono::seconds(900)) {}

  // Mounts `store` (each test uses stores of its own) on mnt_.
  void MountStore(const std::string& store) {
    store_ = store;
    ASSERT_NO_FATAL_FAILURE(Mount());
  }

  // Compares a whole file with `want`: by read(2), or by one shared read-only mapping.
  void ExpectFileEquals(const std::string& path, const std::string& want, bool use_mmap) {
    int fd = open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
    struct stat st;
    ASSERT_EQ(fstat(fd, &st), 0);
    ASSERT_EQ(uint64_t(st.st_size), want.size()) << path;
    if (use_mmap) {
      void* map = mmap(nullptr, want.size(), PROT_READ, MAP_SHARED, fd, 0);
      ASSERT_NE(map, MAP_FAILED) << path << ": " << strerror(errno);
      // Random page faults first (the way readers of Arrow files touch them), then all.
      std::mt19937_64 rng(want.size());
      for (int i = 0; i < 2000; ++i) {
        const size_t off = (rng() % (want.size() / 4096)) * 4096;
        ASSERT_EQ(std::memcmp(static_cast<char*>(map) + off, want.data() + off, 4096), 0)
            << path << ": page at " << off;
      }
      const bool same = std::memcmp(map, want.data(), want.size()) == 0;
      munmap(map, want.size());
      EXPECT_TRUE(same) << path << ": mapped bytes differ";
    } else {
      std::string buf(1 << 20, '\0');
      for (size_t off = 0; off < want.size();) {
        ssize_t n = read(fd, buf.data(), buf.size());
        ASSERT_GT(n, 0) << path << " @" << off << ": " << strerror(errno);
        ASSERT_LE(off + size_t(n), want.size());
        ASSERT_EQ(std::memcmp(buf.data(), want.data() + off, size_t(n)), 0)
            << path << ": bytes differ in [" << off << ", " << off + n << ")";
        off += size_t(n);
      }
    }
    close(fd);
  }
};

TEST_F(NRanksTest, NRanksWritingTheSameDataStoreOneCompressedCopy) {
  const size_t size = ScaledSize(256);
  auto t0 = Clock::now();
  const std::string data = MakeRealData(size, 4242);
  std::printf("nranks: %.0f MiB of real data generated in %.1f s (RANKFS_TEST_SCALE=%.3g)\n",
              MiB(size), Seconds(t0), Scale());

  // The reference "one compressed copy": the same bytes written ONCE through rankfs into a
  // fresh store. Its stored_bytes is what rankfs's own per-chunk zstd makes of one copy (the
  // chunking and the compression level are rankfs's, so the 1.05x below measures only the
  // cost of N copies, concurrent writers and different write patterns, not the codec).
  uint64_t ref_stored = 0, ref_packs = 0;
  {
    const std::string store = tmp_.Join("store-one-copy");
    ASSERT_NO_FATAL_FAILURE(MountStore(store));
    t0 = Clock::now();
    int fd = open((mnt_ + "/one-copy").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_TRUE(WriteAllIn(fd, data.data(), data.size(), 8192)) << strerror(errno);
    ASSERT_EQ(close(fd), 0) << strerror(errno);
    const auto stats = WaitQuiet(mnt_);
    ref_stored = Stat(stats, "stored_bytes");
    ref_packs = PackBytes(store);
    std::printf(
        "nranks: one copy written in %.1f s; stored_bytes %.1f MiB "
        "(unique %.1f MiB, compression %.2fx), packs %.1f MiB\n",
        Seconds(t0), MiB(ref_stored), MiB(Stat(stats, "unique_bytes")),
        double(size) / double(ref_stored), MiB(ref_packs));
    ASSERT_GT(ref_stored, 0u);
    ASSERT_LT(ref_stored, size) << "real data should compress";
    ASSERT_NO_FATAL_FAILURE(Unmount());
  }
#ifdef RANKFS_TEST_HAVE_ZSTD
  {
    // For comparison only: `zstd -1` of the whole buffer as one frame (a long window sees
    // repeats that per-chunk compression cannot).
    t0 = Clock::now();
    std::string out(ZSTD_compressBound(size), '\0');
    const size_t n = ZSTD_compress(out.data(), out.size(), data.data(), size, 1);
    if (!ZSTD_isError(n)) {
      std::printf(
          "nranks: whole-buffer zstd -1: %.1f MiB (%.2fx) in %.1f s; rankfs's one copy "
          "is %.3fx of that\n",
          MiB(n), double(size) / double(n), Seconds(t0), double(ref_stored) / double(n));
    }
  }
#endif

  // N ranks, one fresh store.
  const std::string store = tmp_.Join("store");
  ASSERT_NO_FATAL_FAILURE(MountStore(store));
  std::vector<std::string> dirs;
  for (int r = 0; r < kRanks; ++r) {
    dirs.push_back(mnt_ + "/hf_datasets-rank" + std::to_string(r));
    ASSERT_EQ(mkdir(dirs.back().c_str(), 0755), 0) << strerror(errno);
  }
  // The children block on the pipe until the parent closes it: all start together.
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  std::vector<pid_t> pids;
  for (int r = 0; r < kRanks; ++r) {
    pid_t pid = fork();
    if (pid < 0) close(go[1]);  // releases the ranks already started rather than hang them
    ASSERT_GE(pid, 0) << strerror(errno);
    if (pid == 0) {
      close(go[1]);
      char c;
      while (read(go[0], &c, 1) < 0 && errno == EINTR) {
      }
      _exit(RankMain(r, dirs[size_t(r)], data));
    }
    pids.push_back(pid);
  }
  close(go[0]);
  t0 = Clock::now();
  close(go[1]);
  std::vector<double> rank_seconds(kRanks);
  for (int done = 0; done < kRanks; ++done) {
    int status = 0;
    pid_t pid = wait(&status);
    ASSERT_GT(pid, 0) << strerror(errno);
    const int r = int(std::find(pids.begin(), pids.end(), pid) - pids.begin());
    rank_seconds[size_t(r)] = Seconds(t0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "rank " << r << " failed, wait status " << status << "\n"
        << fs_->DaemonLog();
  }
  const double write_s = Seconds(t0);
  std::printf(
      "nranks: %d ranks x %.0f MiB written in %.1f s (%.0f MiB/s in all); per rank "
      "(8K writes, 1M writes, mmap, tmp+rename): %.1f %.1f %.1f %.1f s\n",
      kRanks, MiB(size), write_s, MiB(double(size) * kRanks) / write_s, rank_seconds[0],
      rank_seconds[1], rank_seconds[2], rank_seconds[3]);

  // rank 3's temporary name is gone and the chmod took.
  {
    DIR* d = opendir(dirs[3].c_str());
    ASSERT_NE(d, nullptr);
    std::vector<std::string> names;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') names.push_back(e->d_name);
    }
    closedir(d);
    EXPECT_EQ(names, std::vector<std::string>{"cache-00000-of-00001.arrow"});
    struct stat st;
    ASSERT_EQ(stat((dirs[3] + "/cache-00000-of-00001.arrow").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0644u);
  }

  // Space: all files closed, nothing buffered.
  const auto stats = WaitQuiet(mnt_);
  const uint64_t packs = PackBytes(store);
  const uint64_t physical = Stat(stats, "physical_bytes");
  std::printf(
      "nranks: logical %.1f MiB, unique %.1f MiB, stored %.1f MiB, physical_bytes %.1f "
      "MiB, packs (st_blocks) %.1f MiB; packs / one compressed copy = %.3f\n",
      MiB(Stat(stats, "logical_bytes")), MiB(Stat(stats, "unique_bytes")),
      MiB(Stat(stats, "stored_bytes")), MiB(physical), MiB(packs),
      double(packs) / double(ref_stored));
  EXPECT_EQ(Stat(stats, "dirty_bytes"), 0u);
  EXPECT_EQ(Stat(stats, "logical_bytes"), uint64_t(kRanks) * size);
  EXPECT_LE(double(packs), 1.05 * double(ref_stored))
      << "4 copies take " << packs << " bytes of packs; one compressed copy is " << ref_stored;
  EXPECT_LE(double(physical), 1.05 * double(ref_stored))
      << "physical_bytes " << physical << " vs one compressed copy " << ref_stored;
  // The stats file and the packs directory describe the same allocation.
  EXPECT_NEAR(double(physical), double(packs), 0.01 * double(packs) + 65536.0);

  // Every copy reads back exactly; two of them through mmap, the way the job reads them.
  t0 = Clock::now();
  for (int r = 0; r < kRanks; ++r) {
    ASSERT_NO_FATAL_FAILURE(
        ExpectFileEquals(dirs[size_t(r)] + "/cache-00000-of-00001.arrow", data, r >= 2));
  }
  std::printf("nranks: %d copies read back (page cache) and compared in %.1f s\n", kRanks,
              Seconds(t0));
  // Again from the store itself: a remount starts with an empty page cache.
  ASSERT_NO_FATAL_FAILURE(Unmount());
  ASSERT_NO_FATAL_FAILURE(MountStore(store));
  t0 = Clock::now();
  for (int r = 0; r < kRanks; ++r) {
    ASSERT_NO_FATAL_FAILURE(
        ExpectFileEquals(dirs[size_t(r)] + "/cache-00000-of-00001.arrow", data, r % 2 == 0));
  }
  std::printf("nranks: %d copies read back after a remount and compared in %.1f s\n", kRanks,
              Seconds(t0));

  // rm -rf gives the space back.
  for (const std::string& d : dirs) {
    auto rm = RunCommand({"rm", "-rf", d}, std::chrono::seconds(120));
    ASSERT_TRUE(rm.ok());
    ASSERT_EQ(rm->exit_code, 0) << rm->output;
  }
  uint64_t left = 0;
  WaitUntil([&] { return (left = PackBytes(store)) <= (1 << 20); });
  EXPECT_LE(left, uint64_t(1) << 20) << "packs still hold " << left << " bytes 60 s after rm -rf";
}

TEST_F(NRanksTest, ShiftedCopiesShareTheirChunks) {
  const size_t size = ScaledSize(64);
  const std::string payload = MakeRealData(size, 777);
  // Schema headers of three lengths with different fingerprints.
  auto header = [](size_t len, const std::string& fingerprint) {
    std::string h =
        "ARROW1\n{\"schema\": {\"fields\": [\"input_ids\", \"attention_mask\"]}, "
        "\"fingerprint\": \"" +
        fingerprint + "\", \"pad\": \"";
    while (h.size() < len) h += char('a' + h.size() % 26);
    h.resize(len);
    return h;
  };
  const std::string headers[3] = {header(100, "3f2a9c0d11e84b7f"),
                                  header(137, "b71c44e0a9d2f3561e0c8d7a"),
                                  header(1000, "e0a5c3d9f1b24e68a7c9d0b3e5f61728")};
  ASSERT_NO_FATAL_FAILURE(MountStore(tmp_.Join("store")));
  std::vector<std::string> contents;
  for (int i = 0; i < 3; ++i) {
    contents.push_back(headers[i] + payload);
    const std::string path = mnt_ + "/shifted" + std::to_string(i) + ".arrow";
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_TRUE(WriteAllIn(fd, contents.back().data(), contents.back().size(), 8192));
    ASSERT_EQ(close(fd), 0);
  }
  const auto stats = WaitQuiet(mnt_);
  const uint64_t unique = Stat(stats, "unique_bytes");
  ASSERT_NE(unique, ~0ull) << "no unique_bytes in the stats file";
  // Without sharing, unique would be 3 * size; with perfect sharing, size (plus headers).
  const double shared = (3.0 * double(size) - double(unique)) / (2.0 * double(size));
  std::printf(
      "shifted: 3 x %.0f MiB behind headers of 100/137/1000 bytes: unique %.2f MiB, "
      "shared ratio %.4f (chunks %s)\n",
      MiB(size), MiB(unique), shared, stats.count("chunks") ? stats.at("chunks").c_str() : "?");
  EXPECT_GE(shared, 0.90) << "unique_bytes " << unique << " for a payload of " << size;
  for (int i = 0; i < 3; ++i) {
    ASSERT_NO_FATAL_FAILURE(
        ExpectFileEquals(mnt_ + "/shifted" + std::to_string(i) + ".arrow", contents[i], i == 2));
  }
}

}  // namespace
}  // namespace rankfs
