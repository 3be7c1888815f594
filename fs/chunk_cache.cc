#include "fs/chunk_cache.h"

namespace rankfs {
namespace {
std::atomic<uint64_t> live_chunk_bytes{0};
}  // namespace

std::shared_ptr<const std::string> NewChunkBytes(std::string bytes) {
  const uint64_t n = bytes.capacity();
  live_chunk_bytes.fetch_add(n, std::memory_order_relaxed);
  return std::shared_ptr<const std::string>(new std::string(std::move(bytes)),
                                            [n](const std::string* s) {
                                              live_chunk_bytes.fetch_sub(n, std::memory_order_relaxed);
                                              delete s;
                                            });
}

uint64_t LiveChunkBytes() { return live_chunk_bytes.load(std::memory_order_relaxed); }

ChunkCache::ChunkCache(ChunkStore* store, uint64_t capacity_bytes)
    : store_(store), shard_capacity_(capacity_bytes / kShards), shards_(kShards) {}

Result<ChunkCache::Value> ChunkCache::Get(const ChunkHash& hash) {
  Shard& s = ShardFor(hash);
  std::shared_ptr<Load> load;
  {
    std::unique_lock<std::mutex> l(s.mu);
    auto it = s.map.find(hash);
    if (it != s.map.end()) {
      s.lru.splice(s.lru.begin(), s.lru, it->second);
      ++hits_;
      return it->second->second;
    }
    if (auto in = s.loading.find(hash); in != s.loading.end()) {
      // Another caller is reading this chunk: its result is ours too. Its error as well: a
      // damaged chunk is damaged for everyone, and reading it twice would only log it twice.
      std::shared_ptr<Load> other = in->second;
      ++shared_loads_;
      ++other->waiters;
      other->loaded.wait(l, [&] { return other->done; });
      if (!other->status.ok()) return other->status;
      return other->value;
    }
    load = std::make_shared<Load>();
    s.loading.emplace(hash, load);
  }
  ++misses_;
  std::string data;
  Status st = store_->Get(hash, &data);
  Value v = st.ok() ? NewChunkBytes(std::move(data)) : nullptr;
  {
    std::lock_guard<std::mutex> l(s.mu);
    s.loading.erase(hash);
    if (v != nullptr && shard_capacity_ > 0) InsertLocked(s, hash, v);
    load->done = true;
    load->status = st;
    load->value = v;
  }
  load->loaded.notify_all();
  if (!st.ok()) return st;
  return v;
}

ChunkCache::Lookup ChunkCache::TryClaim(const ChunkHash& hash, Value* value) {
  Shard& s = ShardFor(hash);
  std::lock_guard<std::mutex> l(s.mu);
  auto it = s.map.find(hash);
  if (it != s.map.end()) {
    s.lru.splice(s.lru.begin(), s.lru, it->second);
    ++hits_;
    *value = it->second->second;
    return Lookup::kHit;
  }
  if (auto in = s.loading.find(hash); in != s.loading.end()) {
    // Four ranks staging the same chunks ask for them in the same order: without this, the
    // loader would publish most of them before the others reach Get, keep none, and each
    // rank would decompress them again.
    ++in->second->waiters;
    return Lookup::kBusy;
  }
  s.loading.emplace(hash, std::make_shared<Load>());
  ++misses_;
  return Lookup::kClaimed;
}

void ChunkCache::Publish(const ChunkHash& hash, const Status& status, std::string_view bytes,
                         bool keep) {
  Shard& s = ShardFor(hash);
  // A chunk kept whatever happens is copied before the shard is locked: the copy (and its
  // allocation) then does not hold up the shard's other callers.
  Value copy = status.ok() && keep ? NewChunkBytes(std::string(bytes)) : nullptr;
  std::shared_ptr<Load> load;
  {
    std::lock_guard<std::mutex> l(s.mu);
    auto it = s.loading.find(hash);
    if (it == s.loading.end()) return;  // no claim: nothing to end
    load = std::move(it->second);
    s.loading.erase(it);
    // Otherwise copied while the shard is locked, so that no Get can start waiting after the
    // decision not to.
    if (copy == nullptr && status.ok() && load->waiters > 0) {
      copy = NewChunkBytes(std::string(bytes));
    }
    if (copy != nullptr) {
      load->value = std::move(copy);
      if (shard_capacity_ > 0) InsertLocked(s, hash, load->value);
    }
    load->status = status;
    load->done = true;
  }
  load->loaded.notify_all();
}

void ChunkCache::InsertLocked(Shard& s, const ChunkHash& hash, const Value& v) {
  if (s.map.count(hash)) return;  // another reader or writer filled it meanwhile
  s.lru.emplace_front(hash, v);
  s.map.emplace(hash, s.lru.begin());
  s.bytes += v->size();
  while (s.bytes > shard_capacity_ && s.lru.size() > 1) {
    auto& victim = s.lru.back();
    s.bytes -= victim.second->size();
    s.map.erase(victim.first);
    s.lru.pop_back();
  }
}

ChunkCache::Value ChunkCache::Peek(const ChunkHash& hash) {
  Shard& s = ShardFor(hash);
  std::lock_guard<std::mutex> l(s.mu);
  auto it = s.map.find(hash);
  if (it == s.map.end()) return nullptr;
  s.lru.splice(s.lru.begin(), s.lru, it->second);
  return it->second->second;
}

void ChunkCache::Insert(const ChunkHash& hash, Value value) {
  if (shard_capacity_ == 0 || value == nullptr) return;
  Shard& s = ShardFor(hash);
  std::lock_guard<std::mutex> l(s.mu);
  InsertLocked(s, hash, value);
}

uint64_t ChunkCache::bytes() {
  uint64_t total = 0;
  for (Shard& s : shards_) {
    std::lock_guard<std::mutex> l(s.mu);
    total += s.bytes;
  }
  return total;
}

void ChunkCache::Erase(const ChunkHash& hash) {
  Shard& s = ShardFor(hash);
  std::lock_guard<std::mutex> l(s.mu);
  auto it = s.map.find(hash);
  if (it == s.map.end()) return;
  s.bytes -= it->second->second->size();
  s.lru.erase(it->second);
  s.map.erase(it);
}

}  // namespace rankfs
