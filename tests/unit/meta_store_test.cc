// Tests of MetaStore (store/meta_store.h) on a real RocksDB in a temporary directory.
#include "store/meta_store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "store/fault_injection_env.h"
#include "store/meta_codec.h"
#include "store/rocks_fault_env.h"
#include "tests/testutil/temp_dir.h"

namespace rankfs {
namespace {

ChunkHash HashOf(uint64_t seed) {
  ChunkHash h;
  for (size_t i = 0; i < h.bytes.size(); ++i) h.bytes[i] = uint8_t(seed >> (8 * (i % 8)));
  return h;
}

InodeAttr FileInode(Ino ino, uint64_t size = 0) {
  InodeAttr a;
  a.ino = ino;
  a.mode = 0100644;
  a.nlink = 1;
  a.size = size;
  a.mtime_ns = int64_t(ino) * 1000;
  return a;
}

Extent ExtentOf(uint64_t length, uint64_t seed = 1) {
  return Extent{.length = length, .chunk = HashOf(seed), .chunk_offset = 0};
}

class MetaStoreTest : public ::testing::Test {
 protected:
  std::string dir() const { return tmp_.Join("meta"); }

  std::unique_ptr<MetaStore> OpenStore(const Superblock& sb = Superblock{},
                                       rocksdb::Env* env = nullptr) {
    MetaStoreOptions opt;
    opt.rocks_env = env;
    opt.block_cache_bytes = 8 << 20;
    opt.write_buffer_bytes = 4 << 20;
    Result<std::unique_ptr<MetaStore>> r = MetaStore::Open(dir(), opt, sb);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }

  void Put(MetaStore* store, MetaStore::Batch& b, bool sync = false) {
    Status st = store->Write(b, sync);
    ASSERT_TRUE(st.ok()) << st.ToString();
    b.Clear();
  }

  // The extents ListExtents reports for [from, to), as (offset, length) pairs.
  std::vector<std::pair<uint64_t, uint64_t>> Extents(MetaStore* store, Ino ino, uint64_t from,
                                                     uint64_t to) {
    std::vector<std::pair<uint64_t, uint64_t>> out;
    Status st = store->ListExtents(ino, from, to, [&](uint64_t off, const Extent& e) {
      out.emplace_back(off, e.length);
      return true;
    });
    EXPECT_TRUE(st.ok()) << st.ToString();
    return out;
  }

  TempDir tmp_{"rankfs-meta-"};
};

TEST_F(MetaStoreTest, CreateThenReopenKeepsTheSuperblock) {
  Superblock sb;
  sb.uuid[0] = 0xab;
  sb.chunker = {.min_size = 4096, .avg_size = 16384, .max_size = 65536};
  sb.created_ns = 12345;
  {
    auto store = OpenStore(sb);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->super(), sb);
    EXPECT_TRUE(store->Close().ok());
    EXPECT_TRUE(store->Close().ok());  // idempotent
  }
  Superblock other;  // ignored: the store already has one
  other.created_ns = 999;
  auto store = OpenStore(other);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->super(), sb);
}

TEST_F(MetaStoreTest, OpenWithoutCreateFailsOnMissingStore) {
  MetaStoreOptions opt;
  opt.create_if_missing = false;
  Result<std::unique_ptr<MetaStore>> r = MetaStore::Open(dir(), opt, Superblock{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ENOENT) << r.status().ToString();
}

TEST_F(MetaStoreTest, InvalidInitialSuperblockIsRefused) {
  Superblock sb;
  sb.format_version = Superblock::kFormatVersion + 1;
  Result<std::unique_ptr<MetaStore>> r = MetaStore::Open(dir(), MetaStoreOptions{}, sb);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), EINVAL) << r.status().ToString();
}

