// What a user sees through a real mount, with ext4's answers as the reference:
//   - st_blocks counts only what is not a hole: `du` of `truncate -s 1T` is 0, a 1 GiB file
//     holding one byte is one block, and cp keeps it sparse on ext4; preallocated ranges count;
//   - fallocate(2): allocate, keep size, zero range and punch hole reach the daemon and do what
//     ext4 does (collapse and insert range are refused by the kernel's FUSE client itself);
//   - readdir's ".." is the parent directory's inode, after mkdir, rename and exchange;
//   - chown by an unprivileged owner clears setuid (and setgid with group execute) of fifos,
//     device nodes and sockets, as it does for regular files.
// Needs root and /dev/fuse (skips otherwise).
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/falloc.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/mount_test.h"
#include "tests/testutil/test_data.h"

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

namespace rankfs {
namespace {

constexpr uid_t kOwner = 64998;
constexpr gid_t kGroup = 64998, kOtherGroup = 64997;

struct stat Stat(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path << ": " << strerror(errno);
  return st;
}

// The kernel caches attributes for attr_timeout (1 s): st_blocks of a file whose bytes the
// daemon has just stored may lag. Waits until `path` reports `blocks` (up to 20 s), and returns
// what it reported last.
blkcnt_t WaitForBlocks(const std::string& path, blkcnt_t blocks) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  blkcnt_t seen = Stat(path).st_blocks;
  while (seen != blocks && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling, not synchronising
    seen = Stat(path).st_blocks;
  }
  return seen;
}

int OpenFile(const std::string& path, int flags = O_RDWR | O_CREAT) {
  int fd = open(path.c_str(), flags, 0644);
  EXPECT_GE(fd, 0) << path << ": " << strerror(errno);
  return fd;
}

std::string ReadFile(const std::string& path) {
  std::string out;
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) return out;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  fclose(f);
  return out;
}

class PosixSpaceTest : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_EQ(chmod(tmp_.path().c_str(), 0755), 0);  // traversable by the test's other user
    ASSERT_NO_FATAL_FAILURE(Mount("allow_other"));
  }
  std::string P(const std::string& name) const { return mnt_ + "/" + name; }
};

TEST_F(PosixSpaceTest, StBlocksCountsOnlyWhatIsNotAHole) {
  // truncate -s 1T: du says 0 (it said 1 TiB).
  int fd = OpenFile(P("sparse"));
  ASSERT_EQ(ftruncate(fd, off_t(1) << 40), 0);
  ASSERT_EQ(close(fd), 0);
  EXPECT_EQ(Stat(P("sparse")).st_blocks, 0);

  // One byte at the end of 1 GiB: one 4 KiB block, and cp keeps the copy sparse on ext4.
  fd = OpenFile(P("one-byte"));
  ASSERT_EQ(pwrite(fd, "x", 1, (off_t(1) << 30) - 1), 1);
  ASSERT_EQ(fsync(fd), 0);
  ASSERT_EQ(close(fd), 0);
  EXPECT_EQ(WaitForBlocks(P("one-byte"), 8), 8);
  const std::string copy = tmp_.Join("copy-on-ext4");
  auto cp = RunCommand({"cp", P("one-byte"), copy}, std::chrono::seconds(120));
  ASSERT_TRUE(cp.ok() && cp->exit_code == 0) << (cp.ok() ? cp->output : cp.status().ToString());
  EXPECT_EQ(Stat(copy).st_size, off_t(1) << 30);
  EXPECT_LT(Stat(copy).st_blocks, 1024) << "cp wrote the holes out as zeros";

  // A file written whole counts its size, rounded up to blocks.
  const std::string data = MakeRealData(3 << 20, 1) + "tail";
  fd = OpenFile(P("full"));
  ASSERT_EQ(write(fd, data.data(), data.size()), ssize_t(data.size()));
  ASSERT_EQ(close(fd), 0);
  const blkcnt_t full_blocks = blkcnt_t((data.size() + 4095) / 4096 * 8);
  EXPECT_EQ(WaitForBlocks(P("full"), full_blocks), full_blocks);

  // fallocate -n past the end counts (ext4: 2048 blocks of 512 for 1 MiB), size unchanged.
  fd = OpenFile(P("prealloc"));
  ASSERT_EQ(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 1 << 20), 0) << strerror(errno);
  ASSERT_EQ(close(fd), 0);
  EXPECT_EQ(Stat(P("prealloc")).st_size, 0);
  EXPECT_EQ(WaitForBlocks(P("prealloc"), 2048), 2048);

  // And they stay right after a remount (the figure is in the inode record).
  ASSERT_NO_FATAL_FAILURE(Unmount());
  ASSERT_NO_FATAL_FAILURE(Mount("allow_other"));
  EXPECT_EQ(Stat(P("sparse")).st_blocks, 0);
  EXPECT_EQ(Stat(P("one-byte")).st_blocks, 8);
  EXPECT_EQ(Stat(P("full")).st_blocks, full_blocks);
  EXPECT_EQ(Stat(P("prealloc")).st_blocks, 2048);
}

