// Helpers shared by the libfuse callbacks (fuse_ops.cc, fuse_dir_ops.cc). Not a public header.
//
// Reply discipline: each callback makes one Reply for its request first and never touches the
// raw request again; every reply goes through that Reply. libfuse frees a request with its
// reply (a failed one too), so the Reply keeps what the callback still needs afterwards (the
// session's context, the caller) and sends at most one reply: a second is logged and dropped.
// Guarded() answers EIO when its body throws before a reply went out, and only logs an
// exception thrown after it. A Reply destroyed without a reply answers EIO itself (or nothing,
// for forget), so no path can leave a request unanswered.
#pragma once

#include <sys/statvfs.h>
#include <sys/uio.h>

#include <cstring>
#include <exception>
#include <string>

#include "fs/fuse_ops.h"
#include "store/logging.h"

namespace rankfs::fuse_internal {

inline void LogNoThrow(LogLevel level, const char* op, const char* what,
                       const char* detail = "") noexcept {
  try {
    Log(level, "fuse", std::string(op) + ": " + what + detail);
  } catch (...) {
  }
}

inline void LogStatusNoThrow(LogLevel level, const char* op, const Status& s) noexcept {
  try {
    Log(level, "fuse", std::string(op) + ": " + s.ToString());
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

// The one reply to one request (see the top of this file). Each reply method returns what
// libfuse returned: non-zero when the kernel did not take the reply (the request was
// interrupted), which the caller may need to undo what the reply would have handed over.
// Not thread-safe: one thread at a time, which may change when the request is deferred.
class Reply {
 public:
  // What a Reply destroyed without a reply sends.
  enum class Unanswered { kEio, kNone /* forget and forget_multi expect no answer */ };

  explicit Reply(fuse_req_t req, Unanswered unanswered = Unanswered::kEio) noexcept
      : req_(req),
        ctx_(static_cast<FuseContext*>(fuse_req_userdata(req))),
        unanswered_(unanswered) {
    const fuse_ctx* c = fuse_req_ctx(req);
    caller_ = Caller{uint32_t(c->uid), uint32_t(c->gid), uint32_t(c->pid)};
  }
  // The moved-from Reply no longer answers for the request.
  Reply(Reply&& o) noexcept
      : req_(o.req_), ctx_(o.ctx_), caller_(o.caller_), unanswered_(o.unanswered_) {
    o.req_ = nullptr;
  }
  Reply(const Reply&) = delete;
  Reply& operator=(const Reply&) = delete;
  Reply& operator=(Reply&&) = delete;
  ~Reply() {
    if (req_ == nullptr) return;
    if (unanswered_ == Unanswered::kNone) {
      None();
    } else {
      LogNoThrow(LogLevel::kError, "reply", "a request was left unanswered; answering EIO");
      Err(EIO);
    }
  }

  // Valid before and after the reply (the session's userdata outlives every request).
  FuseContext* ctx() const noexcept { return ctx_; }
  FsCore* core() const noexcept { return ctx_->core; }
  const Caller& caller() const noexcept { return caller_; }
  // True once a reply went out (or the request moved to another Reply).
  bool replied() const noexcept { return req_ == nullptr; }
  // False for forget and forget_multi, whose only reply is None().
  bool answers() const noexcept { return unanswered_ == Unanswered::kEio; }

  int Err(int err) noexcept {
    fuse_req_t r = Claim();
    return r != nullptr ? fuse_reply_err(r, err) : -EALREADY;
  }
  // The one place a Status becomes an errno. Never answers 0: an OK or out-of-range code is EIO.
  int Error(const Status& s, const char* op) noexcept {
    int err = s.code();
    if (err <= 0 || err >= 4096) err = EIO;
    if (!IsRoutineError(err)) LogStatusNoThrow(LogLevel::kWarning, op, s);
    return Err(err);
  }
  // 0 for an OK status, the errno otherwise.
  int StatusOf(const Status& s, const char* op) noexcept { return s.ok() ? Err(0) : Error(s, op); }
  int Entry(const fuse_entry_param& e) noexcept {
    fuse_req_t r = Claim();
    return r != nullptr ? fuse_reply_entry(r, &e) : -EALREADY;
  }
  int Create(const fuse_entry_param& e, const fuse_file_info& fi) noexcept {
    fuse_req_t r = Claim();
    return r != nullptr ? fuse_reply_create(r, &e, &fi) : -EALREADY;
  }
  int Attr(const struct stat& st, double timeout) noexcept {
    fuse_req_t r = Claim();
    return r != nullptr ? fuse_reply_attr(r, &st, timeout) : -EALREADY;
  }
  int Readlink(const char* link) noexcept {
    fuse_req_t r = Claim();
    return r != nullptr ? fuse_reply_readlink(r, link) : -EALREADY;
  }
  int Open(const fuse_file_info& fi) noexcept {
    fuse_req_t r = Claim();
    return r != nullptr ? fuse_reply_open(r, &fi) : -EALREADY;
  }
  int Write(size_t count) noexcept {
    fuse_req_t r = Claim();
    return r != nullptr ? fuse_reply_write(r, count) : -EALREADY;
  }
  int Buf(const char* buf, size_t size) noexcept {
    fuse_req_t r = Claim();
    return r != nullptr ? fuse_reply_buf(r, buf, size) : -EALREADY;
  }
  int Iov(const iovec* iov, int count) noexcept {
    fuse_req_t r = Claim();
    return r != nullptr ? fuse_reply_iov(r, iov, count) : -EALREADY;
  }
  int Statfs(const struct statvfs& st) noexcept {
    fuse_req_t r = Claim();
    return r != nullptr ? fuse_reply_statfs(r, &st) : -EALREADY;
  }
  int Xattr(size_t count) noexcept {
    fuse_req_t r = Claim();
    return r != nullptr ? fuse_reply_xattr(r, count) : -EALREADY;
  }
  int Lseek(off_t off) noexcept {
    fuse_req_t r = Claim();
    return r != nullptr ? fuse_reply_lseek(r, off) : -EALREADY;
  }
  void None() noexcept {
    fuse_req_t r = Claim();
    if (r != nullptr) fuse_reply_none(r);
  }

  // Directory entries for Buf(). REQUIRES: no reply yet (answers as if nothing fits after it).
  size_t AddDirentry(char* buf, size_t size, const char* name, const struct stat& st,
                     off_t next) noexcept {
    return req_ != nullptr ? fuse_add_direntry(req_, buf, size, name, &st, next) : SIZE_MAX;
  }
  size_t AddDirentryPlus(char* buf, size_t size, const char* name, const fuse_entry_param& e,
                         off_t next) noexcept {
    return req_ != nullptr ? fuse_add_direntry_plus(req_, buf, size, name, &e, next) : SIZE_MAX;
  }

 private:
  // The request, for the one reply about to be sent; nullptr (logged) if one went out already.
  fuse_req_t Claim() noexcept {
    fuse_req_t r = req_;
    req_ = nullptr;  // gone with the reply, whether the kernel takes it or not
    if (r == nullptr) LogNoThrow(LogLevel::kError, "reply", "a second reply was dropped");
    return r;
  }

  fuse_req_t req_;  // nullptr once answered
  FuseContext* const ctx_;
  Caller caller_;
  const Unanswered unanswered_;
};

// Runs a callback body. Anything it throws is logged; it is answered with EIO if no reply went
// out before the throw (work done after a reply is never answered twice), unless it is a
// forget, which the caller answers with None().
template <typename Fn>
void Guarded(Reply& reply, const char* op, Fn&& body) noexcept {
  try {
    body();
    return;
  } catch (const std::exception& e) {
    LogNoThrow(LogLevel::kError, op, reply.replied() ? "after its reply: " : "", e.what());
  } catch (...) {
    LogNoThrow(LogLevel::kError, op, reply.replied() ? "after its reply: " : "",
               "unknown exception");
  }
  if (!reply.replied() && reply.answers()) reply.Err(EIO);
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
