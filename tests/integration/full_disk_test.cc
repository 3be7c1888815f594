// Full disk: the store lives on a 96 MiB tmpfs that the test mounts (and always unmounts).
// Writing incompressible unique data until the disk is full must fail with ENOSPC (never EIO,
// never a daemon crash); everything fsync'd before stays readable byte-exact; deleting files
// gives the space back and new writes succeed without a remount. The metadata tests fill the
// disk with file creations only: with the space reserve (mount option reserve=) creations stop
// with ENOSPC while RocksDB still has room, so unlinks keep working; with the reserve off,
// RocksDB's own WAL append hits ENOSPC (its sticky background error) and the daemon must
// still answer ENOSPC, resume once space is back, and lose no fsync'd file. Why the reserve
// exists is in docs/reliability.md and docs/design.md. Needs root and /dev/fuse (skips
// otherwise).
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/mount_test.h"
#include "tests/testutil/test_data.h"
#include "tests/testutil/wait_until.h"

namespace rankfs {
namespace {

constexpr size_t kFileBytes = 4 << 20;
constexpr int kMaxFiles = 64;  // 256 MiB: far more than the 96 MiB disk holds

uint64_t FreeBytes(const std::string& path) {
  struct statvfs v;
  if (statvfs(path.c_str(), &v) != 0) return 0;
  return uint64_t(v.f_bavail) * v.f_frsize;
}

// Writes `data` to a new file, fsyncs and closes it. Returns 0 or the first errno.
int WriteFile(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return errno;
  size_t done = 0;
  int err = 0;
  while (done < data.size()) {
    size_t piece = std::min<size_t>(1 << 20, data.size() - done);
    ssize_t n = write(fd, data.data() + done, piece);
    if (n < 0) {
      err = errno;
      break;
    }
    done += size_t(n);
  }
  if (err == 0 && fsync(fd) != 0) err = errno;
  if (close(fd) != 0 && err == 0) err = errno;
  return err;
}

// Reads the whole file; *err gets 0 or the errno of the failure.
std::string ReadFile(const std::string& path, int* err) {
  *err = 0;
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    *err = errno;
    return "";
  }
  std::string out;
  char buf[1 << 16];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, size_t(n));
  if (n < 0) *err = errno;
  close(fd);
  return out;
}

class FullDiskTest : public MountTest {
 protected:
  FullDiskTest() : MountTest(std::chrono::seconds(240)) {}
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    disk_ = tmp_.Join("disk");
    ASSERT_EQ(mkdir(disk_.c_str(), 0755), 0);
    if (mount("rankfs-test", disk_.c_str(), "tmpfs", 0, "size=96m,mode=0755") != 0) {
      RANKFS_SKIP("cannot mount a tmpfs: " << strerror(errno));
    }
    disk_mounted_ = true;
    store_ = disk_ + "/store";
    ASSERT_NO_FATAL_FAILURE(Mount(MountOptions()));
  }

  // The first mount's options; a test changes them by overriding this.
  virtual std::string MountOptions() { return ""; }

  void Mount(const std::string& options) {
    ASSERT_NO_FATAL_FAILURE(MountTest::Mount(options));
    ASSERT_EQ(access((mnt_ + "/.rankfs-stats").c_str(), R_OK), 0) << "not a live rankfs mount";
  }

  void TearDown() override {
    if (fs_) fs_->Unmount().IgnoreError();
    fs_.reset();
    if (disk_mounted_ && umount2(disk_.c_str(), 0) != 0) umount2(disk_.c_str(), MNT_DETACH);
  }

  std::string DataOf(int i) { return MakeRandomData(kFileBytes, 1000 + uint64_t(i)); }

  // Fills the disk with 4 MiB files; returns the errno that stopped it (0: never stopped)
  // and fills *written with the indexes of the files that were written completely.
  int FillWithData(const std::string& prefix, int first, std::vector<int>* written) {
    for (int i = first; i < first + kMaxFiles; ++i) {
      std::string path = mnt_ + "/" + prefix + std::to_string(i);
      int err = WriteFile(path, DataOf(i));
      if (err != 0) {
        // What a job does with a file it could not write: remove it. (Its buffered bytes
        // could not be stored; kept, they would make the unmount report that loss.) When the
        // space reserve refused its creation, there is nothing to remove.
        if (unlink(path.c_str()) != 0) {
          EXPECT_EQ(errno, ENOENT) << path << ": " << strerror(errno);
        }
        return err;
      }
      written->push_back(i);
    }
    return 0;
  }

  void ExpectReadable(const std::string& prefix, const std::vector<int>& files) {
    for (int i : files) {
      int err = 0;
      std::string got = ReadFile(mnt_ + "/" + prefix + std::to_string(i), &err);
      EXPECT_EQ(err, 0) << prefix << i << ": " << strerror(err);
      EXPECT_TRUE(got == DataOf(i)) << prefix << i << " does not read back byte-exact";
    }
  }

  std::string disk_;
  bool disk_mounted_ = false;
};

