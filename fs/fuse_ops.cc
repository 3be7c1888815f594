#include "fs/fuse_ops.h"

#include <fcntl.h>

#include <sys/uio.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fs/fuse_ops_internal.h"
#include "fs/page_fill.h"

namespace rankfs {
namespace {

using namespace fuse_internal;  // NOLINT(google-build-using-namespace): this file's helpers

constexpr unsigned kOneMiB = 1u << 20;

int64_t TimespecNs(const timespec& ts) { return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec; }

// Replies with an entry whose lookup FsCore has counted. If the kernel never receives it (the
// request was interrupted), the lookup is given back so the inode is not pinned forever.
void ReplyCountedEntry(Reply& reply, const Result<InodeAttr>& r, const char* op) {
  if (!r.ok()) return void(reply.Error(r.status(), op));
  fuse_entry_param e;
  FillEntry(reply.core()->options(), *r, &e);
  if (reply.Entry(e) != 0) reply.core()->Forget(e.ino, 1);
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
  Reply reply(req);
  Guarded(reply, "lookup", [&] {
    reply.core()->CountLookupRequest();
    Result<InodeAttr> r = reply.core()->Lookup(parent, name);
    const FsOptions& o = reply.core()->options();
    if (!r.ok() && r.status().code() == ENOENT && o.entry_timeout_s > 0) {
      // A negative entry: every create goes through this kernel, which drops it.
      fuse_entry_param e;
      std::memset(&e, 0, sizeof e);
      e.entry_timeout = o.entry_timeout_s;
      reply.Entry(e);
      return;
    }
    ReplyCountedEntry(reply, r, "lookup");
  });
}

// Forgets are never answered but must still be "replied" to (fuse_reply_none frees them).
void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Reply reply(req, Reply::Unanswered::kNone);
  Guarded(reply, "forget", [&] { reply.core()->Forget(ino, nlookup); });
  reply.None();
}

void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  Reply reply(req, Reply::Unanswered::kNone);
  // One failed forget must not keep the others from being counted.
  for (size_t i = 0; i < count; ++i) {
    Guarded(reply, "forget_multi",
            [&] { reply.core()->Forget(forgets[i].ino, forgets[i].nlookup); });
  }
  reply.None();
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Reply reply(req);
  Guarded(reply, "mknod", [&] {
    ReplyCountedEntry(reply, reply.core()->MkNod(parent, name, mode, rdev, reply.caller()),
                      "mknod");
  });
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Reply reply(req);
  Guarded(reply, "mkdir", [&] {
    ReplyCountedEntry(reply, reply.core()->MkDir(parent, name, mode, reply.caller()), "mkdir");
  });
}

void OpSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  Reply reply(req);
  Guarded(reply, "symlink", [&] {
    ReplyCountedEntry(reply, reply.core()->Symlink(parent, name, link, reply.caller()), "symlink");
  });
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  Reply reply(req);
  Guarded(reply, "link",
          [&] { ReplyCountedEntry(reply, reply.core()->Link(ino, newparent, newname), "link"); });
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Reply reply(req);
  Guarded(reply, "unlink", [&] {
    Status s = reply.core()->Unlink(parent, name);
    reply.StatusOf(s, "unlink");
  });
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Reply reply(req);
  Guarded(reply, "rmdir", [&] {
    Status s = reply.core()->RmDir(parent, name);
    reply.StatusOf(s, "rmdir");
  });
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned int flags) {
  Reply reply(req);
  Guarded(reply, "rename", [&] {
    Status s = reply.core()->Rename(parent, name, newparent, newname, flags);
    reply.StatusOf(s, "rename");
  });
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  Reply reply(req);
  Guarded(reply, "readlink", [&] {
    Result<std::string> r = reply.core()->ReadLink(ino);
    r.ok() ? reply.Readlink(r->c_str()) : reply.Error(r.status(), "readlink");
  });
}

// ---------------------------------------------------------------------------------------------
// Attributes

void ReplyAttr(Reply& reply, const Result<InodeAttr>& r, const char* op) {
  if (!r.ok()) return void(reply.Error(r.status(), op));
  struct stat st;
  FillStat(*r, &st);
  reply.Attr(st, AttrTimeout(reply.core()->options(), r->ino));
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) {
  Reply reply(req);
  Guarded(reply, "getattr", [&] { ReplyAttr(reply, reply.core()->GetAttr(ino), "getattr"); });
}

// `fi` may be null (with the writeback cache the kernel pushes size and times without a handle).
void SetattrBody(Reply& reply, fuse_ino_t ino, const struct stat* attr, int to_set) {
  Guarded(reply, "setattr", [&] {
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
    ReplyAttr(reply, reply.core()->SetAttr(ino, r), "setattr");
  });
}

