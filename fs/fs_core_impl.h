// FsCore's private state, shared by fs_core.cc (names, attributes, lifecycle) and
// file_data.cc (the data path). Not a public header.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fs/buffer_pool.h"
#include "fs/chunk_cache.h"
#include "fs/flush_pipeline.h"
#include "fs/fs_core.h"
#include "fs/stream_chunker.h"
#include "fs/successor_table.h"
#include "fs/write_room.h"
#include "store/chunker.h"

namespace rankfs {

int64_t NowNs();     // CLOCK_REALTIME: file times
int64_t SteadyNs();  // CLOCK_MONOTONIC: deadlines

// One inode known to the daemon: the kernel holds a lookup on it, a file handle is open, or it
// holds data not yet committed to the store.
//
// A file's unwritten data is in one of three places, newest first: `dirty` (writes that do
// not continue the stream: random writes, out-of-order writeback ahead of the stream), the
// stream (`stream`'s buffer and `cut`, chunks cut but not yet submitted), and `batches`
// (submitted to the FlushPipeline, not yet committed). Reads lay them over the stored
// extents in that order.
struct Inode : std::enable_shared_from_this<Inode> {
  explicit Inode(const InodeAttr& a) : attr(a), stream_end(a.size) {}
  // Guards attr, dirty, dirty_bytes, stream, stream_end, cut, cut_bytes, deleted and no_caps.
  // Shared for reads of data and attributes, exclusive for any change.
  std::shared_mutex mu;
  InodeAttr attr;
  // Buffered writes: offset -> bytes. Entries never overlap; they may touch (a run of
  // touching entries is one contiguous dirty range).
  std::map<uint64_t, std::string> dirty;
  uint64_t dirty_bytes = 0;
  // The appending stream (fs/stream_chunker.h), created by the first write at stream_end.
  // Writes at its end() go to it; the dirty ranges it reaches are absorbed into it.
  std::unique_ptr<StreamChunker> stream;
  uint64_t stream_end = 0;  // where a stream starts while `stream` is null
  std::vector<ChunkRef> cut;  // chunks the stream emitted, not yet submitted
  uint64_t cut_bytes = 0;
  bool deleted = false;  // its data was released; no further I/O
  // Known to have no security.capability xattr (DropPrivsLocked looked once; SetXattr of that
  // name clears it), so writes need not ask RocksDB again. Guarded by mu.
  bool no_caps = false;
  // Whether the store may hold xattrs / extents of this inode: false for an inode created by
  // this daemon until it gets one. Spares RocksDB the kernel's per-file getxattr of
  // security.capability and the deletion of a temporary file that never reached the store.
  // Guarded by mu.
  bool may_have_xattrs = true;
  bool may_have_extents = true;
  // Closed lazily (CloseLocked): the stream's buffered bytes are to be stored by this steady
  // clock time unless the file goes first. 0: not lazy. Guarded by mu.
  int64_t lazy_until_ns = 0;
  uint64_t lazy_bytes = 0;  // what it added to Impl::lazy_bytes_; guarded by mu

  // Submitted batches not yet committed, oldest first, and failed ones whose bytes the owner
  // has not buffered again yet. Lock order: mu -> batch_mu. The pipeline's committer takes
  // only batch_mu, so a thread holding mu may wait for batches.
  std::mutex batch_mu;
  std::condition_variable batch_cv;  // a batch of this inode finished
  std::deque<std::shared_ptr<FlushBatch>> batches;

  // Its place among the files holding bytes that only their owner can hand on (WriteRoom).
  WriteRoom::Listing room_listing;

  // Guarded by Impl::table_mu_.
  uint64_t nlookup = 0;
  uint32_t open_count = 0;
};

class FsCore::Impl {
 public:
  Impl(Store* store, const FsOptions& o);
  ~Impl();

  Status Init();

  struct NewEntry {
    uint32_t mode;
    uint64_t rdev = 0;
    std::string_view symlink_target;
  };
  // Creates a name and its new inode (one lookup taken; one open too when `open`).
  Result<InodeAttr> MakeEntry(Ino parent, std::string_view name, const NewEntry& ne,
                              const Caller& caller, bool open);
  // Removes a name (Unlink: want_dir false; RmDir: true). REQUIRES: ns_mu_ not held.
  Status RemoveName(Ino parent, std::string_view name, bool want_dir);

