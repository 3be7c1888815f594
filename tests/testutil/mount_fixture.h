// Helpers for integration tests that mount rankfs for real.
//
// MountedFs runs `BINARY mount STORE MNT -f -o OPTS` as a child process and waits until the
// kernel shows a FUSE mount there. Its destructor always leaves no mount behind (unmount,
// then lazy unmount, then SIGKILL), so a failing test cannot poison the next one. Tests that
// need root and /dev/fuse use MountTest (tests/testutil/mount_test.h), which checks
// FuseAvailable().
//
// TestTimeout guards against a hung FUSE request: past its limit it lazily unmounts the
// mountpoints it watches and aborts the test binary, so CI never hangs.
//
// Thread-safety: create, use and destroy a MountedFs on one thread (the daemon gets
// PR_SET_PDEATHSIG, which fires when the thread that started it exits: start it from the
// test's main thread). TestTimeout::Watch may be called from the owning thread only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/status.h"

namespace rankfs {

struct CommandResult {
  int exit_code = -1;  // the exit status; -1 if killed by a signal or by the timeout
  std::string output;  // stdout and stderr together
};

// Runs argv[0] (searched in PATH) with argv, stdin from /dev/null, and collects its output.
// Kills it after `timeout`. Errors only when the process cannot be started.
Result<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(60));

// The value of `key` in the stats file of the rankfs mount at `mnt` (/.rankfs-stats), or
// ~0 when the file or the key is missing.
uint64_t StatValue(const std::string& mnt, const std::string& key);

// Runs `body` in a forked child and returns what the body returned, sent back through a pipe.
// `exited_cleanly` is false when the child died (or exited non-zero: a body that cannot set
// itself up may _exit(3)). Call it from a single-threaded point of the test (fork).
struct ChildResult {
  std::string output;
  bool exited_cleanly = false;
};
ChildResult RunInChild(const std::function<std::string()>& body);
// RunInChild in a child whose real, effective and saved uid and gid are all `id` (no
// supplementary groups); `exited_cleanly` is false too when it could not drop privileges.
ChildResult RunAsUser(uid_t id, const std::function<std::string()>& body);

// Whether /proc/self/mountinfo lists a mount at `mountpoint` (a canonical path).
bool IsMountPoint(const std::string& mountpoint);

class MountedFs {
 public:
  // `binary` is the rankfs executable (tests pass RANKFS_BINARY); `mountpoint` must exist.
  // Waits up to 20 s for the mount; fails with the daemon's log if the daemon exits first.
  static Result<std::unique_ptr<MountedFs>> Start(const std::string& binary,
                                                  const std::string& store_dir,
                                                  const std::string& mountpoint,
                                                  const std::string& options = "");
  // Unmount()s, ignoring errors; never throws; leaves no mount behind.
  ~MountedFs();
  MountedFs(const MountedFs&) = delete;
  MountedFs& operator=(const MountedFs&) = delete;

  // `fusermount3 -u` (retried; lazy unmount when busy), then waits up to 10 s for the daemon
  // to exit (SIGKILL after that). OK if the daemon exited with status 0. Idempotent.
  Status Unmount();
  // Kills the daemon with SIGKILL (a crash) and lazily unmounts, so the store can be mounted
  // again. OK once no mount is left.
  Status Kill9();

  // True while the daemon runs and the mount is listed.
  bool IsMounted() const;
  const std::string& mountpoint() const { return mountpoint_; }
  pid_t pid() const { return pid_; }
  // The daemon's stderr and stdout so far.
  std::string DaemonLog() const;

  // Root and /dev/fuse openable: real mounts are possible. RANKFS_TEST_NO_FUSE=1 in the
  // environment makes it say no, to check what the suite does on a machine without FUSE.
  static bool FuseAvailable();

 private:
  MountedFs() = default;
  // Waits for the daemon to exit; SIGKILLs it after `timeout`. Returns its wait status.
  int WaitDaemon(std::chrono::milliseconds timeout);
  void ForceUnmount();  // lazy unmount, whatever state the daemon is in

  std::string mountpoint_;
  std::string log_path_;
  pid_t pid_ = -1;  // -1 once reaped
};

// Aborts the process if it is still alive `limit` after construction (see above).
class TestTimeout {
 public:
  explicit TestTimeout(std::chrono::seconds limit, const std::string& mountpoint = "");
  ~TestTimeout();
  TestTimeout(const TestTimeout&) = delete;
  TestTimeout& operator=(const TestTimeout&) = delete;

  // Adds a mountpoint to unmount lazily on timeout.
  void Watch(const std::string& mountpoint);

 private:
  std::mutex mu_;  // guards done_ and mountpoints_
  std::condition_variable cv_;
  bool done_ = false;
  std::vector<std::string> mountpoints_;
  std::thread thread_;
};

}  // namespace rankfs
