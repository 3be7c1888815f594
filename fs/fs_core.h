// FsCore: the filesystem's semantics, independent of FUSE. The libfuse callbacks (fuse_ops.cc)
// decode a request, call one FsCore method and reply with its result; everything here can be
// unit-tested without /dev/fuse.
//
// Model: inode numbers are the store's inode keys. Each inode the kernel knows about has a
// lookup count (Lookup/Create/MkDir/... add one, Forget subtracts); an inode with no name
// (nlink 0) is deleted when its lookup count and open count both reach zero. Its data is
// released in the background (the orphan list makes that survive a crash).
//
// File data: writes that continue a file's stream are cut into content-defined chunks as they
// arrive (fs/stream_chunker.h: the cuts do not depend on write sizes, so ranks' copies share
// chunks) and handed in batches to the flush pipeline (fs/flush_pipeline.h), which stores
// them on worker threads and commits their extents in group commits. Other writes land in
// per-inode dirty ranges, flushed when they grow past a threshold, on fsync and on close.
// Reads lay the uncommitted bytes over the store's extents.
//
// Durability: Fsync() makes the file's data and attributes durable (pack bytes synced before
// the metadata that points at them). Without it, a crash loses a suffix of recent changes.
//
// Thread-safety: every method may be called from any thread at any time.
// Lock order: ns_mu_ (namespace) -> Inode::mu (ascending inode number) -> table_mu_.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/status.h"
#include "store/store.h"

namespace rankfs {

struct FsOptions {
  // Names change only through this mount's kernel (one daemon per store), which updates its
  // own cache as it changes them: a long timeout is safe and spares a LOOKUP per name.
  double entry_timeout_s = 3600.0;
  double attr_timeout_s = 1.0;
  // Cap on the written bytes of all files not yet in the store (stream buffers, cut chunks,
  // dirty ranges, batches in flight). A write over it waits for room before it takes its
  // inode's lock; the buffered bytes then exceed the cap by at most what the writes admitted
  // at one time add: (threads calling Write at once) x (largest write), on a mount 16 FUSE
  // worker threads x 1 MiB (max_write) = 16 MiB. Idle files' bytes are pushed to the store
  // to make room (fs/write_room.h); a store that keeps failing fails the waiting writes.
  uint64_t write_buffer_bytes = 256ull << 20;
  // A file's dirty (non-stream) ranges are flushed past twice this; its batches in the flush
  // pipeline may hold up to four times this before its writes wait.
  uint64_t inode_flush_bytes = 16ull << 20;
  uint64_t batch_bytes = 4ull << 20;  // a stream's cut chunks are submitted in batches this big
  int flush_threads = 0;              // pipeline workers; 0: one per CPU (at least 2)
  // A file closed with at most lazy_close_bytes buffered keeps them this long before they are
  // stored (0: store at close), so that a temporary file deleted meanwhile costs the store
  // nothing; like ext4's 5 s commit interval, a crash may lose them (fsync does not).
  int64_t lazy_close_ms = 5000;
  uint64_t lazy_close_bytes = 64 << 10;
  uint64_t chunk_cache_bytes = 128ull << 20;   // decompressed-chunk cache
  // Once no write was buffered and no batch finished for this long after some were, freed heap
  // is given back to the OS (malloc_trim), once. 0: never.
  int64_t idle_trim_ms = 3000;
  bool xattrs = true;                          // false: xattr calls answer ENOSYS (the kernel then stops asking)
  // Free space on the store's filesystem that calls adding data or names may not use: below it
  // write/create/mkdir/symlink/link/setxattr fail with ENOSPC (and flushing buffered data
  // below half of it), while unlink, rmdir, truncate, rename, close and fsync keep working, so
  // RocksDB always has room for the metadata writes that free space. kAutoReserve: 1% of the
  // filesystem, at least 64 MiB, at most a quarter of it. 0 turns the reserve off.
  static constexpr uint64_t kAutoReserve = UINT64_MAX;
  uint64_t reserve_bytes = kAutoReserve;
  // The store is open read-only (StoreOptions::read_only): nothing is created or deleted,
  // not even the inodes an earlier run left on the orphan list; every change fails with EROFS.
  bool read_only = false;
  // The GPU staging socket (fs/gpu_server.h), advertised as a "gpu_socket=" line of the stats
  // file when not empty.
  std::string gpu_socket;
  // Owner and mode of the root directory when the store is new (later mounts keep it).
  uint32_t root_uid = 0;
  uint32_t root_gid = 0;
  uint32_t root_mode = 0755;
  // Test hook: called by the background deletion of an inode's data before each scan of its
  // extents, with the file offset the scan starts at. Runs on the deletion thread.
  std::function<void(Ino ino, uint64_t from)> on_delete_scan;
};

// Who makes a request (from fuse_req_ctx).
struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t pid = 0;
};

