// FlushPipeline over a scripted ChunkStore: batches of one inode commit in submission order
// while the puts run on several workers; extents are committed only after a Flush() that
// followed their puts; a failed put fails its batch alone and gives back the references the
// batch took; Drain and Stop finish everything.
#include "fs/flush_pipeline.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

namespace rankfs {
namespace {

// Counts references per hash, can fail chosen hashes, sleeps a little in Put so that workers
// overlap, and numbers its Flush calls.
class ScriptedStore final : public ChunkStore {
 public:
  Status Put(const ChunkHash& h, std::string_view data) override {
    std::this_thread::sleep_for(std::chrono::microseconds(Jitter()));
    if (IsSlow(h)) std::this_thread::sleep_for(std::chrono::milliseconds(30));
    std::lock_guard<std::mutex> l(mu_);
    if (fail_.count(h)) return Status(ENOSPC, "scripted failure");
    ++refs_[h];
    put_after_flush_[h] = flushes_;
    return Status::Ok();
  }
  Status PutScoped(const ChunkHash& h, std::string_view d, uint32_t) override { return Put(h, d); }
  Status Ref(const ChunkHash& h, uint64_t n) override {
    std::lock_guard<std::mutex> l(mu_);
    refs_[h] += n;
    return Status::Ok();
  }
  Status Unref(const ChunkHash& h, uint64_t n) override {
    std::lock_guard<std::mutex> l(mu_);
    refs_[h] -= n;
    return Status::Ok();
  }
  Status Get(const ChunkHash&, std::string*) override { return Status(ENOTSUP, "not scripted"); }
  Status Verify(const ChunkHash&) override { return Status::Ok(); }
  Status Flush() override {
    std::lock_guard<std::mutex> l(mu_);
    ++flushes_;
    return Status::Ok();
  }
  Status Reclaim() override { return Status::Ok(); }
  ChunkStoreStats GetStats() override { return {}; }

  void Slow(const ChunkHash& h) {
    std::lock_guard<std::mutex> l(mu_);
    slow_.insert(h);
  }
  bool IsSlow(const ChunkHash& h) {
    std::lock_guard<std::mutex> l(mu_);
    return slow_.count(h) != 0;
  }
  void Fail(const ChunkHash& h) {
    std::lock_guard<std::mutex> l(mu_);
    fail_.insert(h);
  }
  int64_t Refs(const ChunkHash& h) {
    std::lock_guard<std::mutex> l(mu_);
    return refs_[h];
  }
  // The number of Flush calls made before the chunk was put.
  uint64_t PutAfterFlush(const ChunkHash& h) {
    std::lock_guard<std::mutex> l(mu_);
    return put_after_flush_.at(h);
  }
  uint64_t Flushes() {
    std::lock_guard<std::mutex> l(mu_);
    return flushes_;
  }

