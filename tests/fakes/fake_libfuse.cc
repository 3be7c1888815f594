// The fake libfuse functions (fake_libfuse.h). Each records under one mutex, with allocation
// failure suspended: the fake is the kernel's side, not code under test.
#include "tests/fakes/fake_libfuse.h"

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "tests/fakes/alloc_failure.h"

namespace rankfs::fake_fuse {
namespace {

std::mutex g_mu;  // guards every Record, g_reply_result and the store hold below
std::condition_variable g_cv;
int g_reply_result = 0;
fuse_ino_t g_hold_ino = 0;      // fills of this inode wait in notify_store, 0: none
uint64_t g_releases = 0;        // ReleaseStores calls: a held fill waits for the next one
fuse_ino_t g_held_ino = 0;      // a fill waiting in notify_store, 0: none
std::thread::id g_held_thread;  // the thread of that fill

FakeRequest& Of(fuse_req_t req) { return *reinterpret_cast<FakeRequest*>(req); }

// A use of the request that must come before its reply.
void Use(fuse_req_t req) {
  std::lock_guard<std::mutex> l(g_mu);
  if (Of(req).record.replies > 0) ++Of(req).record.uses_after_reply;
}

template <typename Fill>
int Reply(fuse_req_t req, ReplyKind kind, Fill fill) {
  alloc_failure::Suspend s;
  std::lock_guard<std::mutex> l(g_mu);
  Record& r = Of(req).record;
  if (++r.replies == 1) {
    r.kind = kind;
    fill(r);
  }
  g_cv.notify_all();
  return g_reply_result;
}

// Sizes as libfuse lays entries out (struct fuse_dirent / fuse_direntplus, 8-byte aligned).
size_t DirentSize(size_t header, const char* name) {
  return (header + std::strlen(name) + 7) & ~size_t(7);
}

}  // namespace

FakeRequest::FakeRequest(FuseContext* c, fuse_ctx who) : ctx(c), caller(who) {}

Record Snapshot(const FakeRequest& r) {
  alloc_failure::Suspend s;
  std::lock_guard<std::mutex> l(g_mu);
  return r.record;
}

bool WaitForReply(const FakeRequest& r, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> l(g_mu);
  return g_cv.wait_for(l, timeout, [&] { return r.record.replies > 0; });
}

void SetReplyResult(int rc) {
  std::lock_guard<std::mutex> l(g_mu);
  g_reply_result = rc;
}

void HoldStoresOf(fuse_ino_t ino) {
  std::lock_guard<std::mutex> l(g_mu);
  g_hold_ino = ino;
}

bool WaitForHeldStore(fuse_ino_t ino, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> l(g_mu);
  return g_cv.wait_for(l, timeout, [&] { return g_held_ino == ino; });
}

void ReleaseStores() {
  std::lock_guard<std::mutex> l(g_mu);
  if (g_held_ino != 0) alloc_failure::EnrollThreadUntilDisarm(g_held_thread);
  g_hold_ino = 0;
  ++g_releases;
  g_cv.notify_all();
}

}  // namespace rankfs::fake_fuse

using rankfs::fake_fuse::FakeRequest;
using rankfs::fake_fuse::Record;
using rankfs::fake_fuse::ReplyKind;
namespace ff = rankfs::fake_fuse;

void* fuse_req_userdata(fuse_req_t req) {
  ff::Use(req);
  return ff::Of(req).ctx;
}

const struct fuse_ctx* fuse_req_ctx(fuse_req_t req) {
  ff::Use(req);
  return &ff::Of(req).caller;
}

int fuse_reply_err(fuse_req_t req, int err) {
  return ff::Reply(req, ReplyKind::kErr, [&](Record& r) { r.err = err; });
}

void fuse_reply_none(fuse_req_t req) {
  ff::Reply(req, ReplyKind::kNone, [](Record&) {});
}

int fuse_reply_entry(fuse_req_t req, const struct fuse_entry_param* e) {
  return ff::Reply(req, ReplyKind::kEntry, [&](Record& r) { r.entry = *e; });
}

int fuse_reply_create(fuse_req_t req, const struct fuse_entry_param* e,
                      const struct fuse_file_info* fi) {
  return ff::Reply(req, ReplyKind::kCreate, [&](Record& r) {
    r.entry = *e;
    r.fi = *fi;
  });
}

int fuse_reply_attr(fuse_req_t req, const struct stat*, double) {
  return ff::Reply(req, ReplyKind::kAttr, [](Record&) {});
}

int fuse_reply_readlink(fuse_req_t req, const char* link) {
  return ff::Reply(req, ReplyKind::kReadlink, [&](Record& r) { r.count = std::strlen(link); });
}

int fuse_reply_open(fuse_req_t req, const struct fuse_file_info* fi) {
  return ff::Reply(req, ReplyKind::kOpen, [&](Record& r) { r.fi = *fi; });
}

int fuse_reply_write(fuse_req_t req, size_t count) {
  return ff::Reply(req, ReplyKind::kWrite, [&](Record& r) { r.count = count; });
}

int fuse_reply_buf(fuse_req_t req, const char*, size_t size) {
  return ff::Reply(req, ReplyKind::kBuf, [&](Record& r) { r.count = size; });
}

int fuse_reply_iov(fuse_req_t req, const struct iovec* iov, int count) {
  return ff::Reply(req, ReplyKind::kIov, [&](Record& r) {
    for (int i = 0; i < count; ++i) r.count += iov[i].iov_len;
  });
}

int fuse_reply_statfs(fuse_req_t req, const struct statvfs*) {
  return ff::Reply(req, ReplyKind::kStatfs, [](Record&) {});
}

int fuse_reply_xattr(fuse_req_t req, size_t count) {
  return ff::Reply(req, ReplyKind::kXattr, [&](Record& r) { r.count = count; });
}

int fuse_reply_lseek(fuse_req_t req, off_t off) {
  return ff::Reply(req, ReplyKind::kLseek, [&](Record& r) { r.count = uint64_t(off); });
}

size_t fuse_add_direntry(fuse_req_t req, char* buf, size_t bufsize, const char* name,
                         const struct stat*, off_t) {
  ff::Use(req);
  const size_t n = ff::DirentSize(24, name);
  if (buf != nullptr && n <= bufsize) std::memset(buf, 0, n);
  return n;
}

size_t fuse_add_direntry_plus(fuse_req_t req, char* buf, size_t bufsize, const char* name,
                              const struct fuse_entry_param* e, off_t) {
  ff::Use(req);
  const size_t n = ff::DirentSize(152, name);
  if (buf != nullptr && n <= bufsize) {
    std::memset(buf, 0, n);
    if (e->ino != 0) {
      rankfs::alloc_failure::Suspend s;
      std::lock_guard<std::mutex> l(ff::g_mu);
      ff::Of(req).record.plus_inos.push_back(e->ino);
    }
  }
  return n;
}

int fuse_lowlevel_notify_store(struct fuse_session*, fuse_ino_t ino, off_t, struct fuse_bufvec*,
                               enum fuse_buf_copy_flags) {
  std::unique_lock<std::mutex> l(ff::g_mu);
  if (ff::g_hold_ino != ino) return 0;
  ff::g_held_ino = ino;
  ff::g_held_thread = std::this_thread::get_id();
  ff::g_cv.notify_all();
  const uint64_t releases = ff::g_releases;
  ff::g_cv.wait(l, [&] { return ff::g_releases != releases; });
  ff::g_held_ino = 0;
  return 0;
}