// Which attributes SetAttr changes (a subset of FUSE_SET_ATTR_* semantics).
struct SetAttrRequest {
  bool set_mode = false, set_uid = false, set_gid = false, set_size = false;
  bool set_atime = false, set_atime_now = false, set_mtime = false, set_mtime_now = false;
  bool set_ctime = false;
  uint32_t mode = 0, uid = 0, gid = 0;
  uint64_t size = 0;
  int64_t atime_ns = 0, mtime_ns = 0, ctime_ns = 0;
};

struct FsStats {
  uint64_t logical_bytes = 0;    // sum of file sizes
  uint64_t files = 0;
  uint64_t unique_raw_bytes = 0; // distinct chunk content, uncompressed
  uint64_t stored_bytes = 0;     // distinct chunk content, as stored
  uint64_t physical_bytes = 0;   // allocated bytes of the store's packs
  uint64_t dirty_bytes = 0;      // buffered, not yet in the store
  uint64_t dirty_peak_bytes = 0;    // the highest dirty_bytes since the start
  uint64_t write_buffer_waits = 0;  // writes that waited for room in the write buffer
  ChunkStoreStats chunks;
  uint64_t cache_hits = 0, cache_misses = 0;
  uint64_t cache_shared_loads = 0;  // misses that waited for another reader's load of the chunk
  uint64_t page_fill_bytes = 0;     // bytes put into the kernel's page cache (fs/page_fill.h)
  // Fills begun and ended, stored or not: a test knows from them that a fill is in flight,
  // or that none is left (tests/integration/page_fill_test.cc).
  uint64_t page_fills_started = 0, page_fills_done = 0;
  uint64_t getxattr_requests = 0;  // answered by GetXattr; the kernel's per-write capability
                                   // check shows here (fs/killpriv_io.h)
  uint64_t lookup_requests = 0;    // LOOKUP requests (CountLookupRequest), not readdirplus's
  // Streams' bytes cut by FastCDC and hashed, and bytes taken from confirmed guesses
  // (fs/successor_table.h) without either.
  uint64_t hashed_bytes = 0, predicted_bytes = 0;
  uint64_t batches = 0, commit_rounds = 0;  // flush pipeline (fs/flush_pipeline.h)
  // The GPU staging path (StageRead): requests and bytes; requests that Read served (the range
  // had uncommitted bytes); chunks read from the store for it, the store's read calls, and
  // those chunks decompressed straight into the caller's buffer; chunks taken from the cache;
  // uses of a chunk served by copying one already read in the same request.
  uint64_t gpu_reads = 0, gpu_bytes = 0, gpu_fallback_reads = 0;
  uint64_t gpu_chunk_reads = 0, gpu_preads = 0, gpu_direct_chunks = 0;
  uint64_t gpu_cache_hits = 0, gpu_repeat_uses = 0;
  uint64_t gpu_max_concurrent_reads = 0;  // the most Read requests ever served at once
  // Where the daemon's memory is: decompressed-chunk cache, RocksDB (memtables, block cache,
  // table readers), and the heap as malloc sees it (in use, and free but not yet returned).
  uint64_t chunk_cache_bytes = 0;
  // All chunk data in memory: the cache's and that of buffered and in-flight writes, each
  // buffer once however many hold it (fs/chunk_cache.h NewChunkBytes; process-wide).
  uint64_t chunk_buffer_bytes = 0;
  uint64_t meta_memtable_bytes = 0, meta_block_cache_bytes = 0, meta_table_reader_bytes = 0;
  uint64_t heap_used_bytes = 0, heap_free_bytes = 0;
  // malloc_trim calls: all (the pipeline's while batches flow, and these) and those made once
  // the mount went quiet (FsOptions::idle_trim_ms).
  uint64_t heap_trims = 0, idle_heap_trims = 0;
};

