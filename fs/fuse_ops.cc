#include "fs/fuse_ops.h"

#include <fcntl.h>

#include <sys/uio.h>

#include <cstring>
#include <string>
#include <vector>

#include "fs/fuse_ops_internal.h"
#include "fs/page_fill.h"

namespace rankfs {
namespace {

using namespace fuse_internal;  // NOLINT(google-build-using-namespace): this file's helpers

constexpr unsigned kOneMiB = 1u << 20;

Caller CallerOf(fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  return Caller{uint32_t(c->uid), uint32_t(c->gid), uint32_t(c->pid)};
}

int64_t TimespecNs(const timespec& ts) { return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec; }

// Replies with an entry whose lookup FsCore has counted. If the kernel never receives it (the
// request was interrupted), the lookup is given back so the inode is not pinned forever.
void ReplyCountedEntry(fuse_req_t req, const Result<InodeAttr>& r, const char* op) {
  if (!r.ok()) return ReplyError(req, r.status(), op);
  fuse_entry_param e;
  FillEntry(Core(req)->options(), *r, &e);
  if (fuse_reply_entry(req, &e) != 0) Core(req)->Forget(e.ino, 1);
}

// ---------------------------------------------------------------------------------------------
// Connection

void OpInit(void* userdata, fuse_conn_info* conn) {
  auto* ctx = static_cast<FuseContext*>(userdata);
  conn->max_write = kOneMiB;      // the kernel's limit (max_pages 256)
  conn->max_readahead = kMaxReadaheadBytes;  // the kernel keeps the smaller of this and the bdi's
  // libfuse sends max_background 0, which leaves the kernel's 12 and throttles readahead.
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  conn->time_gran = 1;
  auto want = [conn](unsigned cap, bool on) {
    if (on && (conn->capable & cap)) {
      conn->want |= cap;
    } else {
      conn->want &= ~cap;
    }
  };
  want(FUSE_CAP_ASYNC_READ, true);
  want(FUSE_CAP_WRITEBACK_CACHE, ctx->writeback_cache);
  want(FUSE_CAP_READDIRPLUS, true);
  want(FUSE_CAP_READDIRPLUS_AUTO, true);
  want(FUSE_CAP_PARALLEL_DIROPS, true);
  want(FUSE_CAP_SPLICE_READ, false);
  want(FUSE_CAP_SPLICE_WRITE, false);
  want(FUSE_CAP_SPLICE_MOVE, false);
  want(FUSE_CAP_EXPORT_SUPPORT, false);
  // open() does not truncate: the kernel sends O_TRUNC as a separate SETATTR(size=0).
  want(FUSE_CAP_ATOMIC_O_TRUNC, false);
}

void OpDestroy(void* userdata) {
  auto* ctx = static_cast<FuseContext*>(userdata);
  try {
    ctx->shutdown_status = ctx->core->Shutdown();
  } catch (...) {
    ctx->shutdown_status = Status(EIO, "FsCore::Shutdown threw");
  }
}

// ---------------------------------------------------------------------------------------------
// Names

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Guarded(req, "lookup", [&] {
    Result<InodeAttr> r = Core(req)->Lookup(parent, name);
    const FsOptions& o = Core(req)->options();
    if (!r.ok() && r.status().code() == ENOENT && o.entry_timeout_s > 0) {
      // A negative entry: every create goes through this kernel, which drops it.
      fuse_entry_param e;
      std::memset(&e, 0, sizeof e);
      e.entry_timeout = o.entry_timeout_s;
      fuse_reply_entry(req, &e);
      return;
    }
    ReplyCountedEntry(req, r, "lookup");
  });
}

void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  try {
    Core(req)->Forget(ino, nlookup);
  } catch (...) {
    LogNoThrow(LogLevel::kError, "forget", "exception");
  }
  fuse_reply_none(req);
}

void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  try {
    for (size_t i = 0; i < count; ++i) Core(req)->Forget(forgets[i].ino, forgets[i].nlookup);
  } catch (...) {
    LogNoThrow(LogLevel::kError, "forget_multi", "exception");
  }
  fuse_reply_none(req);
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Guarded(req, "mknod", [&] {
    ReplyCountedEntry(req, Core(req)->MkNod(parent, name, mode, rdev, CallerOf(req)), "mknod");
  });
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Guarded(req, "mkdir", [&] {
    ReplyCountedEntry(req, Core(req)->MkDir(parent, name, mode, CallerOf(req)), "mkdir");
  });
}

void OpSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  Guarded(req, "symlink", [&] {
    ReplyCountedEntry(req, Core(req)->Symlink(parent, name, link, CallerOf(req)), "symlink");
  });
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  Guarded(req, "link",
          [&] { ReplyCountedEntry(req, Core(req)->Link(ino, newparent, newname), "link"); });
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Guarded(req, "unlink", [&] {
    Status s = Core(req)->Unlink(parent, name);
    ReplyStatus(req, s, "unlink");
  });
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Guarded(req, "rmdir", [&] {
    Status s = Core(req)->RmDir(parent, name);
    ReplyStatus(req, s, "rmdir");
  });
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned int flags) {
  Guarded(req, "rename", [&] {
    Status s = Core(req)->Rename(parent, name, newparent, newname, flags);
    ReplyStatus(req, s, "rename");
  });
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  Guarded(req, "readlink", [&] {
    Result<std::string> r = Core(req)->ReadLink(ino);
    r.ok() ? void(fuse_reply_readlink(req, r->c_str())) : ReplyError(req, r.status(), "readlink");
  });
}

// ---------------------------------------------------------------------------------------------
// Attributes

void ReplyAttr(fuse_req_t req, const Result<InodeAttr>& r, const char* op) {
  if (!r.ok()) return ReplyError(req, r.status(), op);
  struct stat st;
  FillStat(*r, &st);
  fuse_reply_attr(req, &st, AttrTimeout(Core(req)->options(), r->ino));
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) {
  Guarded(req, "getattr", [&] { ReplyAttr(req, Core(req)->GetAttr(ino), "getattr"); });
}

// `fi` may be null (with the writeback cache the kernel pushes size and times without a handle).
void SetattrBody(fuse_req_t req, fuse_ino_t ino, const struct stat* attr, int to_set) {
  Guarded(req, "setattr", [&] {
    SetAttrRequest r;
    if (to_set & FUSE_SET_ATTR_MODE) r.set_mode = true, r.mode = attr->st_mode;
    if (to_set & FUSE_SET_ATTR_UID) r.set_uid = true, r.uid = attr->st_uid;
    if (to_set & FUSE_SET_ATTR_GID) r.set_gid = true, r.gid = attr->st_gid;
    if (to_set & FUSE_SET_ATTR_SIZE) r.set_size = true, r.size = uint64_t(attr->st_size);
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
      r.set_atime_now = true;
    } else if (to_set & FUSE_SET_ATTR_ATIME) {
      r.set_atime = true, r.atime_ns = TimespecNs(attr->st_atim);
    }
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
      r.set_mtime_now = true;
    } else if (to_set & FUSE_SET_ATTR_MTIME) {
      r.set_mtime = true, r.mtime_ns = TimespecNs(attr->st_mtim);
    }
    if (to_set & FUSE_SET_ATTR_CTIME) r.set_ctime = true, r.ctime_ns = TimespecNs(attr->st_ctim);
    ReplyAttr(req, Core(req)->SetAttr(ino, r), "setattr");
  });
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
               fuse_file_info* /*fi*/) {
  PageFiller* filler = Ctx(req)->filler;
  if (filler == nullptr || !(to_set & FUSE_SET_ATTR_SIZE)) {
    return SetattrBody(req, ino, attr, to_set);
  }
  // A size change needs no writable handle (truncate(2) by path): kept apart from fills.
  filler->Exclusive(ino, /*writer=*/false,
                    [req, ino, st = *attr, to_set] { SetattrBody(req, ino, &st, to_set); });
}

// ---------------------------------------------------------------------------------------------
// Files

// fi->fh of a file handle that counts as a writer in the page filler (fs/page_fill.h).
constexpr uint64_t kWriterHandle = 1;
// Reads up to this size offer the rest of their chunks to the page filler. Page faults under
// MADV_RANDOM ask for 4 KiB; sequential readers get readahead's larger requests instead.
constexpr size_t kFillReadMax = 16 << 10;

// Whether an open can change the file's bytes: a write mode, or O_TRUNC.
bool OpensForChange(int flags) { return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC); }

void SetOpenFlags(Ino ino, fuse_file_info* fi) {
  if (ino == kStatsIno) {
    fi->direct_io = 1;  // its size and bytes change between reads: bypass the page cache
  } else {
    // Every change goes through this kernel, so its cached pages stay valid across opens.
    fi->keep_cache = 1;
  }
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
              fuse_file_info* fi) {
  Guarded(req, "create", [&] {
    FsCore* core = Core(req);
    Result<InodeAttr> r = core->Create(parent, name, mode, fi->flags, CallerOf(req));
    if (!r.ok()) return ReplyError(req, r.status(), "create");
    fuse_entry_param e;
    FillEntry(core->options(), *r, &e);
    SetOpenFlags(e.ino, fi);
    PageFiller* filler = Ctx(req)->filler;
    PageFiller* writer_of = filler != nullptr && OpensForChange(fi->flags) ? filler : nullptr;
    if (writer_of != nullptr) writer_of->AddWriter(e.ino);
    fi->fh = writer_of != nullptr ? kWriterHandle : 0;
    if (fuse_reply_create(req, &e, fi) != 0) {  // the kernel never saw the open file
      core->Release(e.ino).IgnoreError();
      core->Forget(e.ino, 1);
      if (writer_of != nullptr) writer_of->DropWriter(e.ino);
    }
  });
}

