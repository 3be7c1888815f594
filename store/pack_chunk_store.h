// PackChunkStore: the ChunkStore of a local store directory. Chunks are zstd-compressed records
// appended to pack files (pack_format.h); the chunk index (hash -> location, refcount) lives in
// the MetaStore's chunks column family.
//
// The code is split by concern: pack_chunk_store.cc (the ChunkStore calls and Flush),
// pack_files.cc (appending, the pack table, syncing, and what a failed sync poisons),
// pack_read.cc (reading and verifying records, and what counts as damage), pack_reclaim.cc
// (releasing the space of deleted chunks) and pack_recovery.cc (opening after a crash).
//
// Concurrency (see docs/design.md):
//   - chunk state is sharded by hash into kStripes stripes; a stripe's mutex guards its
//     in-flight set (chunks being compressed and appended) and its pending map (appended chunks
//     whose index entry is not yet written). Threads putting the same new chunk wait for the one
//     that appends it and then take a reference; compression runs outside every lock.
//   - pack_mu_ guards the pack table, the active pack and the release queue.
//   - Lock order: flush_mu_ -> sync_mu_ -> a stripe mutex (one at a time) -> pack_mu_.
//     reclaim_mu_ -> pack_mu_. bad_mu_ is a leaf. No lock is held while compressing.
//
// Errors (docs/reliability.md): a pack whose fdatasync failed is never appended to or synced
// again, and its unsynced records are "lost": never indexed, so nothing that names them becomes
// durable, and Flush fails until every caller that put them has let go (they put them again).
// A metadata write that failed has an unknown outcome: the ranges it might name are never
// released in this run (fsck recounts). Healing keeps the damaged copy until the new one is
// indexed. Only bytes that fail their checks are damage; an I/O error is just an error.
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
#include "store/pack_options.h"

namespace rankfs {

class PackChunkStore final : public ChunkStore {
 public:
  // Opens the packs in `dir` (created if missing). Recovers from an unclean stop: packs that
  // hold no indexed chunk are deleted, and unindexed ranges inside other packs are punched
  // (not when read-only). `env` and `meta` are not owned and must outlive the store.
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
  // Reads runs of adjacent records of one pack (up to kMaxReadRun bytes) with one PRead each.
  void GetMany(std::span<ChunkRead> reads, GetManyStats* stats) override;
  Status Flush() override;
  Status Reclaim() override;
  ChunkStoreStats GetStats() override;

  // Flushes, reclaims, stops the background thread, deletes an active pack left empty and
  // records pack accounting. A read-only store changes nothing.
  Status Close();

  // The path of a pack file (for tools and tests).
  std::string PackPath(uint32_t pack_id) const;

 private:
  static constexpr size_t kStripes = 64;
  static constexpr uint64_t kMaxReadRun = 4u << 20;  // bytes one GetMany read may cover

  struct Pending {
    ChunkLocation location;
    uint64_t refcount = 0;
    uint64_t seq = 0;                   // append sequence number, compared with synced_seq_
    std::optional<uint32_t> scope_uid;  // see ChunkRecord::scope_uid
    // Healing: the damaged, indexed copy this one replaces. It stays (and the index names it)
    // until this copy is indexed; then its range is released.
    std::optional<ChunkLocation> replaces;
    // Its pack's sync failed after it was appended: the bytes may be gone. Never indexed; the
    // next Put of the content appends it again and clears this.
    bool lost = false;
    // A write of its index entry failed, so the index may hold it after all (and name
    // `location`, or `replaces`): neither range is released in this run.
    bool index_unknown = false;
    // The index already names it (at `location`): a duplicate put took it back into memory
    // so that the references taken until the next Flush cost one index write, not one each.
    // Its last reference going deletes the index entry.
    bool indexed = false;
  };
  using RecordMap = std::unordered_map<ChunkHash, ChunkRecord, ChunkHashHasher>;
  // Index records this store wrote lately, exactly as the index holds them: a later duplicate
  // of the chunk finds its record here instead of reading it back (MetaStore::GetChunk). A
  // record is added only after its write succeeded and taken out before any write of its
  // entry (Put, Ref, Unref take it out first), so it never differs from the index. Two
  // generations of up to kRecentPerGeneration records each: the older is dropped whole.
  struct RecentRecords {
    RecordMap young, old;
    const ChunkRecord* Find(const ChunkHash& h) const;
    void Add(const ChunkHash& h, const ChunkRecord& r);
    void Erase(const ChunkHash& h);
  };
  static constexpr size_t kRecentPerGeneration = 128;  // per stripe: 16k records in all
  struct Stripe {
    std::mutex mu;
    std::condition_variable cv;  // an in-flight put of this stripe finished
    std::unordered_set<ChunkHash, ChunkHashHasher> inflight;          // guarded by mu
    std::unordered_map<ChunkHash, Pending, ChunkHashHasher> pending;  // guarded by mu
    RecentRecords recent;  // guarded by mu; never holds a hash that `pending` holds
  };
  // Where a chunk stands: its pending entry, or else its index record (or neither).
  struct Found {
    Pending* pending = nullptr;
    std::optional<ChunkRecord> committed;
  };
  struct Pack {
    std::shared_ptr<File> file;  // null while closed; opened on demand
    uint64_t size = 0;           // bytes written (the append offset)
    uint64_t live_bytes = 0;     // record bytes of chunks that exist (pending or indexed)
    uint64_t dead_bytes = 0;
    bool dirty = false;          // appended since the last sync
    bool new_entry = false;      // created since the packs directory was last synced
    bool poisoned = false;       // a sync failed: never appended to or synced again
    std::map<uint64_t, uint64_t> dead;  // released ranges, merged: start -> end
  };

