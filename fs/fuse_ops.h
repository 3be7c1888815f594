// The libfuse low-level operations table over an FsCore.
//
// Each callback is thin: it decodes the request, calls one FsCore method and sends exactly one
// reply (fuse_reply_none for forget), whatever throws: every reply goes through one Reply
// object per request (fuse_ops_internal.h). Errors become an errno in one place
// (Reply::Error); no exception leaves a callback: one thrown before the reply is answered
// with EIO, one thrown after it is only logged.
//
// Lookup counts: every reply that hands the kernel an inode (lookup, mknod, mkdir, symlink,
// link, create, and each readdirplus entry other than "." and "..") carries one lookup that
// FsCore has counted; the kernel returns them through forget/forget_multi.
//
// Thread-safety: the callbacks run on libfuse's worker threads concurrently; all shared state
// lives in FsCore (thread-safe) and in FuseContext, which is read-only while the session runs
// (except shutdown_status, written once by destroy).
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include "fs/fs_core.h"
#include "store/status.h"

#if FUSE_USE_VERSION < 312
#error "rankfs needs the libfuse >= 3.12 low-level API (FUSE_USE_VERSION 312 or later)"
#endif

namespace rankfs {

// The readahead window's cap, asked for in INIT and set in the mount's bdi (the kernel keeps
// the smaller of the two). The kernel opens the window small and grows it only while a reader
// stays sequential; a wide one keeps several 1 MiB READs in flight, so that FUSE threads
// decompress chunks on every core. Cold 1 GiB sequential read, two runs each: 1 MiB 1.8-2.2 s,
// 4 MiB 1.7 s, 16 MiB 1.35-1.6 s.
inline constexpr unsigned kMaxReadaheadBytes = 16u << 20;

class PageFiller;

// The session's userdata (fuse_session_new's last argument). Owned by the daemon; must outlive
// the session.
struct FuseContext {
  FsCore* core = nullptr;       // not owned
  PageFiller* filler = nullptr;  // not owned; null: no page-cache fills (fs/page_fill.h)
  bool writeback_cache = true;  // ask the kernel for FUSE_CAP_WRITEBACK_CACHE
  // Result of FsCore::Shutdown() in the destroy callback, for the daemon to report.
  Status shutdown_status;
};

// The operations table; its userdata must be a FuseContext*.
const fuse_lowlevel_ops& RankfsLowLevelOps();

// Fills `st` from `attr`: st_blocks = ceil(size / 512) (allocation is not tracked per file),
// st_blksize 4096, times from the *_ns fields.
void FillStat(const InodeAttr& attr, struct stat* st);

}  // namespace rankfs
