// FsCore semantics that users compare with ext4: `..` names the parent directory, chown clears
// setuid/setgid of every non-directory, deleting a file with many extents scans them once, and
// a store written before the inode record carried a parent and the allocated bytes still gives
// the right answers.
#include <fcntl.h>
#include <rocksdb/db.h>
#include <sys/stat.h>

#include <mutex>
#include <vector>

#include <gtest/gtest.h>

#include "fs/fs_core.h"
#include "store/fsck.h"
#include "store/meta_codec.h"
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

// Rewrites every inode record of the closed store at `dir` in encoding version 1 and its
// superblock as format version 1: the store as the build before the fields wrote it.
void MakeFormatVersion1(const std::string& dir) {
  rocksdb::DB* raw = nullptr;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (const char* n :
       {"default", "inodes", "dirents", "extents", "chunks", "xattrs", "orphans", "packs"}) {
    cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> h;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir + "/meta", cfs, &h, &raw).ok());
  std::vector<std::pair<std::string, std::string>> records;
  std::unique_ptr<rocksdb::Iterator> it(raw->NewIterator({}, h[1]));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string v = it->value().ToString();
    ASSERT_EQ(v[0], 2);
    // v2 = v1's fields up to ctime (73 bytes with the version byte), parent and allocated
    // bytes (16), then the symlink target as in v1.
    v = "\x01" + v.substr(1, 72) + v.substr(89);
    ASSERT_TRUE(DecodeInodeAttr(v).ok());
    records.emplace_back(it->key().ToString(), v);
  }
  it.reset();
  for (const auto& [k, v] : records) ASSERT_TRUE(raw->Put({}, h[1], k, v).ok());
  std::string sb_value;
  ASSERT_TRUE(raw->Get({}, h[0], std::string(kSuperKey), &sb_value).ok());
  Superblock sb = *DecodeSuperblock(sb_value);
  sb.format_version = 1;
  ASSERT_TRUE(raw->Put({}, h[0], std::string(kSuperKey), EncodeSuperblock(sb)).ok());
  for (auto* c : h) ASSERT_TRUE(raw->DestroyColumnFamilyHandle(c).ok());
  delete raw;
}

TEST_F(FsSemanticsTest, AStoreOfTheFormerFormatMountsAndAnswersRight) {
  const Ino a = MkDir(kRootIno, "a");
  const Ino b = MkDir(a, "b");
  const Ino f = CreateFile(b, "f");
  const std::string head = MakeRealData(100000, 8), tail = MakeRandomData(50000, 9);
  ASSERT_TRUE(fs_->Write(f, 0, head).ok());
  ASSERT_TRUE(fs_->Write(f, 1 << 20, tail).ok());
  ASSERT_TRUE(fs_->Release(f).ok());
  ASSERT_TRUE(fs_->Shutdown().ok());
  fs_.reset();
  ASSERT_TRUE(store_->Close().ok());
  store_.reset();
  ASSERT_NO_FATAL_FAILURE(MakeFormatVersion1(dir_.Join("store")));
  auto report = Fsck(dir_.Join("store"), FsckOptions());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->ExitCode(), 0) << "records without the figure are not findings";

  Open();
  EXPECT_EQ(store_->meta()->super().format_version, Superblock::kFormatVersion)
      << "the superblock must say that older builds cannot read what this one writes";
  // Allocated bytes from the extents; the bytes unchanged.
  EXPECT_EQ(fs_->GetAttr(f)->allocated_bytes, head.size() + tail.size());
  std::string want = head + std::string((1 << 20) - head.size(), '\0') + tail;
  EXPECT_TRUE(ReadAll(f) == want);
  // No parent recorded: a directory not reached by a lookup answers itself, as before; one
  // looked up knows its parent, and keeps it once its record is written again.
  EXPECT_EQ(DotDot(b), b);
  ASSERT_TRUE(fs_->Lookup(kRootIno, "a").ok());
  ASSERT_TRUE(fs_->Lookup(a, "b").ok());
  EXPECT_EQ(DotDot(a), kRootIno);
  EXPECT_EQ(DotDot(b), a);
  MkDir(b, "c");  // writes b's record
  Reopen();
  EXPECT_EQ(DotDot(b), a);
  EXPECT_EQ(DotDot(kRootIno), kRootIno);
}

}  // namespace
}  // namespace rankfs