TEST_F(MetaStoreTest, NewerFormatVersionIsRefusedWithAClearMessage) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    Superblock newer;
    newer.format_version = Superblock::kFormatVersion + 1;
    MetaStore::Batch b;
    b.PutSuper(newer);
    Put(store.get(), b, /*sync=*/true);
  }
  // A newer rankfs may also have added column families; they must not hide the reason.
  {
    rocksdb::Options o;
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const char* n :
         {"default", "inodes", "dirents", "extents", "chunks", "xattrs", "orphans", "packs"}) {
      cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    ASSERT_TRUE(rocksdb::DB::Open(o, dir(), cfs, &handles, &raw).ok());
    rocksdb::ColumnFamilyHandle* extra = nullptr;
    ASSERT_TRUE(raw->CreateColumnFamily(rocksdb::ColumnFamilyOptions(), "future", &extra).ok());
    handles.push_back(extra);
    for (auto* h : handles) ASSERT_TRUE(raw->DestroyColumnFamilyHandle(h).ok());
    delete raw;
  }
  Result<std::unique_ptr<MetaStore>> r = MetaStore::Open(dir(), MetaStoreOptions{}, Superblock{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ENOTSUP) << r.status().ToString();
  const std::string expected =
      "store format version " + std::to_string(Superblock::kFormatVersion + 1) +
      " is newer than this rankfs (reads up to " + std::to_string(Superblock::kFormatVersion) + ")";
  EXPECT_NE(r.status().message().find(expected), std::string::npos) << r.status().ToString();
}

TEST_F(MetaStoreTest, BatchIsAppliedAsAWhole) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MetaStore::Batch b, more;
  b.PutInode(FileInode(2, 100));
  b.PutDirent(kRootIno, "f", {.ino = 2, .type = 8});
  more.PutExtent(2, 0, ExtentOf(100));
  more.PutChunk(HashOf(1), ChunkRecord{.location = {.pack_id = 1}, .refcount = 1});
  more.PutXattr(2, "user.a", std::string("v\0w", 3));
  more.PutOrphan(2);
  more.PutPack(1, {.live_bytes = 100});
  b.Append(more);
  EXPECT_EQ(b.Count(), 7u);
  Put(store.get(), b);

  auto inode = store->GetInode(2);
  ASSERT_TRUE(inode.ok() && inode->has_value());
  EXPECT_EQ(**inode, FileInode(2, 100));
  auto de = store->GetDirent(kRootIno, "f");
  ASSERT_TRUE(de.ok() && de->has_value());
  EXPECT_EQ((*de)->ino, 2u);
  EXPECT_EQ(Extents(store.get(), 2, 0, 100),
            (std::vector<std::pair<uint64_t, uint64_t>>{{0, 100}}));
  auto chunk = store->GetChunk(HashOf(1));
  ASSERT_TRUE(chunk.ok() && chunk->has_value());
  EXPECT_EQ((*chunk)->refcount, 1u);
  auto x = store->GetXattr(2, "user.a");
  ASSERT_TRUE(x.ok() && x->has_value());
  EXPECT_EQ(**x, std::string("v\0w", 3));
  auto pack = store->GetPack(1);
  ASSERT_TRUE(pack.ok() && pack->has_value());
  EXPECT_EQ((*pack)->live_bytes, 100u);

  // Missing records are "not found", not errors.
  EXPECT_FALSE(store->GetInode(3)->has_value());
  EXPECT_FALSE(store->GetDirent(kRootIno, "g")->has_value());
  EXPECT_FALSE(store->GetChunk(HashOf(2))->has_value());
  EXPECT_FALSE(store->GetXattr(2, "user.b")->has_value());
  EXPECT_FALSE(store->GetPack(2)->has_value());

  // A later batch sees the earlier one and overwrites in order: last write wins.
  b.PutInode(FileInode(2, 1));
  b.PutInode(FileInode(2, 2));
  b.Append(b);  // self-append doubles the batch
  EXPECT_EQ(b.Count(), 4u);
  Put(store.get(), b);
  EXPECT_EQ((*store->GetInode(2))->size, 2u);
}

TEST_F(MetaStoreTest, DeletesRemoveRecords) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MetaStore::Batch b;
  b.PutInode(FileInode(2));
  b.PutDirent(kRootIno, "f", {.ino = 2, .type = 8});
  b.PutExtent(2, 0, ExtentOf(10));
  b.PutChunk(HashOf(1), ChunkRecord{});
  b.PutXattr(2, "user.a", "v");
  b.PutOrphan(2);
  b.PutPack(1, {});
  Put(store.get(), b);
  b.DeleteInode(2);
  b.DeleteDirent(kRootIno, "f");
  b.DeleteExtent(2, 0);
  b.DeleteChunk(HashOf(1));
  b.DeleteXattr(2, "user.a");
  b.DeleteOrphan(2);
  b.DeletePack(1);
  Put(store.get(), b);
  EXPECT_FALSE(store->GetInode(2)->has_value());
  EXPECT_FALSE(store->GetDirent(kRootIno, "f")->has_value());
  EXPECT_TRUE(Extents(store.get(), 2, 0, UINT64_MAX).empty());
  EXPECT_FALSE(store->GetChunk(HashOf(1))->has_value());
  EXPECT_FALSE(store->GetXattr(2, "user.a")->has_value());
  EXPECT_FALSE(store->GetPack(1)->has_value());
  int orphans = 0;
  EXPECT_TRUE(store->ForEachOrphan([&](Ino) { return ++orphans, true; }).ok());
  EXPECT_EQ(orphans, 0);
  EXPECT_TRUE(store->DirIsEmpty(kRootIno));
}

