// ChunkCache: decompressed chunks kept in memory, keyed by content hash, so that N ranks
// reading the same data (and 4 KiB page faults inside one chunk) decompress it once.
// Sharded LRU with a byte cap (the cap is split evenly between shards).
// Thread-safe.
#pragma once

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "store/chunk_store.h"
#include "store/types.h"

namespace rankfs {

class ChunkCache {
 public:
  using Value = std::shared_ptr<const std::string>;

  ChunkCache(ChunkStore* store, uint64_t capacity_bytes);

  // The chunk's bytes, from the cache or read (and verified) from the store.
  Result<Value> Get(const ChunkHash& hash);
  // Drops a chunk (e.g. after it was found damaged).
  void Erase(const ChunkHash& hash);

  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    std::mutex mu;  // guards lru, map, bytes
    std::list<std::pair<ChunkHash, Value>> lru;  // front = most recent
    std::unordered_map<ChunkHash, std::list<std::pair<ChunkHash, Value>>::iterator,
                       ChunkHashHasher>
        map;
    uint64_t bytes = 0;
  };
  Shard& ShardFor(const ChunkHash& h) { return shards_[h.bytes[1] % kShards]; }

  ChunkStore* const store_;
  const uint64_t shard_capacity_;
  std::vector<Shard> shards_;
  std::atomic<uint64_t> hits_{0}, misses_{0};
};

}  // namespace rankfs
