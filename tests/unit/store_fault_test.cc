// The store under injected faults: a full disk in the middle of writing, and a power cut that
// drops every byte that was not synced (packs and RocksDB alike).
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "store/chunker.h"
#include "store/fault_injection_env.h"
#include "store/pack_format.h"
#include "store/rocks_fault_env.h"
#include "store/store.h"
#include "tests/testutil/chunk_pieces.h"
#include "tests/testutil/temp_dir.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

std::vector<Piece> Chunk(const std::string& data) { return ChunkPieces(data); }

// Every indexed chunk verifies, and every record a pack scan finds damaged is one that no index
// entry points at (a released or never-indexed record whose payload was punched out).
void ExpectStoreVerifies(Store* store) {
  std::set<std::pair<uint32_t, uint64_t>> indexed;
  uint64_t n = 0;
  ASSERT_TRUE(store->meta()->ForEachChunk([&](const ChunkHash& h, const ChunkRecord& r) {
    EXPECT_TRUE(store->chunks()->Verify(h).ok()) << h.ToHex();
    indexed.emplace(r.location.pack_id, r.location.offset);
    ++n;
    return true;
  }).ok());
  EXPECT_GT(n, 0u);
  auto names = Env::Default()->ListDir(store->dir() + "/packs");
  ASSERT_TRUE(names.ok());
  for (const std::string& name : *names) {
    auto f = Env::Default()->OpenFile(store->dir() + "/packs/" + name, OpenMode::kReadOnly);
    ASSERT_TRUE(f.ok());
    uint32_t id = uint32_t(std::stoul(name));
    ASSERT_TRUE(ScanPack(f->get(), [&](const ScannedRecord& r) {
      if (!r.payload_ok) EXPECT_FALSE(indexed.count({id, r.offset})) << name << " @" << r.offset;
      return true;
    }, nullptr).ok());
  }
}

