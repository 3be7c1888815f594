// Security with `allow_other` (default_permissions is always on): user A (uid 64999) keeps a
// 0600 file in a 0700 directory and a 0600 file at the top; user B (65534, nobody) acting in a
// forked child (setresuid/setresgid) cannot read, write, rename over, delete or list them, cannot
// get their bytes through /.rankfs-stats, and cannot reach their xattrs. `rankfs mount` as a
// non-root user refuses a store owned by someone else. The per-uid dedup mount option stores
// two owners' identical files twice. A second mount of one store is refused: see
// MountSmokeTest.SecondMountOfTheSameStoreFails (tests/integration/mount_smoke_test.cc).
// The GPU staging path does not exist yet; its checks come with it.
// Needs root and /dev/fuse (skips otherwise).
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/mount_test.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

constexpr uid_t kUserA = 64999;
constexpr uid_t kUserB = 65534;

// Runs `body` in a child with all of real/effective/saved uid and gid set to `id`. The body
// returns "" on success or what went wrong; the text comes back through a pipe.
std::string RunAs(uid_t id, const std::function<std::string()>& body) {
  ChildResult r = RunAsUser(id, body);
  return r.exited_cleanly ? r.output : r.output + " (child died or could not drop privileges)";
}

// "" when `rc` failed with one of the errnos a denial may give, else a description.
std::string Denied(const std::string& what, long rc) {
  if (rc >= 0) return what + ": succeeded; ";
  if (errno != EACCES && errno != EPERM) return what + ": " + strerror(errno) + "; ";
  return "";
}

class SecurityTest : public MountTest {
 protected:
  SecurityTest() : MountTest(std::chrono::seconds(120)) {}
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_EQ(chmod(tmp_.path().c_str(), 0755), 0);  // traversable by the test users
  }
  void Mount(const std::string& options) {
    ASSERT_NO_FATAL_FAILURE(MountTest::Mount(options));
    ASSERT_EQ(access((mnt_ + "/.rankfs-stats").c_str(), R_OK), 0) << "not a live rankfs mount";
  }
};

