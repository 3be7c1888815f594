// The background deletion of unlinked inodes in rounds (FsCore::Impl::DeleteLoop): an rm -rf
// of many files is written in a few metadata writes, leaves nothing of them in the store,
// and drops every chunk reference exactly once, also when a write of a round fails.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "fs/fs_core.h"
#include "store/fsck.h"
#include "store/store.h"
#include "tests/testutil/temp_dir.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

// Counts the deletion writes (orphans changed, no names: an unlink writes its dirent) and
// fails or half-fails those it is told to.
class DeletionWrites : public MetaWriteHook {
 public:
  Action BeforeWrite(const std::string& families, bool /*sync*/) override {
    const bool deletion = families.find("orphans") != std::string::npos &&
                          families.find("dirents") == std::string::npos;
    if (!deletion) return Action::kProceed;
    const int n = count.fetch_add(1);
    return n < failing.load() ? failure.load() : Action::kProceed;
  }
  std::atomic<int> count{0};
  std::atomic<int> failing{0};  // the first `failing` deletion writes get `failure`
  std::atomic<Action> failure{Action::kFail};
};

class FsDeleteRoundsTest : public ::testing::Test {
 protected:
  static constexpr int kFiles = 3000;

  void Open() {
    StoreOptions so;
    so.packs.background_reclaim = false;
    so.meta.write_hook = &hook_;
    auto s = Store::Open(dir_.Join(store_name_), so);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    auto fs = FsCore::Create(store_.get(), FsOptions());
    ASSERT_TRUE(fs.ok()) << fs.status().ToString();
    fs_ = std::move(fs).value();
  }
  void Close() {
    ASSERT_TRUE(fs_->Shutdown().ok());
    fs_.reset();
    ASSERT_TRUE(store_->Close().ok());
    store_.reset();
  }
  Ino Create(Ino parent, const std::string& name) {
    auto a = fs_->Create(parent, name, 0644, O_RDWR, caller_);
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    return a.ok() ? a->ino : 0;
  }
  ChunkHash FirstChunk(Ino ino) {
    ChunkHash h{};
    EXPECT_TRUE(store_->meta()
                    ->ListExtents(ino, 0, UINT64_MAX, [&](uint64_t, const Extent& e) {
                      h = e.chunk;
                      return false;
                    })
                    .ok());
    return h;
  }
  uint64_t Refcount(const ChunkHash& h) {
    auto c = store_->meta()->GetChunk(h);
    EXPECT_TRUE(c.ok());
    return c.ok() && *c ? (*c)->refcount : 0;
  }

  // A directory of kFiles files as a job leaves them: every third with the same 100 bytes
  // (one chunk, many references), every fifth with an xattr, and one ("big") of 5000
  // one-byte slices of another file's chunk, more than one write's worth of deletions. The
  // store is then reopened, so that every inode comes back as one the store may hold data of.
  void MakeTree() {
    Open();
    auto d = fs_->MkDir(kRootIno, "many", 0755, caller_);
    ASSERT_TRUE(d.ok());
    dir_ino_ = d->ino;
    const std::string shared = MakeRandomData(100, 3);
    for (int i = 0; i < kFiles; ++i) {
      const Ino ino = Create(dir_ino_, "f" + std::to_string(i));
      if (i % 3 == 0) {
        ASSERT_TRUE(fs_->Write(ino, 0, shared).ok());
        ASSERT_TRUE(fs_->Fsync(ino, false).ok());
      }
      if (i % 5 == 0) ASSERT_TRUE(fs_->SetXattr(ino, "user.k", "v", 0).ok());
      ASSERT_TRUE(fs_->Release(ino).ok());
      fs_->Forget(ino, 1);
    }
    const Ino src = Create(dir_ino_, "src");
    const Ino big = Create(dir_ino_, "big");
    ASSERT_TRUE(fs_->Write(src, 0, MakeRandomData(8192, 4)).ok());
    ASSERT_TRUE(fs_->Fsync(src, false).ok());
    for (uint64_t i = 0; i < 5000; ++i) {
      auto n = fs_->CopyFileRange(src, i % 8192, big, 2 * i, 1);
      ASSERT_TRUE(n.ok() && *n == 1) << i;
    }
    for (Ino ino : {src, big}) {
      ASSERT_TRUE(fs_->Release(ino).ok());
      fs_->Forget(ino, 1);
    }
    shared_chunk_ = FirstChunk(store_->meta()->GetDirent(dir_ino_, "f0")->value().ino);
    slice_chunk_ = FirstChunk(big);
    EXPECT_EQ(Refcount(shared_chunk_), uint64_t(kFiles + 2) / 3);
    EXPECT_EQ(Refcount(slice_chunk_), 5001u);
    Close();
    Open();
  }

  // rm -rf: every name goes, then the directory.
  void RemoveAll() {
    std::vector<std::string> names;
    ASSERT_TRUE(store_->meta()
                    ->ListDir(dir_ino_, "",
                              [&](std::string_view n, const DirEntry&) {
                                names.emplace_back(n);
                                return true;
                              })
                    .ok());
    ASSERT_EQ(names.size(), size_t(kFiles) + 2);
    for (const std::string& n : names) ASSERT_TRUE(fs_->Unlink(dir_ino_, n).ok()) << n;
    ASSERT_TRUE(fs_->RmDir(kRootIno, "many").ok());
    ASSERT_TRUE(fs_->DrainBackground().ok());
  }

