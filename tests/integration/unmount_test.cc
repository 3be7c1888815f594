// Unmounting and then using the store at once (issue #25 item 7). After the kernel drops a
// mount, the daemon still writes back what it buffered and only then releases the store's
// lock: `rankfs unmount` waits for that, and fsck and gc wait for a daemon whose mount is gone
// (but refuse a mounted store at once). Needs root and /dev/fuse (skips otherwise).
//
// The daemons here hold a lot at unmount: lazy_close keeps closed small files' data in memory
// (files of at most 64 KiB, up to an eighth of write_buffer), so closing takes long enough to
// be seen.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "mount-helper/cli.h"
#include "store/fsck.h"
#include "store/store_holder.h"
#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/mount_test.h"
#include "tests/testutil/test_data.h"
#include "tests/testutil/wait_until.h"

namespace rankfs {
namespace {

constexpr char kSlowCloseOptions[] = "write_buffer=1G,lazy_close=600,cache_size=64M";
constexpr size_t kFileSize = 64 << 10;  // the largest file lazy_close keeps
constexpr size_t kFiles = 512;          // 32 MiB in the daemon at unmount

bool Has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

void WriteFile(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  for (size_t done = 0; done < data.size();) {
    ssize_t n = write(fd, data.data() + done, std::min<size_t>(data.size() - done, 1 << 20));
    ASSERT_GT(n, 0) << strerror(errno);
    done += size_t(n);
  }
  ASSERT_EQ(close(fd), 0) << strerror(errno);
}

// kFiles files of kFileSize, each a different piece of `data`, in `dir`.
void WriteSmallFiles(const std::string& dir, const std::string& data) {
  for (size_t i = 0; i < kFiles; ++i) {
    ASSERT_NO_FATAL_FAILURE(
        WriteFile(dir + "/f" + std::to_string(i), data.substr(i * kFileSize, kFileSize)));
  }
}

std::string ReadAll(const std::string& path);

void ExpectSmallFiles(const std::string& dir, const std::string& data) {
  size_t wrong = 0;
  for (size_t i = 0; i < kFiles; ++i) {
    wrong += ReadAll(dir + "/f" + std::to_string(i)) != data.substr(i * kFileSize, kFileSize);
  }
  EXPECT_EQ(wrong, 0u) << "of " << kFiles << " files";
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

CommandResult Cmd(const std::vector<std::string>& argv) {
  auto r = RunCommand(argv, std::chrono::seconds(120));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : CommandResult{};
}

class UnmountTest : public MountTest {
 protected:
  UnmountTest() : MountTest(std::chrono::seconds(150)) {}
  static const std::string& Data() {
    static const std::string data = MakeRandomData(kFiles * kFileSize, 25);
    return data;
  }
};

// (a) The report: fusermount3 -u, then fsck at once, failed with "in use" every time.
TEST_F(UnmountTest, FsckRightAfterFusermountWaitsForTheClosingDaemon) {
  int waited = 0;
  for (int round = 0; round < 3; ++round) {
    store_ = tmp_.Join("store" + std::to_string(round));
    ASSERT_NO_FATAL_FAILURE(Mount(kSlowCloseOptions));
    ASSERT_NO_FATAL_FAILURE(WriteSmallFiles(mnt_, Data()));
    CommandResult u = Cmd({"fusermount3", "-u", mnt_});
    ASSERT_EQ(u.exit_code, 0) << u.output;
    CommandResult f = Cmd({RANKFS_CLI_BINARY, "fsck", store_});
    EXPECT_EQ(f.exit_code, 0) << "round " << round << ":\n" << f.output;
    EXPECT_TRUE(Has(f.output, store_ + ": clean")) << f.output;
    waited += Has(f.output, "waiting for the rankfs daemon (pid " + std::to_string(fs_->pid()));
    ASSERT_NO_FATAL_FAILURE(Unmount());  // reaps the daemon, which must have exited with 0
  }
  // The daemon had ~100 MB to write back while fsck started within milliseconds: at least one
  // round must have met it still closing, or this test did not test the wait.
  EXPECT_GE(waited, 1);
}

// (b) rankfs unmount of a background daemon (not this process's child, as with fstab), on a
// mountpoint whose name mountinfo escapes.
TEST_F(UnmountTest, RankfsUnmountReturnsOnceTheDaemonHasReleasedTheStore) {
  const std::string mnt = AddMountpoint("mnt two");
  CommandResult m = Cmd({RANKFS_CLI_BINARY, "mount", store_, mnt, "-o", kSlowCloseOptions});
  ASSERT_EQ(m.exit_code, 0) << m.output;
  ASSERT_NO_FATAL_FAILURE(WriteSmallFiles(mnt, Data()));
  Result<StoreHolder> holder = ReadStoreHolder(store_);
  ASSERT_TRUE(holder.ok()) << holder.status().ToString();
  EXPECT_TRUE(HolderAlive(*holder));
  EXPECT_EQ(holder->mountpoint, mnt);

  CommandResult u = Cmd({RANKFS_CLI_BINARY, "unmount", mnt});
  EXPECT_EQ(u.exit_code, 0) << u.output;
  EXPECT_EQ(u.output, "");
  EXPECT_FALSE(IsMountPoint(mnt));
  EXPECT_FALSE(HolderAlive(*holder)) << "the daemon (pid " << holder->pid << ") still runs";
  // In-process and without any waiting of its own: the lock must be free now.
  Result<FsckReport> report = Fsck(store_, FsckOptions());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->ExitCode(), 0);
  EXPECT_EQ(report->inodes, kFiles + 1);

  ASSERT_NO_FATAL_FAILURE(Mount());
  ExpectSmallFiles(mnt_, Data());
}

// (c) A mounted store is refused at once, however long the commands would wait otherwise.
TEST_F(UnmountTest, FsckAndGcRefuseAMountedStoreWithoutWaiting) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_NO_FATAL_FAILURE(WriteFile(mnt_ + "/f", "mounted"));
  const auto start = std::chrono::steady_clock::now();
  CommandResult f = Cmd({RANKFS_CLI_BINARY, "fsck", store_, "--wait", "100"});
  EXPECT_EQ(f.exit_code, kFsckExitOperational) << f.output;
  EXPECT_TRUE(Has(f.output, "is in use: mounted on " + mnt_ + " (rankfs daemon pid " +
                                std::to_string(fs_->pid()) + "); unmount it first"))
      << f.output;
  CommandResult g = Cmd({RANKFS_CLI_BINARY, "gc", store_, "--wait", "100"});
  EXPECT_EQ(g.exit_code, 1) << g.output;
  EXPECT_TRUE(Has(g.output, "is in use: mounted on " + mnt_)) << g.output;
  EXPECT_FALSE(Has(f.output + g.output, "waiting")) << f.output << g.output;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(50));
  EXPECT_TRUE(fs_->IsMounted());
}