TEST_F(FullDiskTest, WritesFailWithEnospcAndDeletesMakeRoomWithoutRemount) {
  std::vector<int> written;
  int err = FillWithData("f", 0, &written);
  std::printf("filled: %zu files of 4 MiB written, then: %s; disk free %llu bytes\n",
              written.size(), err ? strerror(err) : "no error",
              (unsigned long long)FreeBytes(disk_));
  EXPECT_EQ(err, ENOSPC) << "a full disk must read as ENOSPC\n" << fs_->DaemonLog();
  ASSERT_GE(written.size(), 10u);
  ASSERT_TRUE(fs_->IsMounted()) << "the daemon died\n" << fs_->DaemonLog();

  // Everything fsync'd before the disk filled reads back exactly.
  ExpectReadable("f", written);

  // Deleting half of the files gives their space back, without a remount.
  uint64_t free_full = FreeBytes(disk_);
  std::vector<int> kept;
  for (size_t k = 0; k < written.size(); ++k) {
    std::string path = mnt_ + "/f" + std::to_string(written[k]);
    if (k % 2 == 0) {
      EXPECT_EQ(unlink(path.c_str()), 0) << path << ": " << strerror(errno);
    } else {
      kept.push_back(written[k]);
    }
  }
  const uint64_t want = free_full + (written.size() / 2) * kFileBytes * 8 / 10;
  WaitUntil([&] { return FreeBytes(disk_) >= want; });
  std::printf("after deleting %zu files: disk free %llu bytes (was %llu)\n",
              written.size() - kept.size(), (unsigned long long)FreeBytes(disk_),
              (unsigned long long)free_full);
  EXPECT_GE(FreeBytes(disk_), want) << "deleted files' space did not come back";

  // New writes succeed (as many as the freed space holds, minus slack), and read back.
  std::vector<int> fresh;
  for (int i = 500; i < 500 + int(written.size() / 2) - 2; ++i) {
    int e = WriteFile(mnt_ + "/g" + std::to_string(i), DataOf(i));
    EXPECT_EQ(e, 0) << "g" << i << ": " << strerror(e) << "\n" << fs_->DaemonLog();
    if (e != 0) break;
    fresh.push_back(i);
  }
  ExpectReadable("g", fresh);
  ExpectReadable("f", kept);

  // And the disk fills again with ENOSPC, not something worse.
  std::vector<int> more;
  EXPECT_EQ(FillWithData("h", 900, &more), ENOSPC);
  ASSERT_TRUE(fs_->IsMounted()) << fs_->DaemonLog();
  ExpectReadable("f", kept);

  // The store is consistent after a clean unmount.
  ASSERT_TRUE(fs_->Unmount().ok()) << fs_->DaemonLog();
  auto fsck = RunCommand({RANKFS_BINARY, "fsck", store_}, std::chrono::seconds(120));
  ASSERT_TRUE(fsck.ok());
  EXPECT_EQ(fsck->exit_code, 0) << fsck->output;
}

