// Every FUSE request gets exactly one reply, whatever throws (fs/fuse_ops_internal.h).
//
// Each callback of RankfsLowLevelOps() is called with a fake request (tests/fakes/
// fake_libfuse.h) against a real FsCore over in-memory Envs, with a PageFiller, and for
// N = 0, 1, 2, ... allocation N of the call throws std::bad_alloc (tests/fakes/alloc_failure.h)
// until a call completes without reaching N. After every call the request must have exactly one
// reply (reply_none for forget) and no use after that reply. Each case runs twice: with replies
// the kernel takes, and with replies that fail (an interrupted request), which sends the
// callbacks down their undo paths.
//
// Allocations made inside FsCore calls are left alone: the glue's contract is with FsCore's
// results, and FsCore's own exception safety is not this test's subject (set
// RANKFS_FUSE_REPLY_CORE_FAILURES=1 to fail them too; RocksDB's stay excluded, it is not
// exception-safe). Every allocation the glue itself makes can fail.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <rocksdb/env.h>
#include <sys/stat.h>

#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fs/fs_core.h"
#include "fs/fuse_ops.h"
#include "fs/fuse_ops_internal.h"
#include "fs/page_fill.h"
#include "store/env.h"
#include "store/logging.h"
#include "store/store.h"
#include "tests/fakes/alloc_failure.h"
#include "tests/fakes/fake_libfuse.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

using fake_fuse::FakeRequest;
using fake_fuse::Record;
using fake_fuse::ReplyKind;
using std::chrono::seconds;

constexpr uint64_t kMaxAllocations = 20000;   // a call that never completes is a bug too
constexpr size_t kFileBytes = 4 << 20;        // f_: many chunks, and a small read offers each
constexpr size_t kSmallFileBytes = 64 << 10;  // the other stored files

// One callback, called over and over: `setup` before each call and `cleanup` after it run
// without allocation failure; `cleanup` also plays the kernel's part for what a delivered
// reply handed over (a handle to release, a lookup to forget). The whole series runs `repeat`
// times, between `before` and `after`.
struct OpCase {
  std::string name;
  std::function<void()> setup;
  std::function<void(fuse_req_t)> call;
  std::function<void(const Record&)> cleanup;
  int repeat = 1;
  std::function<void()> before, after;
};

class FuseReplyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static const bool excluded = [] {
      alloc_failure::ExcludeLibrary("librocksdb");
      if (std::getenv("RANKFS_FUSE_REPLY_CORE_FAILURES") == nullptr) {
        alloc_failure::ExcludeFunctions("6rankfs6FsCore");  // FsCore:: and FsCore::Impl::
      }
      return true;
    }();
    (void)excluded;
    SetLogSink([](LogLevel, const std::string&) {});  // every injected failure is logged
    pack_env_ = NewMemEnv();
    rocks_env_.reset(rocksdb::NewMemEnv(rocksdb::Env::Default()));
    StoreOptions so;
    so.env = pack_env_.get();
    so.rocks_env = rocks_env_.get();
    so.packs.background_reclaim = false;
    auto s = Store::Open("/store", so);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    FsOptions fo;
    fo.reserve_bytes = 0;
    auto fs = FsCore::Create(store_.get(), fo);
    ASSERT_TRUE(fs.ok()) << fs.status().ToString();
    fs_ = std::move(fs).value();
    filler_ = std::make_unique<PageFiller>(fs_.get(), nullptr);
    ctx_.core = fs_.get();
    ctx_.filler = filler_.get();

    d_ = Entry(fs_->MkDir(kRootIno, "d", 0755, caller_));
    f_ = StoredFile("f", kFileBytes);
    ASSERT_TRUE(fs_->SetXattr(f_, "user.x", "value", 0).ok());
    l_ = Entry(fs_->Symlink(d_, "l", "f", caller_));
    t_ = StoredFile("t");
    x_ = StoredFile("x");
    b_ = Entry(fs_->Create(d_, "b", 0644, O_RDWR, caller_));  // stays open, bytes buffered
    ASSERT_TRUE(fs_->Write(b_, 0, std::string(100, 'b')).ok());
    w_ = Entry(fs_->Create(d_, "w", 0644, O_RDWR, caller_));  // stays open
  }

  void TearDown() override {
    fake_fuse::ReleaseStores();
    fake_fuse::SetReplyResult(0);
    filler_.reset();
    if (fs_) {
      EXPECT_TRUE(fs_->Shutdown().ok());
    }
    fs_.reset();
    if (store_) {
      EXPECT_TRUE(store_->Close().ok());
    }
    store_.reset();
    SetLogSink(nullptr);
  }

  Ino Entry(const Result<InodeAttr>& a) {
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    return a.ok() ? a->ino : 0;
  }

  // A file in d_ whose bytes are all in the store, closed.
  Ino StoredFile(const std::string& name, size_t bytes = kSmallFileBytes) {
    const Ino ino = Entry(fs_->Create(d_, name, 0644, O_RDWR, caller_));
    EXPECT_TRUE(fs_->Write(ino, 0, MakeRandomData(bytes, ino)).ok());
    EXPECT_TRUE(fs_->Fsync(ino, false).ok());
    EXPECT_TRUE(fs_->Release(ino).ok());
    return ino;
  }

  // Calls an op with delivered replies and no allocation failure (a case's setup or cleanup).
  Record Call(const std::function<void(fuse_req_t)>& call) {
    fake_fuse::SetReplyResult(0);
    FakeRequest r(&ctx_);
    call(r.req());
    fake_fuse::SetReplyResult(reply_result_);
    return fake_fuse::Snapshot(r);
  }

  void Absent(const char* name) {
    (void)fs_->Unlink(d_, name);
    (void)fs_->RmDir(d_, name);
  }
  void PresentFile(const char* name) {
    auto a = fs_->MkNod(d_, name, S_IFREG | 0644, 0, caller_);
    if (a.ok()) fs_->Forget(a->ino, 1);
  }
  // The kernel forgets what a delivered entry reply gave it.
  void ForgetEntry(const Record& r) {
    if (reply_result_ == 0 && (r.kind == ReplyKind::kEntry || r.kind == ReplyKind::kCreate) &&
        r.entry.ino != 0) {
      fs_->Forget(r.entry.ino, 1);
    }
  }
  // The kernel releases what a delivered open reply gave it.
  void ReleaseOpened(Ino ino, const Record& r) {
    if (reply_result_ != 0 || (r.kind != ReplyKind::kOpen && r.kind != ReplyKind::kCreate)) return;
    fuse_file_info fi = r.fi;
    Call([&](fuse_req_t q) { ops_.release(q, ino, &fi); });
  }
  fuse_file_info OpenDirHandle() {
    fuse_file_info fi{};
    Record r = Call([&](fuse_req_t q) { ops_.opendir(q, d_, &fi); });
    EXPECT_EQ(r.kind, ReplyKind::kOpen);
    return r.fi;
  }

  std::vector<OpCase> Cases();
  std::vector<OpCase> FileCases();
  std::vector<OpCase> DirCases();

  // Runs every series of `c`; false after the first broken step (which says enough).
  bool RunCase(const OpCase& c) {
    bool ok = true;
    if (c.before) c.before();
    for (int round = 0; ok && round < 2 * c.repeat; ++round) {
      ok = RunSeries(c, round % 2 == 0 ? 0 : -ENOENT);
    }
    if (c.after) c.after();
    reply_result_ = 0;
    fake_fuse::SetReplyResult(0);
    return ok && !HasFatalFailure();
  }

  // Calls `c` with allocation 0, 1, 2, ... failing until a call completes without reaching it.
  bool RunSeries(const OpCase& c, int rc) {
    reply_result_ = rc;
    fake_fuse::SetReplyResult(rc);
    for (uint64_t n = 0; n < kMaxAllocations; ++n) {
      if (c.setup) c.setup();
      if (HasFatalFailure()) return false;
      FakeRequest r(&ctx_);
      bool threw = false;
      alloc_failure::Arm(n);
      try {
        c.call(r.req());
      } catch (...) {  // into libfuse's C frames: never allowed
        threw = true;
      }
      const bool failed = alloc_failure::Disarm();
      const Record rec = fake_fuse::Snapshot(r);
      const std::string where = c.name + (rc == 0 ? "" : " (reply dropped)") + ", allocation " +
                                std::to_string(n) + (failed ? " failing" : " (none failed)");
      EXPECT_FALSE(threw) << where << ": an exception left the callback";
      EXPECT_EQ(rec.replies, 1) << where;
      EXPECT_EQ(rec.uses_after_reply, 0) << where << ": the request was used after its reply";
      const bool ok = !threw && rec.replies == 1 && rec.uses_after_reply == 0;
      if (c.cleanup) c.cleanup(rec);
      if (!ok) return false;
      if (!failed) return true;
      ++failures_injected_;
    }
    ADD_FAILURE() << c.name << " never completed";
    return false;
  }

  const fuse_lowlevel_ops& ops_ = RankfsLowLevelOps();
  const Caller caller_{1000, 1000, 1};
  std::unique_ptr<Env> pack_env_;
  std::unique_ptr<rocksdb::Env> rocks_env_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<FsCore> fs_;
  std::unique_ptr<PageFiller> filler_;
  FuseContext ctx_;
  Ino d_ = 0, f_ = 0, l_ = 0, t_ = 0, x_ = 0, b_ = 0, w_ = 0;
  int reply_result_ = 0;  // what the fake's replies return in the case running now
  int fill_files_ = 0;
  Ino fill_ino_ = 0;    // the deferred-open case's file
  int read_round_ = 0;  // the read case's calls so far
  int failures_injected_ = 0;
  fuse_file_info dir_fi_{};  // the directory handle of the readdir cases
};

