// Gc (store/gc.h) on real store directories whose packs are made partly dead by deleting files:
// what passes the threshold is compacted and nothing else, every live chunk reads back, fsck
// finds the store clean, a dry run changes nothing, and a power cut at any step of a gc leaves a
// store that opens, holds all data and is clean once its orphan packs are gone.
#include "store/gc.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "store/fault_injection_env.h"
#include "store/fsck.h"
#include "store/pack_format.h"
#include "store/rocks_fault_env.h"
#include "store/store.h"
#include "tests/testutil/fsck_text.h"
#include "tests/testutil/temp_dir.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

namespace fs = std::filesystem;

// Every file is one incompressible chunk, so every record has the same size and a pack holds
// exactly kPerPack of them: file i lives in pack i / kPerPack + 1.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr size_t kChunkBytes = 16 << 10;
#else
constexpr size_t kChunkBytes = 60 << 10;
#endif
constexpr uint64_t kRecordBytes = kRecordHeaderSize + kChunkBytes;
constexpr int kPerPack = 8;
constexpr int kPacks = 5;
constexpr Ino kFirstIno = 10;
constexpr Ino kSharingIno = 1000;  // a second file naming file 0's chunk (refcount 2)

std::string FileData(int i) { return MakeRandomData(kChunkBytes, uint64_t(i) + 1); }

// Which files are deleted, by pack: pack 1 75 % dead, pack 2 25 %, pack 3 none, pack 4 exactly
// 50 %, pack 5 all (the active pack: a clean close deletes it, a daemon killed before that leaves
// it as a pack with no live chunk, which is what SetUp makes of it).
bool Deleted(int i) {
  const int pack = i / kPerPack + 1, slot = i % kPerPack;
  switch (pack) {
    case 1:
      return slot >= 2;
    case 2:
      return slot < 2;
    case 3:
      return false;
    case 4:
      return slot % 2 == 1;
    default:
      return true;
  }
}

class GcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_.Join("store");
    StoreOptions so;
    so.compression_level = 0;
    so.packs.background_reclaim = false;
    so.packs.max_pack_bytes = kPackHeaderSize + kPerPack * kRecordBytes;
    auto s = Store::Open(dir_, so);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    Store* store = s->get();
    for (int i = 0; i < kPacks * kPerPack; ++i) {
      std::string data = FileData(i);
      ChunkHash h = ChunkHash::Of(data);
      ASSERT_TRUE(store->chunks()->Put(h, data).ok());
      ASSERT_TRUE(store->chunks()->Flush().ok());
      AddFile(store, kFirstIno + i, h);
      if (i == 0) {
        ASSERT_TRUE(store->chunks()->Ref(h, 1).ok());
        AddFile(store, kSharingIno, h);
      }
    }
    for (int i = 0; i < kPacks * kPerPack; ++i) {
      if (!Deleted(i)) {
        live_[kFirstIno + i] = FileData(i);
        continue;
      }
      MetaStore::Batch b;
      b.DeleteExtent(kFirstIno + i, 0);
      b.DeleteInode(kFirstIno + i);
      ASSERT_TRUE(store->meta()->Write(b, false).ok());
      ASSERT_TRUE(store->chunks()->Unref(ChunkHash::Of(FileData(i)), 1).ok());
    }
    live_[kSharingIno] = FileData(0);
    // Kill the daemon now, and pack 5 stays behind holding no live chunk; a clean close deletes
    // it. Put it back as the kill would have left it.
    const std::string pack5 = dir_ + "/packs/" + PackFileName(5);
    fs::copy_file(pack5, tmp_.Join("pack5"));
    ASSERT_TRUE(store->Close().ok());
    ASSERT_FALSE(fs::exists(pack5)) << "a clean close leaves no empty active pack";
    fs::copy_file(tmp_.Join("pack5"), pack5);
  }

  static void AddFile(Store* store, Ino ino, const ChunkHash& h) {
    MetaStore::Batch b;
    b.PutExtent(ino, 0, Extent{kChunkBytes, h, 0});
    InodeAttr attr;
    attr.ino = ino;
    attr.mode = 0100644;
    attr.nlink = 1;
    attr.size = kChunkBytes;
    b.PutInode(attr);
    ASSERT_TRUE(store->meta()->Write(b, false).ok());
  }

  // Pack id -> file size.
  std::map<uint32_t, uint64_t> Packs(const std::string& dir) {
    std::map<uint32_t, uint64_t> out;
    for (const auto& e : fs::directory_iterator(dir + "/packs")) {
      out[uint32_t(std::stoul(e.path().filename().string()))] = e.file_size();
    }
    return out;
  }

  GcReport RunGc(double threshold, bool dry_run = false) {
    GcOptions o;
    o.threshold_percent = threshold;
    o.dry_run = dry_run;
    o.progress = [&](std::string_view, uint64_t done, uint64_t total) {
      EXPECT_LE(done, total);
      ++progress_calls_;
    };
    auto r = Gc(dir_, o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : GcReport();
  }

  static std::string FsckText(const std::string& dir, FsckReport* out = nullptr) {
    return rankfs::FsckText(dir, nullptr, out);
  }

  // Opens the store (recovery runs), reads every live file back through its extent and checks
  // the chunk references.
  void ExpectAllDataReadable(const std::string& dir) {
    auto s = Store::Open(dir, StoreOptions());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    std::string out;
    for (const auto& [ino, data] : live_) {
      bool found = false;
      ASSERT_TRUE((*s)->meta()
                      ->ListExtents(ino, 0, UINT64_MAX,
                                    [&](uint64_t, const Extent& e) {
                                      found = true;
                                      Status st = (*s)->chunks()->Get(e.chunk, &out);
                                      EXPECT_TRUE(st.ok())
                                          << "inode " << ino << ": " << st.ToString();
                                      EXPECT_TRUE(out == data)
                                          << "inode " << ino << " reads back different bytes";
                                      return true;
                                    })
                      .ok());
      EXPECT_TRUE(found) << "inode " << ino << " lost its extent";
    }
    auto shared = (*s)->meta()->GetChunk(ChunkHash::Of(FileData(0)));
    ASSERT_TRUE(shared.ok() && shared->has_value());
    EXPECT_EQ((*shared)->refcount, 2u);
    ASSERT_TRUE((*s)->Close().ok());
  }

  bool CutGcAt(const std::string& work, uint64_t n, const std::string& path, bool then_gc);

  TempDir tmp_;
  std::string dir_;
  std::map<Ino, std::string> live_;
  int progress_calls_ = 0;
  std::set<uint32_t> orphans_seen_;  // packs a cut gc left without an indexed chunk
};