// Runs `body(reply)` through PageFiller::Exclusive: now, or later on the filler's thread. The
// Reply moves into the op; if anything here throws, the op never runs (Exclusive's contract)
// and the Reply's destructor answers EIO, so the request is answered once either way.
template <typename Body>
void RunExclusive(Reply& reply, PageFiller* filler, Ino ino, bool writer, Body body) {
  auto shared = std::make_shared<Reply>(std::move(reply));
  filler->Exclusive(ino, writer, [shared, body]() mutable { body(*shared); });
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
               fuse_file_info* /*fi*/) {
  Reply reply(req);
  PageFiller* filler = reply.ctx()->filler;
  if (filler == nullptr || !(to_set & FUSE_SET_ATTR_SIZE)) {
    return SetattrBody(reply, ino, attr, to_set);
  }
  // A size change needs no writable handle (truncate(2) by path): kept apart from fills.
  Guarded(reply, "setattr", [&] {
    RunExclusive(reply, filler, ino, /*writer=*/false,
                 [ino, st = *attr, to_set](Reply& r) { SetattrBody(r, ino, &st, to_set); });
  });
}

// ---------------------------------------------------------------------------------------------
// Files

// fi->fh of a file handle that counts as a writer in the page filler (fs/page_fill.h).
constexpr uint64_t kWriterHandle = 1;
// Reads up to this size offer the rest of their chunks to the page filler. Page faults under
// MADV_RANDOM ask for 4 KiB; sequential readers get readahead's larger requests instead.
constexpr size_t kFillReadMax = 16 << 10;
// The most copy_file_range answers in one reply: the FUSE write reply carries a 32-bit count
// (the kernel clamps its own requests the same way, to whole pages).
constexpr uint64_t kMaxCopyBytes = uint64_t(UINT32_MAX) & ~uint64_t(4095);

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
  Reply reply(req);
  Guarded(reply, "create", [&] {
    FsCore* core = reply.core();
    Result<InodeAttr> r = core->Create(parent, name, mode, fi->flags, reply.caller());
    if (!r.ok()) return void(reply.Error(r.status(), "create"));
    const Ino ino = r->ino;
    // The kernel never learns of the open file: give back its open and its lookup.
    auto undo_open = [&] {
      core->Release(ino).IgnoreError();
      core->Forget(ino, 1);
    };
    fuse_entry_param e;
    FillEntry(core->options(), *r, &e);
    SetOpenFlags(ino, fi);
    PageFiller* filler = reply.ctx()->filler;
    PageFiller* writer_of = filler != nullptr && OpensForChange(fi->flags) ? filler : nullptr;
    if (writer_of != nullptr) {
      try {
        writer_of->AddWriter(ino);
      } catch (...) {
        undo_open();
        throw;
      }
    }
    fi->fh = writer_of != nullptr ? kWriterHandle : 0;
    if (reply.Create(e, *fi) != 0) {
      undo_open();
      if (writer_of != nullptr) writer_of->DropWriter(ino);
    }
  });
}

void OpenBody(Reply& reply, fuse_ino_t ino, fuse_file_info* fi, PageFiller* writer_of) {
  Guarded(reply, "open", [&] {
    auto undo_writer = [&] {
      if (writer_of != nullptr) writer_of->DropWriter(ino);
    };
    FsCore* core = reply.core();
    Status s = core->Open(ino, fi->flags);
    if (!s.ok()) {
      undo_writer();
      return void(reply.Error(s, "open"));
    }
    SetOpenFlags(ino, fi);
    fi->fh = writer_of != nullptr ? kWriterHandle : 0;
    if (reply.Open(*fi) != 0) {
      core->Release(ino).IgnoreError();
      undo_writer();
    }
  });
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Reply reply(req);
  PageFiller* filler = reply.ctx()->filler;
  if (filler == nullptr || ino == kStatsIno || !OpensForChange(fi->flags)) {
    return OpenBody(reply, ino, fi, nullptr);
  }
  // An open that can write waits for a fill of the inode in flight: the fill must not put
  // old bytes over the pages it is about to dirty (fs/page_fill.h).
  Guarded(reply, "open", [&] {
    RunExclusive(reply, filler, ino, /*writer=*/true,
                 [ino, copy = *fi, filler](Reply& r) mutable { OpenBody(r, ino, &copy, filler); });
  });
}

