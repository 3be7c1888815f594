// Space through a real mount: `cp` inside the mount shares chunks instead of copying bytes, and
// `rm -rf` of a big tree gives the space back on the store's disk, without a remount, faster
// than the tree was written. Needs root and /dev/fuse (skips otherwise).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/mount_test.h"
#include "tests/testutil/temp_dir.h"
#include "tests/testutil/test_data.h"
#include "tests/testutil/wait_until.h"

namespace rankfs {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t PackBytes(const std::string& store) {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(store + "/packs", ec)) {
    struct stat st;
    if (stat(e.path().c_str(), &st) == 0) total += uint64_t(st.st_blocks) * 512;
  }
  return total;
}

uint64_t FreeBytes(const std::string& path) {
  struct statvfs v;
  EXPECT_EQ(statvfs(path.c_str(), &v), 0);
  return uint64_t(v.f_bfree) * v.f_frsize;
}

// Writes `n` bytes of incompressible, unique data (so each byte costs a byte in the store), and
// fsyncs them: the tests measure the packs right after, and close() hands a file's last bytes
// to the flush pipeline without waiting for them (sync(2) does not reach a FUSE daemon).
void WriteUnique(const std::string& path, size_t n, uint64_t seed) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  const size_t piece = 16 << 20;
  for (size_t off = 0; off < n; off += piece) {
    std::string data = MakeRandomData(std::min(piece, n - off), seed * 1000003 + off);
    ASSERT_EQ(write(fd, data.data(), data.size()), ssize_t(data.size())) << strerror(errno);
  }
  ASSERT_EQ(fsync(fd), 0) << strerror(errno);
  ASSERT_EQ(close(fd), 0);
}

class SpaceTest : public MountTest {
 protected:
  SpaceTest() : MountTest(std::chrono::seconds(300)) {}
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(Mount());
  }
};

TEST_F(SpaceTest, CpOfAOneGiBFileAddsUnderOneMiB) {
  const size_t size = 1ull << 30;
  ASSERT_NO_FATAL_FAILURE(WriteUnique(mnt_ + "/big", size, 1));
  sync();
  uint64_t before = PackBytes(store_);
  EXPECT_GE(before, size);
  auto t0 = Clock::now();
  auto r = RunCommand({"cp", mnt_ + "/big", mnt_ + "/copy"}, std::chrono::seconds(120));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 0) << r->output;
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  sync();
  uint64_t after = PackBytes(store_);
  std::printf("cp of 1 GiB: %.2f s, pack bytes %llu -> %llu (+%lld)\n", secs,
              (unsigned long long)before, (unsigned long long)after,
              (long long)(after - before));
  EXPECT_LT(after, before + (1 << 20));
  auto c = RunCommand({"cmp", mnt_ + "/big", mnt_ + "/copy"}, std::chrono::seconds(120));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->exit_code, 0) << c->output;
}

// The bar is the machine's own pace, measured in the same run: rm -rf and giving the space
// back must take less than twice as long as writing the tree did. Releasing is linear in the
// chunks and much cheaper than writing them, and load slows both alike; a release quadratic in
// the chunks takes many times the writing time (docs/testing.md, "Tests that read the clock").
// The rm alone has no bar: unlinks never wait for the release (the daemon's delete thread does
// it after the kernel's FORGET), and no bar on the clock could tell a release done inside the
// unlinks from a loaded machine.
TEST_F(SpaceTest, RmRfOfAOneGiBTreeGivesTheSpaceBackInLinearTime) {
  const size_t per_file = 64 << 20;
  const auto w0 = Clock::now();
  for (int d = 0; d < 4; ++d) {
    std::string dir = mnt_ + "/tree/d" + std::to_string(d);
    std::filesystem::create_directories(dir);
    for (int f = 0; f < 4; ++f) {
      ASSERT_NO_FATAL_FAILURE(WriteUnique(dir + "/f" + std::to_string(f), per_file, d * 4 + f + 7));
    }
  }
  const double write_secs = std::chrono::duration<double>(Clock::now() - w0).count();
  sync();
  uint64_t used = PackBytes(store_);
  ASSERT_GE(used, 16 * per_file);
  uint64_t free_before = FreeBytes(tmp_.path());

  auto t0 = Clock::now();
  auto r = RunCommand({"rm", "-rf", mnt_ + "/tree"}, std::chrono::seconds(120));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->exit_code, 0) << r->output;
  double rm_secs = std::chrono::duration<double>(Clock::now() - t0).count();

  // df on the store's disk. (Other processes on the machine move free space too, so the bar is
  // 90 % of what the tree held.)
  const bool back = WaitUntil(
      [&] {
        return FreeBytes(tmp_.path()) >= free_before + used * 9 / 10 &&
               PackBytes(store_) < used / 10;
      },
      std::chrono::seconds(200), std::chrono::milliseconds(50));
  const double back_secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf(
      "1 GiB tree: written in %.2f s; rm -rf returned in %.3f s, space back after %.3f s "
      "(packs %llu -> %llu)\n",
      write_secs, rm_secs, back_secs, (unsigned long long)used,
      (unsigned long long)PackBytes(store_));
  ASSERT_TRUE(back) << "space not back 200 s after rm -rf; packs hold " << PackBytes(store_);
  EXPECT_LT(back_secs, 2 * write_secs)
      << "giving the space back took more than twice as long as writing the tree";
}

}  // namespace
}  // namespace rankfs