TEST_F(GcTest, CompactsThePacksPastTheThresholdAndNothingElse) {
  const auto before = Packs(dir_);
  ASSERT_EQ(before.size(), size_t(kPacks));
  const uint64_t full = kPackHeaderSize + kPerPack * kRecordBytes;
  for (const auto& [id, size] : before) EXPECT_EQ(size, full) << "pack " << id;
  ASSERT_EQ(FsckText(dir_),
            "orphan pack: pack 5 (" + std::to_string(full) + " bytes) holds no indexed chunk\n");

  GcReport r = RunGc(50);
  EXPECT_FALSE(r.dry_run);
  EXPECT_EQ(r.packs, uint64_t(kPacks));
  // Packs 1 (75 % dead), 4 (exactly 50 %) and 5 (no live chunk); not 2 (25 %) nor 3 (0 %).
  ASSERT_EQ(r.candidates.size(), 3u);
  EXPECT_EQ(r.candidates[0].pack_id, 1u);
  EXPECT_DOUBLE_EQ(r.candidates[0].dead_percent, 75.0);
  EXPECT_EQ(r.candidates[0].live_chunks, 2u);
  EXPECT_EQ(r.candidates[1].pack_id, 4u);
  EXPECT_DOUBLE_EQ(r.candidates[1].dead_percent, 50.0);
  EXPECT_EQ(r.candidates[2].pack_id, 5u);
  EXPECT_EQ(r.candidates[2].live_chunks, 0u);
  EXPECT_EQ(r.candidates[2].new_pack_id, 0u);
  EXPECT_EQ(r.Compacted(), 3u);
  EXPECT_EQ(r.Skipped(), 0u);
  // Their 6 live records went into one new pack, 6.
  ASSERT_EQ(r.new_packs.size(), 1u);
  EXPECT_EQ(r.new_packs[0].pack_id, 6u);
  EXPECT_EQ(r.new_packs[0].chunks, 6u);
  EXPECT_EQ(r.candidates[0].new_pack_id, 6u);
  EXPECT_EQ(r.chunks_moved, 6u);
  EXPECT_EQ(r.bytes_before, 3 * full);
  EXPECT_EQ(r.bytes_after, kPackHeaderSize + 6 * kRecordBytes);
  EXPECT_GT(progress_calls_, 0);

  const auto after = Packs(dir_);
  EXPECT_EQ(after, (std::map<uint32_t, uint64_t>{
                       {2, full}, {3, full}, {6, kPackHeaderSize + 6 * kRecordBytes}}));
  EXPECT_EQ(FsckText(dir_), "");
  ExpectAllDataReadable(dir_);
  EXPECT_EQ(FsckText(dir_), "");

  // Nothing is left past the threshold: a second run changes nothing.
  GcReport again = RunGc(50);
  EXPECT_TRUE(again.candidates.empty());
  EXPECT_EQ(Packs(dir_), after);
}

