// Dedup scope (mount option dedup=global|per-uid): under per-uid, files of different owners
// never share a chunk (so no user can learn through timing or space that another already
// stored some content); under global they do. The scope is fixed in the superblock at store
// creation, chunk records carry their scope uid, and fsck verifies scoped addresses.
#include <fcntl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "fs/fs_core.h"
#include "fs/mount_options.h"
#include "store/fsck.h"
#include "store/meta_codec.h"
#include "store/store.h"
#include "tests/testutil/temp_dir.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

constexpr size_t kFileBytes = 1 << 20;

// Opens a store, writes the same 1 MiB into one file owned by uid 1000 and one by uid 2000,
// closes it, and returns the number of distinct chunks stored.
uint64_t ChunksAfterTwoOwnersWriteTheSame(const std::string& dir,
                                          std::optional<DedupScope> scope) {
  StoreOptions so;
  so.dedup_scope = scope;
  auto store = Store::Open(dir, so);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  if (!store.ok()) return 0;
  uint64_t chunks = 0;
  {
    auto core = FsCore::Create(store->get(), FsOptions{});
    EXPECT_TRUE(core.ok()) << core.status().ToString();
    if (!core.ok()) return 0;
    const std::string data = MakeRandomData(kFileBytes, 42);
    for (uint32_t uid : {1000u, 2000u}) {
      Caller c{uid, uid, 1};
      auto f = (*core)->Create(kRootIno, "f" + std::to_string(uid), S_IFREG | 0600, O_RDWR, c);
      EXPECT_TRUE(f.ok()) << f.status().ToString();
      if (!f.ok()) return 0;
      EXPECT_EQ(f->uid, uid);
      EXPECT_TRUE((*core)->Write(f->ino, 0, data).ok());
      EXPECT_TRUE((*core)->Fsync(f->ino, false).ok());
      EXPECT_TRUE((*core)->Release(f->ino).ok());
      std::string back(kFileBytes, '\0');
      auto n = (*core)->Read(f->ino, 0, back.size(), back.data());
      EXPECT_TRUE(n.ok() && *n == kFileBytes);
      EXPECT_TRUE(back == data) << "uid " << uid << " reads other bytes than it wrote";
    }
    chunks = (*store)->chunks()->GetStats().chunks;
    EXPECT_TRUE((*core)->Shutdown().ok());
  }
  EXPECT_TRUE((*store)->Close().ok());
  return chunks;
}

TEST(DedupScopeTest, ScopedHashDiffersPerUidAndFromTheGlobalOne) {
  const std::string data = "same bytes";
  EXPECT_NE(ChunkHash::OfScoped(1, data), ChunkHash::OfScoped(2, data));
  EXPECT_NE(ChunkHash::OfScoped(1, data), ChunkHash::Of(data));
  // uid 0x04030201, little-endian, then the data.
  EXPECT_EQ(ChunkHash::OfScoped(0x04030201, data), ChunkHash::Of("\x01\x02\x03\x04" + data));
  EXPECT_EQ(ChunkHash::ForScope(std::nullopt, data), ChunkHash::Of(data));
  EXPECT_EQ(ChunkHash::ForScope(7u, data), ChunkHash::OfScoped(7, data));
}

TEST(DedupScopeTest, GlobalStoresOneCopyPerUidStoresTwo) {
  TempDir tmp;
  uint64_t global = ChunksAfterTwoOwnersWriteTheSame(tmp.Join("global"), std::nullopt);
  uint64_t per_uid = ChunksAfterTwoOwnersWriteTheSame(tmp.Join("peruid"), DedupScope::kPerUid);
  ASSERT_GT(global, 0u);
  EXPECT_EQ(per_uid, 2 * global);

  // fsck verifies the scoped addresses (a plain SHA-256 check would call every chunk damaged).
  for (const char* name : {"global", "peruid"}) {
    auto report = Fsck(tmp.Join(name), FsckOptions{});
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_EQ(report->ExitCode(), 0) << name;
    EXPECT_EQ(report->chunks, std::string(name) == "global" ? global : per_uid);
  }
}