void OpenBody(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, PageFiller* writer_of) {
  Guarded(req, "open", [&] {
    auto undo_writer = [&] {
      if (writer_of != nullptr) writer_of->DropWriter(ino);
    };
    FsCore* core = Core(req);  // req is freed by its reply, even a failed one
    Status s = core->Open(ino, fi->flags);
    if (!s.ok()) {
      undo_writer();
      return ReplyError(req, s, "open");
    }
    SetOpenFlags(ino, fi);
    fi->fh = writer_of != nullptr ? kWriterHandle : 0;
    if (fuse_reply_open(req, fi) != 0) {
      core->Release(ino).IgnoreError();
      undo_writer();
    }
  });
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  PageFiller* filler = Ctx(req)->filler;
  if (filler == nullptr || ino == kStatsIno || !OpensForChange(fi->flags)) {
    return OpenBody(req, ino, fi, nullptr);
  }
  // An open that can write waits for a fill of the inode in flight: the fill must not put
  // old bytes over the pages it is about to dirty (fs/page_fill.h).
  filler->Exclusive(ino, /*writer=*/true, [req, ino, copy = *fi, filler]() mutable {
    OpenBody(req, ino, &copy, filler);
  });
}

void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* /*fi*/) {
  Guarded(req, "read", [&] {
    if (off < 0) return ReplyError(req, Status(EINVAL, "negative offset"), "read");
    // Stored bytes go out straight from the cached chunks (one copy fewer: memmove was ~5 % of
    // a cold read's samples), holes from a page of zeros.
    static const char kZeros[64 << 10] = {};
    thread_local std::vector<FsCore::ReadPiece> pieces;
    thread_local std::vector<iovec> iov;
    std::pair<uint64_t, uint64_t> span;
    Result<std::optional<size_t>> direct =
        Core(req)->ReadPieces(ino, uint64_t(off), size, &pieces, &span);
    if (!direct.ok()) return ReplyError(req, direct.status(), "read");
    if (*direct) {
      iov.clear();
      for (const FsCore::ReadPiece& p : pieces) {
        if (p.data != nullptr) {
          iov.push_back({const_cast<char*>(p.data), p.len});
          continue;
        }
        for (size_t done = 0; done < p.len; done += sizeof(kZeros)) {
          iov.push_back({const_cast<char*>(kZeros), std::min(sizeof(kZeros), p.len - done)});
        }
      }
      PageFiller* filler = Ctx(req)->filler;  // req is gone once answered
      fuse_reply_iov(req, iov.data(), int(iov.size()));
      pieces.clear();  // the chunks may leave the cache now
      // A small read (a page fault, a random pread) decompressed whole chunks for a page or
      // two: the rest of them goes into the page cache too (fs/page_fill.h).
      if (filler != nullptr && size <= kFillReadMax && span.second - span.first > size) {
        filler->Offer(ino, span.first, span.second);
      }
      return;
    }
    // One buffer per worker thread, grown to the largest request (<= max_read) and reused.
    thread_local std::string buf;
    if (buf.size() < size) buf.resize(size);
    Result<size_t> n = Core(req)->Read(ino, uint64_t(off), size, buf.data());
    n.ok() ? void(fuse_reply_buf(req, buf.data(), *n)) : ReplyError(req, n.status(), "read");
  });
}

void OpWrite(fuse_req_t req, fuse_ino_t ino, const char* data, size_t size, off_t off,
             fuse_file_info* /*fi*/) {
  Guarded(req, "write", [&] {
    if (off < 0) return ReplyError(req, Status(EINVAL, "negative offset"), "write");
    Status s = Core(req)->Write(ino, uint64_t(off), std::string_view(data, size));
    s.ok() ? void(fuse_reply_write(req, size)) : ReplyError(req, s, "write");
  });
}

void OpFlush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) {
  Guarded(req, "flush", [&] {
    Status s = Core(req)->Flush(ino);
    ReplyStatus(req, s, "flush");
  });
}

void OpRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Guarded(req, "release", [&] {
    // With the write-back cache the kernel wrote this handle's dirty pages back before RELEASE.
    Status s = Core(req)->Release(ino);
    if (fi->fh == kWriterHandle && Ctx(req)->filler != nullptr) Ctx(req)->filler->DropWriter(ino);
    ReplyStatus(req, s, "release");
  });
}

void OpFsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* /*fi*/) {
  Guarded(req, "fsync", [&] {
    Status s = Core(req)->Fsync(ino, datasync != 0);
    ReplyStatus(req, s, "fsync");
  });
}

void OpFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                 fuse_file_info* /*fi*/) {
  Guarded(req, "fallocate", [&] {
    if (offset < 0 || length <= 0) {
      return ReplyError(req, Status(EINVAL, "bad fallocate range"), "fallocate");
    }
    Status s = Core(req)->Fallocate(ino, mode, uint64_t(offset), uint64_t(length));
    ReplyStatus(req, s, "fallocate");
  });
}

// SEEK_SET/CUR/END never arrive: the kernel handles them itself.
void OpLseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* /*fi*/) {
  Guarded(req, "lseek", [&] {
    if (whence != SEEK_DATA && whence != SEEK_HOLE) {
      return ReplyError(req, Status(EINVAL, "unsupported whence"), "lseek");
    }
    if (off < 0) return ReplyError(req, Status(ENXIO, "negative offset"), "lseek");
    Result<uint64_t> r = Core(req)->Lseek(ino, uint64_t(off), whence);
    r.ok() ? void(fuse_reply_lseek(req, off_t(*r))) : ReplyError(req, r.status(), "lseek");
  });
}

void OpCopyFileRange(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info* /*fi_in*/,
                     fuse_ino_t ino_out, off_t off_out, fuse_file_info* /*fi_out*/, size_t len,
                     int flags) {
  Guarded(req, "copy_file_range", [&] {
    if (flags != 0 || off_in < 0 || off_out < 0) {
      return ReplyError(req, Status(EINVAL, "bad copy_file_range arguments"), "copy_file_range");
    }
    Result<uint64_t> r =
        Core(req)->CopyFileRange(ino_in, uint64_t(off_in), ino_out, uint64_t(off_out), len);
    r.ok() ? void(fuse_reply_write(req, size_t(*r)))
           : ReplyError(req, r.status(), "copy_file_range");
  });
}

}  // namespace

void FillStat(const InodeAttr& a, struct stat* st) {
  std::memset(st, 0, sizeof *st);
  st->st_ino = a.ino;
  st->st_mode = a.mode;
  st->st_nlink = a.nlink;
  st->st_uid = a.uid;
  st->st_gid = a.gid;
  st->st_rdev = a.rdev;
  st->st_size = off_t(a.size);
  st->st_blksize = 4096;
  st->st_blocks = blkcnt_t((a.allocated_bytes + 4095) / 4096 * 8);  // 4 KiB blocks, no holes
  auto to_ts = [](int64_t ns) {
    timespec ts;
    ts.tv_sec = ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    if (ts.tv_nsec < 0) ts.tv_nsec += 1000000000, --ts.tv_sec;
    return ts;
  };
  st->st_atim = to_ts(a.atime_ns);
  st->st_mtim = to_ts(a.mtime_ns);
  st->st_ctim = to_ts(a.ctime_ns);
}

const fuse_lowlevel_ops& RankfsLowLevelOps() {
  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o;
    std::memset(&o, 0, sizeof o);
    o.init = OpInit;
    o.destroy = OpDestroy;
    o.lookup = OpLookup;
    o.forget = OpForget;
    o.forget_multi = OpForgetMulti;
    o.getattr = OpGetattr;
    o.setattr = OpSetattr;
    o.readlink = OpReadlink;
    o.mknod = OpMknod;
    o.mkdir = OpMkdir;
    o.unlink = OpUnlink;
    o.rmdir = OpRmdir;
    o.symlink = OpSymlink;
    o.rename = OpRename;
    o.link = OpLink;
    o.open = OpOpen;
    o.read = OpRead;
    o.write = OpWrite;
    o.flush = OpFlush;
    o.release = OpRelease;
    o.fsync = OpFsync;
    using namespace fuse_internal;  // NOLINT: the directory callbacks
    o.opendir = OpOpendir;
    o.readdir = OpReaddir;
    o.readdirplus = OpReaddirplus;
    o.releasedir = OpReleasedir;
    o.fsyncdir = OpFsyncdir;
    o.statfs = OpStatfs;
    o.setxattr = OpSetxattr;
    o.getxattr = OpGetxattr;
    o.listxattr = OpListxattr;
    o.removexattr = OpRemovexattr;
    o.create = OpCreate;
    o.fallocate = OpFallocate;
    o.lseek = OpLseek;
    o.copy_file_range = OpCopyFileRange;
    return o;
  }();
  return ops;
}

}  // namespace rankfs
