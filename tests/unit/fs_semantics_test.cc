// FsCore semantics that users compare with ext4: `..` names the parent directory, chown clears
// setuid/setgid of every non-directory, and deleting a file with many extents scans each
// extent once.
#include <fcntl.h>
#include <sys/stat.h>

#include <mutex>
#include <vector>

#include <gtest/gtest.h>

#include "fs/fs_core.h"
#include "tests/testutil/fs_core_fixture.h"
#include "tests/testutil/test_data.h"

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

namespace rankfs {
namespace {

class FsSemanticsTest : public FsCoreFixture {
 protected:
  Ino MkDir(Ino parent, const std::string& name) {
    auto a = fs_->MkDir(parent, name, 0755, caller_);
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    return a.ok() ? a->ino : 0;
  }
  // The inode readdir gives for "..".
  Ino DotDot(Ino dir) {
    auto l = fs_->OpenDir(dir);
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    if (!l.ok()) return 0;
    for (const auto& e : (*l)->entries) {
      if (e.name == "..") return e.ino;
    }
    ADD_FAILURE() << "no '..' in directory " << dir;
    return 0;
  }
};

TEST_F(FsSemanticsTest, DotDotIsTheParentAfterMkdirRenameAndExchange) {
  EXPECT_EQ(DotDot(kRootIno), kRootIno);
  const Ino a = MkDir(kRootIno, "a");
  const Ino b = MkDir(a, "b");
  const Ino c = MkDir(kRootIno, "c");
  EXPECT_EQ(DotDot(a), kRootIno);
  EXPECT_EQ(DotDot(b), a);

  ASSERT_TRUE(fs_->Rename(a, "b", c, "b2", 0).ok());  // across directories
  EXPECT_EQ(DotDot(b), c);
  ASSERT_TRUE(fs_->Rename(c, "b2", c, "b3", 0).ok());  // within one
  EXPECT_EQ(DotDot(b), c);

  // Exchange two directories of different parents, then a directory with a file.
  const Ino e = MkDir(a, "e");
  ASSERT_TRUE(fs_->Rename(c, "b3", a, "e", RENAME_EXCHANGE).ok());
  EXPECT_EQ(DotDot(b), a);
  EXPECT_EQ(DotDot(e), c);
  const Ino f = CreateFile(kRootIno, "f");
  ASSERT_TRUE(fs_->Rename(kRootIno, "f", c, "b3", RENAME_EXCHANGE).ok());
  EXPECT_EQ(DotDot(e), kRootIno);
  EXPECT_EQ(fs_->Lookup(c, "b3")->ino, f);

  Reopen();  // kept in the inode records
  EXPECT_EQ(DotDot(b), a);
  EXPECT_EQ(DotDot(e), kRootIno);
  EXPECT_EQ(DotDot(c), kRootIno);
  EXPECT_EQ(DotDot(kRootIno), kRootIno);
}

// ext4: chown clears setuid, and setgid when the group may execute, of any non-directory, for
// root too; a directory keeps both. Under FUSE_HANDLE_KILLPRIV_V2 that is rankfs's job.
TEST_F(FsSemanticsTest, ChownClearsSetuidAndSetgidOfEveryNonDirectory) {
  struct Kind {
    const char* name;
    uint32_t type;
  };
  const Kind kinds[] = {{"fifo", S_IFIFO}, {"chr", S_IFCHR}, {"blk", S_IFBLK},
                        {"sock", S_IFSOCK}, {"reg", S_IFREG}, {"dir", S_IFDIR}};
  for (const Kind& k : kinds) {
    for (uint32_t mode : {06555u, 06545u}) {
      const std::string name = std::string(k.name) + std::to_string(mode);
      auto a = k.type == S_IFDIR ? fs_->MkDir(kRootIno, name, mode, caller_)
                                 : fs_->MkNod(kRootIno, name, k.type | mode, 0x0103, caller_);
      ASSERT_TRUE(a.ok()) << name << ": " << a.status().ToString();
      ASSERT_EQ(a->mode & 07777, mode) << name;
      SetAttrRequest r;
      r.set_gid = true;
      r.gid = 2000;
      auto after = fs_->SetAttr(a->ino, r);
      ASSERT_TRUE(after.ok()) << after.status().ToString();
      uint32_t want = mode & ~uint32_t(S_ISUID);
      if (mode & S_IXGRP) want &= ~uint32_t(S_ISGID);
      if (k.type == S_IFDIR) want = mode;
      EXPECT_EQ(after->mode & 07777, want) << name;
      EXPECT_EQ(fs_->GetAttr(a->ino)->mode & 07777, want) << name;
    }
  }
}

// Deleting a file's extents goes in batches of 4096. A new scan per batch stepped over the
// tombstones of every extent deleted so far (quadratic): the deletion must scan the extents
// once, and release every reference.
class FsDeleteTest : public FsCoreFixture {
 protected:
  void SetUp() override {
    FsOptions fo;
    fo.on_delete_scan = [this](Ino ino, uint64_t from) {
      std::lock_guard<std::mutex> l(mu_);
      scans_.emplace_back(ino, from);
    };
    Open(fo);
  }
  std::mutex mu_;
  std::vector<std::pair<Ino, uint64_t>> scans_;  // guarded by mu_
};

TEST_F(FsDeleteTest, DeletingAFileScansItsExtentsOnce) {
  const Ino src = CreateFile(kRootIno, "src");
  const Ino dst = CreateFile(kRootIno, "dst");
  ASSERT_TRUE(fs_->Write(src, 0, MakeRandomData(8192, 7)).ok());
  ASSERT_TRUE(fs_->Fsync(src, false).ok());
  // 9000 one-byte extents (three batches), each a slice of src's chunk, with gaps between.
  constexpr uint64_t kExtents = 9000;
  for (uint64_t i = 0; i < kExtents; ++i) {
    auto n = fs_->CopyFileRange(src, i % 8192, dst, 2 * i, 1);
    ASSERT_TRUE(n.ok() && *n == 1) << i;
  }
  MetaStore* meta = store_->meta();
  ChunkHash chunk;
  ASSERT_TRUE(meta->ListExtents(src, 0, 1, [&](uint64_t, const Extent& e) {
                    chunk = e.chunk;
                    return false;
                  }).ok());
  EXPECT_EQ((*meta->GetChunk(chunk))->refcount, kExtents + 1);

  ASSERT_TRUE(fs_->Release(dst).ok());
  ASSERT_TRUE(fs_->Unlink(kRootIno, "dst").ok());
  fs_->Forget(dst, 1);
  ASSERT_TRUE(fs_->DrainBackground().ok());

  std::vector<uint64_t> starts;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto [ino, from] : scans_) {
      if (ino == dst) starts.push_back(from);
    }
  }
  EXPECT_EQ(starts, std::vector<uint64_t>{0}) << "the extents were scanned more than once";
  // Every extent went, each reference with it.
  size_t left = 0;
  ASSERT_TRUE(meta->ListExtents(dst, 0, UINT64_MAX, [&](uint64_t, const Extent&) {
                    ++left;
                    return true;
                  }).ok());
  EXPECT_EQ(left, 0u);
  EXPECT_EQ((*meta->GetChunk(chunk))->refcount, 1u);
  EXPECT_FALSE(*meta->GetInode(dst));
}

}  // namespace
}  // namespace rankfs
