// The crash loop: N times in a row on one store, start the daemon, run concurrent writers
// (tests/testutil/crash_workload.h: fsyncers, never-synced writers, tmp->final renamers,
// deleters) doing real syscalls on the mount, kill -9 the daemon at a random moment, run
// `rankfs fsck STORE` offline, remount and check the ledger's rules: every file whose fsync
// returned has exactly its content, every other file reads without error and each byte is
// either the written one or zero, durable renames/unlinks stay done, nothing unknown appears.
// Each round also re-checks the previous round's directory exactly (as the last check saw
// it), then deletes it, so deletions and their background release are crashed into as well.
// fsck after each crash may report leaks only (refcount too high, unreferenced chunk, orphan
// inode, orphan pack) and allocated bytes that count lost writes; at the end a clean unmount,
// `fsck --repair` and a clean `fsck`.
//
// RANKFS_CRASH_ITERATIONS sets N (default 6; 3 under sanitizers); RANKFS_CRASH_SEED the seed
// (default: random, printed). scripts/crash_loop.sh runs the full-length loop (docs/testing.md).
//
// Needs root and /dev/fuse (skips otherwise).
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/testutil/crash_workload.h"
#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/mount_test.h"
#include "tests/testutil/test_data.h"
#include "tests/testutil/test_env.h"

namespace rankfs {
namespace {

// CrashTarget over a mounted directory, with plain syscalls.
class PosixTarget final : public CrashTarget {
 public:
  explicit PosixTarget(std::string root) : root_(std::move(root)) {}

  int MkDir(const std::string& dir) override { return Rc(mkdir(Path(dir).c_str(), 0755)); }
  int Create(const std::string& name) override {
    int fd = open(Path(name).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    return fd >= 0 ? fd : -errno;
  }
  int Write(int fd, uint64_t offset, std::string_view data) override {
    while (!data.empty()) {
      ssize_t n = pwrite(fd, data.data(), data.size(), off_t(offset));
      if (n < 0) return -errno;
      if (n == 0) return -EIO;
      data.remove_prefix(size_t(n));
      offset += uint64_t(n);
    }
    return 0;
  }
  int Fsync(int fd) override { return Rc(fsync(fd)); }
  int FsyncDir(const std::string& dir) override {
    int fd = open(Path(dir).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = Rc(fsync(fd));
    close(fd);
    return rc;
  }
  int Close(int fd) override { return Rc(close(fd)); }
  int Rename(const std::string& from, const std::string& to) override {
    return Rc(rename(Path(from).c_str(), Path(to).c_str()));
  }
  int Unlink(const std::string& name) override { return Rc(unlink(Path(name).c_str())); }
  int RmDir(const std::string& dir) override { return Rc(rmdir(Path(dir).c_str())); }
  int ReadFile(const std::string& name, std::string* out) override {
    out->clear();
    int fd = open(Path(name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    char buf[1 << 16];
    int rc = 0;
    for (;;) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n < 0) rc = -errno;
      if (n <= 0) break;
      out->append(buf, size_t(n));
    }
    close(fd);
    return rc;
  }
  int ListDir(const std::string& dir, std::vector<std::string>* names) override {
    names->clear();
    DIR* d = opendir(Path(dir).c_str());
    if (d == nullptr) return -errno;
    errno = 0;
    while (dirent* e = readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
        names->push_back(e->d_name);
      }
    }
    int rc = -errno;
    closedir(d);
    return rc;
  }

 private:
  static int Rc(int r) { return r == 0 ? 0 : -errno; }
  std::string Path(const std::string& name) const { return root_ + "/" + name; }
  const std::string root_;
};

// The kinds of the findings `rankfs fsck` printed (lines "KIND: message"), skipping its header,
// details and summary lines.
std::vector<std::string> FsckFindingKinds(const std::string& output, const std::string& store) {
  std::vector<std::string> kinds;
  size_t start = 0;
  while (start < output.size()) {
    size_t end = output.find('\n', start);
    if (end == std::string::npos) end = output.size();
    const std::string line = output.substr(start, end - start);
    start = end + 1;
    if (line.empty() || line[0] == ' ' || line.rfind("rankfs fsck", 0) == 0 ||
        line.rfind(store, 0) == 0 || line.rfind("run 'rankfs fsck", 0) == 0) {
      continue;
    }
    const size_t colon = line.find(": ");
    kinds.push_back(colon == std::string::npos ? line : line.substr(0, colon));
  }
  return kinds;
}

uint64_t Iterations() { return EnvNumber("RANKFS_CRASH_ITERATIONS", kSanitized ? 3 : 6); }

class CrashLoopTest : public MountTest {
 protected:
  CrashLoopTest() : MountTest(std::chrono::seconds(120 + 30 * Iterations())) {}