std::vector<OpCase> FuseReplyTest::Cases() {
  std::vector<OpCase> cases = {
      {"lookup", nullptr, [&](fuse_req_t q) { ops_.lookup(q, d_, "f"); },
       [&](const Record& r) { ForgetEntry(r); }},
      {"lookup of a missing name", nullptr, [&](fuse_req_t q) { ops_.lookup(q, d_, "nope"); },
       nullptr},
      {"forget", [&] { Entry(fs_->Lookup(d_, "f")); }, [&](fuse_req_t q) { ops_.forget(q, f_, 1); },
       nullptr},
      {"forget_multi",
       [&] {
         Entry(fs_->Lookup(d_, "f"));
         Entry(fs_->Lookup(d_, "t"));
       },
       [&](fuse_req_t q) {
         fuse_forget_data data[2] = {{f_, 1}, {t_, 1}};
         ops_.forget_multi(q, 2, data);
       },
       nullptr},
      {"getattr", nullptr, [&](fuse_req_t q) { ops_.getattr(q, f_, nullptr); }, nullptr},
      {"setattr mode", nullptr,
       [&](fuse_req_t q) {
         struct stat st {};
         st.st_mode = 0640;
         ops_.setattr(q, f_, &st, FUSE_SET_ATTR_MODE, nullptr);
       },
       nullptr},
      {"setattr size (through the page filler)", nullptr,
       [&](fuse_req_t q) {
         struct stat st {};
         st.st_size = 4096;
         ops_.setattr(q, t_, &st, FUSE_SET_ATTR_SIZE, nullptr);
       },
       nullptr},
      {"readlink", nullptr, [&](fuse_req_t q) { ops_.readlink(q, l_); }, nullptr},
      {"mknod", [&] { Absent("n"); },
       [&](fuse_req_t q) { ops_.mknod(q, d_, "n", S_IFREG | 0644, 0); },
       [&](const Record& r) { ForgetEntry(r); }},
      {"mkdir", [&] { Absent("m"); }, [&](fuse_req_t q) { ops_.mkdir(q, d_, "m", 0755); },
       [&](const Record& r) { ForgetEntry(r); }},
      {"symlink", [&] { Absent("s"); }, [&](fuse_req_t q) { ops_.symlink(q, "f", d_, "s"); },
       [&](const Record& r) { ForgetEntry(r); }},
      {"link", [&] { Absent("h"); }, [&](fuse_req_t q) { ops_.link(q, f_, d_, "h"); },
       [&](const Record& r) { ForgetEntry(r); }},
      {"unlink", [&] { PresentFile("u"); }, [&](fuse_req_t q) { ops_.unlink(q, d_, "u"); },
       nullptr},
      {"rmdir",
       [&] {
         auto a = fs_->MkDir(d_, "r", 0755, caller_);
         if (a.ok()) fs_->Forget(a->ino, 1);
       },
       [&](fuse_req_t q) { ops_.rmdir(q, d_, "r"); }, nullptr},
      {"rename",
       [&] {
         PresentFile("a");
         Absent("a2");
       },
       [&](fuse_req_t q) { ops_.rename(q, d_, "a", d_, "a2", 0); }, nullptr},
      {"statfs", nullptr, [&](fuse_req_t q) { ops_.statfs(q, d_); }, nullptr},
      {"setxattr", nullptr, [&](fuse_req_t q) { ops_.setxattr(q, f_, "user.s", "v", 1, 0); },
       nullptr},
      {"getxattr size", nullptr, [&](fuse_req_t q) { ops_.getxattr(q, f_, "user.x", 0); }, nullptr},
      {"getxattr value", nullptr, [&](fuse_req_t q) { ops_.getxattr(q, f_, "user.x", 64); },
       nullptr},
      {"listxattr", nullptr, [&](fuse_req_t q) { ops_.listxattr(q, f_, 1024); }, nullptr},
      {"removexattr", [&] { (void)fs_->SetXattr(f_, "user.r", "v", 0); },
       [&](fuse_req_t q) { ops_.removexattr(q, f_, "user.r"); }, nullptr},
  };
  for (std::vector<OpCase> more : {FileCases(), DirCases()}) {
    for (OpCase& c : more) cases.push_back(std::move(c));
  }
  return cases;
}

