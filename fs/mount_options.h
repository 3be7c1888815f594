// Mount options: the comma-separated `-o` list of `rankfs mount` (and of fstab entries), parsed
// into a MountConfig, and the argument vector handed to libfuse's fuse_session_new().
//
//   compress=N          zstd level of a NEW store, 0..19 (0 stores chunks raw)     [1]
//   chunk_min=SIZE      FastCDC minimum chunk size of a new store                  [8K]
//   chunk_avg=SIZE      FastCDC average chunk size of a new store (power of two)   [32K]
//   chunk_max=SIZE      FastCDC maximum chunk size of a new store                  [128K]
//   cache_size=SIZE     decompressed-chunk cache                                   [128M]
//   write_buffer=SIZE   cap on buffered dirty file data                            [256M]
//   reserve=SIZE        free space of the store's filesystem kept for metadata: writes
//                       and creations below it fail with ENOSPC, deletes still work; df
//                       shows it as used (0: off)     [1% of the fs, >= 64M, <= 1/4 of it]
//   lazy_close=SECS     a file of at most 64 KiB keeps its closed bytes buffered this
//                       long (a temporary file deleted meanwhile never reaches the store;
//                       a crash may lose them; fsync does not), 0: store at close  [5]
//   entry_timeout=SECS  how long the kernel caches a name, found or not found   [3600]
//   attr_timeout=SECS   how long the kernel caches attributes (never those of the
//                       stats file)                                                [1]
//   xattr=on|off        off: getxattr & co answer ENOSYS, so the kernel stops asking
//                       and fails every xattr call with EOPNOTSUPP. Writes do not need it
//                       off: where the kernel offers FUSE_HANDLE_KILLPRIV_V2
//                       (fs/killpriv_io.h) it asks for security.capability once per
//                       inode, not once per write()                                [on]
//   writeback_cache=on|off  kernel write-back cache (merges small writes; the kernel
//                       then owns size and mtime and pushes them by SETATTR)       [on]
//   page_fill=on|off    after a small read (a page fault), put the rest of the chunks it
//                       decompressed into the page cache, while no handle can write the
//                       file (fs/page_fill.h)                                      [on]
//   fuse_threads=N      most threads serving FUSE requests, 2..64                  [16]
//   uid=N, gid=N        owner of the root directory of a new store [the mounting user]
//   umask=OOO           root directory mode of a new store is 0777 & ~umask        [022]
//   fsname=NAME         the "device" shown in /proc/mounts                         [store dir]
//   dedup=global|per-uid  which files share chunks: all, or only those of one owner uid, so
//                       no user can learn that another stored some content. Fixed when
//                       the store is created; naming a different one later is refused [global]
//   allow_other, default_permissions, debug, ro, rw
//   nosuid, nodev, noexec, suid, dev, exec, noatime, atime, relatime, auto_unmount (passed on)
//   defaults, _netdev, nofail, noauto, auto, user, users, nouser, x-*  (fstab words; ignored)
// SIZE takes an optional K, M or G suffix (powers of 1024).
//
// Settings "of a new store" are recorded in the store's superblock; later mounts keep them.
//
// Thread-safety: plain functions over values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fs/fs_core.h"
#include "store/status.h"
#include "store/store.h"

namespace rankfs {

struct MountConfig {
  FsOptions fs;
  // Only the settings of a new store are filled in (chunker, compression_level); the
  // daemon supplies the rest.
  StoreOptions store;
  bool writeback_cache = true;
  bool page_fill = true;
  unsigned fuse_threads = 16;  // libfuse's multi-threaded loop: most (and idle) workers
  bool allow_other = false;
  bool debug = false;
  bool read_only = false;
  std::string fsname;  // empty: the store directory
  // Generic mount flags passed to libfuse unchanged ("nosuid", "noatime", ...), in order.
  std::vector<std::string> kernel_flags;
};

// Parses `options` (e.g. "compress=3,cache_size=1G,allow_other") on top of `cfg`, so that
// several -o lists can be applied in turn. Empty items are skipped. Returns EINVAL, naming the
// option, for an unknown option or a malformed value; `cfg` may then be partly updated.
Status ParseMountOptions(std::string_view options, MountConfig* cfg);

// Parses a byte size with an optional K/M/G suffix ("64K", "1G", "4096").
Result<uint64_t> ParseByteSize(std::string_view text);

// The result of StripFstabOptions: an option list split into what rankfs acts on and what
// only means something to mount(8), fstab or systemd.
struct FstabOptionSplit {
  std::string mount_options;            // comma-separated, for ParseMountOptions
  std::vector<std::string> fstab_only;  // the items taken out, as written, in order
};

// Takes the fstab-only words out of an option list as mount(8) hands it to mount.rankfs:
// defaults, auto, noauto, nofail, _netdev, user, user=NAME, users, nouser, owner, group,
// comment=..., and every x-... (x-systemd.automount, x-systemd.requires=..., ...). Everything
// else is kept, in order, for ParseMountOptions to accept or refuse; empty items are dropped.
FstabOptionSplit StripFstabOptions(std::string_view options);

// The argument vector for fuse_session_new(): {program, ["-d",] "-o", "fsname=...,
// subtype=rankfs,default_permissions[,allow_other][,ro]..."}. default_permissions is always
// on: rankfs relies on the kernel's permission checks.
std::vector<std::string> BuildFuseArgs(const MountConfig& cfg, const std::string& store_dir);

}  // namespace rankfs