TEST_F(MetaStoreTest, ListDirIsOrderedAndPaginates) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MetaStore::Batch b;
  const std::vector<std::string> names = {"a", "ab", "b", "tmp123", std::string(255, 'z')};
  // Neighbouring directories must not leak into the listing.
  b.PutDirent(kRootIno, "other", {.ino = 9, .type = 4});
  b.PutDirent(3, "next", {.ino = 10, .type = 8});
  for (size_t i = names.size(); i-- > 0;) b.PutDirent(2, names[i], {.ino = 100 + i, .type = 8});
  Put(store.get(), b);

  std::vector<std::string> all;
  ASSERT_TRUE(store
                  ->ListDir(2, "",
                            [&](std::string_view n, const DirEntry& e) {
                              EXPECT_EQ(e.ino, 100 + all.size());
                              all.emplace_back(n);
                              return true;
                            })
                  .ok());
  EXPECT_EQ(all, names);

  // Two at a time, resuming after the last name seen (as readdir does with its offset).
  std::vector<std::string> paged;
  std::string after;
  for (int round = 0; round < 10; ++round) {
    int got = 0;
    ASSERT_TRUE(store
                    ->ListDir(2, after,
                              [&](std::string_view n, const DirEntry&) {
                                paged.emplace_back(n);
                                after = n;
                                return ++got < 2;
                              })
                    .ok());
    if (got == 0) break;
  }
  EXPECT_EQ(paged, names);

  // start_after need not be an existing name.
  std::vector<std::string> tail;
  ASSERT_TRUE(store
                  ->ListDir(2, "aa",
                            [&](std::string_view n, const DirEntry&) {
                              tail.emplace_back(n);
                              return true;
                            })
                  .ok());
  EXPECT_EQ(tail, std::vector<std::string>(names.begin() + 1, names.end()));

  EXPECT_FALSE(store->DirIsEmpty(2));
  EXPECT_TRUE(store->DirIsEmpty(4));
  Result<bool> empty = store->CheckDirEmpty(3);
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(*empty);
}

TEST_F(MetaStoreTest, ListExtentsReturnsOverlappingExtents) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MetaStore::Batch b;
  // ino 5: [0,100) [100,200) hole [300,400) [1000,1001); neighbours ino 4 and 6.
  b.PutExtent(4, 5000, ExtentOf(10000));
  b.PutExtent(5, 0, ExtentOf(100));
  b.PutExtent(5, 100, ExtentOf(100));
  b.PutExtent(5, 300, ExtentOf(100));
  b.PutExtent(5, 1000, ExtentOf(1));
  b.PutExtent(6, 0, ExtentOf(100));
  Put(store.get(), b);
  using V = std::vector<std::pair<uint64_t, uint64_t>>;
  MetaStore* s = store.get();

  EXPECT_EQ(Extents(s, 5, 0, UINT64_MAX), (V{{0, 100}, {100, 100}, {300, 100}, {1000, 1}}));
  // An extent starting before `from` that reaches into the range is included.
  EXPECT_EQ(Extents(s, 5, 150, 160), (V{{100, 100}}));
  EXPECT_EQ(Extents(s, 5, 199, 301), (V{{100, 100}, {300, 100}}));
  // One that ends exactly at `from` is not; one that starts exactly at `to` is not.
  EXPECT_EQ(Extents(s, 5, 200, 300), V{});
  EXPECT_EQ(Extents(s, 5, 100, 300), (V{{100, 100}}));
  EXPECT_EQ(Extents(s, 5, 50, 100), (V{{0, 100}}));
  EXPECT_EQ(Extents(s, 5, 400, 1000), V{});
  EXPECT_EQ(Extents(s, 5, 400, 1001), (V{{1000, 1}}));
  // A range inside a hole, past the end, empty or inverted.
  EXPECT_EQ(Extents(s, 5, 250, 260), V{});
  EXPECT_EQ(Extents(s, 5, 1001, UINT64_MAX), V{});
  EXPECT_EQ(Extents(s, 5, 10, 10), V{});
  EXPECT_EQ(Extents(s, 5, 20, 10), V{});
  // No extents of a neighbour: ino 4's long extent does not reach into ino 5.
  EXPECT_EQ(Extents(s, 3, 0, UINT64_MAX), V{});
  EXPECT_EQ(Extents(s, 7, 0, UINT64_MAX), V{});
  EXPECT_EQ(Extents(s, 6, 50, 60), (V{{0, 100}}));

  // Early stop.
  int calls = 0;
  ASSERT_TRUE(
      s->ListExtents(5, 0, UINT64_MAX, [&](uint64_t, const Extent&) { return ++calls < 2; }).ok());
  EXPECT_EQ(calls, 2);
}