// Leaves about `leave` bytes free on the disk by allocating a ballast file next to the store
// (what an administrator could delete). Returns false if that is not possible.
bool FillDiskBut(const std::string& ballast, const std::string& disk, uint64_t leave) {
  int fd = open(ballast.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return false;
  uint64_t free_now = FreeBytes(disk);
  int rc = free_now <= leave ? 0 : posix_fallocate(fd, 0, off_t(free_now - leave));
  close(fd);
  return rc == 0;
}

std::string MetaName(int i) { return std::string(200, 'n') + std::to_string(i); }

// Creates empty files dir/MetaName(i), each with a 32 KiB xattr (so that RocksDB's WAL and
// memtables fill in hundreds of calls, not tens of thousands), and fsyncs each, until a call
// fails; returns that errno (0: never) and the number of files whose creation, xattr and
// fsync all succeeded in *created (all of them must survive a remount). The file whose
// xattr or fsync failed may exist too: a directory then holds created or created + 1 names.
int CreateUntilFull(const std::string& dir, int limit, int* created) {
  const std::string value = MakeRandomData(32 << 10, 77);
  *created = 0;
  for (int i = 0; i < limit; ++i) {
    std::string p = dir + "/" + MetaName(i);
    int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) return errno;
    int err = fsetxattr(fd, "user.fill", value.data(), value.size(), 0) == 0 ? 0 : errno;
    if (err == 0 && fsync(fd) != 0) err = errno;
    close(fd);
    if (err != 0) return err;  // not counted: it may or may not be there after a crash
    ++*created;
  }
  return 0;
}

// How many names of dir are there (after a remount: the fsync'd creations must all be).
int CountEntries(const std::string& dir) {
  std::error_code ec;
  int n = 0;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return ec ? -1 : n;
}

class ReservedFullDiskTest : public FullDiskTest {
 protected:
  std::string MountOptions() override { return "reserve=40m"; }
};

// With the reserve, a disk filled by metadata stops creations with ENOSPC while RocksDB still
// has room: deletes work and give the room back without a remount, df agrees, and a clean
// remount finds every fsync'd file.
TEST_F(ReservedFullDiskTest, MetadataFillStopsAtTheReserveAndDeletesWorkWithoutRemount) {
  constexpr uint64_t kReserve = 40 << 20;
  std::vector<int> written;
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(WriteFile(mnt_ + "/f" + std::to_string(i), DataOf(i)), 0) << fs_->DaemonLog();
    written.push_back(i);
  }
  const std::string ballast = disk_ + "/ballast";
  ASSERT_TRUE(FillDiskBut(ballast, disk_, kReserve + (3 << 20))) << strerror(errno);
  ASSERT_EQ(mkdir((mnt_ + "/meta").c_str(), 0755), 0) << strerror(errno);
  int created = 0;
  int err = CreateUntilFull(mnt_ + "/meta", 200000, &created);
  std::printf("metadata fill: %d files created, then %s; disk free %llu\n", created,
              err ? strerror(err) : "no error", (unsigned long long)FreeBytes(disk_));
  EXPECT_EQ(err, ENOSPC) << fs_->DaemonLog();
  EXPECT_GT(created, 0);
  ASSERT_TRUE(fs_->IsMounted()) << "the daemon died\n" << fs_->DaemonLog();
  // RocksDB was kept out of ENOSPC: most of the reserve is still free. (Not all of it: RocksDB
  // preallocates a new WAL in one step of 1.1 write buffers, ~18 MiB here.)
  EXPECT_GE(FreeBytes(disk_), kReserve / 4) << fs_->DaemonLog();
  // df through the mount does not count the reserve as available.
  struct statfs sf;
  ASSERT_EQ(statfs(mnt_.c_str(), &sf), 0);
  const uint64_t shown = uint64_t(sf.f_bavail) * sf.f_bsize, disk_free = FreeBytes(disk_);
  EXPECT_LE(shown, disk_free > kReserve ? disk_free - kReserve + (1 << 20) : (1 << 20));
  // Other space-consuming calls are refused the same way; reads work.
  EXPECT_EQ(mkdir((mnt_ + "/d").c_str(), 0755), -1);
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_EQ(WriteFile(mnt_ + "/more", DataOf(9)), ENOSPC);
  unlink((mnt_ + "/more").c_str());  // it may exist (the write failed, not the creation)
  ExpectReadable("f", written);
  // Deletes work without a remount (metadata writes inside the reserve)...
  for (int i = 0; i < created; i += 2) {
    std::string p = mnt_ + "/meta/" + MetaName(i);
    ASSERT_EQ(unlink(p.c_str()), 0) << p << ": " << strerror(errno) << "\n" << fs_->DaemonLog();
  }
  const uint64_t free_full = FreeBytes(disk_);
  for (int i = 0; i < 6; ++i) {
    std::string p = mnt_ + "/f" + std::to_string(i);
    ASSERT_EQ(unlink(p.c_str()), 0) << p << ": " << strerror(errno);
  }
  written = {6, 7};
  // ... and give the room back: the 24 MiB of data comes back (punched packs), writes succeed.
  const uint64_t want = free_full + (20 << 20);
  WaitUntil([&] { return FreeBytes(disk_) >= want; });
  EXPECT_GE(FreeBytes(disk_), want) << "deleted files' space did not come back";
  // (No wait for the daemon's statvfs cache: it is used only while free space is far above
  // the reserve, never on this disk.)
  int e = WriteFile(mnt_ + "/after", DataOf(7));
  EXPECT_EQ(e, 0) << strerror(e) << "\n" << fs_->DaemonLog();
  // A clean unmount, a remount: every fsync'd file is there, byte-exact; fsck is clean.
  ASSERT_TRUE(fs_->Unmount().ok()) << fs_->DaemonLog();
  ASSERT_EQ(unlink(ballast.c_str()), 0);
  ASSERT_NO_FATAL_FAILURE(Mount(""));
  ExpectReadable("f", written);
  int rerr = 0;
  EXPECT_TRUE(ReadFile(mnt_ + "/after", &rerr) == DataOf(7)) << strerror(rerr);
  EXPECT_EQ(CountEntries(mnt_ + "/meta"), created - (created + 1) / 2);
  ASSERT_TRUE(fs_->Unmount().ok()) << fs_->DaemonLog();
  auto fsck = RunCommand({RANKFS_BINARY, "fsck", store_}, std::chrono::seconds(120));
  ASSERT_TRUE(fsck.ok());
  EXPECT_EQ(fsck->exit_code, 0) << fsck->output;
}

