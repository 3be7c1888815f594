// FsCore's private state, shared by fs_core.cc (names, attributes, lifecycle) and
// file_data.cc (the data path). Not a public header.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fs/chunk_cache.h"
#include "fs/fs_core.h"
#include "store/chunker.h"

namespace rankfs {

int64_t NowNs();

// One inode known to the daemon: the kernel holds a lookup on it, a file handle is open, or it
// has buffered data.
struct Inode {
  explicit Inode(const InodeAttr& a) : attr(a), stream_end(a.size) {}
  // Guards attr, dirty, dirty_bytes, deleted and write_error. Shared for reads of data and
  // attributes, exclusive for any change.
  std::shared_mutex mu;
  InodeAttr attr;
  // Buffered writes: offset -> bytes. Entries never overlap and never touch (adjacent writes
  // are merged), so one entry is one contiguous dirty range.
  std::map<uint64_t, std::string> dirty;
  uint64_t dirty_bytes = 0;
  // Where the appending stream's last flush stopped, at a chunk cut. A buffered range that
  // starts here continues the stream; others (gaps not yet filled by out-of-order writeback,
  // random writes) wait for close, fsync or memory pressure.
  uint64_t stream_end = 0;
  bool deleted = false;  // its data was released; no further I/O
  // Known to have no security.capability xattr (DropPrivsLocked looked once; SetXattr of that
  // name clears it), so writes need not ask RocksDB again. Guarded by mu.
  bool no_caps = false;

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

  // --- data path (file_data.cc); REQUIRES: inode->mu held exclusively unless noted ---
  Status WriteLocked(Inode* inode, uint64_t offset, std::string_view data);
  // Writes buffered ranges to the store. keep_tail (an opportunistic flush while writing):
  // flush only the range that continues the stream and leave its unfinished last chunk
  // buffered, so a stream is cut as if it had been written in one piece; everything is
  // flushed only when the file's buffer still exceeds twice its threshold. Otherwise every
  // range is flushed; sync makes the result durable.
  Status FlushLocked(Inode* inode, bool keep_tail, bool sync);
  // Flushes the buffered range that starts at `start`; with keep_tail, up to its last cut.
  // Sets *flushed to the bytes written to the store.
  Status FlushRange(Inode* inode, uint64_t start, bool keep_tail, bool sync,
                    uint64_t* flushed);
  // REQUIRES: mu held (shared is enough).
  Result<size_t> ReadLocked(Inode* inode, uint64_t offset, size_t size, char* buf);
  Status TruncateLocked(Inode* inode, uint64_t size);
  Status PunchLocked(Inode* inode, uint64_t offset, uint64_t length);
  // Removes [start, end) of the inode's stored extents and inserts `added` (whose chunk
  // references the caller already holds) in one metadata batch, together with `extra`.
  Status ReplaceRange(Ino ino, uint64_t start, uint64_t end,
                      const std::vector<std::pair<uint64_t, Extent>>& added,
                      MetaStore::Batch* extra, bool sync);
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

  // --- background deletion of unlinked inodes ---
  void QueueDelete(Ino ino);
  Status DeleteInodeData(Ino ino);
  void DeleteLoop();

  Store* const store_;
  MetaStore* const meta_;
  ChunkStore* const chunks_;
  const FsOptions options_;
  const FastCdc cdc_;
  ChunkCache cache_;

  // Serializes namespace changes (create, link, unlink, rename, ...): they check and then
  // change several records, which must look atomic. Not taken on the data path.
  std::mutex ns_mu_;

  std::mutex table_mu_;  // guards table_ and every Inode's nlookup/open_count
  std::unordered_map<Ino, std::shared_ptr<Inode>> table_;

  std::atomic<Ino> next_ino_{kFirstAllocatedIno};
  std::atomic<uint64_t> dirty_total_{0};
  std::atomic<uint64_t> getxattr_requests_{0};
  uint64_t generation_ = 1;

  std::mutex delete_mu_;  // guards delete_queue_, deleting_, stop_
  std::condition_variable delete_cv_;
  std::deque<Ino> delete_queue_;
  bool deleting_ = false;
  bool stop_ = false;
  std::thread delete_thread_;
  bool shut_down_ = false;  // guarded by ns_mu_
};

}  // namespace rankfs