TEST_F(MetaStoreTest, MaxIno) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  Result<Ino> max = store->MaxIno();
  ASSERT_TRUE(max.ok());
  EXPECT_EQ(*max, 0u);
  MetaStore::Batch b;
  b.PutInode(FileInode(kRootIno));
  Put(store.get(), b);
  EXPECT_EQ(*store->MaxIno(), kRootIno);
  b.PutInode(FileInode(255));
  b.PutInode(FileInode(256));
  b.PutInode(FileInode(17));
  Put(store.get(), b);
  EXPECT_EQ(*store->MaxIno(), 256u);
  b.DeleteInode(256);
  Put(store.get(), b);
  EXPECT_EQ(*store->MaxIno(), 255u);
}

TEST_F(MetaStoreTest, ForEachVisitsEverythingInKeyOrder) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MetaStore::Batch b;
  std::map<Ino, bool> inodes;
  for (Ino i = 1; i <= 300; ++i) {
    b.PutInode(FileInode(i));
    b.PutExtent(i, 0, ExtentOf(i));
    b.PutExtent(i, 4096, ExtentOf(1));
    if (i % 3 == 0) b.PutOrphan(i);
    if (i % 10 == 0) b.PutPack(uint32_t(i), {.live_bytes = i});
    b.PutChunk(HashOf(i), ChunkRecord{.location = {}, .refcount = i});
    b.PutXattr(7, "user.k" + std::to_string(i), "v");
  }
  Put(store.get(), b);

  Ino last = 0;
  int n = 0;
  ASSERT_TRUE(store
                  ->ForEachInode([&](const InodeAttr& a) {
                    EXPECT_GT(a.ino, last);
                    last = a.ino;
                    return ++n, true;
                  })
                  .ok());
  EXPECT_EQ(n, 300);
  n = 0;
  std::pair<Ino, uint64_t> prev{0, 0};
  ASSERT_TRUE(store
                  ->ForEachExtent([&](Ino ino, uint64_t off, const Extent&) {
                    EXPECT_LT(prev, std::make_pair(ino, off));
                    prev = {ino, off};
                    return ++n, true;
                  })
                  .ok());
  EXPECT_EQ(n, 600);
  n = 0;
  uint64_t refs = 0;
  ASSERT_TRUE(store
                  ->ForEachChunk([&](const ChunkHash&, const ChunkRecord& r) {
                    refs += r.refcount;
                    return ++n, true;
                  })
                  .ok());
  EXPECT_EQ(n, 300);
  EXPECT_EQ(refs, 300u * 301 / 2);
  n = 0;
  ASSERT_TRUE(store
                  ->ForEachOrphan([&](Ino ino) {
                    EXPECT_EQ(ino % 3, 0u);
                    return ++n, true;
                  })
                  .ok());
  EXPECT_EQ(n, 100);
  n = 0;
  ASSERT_TRUE(store
                  ->ForEachPack([&](uint32_t id, const PackStats& s) {
                    EXPECT_EQ(s.live_bytes, id);
                    return ++n, true;
                  })
                  .ok());
  EXPECT_EQ(n, 30);
  n = 0;
  ASSERT_TRUE(store
                  ->ListXattrs(7,
                               [&](std::string_view name) {
                                 EXPECT_EQ(name.substr(0, 6), "user.k");
                                 return ++n, true;
                               })
                  .ok());
  EXPECT_EQ(n, 300);
  n = 0;
  ASSERT_TRUE(store->ListXattrs(8, [&](std::string_view) { return ++n, true; }).ok());
  EXPECT_EQ(n, 0);
  // Early stop.
  n = 0;
  ASSERT_TRUE(store->ForEachInode([&](const InodeAttr&) { return ++n < 5; }).ok());
  EXPECT_EQ(n, 5);
}