// A read-only mount writes no HOLDER record (it changes nothing in the store, and a record
// left by an earlier read-write mount names a dead daemon): rankfs unmount and fsck find its
// daemon through the lock it holds. Before, unmount said "cannot find the rankfs daemon" and
// fsck "in use by another process" although the store was plainly mounted.
TEST_F(UnmountTest, ReadOnlyMountIsFoundThroughItsLock) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_NO_FATAL_FAILURE(WriteFile(mnt_ + "/f", "kept"));
  ASSERT_NO_FATAL_FAILURE(Unmount());
  ASSERT_NO_FATAL_FAILURE(Mount("ro"));
  CommandResult f = Cmd({RANKFS_CLI_BINARY, "fsck", store_, "--wait", "100"});
  EXPECT_EQ(f.exit_code, kFsckExitOperational) << f.output;
  EXPECT_TRUE(Has(f.output, "is in use: mounted on " + mnt_ + " (rankfs daemon pid " +
                                std::to_string(fs_->pid()) + ")"))
      << f.output;
  CommandResult u = Cmd({RANKFS_CLI_BINARY, "unmount", mnt_});
  EXPECT_EQ(u.exit_code, 0) << u.output;
  EXPECT_FALSE(IsMountPoint(mnt_));
  ASSERT_NO_FATAL_FAILURE(Unmount());  // exit status 0
  CommandResult clean = Cmd({RANKFS_CLI_BINARY, "fsck", store_});
  EXPECT_EQ(clean.exit_code, 0) << clean.output;
}