// A chunk's scope is the owner's uid when its address was computed, and its record must say
// the same: a chown between the cut of a stream's chunks and their submission used to store
// them as the new owner's under addresses computed for the old one, which Verify and fsck
// report as damage.
TEST(DedupScopeTest, AChownWhileTheStreamHoldsCutChunksStoresThemAsTheyWereHashed) {
  TempDir tmp;
  const std::string dir = tmp.Join("s");
  const std::string data = MakeRealData(6 << 20, 43);
  std::vector<ChunkHash> chunks;
  {
    StoreOptions so;
    so.dedup_scope = DedupScope::kPerUid;
    auto store = Store::Open(dir, so);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto core = FsCore::Create(store->get(), FsOptions{});  // batches of 4 MiB
    ASSERT_TRUE(core.ok()) << core.status().ToString();
    auto f = (*core)->Create(kRootIno, "f", S_IFREG | 0644, O_RDWR, Caller{1000, 1000, 1});
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    const size_t half = 2 << 20;  // cut into chunks, not yet a batch
    for (size_t off = 0; off < data.size(); off += 8192) {
      if (off == half) {
        SetAttrRequest r;
        r.set_uid = r.set_gid = true;
        r.uid = r.gid = 2000;
        ASSERT_TRUE((*core)->SetAttr(f->ino, r).ok());
      }
      ASSERT_TRUE((*core)->Write(f->ino, off, std::string_view(data).substr(off, 8192)).ok());
    }
    ASSERT_TRUE((*core)->Release(f->ino).ok());
    ASSERT_TRUE((*core)->DrainBackground().ok());
    Status listed =
        (*store)->meta()->ListExtents(f->ino, 0, UINT64_MAX, [&](uint64_t, const Extent& e) {
          chunks.push_back(e.chunk);
          return true;
        });
    ASSERT_TRUE(listed.ok()) << listed.ToString();
    ASSERT_GT(chunks.size(), 10u);
    for (const ChunkHash& h : chunks) {
      Status st = (*store)->chunks()->Verify(h);
      EXPECT_TRUE(st.ok()) << st.ToString();
    }
    std::string back(data.size(), '\0');
    auto n = (*core)->Read(f->ino, 0, back.size(), back.data());
    ASSERT_TRUE(n.ok() && *n == data.size());
    EXPECT_TRUE(back == data);
    ASSERT_TRUE((*core)->Shutdown().ok());
    ASSERT_TRUE((*store)->Close().ok());
  }
  auto report = Fsck(dir, FsckOptions{});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->ExitCode(), 0);
}

TEST(DedupScopeTest, ScopeIsFixedAtCreationAndRecorded) {
  TempDir tmp;
  const std::string dir = tmp.Join("s");
  {
    StoreOptions so;
    so.dedup_scope = DedupScope::kPerUid;
    auto store = Store::Open(dir, so);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    EXPECT_EQ((*store)->super().dedup_scope, DedupScope::kPerUid);
  }
  {  // no option: keeps per-uid
    auto store = Store::Open(dir, StoreOptions{});
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    EXPECT_EQ((*store)->super().dedup_scope, DedupScope::kPerUid);
  }
  {  // asking for global on a per-uid store is refused, naming both
    StoreOptions so;
    so.dedup_scope = DedupScope::kGlobal;
    auto store = Store::Open(dir, so);
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), EINVAL);
    EXPECT_NE(store.status().message().find("dedup=per-uid"), std::string::npos)
        << store.status().message();
  }
}

TEST(DedupScopeTest, EncodingsKeepOldValuesReadable) {
  // A global superblock stays a version-1 value (older rankfs versions still open it); a
  // per-uid one is version 2 and round-trips.
  Superblock sb;
  EXPECT_EQ(EncodeSuperblock(sb)[0], 1);
  sb.dedup_scope = DedupScope::kPerUid;
  std::string v = EncodeSuperblock(sb);
  EXPECT_EQ(v[0], 2);
  auto back = DecodeSuperblock(v);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, sb);
  v.back() = 9;  // unknown scope
  EXPECT_FALSE(DecodeSuperblock(v).ok());

  ChunkRecord r;
  r.location.pack_id = 3;
  r.location.record_length = 100;
  r.location.stored_length = 44;
  r.location.raw_length = 44;
  r.refcount = 2;
  EXPECT_EQ(EncodeChunkRecord(r)[0], 1);
  r.scope_uid = 65534;
  std::string cv = EncodeChunkRecord(r);
  EXPECT_EQ(cv[0], 2);
  auto cr = DecodeChunkRecord(cv);
  ASSERT_TRUE(cr.ok()) << cr.status().ToString();
  EXPECT_EQ(*cr, r);
  EXPECT_FALSE(DecodeChunkRecord(cv.substr(0, cv.size() - 1)).ok());
}

TEST(DedupScopeTest, MountOptionParses) {
  MountConfig cfg;
  ASSERT_TRUE(ParseMountOptions("dedup=per-uid", &cfg).ok());
  EXPECT_EQ(cfg.store.dedup_scope, DedupScope::kPerUid);
  ASSERT_TRUE(ParseMountOptions("dedup=global", &cfg).ok());
  EXPECT_EQ(cfg.store.dedup_scope, DedupScope::kGlobal);
  EXPECT_EQ(ParseMountOptions("dedup=user", &cfg).code(), EINVAL);
  EXPECT_EQ(ParseMountOptions("dedup", &cfg).code(), EINVAL);
}

}  // namespace
}  // namespace rankfs
