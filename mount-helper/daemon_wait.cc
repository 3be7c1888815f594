#include "mount-helper/daemon_wait.h"

#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
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

// The pid /proc/locks shows holding a flock on the file (dev, ino); 0 when none.
pid_t FlockHolder(dev_t dev, ino_t ino) {
  std::ifstream in("/proc/locks");
  std::string line;
  // "1: FLOCK  ADVISORY  WRITE 4242 00:1f:131090 0 EOF" (device numbers in hex).
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, kind, mode, access, pid, where;
    if (!(f >> id >> kind >> mode >> access >> pid >> where) || kind != "FLOCK") continue;
    unsigned maj = 0, min = 0;
    unsigned long long inode = 0;
    if (std::sscanf(where.c_str(), "%x:%x:%llu", &maj, &min, &inode) != 3) continue;
    if (maj == major(dev) && min == minor(dev) && inode == ino) {
      return pid_t(std::strtol(pid.c_str(), nullptr, 10));
    }
  }
  return 0;
}

}  // namespace

Result<StoreHolder> FindStoreHolder(const std::string& dir) {
  Result<StoreHolder> recorded = ReadStoreHolder(dir);
  if (recorded.ok() && HolderAlive(*recorded)) return recorded;
  struct stat st;
  const std::string lock = dir + "/LOCK";
  if (stat(lock.c_str(), &st) != 0) return Status::FromErrno("stat", lock);
  StoreHolder h;
  h.pid = FlockHolder(st.st_dev, st.st_ino);
  h.start_ticks = h.pid > 0 ? ProcessStartTicks(h.pid) : 0;
  if (h.start_ticks == 0) return Status(ENOENT, "no process holds store " + dir);
  std::error_code ec;
  const std::string canonical = std::filesystem::canonical(dir, ec).string();
  for (const MountEntry& e : ReadMountinfo("/proc/" + std::to_string(h.pid) + "/mountinfo")) {
    if (e.fstype == "fuse.rankfs" && (e.source == dir || e.source == canonical)) {
      h.device = e.device;
      h.mountpoint = e.mountpoint;
    }
  }
  if (h.device.empty()) {
    return Status(EBUSY, "store " + dir + " is held by process " + std::to_string(h.pid) +
                             ", which serves no rankfs mount of it");
  }
  return h;
}

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
  Result<StoreHolder> holder = FindStoreHolder(dir);
  // Nobody holds it any more: the holder finished between the command's failed attempt and
  // this look. The caller tries once more (and reports a lock taken again meanwhile).
  if (!holder.ok() && holder.status().code() == ENOENT) return true;
  if (!holder.ok()) {
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
