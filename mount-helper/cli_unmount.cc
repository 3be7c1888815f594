// `rankfs unmount MOUNTPOINT [--timeout SECS] [--store STORE]`: unmounts a rankfs mount and
// returns once its daemon has written back its buffered data and released the store, so that a
// script can go on to fsck, back up or remove the store. The daemon is found through the
// store's HOLDER record (store/store_holder.h); the store is the mount's source unless the
// mount was made with fsname= (then --store names it).
#include <limits.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "mount-helper/cli.h"
#include "mount-helper/cli_util.h"
#include "mount-helper/daemon_wait.h"

namespace rankfs {
namespace {

constexpr char kUnmountUsage[] =
    "usage: rankfs unmount MOUNTPOINT [--timeout SECS] [--store STORE]\n";

void PrintUnmountHelp(std::ostream& os) {
  os << kUnmountUsage
     << "\nUnmounts a rankfs mount, then waits until its daemon has written back what it\n"
        "buffered and released the store, so that rankfs fsck, gc, a backup or rm of the\n"
        "store can follow at once. A mount that is in use (an open file, a working directory\n"
        "inside it) is left mounted: there is no lazy unmount.\n\n"
        "  --timeout SECS  how long to wait for the daemon after the unmount (default 60)\n"
        "  --store STORE   the store directory, for a mount made with fsname= (by default\n"
        "                  the mount's source, as findmnt shows it)\n\n"
        "Exit status: 0 unmounted and the store released, 1 the unmount failed (busy, not\n"
        "permitted), 2 usage error, 3 not a rankfs mount (or its daemon cannot be found),\n"
        "4 unmounted, but the daemon was still closing the store when the timeout ran out.\n";
}

int UsageError(const CliIo& io, const std::string& why) {
  *io.err << "rankfs unmount: " << why << "\n" << kUnmountUsage;
  return kUnmountExitUsage;
}

// The canonical path of the mountpoint, found without looking at the mountpoint itself: a stat
// of it asks the daemon, which blocks while the daemon hangs and fails (ENOTCONN) once it died,
// and those are mounts that must still be unmountable. Only the parent is resolved.
std::string MountpointPath(const std::string& arg) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p = fs::absolute(arg, ec).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();  // "mnt/" -> "mnt"
  char buf[PATH_MAX];
  const fs::path parent = p.parent_path();
  if (p.filename() == ".." || realpath(parent.c_str(), buf) == nullptr) return p.string();
  return (fs::path(buf) / p.filename()).string();
}

// Unmounts `mountpoint`, never lazily. Root calls umount2; anyone else needs the setuid
// fusermount3, which checks that the caller owns the mount. Returns "" or what went wrong.
std::string Unmount(const std::string& mountpoint) {
  if (geteuid() == 0) {
    if (umount2(mountpoint.c_str(), UMOUNT_NOFOLLOW) == 0) return "";
    const int err = errno;
    if (err == EBUSY) {
      return "cannot unmount " + mountpoint + ": " + std::strerror(err) +
             " (a process has a file open or its working directory there; fuser -vm " + mountpoint +
             " lists them); it stays mounted";
    }
    return "cannot unmount " + mountpoint + ": " + std::strerror(err);
  }
  const pid_t pid = fork();
  if (pid < 0) return std::string("fork: ") + std::strerror(errno);
  if (pid == 0) {
    execlp("fusermount3", "fusermount3", "-u", "--", mountpoint.c_str(), nullptr);
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return "cannot run fusermount3";
  return "fusermount3 -u " + mountpoint + " failed (see above); it stays mounted";
}

}  // namespace

int UnmountCommand(const std::vector<std::string>& args, const CliIo& io) {
  std::chrono::milliseconds timeout = std::chrono::seconds(60);
  std::string store;
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      PrintUnmountHelp(*io.out);
      return 0;
    } else if (a == "--timeout" || a == "--store") {
      if (++i == args.size()) return UsageError(io, a + " needs a value");
      if (a == "--store") {
        store = args[i];
      } else if (!ParseSeconds(args[i], &timeout)) {
        return UsageError(io, "--timeout '" + args[i] + "' is not a number of seconds");
      }
    } else if (a.size() > 1 && a[0] == '-') {
      return UsageError(io, "unknown flag '" + a + "'");
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 1) return UsageError(io, "needs one MOUNTPOINT");

  const std::string mnt = MountpointPath(positional[0]);
  std::optional<MountEntry> mount = FindMount(mnt);
  if (!mount) {
    *io.err << "rankfs unmount: " << mnt << " is not a mount point\n";
    return kUnmountExitNotRankfs;
  }
  if (mount->fstype != "fuse.rankfs") {
    *io.err << "rankfs unmount: " << mnt << " is not a rankfs mount (its type is " << mount->fstype
            << ")\n";
    return kUnmountExitNotRankfs;
  }
  if (store.empty()) store = mount->source;
  Result<StoreHolder> holder = FindStoreHolder(store);
  if (!holder.ok() || holder->device != mount->device) {
    *io.err << "rankfs unmount: cannot find the rankfs daemon serving " << mnt << ": "
            << (holder.ok() ? "the store " + store + " records a daemon of another mount"
                            : holder.status().message())
            << " (for a mount made with fsname=, name its store with --store STORE)\n";
    return kUnmountExitNotRankfs;
  }
  if (std::string failed = Unmount(mnt); !failed.empty()) {
    *io.err << "rankfs unmount: " << failed << "\n";
    return kUnmountExitFailed;
  }
  if (WaitForHolderExit(*holder, timeout)) return 0;
  *io.err << "rankfs unmount: " << mnt << " is unmounted, but its rankfs daemon (pid "
          << holder->pid << ") is still writing back and closing the store " << store
          << "; it goes on in the background (rankfs fsck and gc wait for it)\n";
  return kUnmountExitTimedOut;
}

}  // namespace rankfs
