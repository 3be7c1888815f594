// The /dev/fuse transport of the daemon: plain read(2)/writev(2), except that it turns on
// FUSE_HANDLE_KILLPRIV_V2 in the INIT reply when the kernel offers it.
//
// Why: without that flag the kernel never marks a FUSE superblock SB_NOSEC, so every write()
// syscall first asks the daemon for the file's security.capability xattr (file_remove_privs):
// one extra round trip per 8 KiB write, which measured as the largest single cost of the
// N-ranks workload (docs/design.md, "Performance choices"). With the flag the kernel asks once
// per inode and then marks it S_NOSEC. libfuse 3.14 (Debian 12) does not know the flag, so it
// is added here, in the one reply that carries it.
//
// The contract that comes with the flag: the filesystem, not the kernel, clears setuid/setgid
// (and security.capability) when a file's data changes. FsCore does that on every write and
// size change (FsCore::Write, SetAttr), see docs/design.md.
//
// Thread-safety: the callbacks are called concurrently by libfuse's worker threads; the only
// shared state is an atomic.
#pragma once

struct fuse_session;

namespace rankfs {

// Makes `se` use the transport above on `fd` (the session's own /dev/fuse fd, after
// fuse_session_mount). Returns false (and changes nothing) if libfuse refuses.
bool InstallKillprivTransport(fuse_session* se, int fd);

}  // namespace rankfs
