// ChunkCache: LRU byte cap, and one store read per chunk however many callers miss on it at
// once (concurrent readers of the same content must decompress it once).
#include "fs/chunk_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace rankfs {
namespace {

// A ChunkStore that serves Get from a map, counts the reads per hash and can hold every read
// until the test opens the gate, so that the test decides which callers overlap.
class GatedStore : public ChunkStore {
 public:
  void Add(const std::string& bytes) { chunks_[ChunkHash::Of(bytes)] = bytes; }
  void Fail(const ChunkHash& h) { failing_ = h; }
  void Close() {
    std::lock_guard<std::mutex> l(mu_);
    open_ = false;
  }
  void Open() {
    {
      std::lock_guard<std::mutex> l(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  // Waits until `n` reads have reached the gate (or been served).
  bool WaitForReads(int n) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, std::chrono::seconds(10), [&] { return started_ >= n; });
  }
  int reads(const ChunkHash& h) {
    std::lock_guard<std::mutex> l(mu_);
    return reads_[h];
  }

  Status Get(const ChunkHash& hash, std::string* out) override {
    std::unique_lock<std::mutex> l(mu_);
    ++reads_[hash];
    ++started_;
    cv_.notify_all();
    cv_.wait(l, [&] { return open_; });
    if (failing_ && *failing_ == hash) return Status(EIO, "chunk is damaged");
    auto it = chunks_.find(hash);
    if (it == chunks_.end()) return Status(ENOENT, "not stored");
    *out = it->second;
    return Status::Ok();
  }
  Status Put(const ChunkHash&, std::string_view) override { return Status(ENOTSUP, "read-only"); }
  Status PutScoped(const ChunkHash&, std::string_view, uint32_t) override {
    return Status(ENOTSUP, "read-only");
  }
  Status Ref(const ChunkHash&, uint64_t) override { return Status(ENOTSUP, "read-only"); }
  Status Unref(const ChunkHash&, uint64_t) override { return Status(ENOTSUP, "read-only"); }
  Status Verify(const ChunkHash&) override { return Status::Ok(); }
  Status Flush() override { return Status::Ok(); }
  Status Reclaim() override { return Status::Ok(); }
  ChunkStoreStats GetStats() override { return {}; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  int started_ = 0;
  std::map<ChunkHash, std::string> chunks_;
  std::map<ChunkHash, int> reads_;
  std::optional<ChunkHash> failing_;
};

std::string Bytes(char seed, size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = char(seed + i * 7 + (i >> 5));
  return s;
}

// Starts `n` threads that each Get `h` and record what they got.
struct Readers {
  Readers(ChunkCache* cache, const ChunkHash& h, int n) : results(n) {
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([cache, h, i, this] { results[i].emplace(cache->Get(h)); });
    }
  }
  void Join() {
    for (auto& t : threads) t.join();
  }
  // Result has no empty state; each slot is filled by its thread before Join returns.
  std::vector<std::optional<Result<ChunkCache::Value>>> results;
  std::vector<std::thread> threads;
};

// Waits (up to 10 s) until `n` callers wait for another's read.
void WaitForSharedLoads(const ChunkCache& cache, uint64_t n) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (cache.shared_loads() < n && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

TEST(ChunkCacheTest, ConcurrentMissesReadTheStoreOnce) {
  GatedStore store;
  const std::string data = Bytes('a', 32 << 10);
  const ChunkHash h = ChunkHash::Of(data);
  store.Add(data);
  ChunkCache cache(&store, 16 << 20);
  store.Close();
  Readers readers(&cache, h, 8);
  ASSERT_TRUE(store.WaitForReads(1));
  // The other seven reach the cache while the first read is held at the gate.
  WaitForSharedLoads(cache, 7);
  EXPECT_EQ(cache.shared_loads(), 7u);
  store.Open();
  readers.Join();
  EXPECT_EQ(store.reads(h), 1);
  EXPECT_EQ(cache.misses(), 1u);
  for (auto& slot : readers.results) {
    ASSERT_TRUE(slot.has_value());
    auto& r = *slot;
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(**r, data);
    EXPECT_EQ(r->get(), (*readers.results[0])->get());  // one buffer, shared
  }
  // Then it is cached: no further read.
  auto again = cache.Get(h);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(store.reads(h), 1);
  EXPECT_EQ(cache.hits(), 1u);
}

TEST(ChunkCacheTest, WaitersGetTheReadsErrorAndALaterGetReadsAgain) {
  GatedStore store;
  const std::string data = Bytes('q', 20000);
  const ChunkHash h = ChunkHash::Of(data);
  store.Add(data);
  store.Fail(h);
  ChunkCache cache(&store, 16 << 20);
  store.Close();
  Readers readers(&cache, h, 4);
  ASSERT_TRUE(store.WaitForReads(1));
  WaitForSharedLoads(cache, 3);
  store.Open();
  readers.Join();
  EXPECT_EQ(store.reads(h), 1);
  for (auto& slot : readers.results) {
    ASSERT_TRUE(slot.has_value());
    ASSERT_FALSE(slot->ok());
    EXPECT_EQ(slot->status().code(), EIO);
  }
  // A failed read is not cached: once the chunk is healed, the next Get reads it again.
  store.Fail(ChunkHash::Of(std::string("other")));
  auto healed = cache.Get(h);
  ASSERT_TRUE(healed.ok()) << healed.status().ToString();
  EXPECT_EQ(**healed, data);
  EXPECT_EQ(store.reads(h), 2);
}

TEST(ChunkCacheTest, DifferentChunksAreReadInParallel) {
  GatedStore store;
  const std::string a = Bytes('a', 4096), b = Bytes('b', 4096);
  store.Add(a);
  store.Add(b);
  ChunkCache cache(&store, 16 << 20);
  store.Close();
  Readers ra(&cache, ChunkHash::Of(a), 1), rb(&cache, ChunkHash::Of(b), 1);
  // Both reads reach the store while neither has finished: a load holds no lock while it reads.
  EXPECT_TRUE(store.WaitForReads(2));
  store.Open();
  ra.Join();
  rb.Join();
  auto& got_a = *ra.results[0];
  auto& got_b = *rb.results[0];
  ASSERT_TRUE(got_a.ok());
  ASSERT_TRUE(got_b.ok());
  EXPECT_EQ(**got_a, a);
  EXPECT_EQ(**got_b, b);
  EXPECT_EQ(cache.shared_loads(), 0u);
}

TEST(ChunkCacheTest, EvictsLeastRecentlyUsedPastTheCap) {
  GatedStore store;
  std::vector<std::string> chunks;
  for (int i = 0; i < 40; ++i) {
    chunks.push_back(Bytes(char('A' + i), 64 << 10));
    store.Add(chunks.back());
  }
  // 16 shards of 128 KiB: each shard keeps at most two 64 KiB chunks.
  ChunkCache cache(&store, 16 * (128 << 10));
  for (const auto& c : chunks) ASSERT_TRUE(cache.Get(ChunkHash::Of(c)).ok());
  EXPECT_LE(cache.bytes(), uint64_t(16 * (128 << 10)));
  EXPECT_GT(cache.bytes(), 0u);
  // The last chunk read is cached; reading it again does not touch the store.
  const ChunkHash last = ChunkHash::Of(chunks.back());
  ASSERT_TRUE(cache.Get(last).ok());
  EXPECT_EQ(store.reads(last), 1);
  // With no capacity nothing is kept, but concurrent callers still share one read.
  ChunkCache none(&store, 0);
  ASSERT_TRUE(none.Get(last).ok());
  ASSERT_TRUE(none.Get(last).ok());
  EXPECT_EQ(store.reads(last), 3);
  EXPECT_EQ(none.bytes(), 0u);
}

// The staging path's claims (FsCore::StageRead): a claimed chunk is read once for everyone;
// it is cached only when kept or when someone waited for it; claims never block.
TEST(ChunkCacheTest, ClaimsShareOneReadAndCacheOnlyWhatIsKeptOrAwaited) {
  GatedStore store;
  const std::string data = Bytes('c', 24 << 10);
  const ChunkHash h = ChunkHash::Of(data);
  store.Add(data);
  ChunkCache cache(&store, 16 << 20);
  ChunkCache::Value v;

  // Claimed, published without keeping and with nobody waiting: nothing cached.
  ASSERT_EQ(cache.TryClaim(h, &v), ChunkCache::Lookup::kClaimed);
  cache.Publish(h, Status::Ok(), data, /*keep=*/false);
  EXPECT_EQ(cache.Peek(h), nullptr);
  EXPECT_EQ(cache.bytes(), 0u);

  // A second claimer does not wait, but counts as waiting: the bytes are kept for its Get.
  ASSERT_EQ(cache.TryClaim(h, &v), ChunkCache::Lookup::kClaimed);
  EXPECT_EQ(cache.TryClaim(h, &v), ChunkCache::Lookup::kBusy);
  cache.Publish(h, Status::Ok(), data, /*keep=*/false);
  auto later = cache.Get(h);
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(**later, data);
  EXPECT_EQ(store.reads(h), 0);
  cache.Erase(h);

  // Claimed while a Get waits for it: the waiter gets the published bytes, and they are cached.
  ASSERT_EQ(cache.TryClaim(h, &v), ChunkCache::Lookup::kClaimed);
  Readers readers(&cache, h, 1);
  WaitForSharedLoads(cache, 1);
  ASSERT_EQ(cache.shared_loads(), 1u);
  cache.Publish(h, Status::Ok(), data, /*keep=*/false);
  readers.Join();
  ASSERT_TRUE(readers.results[0]->ok());
  EXPECT_EQ(*readers.results[0]->value(), data);
  EXPECT_EQ(store.reads(h), 0) << "the claimer's read served the waiter";
  ASSERT_NE(cache.Peek(h), nullptr);
  EXPECT_EQ(cache.TryClaim(h, &v), ChunkCache::Lookup::kHit);
  EXPECT_EQ(*v, data);

  // An error published reaches the waiter; a kept chunk is cached with nobody waiting.
  const std::string other = Bytes('d', 8000);
  const ChunkHash h2 = ChunkHash::Of(other);
  ASSERT_EQ(cache.TryClaim(h2, &v), ChunkCache::Lookup::kClaimed);
  Readers failed(&cache, h2, 1);
  WaitForSharedLoads(cache, 2);
  cache.Publish(h2, Status(EIO, "damaged"), {}, /*keep=*/true);
  failed.Join();
  EXPECT_EQ(failed.results[0]->status().code(), EIO);
  EXPECT_EQ(cache.Peek(h2), nullptr);
  ASSERT_EQ(cache.TryClaim(h2, &v), ChunkCache::Lookup::kClaimed);
  cache.Publish(h2, Status::Ok(), other, /*keep=*/true);
  ASSERT_NE(cache.Peek(h2), nullptr);
  EXPECT_EQ(*cache.Peek(h2), other);
}

// Each load wakes its own waiters (fs/chunk_cache.h, Load): loads of one shard ending in any
// order release exactly the callers waiting for them, each with its own chunk's bytes, and a
// load from the store (Get) beside the claims is shared the same way.
TEST(ChunkCacheTest, LoadsOfOneShardReleaseTheirOwnWaiters) {
  // Three chunks of the same shard (the shard is chosen by the hash's second byte).
  std::vector<std::string> same;
  const uint8_t shard = ChunkHash::Of(Bytes('s', 9000)).bytes[1] % 16;
  for (int i = 0; same.size() < 3 && i < 10000; ++i) {
    std::string b = Bytes(char(i), 9000 + size_t(i));
    if (ChunkHash::Of(b).bytes[1] % 16 == shard) same.push_back(std::move(b));
  }
  ASSERT_EQ(same.size(), 3u);
  const ChunkHash a = ChunkHash::Of(same[0]), b = ChunkHash::Of(same[1]);
  const ChunkHash c = ChunkHash::Of(same[2]);
  GatedStore store;
  store.Add(same[2]);
  ChunkCache cache(&store, 16 << 20);
  ChunkCache::Value v;
  ASSERT_EQ(cache.TryClaim(a, &v), ChunkCache::Lookup::kClaimed);
  ASSERT_EQ(cache.TryClaim(b, &v), ChunkCache::Lookup::kClaimed);
  store.Close();
  Readers rc(&cache, c, 1);  // reads c from the store, held at the gate
  ASSERT_TRUE(store.WaitForReads(1));
  Readers ra(&cache, a, 2), rb(&cache, b, 2), rc2(&cache, c, 2);
  WaitForSharedLoads(cache, 6);
  ASSERT_EQ(cache.shared_loads(), 6u);
  // b ends first, then c's store read, then a: each set of waiters gets its own chunk.
  cache.Publish(b, Status::Ok(), same[1], /*keep=*/false);
  rb.Join();
  store.Open();
  rc.Join();
  rc2.Join();
  cache.Publish(a, Status::Ok(), same[0], /*keep=*/true);
  ra.Join();
  for (auto* r : {&ra, &rb, &rc, &rc2}) {
    const std::string& want = r == &ra ? same[0] : r == &rb ? same[1] : same[2];
    for (auto& slot : r->results) {
      ASSERT_TRUE(slot.has_value());
      ASSERT_TRUE(slot->ok()) << slot->status().ToString();
      EXPECT_EQ(*slot->value(), want);
    }
  }
  EXPECT_EQ(store.reads(c), 1);
  EXPECT_EQ(cache.misses(), 3u);  // two claims and one store read, for seven callers
}

}  // namespace
}  // namespace rankfs
