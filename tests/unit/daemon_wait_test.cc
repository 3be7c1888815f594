// The pieces `rankfs unmount`, fsck and gc use to recognise a daemon that is still closing its
// store: the HOLDER record (store/store_holder.h), process liveness by pid and start time,
// mountinfo parsing and the wait for a process to exit (mount-helper/daemon_wait.h). Nothing
// here mounts: tests/integration/unmount_test.cc runs them against real daemons.
#include "mount-helper/daemon_wait.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "mount-helper/cli_util.h"
#include "store/store_holder.h"
#include "tests/testutil/temp_dir.h"
#include "tests/testutil/wait_until.h"

namespace rankfs {
namespace {

using std::chrono::milliseconds;

// A child process that exits when Release() is called (or this object dies), for tests of
// liveness and waiting that must not depend on timing.
class BlockedChild {
 public:
  BlockedChild() {
    EXPECT_EQ(pipe(fds_), 0);
    pid_ = fork();
    if (pid_ == 0) {
      close(fds_[1]);
      char c;
      while (read(fds_[0], &c, 1) < 0 && errno == EINTR) {
      }
      _exit(0);
    }
    close(fds_[0]);
  }
  ~BlockedChild() {
    Release();
    Reap();
  }
  pid_t pid() const { return pid_; }
  void Release() {
    if (fds_[1] >= 0) close(fds_[1]);
    fds_[1] = -1;
  }
  void Reap() {
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  int fds_[2] = {-1, -1};
  pid_t pid_ = -1;
};

TEST(StoreHolderTest, RecordRoundTripsAndIncompleteOnesAreRefused) {
  TempDir tmp;
  Result<StoreHolder> none = ReadStoreHolder(tmp.path());
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), ENOENT);

  StoreHolder h = ThisProcessAsHolder("/mnt/with space", "0:77");
  ASSERT_TRUE(WriteStoreHolder(tmp.path(), h).ok());
  Result<StoreHolder> back = ReadStoreHolder(tmp.path());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->pid, getpid());
  EXPECT_EQ(back->start_ticks, h.start_ticks);
  EXPECT_EQ(back->mountpoint, "/mnt/with space");
  EXPECT_EQ(back->device, "0:77");

  std::ofstream(tmp.Join(kStoreHolderName)) << "pid=12\n";  // no start time, no device
  Result<StoreHolder> partial = ReadStoreHolder(tmp.path());
  ASSERT_FALSE(partial.ok());
  EXPECT_EQ(partial.status().code(), EINVAL);
}

TEST(StoreHolderTest, AliveMeansSamePidAndStartTimeAndNotAZombie) {
  EXPECT_GT(ProcessStartTicks(getpid()), 0u);
  StoreHolder me = ThisProcessAsHolder("/m", "0:1");
  EXPECT_TRUE(HolderAlive(me));
  StoreHolder reused = me;
  reused.start_ticks += 1;  // the same pid, a later process
  EXPECT_FALSE(HolderAlive(reused));

  BlockedChild child;
  StoreHolder h;
  h.pid = child.pid();
  h.start_ticks = ProcessStartTicks(child.pid());
  ASSERT_GT(h.start_ticks, 0u);
  EXPECT_TRUE(HolderAlive(h));
  child.Release();
  // Exited but not reaped: a zombie holds no lock, so it counts as gone.
  ASSERT_TRUE(WaitUntil([&] { return !HolderAlive(h); }, std::chrono::seconds(30)));
  child.Reap();
  EXPECT_EQ(ProcessStartTicks(h.pid), 0u);
}

TEST(DaemonWaitTest, WaitForHolderExitReturnsWhenTheProcessExitsOrTheLimitPasses) {
  BlockedChild child;
  StoreHolder h;
  h.pid = child.pid();
  h.start_ticks = ProcessStartTicks(child.pid());
  EXPECT_FALSE(WaitForHolderExit(h, milliseconds(0)));
  EXPECT_FALSE(WaitForHolderExit(h, milliseconds(50)));
  child.Release();
  EXPECT_TRUE(WaitForHolderExit(h, std::chrono::seconds(30)));
  child.Reap();
  EXPECT_TRUE(WaitForHolderExit(h, milliseconds(0)));  // reaped: no process at all
}

