// FsCore semantics that users compare with ext4: `..` names the parent directory, and chown
// clears setuid/setgid of every non-directory.
#include <fcntl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "fs/fs_core.h"
#include "tests/testutil/fs_core_fixture.h"

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

}  // namespace
}  // namespace rankfs