 private:
  int Jitter() {
    std::lock_guard<std::mutex> l(mu_);
    return int(rng_() % 300);
  }
  std::mutex mu_;
  std::mt19937 rng_{7};
  std::map<ChunkHash, int64_t> refs_;
  std::map<ChunkHash, uint64_t> put_after_flush_;
  std::set<ChunkHash> fail_, slow_;
  uint64_t flushes_ = 0;
};

ChunkHash HashOf(Ino ino, size_t batch, size_t chunk) {
  return ChunkHash::Of(std::to_string(ino) + "/" + std::to_string(batch) + "/" +
                       std::to_string(chunk));
}

std::shared_ptr<FlushBatch> MakeBatch(Ino ino, size_t index, size_t chunks) {
  auto b = std::make_shared<FlushBatch>();
  b->ino = ino;
  b->start = index * 1000;  // batches of one inode lie in index order
  for (size_t i = 0; i < chunks; ++i) {
    auto c = std::make_shared<StreamChunk>();
    c->offset = b->start + i * 10;
    c->bytes = std::make_shared<const std::string>(10, char('a' + i % 26));
    c->hash = HashOf(ino, index, i);  // as if guessed: the pipeline does not hash it
    c->hash_state = StreamChunk::kHashed;
    b->chunks.push_back(std::move(c));
  }
  b->end = b->start + chunks * 10;
  b->bytes = b->end - b->start;
  return b;
}

struct Recorder {
  std::mutex mu;
  std::map<Ino, std::vector<uint64_t>> commits;  // ino -> batch starts, in commit order
  std::map<Ino, std::vector<Status>> finished;
  std::map<const FlushBatch*, uint64_t> flushes_at_commit;
};

TEST(FlushPipelineTest, BatchesOfAnInodeCommitInOrderAfterTheFlushThatCoversThem) {
  ScriptedStore store;
  Recorder rec;
  FlushPipeline p(
      &store, nullptr, nullptr, 3,
      [&](FlushBatch& b) {
        std::lock_guard<std::mutex> l(rec.mu);
        rec.commits[b.ino].push_back(b.start);
        rec.flushes_at_commit[&b] = store.Flushes();
        return Status::Ok();
      },
      [&](const std::shared_ptr<FlushBatch>& b, const Status& st) {
        std::lock_guard<std::mutex> l(rec.mu);
        rec.finished[b->ino].push_back(st);
      },
      nullptr);
  std::vector<std::shared_ptr<FlushBatch>> all;
  for (size_t i = 0; i < 20; ++i) {
    for (Ino ino : {Ino(100), Ino(200), Ino(300)}) {
      // Every fourth batch has a slow chunk, so the small batches behind it are stored first.
      all.push_back(MakeBatch(ino, i, i % 4 == 0 ? 6 : 1 + (i * 7 + ino) % 3));
      if (i % 4 == 0) store.Slow(all.back()->chunks[5]->hash);
      p.Submit(all.back());
    }
  }
  p.Drain();
  std::lock_guard<std::mutex> l(rec.mu);
  for (Ino ino : {Ino(100), Ino(200), Ino(300)}) {
    ASSERT_EQ(rec.commits[ino].size(), 20u);
    EXPECT_TRUE(std::is_sorted(rec.commits[ino].begin(), rec.commits[ino].end())) << ino;
    for (const Status& st : rec.finished[ino]) EXPECT_TRUE(st.ok()) << st.ToString();
  }
  for (const auto& b : all) {
    for (const auto& c : b->chunks) {
      EXPECT_EQ(store.Refs(c->hash), 1);
      // The chunk was put before the Flush() that preceded its extents' commit.
      EXPECT_LT(store.PutAfterFlush(c->hash), rec.flushes_at_commit[b.get()]);
    }
  }
  // Group commit: fewer flushes than batches.
  EXPECT_LT(store.Flushes(), all.size());
  EXPECT_EQ(p.GetStats().batches, all.size());
}

TEST(FlushPipelineTest, AFailedPutFailsItsBatchAloneAndGivesBackItsReferences) {
  ScriptedStore store;
  Recorder rec;
  FlushPipeline p(
      &store, nullptr, nullptr, 2, [&](FlushBatch& b) { return Status::Ok(); },
      [&](const std::shared_ptr<FlushBatch>& b, const Status& st) {
        std::lock_guard<std::mutex> l(rec.mu);
        rec.finished[b->ino].push_back(st);
      },
      nullptr);
  auto good = MakeBatch(1, 0, 8);
  auto bad = MakeBatch(2, 0, 8);
  store.Fail(bad->chunks[5]->hash);
  p.Submit(bad);
  p.Submit(good);
  p.Drain();
  std::lock_guard<std::mutex> l(rec.mu);
  ASSERT_EQ(rec.finished[1].size(), 1u);
  EXPECT_TRUE(rec.finished[1][0].ok());
  ASSERT_EQ(rec.finished[2].size(), 1u);
  EXPECT_EQ(rec.finished[2][0].code(), ENOSPC);
  for (const auto& c : bad->chunks) EXPECT_EQ(store.Refs(c->hash), 0) << "reference leaked";
  for (const auto& c : good->chunks) EXPECT_EQ(store.Refs(c->hash), 1);
  EXPECT_EQ(bad->chunks.size(), 8u);  // the bytes stay with the batch for the owner
}

TEST(FlushPipelineTest, AFailedCommitGivesBackItsReferencesAndAPrecheckErrorFailsTheBatch) {
  ScriptedStore store;
  std::atomic<int> commits{0};
  std::atomic<bool> space{true};
  std::vector<Status> results;
  std::mutex mu;
  FlushPipeline p(
      &store, nullptr, nullptr, 2,
      [&](FlushBatch& b) {
        ++commits;
        return b.ino == 7 ? Status(EIO, "scripted commit failure") : Status::Ok();
      },
      [&](const std::shared_ptr<FlushBatch>&, const Status& st) {
        std::lock_guard<std::mutex> l(mu);
        results.push_back(st);
      },
      [&] { return space ? Status::Ok() : Status(ENOSPC, "below the reserve"); });
  auto b7 = MakeBatch(7, 0, 4);
  p.Submit(b7);
  p.Drain();
  for (const auto& c : b7->chunks) EXPECT_EQ(store.Refs(c->hash), 0);
  space = false;
  auto b8 = MakeBatch(8, 0, 4);
  p.Submit(b8);
  p.Stop();
  std::lock_guard<std::mutex> l(mu);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].code(), EIO);
  EXPECT_EQ(results[1].code(), ENOSPC);
  EXPECT_EQ(commits.load(), 1);  // a batch whose puts failed is not committed
}

}  // namespace
}  // namespace rankfs
