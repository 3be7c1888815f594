// libfuse callbacks for directories, statfs and extended attributes (see fuse_ops.h).
#include <sys/statvfs.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fs/fuse_ops_internal.h"

namespace rankfs::fuse_internal {
namespace {

// What fi->fh holds for an open directory. The kernel serializes readdir calls on one open
// directory, so the handle needs no lock.
struct DirHandle {
  std::unique_ptr<FsCore::DirListing> listing;  // the snapshot; offset i+1 follows entry i
  bool served = false;  // a listing was returned; a later read at offset 0 is a rewinddir
};

DirHandle* HandleOf(fuse_file_info* fi) {
  return reinterpret_cast<DirHandle*>(fi->fh);  // NOLINT(performance-no-int-to-ptr): fh is ours
}

bool IsDotOrDotDot(const std::string& name) { return name == "." || name == ".."; }

// Fills up to `size` bytes of directory entries starting at snapshot index `off`.
// readdirplus: each entry other than "." and ".." is looked up (one lookup count each, as for
// a LOOKUP reply); an entry whose name vanished since the snapshot is skipped. If the reply
// cannot be delivered, or is never sent because something threw, the counted lookups are given
// back.
void ReadDir(Reply& reply, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  FsCore* core = reply.core();
  DirHandle* h = HandleOf(fi);
  if (off == 0 && h->served) {  // rewinddir(): POSIX wants changes since opendir to show
    Result<std::unique_ptr<FsCore::DirListing>> fresh = core->OpenDir(h->listing->dir);
    if (!fresh.ok()) return void(reply.Error(fresh.status(), "readdir"));
    h->listing = std::move(fresh).value();
  }
  h->served = true;
  const FsCore::DirListing& listing = *h->listing;

  thread_local std::vector<char> buf;
  thread_local std::vector<Ino> counted;  // inodes handed out with a lookup in this reply
  if (buf.size() < size) buf.resize(size);
  counted.clear();
  auto give_back = [&] {
    for (Ino ino : counted) core->Forget(ino, 1);
    counted.clear();
  };
  size_t used = 0;
  try {
    for (size_t i = off < 0 ? 0 : size_t(off); i < listing.entries.size(); ++i) {
      const FsCore::DirListing::Entry& ent = listing.entries[i];
      const off_t next = off_t(i + 1);
      size_t n;
      if (!plus) {
        struct stat st;
        std::memset(&st, 0, sizeof st);
        st.st_ino = ent.ino;
        st.st_mode = ent.mode;
        n = reply.AddDirentry(buf.data() + used, size - used, ent.name.c_str(), st, next);
        if (n > size - used) break;
      } else {
        fuse_entry_param e;
        std::memset(&e, 0, sizeof e);
        if (IsDotOrDotDot(ent.name)) {
          // ino 0: the kernel takes only the name and type, and counts no lookup.
          e.attr.st_ino = ent.ino;
          e.attr.st_mode = ent.mode;
        } else {
          // Room first, so that recording the lookup below cannot throw.
          if (counted.size() == counted.capacity()) counted.reserve(2 * counted.size() + 16);
          Result<InodeAttr> a = core->Lookup(listing.dir, ent.name);
          if (!a.ok()) {
            if (a.status().code() == ENOENT) continue;  // removed since the snapshot
            if (used > 0) break;  // return what we have; the next call meets the error again
            return void(reply.Error(a.status(), "readdirplus"));
          }
          counted.push_back(a->ino);
          FillEntry(core->options(), *a, &e);
        }
        n = reply.AddDirentryPlus(buf.data() + used, size - used, ent.name.c_str(), e, next);
        if (n > size - used) {
          if (e.ino != 0) {
            counted.pop_back();
            core->Forget(e.ino, 1);
          }
          break;
        }
      }
      used += n;
    }
  } catch (...) {
    give_back();
    throw;
  }
  if (reply.Buf(buf.data(), used) != 0) give_back();
}

// size == 0 asks for the value's length; a buffer too small for the value is ERANGE.
void ReplyXattrValue(Reply& reply, const Result<std::string>& r, size_t size, const char* op) {
  if (!r.ok()) return void(reply.Error(r.status(), op));
  if (size == 0) {
    reply.Xattr(r->size());
  } else if (r->size() > size) {
    reply.Err(ERANGE);
  } else {
    reply.Buf(r->data(), r->size());
  }
}

}  // namespace

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Reply reply(req);
  Guarded(reply, "opendir", [&] {
    Result<std::unique_ptr<FsCore::DirListing>> r = reply.core()->OpenDir(ino);
    if (!r.ok()) return void(reply.Error(r.status(), "opendir"));
    auto h = std::make_unique<DirHandle>();
    h->listing = std::move(r).value();
    fi->fh = reinterpret_cast<uint64_t>(h.get());
    if (reply.Open(*fi) == 0) {
      (void)h.release();  // owned by fi->fh now; releasedir deletes it
    }
  });
}

void OpReaddir(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off, fuse_file_info* fi) {
  Reply reply(req);
  Guarded(reply, "readdir", [&] { ReadDir(reply, size, off, fi, /*plus=*/false); });
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off, fuse_file_info* fi) {
  Reply reply(req);
  Guarded(reply, "readdirplus", [&] { ReadDir(reply, size, off, fi, /*plus=*/true); });
}

void OpReleasedir(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  Reply reply(req);
  delete HandleOf(fi);  // cannot throw
  reply.Err(0);
}

// fsync(2) on a directory makes its entries durable: the last step of "write a temporary file,
// fsync it, rename it over the real name, fsync the directory".
void OpFsyncdir(fuse_req_t req, fuse_ino_t ino, int /*datasync*/, fuse_file_info* /*fi*/) {
  Reply reply(req);
  Guarded(reply, "fsyncdir", [&] { reply.StatusOf(reply.core()->FsyncDir(ino), "fsyncdir"); });
}

void OpStatfs(fuse_req_t req, fuse_ino_t /*ino*/) {
  Reply reply(req);
  Guarded(reply, "statfs", [&] {
    Result<SpaceInfo> r = reply.core()->StatFs();
    if (!r.ok()) return void(reply.Error(r.status(), "statfs"));
    constexpr uint64_t kBlock = 4096;
    constexpr uint64_t kInodes = 1ull << 32;  // inodes are not a limited resource here
    struct statvfs st;
    std::memset(&st, 0, sizeof st);
    st.f_bsize = kBlock;
    st.f_frsize = kBlock;
    st.f_blocks = r->total_bytes / kBlock;
    st.f_bfree = r->free_bytes / kBlock;
    st.f_bavail = r->avail_bytes / kBlock;
    st.f_files = kInodes;
    st.f_ffree = kInodes;
    st.f_favail = kInodes;
    st.f_namemax = 255;
    reply.Statfs(st);
  });
}

void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                int flags) {
  Reply reply(req);
  Guarded(reply, "setxattr", [&] {
    reply.StatusOf(reply.core()->SetXattr(ino, name, std::string_view(value, size), flags),
                   "setxattr");
  });
}

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Reply reply(req);
  Guarded(reply, "getxattr",
          [&] { ReplyXattrValue(reply, reply.core()->GetXattr(ino, name), size, "getxattr"); });
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Reply reply(req);
  Guarded(reply, "listxattr",
          [&] { ReplyXattrValue(reply, reply.core()->ListXattr(ino), size, "listxattr"); });
}

void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  Reply reply(req);
  Guarded(reply, "removexattr",
          [&] { reply.StatusOf(reply.core()->RemoveXattr(ino, name), "removexattr"); });
}

}  // namespace rankfs::fuse_internal
