// The state of one Fsck run, shared by fsck.cc (the checks) and fsck_repair.cc (the repair).
// Not part of the store's API.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "store/fsck.h"
#include "store/meta_store.h"
#include "store/offline_store.h"
#include "store/types.h"

namespace rankfs::fsck_internal {

inline constexpr size_t kNone = size_t(-1);

// What the checks learned about one chunk of the index (OfflineStore::chunks(), same index).
struct ChunkCheck {
  uint64_t refs = 0;         // extents naming it
  uint64_t doomed_refs = 0;  // of those, extents the repair deletes (their inode goes)
  size_t damage = kNone;     // index of its kDamagedChunk finding
  size_t refcount = kNone;   // index of its refcount finding
};

// What the checks found about one pack file.
struct PackCheck {
  size_t bad_header = kNone;  // index of its kBadPack finding
  size_t orphan = kNone;      // index of its kOrphanPack finding
};

// Records of one inode that the repair deletes: an orphan (nlink 0) or an inode that does not
// exist at all.
struct DoomedInode {
  bool exists = false;  // an orphan inode whose attributes are deleted too
  bool orphan_entry = false;
  std::vector<uint64_t> extent_offsets;
  std::vector<std::string> xattrs;
  size_t finding = kNone;
};

// A file's allocated-bytes figure (InodeAttr::allocated_bytes) and what its extents hold.
struct AllocatedBytes {
  uint64_t recorded = 0;
  uint64_t counted = 0;
  size_t finding = kNone;
};

// A chunk named by extents but missing from the index.
struct MissingChunk {
  size_t finding = kNone;
  uint64_t live_refs = 0;  // extents naming it that the repair keeps
};

class Checker {
 public:
  Checker(std::string dir, const FsckOptions& options);
  Result<FsckReport> Run();

 private:
  Status LoadInodes();
  Status CheckPacks();
  Status CheckPack(uint32_t pack_id, const OfflinePack& pack, uint64_t* progress_base,
                   uint64_t progress_total);
  Status CheckExtents();
  Status CollectDoomedXattrs();
  void CheckRefcounts();
  void CheckAllocated();
  void AddMoreLines();

  // fsck_repair.cc
  Status Repair();
  Status RewritePackHeader(uint32_t pack_id);

  size_t AddFinding(FsckIssue issue, std::string message);
  void AddDetail(size_t finding, std::string detail);
  MetaStore* meta() const { return store_->meta(); }

  const std::string dir_;
  const FsckOptions options_;
  FsckReport report_;

  std::unique_ptr<OfflineStore> store_;
  std::vector<ChunkCheck> checks_;             // one per OfflineStore::chunks() entry
  std::map<uint32_t, PackCheck> pack_checks_;  // one per pack file
  std::unordered_set<Ino> inodes_;
  // Linked inodes whose record carries the figure (records older than it do not).
  std::unordered_map<Ino, AllocatedBytes> allocated_;
  std::map<Ino, DoomedInode> doomed_;
  std::vector<Ino> stale_orphans_;  // orphan entries of linked inodes
  std::vector<size_t> stale_orphan_findings_;
  std::map<ChunkHash, MissingChunk> missing_;
  std::vector<std::pair<size_t, bool>> out_of_range_;  // finding, extent doomed
  std::vector<uint64_t> listed_;  // per finding: details listed beyond max_listed (not shown)
};

}  // namespace rankfs::fsck_internal