TEST(DaemonWaitTest, MountinfoParsingUndoesEscapesAndSkipsOptionalFields) {
  TempDir tmp;
  const std::string path = tmp.Join("mountinfo");
  std::ofstream(path) << "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
                         "36 35 0:38 / /home/a\\040b/tmp rw,nosuid shared:5 master:1 - "
                         "fuse.rankfs /var/lib/rankfs/a\\040b rw,user_id=0\n"
                         "garbage\n";
  std::vector<MountEntry> e = ReadMountinfo(path);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].mountpoint, "/proc");
  EXPECT_EQ(e[0].fstype, "proc");
  EXPECT_EQ(e[1].device, "0:38");
  EXPECT_EQ(e[1].mountpoint, "/home/a b/tmp");
  EXPECT_EQ(e[1].fstype, "fuse.rankfs");
  EXPECT_EQ(e[1].source, "/var/lib/rankfs/a b");
  EXPECT_TRUE(ReadMountinfo(tmp.Join("missing")).empty());
  EXPECT_TRUE(FindMount("/proc").has_value());
  EXPECT_FALSE(FindMount(tmp.path()).has_value());
}

// A process that holds the store's lock and has recorded itself with a device that is not
// mounted: a daemon whose mount is gone and that has not finished closing. fsck and gc wait
// for it, and say so; with --wait 0 they give up at once and say why.
TEST(DaemonWaitTest, OfflineCommandsWaitForAClosingHolderWithinTheirBound) {
  TempDir tmp;
  const std::string store = tmp.path();
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  int release[2];
  ASSERT_EQ(pipe(release), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    close(ready[0]);
    close(release[1]);
    int fd = open((store + "/LOCK").c_str(), O_RDWR | O_CREAT, 0644);
    if (fd < 0 || flock(fd, LOCK_EX) != 0) _exit(3);
    if (!WriteStoreHolder(store, ThisProcessAsHolder("/gone", "0:999999")).ok()) _exit(4);
    char c = 1;
    if (write(ready[1], &c, 1) != 1) _exit(5);
    while (read(release[0], &c, 1) < 0 && errno == EINTR) {
    }
    _exit(0);
  }
  close(ready[1]);
  close(release[0]);
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1) << "the lock holder could not start";
  close(ready[0]);

  std::ostringstream out, err;
  CliIo io{&out, &err, false};
  EXPECT_FALSE(WaitForClosingDaemon(store, milliseconds(0), "fsck", io));
  EXPECT_NE(err.str().find("rankfs fsck: waiting for the rankfs daemon (pid " +
                           std::to_string(pid) + ") to finish closing the store"),
            std::string::npos)
      << err.str();
  EXPECT_NE(err.str().find("is still closing store " + store), std::string::npos) << err.str();

  close(release[1]);
  std::ostringstream err2;
  CliIo io2{&out, &err2, false};
  EXPECT_TRUE(WaitForClosingDaemon(store, std::chrono::seconds(30), "gc", io2)) << err2.str();
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;

  // The holder has exited and nothing holds the lock: try again at once, whatever the record
  // says. (Before, a holder that exited between the command's attempt and this look was
  // reported "in use by another process": CI saw that race in this very test.)
  std::ostringstream err3;
  CliIo io3{&out, &err3, false};
  EXPECT_TRUE(WaitForClosingDaemon(store, std::chrono::seconds(30), "fsck", io3)) << err3.str();

  // A record that names a process that is gone does not explain a held lock: whoever holds
  // it (here this test: another fsck, a daemon still starting) is unknown, and the command
  // does not wait.
  const int lock = open((store + "/LOCK").c_str(), O_RDWR);
  ASSERT_GE(lock, 0);
  ASSERT_EQ(flock(lock, LOCK_EX), 0);
  std::ostringstream err4;
  CliIo io4{&out, &err4, false};
  EXPECT_FALSE(WaitForClosingDaemon(store, std::chrono::seconds(30), "fsck", io4));
  EXPECT_NE(err4.str().find("is in use by another process"), std::string::npos) << err4.str();
  close(lock);
}

TEST(DaemonWaitTest, ParseSecondsTakesNonNegativeNumbers) {
  struct Case {
    const char* text;
    bool ok;
    int64_t ms;
  } cases[] = {{"60", true, 60000}, {"2.5", true, 2500}, {"0", true, 0},    {"", false, 0},
               {"-1", false, 0},    {"1s", false, 0},    {"nan", false, 0}, {"inf", false, 0}};
  for (const Case& c : cases) {
    milliseconds got(-7);
    EXPECT_EQ(ParseSeconds(c.text, &got), c.ok) << c.text;
    if (c.ok) {
      EXPECT_EQ(got.count(), c.ms) << c.text;
    }
  }
}

}  // namespace
}  // namespace rankfs
