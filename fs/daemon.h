// The mount daemon: opens a store, mounts it with libfuse and serves requests until unmounted.
//
// Start: `rankfs mount STORE MOUNTPOINT [-o opts] [-f]` calls RunMount. Stop: `fusermount3 -u
// MOUNTPOINT` (or `umount`), or SIGTERM/SIGINT/SIGHUP to the daemon, which then unmounts
// itself. Either way buffered data is written to the store and made durable before exit;
// once that write-back has begun, SIGTERM/SIGINT/SIGHUP are ignored (SIGKILL is not), so a
// service manager that signals what is left after the unmount cannot cut it short. The daemon
// records itself in STORE/HOLDER (store/store_holder.h) once mounted.
//
// Thread-safety: call once per process, from the main thread, before starting other threads
// (in the background mode it forks).
#pragma once

#include <string>

#include "fs/mount_options.h"

namespace rankfs {

// Mounts `store_dir` (created if missing; its parent must exist) on `mountpoint` (an existing
// directory) and serves it. foreground: serve in this process and return at unmount.
// Background: fork a daemon and return once it has mounted (or failed), so the exit status
// says whether the mount worked. Returns the process exit status: 0 after a clean mount and
// unmount (foreground) or a successful start (background); non-zero after an error, which is
// described on stderr ("already in use", "does not exist", ...).
int RunMount(const std::string& store_dir, const std::string& mountpoint, const MountConfig& cfg,
             bool foreground);

// A test seam: the Envs (and metadata write hook) of every store RunMount opens from now on,
// instead of the POSIX ones. Only a test tool sets it (tests/tools/rankfs_faulty.cc, which
// wraps them in fault injection); the rankfs binary never does. Not owned.
struct DaemonTestEnvs {
  Env* env = nullptr;
  rocksdb::Env* rocks_env = nullptr;
  MetaWriteHook* meta_write_hook = nullptr;
};
void SetDaemonTestEnvs(const DaemonTestEnvs& envs);

}  // namespace rankfs