TEST_F(MetaStoreTest, WritesSurviveReopen) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    MetaStore::Batch b;
    b.PutInode(FileInode(2, 7));
    Put(store.get(), b, /*sync=*/true);
    b.PutInode(FileInode(3, 8));
    Put(store.get(), b, /*sync=*/false);
    ASSERT_TRUE(store->SyncWal().ok());
    MetaStore::Batch empty;
    ASSERT_TRUE(store->Write(empty, /*sync=*/true).ok());
    ASSERT_TRUE(store->Write(empty, /*sync=*/false).ok());
  }
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ((*store->GetInode(2))->size, 7u);
  EXPECT_EQ((*store->GetInode(3))->size, 8u);
  EXPECT_EQ(*store->MaxIno(), 3u);
}

// A power cut (unsynced file data dropped, no clean close) keeps every write made durable by
// sync=true or by a later SyncWal(), and recovers to a prefix of the write sequence.
TEST_F(MetaStoreTest, SyncedWritesSurviveAPowerCut) {
  auto controller = std::make_shared<FaultController>();
  RocksFaultEnv fault_env(controller);
  {
    auto store = OpenStore(Superblock{}, fault_env.env());
    ASSERT_NE(store, nullptr);
    MetaStore::Batch b;
    b.PutInode(FileInode(2, 1));
    Put(store.get(), b, /*sync=*/true);
    b.PutInode(FileInode(3, 1));
    Put(store.get(), b);
    b.PutInode(FileInode(4, 1));
    Put(store.get(), b);
    ASSERT_TRUE(store->SyncWal().ok());
    b.PutInode(FileInode(5, 1));
    b.PutDirent(kRootIno, "five", {.ino = 5, .type = 8});
    Put(store.get(), b);  // never synced
    // The power goes: from now on nothing reaches the disk, so the destructor's flush fails.
    controller->SetActive(false);
  }
  ASSERT_TRUE(fault_env.DropUnsyncedData().ok());
  controller->SetActive(true);

  auto store = OpenStore(Superblock{}, fault_env.env());
  ASSERT_NE(store, nullptr);
  for (Ino ino : {2, 3, 4}) {
    auto a = store->GetInode(ino);
    ASSERT_TRUE(a.ok() && a->has_value()) << "inode " << ino << " lost";
  }
  // The unsynced batch is lost as a whole: neither half of it is visible.
  EXPECT_FALSE(store->GetInode(5)->has_value());
  EXPECT_FALSE(store->GetDirent(kRootIno, "five")->has_value());
}

TEST_F(MetaStoreTest, FullDiskIsReportedAsEnospc) {
  auto controller = std::make_shared<FaultController>();
  RocksFaultEnv fault_env(controller);
  auto store = OpenStore(Superblock{}, fault_env.env());
  ASSERT_NE(store, nullptr);
  controller->FailAfter(kFaultWrite, 0, ENOSPC, ".log");  // the WAL
  MetaStore::Batch b;
  b.PutInode(FileInode(2));
  Status st = store->Write(b, /*sync=*/false);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), ENOSPC) << st.ToString();
  EXPECT_NE(st.message().find("metadata store"), std::string::npos) << st.ToString();
  controller->ClearFaults();
}

TEST_F(MetaStoreTest, SecondOpenOfTheSameStoreFails) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  Result<std::unique_ptr<MetaStore>> again = MetaStore::Open(dir(), MetaStoreOptions{}, {});
  EXPECT_FALSE(again.ok());
}