TEST_F(PosixSpaceTest, FallocateModesThroughTheKernel) {
  const std::string data = MakeRandomData(256 << 10, 2);
  std::string want = data;
  int fd = OpenFile(P("f"));
  ASSERT_EQ(write(fd, data.data(), data.size()), ssize_t(data.size()));
  ASSERT_EQ(fsync(fd), 0);

  // fallocate -z (zero range): it failed with EOPNOTSUPP.
  ASSERT_EQ(fallocate(fd, FALLOC_FL_ZERO_RANGE, 10000, 50000), 0) << strerror(errno);
  std::fill(want.begin() + 10000, want.begin() + 60000, '\0');
  // -z past the end: extends the file; with -n: does not, but counts.
  ASSERT_EQ(fallocate(fd, FALLOC_FL_ZERO_RANGE, data.size(), 4096), 0) << strerror(errno);
  want.resize(data.size() + 4096, '\0');
  ASSERT_EQ(fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, want.size(), 8192), 0)
      << strerror(errno);
  // Punch a hole: the only range that does not count.
  ASSERT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 128 << 10, 64 << 10), 0)
      << strerror(errno);
  std::fill(want.begin() + (128 << 10), want.begin() + (192 << 10), '\0');
  // Plain allocate past the end: the size grows, the bytes read as zeros.
  ASSERT_EQ(fallocate(fd, 0, want.size(), 12288), 0) << strerror(errno);
  want.resize(want.size() + 12288, '\0');
  ASSERT_EQ(close(fd), 0);

  EXPECT_EQ(Stat(P("f")).st_size, off_t(want.size()));
  EXPECT_TRUE(ReadFile(P("f")) == want);
  // Everything but the punched 64 KiB (the 8 KiB zeroed past the end lie inside the range
  // allocated after them).
  const blkcnt_t blocks = blkcnt_t((want.size() - (64 << 10)) / 512);
  EXPECT_EQ(WaitForBlocks(P("f"), blocks), blocks);
  // SEEK_DATA skips preallocated ranges, as on ext4: the data ends where the file was written.
  fd = OpenFile(P("f"), O_RDONLY);
  EXPECT_EQ(lseek(fd, data.size(), SEEK_DATA), -1);
  EXPECT_EQ(errno, ENXIO);
  EXPECT_EQ(lseek(fd, 10000, SEEK_HOLE), 10000);

  // Collapse and insert range: FsCore does both (tests/unit/file_space_test.cc), but Linux's
  // FUSE client refuses every mode but keep size, punch and zero before asking the daemon.
  // Should a kernel forward them, this says so, and the checks below apply.
  ASSERT_EQ(close(fd), 0);
  fd = OpenFile(P("f"));
  if (fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 4096, 4096) == 0) {
    want.erase(4096, 4096);
    ASSERT_EQ(fallocate(fd, FALLOC_FL_INSERT_RANGE, 8192, 4096), 0) << strerror(errno);
    want.insert(8192, 4096, '\0');
    ASSERT_EQ(close(fd), 0);
    EXPECT_TRUE(ReadFile(P("f")) == want);
  } else {
    EXPECT_EQ(errno, EOPNOTSUPP);
    EXPECT_EQ(fallocate(fd, FALLOC_FL_INSERT_RANGE, 8192, 4096), -1);
    EXPECT_EQ(errno, EOPNOTSUPP);
    ASSERT_EQ(close(fd), 0);
    EXPECT_TRUE(ReadFile(P("f")) == want);
  }
}