  // --- inode table ---
  // The in-memory inode, loading it from the store if needed. ENOENT if it does not exist.
  Result<std::shared_ptr<Inode>> GetInode(Ino ino);
  // Registers a freshly created inode with one lookup.
  std::shared_ptr<Inode> AddNewInode(const InodeAttr& attr);
  void AddLookup(const std::shared_ptr<Inode>& inode);
  // Called when nlookup, open_count or nlink may have dropped to zero.
  void MaybeEvict(Ino ino);

  // --- data path (write_path.cc, close_path.cc, file_data.cc); REQUIRES: inode->mu held
  // exclusively unless noted ---
  Status WriteLocked(Inode* inode, uint64_t offset, std::string_view data);
  // End of the file's writing for now (FLUSH, RELEASE): the stream's last chunk is cut and
  // submitted, dirty ranges are flushed. Does not wait for the pipeline unless there are
  // dirty ranges.
  Status CloseLocked(Inode* inode);
  // Everything buffered is in the store, committed, when this returns OK: the stream is
  // finished and its batches waited for; dirty ranges are flushed (`sync`: durably).
  Status SettleLocked(Inode* inode, bool sync);
  // Waits until every submitted batch of the inode finished; failed batches' bytes go back
  // into the dirty ranges (under newer ones) and the first error is returned. After this no
  // ReplaceRange of the inode can run concurrently until the caller releases mu.
  Status WaitBatchesLocked(Inode* inode);
  // Appends to the stream (which must exist and end at the write's offset).
  Status AppendStreamLocked(Inode* inode, std::string_view data);
  // Whether `data`, at `off`, equals the bytes the stream has taken there (its buffer, its cut
  // chunks, or its batches still in the pipeline). False when any of them is not held.
  bool StreamHoldsLocked(Inode* inode, uint64_t off, std::string_view data);
  // Accounts for the chunks the stream emitted into cut[first...] and queues them for hashing;
  // the two counters are the stream's totals before it emitted them.
  void TakeCutLocked(Inode* inode, size_t first, uint64_t predicted_before, uint64_t cut_before);
  // Moves dirty ranges that start where the stream ends into the stream.
  Status AbsorbDirtyLocked(Inode* inode);
  // Cuts the stream's remaining bytes (the stream may continue at its end later) and submits.
  Status FinishStreamLocked(Inode* inode);
  // Hands the stream's cut chunks to the pipeline; the size goes to the store ahead of them.
  Status SubmitCutLocked(Inode* inode);
  // Forgets every uncommitted byte of a deleted inode (dirty, stream, cut, failed batches).
  // Returns false, dropping nothing, while a batch is still in the pipeline.
  bool DropHeldDataLocked(Inode* inode);
  // Forgets the stream's buffered and cut bytes; the next stream starts at `restart_at`.
  void DropStreamLocked(Inode* inode, uint64_t restart_at);
  // The uid chunk addresses of this file are scoped by (per-uid stores), else nullopt.
  std::optional<uint32_t> ScopeOf(const Inode& inode) const;
  // Writes every dirty range to the store; sync makes the result durable.
  Status FlushDirtyLocked(Inode* inode, bool sync);
  // Flushes the dirty range that starts at `start` and those touching it. REQUIRES: no batch
  // in flight.
  Status FlushRange(Inode* inode, uint64_t start, bool sync);
  // Whether the inode holds data not yet committed (dirty, stream, cut or batches).
  bool HoldsDataLocked(Inode* inode);
  // Whether the inode's record will be written anyway before its held bytes count: its
  // stream has bytes that SubmitCutLocked, which writes the record, has still to hand on
  // (the other ways to drop them, truncation and deletion, write or remove the record too).
  static bool RecordFollowsLocked(const Inode& inode);
  // Takes the inode out of the lazy-close state (a write, a finish, a deletion).
  void EndLazyLocked(Inode* inode);
  // Waits while the file's own batches in flight hold 4 x inode_flush_bytes or more, called
  // before a write. (The cap on all files' bytes is room_'s, checked before the inode lock.)
  void ThrottleLocked(Inode* inode);
  // Lists the inode with room_ as holding bytes that only its owner can hand on (one relaxed
  // load when it is listed already).
  void ListLocked(Inode* inode) {
    if (!inode->room_listing.listed()) room_.List(&inode->room_listing, inode->weak_from_this());
  }
  // room_'s keeper: hands on the inode's held bytes (stream, cut chunks, dirty ranges, failed
  // batches). Takes the inode's lock; REQUIRES: no lock held.
  Status PushHeld(const std::shared_ptr<Inode>& inode);
  // The pipeline's callbacks (no inode lock held).
  Status CommitBatch(FlushBatch& b);
  void BatchFinished(const std::shared_ptr<FlushBatch>& b, const Status& st);
  // REQUIRES: mu held (shared is enough).
  Result<size_t> ReadLocked(Inode* inode, uint64_t offset, size_t size, char* buf);
  // Calls fn(s, t, chunk, bytes) for each stored range [s, t) within [offset, end), in file
  // order (holes are skipped), `bytes` pointing at byte s inside `chunk`; fn returns false to
  // stop. Returns a chunk's read error, or EIO for an extent reaching past its chunk.
  // REQUIRES: mu held (shared is enough).
  using StoredRangeFn = std::function<bool(uint64_t s, uint64_t t, ChunkCache::Value& chunk,
                                           const char* bytes)>;
  // With `span`: [first, second) becomes the union of the whole extents visited.
  Status ForEachStoredRangeLocked(Ino ino, uint64_t offset, uint64_t end,
                                  const StoredRangeFn& fn,
                                  std::pair<uint64_t, uint64_t>* span = nullptr);
  // Whether [offset, end) holds bytes not yet committed to the store (batches, cut chunks,
  // the stream's buffer, dirty ranges). REQUIRES: mu held (shared is enough).
  bool HasUncommittedLocked(Inode* inode, uint64_t offset, uint64_t end);
  // StageRead of a range without uncommitted bytes (fs/stage_read.cc). REQUIRES: mu held.
  Status StageStoredLocked(Inode* inode, uint64_t offset, uint64_t end, char* dst);
  Status TruncateLocked(Inode* inode, uint64_t size);
  Status PunchLocked(Inode* inode, uint64_t offset, uint64_t length);
  // Removes [start, end) of the inode's stored extents and inserts `added` (whose chunk
  // references the caller already holds) in one metadata batch, together with `extra`. With
  // `record`, its allocated_bytes changes by the extent bytes added minus those removed and
  // it is written in the same batch (after `extra`), so that the store's record always
  // matches its extents (docs/format.md); the caller copies the figure back on success.
  // When that write fails its outcome is unknown (it may have reached the disk):
  // *outcome_unknown is set, and the caller must not drop the references of `added` -- they
  // may be the extents' now. Reference counts then err high, never low (docs/reliability.md).
  Status ReplaceRange(Ino ino, uint64_t start, uint64_t end,
                      const std::vector<std::pair<uint64_t, Extent>>& added,
                      MetaStore::Batch* extra, bool sync, InodeAttr* record = nullptr,
                      bool* outcome_unknown = nullptr);