// (d) What rankfs unmount refuses: a directory, another filesystem, a busy mount.
TEST_F(UnmountTest, RankfsUnmountRefusesWhatIsNotARankfsMountAndABusyMount) {
  CommandResult plain = Cmd({RANKFS_CLI_BINARY, "unmount", tmp_.path()});
  EXPECT_EQ(plain.exit_code, kUnmountExitNotRankfs) << plain.output;
  EXPECT_TRUE(Has(plain.output, tmp_.path() + " is not a mount point")) << plain.output;

  const std::string other = AddMountpoint("tmpfs");
  ASSERT_EQ(mount("none", other.c_str(), "tmpfs", 0, "size=1m"), 0) << strerror(errno);
  CommandResult tmpfs = Cmd({RANKFS_CLI_BINARY, "unmount", other});
  EXPECT_EQ(tmpfs.exit_code, kUnmountExitNotRankfs) << tmpfs.output;
  EXPECT_TRUE(Has(tmpfs.output, "is not a rankfs mount (its type is tmpfs)")) << tmpfs.output;
  EXPECT_TRUE(IsMountPoint(other));

  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_NO_FATAL_FAILURE(WriteFile(mnt_ + "/f", "held open"));
  const int fd = open((mnt_ + "/f").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << strerror(errno);
  CommandResult busy = Cmd({RANKFS_CLI_BINARY, "unmount", mnt_});
  close(fd);
  EXPECT_EQ(busy.exit_code, kUnmountExitFailed) << busy.output;
  EXPECT_TRUE(Has(busy.output, "Device or resource busy")) << busy.output;
  EXPECT_TRUE(Has(busy.output, "it stays mounted")) << busy.output;
  EXPECT_TRUE(fs_->IsMounted());
  EXPECT_EQ(ReadAll(mnt_ + "/f"), "held open");

  CommandResult u = Cmd({RANKFS_CLI_BINARY, "unmount", mnt_ + "/"});
  EXPECT_EQ(u.exit_code, 0) << u.output;
  EXPECT_FALSE(IsMountPoint(mnt_));
  ASSERT_NO_FATAL_FAILURE(Unmount());
}

// (e) A daemon that cannot finish closing in time: the timeout's own exit status, the mount
// gone; fsck meanwhile waits for it (here with a short bound) rather than failing "in use".
TEST_F(UnmountTest, RankfsUnmountTimesOutWhileTheDaemonIsStoppedThenItFinishes) {
  // A stopped daemon cannot finish however little it holds.
  const std::string data = Data().substr(0, kFileSize);
  ASSERT_NO_FATAL_FAILURE(Mount(kSlowCloseOptions));
  ASSERT_NO_FATAL_FAILURE(WriteFile(mnt_ + "/f", data));
  ASSERT_EQ(kill(fs_->pid(), SIGSTOP), 0);
  CommandResult u = Cmd({RANKFS_CLI_BINARY, "unmount", mnt_, "--timeout", "2"});
  EXPECT_EQ(u.exit_code, kUnmountExitTimedOut) << u.output;
  EXPECT_TRUE(Has(u.output, "is unmounted, but its rankfs daemon (pid " +
                                std::to_string(fs_->pid()) + ") is still writing back"))
      << u.output;
  EXPECT_FALSE(IsMountPoint(mnt_));
  CommandResult early = Cmd({RANKFS_CLI_BINARY, "fsck", store_, "--wait", "0.2"});
  EXPECT_EQ(early.exit_code, kFsckExitOperational) << early.output;
  EXPECT_TRUE(Has(early.output, "is still closing store")) << early.output;

  ASSERT_EQ(kill(fs_->pid(), SIGCONT), 0);
  CommandResult f = Cmd({RANKFS_CLI_BINARY, "fsck", store_});
  EXPECT_EQ(f.exit_code, 0) << f.output;
  ASSERT_NO_FATAL_FAILURE(Unmount());
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_TRUE(ReadAll(mnt_ + "/f") == data);
}

// SIGTERM ends the session loop; the daemon then unmounts itself and writes back what it
// buffered before it exits, as an unmount would.
TEST_F(UnmountTest, SigtermWritesBackBufferedDataBeforeTheDaemonExits) {
  ASSERT_NO_FATAL_FAILURE(Mount(kSlowCloseOptions));
  ASSERT_NO_FATAL_FAILURE(WriteSmallFiles(mnt_, Data()));
  EXPECT_EQ(StatValue(mnt_, "dirty_bytes"), kFiles * kFileSize);  // all still in the daemon
  ASSERT_EQ(kill(fs_->pid(), SIGTERM), 0);
  ASSERT_TRUE(WaitUntil([&] { return !IsMountPoint(mnt_); }, std::chrono::seconds(60)));
  ASSERT_NO_FATAL_FAILURE(Unmount());  // exit status 0: written back without error
  Result<FsckReport> report = Fsck(store_, FsckOptions());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->ExitCode(), 0);
  ASSERT_NO_FATAL_FAILURE(Mount());
  ExpectSmallFiles(mnt_, Data());
}

// Whether process `pid` has a handler of its own for `sig` (SigCgt in /proc/PID/status): the
// daemon has libfuse's for SIGTERM while its session loop runs, and none once it left it.
bool CatchesSignal(pid_t pid, int sig) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("SigCgt:")) {
      return (std::stoull(line.substr(7), nullptr, 16) >> (sig - 1)) & 1;
    }
  }
  return false;
}

// What systemd does when it stops a mount unit: umount, then SIGTERM to the processes left in
// the unit. The daemon is then writing back, outside its session loop; a SIGTERM there used
// to kill it (libfuse's handler is gone by then) and lose what it buffered.
TEST_F(UnmountTest, SigtermAfterTheUnmountDoesNotInterruptTheWriteBack) {
  ASSERT_NO_FATAL_FAILURE(Mount(kSlowCloseOptions));
  ASSERT_NO_FATAL_FAILURE(WriteSmallFiles(mnt_, Data()));
  ASSERT_TRUE(CatchesSignal(fs_->pid(), SIGTERM));
  CommandResult u = Cmd({"fusermount3", "-u", mnt_});
  ASSERT_EQ(u.exit_code, 0) << u.output;
  ASSERT_TRUE(WaitUntil([&] { return !CatchesSignal(fs_->pid(), SIGTERM); }));
  const bool closing = ProcessStartTicks(fs_->pid()) != 0;
  ASSERT_EQ(kill(fs_->pid(), SIGTERM), 0);
  EXPECT_TRUE(closing) << "the daemon had finished before the SIGTERM: nothing was tested";
  ASSERT_NO_FATAL_FAILURE(Unmount());  // exit status 0, not killed by the signal
  Result<FsckReport> report = Fsck(store_, FsckOptions());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->ExitCode(), 0);
  ASSERT_NO_FATAL_FAILURE(Mount());
  ExpectSmallFiles(mnt_, Data());
}

}  // namespace
}  // namespace rankfs
