// The free-space reserve (FsOptions::reserve_bytes, mount option reserve=): below it the calls
// that consume space (create, mkdir, symlink, link, write, setxattr) fail with ENOSPC while the
// calls that free space or change nothing of size (unlink, rmdir, rename, truncate, fsync,
// release, reads) keep working, and StatFs does not count the reserve as available. A reserve
// larger than any disk stands in for a full one; 0 turns the reserve off.
#include <fcntl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "fs/fs_core.h"
#include "fs/mount_options.h"
#include "store/store.h"
#include "tests/testutil/temp_dir.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

std::unique_ptr<FsCore> NewCore(Store* store, uint64_t reserve) {
  FsOptions o;
  o.reserve_bytes = reserve;
  auto core = FsCore::Create(store, o);
  EXPECT_TRUE(core.ok()) << core.status().ToString();
  return core.ok() ? std::move(core).value() : nullptr;
}

TEST(SpaceReserveTest, BelowTheReserveGrowingFailsAndFreeingWorks) {
  TempDir tmp;
  auto store = Store::Open(tmp.Join("store"), StoreOptions{});
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const Caller c{0, 0, 1};
  const std::string data = MakeRandomData(256 << 10, 3);
  Ino file = 0;
  {  // Without a reserve: make a file with data and a directory.
    auto core = NewCore(store->get(), 0);
    ASSERT_NE(core, nullptr);
    auto f = core->Create(kRootIno, "f", S_IFREG | 0644, O_RDWR, c);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    file = f->ino;
    ASSERT_TRUE(core->Write(file, 0, data).ok());
    ASSERT_TRUE(core->Fsync(file, false).ok());
    ASSERT_TRUE(core->Release(file).ok());
    ASSERT_TRUE(core->MkDir(kRootIno, "d", 0755, c).ok());
    ASSERT_TRUE(core->Shutdown().ok());
  }
  // A reserve no disk can satisfy: the disk is "full".
  auto core = NewCore(store->get(), uint64_t{1} << 62);
  ASSERT_NE(core, nullptr);
  ASSERT_TRUE(core->Lookup(kRootIno, "f").ok());
  ASSERT_TRUE(core->Lookup(kRootIno, "d").ok());
  EXPECT_EQ(core->Create(kRootIno, "g", S_IFREG | 0644, O_RDWR, c).status().code(), ENOSPC);
  EXPECT_EQ(core->MkDir(kRootIno, "e", 0755, c).status().code(), ENOSPC);
  EXPECT_EQ(core->Symlink(kRootIno, "s", "f", c).status().code(), ENOSPC);
  EXPECT_EQ(core->Link(file, kRootIno, "f2").status().code(), ENOSPC);
  EXPECT_EQ(core->SetXattr(file, "user.x", "v", 0).code(), ENOSPC);
  ASSERT_TRUE(core->Open(file, O_RDWR).ok());
  EXPECT_EQ(core->Write(file, 0, "new bytes").code(), ENOSPC);
  // Reads, fsync, truncation, rename and deletion keep working.
  std::string back(data.size(), '\0');
  auto n = core->Read(file, 0, back.size(), back.data());
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(back == data);
  EXPECT_TRUE(core->Fsync(file, false).ok());
  SetAttrRequest shrink;
  shrink.set_size = true;
  shrink.size = 1000;
  EXPECT_TRUE(core->SetAttr(file, shrink).ok());
  EXPECT_TRUE(core->Rename(kRootIno, "f", kRootIno, "renamed", 0).ok());
  EXPECT_TRUE(core->Release(file).ok());
  EXPECT_TRUE(core->Unlink(kRootIno, "renamed").ok());
  EXPECT_TRUE(core->RmDir(kRootIno, "d").ok());
  // df shows none of the reserve as available.
  auto sf = core->StatFs();
  ASSERT_TRUE(sf.ok());
  EXPECT_EQ(sf->avail_bytes, 0u);
  EXPECT_GT(sf->total_bytes, 0u);
  ASSERT_TRUE(core->Shutdown().ok());
}

TEST(SpaceReserveTest, AutomaticReserveIsSubtractedFromStatFs) {
  TempDir tmp;
  auto store = Store::Open(tmp.Join("store"), StoreOptions{});
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto off = NewCore(store->get(), 0);
  ASSERT_NE(off, nullptr);
  auto raw = off->StatFs();
  ASSERT_TRUE(raw.ok());
  ASSERT_TRUE(off->Shutdown().ok());
  off.reset();
  auto core = NewCore(store->get(), FsOptions::kAutoReserve);
  ASSERT_NE(core, nullptr);
  auto shown = core->StatFs();
  ASSERT_TRUE(shown.ok());
  const uint64_t total = raw->total_bytes;
  const uint64_t reserve = std::min(std::max<uint64_t>(total / 100, 64ull << 20), total / 4);
  // Other processes write to this disk too: allow some drift between the two statfs calls.
  const uint64_t expect = raw->avail_bytes > reserve ? raw->avail_bytes - reserve : 0;
  const uint64_t drift = 64ull << 20;
  EXPECT_LE(shown->avail_bytes, expect + drift);
  EXPECT_GE(shown->avail_bytes + drift, expect);
  EXPECT_EQ(shown->total_bytes, total);
  ASSERT_TRUE(core->Shutdown().ok());
}

TEST(SpaceReserveTest, MountOptionParses) {
  MountConfig cfg;
  EXPECT_EQ(cfg.fs.reserve_bytes, FsOptions::kAutoReserve);
  ASSERT_TRUE(ParseMountOptions("reserve=24M", &cfg).ok());
  EXPECT_EQ(cfg.fs.reserve_bytes, 24ull << 20);
  ASSERT_TRUE(ParseMountOptions("reserve=0", &cfg).ok());
  EXPECT_EQ(cfg.fs.reserve_bytes, 0u);
  EXPECT_FALSE(ParseMountOptions("reserve=lots", &cfg).ok());
  EXPECT_FALSE(ParseMountOptions("reserve", &cfg).ok());
}

}  // namespace
}  // namespace rankfs