std::vector<OpCase> FuseReplyTest::FileCases() {
  static fuse_file_info fi{};  // the handle of f_, b_ and w_ in calls that take one
  return {
      {"create", [&] { Absent("c"); },
       [&](fuse_req_t q) {
         fuse_file_info cfi{};
         cfi.flags = O_RDWR | O_CREAT;
         ops_.create(q, d_, "c", S_IFREG | 0644, &cfi);
       },
       [&](const Record& r) {
         ReleaseOpened(r.entry.ino, r);
         ForgetEntry(r);
       }},
      {"open for reading", nullptr,
       [&](fuse_req_t q) {
         fuse_file_info ofi{};
         ofi.flags = O_RDONLY;
         ops_.open(q, f_, &ofi);
       },
       [&](const Record& r) { ReleaseOpened(f_, r); }},
      {"open for writing (through the page filler)", nullptr,
       [&](fuse_req_t q) {
         fuse_file_info ofi{};
         ofi.flags = O_RDWR;
         ops_.open(q, f_, &ofi);
       },
       [&](const Record& r) { ReleaseOpened(f_, r); }},
      {"open for writing, deferred behind a fill",
       [&] {
         // A fresh stored file with its fill held in the kernel: the open waits for it and is
         // answered from the filler's thread.
         fill_ino_ = StoredFile("fill" + std::to_string(fill_files_++));
         fake_fuse::HoldStoresOf(fill_ino_);
         filler_->Offer(fill_ino_, 0, kSmallFileBytes);
         ASSERT_TRUE(fake_fuse::WaitForHeldStore(fill_ino_, seconds(60)));
       },
       [&](fuse_req_t q) {
         fuse_file_info ofi{};
         ofi.flags = O_RDWR;
         try {
           ops_.open(q, fill_ino_, &ofi);
         } catch (...) {
           fake_fuse::ReleaseStores();
           throw;
         }
         fake_fuse::ReleaseStores();
         const FakeRequest& r = *reinterpret_cast<FakeRequest*>(q);
         alloc_failure::Suspend s;
         (void)fake_fuse::WaitForReply(r, seconds(60));  // the count is checked after
       },
       [&](const Record& r) { ReleaseOpened(fill_ino_, r); }},
      // Each read offers a fill of the chunks it touched, after its reply. With the filler
      // held on another file, the offers pile up in its queue, and some of them must allocate.
      {"read from stored chunks (offers a fill after the reply)", [&] { ++read_round_; },
       [&](fuse_req_t q) {
         ops_.read(q, f_, 4096, off_t(read_round_ * 64 << 10) % kFileBytes, &fi);
       },
       nullptr, /*repeat=*/kFileBytes / (64 << 10) / 2,
       [&] {
         fake_fuse::HoldStoresOf(x_);
         filler_->Offer(x_, 0, kSmallFileBytes);
         ASSERT_TRUE(fake_fuse::WaitForHeldStore(x_, seconds(60)));
       },
       [&] { fake_fuse::ReleaseStores(); }},
      {"read of buffered bytes", nullptr, [&](fuse_req_t q) { ops_.read(q, b_, 100, 0, &fi); },
       nullptr},
      {"write", nullptr,
       [&](fuse_req_t q) {
         static const char kData[100] = {'w'};
         ops_.write(q, w_, kData, sizeof kData, 0, &fi);
       },
       nullptr},
      {"flush", nullptr, [&](fuse_req_t q) { ops_.flush(q, w_, &fi); }, nullptr},
      {"fsync", nullptr, [&](fuse_req_t q) { ops_.fsync(q, w_, 0, &fi); }, nullptr},
      {"release", [&] { ASSERT_TRUE(fs_->Open(f_, O_RDONLY).ok()); },
       [&](fuse_req_t q) { ops_.release(q, f_, &fi); }, nullptr},
      {"fallocate", nullptr, [&](fuse_req_t q) { ops_.fallocate(q, w_, 0, 0, 4096, &fi); },
       nullptr},
      {"lseek", nullptr, [&](fuse_req_t q) { ops_.lseek(q, f_, 0, SEEK_DATA, &fi); }, nullptr},
      {"copy_file_range", nullptr,
       [&](fuse_req_t q) { ops_.copy_file_range(q, f_, 0, &fi, w_, 0, &fi, 65536, 0); }, nullptr},
  };
}

