// MetaStore: rankfs's metadata (inodes, directory entries, extents, the chunk index, xattrs,
// orphans, pack accounting, superblock) in one RocksDB database with one column family each.
// Key and value layouts are in meta_codec.h and docs/format.md.
//
// Reads see every Write() that returned before them. Write() applies a Batch atomically: after
// a crash either all of it or none of it is visible. Durability: a Write with sync=true, or any
// Write followed by a successful SyncWal(), survives a crash; other writes may be lost, but
// always as a suffix (the database recovers to a prefix of the write sequence).
//
// Thread-safety: all methods are safe to call concurrently. Batch is not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/status.h"
#include "store/types.h"

namespace rocksdb {
class DB;
class Env;
class WriteBatch;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace rankfs {

// A test seam consulted before every MetaStore::Write (fault_injection_env.h has the one the
// tests use): it can fail a write, or carry it out and then report it failed, the unknown
// outcome that a RocksDB write whose WAL append succeeded and whose sync failed has.
class MetaWriteHook {
 public:
  enum class Action { kProceed, kFail, kApplyThenFail };
  virtual ~MetaWriteHook() = default;
  // `families`: the column families the batch changes, by name, comma-separated, in Cf order
  // ("inodes,extents").
  virtual Action BeforeWrite(const std::string& families, bool sync) = 0;
};

struct MetaStoreOptions {
  bool create_if_missing = true;
  // Opens the database without changing it (RocksDB's read-only mode: the WAL is replayed in
  // memory, no file is written). Write fails with EROFS; SyncWal has nothing to do.
  bool read_only = false;
  // RocksDB Env to run on; nullptr for rocksdb::Env::Default(). Tests pass a fault-injecting
  // or in-memory one (rocks_fault_env.h). Not owned; must outlive the MetaStore.
  rocksdb::Env* rocks_env = nullptr;
  // An existing store of an older format version gets this build's version in its superblock
  // (synced) before Open returns: the daemon writes records those builds cannot read, so they
  // must refuse the store (docs/format.md, "Format versions"). Offline tools leave it off.
  bool upgrade_format = false;
  size_t block_cache_bytes = 64 << 20;
  size_t write_buffer_bytes = 32 << 20;
  MetaWriteHook* write_hook = nullptr;  // tests only; not owned, must outlive the MetaStore
};

// The column families, in the order they are opened.
enum class Cf : int {
  kSuper = 0,
  kInodes,
  kDirents,
  kExtents,
  kChunks,
  kXattrs,
  kOrphans,
  kPacks,
  kCount
};

class MetaStore {
 public:
  // A set of changes applied atomically by Write().
  class Batch {
   public:
    void PutSuper(const Superblock& sb);
    void PutInode(const InodeAttr& attr);
    void DeleteInode(Ino ino);
    void PutDirent(Ino parent, std::string_view name, const DirEntry& e);
    void DeleteDirent(Ino parent, std::string_view name);
    void PutExtent(Ino ino, uint64_t file_offset, const Extent& e);
    void DeleteExtent(Ino ino, uint64_t file_offset);
    void PutChunk(const ChunkHash& h, const ChunkRecord& r);
    void DeleteChunk(const ChunkHash& h);
    void PutXattr(Ino ino, std::string_view name, std::string_view value);
    void DeleteXattr(Ino ino, std::string_view name);
    void PutOrphan(Ino ino);
    void DeleteOrphan(Ino ino);
    void PutPack(uint32_t pack_id, const PackStats& s);
    void DeletePack(uint32_t pack_id);

    // Appends every operation of `other`, in order.
    void Append(const Batch& other);
    size_t Count() const { return ops_.size(); }
    bool Empty() const { return ops_.empty(); }
    void Clear() { ops_.clear(); }

   private:
    friend class MetaStore;
    struct Op {
      Cf cf;
      bool is_delete;
      std::string key;
      std::string value;
    };
    void Put(Cf cf, std::string key, std::string value);
    void Delete(Cf cf, std::string key);
    std::vector<Op> ops_;
  };

