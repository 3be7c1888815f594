// Tests of PackChunkStore and Store: round trips, dedup (also under concurrency), checksums on
// read, healing, fault injection (ENOSPC, power cut), space reclamation and recovery.
#include <sys/stat.h>

#include <atomic>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "store/chunker.h"
#include "store/pack_chunk_store.h"
#include "store/pack_format.h"
#include "store/store.h"
#include "tests/testutil/chunk_pieces.h"
#include "tests/testutil/temp_dir.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

std::vector<Piece> Chunk(const std::string& data) { return ChunkPieces(data); }

StoreOptions TestOptions() {
  StoreOptions o;
  o.packs.background_reclaim = false;  // tests call Reclaim() themselves
  return o;
}

uint64_t DirAllocatedBytes(Env* env, const std::string& dir) {
  uint64_t total = 0;
  auto names = env->ListDir(dir);
  EXPECT_TRUE(names.ok());
  for (const auto& n : *names) {
    auto info = env->Stat(dir + "/" + n);
    if (info.ok()) total += info->allocated_bytes;
  }
  return total;
}

class ChunkStoreTest : public ::testing::Test {
 protected:
  void OpenStore(StoreOptions o = TestOptions()) {
    auto s = Store::Open(dir_.Join("store"), o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }
  PackChunkStore* chunks() { return store_->packs(); }
  std::optional<ChunkRecord> Record(const ChunkHash& h) {
    auto r = store_->meta()->GetChunk(h);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::nullopt;
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

// One spelling per pack id, the same for the store, fsck and gc. The store once parsed exactly
// six digits, so packs from id 1,000,000 on would have been invisible to its recovery.
TEST(PackFileNameTest, RoundTripsPastSixDigitsAndRejectsEverythingElse) {
  EXPECT_EQ(PackFileName(42), "000042.pack");
  EXPECT_EQ(PackFileName(1000000), "1000000.pack");
  for (uint32_t id : {1u, 42u, 999999u, 1000000u, 4294967295u}) {
    uint32_t parsed = 0;
    ASSERT_TRUE(ParsePackFileName(PackFileName(id), &parsed)) << id;
    EXPECT_EQ(parsed, id);
  }
  uint32_t id = 7;
  for (const char* bad : {"000000.pack", "42.pack", "0000042.pack", "00004x.pack", "000042.pac",
                          "000042.pack.tmp", "4294967296.pack", "LOCK", ""}) {
    EXPECT_FALSE(ParsePackFileName(bad, &id)) << bad;
  }
  EXPECT_EQ(id, 7u) << "a rejected name must not change the output";
}

TEST_F(ChunkStoreTest, RoundTripRealAndRandomData) {
  OpenStore();
  for (const std::string& data : {MakeRealData(8 << 20, 1), MakeRandomData(4 << 20, 2)}) {
    auto pieces = Chunk(data);
    for (const Piece& p : pieces) ASSERT_TRUE(chunks()->Put(p.hash, p.data).ok());
    std::string out;
    for (const Piece& p : pieces) {
      ASSERT_TRUE(chunks()->Get(p.hash, &out).ok());
      ASSERT_EQ(out, p.data);
    }
    ASSERT_TRUE(chunks()->Flush().ok());
    for (const Piece& p : pieces) {
      ASSERT_TRUE(chunks()->Get(p.hash, &out).ok());
      ASSERT_EQ(out, p.data);
    }
  }
  // Real data compresses; random data is stored raw, so it costs no more than its size plus
  // headers.
  ChunkStoreStats st = chunks()->GetStats();
  EXPECT_LT(st.stored_bytes, st.raw_bytes);
  EXPECT_LE(st.stored_bytes, (4u << 20) + st.chunks * kRecordHeaderSize + (8u << 20) * 3 / 4);
  // Everything survives a reopen.
  auto pieces = Chunk(MakeRealData(8 << 20, 1));
  ASSERT_TRUE(store_->Close().ok());
  store_.reset();
  OpenStore();
  std::string out;
  for (const Piece& p : pieces) {
    ASSERT_TRUE(chunks()->Get(p.hash, &out).ok());
    ASSERT_EQ(out, p.data);
    ASSERT_TRUE(chunks()->Verify(p.hash).ok());
  }
}

// Each thread builds its records in one buffer it keeps: a record must never carry bytes of
// the one built before it (a longer one, a compressed one after a raw one, and back), and a
// record larger than the kept buffer gets one of its own.
TEST_F(ChunkStoreTest, RecordsBuiltOneAfterAnotherInOneBufferReadBackIntact) {
  OpenStore();
  const std::vector<std::string> datas = {
      MakeRealData(128 << 10, 11), MakeRandomData(100 << 10, 12), MakeRealData(9 << 10, 13),
      MakeRandomData(8 << 10, 14), MakeRealData(1 << 20, 15),     MakeRealData(20 << 10, 16),
      MakeRandomData(700 << 10, 17), MakeRealData(128 << 10, 18)};
  for (const std::string& d : datas) ASSERT_TRUE(chunks()->Put(ChunkHash::Of(d), d).ok());
  ASSERT_TRUE(chunks()->Flush().ok());
  std::string out;
  for (const std::string& d : datas) {
    ASSERT_TRUE(chunks()->Get(ChunkHash::Of(d), &out).ok());
    ASSERT_EQ(out, d);
    ASSERT_TRUE(chunks()->Verify(ChunkHash::Of(d)).ok());
  }
}

TEST_F(ChunkStoreTest, DedupCountsReferences) {
  OpenStore();
  std::string data = MakeRealData(256 << 10, 3);
  ChunkHash h = ChunkHash::Of(data);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(chunks()->Put(h, data).ok());
  ChunkStoreStats st = chunks()->GetStats();
  EXPECT_EQ(st.chunks, 1u);
  EXPECT_EQ(st.dedup_hits, 4u);
  EXPECT_EQ(st.put_calls, 5u);
  ASSERT_TRUE(chunks()->Flush().ok());
  ASSERT_EQ(Record(h)->refcount, 5u);
  // References taken after the index entry is written are counted in memory and reach the
  // index with the next Flush, in one write (before any extent naming them may be written).
  ASSERT_TRUE(chunks()->Put(h, data).ok());
  ASSERT_TRUE(chunks()->Ref(h, 2).ok());
  EXPECT_EQ(Record(h)->refcount, 5u);
  ASSERT_TRUE(chunks()->Flush().ok());
  ASSERT_EQ(Record(h)->refcount, 8u);
  ASSERT_TRUE(chunks()->Unref(h, 7).ok());
  ASSERT_EQ(Record(h)->refcount, 1u);
  EXPECT_EQ(chunks()->Unref(h, 2).code(), EUCLEAN);  // never below zero
  ASSERT_TRUE(chunks()->Unref(h, 1).ok());
  EXPECT_FALSE(Record(h).has_value());
  std::string out;
  EXPECT_EQ(chunks()->Get(h, &out).code(), ENOENT);
  EXPECT_EQ(chunks()->Ref(h, 1).code(), ENOENT);
  EXPECT_EQ(chunks()->GetStats().chunks, 0u);
}

TEST_F(ChunkStoreTest, AnIndexedChunkPutAgainAndDroppedBeforeTheFlushLeavesTheIndex) {
  OpenStore();
  const std::string data = MakeRealData(64 << 10, 5);
  const ChunkHash h = ChunkHash::Of(data);
  ASSERT_TRUE(chunks()->Put(h, data).ok());
  ASSERT_TRUE(chunks()->Flush().ok());
  ASSERT_EQ(Record(h)->refcount, 1u);
  ASSERT_TRUE(chunks()->Put(h, data).ok());  // a duplicate: counted in memory
  EXPECT_EQ(chunks()->GetStats().dedup_hits, 1u);
  std::string out;
  ASSERT_TRUE(chunks()->Get(h, &out).ok());
  EXPECT_EQ(out, data);
  // Both references go before any Flush: the index entry goes with the last one.
  ASSERT_TRUE(chunks()->Unref(h, 2).ok());
  EXPECT_FALSE(Record(h).has_value());
  EXPECT_EQ(chunks()->Get(h, &out).code(), ENOENT);
  EXPECT_EQ(chunks()->GetStats().chunks, 0u);
  // Put again, it is a new chunk, stored and indexed afresh.
  ASSERT_TRUE(chunks()->Put(h, data).ok());
  ASSERT_TRUE(chunks()->Flush().ok());
  ASSERT_EQ(Record(h)->refcount, 1u);
  ASSERT_TRUE(chunks()->Get(h, &out).ok());
  EXPECT_EQ(out, data);
}

// A Flush keeps the records it wrote in memory, so the next duplicate of a chunk does not read
// its record back; every other change of the record (Ref, Unref, a last reference) must pass
// through, or a later Put would count from a stale record.
TEST_F(ChunkStoreTest, RecentRecordsAnswerDuplicatesAndStayExact) {
  OpenStore();
  const std::string data = MakeRealData(64 << 10, 7);
  const ChunkHash h = ChunkHash::Of(data);
  ASSERT_TRUE(chunks()->Put(h, data).ok());
  ASSERT_TRUE(chunks()->Flush().ok());
  const uint64_t reads = chunks()->GetStats().index_reads;
  ASSERT_TRUE(chunks()->Put(h, data).ok());
  EXPECT_EQ(chunks()->GetStats().index_reads, reads);  // answered from memory
  ASSERT_TRUE(chunks()->Flush().ok());
  ASSERT_EQ(Record(h)->refcount, 2u);
  // Ref and Unref of an indexed chunk write its record themselves.
  ASSERT_TRUE(chunks()->Ref(h, 3).ok());
  ASSERT_EQ(Record(h)->refcount, 5u);
  ASSERT_TRUE(chunks()->Put(h, data).ok());
  ASSERT_TRUE(chunks()->Flush().ok());
  ASSERT_EQ(Record(h)->refcount, 6u);
  ASSERT_TRUE(chunks()->Unref(h, 1).ok());
  ASSERT_EQ(Record(h)->refcount, 5u);
  ASSERT_TRUE(chunks()->Put(h, data).ok());
  ASSERT_TRUE(chunks()->Flush().ok());
  ASSERT_EQ(Record(h)->refcount, 6u);
  // The last reference goes: the next Put stores a fresh copy, not a reference to the
  // released one (whose range Reclaim punches).
  ASSERT_TRUE(chunks()->Unref(h, 6).ok());
  EXPECT_FALSE(Record(h).has_value());
  ASSERT_TRUE(chunks()->Reclaim().ok());
  ASSERT_TRUE(chunks()->Put(h, data).ok());
  ASSERT_TRUE(chunks()->Flush().ok());
  ASSERT_EQ(Record(h)->refcount, 1u);
  EXPECT_EQ(chunks()->GetStats().chunks, 1u);
  std::string out;
  ASSERT_TRUE(chunks()->Get(h, &out).ok());
  EXPECT_EQ(out, data);
}

TEST_F(ChunkStoreTest, EightThreadsPuttingTheSame64MiBStoreOneCopy) {
  OpenStore();
  const std::string data = MakeRealData(64 << 20, 4);
  const auto pieces = Chunk(data);
  std::set<ChunkHash> unique;
  uint64_t unique_raw = 0;
  for (const Piece& p : pieces) {
    if (unique.insert(p.hash).second) unique_raw += p.data.size();
  }
  std::map<ChunkHash, uint64_t> expected_refs;
  for (const Piece& p : pieces) expected_refs[p.hash] += 8;

  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      // Each thread walks the chunks in its own order, as ranks drifting apart would.
      for (size_t i = 0; i < pieces.size(); ++i) {
        const Piece& p = pieces[(i + size_t(t) * 7) % pieces.size()];
        if (!chunks()->Put(p.hash, p.data).ok()) ++failures;
        if (i % 97 == 0 && !chunks()->Flush().ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(failures.load(), 0);
  ASSERT_TRUE(chunks()->Flush().ok());

  ChunkStoreStats st = chunks()->GetStats();
  EXPECT_EQ(st.chunks, unique.size());
  EXPECT_EQ(st.raw_bytes, unique_raw);
  EXPECT_EQ(st.put_calls, 8 * pieces.size());
  for (const auto& [h, refs] : expected_refs) {
    auto r = Record(h);
    ASSERT_TRUE(r.has_value());
    ASSERT_EQ(r->refcount, refs);
  }
  // Physically: the packs hold one compressed copy (plus headers), not eight.
  uint64_t pack_bytes = DirAllocatedBytes(store_->env(), dir_.Join("store/packs"));
  EXPECT_LE(pack_bytes, st.stored_bytes + (1 << 20));
  EXPECT_LT(st.stored_bytes, unique_raw);
  std::printf("64 MiB x 8 threads: %zu chunks, %.1f MiB stored, %.1f MiB allocated\n",
              unique.size(), st.stored_bytes / 1048576.0, pack_bytes / 1048576.0);
}

TEST_F(ChunkStoreTest, FlippedByteIsAReadErrorAndARewriteHealsIt) {
  OpenStore();
  std::string data = MakeRealData(200 << 10, 5);
  std::string other = MakeRealData(100 << 10, 6);
  ChunkHash h = ChunkHash::Of(data), h2 = ChunkHash::Of(other);
  ASSERT_TRUE(chunks()->Put(h, data).ok());
  ASSERT_TRUE(chunks()->Put(h2, other).ok());
  ASSERT_TRUE(chunks()->Flush().ok());
  ChunkLocation loc = Record(h)->location;

  {  // Flip one byte in the middle of the stored bytes.
    auto f = store_->env()->OpenFile(chunks()->PackPath(loc.pack_id), OpenMode::kReadWrite);
    ASSERT_TRUE(f.ok());
    uint64_t at = loc.offset + kRecordHeaderSize + loc.stored_length / 2;
    char c;
    size_t got;
    ASSERT_TRUE((*f)->PRead(at, 1, &c, &got).ok());
    c = char(c ^ 0x40);
    ASSERT_TRUE((*f)->PWrite(at, std::string_view(&c, 1)).ok());
  }
  std::string out = "untouched";
  Status s = chunks()->Get(h, &out);
  EXPECT_EQ(s.code(), EIO) << s.ToString();
  EXPECT_NE(out, data);
  EXPECT_NE(s.message().find(h.ToHex()), std::string::npos);  // names the chunk
  EXPECT_EQ(chunks()->Verify(h).code(), EIO);
  EXPECT_EQ(chunks()->GetStats().read_errors, 2u);
  // The neighbour is unaffected.
  ASSERT_TRUE(chunks()->Get(h2, &out).ok());
  EXPECT_EQ(out, other);

  // A later write of the same content stores a fresh copy and keeps the references.
  ASSERT_TRUE(chunks()->Put(h, data).ok());
  ASSERT_TRUE(chunks()->Get(h, &out).ok());
  EXPECT_EQ(out, data);
  ASSERT_TRUE(chunks()->Flush().ok());
  auto r = Record(h);
  EXPECT_EQ(r->refcount, 2u);
  EXPECT_NE(r->location, loc);
  ASSERT_TRUE(chunks()->Reclaim().ok());
  ASSERT_TRUE(store_->Close().ok());
  store_.reset();
  OpenStore();
  ASSERT_TRUE(chunks()->Verify(h).ok());
  ASSERT_TRUE(chunks()->Verify(h2).ok());
}

// GetMany reads runs of adjacent records with one read each, gives every chunk Get's bytes,
// decompresses into `direct` only when the length fits, and fails only the damaged chunk.
TEST_F(ChunkStoreTest, GetManyReadsAdjacentRecordsTogetherAndFailsOnlyTheDamagedOne) {
  OpenStore();
  std::vector<std::string> data;
  for (int i = 0; i < 6; ++i) data.push_back(MakeRealData(40 << 10, 30 + i));
  for (const std::string& d : data) ASSERT_TRUE(chunks()->Put(ChunkHash::Of(d), d).ok());
  ASSERT_TRUE(chunks()->Flush().ok());

  // Asked for in reverse order, with a duplicate-free mix of direct and non-direct.
  std::vector<std::string> outs(data.size());
  std::vector<std::string> direct(data.size(), std::string(40 << 10, '\0'));
  std::vector<ChunkRead> reads(data.size());
  for (size_t i = 0; i < data.size(); ++i) {
    const size_t k = data.size() - 1 - i;
    reads[i].hash = ChunkHash::Of(data[k]);
    reads[i].out = &outs[k];
    if (k % 2 == 0) {
      reads[i].direct = direct[k].data();
      reads[i].direct_len = k == 4 ? 100 : direct[k].size();  // 4: too short, goes to out
    }
  }
  GetManyStats st;
  chunks()->GetMany(reads, &st);
  EXPECT_EQ(st.reads, 1u) << "six adjacent records, one read";
  for (const ChunkRead& r : reads) EXPECT_FALSE(r.shared) << "one reference each";
  EXPECT_EQ(st.decompressions, 6u);
  for (size_t i = 0; i < data.size(); ++i) {
    const size_t k = data.size() - 1 - i;
    ASSERT_TRUE(reads[i].status.ok()) << reads[i].status.ToString();
    EXPECT_EQ(reads[i].wrote_direct, k == 0 || k == 2) << k;
    EXPECT_EQ(reads[i].wrote_direct ? direct[k] : outs[k], data[k]) << k;
  }

  // A second reference makes a chunk shared.
  ASSERT_TRUE(chunks()->Put(ChunkHash::Of(data[1]), data[1]).ok());
  std::string twice;
  ChunkRead shared_read;
  shared_read.hash = ChunkHash::Of(data[1]);
  shared_read.out = &twice;
  chunks()->GetMany(std::span<ChunkRead>(&shared_read, 1), &st);
  ASSERT_TRUE(shared_read.status.ok());
  EXPECT_TRUE(shared_read.shared);
  EXPECT_EQ(twice, data[1]);

  // Damage the third record: only its chunk fails, with Get's error, and is counted.
  const ChunkLocation loc = Record(ChunkHash::Of(data[2]))->location;
  {
    auto f = store_->env()->OpenFile(chunks()->PackPath(loc.pack_id), OpenMode::kReadWrite);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->PWrite(loc.offset + kRecordHeaderSize + 10, "XXXX").ok());
  }
  const ChunkHash missing = ChunkHash::Of(std::string("never stored"));
  std::vector<std::string> outs2(data.size() + 1);
  std::vector<ChunkRead> again(data.size() + 1);
  for (size_t k = 0; k < data.size(); ++k) {
    again[k].hash = ChunkHash::Of(data[k]);
    again[k].out = &outs2[k];
  }
  again[data.size()].hash = missing;
  again[data.size()].out = &outs2[data.size()];
  chunks()->GetMany(again, &st);
  for (size_t k = 0; k < data.size(); ++k) {
    if (k == 2) {
      EXPECT_EQ(again[k].status.code(), EIO) << again[k].status.ToString();
      EXPECT_NE(again[k].status.message().find("damaged"), std::string::npos);
    } else {
      ASSERT_TRUE(again[k].status.ok()) << k << ": " << again[k].status.ToString();
      EXPECT_EQ(outs2[k], data[k]) << k;
    }
  }
  EXPECT_EQ(again[data.size()].status.code(), ENOENT);
  EXPECT_EQ(chunks()->GetStats().read_errors, 1u);
}

TEST_F(ChunkStoreTest, FreeingChunksPunchesHolesAndDeletesEmptyPacks) {
  StoreOptions o = TestOptions();
  o.packs.max_pack_bytes = 8 << 20;
  o.compression_level = 0;  // keep sizes predictable: stored raw
  OpenStore(o);
  auto pieces = Chunk(MakeRandomData(24 << 20, 7));  // three packs' worth
  for (const Piece& p : pieces) ASSERT_TRUE(chunks()->Put(p.hash, p.data).ok());
  ASSERT_TRUE(chunks()->Flush().ok());
  Env* env = store_->env();
  std::string packs = dir_.Join("store/packs");
  uint64_t before = DirAllocatedBytes(env, packs);
  uint32_t first_pack = Record(pieces.front().hash)->location.pack_id;
  auto first_info = env->Stat(chunks()->PackPath(first_pack));
  ASSERT_TRUE(first_info.ok());
  EXPECT_GE(chunks()->GetStats().packs, 3u);

  // Free every other chunk of the first pack: its allocated blocks shrink.
  std::vector<size_t> first_pack_pieces;
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (Record(pieces[i].hash)->location.pack_id == first_pack) first_pack_pieces.push_back(i);
  }
  uint64_t freed = 0, holes = 0;
  for (size_t k = 0; k < first_pack_pieces.size(); k += 2) {
    const Piece& p = pieces[first_pack_pieces[k]];
    freed += p.data.size();
    ++holes;
    ASSERT_TRUE(chunks()->Unref(p.hash, 1).ok());
  }
  ASSERT_TRUE(chunks()->Reclaim().ok());
  auto after_half = env->Stat(chunks()->PackPath(first_pack));
  ASSERT_TRUE(after_half.ok());
  // Each freed record lies between live ones, so its hole loses at most the two partly used
  // 4 KiB blocks at its ends.
  ASSERT_GT(freed, holes * 2 * 4096);
  EXPECT_LE(after_half->allocated_bytes, first_info->allocated_bytes - (freed - holes * 2 * 4096))
      << "freed " << freed << " in " << holes << " holes";
  EXPECT_EQ(after_half->size, first_info->size);  // holes, not truncation
  // The survivors still read back.
  std::string out;
  for (size_t k = 1; k < first_pack_pieces.size(); k += 2) {
    const Piece& p = pieces[first_pack_pieces[k]];
    ASSERT_TRUE(chunks()->Get(p.hash, &out).ok());
    ASSERT_EQ(out, p.data);
  }
  // Free the rest of the first pack: the file goes away.
  for (size_t k = 1; k < first_pack_pieces.size(); k += 2) {
    ASSERT_TRUE(chunks()->Unref(pieces[first_pack_pieces[k]].hash, 1).ok());
  }
  ASSERT_TRUE(chunks()->Reclaim().ok());
  EXPECT_EQ(env->Stat(chunks()->PackPath(first_pack)).status().code(), ENOENT);
  // Free everything: nearly all space comes back (the active pack stays, mostly holes).
  for (const Piece& p : pieces) {
    if (Record(p.hash)) {
      ASSERT_TRUE(chunks()->Unref(p.hash, 1).ok());
    }
  }
  ASSERT_TRUE(chunks()->Reclaim().ok());
  uint64_t after = DirAllocatedBytes(env, packs);
  EXPECT_LT(after, before / 20) << "before " << before << " after " << after;
  EXPECT_EQ(chunks()->GetStats().chunks, 0u);
}

TEST_F(ChunkStoreTest, RecoveryDropsUnindexedRecordsAndPacks) {
  OpenStore();
  auto kept = Chunk(MakeRealData(4 << 20, 8));
  for (const Piece& p : kept) ASSERT_TRUE(chunks()->Put(p.hash, p.data).ok());
  ASSERT_TRUE(chunks()->Flush().ok());
  ASSERT_TRUE(store_->Close().ok());
  store_.reset();
  // A pack whose records were never indexed (as after a crash between append and index).
  Env* env = Env::Default();
  std::string stray = dir_.Join("store/packs/000099.pack");
  {
    auto f = env->OpenFile(stray, OpenMode::kCreateExclusive);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->PWrite(0, EncodePackFileHeader(PackFileHeader{1, 99, {}})).ok());
    ASSERT_TRUE((*f)->PWrite(kPackHeaderSize, MakeRandomData(1 << 20, 9)).ok());
  }
  OpenStore();
  EXPECT_EQ(env->Stat(stray).status().code(), ENOENT);
  std::string out;
  for (const Piece& p : kept) {
    ASSERT_TRUE(chunks()->Get(p.hash, &out).ok());
    ASSERT_EQ(out, p.data);
  }
}

TEST_F(ChunkStoreTest, PackCanBeScannedWithoutMetadata) {
  OpenStore();
  auto pieces = Chunk(MakeRealData(6 << 20, 10));
  for (const Piece& p : pieces) ASSERT_TRUE(chunks()->Put(p.hash, p.data).ok());
  ASSERT_TRUE(chunks()->Flush().ok());
  ChunkLocation loc = Record(pieces[3].hash)->location;
  ASSERT_TRUE(store_->Close().ok());
  store_.reset();

  std::set<ChunkHash> want;
  for (const Piece& p : pieces) want.insert(p.hash);
  auto file = Env::Default()->OpenFile(dir_.Join("store/packs/000001.pack"), OpenMode::kReadWrite);
  ASSERT_TRUE(file.ok());
  // Damage one record's payload and another's header.
  ASSERT_TRUE((*file)->PWrite(loc.offset + kRecordHeaderSize + 10, "XXXX").ok());
  std::set<ChunkHash> seen;
  ScanSummary sum;
  ASSERT_TRUE(ScanPack(file->get(), [&](const ScannedRecord& r) {
                if (r.payload_ok) seen.insert(r.header.hash);
                return true;
              }, &sum).ok());
  EXPECT_EQ(sum.records, want.size());
  EXPECT_EQ(sum.damaged_records, 1u);
  EXPECT_EQ(seen.size(), want.size() - 1);
  EXPECT_FALSE(seen.count(pieces[3].hash));
  // A header smashed by garbage: the scan resynchronises on the next record.
  uint64_t second = 0;
  ASSERT_TRUE(ScanPack(file->get(), [&](const ScannedRecord& r) {
                if (second == 0 && r.offset > kPackHeaderSize) second = r.offset;
                return true;
              }, nullptr).ok());
  ASSERT_TRUE((*file)->PWrite(kPackHeaderSize, std::string(20, '\x55')).ok());
  ScanSummary sum2;
  ASSERT_TRUE(ScanPack(file->get(), [](const ScannedRecord&) { return true; }, &sum2).ok());
  EXPECT_EQ(sum2.records, want.size() - 1);
  EXPECT_GE(sum2.skipped_bytes, second - kPackHeaderSize);
}

TEST_F(ChunkStoreTest, SecondOpenOfAStoreInUseIsRefused) {
  OpenStore();
  auto again = Store::Open(dir_.Join("store"), TestOptions());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), EBUSY);
  EXPECT_NE(again.status().message().find("already in use"), std::string::npos);
}

TEST_F(ChunkStoreTest, StorePathThatIsAFileIsAClearError) {
  std::string path = dir_.Join("file");
  {
    auto f = Env::Default()->OpenFile(path, OpenMode::kCreate);
    ASSERT_TRUE(f.ok());
  }
  auto s = Store::Open(path, TestOptions());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ENOTDIR);
}

}  // namespace
}  // namespace rankfs