TEST_F(GcTest, ThresholdDecidesWhichPacksGo) {
  GcReport high = RunGc(80);
  ASSERT_EQ(high.candidates.size(), 1u);  // only the pack without live chunks
  EXPECT_EQ(high.candidates[0].pack_id, 5u);
  EXPECT_TRUE(high.new_packs.empty());
  EXPECT_EQ(Packs(dir_).size(), size_t(kPacks - 1));
  EXPECT_EQ(Packs(dir_).count(5), 0u);

  GcReport low = RunGc(20);
  std::set<uint32_t> ids;
  for (const GcPack& c : low.candidates) ids.insert(c.pack_id);
  EXPECT_EQ(ids, (std::set<uint32_t>{1, 2, 4}));
  EXPECT_EQ(low.chunks_moved, 2u + 6u + 4u);
  EXPECT_EQ(Packs(dir_).size(), 2u);  // pack 3 and the new one
  EXPECT_EQ(FsckText(dir_), "");
  ExpectAllDataReadable(dir_);

  GcOptions bad;
  bad.threshold_percent = 101;
  auto r = Gc(dir_, bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), EINVAL);
}

TEST_F(GcTest, DryRunReportsThePlanAndChangesNothing) {
  const auto before = Packs(dir_);
  std::map<ChunkHash, ChunkRecord> index_before;
  {
    // A mount first: its recovery deletes pack 5 (no live chunk), so what follows compares a
    // store that only a dry run touched.
    auto s = Store::Open(dir_, StoreOptions());
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->meta()
                    ->ForEachChunk([&](const ChunkHash& h, const ChunkRecord& r) {
                      index_before[h] = r;
                      return true;
                    })
                    .ok());
  }
  const auto reopened = Packs(dir_);  // pack 5 is gone now, the rest unchanged
  ASSERT_EQ(reopened.size(), before.size() - 1);

  GcReport r = RunGc(50, /*dry_run=*/true);
  EXPECT_TRUE(r.dry_run);
  ASSERT_EQ(r.candidates.size(), 2u);
  EXPECT_EQ(r.Compacted(), 2u);
  ASSERT_EQ(r.new_packs.size(), 1u);
  EXPECT_EQ(r.new_packs[0].chunks, 6u);
  EXPECT_EQ(r.bytes_after, kPackHeaderSize + 6 * kRecordBytes);
  EXPECT_EQ(Packs(dir_), reopened);
  auto s = Store::Open(dir_, StoreOptions());
  ASSERT_TRUE(s.ok());
  std::map<ChunkHash, ChunkRecord> index_after;
  ASSERT_TRUE((*s)->meta()
                  ->ForEachChunk([&](const ChunkHash& h, const ChunkRecord& rec) {
                    index_after[h] = rec;
                    return true;
                  })
                  .ok());
  EXPECT_EQ(index_after, index_before);
}

TEST_F(GcTest, DamagedPackIsLeftAloneAndNamed) {
  // Flip a byte inside the stored bytes of pack 1's first record (file 0: live).
  {
    std::fstream f(dir_ + "/packs/000001.pack", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(kPackHeaderSize + kRecordHeaderSize + 100));
    f.put('\x5a');
    ASSERT_TRUE(f.good());
  }
  GcReport r = RunGc(50);
  ASSERT_EQ(r.candidates.size(), 3u);
  EXPECT_FALSE(r.candidates[0].compacted);
  EXPECT_NE(r.candidates[0].skipped.find("CRC32C"), std::string::npos) << r.candidates[0].skipped;
  EXPECT_EQ(r.Skipped(), 1u);
  const auto after = Packs(dir_);
  EXPECT_EQ(after.count(1), 1u);
  EXPECT_EQ(after.count(4), 0u);
  ASSERT_EQ(r.new_packs.size(), 1u);
  EXPECT_EQ(r.new_packs[0].chunks, 4u);  // pack 4's, not pack 1's
  FsckReport fr;
  FsckText(dir_, &fr);
  ASSERT_EQ(fr.findings.size(), 1u);
  EXPECT_EQ(fr.findings[0].issue, FsckIssue::kDamagedChunk);
}