  // --- allocated bytes and fallocate (file_space.cc); REQUIRES: inode->mu held exclusively
  // unless noted ---
  // Bytes of extents (data or unwritten) within [start, end). REQUIRES: mu held (shared).
  Result<uint64_t> StoredBytes(Inode* inode, uint64_t start, uint64_t end);
  // The stream's cut chunks are about to go to the pipeline, whose commit replaces their range
  // without the inode lock: their new bytes count in attr.allocated_bytes from now on, like
  // the size that SubmitCutLocked writes ahead of them.
  Status CountSubmitLocked(Inode* inode);
  // A failed batch's bytes go back to the dirty ranges: take back what CountSubmitLocked
  // counted for it (the store's extents of its range are as they were at its submit).
  void UncountFailedLocked(Inode* inode, uint64_t start, uint64_t end);
  // Bytes held in memory (stream, cut chunks, dirty ranges). REQUIRES: mu held (shared).
  static uint64_t BufferedBytesLocked(const Inode& inode);
  // The attributes as the kernel sees them: allocated_bytes includes the buffered bytes.
  // REQUIRES: mu held (shared).
  static InodeAttr ReportLocked(const Inode& inode);
  // The allocated bytes of a record older than the field, from its extents.
  Status FillAllocated(InodeAttr* attr);
  // fallocate(2) modes other than punch, after their arguments were checked.
  Status AllocateLocked(Inode* inode, uint64_t offset, uint64_t length, bool keep_size);
  Status ZeroRangeLocked(Inode* inode, uint64_t offset, uint64_t length, bool keep_size);
  Status CollapseRangeLocked(Inode* inode, uint64_t offset, uint64_t length);
  Status InsertRangeLocked(Inode* inode, uint64_t offset, uint64_t length);
  // Collapse: removes the extents' bytes in [offset, offset + length) and moves every byte
  // after it down by `length`; insert: moves every byte from `offset` on up by `length`,
  // leaving a hole. One metadata batch, with `record` (its allocated_bytes updated). A split
  // extent takes a chunk reference; no data is copied.
  Status ShiftExtents(Ino ino, uint64_t offset, uint64_t length, bool collapse,
                      InodeAttr* record);
  void DropDirty(Inode* inode, uint64_t start, uint64_t end);
  // What the kernel leaves to the filesystem under FUSE_HANDLE_KILLPRIV_V2 (fs/killpriv_io.h):
  // a data change or a chown clears setuid, setgid-with-group-exec and security.capability.
  // Unlike the kernel it does so for root writers too (the daemon cannot see CAP_FSETID of
  // writeback writes). REQUIRES: inode->mu held exclusively. The mode reaches the store with
  // the next attribute write (the flush of the data that caused it).
  Status DropPrivsLocked(Inode* inode);
  Status PersistAttr(const InodeAttr& attr, bool sync);