std::vector<OpCase> FuseReplyTest::DirCases() {
  return {
      {"opendir", nullptr,
       [&](fuse_req_t q) {
         fuse_file_info dfi{};
         ops_.opendir(q, d_, &dfi);
       },
       [&](const Record& r) {
         fuse_file_info dfi = r.fi;
         if (reply_result_ == 0 && r.kind == ReplyKind::kOpen) {
           Call([&](fuse_req_t q) { ops_.releasedir(q, d_, &dfi); });
         }
       }},
      {"readdir", [&] { dir_fi_ = OpenDirHandle(); },
       [&](fuse_req_t q) { ops_.readdir(q, d_, 4096, 0, &dir_fi_); },
       [&](const Record&) { Call([&](fuse_req_t q) { ops_.releasedir(q, d_, &dir_fi_); }); }},
      {"readdirplus", [&] { dir_fi_ = OpenDirHandle(); },
       [&](fuse_req_t q) { ops_.readdirplus(q, d_, 4096, 0, &dir_fi_); },
       [&](const Record& r) {
         if (reply_result_ == 0 && r.kind == ReplyKind::kBuf) {
           for (fuse_ino_t ino : r.plus_inos) fs_->Forget(ino, 1);
         }
         Call([&](fuse_req_t q) { ops_.releasedir(q, d_, &dir_fi_); });
       }},
      {"releasedir", [&] { dir_fi_ = OpenDirHandle(); },
       [&](fuse_req_t q) { ops_.releasedir(q, d_, &dir_fi_); }, nullptr},
      {"fsyncdir", nullptr, [&](fuse_req_t q) { ops_.fsyncdir(q, d_, 0, &dir_fi_); }, nullptr},
  };
}

// The harness itself: the fake answers for libfuse, and allocation failure reaches the test's
// code but not FsCore's.
TEST_F(FuseReplyTest, TheFakesStandInForLibfuseAndOperatorNew) {
  Record r = Call([&](fuse_req_t q) { ops_.getattr(q, f_, nullptr); });
  EXPECT_EQ(r.replies, 1);
  EXPECT_EQ(r.kind, ReplyKind::kAttr);

  alloc_failure::Arm(0);
  // A plain call: a new-expression whose result is unused may be optimized away.
  EXPECT_THROW(::operator delete(::operator new(16)), std::bad_alloc);
  EXPECT_TRUE(alloc_failure::Disarm());
  if (std::getenv("RANKFS_FUSE_REPLY_CORE_FAILURES") == nullptr) {
    alloc_failure::Arm(0);
    Result<InodeAttr> a = fs_->Lookup(d_, "f");  // allocates inside FsCore only
    EXPECT_FALSE(alloc_failure::Disarm());
    ASSERT_TRUE(a.ok());
    fs_->Forget(a->ino, 1);
  }
}