TEST_F(MetaStoreTest, CorruptValueIsReportedNotServed) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  // An inode record stored under another inode's key.
  MetaStore::Batch b;
  b.PutInode(FileInode(2));
  Put(store.get(), b);
  store.reset();
  {
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const char* n :
         {"default", "inodes", "dirents", "extents", "chunks", "xattrs", "orphans", "packs"}) {
      cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir(), cfs, &handles, &raw).ok());
    ASSERT_TRUE(raw->Put({}, handles[1], InodeKey(3), EncodeInodeAttr(FileInode(4))).ok());
    ASSERT_TRUE(raw->Put({}, handles[2], DirentKey(1, "x"), "\x01short").ok());
    for (auto* h : handles) ASSERT_TRUE(raw->DestroyColumnFamilyHandle(h).ok());
    delete raw;
  }
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto bad = store->GetInode(3);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), EUCLEAN);
  auto bad_de = store->GetDirent(1, "x");
  ASSERT_FALSE(bad_de.ok());
  EXPECT_EQ(bad_de.status().code(), EUCLEAN);
  EXPECT_NE(bad_de.status().message().find("dirent 1/\"x\""), std::string::npos)
      << bad_de.status().ToString();
  Status st = store->ForEachInode([](const InodeAttr&) { return true; });
  EXPECT_EQ(st.code(), EUCLEAN) << st.ToString();
  st = store->ListDir(1, "", [](std::string_view, const DirEntry&) { return true; });
  EXPECT_EQ(st.code(), EUCLEAN) << st.ToString();
}

// Frame extents (store format 3) have a codec but no reader yet: every reader of extents takes
// `chunk` as the backing chunk, so the store must refuse one rather than hand it out.
TEST_F(MetaStoreTest, FrameExtentIsRefusedNotServed) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MetaStore::Batch b;
  b.PutExtent(2, 0, Extent{.length = 10, .chunk = ChunkHash::Of("a")});
  b.PutExtent(2, 4096, Extent::Frame(10, 77, 5));
  Put(store.get(), b);

  int seen = 0;
  Status st = store->ListExtents(2, 0, 8192, [&](uint64_t, const Extent& e) {
    EXPECT_EQ(e.kind(), Extent::Kind::kChunk);
    ++seen;
    return true;
  });
  EXPECT_EQ(st.code(), EUCLEAN) << st.ToString();
  EXPECT_NE(st.message().find("frame 77"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("extent 2@4096"), std::string::npos) << st.ToString();
  EXPECT_EQ(seen, 1);

  seen = 0;
  st = store->ForEachExtent([&](Ino, uint64_t, const Extent& e) {
    EXPECT_EQ(e.kind(), Extent::Kind::kChunk);
    ++seen;
    return true;
  });
  EXPECT_EQ(st.code(), EUCLEAN) << st.ToString();
  EXPECT_EQ(seen, 1);
}

TEST_F(MetaStoreTest, ConcurrentWritersOfDisjointInodes) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 500;
  std::vector<std::thread> threads;
  std::vector<Status> results(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const Ino ino = 1000 + Ino(t) * kPerThread + i;
        MetaStore::Batch b;
        b.PutInode(FileInode(ino, i));
        b.PutDirent(2 + t, "f" + std::to_string(i), {.ino = ino, .type = 8});
        b.PutExtent(ino, 0, ExtentOf(uint64_t(i) + 1, ino));
        Status st = store->Write(b, /*sync=*/i % 100 == 0);
        if (!st.ok()) {
          results[t] = st;
          return;
        }
        // Readers run alongside the writers.
        auto got = store->GetInode(ino);
        if (!got.ok() || !got->has_value()) {
          results[t] = Status(EIO, "own write not visible");
          return;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const Status& st : results) EXPECT_TRUE(st.ok()) << st.ToString();

  for (int t = 0; t < kThreads; ++t) {
    int n = 0;
    ASSERT_TRUE(
        store->ListDir(2 + t, "", [&](std::string_view, const DirEntry&) { return ++n, true; })
            .ok());
    EXPECT_EQ(n, kPerThread);
    for (int i = 0; i < kPerThread; ++i) {
      const Ino ino = 1000 + Ino(t) * kPerThread + i;
      auto a = store->GetInode(ino);
      ASSERT_TRUE(a.ok() && a->has_value()) << ino;
      EXPECT_EQ((*a)->size, uint64_t(i));
      auto ext = Extents(store.get(), ino, 0, UINT64_MAX);
      ASSERT_EQ(ext.size(), 1u);
      EXPECT_EQ(ext[0].second, uint64_t(i) + 1);
    }
  }
  EXPECT_EQ(*store->MaxIno(), Ino(1000 + kThreads * kPerThread - 1));
}

}  // namespace
}  // namespace rankfs