void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* /*fi*/) {
  Reply reply(req);
  Guarded(reply, "read", [&] {
    if (off < 0) return void(reply.Error(Status(EINVAL, "negative offset"), "read"));
    // Stored bytes go out straight from the cached chunks (one copy fewer: memmove was ~5 % of
    // a cold read's samples), holes from a page of zeros.
    static const char kZeros[64 << 10] = {};
    thread_local std::vector<FsCore::ReadPiece> pieces;
    thread_local std::vector<iovec> iov;
    std::pair<uint64_t, uint64_t> span;
    Result<std::optional<size_t>> direct =
        reply.core()->ReadPieces(ino, uint64_t(off), size, &pieces, &span);
    if (!direct.ok()) return void(reply.Error(direct.status(), "read"));
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
      reply.Iov(iov.data(), int(iov.size()));
      pieces.clear();  // the chunks may leave the cache now
      // A small read (a page fault, a random pread) decompressed whole chunks for a page or
      // two: the rest of them goes into the page cache too (fs/page_fill.h).
      PageFiller* filler = reply.ctx()->filler;
      if (filler != nullptr && size <= kFillReadMax && span.second - span.first > size) {
        filler->Offer(ino, span.first, span.second);
      }
      return;
    }
    // One buffer per worker thread, grown to the largest request (<= max_read) and reused.
    thread_local std::string buf;
    if (buf.size() < size) buf.resize(size);
    Result<size_t> n = reply.core()->Read(ino, uint64_t(off), size, buf.data());
    n.ok() ? reply.Buf(buf.data(), *n) : reply.Error(n.status(), "read");
  });
}

void OpWrite(fuse_req_t req, fuse_ino_t ino, const char* data, size_t size, off_t off,
             fuse_file_info* /*fi*/) {
  Reply reply(req);
  Guarded(reply, "write", [&] {
    if (off < 0) return void(reply.Error(Status(EINVAL, "negative offset"), "write"));
    Status s = reply.core()->Write(ino, uint64_t(off), std::string_view(data, size));
    s.ok() ? reply.Write(size) : reply.Error(s, "write");
  });
}

void OpFlush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) {
  Reply reply(req);
  Guarded(reply, "flush", [&] { reply.StatusOf(reply.core()->Flush(ino), "flush"); });
}

void OpRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Reply reply(req);
  Guarded(reply, "release", [&] {
    // With the write-back cache the kernel wrote this handle's dirty pages back before RELEASE.
    Status s = reply.core()->Release(ino);
    PageFiller* filler = reply.ctx()->filler;
    if (fi->fh == kWriterHandle && filler != nullptr) filler->DropWriter(ino);
    reply.StatusOf(s, "release");
  });
}

void OpFsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* /*fi*/) {
  Reply reply(req);
  Guarded(reply, "fsync",
          [&] { reply.StatusOf(reply.core()->Fsync(ino, datasync != 0), "fsync"); });
}

void OpFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                 fuse_file_info* /*fi*/) {
  Reply reply(req);
  Guarded(reply, "fallocate", [&] {
    if (offset < 0 || length <= 0) {
      return void(reply.Error(Status(EINVAL, "bad fallocate range"), "fallocate"));
    }
    Status s = reply.core()->Fallocate(ino, mode, uint64_t(offset), uint64_t(length));
    reply.StatusOf(s, "fallocate");
  });
}

// SEEK_SET/CUR/END never arrive: the kernel handles them itself.
void OpLseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* /*fi*/) {
  Reply reply(req);
  Guarded(reply, "lseek", [&] {
    if (whence != SEEK_DATA && whence != SEEK_HOLE) {
      return void(reply.Error(Status(EINVAL, "unsupported whence"), "lseek"));
    }
    if (off < 0) return void(reply.Error(Status(ENXIO, "negative offset"), "lseek"));
    Result<uint64_t> r = reply.core()->Lseek(ino, uint64_t(off), whence);
    r.ok() ? reply.Lseek(off_t(*r)) : reply.Error(r.status(), "lseek");
  });
}

void OpCopyFileRange(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info* /*fi_in*/,
                     fuse_ino_t ino_out, off_t off_out, fuse_file_info* /*fi_out*/, size_t len,
                     int flags) {
  Reply reply(req);
  Guarded(reply, "copy_file_range", [&] {
    if (flags != 0 || off_in < 0 || off_out < 0) {
      return void(reply.Error(Status(EINVAL, "bad copy_file_range arguments"), "copy_file_range"));
    }
    // Copy no more than the reply can count: the caller sees a short copy and asks again.
    const uint64_t n = std::min<uint64_t>(len, kMaxCopyBytes);
    Result<uint64_t> r =
        reply.core()->CopyFileRange(ino_in, uint64_t(off_in), ino_out, uint64_t(off_out), n);
    r.ok() ? reply.Write(size_t(*r)) : reply.Error(r.status(), "copy_file_range");
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