// The Reply contract (fs/fuse_ops_internal.h) on its own: one reply at most, EIO when a body
// throws before it or when it is dropped unanswered, and never an error for a forget.
TEST_F(FuseReplyTest, AReplyAnswersOnceAndAForgetNeverWithAnError) {
  using fuse_internal::Guarded;
  using fuse_internal::Reply;
  FakeRequest twice(&ctx_);
  {
    Reply r(twice.req());
    r.Err(0);
    r.Err(EIO);  // dropped
    Guarded(r, "test", [] { throw std::bad_alloc(); });  // after the reply: logged only
  }
  Record rec = fake_fuse::Snapshot(twice);
  EXPECT_EQ(rec.replies, 1);
  EXPECT_EQ(rec.err, 0);

  FakeRequest thrown(&ctx_);
  {
    Reply r(thrown.req());
    Guarded(r, "test", [] { throw std::bad_alloc(); });
  }
  rec = fake_fuse::Snapshot(thrown);
  EXPECT_EQ(rec.replies, 1);
  EXPECT_EQ(rec.kind, ReplyKind::kErr);
  EXPECT_EQ(rec.err, EIO);

  FakeRequest dropped(&ctx_);
  { Reply r(dropped.req()); }
  rec = fake_fuse::Snapshot(dropped);
  EXPECT_EQ(rec.replies, 1);
  EXPECT_EQ(rec.err, EIO);

  FakeRequest forget(&ctx_);
  {
    Reply r(forget.req(), Reply::Unanswered::kNone);
    Guarded(r, "test", [] { throw std::bad_alloc(); });
    r.None();
  }
  rec = fake_fuse::Snapshot(forget);
  EXPECT_EQ(rec.replies, 1);
  EXPECT_EQ(rec.kind, ReplyKind::kNone);

  FakeRequest forget_dropped(&ctx_);
  { Reply r(forget_dropped.req(), Reply::Unanswered::kNone); }
  rec = fake_fuse::Snapshot(forget_dropped);
  EXPECT_EQ(rec.replies, 1);
  EXPECT_EQ(rec.kind, ReplyKind::kNone);
  for (const FakeRequest* r : {&twice, &thrown, &dropped, &forget, &forget_dropped}) {
    EXPECT_EQ(fake_fuse::Snapshot(*r).uses_after_reply, 0);
  }
}

TEST_F(FuseReplyTest, EveryRequestIsAnsweredOnceWhateverAllocationFails) {
  for (const OpCase& c : Cases()) {
    if (!RunCase(c) && HasFatalFailure()) return;
  }
  // The glue's own allocations: the page-filler paths, handles, buffers and queues.
  EXPECT_GE(failures_injected_, 10);
  RecordProperty("failures_injected", failures_injected_);
}

// The FUSE write reply carries a 32-bit count: copy_file_range copies at most UINT32_MAX
// rounded down to a page (the kernel's own clamp) and answers exactly what it copied, so a
// 5 GiB copy of a sparse file is short, never wrapped.
TEST_F(FuseReplyTest, CopyFileRangeCopiesNoMoreThanItsReplyCanCount) {
  constexpr uint64_t kMaxCount = uint64_t(UINT32_MAX) & ~uint64_t(4095);
  constexpr uint64_t kLen = 5ull << 30;
  constexpr size_t kPiece = 64 << 10;
  const std::string edge = MakeRandomData(2 * kPiece, 7);  // straddles the clamp
  const Ino src = Entry(fs_->Create(d_, "big", 0644, O_RDWR, caller_));
  ASSERT_TRUE(fs_->Write(src, kMaxCount - kPiece, edge).ok());
  SetAttrRequest grow;
  grow.set_size = true;
  grow.size = kLen;
  ASSERT_TRUE(fs_->SetAttr(src, grow).ok());
  ASSERT_TRUE(fs_->Fsync(src, false).ok());
  const Ino dst = Entry(fs_->Create(d_, "copy", 0644, O_RDWR, caller_));

  fuse_file_info fi{};
  Record r =
      Call([&](fuse_req_t q) { ops_.copy_file_range(q, src, 0, &fi, dst, 0, &fi, kLen, 0); });
  ASSERT_EQ(r.kind, ReplyKind::kWrite) << "errno " << r.err;
  EXPECT_EQ(r.count, kMaxCount);
  Result<InodeAttr> a = fs_->GetAttr(dst);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->size, kMaxCount);
  std::string got(2 * kPiece, '\0');
  Result<size_t> n = fs_->Read(dst, kMaxCount - kPiece, got.size(), got.data());
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(*n, kPiece);  // up to the end of what was copied
  EXPECT_EQ(got.substr(0, kPiece), edge.substr(0, kPiece));
}

// fsyncdir reaches FsCore::FsyncDir (its durability is tested in fsync_dir_test.cc).
TEST_F(FuseReplyTest, FsyncdirAnswersWhatFsyncDirSays) {
  fuse_file_info fi{};
  Record ok = Call([&](fuse_req_t q) { ops_.fsyncdir(q, d_, 0, &fi); });
  EXPECT_EQ(ok.kind, ReplyKind::kErr);
  EXPECT_EQ(ok.err, 0);
  Record not_dir = Call([&](fuse_req_t q) { ops_.fsyncdir(q, f_, 0, &fi); });
  EXPECT_EQ(not_dir.kind, ReplyKind::kErr);
  EXPECT_EQ(not_dir.err, ENOTDIR);
}

}  // namespace
}  // namespace rankfs