  // Nothing of the tree is left: no inode but the root, no orphan, extent or xattr, and (with
  // `exact_refs`) no reference on either chunk.
  void ExpectNothingLeft(bool exact_refs = true) {
    MetaStore* meta = store_->meta();
    std::vector<Ino> inodes;
    ASSERT_TRUE(meta->ForEachInode([&](const InodeAttr& a) {
                      inodes.push_back(a.ino);
                      return true;
                    }).ok());
    EXPECT_EQ(inodes, std::vector<Ino>{kRootIno});
    int orphans = 0;
    ASSERT_TRUE(meta->ForEachOrphan([&](Ino) { return ++orphans, true; }).ok());
    EXPECT_EQ(orphans, 0);
    for (Ino ino = dir_ino_; ino <= dir_ino_ + kFiles + 2; ++ino) {
      int left = 0;
      ASSERT_TRUE(meta->ListExtents(ino, 0, UINT64_MAX, [&](uint64_t, const Extent&) {
                        return ++left, true;
                      }).ok());
      ASSERT_TRUE(meta->ListXattrs(ino, [&](std::string_view) { return ++left, true; }).ok());
      EXPECT_EQ(left, 0) << "inode " << ino;
    }
    if (!exact_refs) return;
    EXPECT_EQ(Refcount(shared_chunk_), 0u);
    EXPECT_EQ(Refcount(slice_chunk_), 0u);
  }

  TempDir dir_;
  std::string store_name_ = "store";
  Caller caller_{1000, 1000, 1};
  DeletionWrites hook_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<FsCore> fs_;
  Ino dir_ino_ = 0;
  ChunkHash shared_chunk_{}, slice_chunk_{};
};

TEST_F(FsDeleteRoundsTest, AnRmOfManyFilesTakesFewWritesAndLeavesNothing) {
  MakeTree();
  hook_.count = 0;
  RemoveAll();
  ExpectNothingLeft();
  // A write per file was the former cost; rounds gather what the unlinks queued meanwhile.
  EXPECT_LT(hook_.count.load(), kFiles / 8) << "deletion writes for " << kFiles << " files";
  Close();
}

// Files that never reached the store (created, closed and removed while the kernel still knew
// them: a job's temporary files) go in rounds too, not in a metadata write per file on the
// thread of the FORGET, and leave nothing behind.
TEST_F(FsDeleteRoundsTest, FilesThatNeverReachedTheStoreAreDeletedInRounds) {
  Open();
  auto d = fs_->MkDir(kRootIno, "many", 0755, caller_);
  ASSERT_TRUE(d.ok());
  dir_ino_ = d->ino;
  std::vector<Ino> inodes;
  for (int i = 0; i < kFiles; ++i) {
    const Ino ino = Create(dir_ino_, "f" + std::to_string(i));
    ASSERT_NE(ino, 0u);
    ASSERT_TRUE(fs_->Release(ino).ok());
    inodes.push_back(ino);
  }
  hook_.count = 0;
  for (int i = 0; i < kFiles; ++i) {
    ASSERT_TRUE(fs_->Unlink(dir_ino_, "f" + std::to_string(i)).ok());
  }
  // As the kernel does once each unlinked inode leaves its cache.
  for (Ino ino : inodes) fs_->Forget(ino, 1);
  ASSERT_TRUE(fs_->RmDir(kRootIno, "many").ok());
  fs_->Forget(dir_ino_, 1);  // the lookup MkDir took
  ASSERT_TRUE(fs_->DrainBackground().ok());
  EXPECT_LT(hook_.count.load(), kFiles / 8) << "deletion writes for " << kFiles << " files";
  MetaStore* meta = store_->meta();
  std::vector<Ino> left;
  ASSERT_TRUE(meta->ForEachInode([&](const InodeAttr& a) {
                    left.push_back(a.ino);
                    return true;
                  }).ok());
  EXPECT_EQ(left, std::vector<Ino>{kRootIno});
  int orphans = 0;
  ASSERT_TRUE(meta->ForEachOrphan([&](Ino) { return ++orphans, true; }).ok());
  EXPECT_EQ(orphans, 0);
  Close();
}

// A failed write of a round keeps its operations and references: a later write of the round
// carries them again, or (when it was the round's last) its inodes stay orphans, whose
// deletion the next open finishes. A write that failed may have been applied: its references
// are then never dropped (counts err high, never low; fsck finds no count too low).
TEST_F(FsDeleteRoundsTest, AFailedRoundWriteLosesNothingAndDropsNoReferenceTwice) {
  for (auto failure : {MetaWriteHook::Action::kFail, MetaWriteHook::Action::kApplyThenFail}) {
    const bool applied = failure == MetaWriteHook::Action::kApplyThenFail;
    SCOPED_TRACE(applied ? "applied, then failed" : "failed");
    store_name_ = applied ? "store-applied" : "store-failed";
    MakeTree();
    hook_.count = 0;
    hook_.failure = failure;
    hook_.failing = 1;
    RemoveAll();
    hook_.failing = 0;
    EXPECT_GE(hook_.count.load(), 2) << "the failed write was neither retried nor followed";
    Close();
    Open();  // queues the orphans left
    ASSERT_TRUE(fs_->DrainBackground().ok());
    ExpectNothingLeft(/*exact_refs=*/!applied);
    Close();
    auto report = Fsck(dir_.Join(store_name_), FsckOptions());
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    for (const FsckFinding& f : report->findings) {
      EXPECT_TRUE(applied && (f.issue == FsckIssue::kRefcountTooHigh ||
                              f.issue == FsckIssue::kUnreferencedChunk))
          << FsckIssueName(f.issue);
    }
  }
}

}  // namespace
}  // namespace rankfs
