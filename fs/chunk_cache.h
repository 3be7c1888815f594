// ChunkCache: decompressed chunks kept in memory, keyed by content hash, so that N ranks
// reading the same data (and 4 KiB page faults inside one chunk) decompress it once.
// Sharded LRU with a byte cap (the cap is split evenly between shards). A chunk is read from
// the store by one caller at a time: others that miss on it meanwhile wait for that read and
// share its result (its bytes, or its error), so concurrent readers of the same content
// decompress it once.
// Thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/chunk_store.h"
#include "store/types.h"

namespace rankfs {

// A chunk's bytes as the cache, the streams and the pipeline share them. Every buffer made
// here is counted in LiveChunkBytes() until its last holder lets it go: what the daemon's
// chunk data really occupies, whichever of them holds it.
std::shared_ptr<const std::string> NewChunkBytes(std::string bytes);
uint64_t LiveChunkBytes();

class ChunkCache {
 public:
  using Value = std::shared_ptr<const std::string>;

  ChunkCache(ChunkStore* store, uint64_t capacity_bytes);

  // The chunk's bytes, from the cache or read (and verified) from the store; a read another
  // caller already has in flight for the same hash is waited for, not repeated.
  Result<Value> Get(const ChunkHash& hash);
  // The chunk's bytes if they are cached; never reads the store.
  Value Peek(const ChunkHash& hash);
  // Caches bytes known to be the chunk `hash` (a writer that just hashed them), so that other
  // streams writing the same content can compare against them (fs/successor_table.h) and
  // readers find them. REQUIRES: ChunkHash of *value (in the store's scope) == hash.
  void Insert(const ChunkHash& hash, Value value);
  // For a reader that reads chunks into buffers of its own (FsCore::StageRead), without
  // blocking: kHit with *value set (counted as a hit) when the chunk is cached; kClaimed when
  // the caller now holds the chunk's load (counted as a miss): it must read the chunk and
  // call Publish exactly once, and Get callers of the same hash wait for that meanwhile;
  // kBusy when another caller is loading it: the caller counts as waiting for that load (so
  // its bytes are cached for it) and must then call Get, holding no claim, to get them.
  // Never waits, so a caller may hold several claims at once.
  enum class Lookup { kHit, kClaimed, kBusy };
  Lookup TryClaim(const ChunkHash& hash, Value* value);
  // Ends a claim with the chunk's verified bytes (or the error that reading it gave). The
  // bytes are copied into the cache when `keep`, or when another caller waits for them;
  // otherwise nothing is kept, and the cache's entries stay as they were.
  void Publish(const ChunkHash& hash, const Status& status, std::string_view bytes, bool keep);
  // Drops a chunk (e.g. after it was found damaged).
  void Erase(const ChunkHash& hash);

  // Bytes of chunk data the cache holds now (some may also be held by writers or readers).
  uint64_t bytes();
  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }
  // Misses that waited for another caller's read of the same chunk instead of reading it.
  uint64_t shared_loads() const { return shared_loads_; }

 private:
  static constexpr size_t kShards = 16;
  // One store read in flight. Its fields are guarded by the shard's mutex. Each load wakes
  // only its own waiters: with one condition variable per shard, every load that ended woke
  // every caller waiting on any chunk of the shard (four ranks staging the same chunks keep
  // several waiting), and each went back to sleep after a context switch.
  struct Load {
    bool done = false;
    int waiters = 0;  // Get callers waiting for it, and TryClaim callers that will
    Status status;
    Value value;
    std::condition_variable loaded;  // done became true
  };
  struct Shard {
    std::mutex mu;  // guards lru, map, bytes, loading and every Load in it
    std::list<std::pair<ChunkHash, Value>> lru;  // front = most recent
    std::unordered_map<ChunkHash, std::list<std::pair<ChunkHash, Value>>::iterator,
                       ChunkHashHasher>
        map;
    std::unordered_map<ChunkHash, std::shared_ptr<Load>, ChunkHashHasher> loading;
    uint64_t bytes = 0;
  };
  Shard& ShardFor(const ChunkHash& h) { return shards_[h.bytes[1] % kShards]; }
  // Adds v unless the hash is cached already; evicts past the cap. REQUIRES: s.mu held.
  void InsertLocked(Shard& s, const ChunkHash& hash, const Value& v);

  ChunkStore* const store_;
  const uint64_t shard_capacity_;
  std::vector<Shard> shards_;
  std::atomic<uint64_t> hits_{0}, misses_{0}, shared_loads_{0};
};

}  // namespace rankfs
