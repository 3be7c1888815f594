// FUSE_HANDLE_KILLPRIV_V2 (fs/killpriv_io.h): the daemon turns the flag on in the INIT reply,
// so the kernel stops asking for security.capability before every write() — and in exchange
// the daemon must clear setuid/setgid and file capabilities when data changes, as the kernel
// did before.
//
// Needs root and /dev/fuse (skips otherwise); the privilege checks act as an unprivileged
// user through a forked child.
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/mount_test.h"

namespace rankfs {
namespace {

constexpr uid_t kNobody = 65534;

// Runs `op` on `path` as `id`; 0 when it succeeded and the child exited cleanly.
int RunOpAs(uid_t id, int (*op)(const std::string&), const std::string& path) {
  ChildResult r = rankfs::RunAsUser(id, [&] { return std::to_string(op(path)); });
  return r.exited_cleanly ? std::stoi(r.output) : -1;
}

int AppendOneLine(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_APPEND);
  if (fd < 0) return 1;
  bool ok = write(fd, "x\n", 2) == 2;
  return close(fd) == 0 && ok ? 0 : 2;
}

int TruncateToZero(const std::string& path) { return truncate(path.c_str(), 0) == 0 ? 0 : 1; }

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
}

class KillprivTest : public MountTest {
 protected:
  KillprivTest() : MountTest(std::chrono::seconds(120)) {}
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_EQ(chmod(tmp_.path().c_str(), 0755), 0);
    ASSERT_NO_FATAL_FAILURE(Mount("allow_other"));
  }
  std::string MakeFile(const std::string& name, mode_t mode) {
    std::string p = mnt_ + "/" + name;
    int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    EXPECT_GE(fd, 0) << p << ": " << strerror(errno);
    EXPECT_EQ(write(fd, "#!/bin/true\n", 12), 12);
    close(fd);
    EXPECT_EQ(chmod(p.c_str(), mode), 0) << strerror(errno);
    return p;
  }
};

TEST_F(KillprivTest, WritesDoNotEachAskForSecurityCapability) {
  const std::string p = mnt_ + "/stream";
  int fd = open(p.c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  const uint64_t before = StatValue(mnt_, "getxattr_requests");
  ASSERT_NE(before, ~0ull) << "no getxattr_requests in the stats file";
  std::string block(8192, 'k');
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(write(fd, block.data(), block.size()), 8192);
  ASSERT_EQ(close(fd), 0);
  const uint64_t asked = StatValue(mnt_, "getxattr_requests") - before;
  // Without the flag the kernel asks once per write(): 2000 here. With it, once per inode.
  EXPECT_LE(asked, 10u) << "the kernel still checks security.capability on every write";
}

TEST_F(KillprivTest, AnUnprivilegedWriteClearsSetuidAndSetgidExec) {
  const std::string suid = MakeFile("suid", 04777);
  const std::string sgid = MakeFile("sgid", 02777);
  const std::string sgid_noexec = MakeFile("sgid-noexec", 02766);  // mandatory-lock style
  ASSERT_EQ(ModeOf(suid), 04777u);
  for (const std::string& p : {suid, sgid, sgid_noexec}) {
    ASSERT_EQ(RunOpAs(kNobody, AppendOneLine, p), 0) << p;
  }
  EXPECT_EQ(ModeOf(suid), 0777u);
  EXPECT_EQ(ModeOf(sgid), 0777u);
  EXPECT_EQ(ModeOf(sgid_noexec), 02766u) << "setgid without group exec is not a privilege";
}

// The kernel leaves chown's clearing to the filesystem under KILLPRIV_V2 too; ext4 clears
// setuid even for root (posix_test compares the whole sequence with the backing filesystem).
TEST_F(KillprivTest, ChownClearsSetuidEvenForRoot) {
  const std::string suid = MakeFile("suid-chown", 04755);
  const std::string sgid_noexec = MakeFile("sgid-noexec-chown", 02644);
  ASSERT_EQ(chown(suid.c_str(), 1234, 5678), 0) << strerror(errno);
  ASSERT_EQ(chown(sgid_noexec.c_str(), 1234, 5678), 0) << strerror(errno);
  EXPECT_EQ(ModeOf(suid), 0755u);
  EXPECT_EQ(ModeOf(sgid_noexec), 02644u);
}

TEST_F(KillprivTest, TruncateClearsSetuidAndWriteDropsFileCapabilities) {
  const std::string suid = MakeFile("suid-trunc", 04777);
  ASSERT_EQ(RunOpAs(kNobody, TruncateToZero, suid), 0);
  EXPECT_EQ(ModeOf(suid), 0777u);

  const std::string capped = MakeFile("capped", 0777);
  // A syntactically valid VFS_CAP_REVISION_2 value (cap_net_raw permitted): the kernel checks
  // the format of security.capability before it stores it.
  const unsigned char cap[20] = {0, 0, 0, 2, 0, 0x20, 0, 0};
  ASSERT_EQ(setxattr(capped.c_str(), "security.capability", cap, sizeof cap, 0), 0)
      << strerror(errno);
  ASSERT_EQ(RunOpAs(kNobody, AppendOneLine, capped), 0);
  char buf[64];
  EXPECT_LT(getxattr(capped.c_str(), "security.capability", buf, sizeof buf), 0);
  EXPECT_EQ(errno, ENODATA);
}

}  // namespace
}  // namespace rankfs