  // Mounts with rankfs_faulty (tests/tools/rankfs_faulty.cc) following the fault plan `faults`.
  void MountFaulty(const std::string& faults) {
    fs_.reset();
    setenv("RANKFS_FAULTS", faults.c_str(), 1);
    auto m = MountedFs::Start(RANKFS_FAULTY_BINARY, store_, mnt_);
    unsetenv("RANKFS_FAULTS");
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    fs_ = std::move(m).value();
  }

  // `rankfs fsck STORE` on the unmounted store: leaks are allowed after a crash, nothing else.
  void ExpectFsckFindsOnlyLeaks(const std::string& context) {
    auto r = RunCommand({RANKFS_BINARY, "fsck", store_}, std::chrono::seconds(120));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    // Allocated bytes that count batches lost in the crash are off in st_blocks only.
    static const std::set<std::string> kLeaks = {"refcount too high", "unreferenced chunk",
                                                 "orphan inode", "orphan pack",
                                                 "allocated bytes mismatch"};
    std::map<std::string, int> counts;
    for (const std::string& kind : FsckFindingKinds(r->output, store_)) {
      ++counts[kind];
      EXPECT_TRUE(kLeaks.count(kind)) << context << ": fsck found damage (" << kind << "):\n"
                                      << r->output;
    }
    EXPECT_TRUE(r->exit_code == 0 || (r->exit_code == 4 && !counts.empty()))
        << context << ": fsck exit " << r->exit_code << ":\n"
        << r->output;
    std::printf("  fsck exit %d", r->exit_code);
    for (const auto& [kind, n] : counts) std::printf(", %d %s", n, kind.c_str());
    std::printf("\n");
  }
};

TEST_F(CrashLoopTest, KillNineAtRandomMomentsNeverLosesFsyncedData) {
  const uint64_t iterations = Iterations();
  const uint64_t seed = EnvNumber("RANKFS_CRASH_SEED", std::random_device()());
  std::printf(
      "crash loop: %llu iterations, seed %llu (RANKFS_CRASH_SEED=%llu reproduces the "
      "kill delays and writes)\n",
      (unsigned long long)iterations, (unsigned long long)seed, (unsigned long long)seed);
  RecordProperty("seed", std::to_string(seed));
  std::mt19937_64 rng(seed);
  const size_t max_file = kSanitized ? (512 << 10) : (2 << 20);
  const std::string pool = MakeRealData(4 * max_file + (8 << 20), seed);

  ASSERT_NO_FATAL_FAILURE(Mount());
  PosixTarget target(mnt_);
  std::string prev_dir;
  DirSnapshot prev_snapshot;
  size_t total_fsyncs = 0, total_files = 0;
  for (uint64_t it = 0; it < iterations; ++it) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string dir = "round" + std::to_string(it);
    // A third of the rounds meet a disk that says no before the kill (rankfs_faulty): failing
    // pack syncs (the writers see EIO and fsync again), or a failing WAL sync, the ordinary way
    // or after it made the write durable (the metadata store then refuses every write).
    std::string faults;
    switch (rng() % 6) {
      case 0:
        faults = "sync:.pack:" + std::to_string(rng() % 20) + ":" + std::to_string(1 + rng() % 3);
        break;
      case 1:
        faults = "sync:.log:" + std::to_string(rng() % 12) + ":1" + (rng() % 2 ? ":applied" : "");
        break;
    }
    if (!faults.empty()) {
      ASSERT_NO_FATAL_FAILURE(Unmount());
      ASSERT_NO_FATAL_FAILURE(MountFaulty(faults));
    }
    ASSERT_EQ(target.MkDir(dir), 0) << dir;
    CrashWorkloadOptions o;
    o.dir = dir;
    o.seed = rng();
    o.writers_per_kind = kSanitized ? 1 : 2;
    o.max_file_bytes = max_file;
    o.pool = &pool;
    o.faults = !faults.empty();
    CrashWorkload work(&target, o);
    const auto delay = std::chrono::milliseconds(10 + rng() % 1500);
    work.Start();
    std::this_thread::sleep_for(delay);
    work.MarkCrash();
    Status killed = fs_->Kill9();
    work.Join();
    ASSERT_TRUE(killed.ok()) << killed.ToString();
    fs_.reset();
    const std::string context = "round " + std::to_string(it) + " (seed " + std::to_string(seed) +
                                ", kill after " + std::to_string(delay.count()) + " ms" +
                                (faults.empty() ? "" : ", faults " + faults) + ")";
    for (const std::string& e : work.Errors()) ADD_FAILURE() << context << ": " << e;
    std::printf("%s: %zu files created, %zu fsyncs returned, %zu injected errors seen\n",
                context.c_str(), work.files_created(), work.fsyncs_returned(),
                work.injected_errors());
    ASSERT_NO_FATAL_FAILURE(ExpectFsckFindsOnlyLeaks(context));
    ASSERT_NO_FATAL_FAILURE(Mount());

    CrashVerifyStats stats;
    DirSnapshot snapshot;
    for (const std::string& bad : work.Verify(&target, &stats, &snapshot)) {
      ADD_FAILURE() << context << ": " << bad;
    }
    if (!prev_dir.empty()) {
      for (const std::string& bad : VerifySnapshot(&target, prev_dir, prev_snapshot)) {
        ADD_FAILURE() << context << ": previous round: " << bad;
      }
      for (const auto& [name, digest] : prev_snapshot) EXPECT_EQ(target.Unlink(name), 0) << name;
      EXPECT_EQ(target.RmDir(prev_dir), 0) << prev_dir;
    }
    EXPECT_EQ(StatValue(mnt_, "read_errors"), 0u) << context;
    if (HasFailure()) {
      std::printf("daemon log:\n%s\n", fs_->DaemonLog().c_str());
      break;
    }
    // Without a returned fsync even the round's directory may be gone.
    std::vector<std::string> listed;
    prev_dir = target.ListDir(dir, &listed) == 0 ? dir : "";
    prev_snapshot = std::move(snapshot);
    total_fsyncs += work.fsyncs_returned();
    total_files += stats.files;
    std::printf(
        "  checked %zu files (%zu held their fsync'd content, %zu unsynced bytes of "
        "which %zu zero), %zu optional names absent; %.1f s\n",
        stats.files, stats.synced_exact, stats.unsynced_bytes, stats.unsynced_zero,
        stats.absent_optional,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  ASSERT_FALSE(HasFailure());
  // The loop must have tested something: fsyncs returned before kills, files survived.
  EXPECT_GT(total_fsyncs, 0u);
  EXPECT_GT(total_files, 0u);

  // Clean unmount; fsck --repair gives back what the crashes leaked; then the store is clean.
  Status s = fs_->Unmount();
  ASSERT_TRUE(s.ok()) << s.ToString();
  fs_.reset();
  auto repair = RunCommand({RANKFS_BINARY, "fsck", "--repair", store_}, std::chrono::seconds(120));
  ASSERT_TRUE(repair.ok());
  EXPECT_TRUE(repair->exit_code == 0 || repair->exit_code == 1) << repair->output;
  auto check = RunCommand({RANKFS_BINARY, "fsck", store_}, std::chrono::seconds(120));
  ASSERT_TRUE(check.ok());
  EXPECT_EQ(check->exit_code, 0) << "after --repair:\n" << check->output;
  ASSERT_NO_FATAL_FAILURE(Mount());
  for (const std::string& bad : prev_dir.empty()
                                    ? std::vector<std::string>()
                                    : VerifySnapshot(&target, prev_dir, prev_snapshot)) {
    ADD_FAILURE() << "after fsck --repair: " << bad;
  }
  s = fs_->Unmount();
  EXPECT_TRUE(s.ok()) << s.ToString();
}

}  // namespace
}  // namespace rankfs