class UnreservedFullDiskTest : public FullDiskTest {
 protected:
  std::string MountOptions() override { return "reserve=0"; }
};

// The last resort: with the reserve off, RocksDB's WAL append itself hits ENOSPC. Creations
// must fail with ENOSPC (never EIO, never a crash), reads keep working, metadata writes work
// again once space is freed outside the store -- without a remount -- and no file whose
// creation was fsync'd is lost, neither before the remount nor after it.
TEST_F(UnreservedFullDiskTest, RocksDbEnospcResumesAndLosesNoFsyncedFile) {
  std::vector<int> written;
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(WriteFile(mnt_ + "/f" + std::to_string(i), DataOf(i)), 0) << fs_->DaemonLog();
    written.push_back(i);
  }
  const std::string ballast = disk_ + "/ballast";
  ASSERT_TRUE(FillDiskBut(ballast, disk_, 3 << 20)) << strerror(errno);
  ASSERT_EQ(mkdir((mnt_ + "/meta").c_str(), 0755), 0) << strerror(errno);
  int created = 0;
  int err = CreateUntilFull(mnt_ + "/meta", 200000, &created);
  std::printf("metadata fill: %d files created, then %s; disk free %llu\n", created,
              err ? strerror(err) : "no error", (unsigned long long)FreeBytes(disk_));
  EXPECT_EQ(err, ENOSPC) << fs_->DaemonLog();
  ASSERT_TRUE(fs_->IsMounted()) << "the daemon died\n" << fs_->DaemonLog();
  ExpectReadable("f", written);
  int found = CountEntries(mnt_ + "/meta");
  EXPECT_TRUE(found == created || found == created + 1) << found << " names, " << created
                                                         << " fsync'd creations";
  // Free space outside the store; metadata writes must work again without a remount.
  ASSERT_EQ(unlink(ballast.c_str()), 0) << strerror(errno);
  const std::string late = mnt_ + "/meta/late";
  int fd = -1;
  // RocksDB's SstFileManager polls free space every few seconds before it recovers.
  WaitUntil(
      [&] {
        fd = open(late.c_str(), O_WRONLY | O_CREAT, 0644);
        EXPECT_TRUE(fd >= 0 || errno == ENOSPC) << strerror(errno);
        return fd >= 0;
      },
      std::chrono::seconds(60), std::chrono::milliseconds(200));
  ASSERT_GE(fd, 0) << "metadata writes did not resume: " << strerror(errno) << "\n"
                   << fs_->DaemonLog();
  EXPECT_EQ(fsync(fd), 0) << strerror(errno);
  close(fd);
  ASSERT_EQ(unlink((mnt_ + "/f0").c_str()), 0) << strerror(errno);
  written = {1, 2, 3};
  EXPECT_EQ(WriteFile(mnt_ + "/after", DataOf(7)), 0) << fs_->DaemonLog();
  // After a remount, everything fsync'd is there.
  ASSERT_TRUE(fs_->Unmount().ok()) << fs_->DaemonLog();
  ASSERT_NO_FATAL_FAILURE(Mount(""));
  ExpectReadable("f", written);
  int rerr = 0;
  EXPECT_TRUE(ReadFile(mnt_ + "/after", &rerr) == DataOf(7)) << strerror(rerr);
  found = CountEntries(mnt_ + "/meta");  // plus "late"
  EXPECT_TRUE(found == created + 1 || found == created + 2)
      << found << " names, " << created << " fsync'd creations and \"late\": some were lost";
  ASSERT_TRUE(fs_->Unmount().ok()) << fs_->DaemonLog();
  auto fsck = RunCommand({RANKFS_BINARY, "fsck", store_}, std::chrono::seconds(120));
  ASSERT_TRUE(fsck.ok());
  EXPECT_EQ(fsck->exit_code, 0) << fsck->output;
}