// Name of the read-only statistics file at the root of every mount. It answers lookups but
// never appears in directory listings.
inline constexpr std::string_view kStatsFileName = ".rankfs-stats";
inline constexpr Ino kStatsIno = 2;           // reserved; never stored
inline constexpr Ino kFirstAllocatedIno = 16;  // inode numbers below are reserved

class FsCore {
 public:
  // `store` is not owned and must outlive the FsCore. Creates the root directory of a new
  // store and resumes deleting the inodes left on the orphan list by an earlier run.
  static Result<std::unique_ptr<FsCore>> Create(Store* store, const FsOptions& options);
  ~FsCore();  // Shutdown()s
  FsCore(const FsCore&) = delete;
  FsCore& operator=(const FsCore&) = delete;

  const FsOptions& options() const;

  // --- names (each successful call that returns an attr adds one lookup) ---
  Result<InodeAttr> Lookup(Ino parent, std::string_view name);
  void Forget(Ino ino, uint64_t nlookup);
  Result<InodeAttr> MkNod(Ino parent, std::string_view name, uint32_t mode, uint64_t rdev,
                          const Caller& caller);
  Result<InodeAttr> MkDir(Ino parent, std::string_view name, uint32_t mode, const Caller& caller);
  Result<InodeAttr> Symlink(Ino parent, std::string_view name, std::string_view target,
                            const Caller& caller);
  Result<InodeAttr> Link(Ino ino, Ino new_parent, std::string_view new_name);
  Status Unlink(Ino parent, std::string_view name);
  Status RmDir(Ino parent, std::string_view name);
  // flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE (others: EINVAL).
  Status Rename(Ino parent, std::string_view name, Ino new_parent, std::string_view new_name,
                unsigned flags);
  Result<std::string> ReadLink(Ino ino);

  // --- attributes ---
  Result<InodeAttr> GetAttr(Ino ino);
  Result<InodeAttr> SetAttr(Ino ino, const SetAttrRequest& req);