// `ls -ia`: the inode readdir gives for ".." is the one stat gives for "..".
TEST_F(PosixSpaceTest, DotDotInReaddirIsTheParent) {
  auto dotdot = [](const std::string& dir) -> ino_t {
    DIR* d = opendir(dir.c_str());
    EXPECT_NE(d, nullptr) << dir << ": " << strerror(errno);
    if (d == nullptr) return 0;
    ino_t ino = 0;
    while (dirent* e = readdir(d)) {
      if (std::strcmp(e->d_name, "..") == 0) ino = e->d_ino;
    }
    closedir(d);
    return ino;
  };
  auto ino = [](const std::string& path) { return Stat(path).st_ino; };
  ASSERT_EQ(mkdir(P("a").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("a/b").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("c").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("c/d").c_str(), 0755), 0);
  EXPECT_EQ(dotdot(mnt_), ino(mnt_));
  EXPECT_EQ(dotdot(P("a")), ino(mnt_));
  EXPECT_EQ(dotdot(P("a/b")), ino(P("a")));

  ASSERT_EQ(rename(P("a/b").c_str(), P("c/b").c_str()), 0) << strerror(errno);
  EXPECT_EQ(dotdot(P("c/b")), ino(P("c")));
  // Exchange a/e with c/d: each lands in the other's parent.
  ASSERT_EQ(mkdir(P("a/e").c_str(), 0755), 0);
  ASSERT_EQ(renameat2(AT_FDCWD, P("a/e").c_str(), AT_FDCWD, P("c/d").c_str(), RENAME_EXCHANGE),
            0)
      << strerror(errno);
  EXPECT_EQ(dotdot(P("a/e")), ino(P("a")));
  EXPECT_EQ(dotdot(P("c/d")), ino(P("c")));
  EXPECT_EQ(Stat(P("c/d/..")).st_ino, ino(P("c")));

  ASSERT_NO_FATAL_FAILURE(Unmount());
  ASSERT_NO_FATAL_FAILURE(Mount("allow_other"));
  EXPECT_EQ(dotdot(P("c/b")), ino(P("c")));
  EXPECT_EQ(dotdot(P("a/e")), ino(P("a")));
}

// The owner (not root) gives each file to another of its groups; ext4 leaves 0555 of 06555
// (setuid always goes, setgid when the group may execute) and 02545 of 06545.
TEST_F(PosixSpaceTest, UnprivilegedChownClearsSetuidOfSpecialFiles) {
  std::vector<std::pair<std::string, mode_t>> files;  // path, mode ext4 leaves
  std::vector<std::string> paths;
  for (mode_t mode : {06555, 06545}) {
    const std::string m = std::to_string(mode);
    ASSERT_EQ(mkfifo(P("fifo" + m).c_str(), 0), 0) << strerror(errno);
    ASSERT_EQ(mknod(P("chr" + m).c_str(), S_IFCHR, makedev(1, 3)), 0) << strerror(errno);
    ASSERT_EQ(mknod(P("blk" + m).c_str(), S_IFBLK, makedev(7, 0)), 0) << strerror(errno);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_GE(s, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string sock = P("sock" + m);
    ASSERT_LT(sock.size(), sizeof addr.sun_path);
    std::strcpy(addr.sun_path, sock.c_str());
    ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << strerror(errno);
    close(s);
    for (const char* kind : {"fifo", "chr", "blk", "sock"}) {
      const std::string p = P(kind + m);
      ASSERT_EQ(lchown(p.c_str(), kOwner, kGroup), 0) << strerror(errno);
      ASSERT_EQ(chmod(p.c_str(), mode), 0) << strerror(errno);
      ASSERT_EQ(Stat(p).st_mode & 07777, mode);
      paths.push_back(p);
      files.emplace_back(p, mode == 06555 ? 0555 : 02545);
    }
  }
  ChildResult r = RunInChild([&] {
    const gid_t groups[] = {kGroup, kOtherGroup};
    if (setgroups(2, groups) != 0 || setresgid(kGroup, kGroup, kGroup) != 0 ||
        setresuid(kOwner, kOwner, kOwner) != 0) {
      return std::string("could not become the owner");
    }
    std::string out;
    for (const std::string& p : paths) {
      if (lchown(p.c_str(), uid_t(-1), kOtherGroup) != 0) out += p + ": " + strerror(errno) + "; ";
    }
    return out;
  });
  ASSERT_TRUE(r.exited_cleanly && r.output.empty()) << r.output;
  for (const auto& [p, want] : files) {
    const struct stat st = Stat(p);
    EXPECT_EQ(st.st_gid, kOtherGroup) << p;
    EXPECT_EQ(st.st_mode & 07777, want) << p;
  }
}

}  // namespace
}  // namespace rankfs
