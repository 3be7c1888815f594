// Reading /proc/PID/mountinfo: which mounts a process's mount namespace holds. The daemon finds
// its own mount's device here; `rankfs unmount`, fsck and gc find a mount and its daemon
// (mount-helper/daemon_wait.h).
//
// Thread-safety: the functions are self-contained and may be called from any thread.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace rankfs {

// One line of a mountinfo file, with its octal escapes ("\040" for a space) undone.
struct MountEntry {
  std::string device;      // "0:38"
  std::string mountpoint;  // "/home/alice/.cache/modelscope/hub/tmp"
  std::string fstype;      // "fuse.rankfs"
  std::string source;      // for rankfs the store directory, unless fsname= says otherwise
};

// The entries of a mountinfo file (/proc/self/mountinfo, /proc/PID/mountinfo), in order;
// empty when it cannot be read.
std::vector<MountEntry> ReadMountinfo(const std::string& path);

// The mount at `mountpoint` (a canonical path) in /proc/self/mountinfo: the last entry, since
// mounts stack. nullopt when none is there.
std::optional<MountEntry> FindMount(const std::string& mountpoint);

}  // namespace rankfs
