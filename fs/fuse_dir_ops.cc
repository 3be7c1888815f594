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
// cannot be delivered, the counted lookups are given back.
void ReadDir(fuse_req_t req, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  FsCore* core = Core(req);
  DirHandle* h = HandleOf(fi);
  if (off == 0 && h->served) {  // rewinddir(): POSIX wants changes since opendir to show
    Result<std::unique_ptr<FsCore::DirListing>> fresh = core->OpenDir(h->listing->dir);
    if (!fresh.ok()) return ReplyError(req, fresh.status(), "readdir");
    h->listing = std::move(fresh).value();
  }
  h->served = true;
  const FsCore::DirListing& listing = *h->listing;

  thread_local std::vector<char> buf;
  thread_local std::vector<Ino> counted;  // inodes handed out with a lookup in this reply
  if (buf.size() < size) buf.resize(size);
  counted.clear();
  size_t used = 0;
  for (size_t i = off < 0 ? 0 : size_t(off); i < listing.entries.size(); ++i) {
    const FsCore::DirListing::Entry& ent = listing.entries[i];
    const off_t next = off_t(i + 1);
    size_t n;
    if (!plus) {
      struct stat st;
      std::memset(&st, 0, sizeof st);
      st.st_ino = ent.ino;
      st.st_mode = ent.mode;
      n = fuse_add_direntry(req, buf.data() + used, size - used, ent.name.c_str(), &st, next);
      if (n > size - used) break;
    } else {
      fuse_entry_param e;
      std::memset(&e, 0, sizeof e);
      if (IsDotOrDotDot(ent.name)) {
        // ino 0: the kernel takes only the name and type, and counts no lookup.
        e.attr.st_ino = ent.ino;
        e.attr.st_mode = ent.mode;
      } else {
        Result<InodeAttr> a = core->Lookup(listing.dir, ent.name);
        if (!a.ok()) {
          if (a.status().code() == ENOENT) continue;  // removed since the snapshot
          if (used > 0) break;  // return what we have; the next call meets the error again
          return ReplyError(req, a.status(), "readdirplus");
        }
        FillEntry(core->options(), *a, &e);
      }
      n = fuse_add_direntry_plus(req, buf.data() + used, size - used, ent.name.c_str(), &e, next);
      if (n > size - used) {
        if (e.ino != 0) core->Forget(e.ino, 1);
        break;
      }
      if (e.ino != 0) counted.push_back(e.ino);
    }
    used += n;
  }
  if (fuse_reply_buf(req, buf.data(), used) != 0) {
    for (Ino ino : counted) core->Forget(ino, 1);
  }
}

// size == 0 asks for the value's length; a buffer too small for the value is ERANGE.
void ReplyXattrValue(fuse_req_t req, const Result<std::string>& r, size_t size, const char* op) {
  if (!r.ok()) return ReplyError(req, r.status(), op);
  if (size == 0) {
    fuse_reply_xattr(req, r->size());
  } else if (r->size() > size) {
    fuse_reply_err(req, ERANGE);
  } else {
    fuse_reply_buf(req, r->data(), r->size());
  }
}

}  // namespace

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Guarded(req, "opendir", [&] {
    Result<std::unique_ptr<FsCore::DirListing>> r = Core(req)->OpenDir(ino);
    if (!r.ok()) return ReplyError(req, r.status(), "opendir");
    auto h = std::make_unique<DirHandle>();
    h->listing = std::move(r).value();
    fi->fh = reinterpret_cast<uint64_t>(h.get());
    if (fuse_reply_open(req, fi) == 0) {
      (void)h.release();  // owned by fi->fh now; releasedir deletes it
    }
  });
}

void OpReaddir(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off, fuse_file_info* fi) {
  Guarded(req, "readdir", [&] { ReadDir(req, size, off, fi, /*plus=*/false); });
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off, fuse_file_info* fi) {
  Guarded(req, "readdirplus", [&] { ReadDir(req, size, off, fi, /*plus=*/true); });
}

void OpReleasedir(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  delete HandleOf(fi);  // cannot throw
  fuse_reply_err(req, 0);
}

// Directory contents are metadata: FsCore makes them durable with the inodes (at the latest
// on Shutdown); there is nothing more to force here.
void OpFsyncdir(fuse_req_t req, fuse_ino_t /*ino*/, int /*datasync*/, fuse_file_info* /*fi*/) {
  fuse_reply_err(req, 0);
}

void OpStatfs(fuse_req_t req, fuse_ino_t /*ino*/) {
  Guarded(req, "statfs", [&] {
    Result<SpaceInfo> r = Core(req)->StatFs();
    if (!r.ok()) return ReplyError(req, r.status(), "statfs");
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
    fuse_reply_statfs(req, &st);
  });
}

void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                int flags) {
  Guarded(req, "setxattr", [&] {
    ReplyStatus(req, Core(req)->SetXattr(ino, name, std::string_view(value, size), flags),
                "setxattr");
  });
}

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Guarded(req, "getxattr",
          [&] { ReplyXattrValue(req, Core(req)->GetXattr(ino, name), size, "getxattr"); });
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Guarded(req, "listxattr",
          [&] { ReplyXattrValue(req, Core(req)->ListXattr(ino), size, "listxattr"); });
}

void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  Guarded(req, "removexattr",
          [&] { ReplyStatus(req, Core(req)->RemoveXattr(ino, name), "removexattr"); });
}

}  // namespace rankfs::fuse_internal