  // Opens (creating when allowed) the database in `dir`. A new database gets `initial_super`
  // written; an existing one must hold a superblock whose format version this build reads.
  static Result<std::unique_ptr<MetaStore>> Open(const std::string& dir,
                                                 const MetaStoreOptions& options,
                                                 const Superblock& initial_super);
  ~MetaStore();
  MetaStore(const MetaStore&) = delete;
  MetaStore& operator=(const MetaStore&) = delete;

  const Superblock& super() const { return super_; }

  // Applies `batch` atomically (it is left unchanged). With sync=true the batch, and every
  // Write that returned before it, is durable when this returns OK. An empty batch with
  // sync=false does nothing; with sync=true it works as SyncWal().
  Status Write(const Batch& batch, bool sync);
  // Makes every Write that returned before this call durable.
  Status SyncWal();

  Result<std::optional<InodeAttr>> GetInode(Ino ino);
  Result<std::optional<DirEntry>> GetDirent(Ino parent, std::string_view name);
  Result<std::optional<ChunkRecord>> GetChunk(const ChunkHash& h);
  Result<std::optional<std::string>> GetXattr(Ino ino, std::string_view name);
  Result<std::optional<PackStats>> GetPack(uint32_t pack_id);

  // The largest inode number in use (kRootIno when only the root exists, 0 when none).
  Result<Ino> MaxIno();

  // Iteration: the callback returns false to stop early. Order is by key.
  // Entries of `parent` whose names sort after `start_after` ("" for all).
  Status ListDir(Ino parent, std::string_view start_after,
                 const std::function<bool(std::string_view name, const DirEntry&)>& fn);
  // Whether `parent` has no entries. On a read error DirIsEmpty() answers false, so that a
  // caller deciding whether rmdir may proceed refuses rather than orphaning children;
  // CheckDirEmpty() reports the error instead.
  bool DirIsEmpty(Ino parent);
  Result<bool> CheckDirEmpty(Ino parent);
  // Extents of `ino` that overlap [from, to), including one that starts before `from`.
  Status ListExtents(Ino ino, uint64_t from, uint64_t to,
                     const std::function<bool(uint64_t file_offset, const Extent&)>& fn);
  Status ListXattrs(Ino ino, const std::function<bool(std::string_view name)>& fn);
  Status ForEachInode(const std::function<bool(const InodeAttr&)>& fn);
  Status ForEachExtent(const std::function<bool(Ino, uint64_t file_offset, const Extent&)>& fn);
  Status ForEachChunk(const std::function<bool(const ChunkHash&, const ChunkRecord&)>& fn);
  Status ForEachOrphan(const std::function<bool(Ino)>& fn);
  Status ForEachPack(const std::function<bool(uint32_t pack_id, const PackStats&)>& fn);

  // Memory RocksDB holds now: memtables (active and awaiting flush), the block cache
  // (data, index and filter blocks) and table readers outside the cache.
  struct MemoryUse {
    uint64_t memtables = 0, block_cache = 0, table_readers = 0;
  };
  MemoryUse GetMemoryUse();

  // Flushes memtables and closes the database. Also done by the destructor (which drops the
  // Status). Every other method must have returned before; none may be called after.
  Status Close();

 private:
  using ScanFn = std::function<bool(std::string_view key, std::string_view value)>;
  MetaStore() = default;
  Status Get(Cf cf, std::string_view key, std::string* value, bool* found);
  // Visits the keys of `cf` that start with `prefix` and are >= `start` (or all of them when
  // `start` is empty), in order, until `fn` returns false. `full_scan` marks a scan of a whole
  // column family (fsck, rebuilds) whose blocks should not evict the hot set from the cache.
  Status Scan(Cf cf, std::string_view prefix, std::string_view start, bool full_scan,
              const ScanFn& fn);

  Superblock super_;
  bool read_only_ = false;
  MetaWriteHook* write_hook_ = nullptr;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;  // indexed by Cf; owned, released in Close
};

}  // namespace rankfs
