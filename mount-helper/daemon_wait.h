// Telling a mounted store from one whose daemon is still closing it, and waiting for the
// latter: what `rankfs unmount`, fsck and gc share. A daemon writes back its buffered data
// after the kernel has dropped its mount, so for a while after `umount` the store's LOCK is
// still held although nothing is mounted (docs/design.md, "Unmount").
//
// The daemon is found through its STORE/HOLDER record (store/store_holder.h), or for a
// read-only mount through the lock it holds (FindStoreHolder); its mount is
// looked up by device in the daemon's own /proc/PID/mountinfo (its mount namespace), and in
// ours when that cannot be read.
//
// Thread-safety: none needed; the commands run on one thread.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "fs/mountinfo.h"
#include "mount-helper/cli.h"
#include "store/store_holder.h"

namespace rankfs {

// The live holder of the store `dir`: its HOLDER record when the process named there is alive;
// otherwise (a read-only mount writes no record, since it changes nothing in the store) the
// process /proc/locks shows holding STORE/LOCK, provided its own mountinfo shows it serving
// `dir` on a fuse.rankfs mount (device and mountpoint come from there). ENOENT when no process
// holds the store; EBUSY when one does that serves no mount of it (fsck, gc, or the closing
// daemon of a read-only mount, whose mount is gone already).
Result<StoreHolder> FindStoreHolder(const std::string& dir);

// Whether the mount recorded in `holder` is still mounted, as its daemon sees it.
bool HolderStillMounted(const StoreHolder& holder);

// Waits until the process `holder` names has exited, up to `limit`. True once it has.
bool WaitForHolderExit(const StoreHolder& holder, std::chrono::milliseconds limit);

// For an offline command (fsck, gc) that found `dir` locked: when its daemon's mount is gone
// and the daemon is still running, says once on io.err that it waits, and waits up to `limit`
// for the daemon to exit. True when the command should try again (the daemon has exited, or
// nothing holds the store any more);
// false, with the reason on io.err, when the store is mounted, the holder is unknown (another
// offline command, a daemon still starting) or the wait ran out.
bool WaitForClosingDaemon(const std::string& dir, std::chrono::milliseconds limit,
                          std::string_view command, const CliIo& io);

}  // namespace rankfs
