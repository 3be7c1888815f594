// Mounts a fresh store with the real `rankfs` binary and checks the basic POSIX surface, the
// stats file, and how the daemon starts, refuses and stops. Needs root and /dev/fuse (skips
// otherwise).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/mount_test.h"
#include "tests/testutil/temp_dir.h"
#include "tests/testutil/wait_until.h"

namespace rankfs {
namespace {

namespace fs = std::filesystem;

void WriteFile(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  ASSERT_EQ(write(fd, data.data(), data.size()), ssize_t(data.size())) << strerror(errno);
  ASSERT_EQ(close(fd), 0) << strerror(errno);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::set<std::string> ListDir(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

bool InProcMounts(const std::string& mountpoint) {
  std::ifstream in("/proc/mounts");
  std::string source, point;
  std::string rest;
  while (in >> source >> point && std::getline(in, rest)) {
    if (point == mountpoint) return true;
  }
  return false;
}

class MountSmokeTest : public MountTest {};

TEST_F(MountSmokeTest, BasicFileAndDirectoryOperations) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string file = mnt_ + "/hello.txt";
  std::string data = "hello, rankfs\n";
  for (int i = 0; i < 10000; ++i) data += "line " + std::to_string(i) + "\n";
  ASSERT_NO_FATAL_FAILURE(WriteFile(file, data));
  EXPECT_EQ(ReadFile(file), data);
  struct stat st;
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(uint64_t(st.st_size), data.size());
  EXPECT_TRUE(S_ISREG(st.st_mode));

  ASSERT_EQ(mkdir((mnt_ + "/dir").c_str(), 0755), 0) << strerror(errno);
  EXPECT_EQ(ListDir(mnt_), (std::set<std::string>{"hello.txt", "dir"}));

  // The stats file answers at the root but never shows up in listings.
  const std::string stats = ReadFile(mnt_ + "/.rankfs-stats");
  EXPECT_NE(stats.find("logical_bytes="), std::string::npos) << stats;
  EXPECT_EQ(ListDir(mnt_).count(".rankfs-stats"), 0u);

  ASSERT_EQ(rename(file.c_str(), (mnt_ + "/dir/moved.txt").c_str()), 0) << strerror(errno);
  EXPECT_EQ(ListDir(mnt_ + "/dir"), (std::set<std::string>{"moved.txt"}));
  EXPECT_EQ(ReadFile(mnt_ + "/dir/moved.txt"), data);
  EXPECT_NE(rmdir((mnt_ + "/dir").c_str()), 0);
  EXPECT_EQ(errno, ENOTEMPTY);
  ASSERT_EQ(unlink((mnt_ + "/dir/moved.txt").c_str()), 0) << strerror(errno);
  ASSERT_EQ(rmdir((mnt_ + "/dir").c_str()), 0) << strerror(errno);
  EXPECT_TRUE(ListDir(mnt_).empty());

  struct statvfs sv;
  ASSERT_EQ(statvfs(mnt_.c_str(), &sv), 0) << strerror(errno);
  EXPECT_GT(sv.f_blocks, 0u);
  EXPECT_EQ(sv.f_namemax, 255u);
  auto df = RunCommand({"df", "-P", mnt_});
  ASSERT_TRUE(df.ok());
  EXPECT_EQ(df->exit_code, 0) << df->output;
  EXPECT_NE(df->output.find(mnt_), std::string::npos) << df->output;

  ASSERT_TRUE(fs_->Unmount().ok());
  EXPECT_FALSE(InProcMounts(mnt_));
}

TEST_F(MountSmokeTest, DataSurvivesUnmountAndRemount) {
  ASSERT_NO_FATAL_FAILURE(Mount("compress=3,cache_size=16M"));
  std::string data(3 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = char((i * 2654435761u) >> 13);
  ASSERT_NO_FATAL_FAILURE(WriteFile(mnt_ + "/blob", data));
  ASSERT_EQ(symlink("blob", (mnt_ + "/link").c_str()), 0) << strerror(errno);
  Status s = fs_->Unmount();
  ASSERT_TRUE(s.ok()) << s.ToString();
  fs_.reset();

  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(ReadFile(mnt_ + "/blob"), data);
  EXPECT_EQ(fs::read_symlink(mnt_ + "/link").string(), "blob");
}

TEST_F(MountSmokeTest, SecondMountOfTheSameStoreFails) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string mnt2 = AddMountpoint("mnt2");
  auto r = RunCommand({RANKFS_BINARY, "mount", store_, mnt2}, std::chrono::seconds(60));
  ASSERT_TRUE(r.ok());
  if (IsMountPoint(mnt2)) RunCommand({"fusermount3", "-u", mnt2}).status().IgnoreError();
  EXPECT_NE(r->exit_code, 0) << r->output;
  EXPECT_NE(r->output.find("already in use"), std::string::npos) << r->output;
  EXPECT_FALSE(IsMountPoint(mnt2));
  EXPECT_TRUE(fs_->IsMounted());  // the first mount is unaffected
}

TEST_F(MountSmokeTest, StoreWithMissingParentFailsClearly) {
  const std::string bad_store = tmp_.Join("no/such/parent/store");
  auto r = RunCommand({RANKFS_BINARY, "mount", bad_store, mnt_, "-f"}, std::chrono::seconds(60));
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->exit_code, 0) << r->output;
  EXPECT_NE(r->output.find("does not exist"), std::string::npos) << r->output;
  EXPECT_FALSE(IsMountPoint(mnt_));
}

TEST_F(MountSmokeTest, MissingMountpointFailsClearly) {
  auto r = RunCommand({RANKFS_BINARY, "mount", store_, tmp_.Join("nomnt"), "-f"},
                      std::chrono::seconds(60));
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->exit_code, 0) << r->output;
  EXPECT_NE(r->output.find("mountpoint"), std::string::npos) << r->output;
}

TEST_F(MountSmokeTest, BackgroundModeMountsAndReleasesTheStoreAtUnmount) {
  auto r = RunCommand({RANKFS_BINARY, "mount", store_, mnt_}, std::chrono::seconds(60));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->exit_code, 0) << r->output;
  ASSERT_TRUE(IsMountPoint(mnt_));
  ASSERT_NO_FATAL_FAILURE(WriteFile(mnt_ + "/f", "background"));
  auto u = RunCommand({"fusermount3", "-u", mnt_});
  ASSERT_TRUE(u.ok());
  ASSERT_EQ(u->exit_code, 0) << u->output;
  EXPECT_FALSE(InProcMounts(mnt_));
  // The daemon exits after writing back and unlocking the store; then a new mount works.
  Status m = Status(EBUSY, "not tried");
  ASSERT_TRUE(WaitUntil(
      [&] {
        m = TryMount();
        return m.ok() || m.message().find("already in use") == std::string::npos;
      },
      std::chrono::seconds(60), std::chrono::milliseconds(100)));
  ASSERT_TRUE(m.ok()) << m.ToString();
  EXPECT_EQ(ReadFile(mnt_ + "/f"), "background");
}

TEST_F(MountSmokeTest, Kill9LeavesNoMountAndTheStoreCanBeMountedAgain) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(mkdir((mnt_ + "/d").c_str(), 0755), 0);
  ASSERT_NO_FATAL_FAILURE(WriteFile(mnt_ + "/d/f", "x"));
  sync();
  Status s = fs_->Kill9();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(IsMountPoint(mnt_));
  fs_.reset();
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_TRUE(fs::is_directory(mnt_ + "/.")) << fs_->DaemonLog();
}

// The guard itself: past its limit it must abort (so a hung FUSE request cannot hang CI).
TEST(TestTimeoutDeathTest, AbortsTheProcessPastItsLimit) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH(
      {
        TestTimeout guard(std::chrono::seconds(1));
        sleep(10);
      },
      "ran past 1 s");
}

}  // namespace
}  // namespace rankfs