  PackChunkStore(Env* env, std::string dir, MetaStore* meta, const PackChunkStoreOptions& o);

  // --- pack_chunk_store.cc ---
  Status PutImpl(const ChunkHash& hash, std::string_view data, std::optional<uint32_t> scope);
  Stripe& StripeFor(const ChunkHash& h) { return stripes_[h.bytes[0] % kStripes]; }
  // Waits (holding `l` on s.mu) until no Put of `h` is in flight, then finds its pending entry
  // or, when it has none, its index record (from s.recent when it is there).
  Result<Found> FindLocked(Stripe& s, std::unique_lock<std::mutex>& l, const ChunkHash& h);
  // Forgets a pending entry whose last reference went. REQUIRES: s.mu held.
  Status DropPendingLocked(Stripe& s, const ChunkHash& hash);
  Status RequireWritable() const;

  // --- pack_files.cc ---
  // Compresses and appends a record; fills *seq with its append sequence number.
  Result<ChunkLocation> Append(const ChunkHash& hash, std::string_view data, uint64_t* seq);
  Result<std::shared_ptr<File>> PackFile(uint32_t pack_id);
  Result<std::shared_ptr<File>> NewActivePackLocked();  // REQUIRES: pack_mu_ held
  bool Poisoned(uint32_t pack_id);
  // Syncs every pack appended to since the last call (and the directory). A pack whose sync
  // fails is poisoned. *synced_seq: every record up to it is durable or marked lost.
  Status SyncPacks(uint64_t* synced_seq);
  // Marks the packs poisoned and their unsynced pending records lost (a healing copy gives the
  // chunk back to its indexed copy instead). REQUIRES: sync_mu_ held, no stripe or pack lock.
  void Poison(const std::vector<uint32_t>& pack_ids, uint64_t synced_before);

  // --- pack_read.cc ---
  // With `refcount`, also the chunk's references.
  Result<ChunkLocation> Locate(const ChunkHash& hash, uint64_t* refcount = nullptr);
  // Reads and checks the record at `loc` into *out. When the bytes are wrong or gone, sets
  // *damage to why and returns EIO; any other error (EMFILE, an I/O error) is returned as is.
  Status ReadChunk(const ChunkHash& hash, const ChunkLocation& loc, std::string* out,
                   std::string* damage);
  // Checks the record `rec` (read from `loc`) and puts its raw bytes, loc.raw_length of them,
  // at `dst`. When they are wrong, sets *damage to why and returns EIO.
  static Status DecodeRecordInto(const ChunkHash& hash, const ChunkLocation& loc,
                                 std::string_view rec, char* dst, std::string* damage);
  // Records `hash` as damaged (so the next Put stores a fresh copy), logs and counts it.
  Status Damaged(const ChunkHash& hash, const std::string& where, const std::string& why);
  bool IsBad(const ChunkHash& h);
  void ClearBad(const ChunkHash& h);

  // --- pack_reclaim.cc ---
  void QueueRelease(const ChunkLocation& loc);
  void ReclaimLoop();
  // Deletes the file and accounting record of a pack that holds no live record (and stops
  // appending to it). The pack leaves the table only once its file is gone.
  Status DeletePack(uint32_t id);

  // --- pack_recovery.cc ---
  Status Recover();

  Env* const env_;
  const std::string dir_;
  MetaStore* const meta_;
  const PackChunkStoreOptions options_;

  std::array<Stripe, kStripes> stripes_;
  std::atomic<uint64_t> lost_entries_{0};  // pending entries with `lost` set

  std::mutex flush_mu_;    // serializes Flush()
  std::mutex sync_mu_;     // serializes SyncPacks(); held across fdatasync
  std::mutex reclaim_mu_;  // serializes Reclaim(); guards the two retry lists below
  struct Punch {
    uint32_t pack_id;
    uint64_t start, end;
  };
  // What a Reclaim could not do, tried again by the next one: the space is still owed.
  std::vector<Punch> failed_punches_;
  std::vector<uint32_t> failed_deletes_;  // empty packs whose file is still there

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
      stat_read_errors_{0}, stat_index_reads_{0};
  std::array<uint8_t, 16> uuid_{};
  std::thread reclaim_thread_;
};

}  // namespace rankfs
