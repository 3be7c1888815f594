#include "mount-helper/daemon_wait.h"

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>
#include <thread>
#include <vector>

namespace rankfs {
namespace {

using Clock = std::chrono::steady_clock;

std::string Seconds(std::chrono::milliseconds d) {
  std::ostringstream os;
  os << double(d.count()) / 1000 << " s";
  return os.str();
}

}  // namespace

bool HolderStillMounted(const StoreHolder& holder) {
  // The daemon's own view first: a mount made in another mount namespace is not in ours.
  std::vector<MountEntry> entries =
      ReadMountinfo("/proc/" + std::to_string(holder.pid) + "/mountinfo");
  if (entries.empty()) entries = ReadMountinfo("/proc/self/mountinfo");
  // Device and path: a device number freed by the unmount may already serve another mount.
  for (const MountEntry& e : entries) {
    if (e.device == holder.device && e.mountpoint == holder.mountpoint) return true;
  }
  return false;
}

bool WaitForHolderExit(const StoreHolder& holder, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  // A pidfd turns readable when its process exits. Opened before the start time is compared,
  // it cannot belong to a later process that reused the pid.
  const int pidfd = int(syscall(SYS_pidfd_open, holder.pid, 0));
  if (pidfd >= 0) {
    bool exited = !HolderAlive(holder);
    while (!exited) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) break;
      pollfd p{pidfd, POLLIN, 0};
      const int r = poll(&p, 1, int(std::min<int64_t>(left.count(), 1000)));
      exited = (r > 0) || !HolderAlive(holder);
    }
    close(pidfd);
    return exited;
  }
  // No pidfd (the process is gone already, or an old kernel): poll /proc.
  for (;;) {
    if (!HolderAlive(holder)) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool WaitForClosingDaemon(const std::string& dir, std::chrono::milliseconds limit,
                          std::string_view command, const CliIo& io) {
  const std::string prefix = "rankfs " + std::string(command) + ": ";
  Result<StoreHolder> holder = ReadStoreHolder(dir);
  if (!holder.ok() || !HolderAlive(*holder)) {
    *io.err << prefix << "store " << dir
            << " is in use by another process: a rankfs daemon (unmount it first: rankfs "
               "unmount MOUNTPOINT), or another rankfs fsck or gc\n";
    return false;
  }
  if (HolderStillMounted(*holder)) {
    *io.err << prefix << "store " << dir << " is in use: mounted on " << holder->mountpoint
            << " (rankfs daemon pid " << holder->pid << "); unmount it first: rankfs unmount "
            << holder->mountpoint << "\n";
    return false;
  }
  *io.err << prefix << "waiting for the rankfs daemon (pid " << holder->pid
          << ") to finish closing the store\n";
  if (WaitForHolderExit(*holder, limit)) return true;
  *io.err << prefix << "the rankfs daemon (pid " << holder->pid << ") is still closing store "
          << dir << " after " << Seconds(limit)
          << " (its mount is gone; a lazy unmount with files still open keeps it running); "
             "try again later, or wait longer with --wait SECS\n";
  return false;
}

}  // namespace rankfs