  // --- free-space reserve (fs_core.cc; FsOptions::reserve_bytes) ---
  enum class SpaceUse {
    kGrow,   // a call that adds names, xattrs or buffered data: refused below the reserve
    kFlush,  // storing buffered data: refused below half of it, so RocksDB keeps the rest
  };
  // ENOSPC when the store's filesystem has less free space than `use` may consume.
  Status CheckSpace(SpaceUse use);
  // The reserve that applies to a filesystem of `total` bytes.
  uint64_t ReserveFor(uint64_t total) const;
  std::mutex space_mu_;  // guards the two below: statvfs, cached while space is plentiful
  int64_t space_probed_ns_ = 0;
  SpaceInfo space_;

  // --- lazy close of small files (CloseLocked) ---
  // Finishes the streams of lazily closed files whose time is up.
  void LazyLoop();
  std::mutex lazy_mu_;  // guards lazy_ and lazy_stop_
  std::condition_variable lazy_cv_;
  std::deque<std::pair<int64_t, std::weak_ptr<Inode>>> lazy_;  // (deadline, inode), by deadline
  bool lazy_stop_ = false;
  std::atomic<uint64_t> lazy_bytes_{0};  // buffered bytes of lazily closed files
  std::thread lazy_thread_;

  // --- background deletion of unlinked inodes ---
  // Queues an unlinked inode for deletion in the delete thread's next round; `in_store`: its
  // extents or xattrs may be in the store (else only its record and orphan entry are).
  void QueueDelete(Ino ino, bool in_store);
  // Asks the background thread to MaybeEvict(ino) (the committer may not take inode locks).
  void QueueEvictCheck(Ino ino);
  // Metadata deletions of unlinked inodes gathered for one write, and the chunk references
  // of the extents they remove, dropped once that write succeeded. Used by one thread.
  class DeletionBatch {
   public:
    DeletionBatch(MetaStore* meta, ChunkStore* chunks) : meta_(meta), chunks_(chunks) {}
    MetaStore::Batch& batch() { return batch_; }
    void AddRef(const ChunkHash& h) { ++refs_[h]; }
    bool Empty() const { return batch_.Empty(); }
    bool Full() const { return batch_.Count() >= kDeleteBatchOps; }
    // Writes the batch (if not empty), then drops the references. After an error the
    // references are kept: the write's outcome is unknown.
    Status Write();

