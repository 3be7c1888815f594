// The command-line tools as functions, so that tests can run them in-process; the executables'
// main()s only call them.
//
//   rankfs mount STORE MOUNTPOINT [-o OPTIONS] [-f] [-d]  serve a store       (cli_rankfs.cc)
//   rankfs stats MOUNTPOINT [--json | --prometheus]       a mount's statistics (cli_stats.cc)
//   rankfs fsck STORE [--repair]                          offline check/repair (cli_fsck.cc)
//   rankfs gc STORE [--threshold PCT] [--dry-run]         offline compaction   (cli_gc.cc)
//   rankfs unmount MOUNTPOINT [--timeout SECS]            unmount and wait for the daemon
//                                                         to release the store (cli_unmount.cc)
//   rankfs /ABS/STORE MOUNTPOINT [-o OPTIONS]             what mount.fuse3 runs for fuse.rankfs
//   mount.rankfs SOURCE MOUNTPOINT [-o OPTIONS] [-s] [-f] [-n] [-v] [-t TYPE]
//                                                         mount(8)'s helper (cli_mount_helper.cc)
//
// Results go to `out`, diagnostics to `err`. The mount daemon itself (fs/daemon.cc) reports its
// errors on the process's stderr, whatever `err` is.
//
// Thread-safety: each call is self-contained, but the mount commands fork a daemon: call them
// from a single-threaded process (a main()).
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "fs/mount_options.h"

namespace rankfs {

struct CliIo {
  std::ostream* out;  // results (reports, statistics)
  std::ostream* err;  // usage errors and diagnostics
  // Progress bars are drawn on `out` only when it is a terminal; never in scripts or tests.
  bool interactive = false;
};

// std::cout / std::cerr, interactive when stdout is a terminal.
CliIo StandardIo();

// The mount options before -o is applied: as MountConfig, except that the root directory of a
// new store belongs to the user who mounts it (uid=/gid= override that), so that a user's mount
// of a fresh store is writable by that user.
MountConfig DefaultMountConfig();

// `rankfs ARGS...`; args[0] is the program name. Returns the exit status.
int RankfsMain(const std::vector<std::string>& args, const CliIo& io);

// `mount.rankfs ARGS...` (also installed as mount.fuse.rankfs). Exit statuses follow mount(8):
// 0 mounted (and answering), 1 bad invocation or options, 32 the mount failed.
int MountHelperMain(const std::vector<std::string>& args, const CliIo& io);

// The commands behind RankfsMain; args start after the command word.
int StatsCommand(const std::vector<std::string>& args, const CliIo& io);
int FsckCommand(const std::vector<std::string>& args, const CliIo& io);
int GcCommand(const std::vector<std::string>& args, const CliIo& io);
int UnmountCommand(const std::vector<std::string>& args, const CliIo& io);

// Exit statuses of `rankfs unmount`.
inline constexpr int kUnmountExitFailed = 1;     // not unmounted: busy, not permitted
inline constexpr int kUnmountExitUsage = 2;      // bad arguments
inline constexpr int kUnmountExitNotRankfs = 3;  // not a rankfs mount, or no daemon found
inline constexpr int kUnmountExitTimedOut = 4;   // unmounted; the daemon is still closing

// Exit statuses of mount.rankfs (mount(8)'s conventions).
inline constexpr int kMountExitUsage = 1;
inline constexpr int kMountExitFailure = 32;

}  // namespace rankfs
