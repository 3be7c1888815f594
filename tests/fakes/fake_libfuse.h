// A stand-in for libfuse's request and reply functions, so that a test can call the callbacks
// of RankfsLowLevelOps() directly and see every reply (tests/unit/fuse_reply_test.cc).
//
// How it replaces libfuse: fake_libfuse.cc defines fuse_req_userdata, fuse_req_ctx, the
// fuse_reply_* functions, fuse_add_direntry(_plus) and fuse_lowlevel_notify_store with
// libfuse's own signatures. rankfs_fs is a static library and libfuse3 a shared one, so when
// the linker resolves the references of fuse_ops.cc.o, fuse_dir_ops.cc.o and page_fill.cc.o
// it finds these definitions in the executable's own objects first and never binds them to
// libfuse3.so (`nm fuse_reply_test | grep ' T fuse_reply_err'` shows the local definition).
// The test also checks it at run time: a reply of a real libfuse to a fake request would
// crash, and a reply the fake did not see would fail the reply count.
//
// A fuse_req_t here is the address of a FakeRequest, which stays valid after its reply (the
// real libfuse frees it): using the request after its reply is counted, not undefined, so the
// test finds it with or without ASan. Thread-safety: every function may be called from any
// thread; a FakeRequest's record is read through Snapshot.
#pragma once

#include <fuse_lowlevel.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "fs/fuse_ops.h"

namespace rankfs::fake_fuse {

enum class ReplyKind {
  kNothing,
  kNone,
  kErr,
  kEntry,
  kCreate,
  kAttr,
  kReadlink,
  kOpen,
  kWrite,
  kBuf,
  kIov,
  kStatfs,
  kXattr,
  kLseek
};

// What the fake functions saw of one request.
struct Record {
  int replies = 0;           // fuse_reply_* calls (a second one is a bug)
  int uses_after_reply = 0;  // fuse_req_userdata/ctx or fuse_add_direntry* after the reply
  ReplyKind kind = ReplyKind::kNothing;  // of the first reply
  int err = 0;                           // kErr
  uint64_t count = 0;        // kWrite, kXattr: the count; kBuf, kIov: the bytes; kLseek: the offset
  fuse_entry_param entry{};  // kEntry, kCreate
  fuse_file_info fi{};       // kOpen, kCreate
  std::vector<fuse_ino_t> plus_inos;  // inodes passed to fuse_add_direntry_plus (ino != 0)
};

class FakeRequest {
 public:
  explicit FakeRequest(FuseContext* ctx, fuse_ctx caller = fuse_ctx{1000, 1000, 1, 022});
  fuse_req_t req() { return reinterpret_cast<fuse_req_t>(this); }

  FuseContext* const ctx;
  const fuse_ctx caller;
  Record record;  // guarded by the fake's mutex
};

Record Snapshot(const FakeRequest& r);
// Waits until `r` has a reply (one answered later, on another thread); false on timeout.
bool WaitForReply(const FakeRequest& r, std::chrono::milliseconds timeout);
// What every fuse_reply_* returns from now on: 0 (delivered) or -ENOENT (the kernel dropped
// the request: it was interrupted).
void SetReplyResult(int rc);

// fuse_lowlevel_notify_store (the page filler's fill): answers 0. A fill of the held inode waits
// until ReleaseStores, which also enrolls the waiting thread for allocation failure
// (alloc_failure.h): it goes on to run the operations that waited for the fill.
void HoldStoresOf(fuse_ino_t ino);
// Waits until a fill of `ino` is held; false on timeout.
bool WaitForHeldStore(fuse_ino_t ino, std::chrono::milliseconds timeout);
void ReleaseStores();

}  // namespace rankfs::fake_fuse