  // --- files --- (open counts keep unlinked files alive until the last Release)
  Result<InodeAttr> Create(Ino parent, std::string_view name, uint32_t mode, int flags,
                           const Caller& caller);
  Status Open(Ino ino, int flags);
  Status Release(Ino ino);
  Status Flush(Ino ino);
  Status Fsync(Ino ino, bool datasync);
  // Reads up to `size` bytes at `offset` into buf; returns the count (short only at EOF).
  Result<size_t> Read(Ino ino, uint64_t offset, size_t size, char* buf);
  // The same bytes as Read, as pieces of cached chunks instead of a copy, when all of them are
  // in the store (nothing of the range is buffered or in flight): sets *out (a piece with
  // data == nullptr stands for len zeros) and returns the count. Returns nullopt, and reads
  // nothing, when the range has uncommitted bytes or is not a stored file's: call Read then.
  // A piece's bytes stay valid while it holds its chunk.
  struct ReadPiece {
    std::shared_ptr<const std::string> chunk;
    const char* data = nullptr;
    size_t len = 0;
  };
  // With `span`, also the part of the file that the pieces' chunks cover whole: [first, second)
  // of the extents the range touched (fs/page_fill.h fills it into the page cache).
  Result<std::optional<size_t>> ReadPieces(Ino ino, uint64_t offset, size_t size,
                                           std::vector<ReadPiece>* out,
                                           std::pair<uint64_t, uint64_t>* span = nullptr);
  // Reads up to `size` bytes at `offset` into dst for the GPU staging path (fs/gpu_server.h):
  // the bytes Read would return at that moment, and the count (short only at EOF). A range
  // with uncommitted bytes is read by Read; a stored range reads each distinct chunk once
  // (copied from the cache when it is there), fills holes with zeros without reading, reads
  // adjacent records of a pack together, and decompresses a chunk the range holds whole
  // straight into dst, caching it only when other references hold it while another staging
  // client is connected (fs/stage_read.cc). EIO when a chunk of the range is damaged; dst then
  // holds any bytes.
  Result<size_t> StageRead(Ino ino, uint64_t offset, size_t size, char* dst);
  // The GPU server counts its clients that have a ring here (one Begin when the ring is
  // mapped, one End when the client goes): StageRead keeps shared chunks in the cache for the
  // others only while more than one is connected.
  void BeginStagingClient();
  void EndStagingClient();
  // The GPU server brackets each Read request it serves with these, from the write-back of
  // its dirty pages to its StageRead: FsStats::gpu_max_concurrent_reads is the most served at
  // once.
  void BeginStagedRequest();
  void EndStagedRequest();
  // The page filler (fs/page_fill.h) counts its fills here: one begun, and one ended having
  // stored `bytes` in the kernel's page cache (0: it stored nothing).
  void CountPageFillStarted();
  // The FUSE glue counts each LOOKUP request here (stats: lookup_requests).
  void CountLookupRequest();
  void CountPageFillDone(uint64_t bytes);
  Status Write(Ino ino, uint64_t offset, std::string_view data);
  // mode: 0 (allocate), FALLOC_FL_ZERO_RANGE (each optionally | FALLOC_FL_KEEP_SIZE),
  // FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE, FALLOC_FL_COLLAPSE_RANGE or
  // FALLOC_FL_INSERT_RANGE, with ext4's rules (file_space.cc). Allocated and zeroed ranges are
  // unwritten extents: they read as zeros, count in st_blocks and are holes to SEEK_DATA.
  Status Fallocate(Ino ino, int mode, uint64_t offset, uint64_t length);
  // whence: SEEK_DATA or SEEK_HOLE (ENXIO past the end, as lseek(2)).
  Result<uint64_t> Lseek(Ino ino, uint64_t offset, int whence);
  // Shares the chunks of [in_off, in_off+len) of `in` into `out` at out_off without copying
  // bytes. Returns the number of bytes copied (short at the end of `in`).
  Result<uint64_t> CopyFileRange(Ino in, uint64_t in_off, Ino out, uint64_t out_off,
                                 uint64_t len);

  // --- directories ---
  // A snapshot of a directory taken at OpenDir, so that offsets stay stable under changes.
  struct DirListing {
    struct Entry {
      std::string name;
      Ino ino;
      uint32_t mode;  // S_IFMT bits only
    };
    Ino dir = 0;
    std::vector<Entry> entries;  // "." and ".." first
  };
  Result<std::unique_ptr<DirListing>> OpenDir(Ino ino);
  // fsync(2) of a directory: makes every change to names made before this call durable (in any
  // directory: they share one log), so "write tmp, fsync it, rename it over the real name,
  // fsync the directory" survives a power cut. File data needs the file's own Fsync.
  // ENOTDIR for anything but a directory.
  Status FsyncDir(Ino ino);

  // --- extended attributes ---
  // flags: 0, XATTR_CREATE or XATTR_REPLACE.
  Status SetXattr(Ino ino, std::string_view name, std::string_view value, int flags);
  Result<std::string> GetXattr(Ino ino, std::string_view name);  // ENODATA when absent
  Result<std::string> ListXattr(Ino ino);  // names, each followed by '\0'
  Status RemoveXattr(Ino ino, std::string_view name);

  // --- whole filesystem ---
  Result<SpaceInfo> StatFs();
  FsStats Stats();
  std::string StatsText();  // the contents of kStatsFileName (key=value lines)
  // Writes every buffered byte to the store and makes it durable; waits for background
  // deletions. Called at unmount; also by the destructor.
  Status Shutdown();
  // Waits until background work (deleting unlinked inodes, releasing their chunks) is done.
  Status DrainBackground();

 private:
  class Impl;  // fs_core_impl.h
  explicit FsCore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rankfs