TEST(StoreFaultTest, NoSpaceMidWriteIsReportedAndTheStoreStillOpensAndVerifies) {
  TempDir dir;
  FaultInjectionEnv env(Env::Default());
  StoreOptions o;
  o.env = &env;
  o.packs.background_reclaim = false;
  auto pieces = Chunk(MakeRealData(16 << 20, 21));
  std::vector<Piece> stored;
  {
    auto s = Store::Open(dir.Join("store"), o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    // The pack header and 40 records go through; then the disk is full.
    env.controller().FailAfter(kFaultWrite, 41, ENOSPC, "/packs/");
    Status last;
    for (const Piece& p : pieces) {
      last = (*s)->chunks()->Put(p.hash, p.data);
      if (!last.ok()) break;
      stored.push_back(p);
    }
    ASSERT_EQ(last.code(), ENOSPC) << last.ToString();
    EXPECT_EQ(stored.size(), 40u);
    // Later writes fail the same way, never with another error.
    EXPECT_EQ((*s)->chunks()->Put(pieces.back().hash, pieces.back().data).code(), ENOSPC);
    // What was stored before stays readable.
    std::string out;
    for (const Piece& p : stored) {
      ASSERT_TRUE((*s)->chunks()->Get(p.hash, &out).ok());
      ASSERT_EQ(out, p.data);
    }
    env.controller().ClearFaults();
    ASSERT_TRUE((*s)->Close().ok());
  }
  auto s = Store::Open(dir.Join("store"), StoreOptions());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ExpectStoreVerifies(s->get());
  std::string out;
  for (const Piece& p : stored) {
    ASSERT_TRUE((*s)->chunks()->Get(p.hash, &out).ok());
    ASSERT_EQ(out, p.data);
  }
  // Space is usable again: the rest goes in now.
  for (size_t i = stored.size(); i < pieces.size(); ++i) {
    ASSERT_TRUE((*s)->chunks()->Put(pieces[i].hash, pieces[i].data).ok());
  }
}

// Imitates the filesystem's protocol: put a file's chunks, Flush, then write its extents; an
// fsync'd file also syncs the WAL. After a power cut no extent may point at a missing or wrong
// chunk, and every fsync'd file must be complete.
TEST(StoreFaultTest, PowerCutLeavesNoExtentPointingAtMissingBytes) {
  TempDir dir;
  auto controller = std::make_shared<FaultController>();
  FaultInjectionEnv env(Env::Default(), controller);
  RocksFaultEnv rocks_env(controller);
  StoreOptions o;
  o.env = &env;
  o.rocks_env = rocks_env.env();
  o.packs.background_reclaim = false;

  std::map<Ino, std::string> contents;
  std::set<Ino> synced;
  {
    auto s = Store::Open(dir.Join("store"), o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    Store* store = s->get();
    for (Ino ino = 10; ino < 40; ++ino) {
      // Files share content (ranks), so refcounts go above one.
      std::string data = MakeRealData(512 << 10, ino % 7);
      data += MakeRandomData(64 << 10, ino);
      auto pieces = Chunk(data);
      for (const Piece& p : pieces) ASSERT_TRUE(store->chunks()->Put(p.hash, p.data).ok());
      if (ino % 5 == 4) continue;  // chunks put, extents never written (a write in flight)
      ASSERT_TRUE(store->chunks()->Flush().ok());
      MetaStore::Batch b;
      uint64_t off = 0;
      for (const Piece& p : pieces) {
        b.PutExtent(ino, off, Extent{p.data.size(), p.hash, 0});
        off += p.data.size();
      }
      InodeAttr attr;
      attr.ino = ino;
      attr.mode = 0100644;
      attr.nlink = 1;
      attr.size = off;
      b.PutInode(attr);
      ASSERT_TRUE(store->meta()->Write(b, /*sync=*/false).ok());
      contents[ino] = data;
      if (ino % 3 == 0) {
        ASSERT_TRUE(store->meta()->SyncWal().ok());  // fsync
        synced.insert(ino);
      }
      if (ino % 4 == 0) {  // delete an older file: references dropped after its extents
        Ino victim = ino - 3;
        if (contents.count(victim) && !synced.count(victim)) {
          MetaStore::Batch d;
          std::vector<ChunkHash> refs;
          ASSERT_TRUE(store->meta()->ListExtents(victim, 0, UINT64_MAX, [&](uint64_t off, const Extent& e) {
            d.DeleteExtent(victim, off);
            refs.push_back(e.chunk);
            return true;
          }).ok());
          d.DeleteInode(victim);
          ASSERT_TRUE(store->meta()->Write(d, false).ok());
          for (const ChunkHash& h : refs) ASSERT_TRUE(store->chunks()->Unref(h, 1).ok());
          contents.erase(victim);
          ASSERT_TRUE(store->chunks()->Reclaim().ok());
        }
      }
    }
    // Power cut: nothing more reaches the disk, the process dies, unsynced bytes vanish.
    controller->SetActive(false);
  }  // the Store is destroyed while every write fails
  ASSERT_TRUE(env.DropUnsyncedData().ok());
  { Status ds = rocks_env.DropUnsyncedData(); ASSERT_TRUE(ds.ok()) << ds.ToString(); }
  controller->SetActive(true);

  auto s = Store::Open(dir.Join("store"), StoreOptions());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  Store* store = s->get();
  std::map<ChunkHash, uint64_t> refs;
  std::map<Ino, std::string> recovered;
  std::string out;
  ASSERT_TRUE(store->meta()->ForEachExtent([&](Ino ino, uint64_t off, const Extent& e) {
    ++refs[e.chunk];
    Status st = store->chunks()->Get(e.chunk, &out);
    EXPECT_TRUE(st.ok()) << "extent of inode " << ino << " at " << off << ": " << st.ToString();
    if (st.ok()) {
      EXPECT_EQ(ChunkHash::Of(out), e.chunk);
      recovered[ino] += out.substr(e.chunk_offset, e.length);
    }
    return true;
  }).ok());
  for (Ino ino : synced) {
    if (!contents.count(ino)) continue;
    ASSERT_TRUE(recovered.count(ino)) << "fsync'd inode " << ino << " lost";
    EXPECT_EQ(recovered[ino], contents[ino]) << "fsync'd inode " << ino;
  }
  // Refcounts may only err high (space leak) after a crash, never low.
  for (const auto& [h, n] : refs) {
    auto r = store->meta()->GetChunk(h);
    ASSERT_TRUE(r.ok() && r->has_value()) << h.ToHex();
    EXPECT_GE((*r)->refcount, n) << h.ToHex();
  }
  EXPECT_FALSE(synced.empty());
  ExpectStoreVerifies(store);
}

}  // namespace
}  // namespace rankfs