// A power cut at step `n` of a gc: the first `n` writes, syncs and deletes whose path contains
// `path` go through, then nothing more reaches the disk and unsynced bytes vanish. fsck must find
// at worst orphan packs; the next gc (`then_gc`) or mount removes them, and then the store is
// clean and holds every file. Returns whether the gc completed before the cut.
bool GcTest::CutGcAt(const std::string& work, uint64_t n, const std::string& path, bool then_gc) {
  const uint32_t kMutating = kFaultWrite | kFaultSync | kFaultPunch | kFaultTruncate |
                             kFaultDelete | kFaultRename | kFaultDirOp;
  const std::string where = "cut after " + std::to_string(n) + " steps on '" + path + "'";
  fs::remove_all(work);
  fs::copy(dir_, work, fs::copy_options::recursive);
  bool finished = false;
  {
    auto controller = std::make_shared<FaultController>();
    FaultInjectionEnv env(Env::Default(), controller);
    RocksFaultEnv rocks_env(controller);
    controller->FailAfter(kMutating, n, EIO, path);
    GcOptions o;
    o.env = &env;
    o.rocks_env = rocks_env.env();
    auto r = Gc(work, o);
    finished = r.ok() && controller->injected() == 0;
    EXPECT_TRUE(env.DropUnsyncedData().ok());
    Status ds = rocks_env.DropUnsyncedData();
    EXPECT_TRUE(ds.ok()) << ds.ToString();
  }
  FsckReport fr;
  std::string text = FsckText(work, &fr);
  EXPECT_FALSE(text.starts_with("fsck failed")) << where << ": " << text;
  for (const FsckFinding& f : fr.findings) {
    EXPECT_EQ(f.issue, FsckIssue::kOrphanPack) << where << ":\n" << text;
    orphans_seen_.insert(uint32_t(std::stoul(f.message.substr(5))));  // "pack N (...)"
  }
  if (then_gc) {
    auto again = Gc(work, GcOptions());
    EXPECT_TRUE(again.ok()) << where << ": " << again.status().ToString();
    EXPECT_EQ(FsckText(work), "") << where << ", then gc";
    ExpectAllDataReadable(work);
  } else {
    ExpectAllDataReadable(work);  // mounts: recovery deletes the orphan packs
    EXPECT_EQ(FsckText(work), "") << where << ", then mount";
  }
  return finished;
}

TEST_F(GcTest, PowerCutAtAnyStepLeavesACleanStoreWithAllData) {
  // Cut at every step on the packs (files and directory), which reaches every window between
  // gc's own steps, and at every 2nd step (6th in sanitizer builds) of all files, RocksDB's
  // included (opening, the index batch, closing).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  const uint64_t stride = 6;
#else
  const uint64_t stride = 2;
#endif
  const std::string work = tmp_.Join("work");
  const std::vector<std::pair<std::string, uint64_t>> sweeps = {{"/packs", 1}, {"", stride}};
  for (const auto& [path, step] : sweeps) {
    int rounds = 0;
    bool finished = false;
    for (uint64_t n = 0; n < 400 && !finished; n += step, ++rounds) {
      finished = CutGcAt(work, n, path, rounds % 2 == 0);
      if (HasFailure()) return;
    }
    EXPECT_TRUE(finished) << "gc never completed within the steps tried ('" << path << "')";
    EXPECT_GT(rounds, 5) << path;
  }
  // Both windows were hit: the new pack written but not indexed, and old packs (1, 4) whose
  // chunks had moved but which were not deleted yet. (Pack 5 is an orphan from the start.)
  EXPECT_TRUE(orphans_seen_.count(6));
  EXPECT_TRUE(orphans_seen_.count(1) || orphans_seen_.count(4));
}

}  // namespace
}  // namespace rankfs
