// StoreHolder: who holds a store's LOCK, recorded in STORE/HOLDER by the mount daemon once it
// has mounted, so that other processes can tell a store that is mounted from one whose daemon
// is still closing it after the unmount (docs/format.md, "HOLDER"; docs/design.md, "Unmount").
//
// The record is advisory: it is true only while its process is alive (same pid and the same
// start time) and the lock is held. It is never removed: a record left by a daemon that has
// exited names a dead process, which is how readers tell it from a live one; the next daemon
// replaces it (written to a temporary name, then renamed).
//
// Thread-safety: the functions are self-contained and may be called from any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "store/status.h"

namespace rankfs {

inline constexpr char kStoreHolderName[] = "HOLDER";

struct StoreHolder {
  pid_t pid = 0;
  uint64_t start_ticks = 0;  // the process's start time (/proc/PID/stat field 22)
  std::string mountpoint;    // as the daemon mounted it (for messages)
  std::string device;        // the mount's device in /proc/PID/mountinfo ("0:38")
};

// The holder record of this process for a mount at `mountpoint` with device `device`.
StoreHolder ThisProcessAsHolder(const std::string& mountpoint, const std::string& device);

// Replaces STORE/HOLDER with `holder`. Not synced: after a crash the record names a dead
// process, which readers treat as no record.
Status WriteStoreHolder(const std::string& store_dir, const StoreHolder& holder);

// ENOENT when there is no record, EINVAL when it cannot be parsed.
Result<StoreHolder> ReadStoreHolder(const std::string& store_dir);

// The start time of process `pid` in clock ticks since boot; 0 when there is no such process
// or it has exited and is only waiting to be reaped (a zombie holds no files, hence no lock).
uint64_t ProcessStartTicks(pid_t pid);

// Whether the process the record names is still running (not a later process with its pid).
bool HolderAlive(const StoreHolder& holder);

}  // namespace rankfs