   private:
    MetaStore* const meta_;
    ChunkStore* const chunks_;
    MetaStore::Batch batch_;
    std::unordered_map<ChunkHash, uint64_t, ChunkHashHasher> refs_;
  };
  static constexpr size_t kDeleteBatchOps = 4096;     // operations per deletion write
  static constexpr size_t kDeleteRoundInodes = 1024;  // queued inodes taken per round
  // How long the delete thread lets a round gather once an inode is queued.
  static constexpr std::chrono::milliseconds kDeleteGatherTime{10};
  // Removes an unlinked inode's metadata into `out`, which the caller writes (it is written
  // here too each time it fills). Without `in_store` the store holds only the inode's record
  // and orphan entry (no extents or xattrs): nothing is scanned.
  Status DeleteInodeData(Ino ino, bool in_store, DeletionBatch* out);
  // The inode if it is in the table; never reads the store.
  std::shared_ptr<Inode> FindInode(Ino ino);
  void DeleteLoop();

  Store* const store_;
  MetaStore* const meta_;
  ChunkStore* const chunks_;
  const FsOptions options_;
  // Counts every buffered byte and keeps them under write_buffer_bytes (fs/write_room.h).
  // Declared before the inode table: inodes leave its list when they die.
  WriteRoom room_;
  const FastCdc cdc_;
  ChunkCache cache_;
  SuccessorTable successors_;
  // Buffers of dirty ranges that their stream absorbed, kept for the next write that arrives
  // ahead of its stream (writeback out of order): up to 16 MiB of buffers of 256 KiB or more.
  BufferPool dirty_buffers_{16u << 20, 256u << 10};
  std::unique_ptr<FlushPipeline> pipeline_;  // created by Init, stopped by Shutdown
  std::atomic<uint64_t> next_stream_owner_{1};
  std::atomic<uint64_t> predicted_bytes_{0}, hashed_bytes_{0};  // streams' chunker totals

  // Serializes namespace changes (create, link, unlink, rename, ...): they check and then
  // change several records, which must look atomic. Not taken on the data path.
  std::mutex ns_mu_;

  std::mutex table_mu_;  // guards table_ and every Inode's nlookup/open_count
  std::unordered_map<Ino, std::shared_ptr<Inode>> table_;

  std::atomic<Ino> next_ino_{kFirstAllocatedIno};
  std::atomic<uint64_t> getxattr_requests_{0};
  std::atomic<uint64_t> lookup_requests_{0};
  std::atomic<uint64_t> page_fill_bytes_{0};
  std::atomic<uint64_t> page_fills_started_{0}, page_fills_done_{0};
  struct StageCounters {  // FsStats::gpu_*
    std::atomic<uint64_t> reads{0}, bytes{0}, fallback_reads{0}, chunk_reads{0}, preads{0},
        direct_chunks{0}, cache_hits{0}, repeat_uses{0};
    std::atomic<uint64_t> in_flight{0}, max_in_flight{0};  // Read requests served at once
    std::atomic<uint64_t> clients{0};  // staging clients with a ring (Begin/EndStagingClient)
  } stage_;
  uint64_t generation_ = 1;

  std::mutex delete_mu_;  // guards delete_queue_, evict_checks_, deleting_, stop_
  std::condition_variable delete_cv_;
  struct QueuedDeletion {
    Ino ino;
    bool in_store;  // see QueueDelete
  };
  std::deque<QueuedDeletion> delete_queue_;
  std::deque<Ino> evict_checks_;
  bool deleting_ = false;
  bool stop_ = false;
  std::thread delete_thread_;
  bool shut_down_ = false;  // guarded by ns_mu_
};

}  // namespace rankfs
