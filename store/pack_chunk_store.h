// PackChunkStore: the ChunkStore of a local store directory. Chunks are zstd-compressed records
// appended to pack files (pack_format.h); the chunk index (hash -> location, refcount) lives in
// the MetaStore's chunks column family.
//
// Concurrency (see docs/design.md):
//   - chunk state is sharded by hash into kStripes stripes; a stripe's mutex guards its
//     in-flight set (chunks being compressed and appended) and its pending map (appended chunks
//     whose index entry is not yet written). Threads putting the same new chunk wait for the one
//     that appends it and then take a reference; compression runs outside every lock.
//   - pack_mu_ guards the pack table, the active pack and the release queue.
//   - Lock order: flush_mu_ -> sync_mu_ -> a stripe mutex (one at a time) -> pack_mu_.
//     reclaim_mu_ -> pack_mu_. No lock is held while compressing.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "store/chunk_store.h"
#include "store/env.h"
#include "store/meta_store.h"

namespace rankfs {

struct PackChunkStoreOptions {
  int compression_level = 1;            // zstd level; 0 stores every chunk raw
  uint64_t max_pack_bytes = 256ull << 20;
  size_t max_open_packs = 128;          // pack files kept open for reading
  bool background_reclaim = true;       // punch released ranges from a background thread
  std::chrono::milliseconds reclaim_delay{100};  // batching window of the background thread
};

class PackChunkStore final : public ChunkStore {
 public:
  // Opens the packs in `dir` (created if missing). Recovers from an unclean stop: packs that
  // hold no indexed chunk are deleted, and unindexed ranges inside other packs are punched.
  // `env` and `meta` are not owned and must outlive the store; `store_uuid` goes into new packs.
  static Result<std::unique_ptr<PackChunkStore>> Open(Env* env, const std::string& dir,
                                                      MetaStore* meta,
                                                      const PackChunkStoreOptions& options);
  ~PackChunkStore() override;  // Close()s, ignoring errors

  Status Put(const ChunkHash& hash, std::string_view data) override;
  Status PutScoped(const ChunkHash& hash, std::string_view data, uint32_t scope_uid) override;
  Status Ref(const ChunkHash& hash, uint64_t n) override;
  Status Unref(const ChunkHash& hash, uint64_t n) override;
  Status Get(const ChunkHash& hash, std::string* out) override;
  Status Verify(const ChunkHash& hash) override;
  Status Flush() override;
  Status Reclaim() override;
  ChunkStoreStats GetStats() override;

  // Flushes, reclaims, stops the background thread and records pack accounting.
  Status Close();

  // The path of a pack file (for tools and tests).
  std::string PackPath(uint32_t pack_id) const;

 private:
  static constexpr size_t kStripes = 64;

  struct Pending {
    ChunkLocation location;
    uint64_t refcount = 0;
    uint64_t seq = 0;                 // append sequence number, compared with synced_seq_
    bool replaces_committed = false;  // a healed copy of a chunk that has an index entry
    std::optional<uint32_t> scope_uid;  // see ChunkRecord::scope_uid
  };
  struct Stripe {
    std::mutex mu;
    std::condition_variable cv;  // an in-flight put of this stripe finished
    std::unordered_set<ChunkHash, ChunkHashHasher> inflight;          // guarded by mu
    std::unordered_map<ChunkHash, Pending, ChunkHashHasher> pending;  // guarded by mu
  };
  struct Pack {
    std::shared_ptr<File> file;  // null while closed; opened on demand
    uint64_t size = 0;           // bytes written (the append offset)
    uint64_t live_bytes = 0;     // record bytes of chunks that exist (pending or indexed)
    uint64_t dead_bytes = 0;
    bool dirty = false;          // appended since the last sync
    std::map<uint64_t, uint64_t> dead;  // released ranges, merged: start -> end
  };

  PackChunkStore(Env* env, std::string dir, MetaStore* meta, const PackChunkStoreOptions& o);
  Status Recover();
  Status PutImpl(const ChunkHash& hash, std::string_view data, std::optional<uint32_t> scope);
  // Records `hash` as damaged (so the next Put stores a fresh copy), logs and counts it.
  Status Damaged(const ChunkHash& hash, const std::string& where, const std::string& why);
  Stripe& StripeFor(const ChunkHash& h) { return stripes_[h.bytes[0] % kStripes]; }
  // Waits (holding `l` on s.mu) until `h` is not in flight.
  void WaitNotInflight(Stripe& s, std::unique_lock<std::mutex>& l, const ChunkHash& h);
  // Compresses and appends a record; fills *seq with its append sequence number.
  Result<ChunkLocation> Append(const ChunkHash& hash, std::string_view data, uint64_t* seq);
  Result<std::shared_ptr<File>> PackFile(uint32_t pack_id);
  Result<std::shared_ptr<File>> NewActivePackLocked();  // REQUIRES: pack_mu_ held
  Status SyncPacks(uint64_t* synced_seq);
  Status ReadChunk(const ChunkHash& hash, const ChunkLocation& loc, std::string* out);
  Result<ChunkLocation> Locate(const ChunkHash& hash);
  void QueueRelease(const ChunkLocation& loc);
  bool IsBad(const ChunkHash& h);
  void ReclaimLoop();

  Env* const env_;
  const std::string dir_;
  MetaStore* const meta_;
  const PackChunkStoreOptions options_;

  std::array<Stripe, kStripes> stripes_;

  std::mutex flush_mu_;  // serializes Flush()
  std::mutex sync_mu_;   // serializes SyncPacks(); held across fdatasync
  std::mutex reclaim_mu_;  // serializes Reclaim()

  std::mutex pack_mu_;
  std::map<uint32_t, Pack> packs_;               // guarded by pack_mu_
  uint32_t active_pack_ = 0;                     // 0: none yet; guarded by pack_mu_
  uint32_t next_pack_id_ = 1;                    // guarded by pack_mu_
  uint64_t append_seq_ = 0;                      // guarded by pack_mu_
  uint64_t synced_seq_ = 0;                      // guarded by pack_mu_
  bool dir_dirty_ = false;                       // a pack was created or deleted; pack_mu_
  size_t open_files_ = 0;                        // guarded by pack_mu_
  std::vector<ChunkLocation> release_queue_;     // guarded by pack_mu_
  std::condition_variable release_cv_;           // with pack_mu_
  bool stopping_ = false;                        // guarded by pack_mu_
  bool closed_ = false;                          // guarded by flush_mu_

  std::mutex bad_mu_;
  std::unordered_set<ChunkHash, ChunkHashHasher> bad_;  // damaged chunks; guarded by bad_mu_

  std::atomic<uint64_t> stat_chunks_{0}, stat_raw_{0}, stat_stored_{0}, stat_put_calls_{0},
      stat_put_bytes_{0}, stat_dedup_hits_{0}, stat_reclaimed_{0}, stat_backlog_{0},
      stat_read_errors_{0};
  std::array<uint8_t, 16> uuid_{};
  std::thread reclaim_thread_;
};

}  // namespace rankfs