// The daemon is killed (kill -9) while RocksDB is stopped by ENOSPC, a WAL record perhaps torn
// at the failed append: after space is freed and the store remounted, every fsync'd file is
// there (WAL recovery keeps the synced prefix) and fsck finds no damage.
TEST_F(UnreservedFullDiskTest, Kill9InRocksDbEnospcLosesNoFsyncedFile) {
  ASSERT_EQ(WriteFile(mnt_ + "/f0", DataOf(0)), 0) << fs_->DaemonLog();
  const std::string ballast = disk_ + "/ballast";
  ASSERT_TRUE(FillDiskBut(ballast, disk_, 3 << 20)) << strerror(errno);
  ASSERT_EQ(mkdir((mnt_ + "/meta").c_str(), 0755), 0) << strerror(errno);
  int fd = open((mnt_ + "/meta").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(fsync(fd), 0);
  close(fd);
  int created = 0;
  int err = CreateUntilFull(mnt_ + "/meta", 200000, &created);
  std::printf("metadata fill: %d files created, then %s\n", created,
              err ? strerror(err) : "no error");
  EXPECT_EQ(err, ENOSPC) << fs_->DaemonLog();
  ASSERT_TRUE(fs_->Kill9().ok());
  fs_.reset();
  ASSERT_EQ(unlink(ballast.c_str()), 0) << strerror(errno);
  ASSERT_NO_FATAL_FAILURE(Mount(""));
  ExpectReadable("f", {0});
  const int found = CountEntries(mnt_ + "/meta");
  EXPECT_GE(found, created) << "fsync'd creations were lost\n" << fs_->DaemonLog();
  EXPECT_LE(found, created + 1);  // the failed one may or may not have made it
  ASSERT_TRUE(fs_->Unmount().ok()) << fs_->DaemonLog();
  auto fsck = RunCommand({RANKFS_BINARY, "fsck", store_}, std::chrono::seconds(120));
  ASSERT_TRUE(fsck.ok());
  EXPECT_LT(fsck->exit_code, 4) << "fsck found damage\n" << fsck->output;
}

}  // namespace
}  // namespace rankfs
