// PackChunkStore when the disk says no (docs/reliability.md, "Errors"): a pack whose sync failed
// is never trusted again and nothing that names its unsynced records becomes durable; a
// metadata write of unknown outcome never leads to a release of what it may name; healing keeps
// the damaged copy until the new one is indexed; only bytes that fail their checks are damage;
// a failed punch is retried; a clean close leaves a store fsck calls clean; a read-only open
// changes nothing.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "store/fault_injection_env.h"
#include "store/pack_chunk_store.h"
#include "store/pack_format.h"
#include "store/store.h"
#include "tests/testutil/fsck_text.h"
#include "tests/testutil/temp_dir.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

namespace fs = std::filesystem;

// Incompressible chunks: every record is about as long as its data.
std::string Data(uint64_t seed, size_t n = 64 << 10) { return MakeRandomData(n, seed); }

class ChunkStoreErrorsTest : public ::testing::Test {
 protected:
  ChunkStoreErrorsTest()
      : controller_(std::make_shared<FaultController>()),
        env_(Env::Default(), controller_),
        meta_faults_(controller_) {}

  void SetUp() override { ASSERT_NO_FATAL_FAILURE(Open()); }

  void Open(bool read_only = false) {
    StoreOptions o;
    o.env = &env_;
    o.packs.background_reclaim = false;  // the tests call Reclaim themselves
    o.meta.write_hook = &meta_faults_;
    o.read_only = read_only;
    auto s = Store::Open(dir(), o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }
  void Close() {
    if (store_ == nullptr) return;
    Status s = store_->Close();
    store_.reset();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void Reopen(bool read_only = false) {
    ASSERT_NO_FATAL_FAILURE(Close());
    ASSERT_NO_FATAL_FAILURE(Open(read_only));
  }

  std::string dir() const { return tmp_.Join("store"); }
  PackChunkStore* packs() { return store_->packs(); }
  std::optional<ChunkRecord> Record(const ChunkHash& h) {
    auto r = store_->meta()->GetChunk(h);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::nullopt;
  }
  Status Put(const std::string& data) { return packs()->Put(ChunkHash::Of(data), data); }
  // Whether Get returns exactly `data` for its chunk (failures say why, without the bytes).
  ::testing::AssertionResult ReadsBack(const std::string& data) {
    std::string out;
    Status s = packs()->Get(ChunkHash::Of(data), &out);
    if (!s.ok()) return ::testing::AssertionFailure() << s.ToString();
    if (out != data) return ::testing::AssertionFailure() << "different bytes";
    return ::testing::AssertionSuccess();
  }
  // Whether bytes [offset, offset + 8 KiB) of a pack file, read around the fault Env, are a
  // hole (zeros).
  bool Punched(uint32_t pack_id, uint64_t offset) {
    return PackBytes(pack_id, offset, 8192) == std::string(8192, '\0');
  }
  // Bytes [offset, offset + n) of a pack file, read around the fault Env.
  std::string PackBytes(uint32_t pack_id, uint64_t offset, size_t n) {
    std::ifstream f(packs()->PackPath(pack_id), std::ios::binary);
    f.seekg(std::streamoff(offset));
    std::string out(n, '\0');
    f.read(out.data(), std::streamsize(n));
    out.resize(size_t(f.gcount()));
    return out;
  }
  // fsck's findings on the closed store, one per line.
  std::string FsckText() { return rankfs::FsckText(dir()); }
  // Those that are not "unreferenced chunk": these tests put chunks without files naming them.
  std::string FsckProblems() {
    return rankfs::FsckText(
        dir(), [](const FsckFinding& f) { return f.issue != FsckIssue::kUnreferencedChunk; });
  }

  TempDir tmp_;
  std::shared_ptr<FaultController> controller_;
  FaultInjectionEnv env_;
  MetaWriteFaults meta_faults_;
  std::unique_ptr<Store> store_;
};

// A failed fdatasync may have dropped the pack's dirty pages (the fault Env drops them): a
// later sync that succeeds says nothing about them, so the chunks appended since the last good
// sync must never be indexed. Flush keeps failing while a writer still holds one; a writer that
// puts the bytes again gets a fresh copy in another pack.
TEST_F(ChunkStoreErrorsTest, FailedPackSyncIsNeverTrustedAgain) {
  const std::string a = Data(1), b = Data(2), c = Data(3);
  ASSERT_TRUE(Put(a).ok());
  ASSERT_TRUE(packs()->Flush().ok());
  const uint32_t first_pack = Record(ChunkHash::Of(a))->location.pack_id;

  controller_->FailAfter(kFaultSync, 0, EIO, ".pack", /*count=*/1);
  ASSERT_TRUE(Put(b).ok());
  EXPECT_EQ(packs()->Flush().code(), EIO);
  EXPECT_EQ(controller_->injected(), 1u);
  EXPECT_FALSE(Record(ChunkHash::Of(b))) << "indexed from a pack whose sync failed";
  // The next sync of the other packs succeeds; the lost chunk still must not be indexed, and
  // the writer holding it must hear of it.
  EXPECT_EQ(packs()->Flush().code(), EIO);
  EXPECT_FALSE(Record(ChunkHash::Of(b)));
  EXPECT_TRUE(ReadsBack(a)) << "what the pack held before the failed sync stays";

  // The writer lets go and puts the bytes again: a fresh copy, elsewhere.
  ASSERT_TRUE(packs()->Unref(ChunkHash::Of(b), 1).ok());
  ASSERT_TRUE(Put(b).ok());
  ASSERT_TRUE(Put(c).ok());
  ASSERT_TRUE(packs()->Flush().ok());
  auto rb = Record(ChunkHash::Of(b));
  ASSERT_TRUE(rb);
  EXPECT_EQ(rb->refcount, 1u);
  EXPECT_NE(rb->location.pack_id, first_pack);
  EXPECT_NE(Record(ChunkHash::Of(c))->location.pack_id, first_pack)
      << "appended to a pack whose sync failed";
  EXPECT_TRUE(ReadsBack(b));
  ASSERT_TRUE(packs()->Reclaim().ok());

  // The power goes: everything that was acknowledged is there.
  controller_->SetActive(false);
  store_.reset();
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  controller_->SetActive(true);
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_TRUE(ReadsBack(a));
  EXPECT_TRUE(ReadsBack(b));
  EXPECT_TRUE(ReadsBack(c));
  EXPECT_EQ(packs()->GetStats().read_errors, 0u);
  ASSERT_NO_FATAL_FAILURE(Close());
  EXPECT_EQ(FsckProblems(), "");
}

// A lost chunk that another writer puts while the first still holds it: the new Put appends a
// fresh copy, which carries both references.
TEST_F(ChunkStoreErrorsTest, APutOfALostChunkStoresItAgain) {
  const std::string b = Data(4);
  const ChunkHash hb = ChunkHash::Of(b);
  controller_->FailAfter(kFaultSync, 0, EIO, ".pack", /*count=*/1);
  ASSERT_TRUE(Put(b).ok());
  EXPECT_EQ(packs()->Flush().code(), EIO);
  EXPECT_FALSE(ReadsBack(b));
  ASSERT_TRUE(Put(b).ok());  // another writer, same bytes
  ASSERT_TRUE(packs()->Flush().ok());
  EXPECT_TRUE(ReadsBack(b));
  EXPECT_EQ(Record(hb)->refcount, 2u);
  ASSERT_TRUE(packs()->Unref(hb, 1).ok());  // the first writer gives up its stale reference
  EXPECT_EQ(Record(hb)->refcount, 1u);
  ASSERT_NO_FATAL_FAILURE(Close());
  EXPECT_EQ(FsckProblems(), "");
}

// The packs directory's sync fails: the names of packs created since the last good one may not
// be durable, so their chunks count as lost too.
TEST_F(ChunkStoreErrorsTest, FailedDirectorySyncLosesTheNewPacksChunks) {
  const std::string g = Data(5);
  controller_->FailAfter(kFaultSync, 1, EIO, "/packs", /*count=*/1);  // the pack, then the dir
  ASSERT_TRUE(Put(g).ok());
  EXPECT_EQ(packs()->Flush().code(), EIO);
  EXPECT_FALSE(Record(ChunkHash::Of(g)));
  ASSERT_TRUE(packs()->Unref(ChunkHash::Of(g), 1).ok());
  ASSERT_TRUE(Put(g).ok());
  ASSERT_TRUE(packs()->Flush().ok());
  EXPECT_EQ(Record(ChunkHash::Of(g))->location.pack_id, 2u);
  EXPECT_TRUE(ReadsBack(g));
}

// The chunk index write of a Flush fails after it was applied (its outcome is unknown). The
// writer drops its reference as the contract says; the range must stay, because after a
// restart the index names it.
TEST_F(ChunkStoreErrorsTest, IndexWriteOfUnknownOutcomeNeverFreesWhatItMayName) {
  const std::string x = Data(6);
  const ChunkHash hx = ChunkHash::Of(x);
  ASSERT_TRUE(Put(x).ok());
  controller_->FailAfter(kFaultMetaWrite, 0, EIO, "", /*count=*/1, FaultEffect::kApplied);
  EXPECT_EQ(packs()->Flush().code(), EIO);
  ASSERT_TRUE(packs()->Unref(hx, 1).ok());
  ASSERT_TRUE(packs()->Reclaim().ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  auto r = Record(hx);
  ASSERT_TRUE(r) << "the failed write was applied";
  EXPECT_TRUE(ReadsBack(x)) << "a chunk the index names was punched";
  ASSERT_NO_FATAL_FAILURE(Close());
  EXPECT_EQ(FsckProblems(), "") << "a leak at worst, never damage";
  EXPECT_NE(FsckText().find("unreferenced chunk"), std::string::npos);
}

// Healing stores a fresh copy of a damaged chunk. Until that copy is indexed (and the index
// synced), the index names the old one: punching it first would leave the index pointing at a
// hole after a crash.
TEST_F(ChunkStoreErrorsTest, HealingKeepsTheDamagedCopyUntilTheNewOneIsIndexed) {
  const std::string d = Data(7);
  const ChunkHash hd = ChunkHash::Of(d);
  ASSERT_TRUE(Put(d).ok());
  ASSERT_TRUE(packs()->Flush().ok());
  const ChunkLocation old = Record(hd)->location;
  const uint64_t mid = old.offset + kRecordHeaderSize + old.stored_length / 2;
  {
    std::fstream f(packs()->PackPath(old.pack_id), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(mid));
    f.put('\x5a');
    ASSERT_TRUE(f.good());
  }
  std::string out;
  EXPECT_EQ(packs()->Get(hd, &out).code(), EIO);
  ASSERT_FALSE(Punched(old.pack_id, old.offset + 4096));

  ASSERT_TRUE(Put(d).ok());  // heals: a fresh copy, not yet indexed
  ASSERT_TRUE(packs()->Reclaim().ok());
  EXPECT_FALSE(Punched(old.pack_id, old.offset + 4096))
      << "the indexed copy was punched before its replacement was indexed";
  EXPECT_EQ(Record(hd)->location, old);

  ASSERT_TRUE(packs()->Flush().ok());
  EXPECT_NE(Record(hd)->location, old);
  EXPECT_EQ(Record(hd)->refcount, 2u);
  ASSERT_TRUE(packs()->Reclaim().ok());
  EXPECT_TRUE(Punched(old.pack_id, old.offset + 4096))
      << "the damaged copy is released once the new one is indexed";
  EXPECT_TRUE(ReadsBack(d));
}

// An error on the way to the bytes (EMFILE opening the pack, EIO reading it) says nothing about
// the bytes: the next read works, and a Put of the same content takes a reference instead of
// storing a needless second copy.
TEST_F(ChunkStoreErrorsTest, TransientReadErrorsAreNotDamage) {
  const std::string e = Data(8);
  const ChunkHash he = ChunkHash::Of(e);
  ASSERT_TRUE(Put(e).ok());
  ASSERT_TRUE(packs()->Flush().ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());  // the pack is not open now
  const ChunkLocation loc = Record(he)->location;

  controller_->FailAfter(kFaultOpen, 0, EMFILE, ".pack", /*count=*/1);
  std::string out;
  EXPECT_EQ(packs()->Get(he, &out).code(), EMFILE);
  EXPECT_TRUE(ReadsBack(e));
  controller_->FailAfter(kFaultRead, 0, EIO, ".pack", /*count=*/1);
  EXPECT_EQ(packs()->Get(he, &out).code(), EIO);
  EXPECT_TRUE(ReadsBack(e));

  const uint64_t hits = packs()->GetStats().dedup_hits;
  ASSERT_TRUE(Put(e).ok());
  ASSERT_TRUE(packs()->Flush().ok());
  EXPECT_EQ(packs()->GetStats().dedup_hits, hits + 1) << "treated as damaged and stored again";
  EXPECT_EQ(Record(he)->location, loc);
  EXPECT_EQ(Record(he)->refcount, 2u);
}

// A read that finds its record punched because the chunk was deleted meanwhile: not damage (the
// chunk is gone), so nothing is marked bad; the content stored later dedups normally.
TEST_F(ChunkStoreErrorsTest, ReadRacingADeleteLeavesNoBadMark) {
  const std::string f = Data(9);
  const ChunkHash hf = ChunkHash::Of(f);
  ASSERT_TRUE(Put(f).ok());
  ASSERT_TRUE(Put(Data(10)).ok());  // keeps the pack alive
  ASSERT_TRUE(packs()->Flush().ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());  // the pack is not open now
  bool armed = true;
  controller_->SetHook([&](FaultOp op, const std::string& path) {
    if (!armed || op != kFaultRead || path.find(".pack") == std::string::npos) return;
    armed = false;  // between the reader's lookup and its read: delete the chunk, punch it
    EXPECT_TRUE(packs()->Unref(hf, 1).ok());
    EXPECT_TRUE(packs()->Reclaim().ok());
  });
  std::string out;
  Status s = packs()->Get(hf, &out);
  controller_->SetHook(nullptr);
  EXPECT_FALSE(armed);
  EXPECT_EQ(s.code(), ENOENT) << s.ToString();
  EXPECT_EQ(packs()->GetStats().read_errors, 0u);

  ASSERT_TRUE(Put(f).ok());  // stored anew
  ASSERT_TRUE(packs()->Flush().ok());
  const uint64_t hits = packs()->GetStats().dedup_hits;
  const ChunkLocation loc = Record(hf)->location;
  ASSERT_TRUE(Put(f).ok());
  EXPECT_EQ(packs()->GetStats().dedup_hits, hits + 1) << "a stale bad mark made it heal";
  ASSERT_TRUE(packs()->Flush().ok());
  EXPECT_EQ(Record(hf)->location, loc);
}

// A punch that fails leaves the space owed; the next Reclaim punches it.
TEST_F(ChunkStoreErrorsTest, FailedPunchIsRetried) {
  const std::string p = Data(11, 256 << 10), keep = Data(12);
  ASSERT_TRUE(Put(p).ok());
  ASSERT_TRUE(Put(keep).ok());
  ASSERT_TRUE(packs()->Flush().ok());
  const ChunkLocation loc = Record(ChunkHash::Of(p))->location;
  ASSERT_TRUE(packs()->Unref(ChunkHash::Of(p), 1).ok());
  controller_->FailAfter(kFaultPunch, 0, EIO, ".pack", /*count=*/1);
  EXPECT_EQ(packs()->Reclaim().code(), EIO);
  EXPECT_FALSE(Punched(loc.pack_id, loc.offset + 8192));
  ASSERT_TRUE(packs()->Reclaim().ok());
  EXPECT_TRUE(Punched(loc.pack_id, loc.offset + 8192)) << "the failed punch was not tried again";
  EXPECT_TRUE(ReadsBack(keep));
}

// A clean close of a store whose chunks were all released leaves nothing fsck could call an
// orphan: the emptied active pack goes too.
TEST_F(ChunkStoreErrorsTest, CleanCloseOfAnEmptiedStoreIsCleanForFsck) {
  std::vector<std::string> all;
  for (uint64_t i = 0; i < 48; ++i) all.push_back(Data(100 + i));  // 3 MiB
  for (const std::string& d : all) ASSERT_TRUE(Put(d).ok());
  ASSERT_TRUE(packs()->Flush().ok());
  for (const std::string& d : all) ASSERT_TRUE(packs()->Unref(ChunkHash::Of(d), 1).ok());
  ASSERT_NO_FATAL_FAILURE(Close());
  EXPECT_EQ(FsckText(), "");
  EXPECT_TRUE(fs::is_empty(dir() + "/packs"));
}

// Every file of the store: name -> size and content digest.
std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream f(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    out[e.path().string()] = std::to_string(fs::file_size(e.path())) + " " +
                             ChunkHash::Of(ss.str()).ToHex();
  }
  return out;
}

// A read-only open changes nothing, not even what recovery would tidy (an unindexed pack, a
// dead range) or RocksDB's files; it reads, and refuses every change with EROFS.
TEST_F(ChunkStoreErrorsTest, ReadOnlyOpenChangesNothing) {
  const std::string kept = Data(13), dropped = Data(14);
  ASSERT_TRUE(Put(kept).ok());
  ASSERT_TRUE(Put(dropped).ok());
  ASSERT_TRUE(packs()->Flush().ok());
  ASSERT_TRUE(packs()->Unref(ChunkHash::Of(dropped), 1).ok());
  // Kill the store before its reclaim: a dead range stays for recovery. And a stray pack.
  controller_->SetActive(false);
  store_.reset();
  controller_->SetActive(true);
  {
    std::ofstream stray(dir() + "/packs/" + PackFileName(77), std::ios::binary);
    stray << EncodePackFileHeader(PackFileHeader{1, 77, {}}) << Data(15);
  }
  const auto before = Snapshot(dir());
  ASSERT_NO_FATAL_FAILURE(Open(/*read_only=*/true));
  EXPECT_TRUE(store_->read_only());
  EXPECT_TRUE(ReadsBack(kept));
  EXPECT_EQ(Put(Data(16)).code(), EROFS);
  EXPECT_EQ(packs()->Ref(ChunkHash::Of(kept), 1).code(), EROFS);
  EXPECT_EQ(packs()->Unref(ChunkHash::Of(kept), 1).code(), EROFS);
  MetaStore::Batch b;
  b.DeleteChunk(ChunkHash::Of(kept));
  EXPECT_EQ(store_->meta()->Write(b, false).code(), EROFS);
  ASSERT_TRUE(packs()->Flush().ok());
  ASSERT_NO_FATAL_FAILURE(Close());
  EXPECT_EQ(Snapshot(dir()), before);

  // Read-write, recovery tidies up as usual.
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_FALSE(fs::exists(dir() + "/packs/" + PackFileName(77)));
  EXPECT_TRUE(ReadsBack(kept));
}

TEST_F(ChunkStoreErrorsTest, ReadOnlyOpenOfAMissingStoreFails) {
  ASSERT_NO_FATAL_FAILURE(Close());
  StoreOptions o;
  o.read_only = true;
  auto s = Store::Open(tmp_.Join("nothing-here"), o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ENOENT) << s.status().ToString();
  EXPECT_FALSE(fs::exists(tmp_.Join("nothing-here")));
}

}  // namespace
}  // namespace rankfs
