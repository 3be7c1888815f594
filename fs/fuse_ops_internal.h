// Helpers shared by the libfuse callbacks (fuse_ops.cc, fuse_dir_ops.cc). Not a public header.
//
// Reply discipline: a callback body sends exactly one reply, as its last action; Guarded()
// answers EIO if the body throws (which can only happen before that reply).
#pragma once

#include <cstring>
#include <exception>
#include <string>

#include "fs/fuse_ops.h"
#include "store/logging.h"

namespace rankfs::fuse_internal {

inline FuseContext* Ctx(fuse_req_t req) {
  return static_cast<FuseContext*>(fuse_req_userdata(req));
}
inline FsCore* Core(fuse_req_t req) { return Ctx(req)->core; }

inline void LogNoThrow(LogLevel level, const char* op, const std::string& what) noexcept {
  try {
    Log(level, "fuse", std::string(op) + ": " + what);
  } catch (...) {
  }
}

// Errors that are part of normal operation (a failed lookup, an existing name, a missing
// xattr, a permission refusal, ...) and not worth a log line.
inline bool IsRoutineError(int err) {
  switch (err) {
    case ENOENT:
    case EEXIST:
    case ENODATA:
    case ENOTEMPTY:
    case EACCES:
    case EPERM:
    case ENOSYS:
    case ENXIO:
    case ERANGE:
    case ENAMETOOLONG:
    case ENOTDIR:
    case EISDIR:
      return true;
    default:
      return false;
  }
}

// The one place a Status becomes an errno. Never answers 0: an OK or out-of-range code is EIO.
inline void ReplyError(fuse_req_t req, const Status& s, const char* op) {
  int err = s.code();
  if (err <= 0 || err >= 4096) err = EIO;
  if (!IsRoutineError(err)) LogNoThrow(LogLevel::kWarning, op, s.ToString());
  fuse_reply_err(req, err);
}

// Replies 0 for an OK status, the errno otherwise.
inline void ReplyStatus(fuse_req_t req, const Status& s, const char* op) {
  if (s.ok()) {
    fuse_reply_err(req, 0);
  } else {
    ReplyError(req, s, op);
  }
}

// Runs a callback body; anything it throws is logged and answered with EIO.
template <typename Fn>
void Guarded(fuse_req_t req, const char* op, Fn&& body) noexcept {
  try {
    body();
    return;
  } catch (const std::exception& e) {
    LogNoThrow(LogLevel::kError, op, std::string("exception: ") + e.what());
  } catch (...) {
    LogNoThrow(LogLevel::kError, op, "unknown exception");
  }
  fuse_reply_err(req, EIO);
}

// The stats file changes all the time: the kernel must never cache its attributes.
inline double AttrTimeout(const FsOptions& o, Ino ino) {
  return ino == kStatsIno ? 0.0 : o.attr_timeout_s;
}

inline void FillEntry(const FsOptions& o, const InodeAttr& a, fuse_entry_param* e) {
  std::memset(e, 0, sizeof *e);
  e->ino = a.ino;
  e->generation = a.generation;
  FillStat(a, &e->attr);
  e->attr_timeout = AttrTimeout(o, a.ino);
  e->entry_timeout = o.entry_timeout_s;
}

// Directory, statfs and xattr callbacks (fuse_dir_ops.cc).
void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
void OpReleasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void OpFsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
void OpStatfs(fuse_req_t req, fuse_ino_t ino);
void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                int flags);
void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size);
void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name);

}  // namespace rankfs::fuse_internal