TEST_F(SecurityTest, AnotherUsersPrivateFilesAreOutOfReach) {
  ASSERT_NO_FATAL_FAILURE(Mount("allow_other"));
  const std::string secret = "secret of user A: " + MakeRandomData(64, 3);
  // User A builds its private tree (the mount root is 0755 root: A works in its own dir).
  ASSERT_EQ(mkdir((mnt_ + "/home").c_str(), 0777), 0);
  ASSERT_EQ(chmod((mnt_ + "/home").c_str(), 01777), 0);  // sticky, like /tmp
  std::string a_setup = RunAs(kUserA, [&]() -> std::string {
    std::string d = mnt_ + "/home/a";
    if (mkdir(d.c_str(), 0700) != 0) return std::string("mkdir: ") + strerror(errno);
    for (const std::string& p : {d + "/private", mnt_ + "/home/a-top"}) {
      int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
      if (fd < 0) return p + ": " + strerror(errno);
      if (write(fd, secret.data(), secret.size()) != ssize_t(secret.size())) return "write";
      close(fd);
      if (setxattr(p.c_str(), "user.note", "hidden", 6, 0) != 0) {
        return std::string("setxattr: ") + strerror(errno);
      }
    }
    return "";
  });
  ASSERT_EQ(a_setup, "");

  std::string b = RunAs(kUserB, [&]() -> std::string {
    std::string errs;
    const std::string dir = mnt_ + "/home/a", inner = dir + "/private", top = mnt_ + "/home/a-top";
    errs += Denied("open inner for read", open(inner.c_str(), O_RDONLY));
    errs += Denied("open top for read", open(top.c_str(), O_RDONLY));
    errs += Denied("open top for write", open(top.c_str(), O_WRONLY));
    errs += Denied("truncate top", truncate(top.c_str(), 0));
    errs += Denied("list dir", [&]() -> long {
      int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
      return fd;
    }());
    errs += Denied("create in dir", open((dir + "/new").c_str(), O_WRONLY | O_CREAT, 0644));
    errs += Denied("unlink inner", unlink(inner.c_str()));
    errs += Denied("unlink top (sticky dir)", unlink(top.c_str()));
    errs += Denied("rmdir dir (sticky dir)", rmdir(dir.c_str()));
    // Rename B's own file over A's file: refused by the sticky bit / the 0700 dir.
    std::string mine = mnt_ + "/home/b-file";
    int fd = open(mine.c_str(), O_WRONLY | O_CREAT, 0644);
    if (fd < 0) return "B cannot create its own file: " + std::string(strerror(errno));
    close(fd);
    errs += Denied("rename over top", rename(mine.c_str(), top.c_str()));
    errs += Denied("rename over inner", rename(mine.c_str(), inner.c_str()));
    errs += Denied("rename top away", rename(top.c_str(), (mnt_ + "/home/stolen").c_str()));
    errs += Denied("chmod top", chmod(top.c_str(), 0644));
    // xattrs: inside the 0700 dir they fail exactly like stat; on the top file they are
    // readable only as far as the kernel's rules for user.* xattrs allow (read needs read
    // permission on the file).
    struct stat st;
    errs += Denied("stat inner", stat(inner.c_str(), &st));
    char v[64];
    errs += Denied("getxattr inner", getxattr(inner.c_str(), "user.note", v, sizeof v));
    errs += Denied("listxattr inner", listxattr(inner.c_str(), v, sizeof v));
    errs += Denied("getxattr top", getxattr(top.c_str(), "user.note", v, sizeof v));
    errs += Denied("setxattr top", setxattr(top.c_str(), "user.x", "1", 1, 0));
    // The stats file is readable by everyone but says nothing of file contents.
    int sfd = open((mnt_ + "/.rankfs-stats").c_str(), O_RDONLY);
    if (sfd >= 0) {
      std::string text(1 << 16, '\0');
      ssize_t n = read(sfd, text.data(), text.size());
      close(sfd);
      text.resize(n > 0 ? size_t(n) : 0);
      if (text.find("secret") != std::string::npos) errs += "stats show file bytes; ";
    }
    return errs;
  });
  EXPECT_EQ(b, "") << "user B got through";

  // A's data is intact and still A's.
  int fd = open((mnt_ + "/home/a/private").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::string back(secret.size(), '\0');
  EXPECT_EQ(read(fd, back.data(), back.size()), ssize_t(secret.size()));
  close(fd);
  EXPECT_EQ(back, secret);
  struct stat st;
  ASSERT_EQ(stat((mnt_ + "/home/a-top").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kUserA);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(SecurityTest, NonRootCannotOpenAnotherUsersStore) {
  // A store made (and owned) by root; user A may not open it, even where the directory
  // permissions would let it read.
  ASSERT_NO_FATAL_FAILURE(Mount(""));
  ASSERT_TRUE(fs_->Unmount().ok()) << fs_->DaemonLog();
  ASSERT_EQ(chmod(store_.c_str(), 0777), 0);
  std::string out = RunAs(kUserA, [&]() -> std::string {
    auto r = RunCommand({RANKFS_BINARY, "mount", store_, mnt_, "-f"}, std::chrono::seconds(20));
    if (!r.ok()) return "could not run rankfs";
    if (r->exit_code == 0) return "mount succeeded";
    if (r->output.find("owned by uid 0") == std::string::npos) return "message: " + r->output;
    return "";
  });
  EXPECT_EQ(out, "");
  EXPECT_FALSE(IsMountPoint(mnt_));
}

TEST_F(SecurityTest, PerUidDedupStoresEachOwnersCopy) {
  ASSERT_NO_FATAL_FAILURE(Mount("allow_other,dedup=per-uid"));
  ASSERT_EQ(chmod(mnt_.c_str(), 01777), 0);
  const std::string data = MakeRandomData(2 << 20, 11);
  auto write_as = [&](uid_t uid) {
    return RunAs(uid, [&]() -> std::string {
      std::string p = mnt_ + "/copy-" + std::to_string(uid);
      int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
      if (fd < 0) return p + ": " + strerror(errno);
      bool ok = write(fd, data.data(), data.size()) == ssize_t(data.size()) && fsync(fd) == 0;
      close(fd);
      return ok ? "" : "write failed";
    });
  };
  ASSERT_EQ(write_as(kUserA), "");
  ASSERT_TRUE(fs_->Unmount().ok()) << fs_->DaemonLog();
  auto used = [&] {
    uint64_t total = 0;
    for (const auto& e : std::filesystem::directory_iterator(store_ + "/packs")) {
      total += std::filesystem::file_size(e.path());
    }
    return total;
  };
  uint64_t after_a = used();
  ASSERT_NO_FATAL_FAILURE(Mount("allow_other"));  // the scope is in the superblock now
  ASSERT_EQ(chmod(mnt_.c_str(), 01777), 0);
  ASSERT_EQ(write_as(kUserB), "");
  ASSERT_TRUE(fs_->Unmount().ok()) << fs_->DaemonLog();
  uint64_t after_b = used();
  std::printf("packs: %llu bytes after A's copy, %llu after B's\n",
              (unsigned long long)after_a, (unsigned long long)after_b);
  EXPECT_GE(after_b, after_a + data.size()) << "B's copy was deduplicated against A's";
  auto fsck = RunCommand({RANKFS_BINARY, "fsck", store_}, std::chrono::seconds(60));
  ASSERT_TRUE(fsck.ok());
  EXPECT_EQ(fsck->exit_code, 0) << fsck->output;
  // Asking for global dedup on this store is refused with a clear message.
  Status refused = TryMount("dedup=global");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.ToString().find("dedup=per-uid"), std::string::npos) << refused.ToString();
}

}  // namespace
}  // namespace rankfs
