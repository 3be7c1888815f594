#include "mount-helper/daemon_wait.h"

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace rankfs {
namespace {

using Clock = std::chrono::steady_clock;

// Undoes mountinfo's octal escapes ("\040" for a space, "\012" for a newline).
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out.push_back(char(std::strtol(s.substr(i + 1, 3).c_str(), nullptr, 8)));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string Seconds(std::chrono::milliseconds d) {
  std::ostringstream os;
  os << double(d.count()) / 1000 << " s";
  return os.str();
}

}  // namespace

std::vector<MountEntry> ReadMountinfo(const std::string& path) {
  std::vector<MountEntry> entries;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    // "36 35 0:38 / /mnt rw,relatime shared:1 - fuse.rankfs /store rw,...": optional fields
    // run up to "-"; the filesystem type and source follow it.
    std::istringstream fields(line);
    std::string id, parent, device, root, point, options, field, fstype, source;
    if (!(fields >> id >> parent >> device >> root >> point >> options)) continue;
    while (fields >> field && field != "-") {
    }
    if (field != "-" || !(fields >> fstype >> source)) continue;
    entries.push_back(MountEntry{device, Unescape(point), fstype, Unescape(source)});
  }
  return entries;
}

std::optional<MountEntry> FindMount(const std::string& mountpoint) {
  std::optional<MountEntry> found;
  for (MountEntry& e : ReadMountinfo("/proc/self/mountinfo")) {
    if (e.mountpoint == mountpoint) found = std::move(e);
  }
  return found;
}

bool HolderStillMounted(const StoreHolder& holder) {
  // The daemon's own view first: a mount made in another mount namespace is not in ours.
  std::vector<MountEntry> entries =
      ReadMountinfo("/proc/" + std::to_string(holder.pid) + "/mountinfo");
  if (entries.empty()) entries = ReadMountinfo("/proc/self/mountinfo");
  for (const MountEntry& e : entries) {
    if (e.device == holder.device) return true;
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
