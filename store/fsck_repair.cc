// Fsck's repair: metadata changes through MetaStore::Batch, then pack files. See fsck.h for
// what is repaired and what is deliberately left.
#include <algorithm>

#include "store/fsck_internal.h"
#include "store/pack_format.h"

namespace rankfs::fsck_internal {
namespace {

// Writes a long series of changes as bounded batches (sync=false; the caller syncs the WAL at
// the end). The change lines of a batch join the report only once the batch is written.
class BatchWriter {
 public:
  BatchWriter(MetaStore* meta, std::vector<std::string>* changes)
      : meta_(meta), changes_(changes) {}

  MetaStore::Batch& batch() { return batch_; }
  void Note(std::string change) { pending_.push_back(std::move(change)); }

  Status MaybeWrite() { return batch_.Count() >= kMaxOps ? Write() : Status::Ok(); }
  Status Write() {
    if (!batch_.Empty()) {
      Status s = meta_->Write(batch_, /*sync=*/false);
      if (!s.ok()) return s.Annotate("fsck repair (run fsck again to finish it)");
      batch_.Clear();
    }
    for (std::string& c : pending_) changes_->push_back(std::move(c));
    pending_.clear();
    return Status::Ok();
  }

 private:
  static constexpr size_t kMaxOps = 4096;
  MetaStore* const meta_;
  std::vector<std::string>* const changes_;
  MetaStore::Batch batch_;
  std::vector<std::string> pending_;
};

}  // namespace

Status Checker::RewritePackHeader(uint32_t pack_id) {
  PackFileHeader h;
  h.pack_id = pack_id;
  h.store_uuid = meta_->super().uuid;
  RANKFS_ASSIGN_OR_RETURN(std::unique_ptr<File> file,
                          env_->OpenFile(PackPath(pack_id), OpenMode::kReadWrite));
  RANKFS_RETURN_IF_ERROR(file->PWrite(0, EncodePackFileHeader(h)));
  return file->Sync();
}

// Order matters for a crash in the middle: counts that are too low are raised first, extents
// are deleted next, counts are lowered after that, and pack files go only once all of it is
// durable. Every prefix therefore keeps each count >= the extents naming its chunk.
Status Checker::Repair() {
  std::vector<FsckFinding>& findings = report_.findings;
  BatchWriter w(meta_.get(), &report_.changes);

  // 1. Raise counts that are too low.
  for (ChunkEntry& e : chunks_) {
    if (e.rec.refcount >= e.refs) continue;
    ChunkRecord r = e.rec;
    r.refcount = e.refs;
    w.batch().PutChunk(e.hash, r);
    RANKFS_RETURN_IF_ERROR(w.MaybeWrite());
  }
  RANKFS_RETURN_IF_ERROR(w.Write());

  // 2. Drop the records of orphan inodes and of inodes that do not exist.
  for (auto& [ino, d] : doomed_) {
    for (uint64_t off : d.extent_offsets) {
      w.batch().DeleteExtent(ino, off);
      RANKFS_RETURN_IF_ERROR(w.MaybeWrite());
    }
    for (const std::string& name : d.xattrs) w.batch().DeleteXattr(ino, name);
    if (d.exists) w.batch().DeleteInode(ino);
    if (d.orphan_entry) w.batch().DeleteOrphan(ino);
    std::string what = std::to_string(d.extent_offsets.size()) + " extent(s), " +
                       std::to_string(d.xattrs.size()) + " xattr(s)";
    w.Note(d.exists ? "inode " + std::to_string(ino) + " (orphan): deleted " + what +
                          ", the inode and its orphan entry"
                    : "inode " + std::to_string(ino) + " (does not exist): deleted " + what +
                          (d.orphan_entry ? " and its orphan entry" : ""));
    RANKFS_RETURN_IF_ERROR(w.MaybeWrite());
  }
  for (Ino ino : stale_orphans_) {
    w.batch().DeleteOrphan(ino);
    w.Note("inode " + std::to_string(ino) + ": deleted its orphan entry (it is still linked)");
  }
  // Allocated bytes from the extents (an inode the repair deletes is not in allocated_).
  for (auto& [ino, a] : allocated_) {
    if (a.finding == kNone) continue;
    RANKFS_ASSIGN_OR_RETURN(std::optional<InodeAttr> attr, meta_->GetInode(ino));
    if (!attr) continue;
    attr->allocated_bytes = a.counted;
    w.batch().PutInode(*attr);
    w.Note("inode " + std::to_string(ino) + ": allocated bytes " + std::to_string(a.recorded) +
           " -> " + std::to_string(a.counted));
    RANKFS_RETURN_IF_ERROR(w.MaybeWrite());
  }
  RANKFS_RETURN_IF_ERROR(w.Write());
  for (auto& [ino, a] : allocated_) {
    if (a.finding != kNone) findings[a.finding].repaired = true;
  }
  for (auto& [ino, d] : doomed_) findings[d.finding].repaired = true;
  for (size_t f : stale_orphan_findings_) findings[f].repaired = true;
  for (auto& [hash, m] : missing_) findings[m.finding].repaired = m.live_refs == 0;
  for (auto [f, doomed] : out_of_range_) findings[f].repaired = doomed;

  // 3. Counts down to the extents left; an index entry nothing names any more goes.
  std::map<uint32_t, uint64_t> remaining;  // indexed chunks per pack after the repair
  for (ChunkEntry& e : chunks_) {
    const uint64_t target = e.refs - e.doomed_refs;
    const uint64_t current = std::max(e.rec.refcount, e.refs);
    const std::string chunk = "chunk " + e.hash.ToHex();
    if (target == 0) {
      w.batch().DeleteChunk(e.hash);
      w.Note(chunk + ": index entry deleted (refcount was " + std::to_string(e.rec.refcount) +
             ", no extent names it any more); the next mount releases its bytes");
    } else {
      ++remaining[e.rec.location.pack_id];
      if (target != current) {
        ChunkRecord r = e.rec;
        r.refcount = target;
        w.batch().PutChunk(e.hash, r);
      }
      if (target != e.rec.refcount) {
        w.Note(chunk + ": refcount " + std::to_string(e.rec.refcount) + " -> " +
               std::to_string(target));
      }
    }
    RANKFS_RETURN_IF_ERROR(w.MaybeWrite());
  }
  RANKFS_RETURN_IF_ERROR(w.Write());
  RANKFS_RETURN_IF_ERROR(meta_->SyncWal().Annotate("fsck repair"));
  for (ChunkEntry& e : chunks_) {
    if (e.refcount != kNone) findings[e.refcount].repaired = true;
    if (e.damage != kNone && e.refs == e.doomed_refs) findings[e.damage].repaired = true;
  }

  // 4. Pack files: delete those that hold no indexed chunk; give the others a valid header.
  bool deleted_any = false;
  for (auto& [id, pack] : packs_) {
    if (remaining[id] == 0) {
      RANKFS_RETURN_IF_ERROR(env_->DeleteFile(PackPath(id)).Annotate("fsck repair"));
      deleted_any = true;
      report_.changes.push_back(
          "pack " + std::to_string(id) + ": deleted (" + std::to_string(pack.size) +
          " bytes; it held " +
          (pack.indexed == 0 ? "no indexed chunk" : "only chunks the repair dropped") + ")");
      RANKFS_ASSIGN_OR_RETURN(std::optional<PackStats> stats, meta_->GetPack(id));
      if (stats) w.batch().DeletePack(id);
      if (pack.orphan != kNone) findings[pack.orphan].repaired = true;
      if (pack.bad_header != kNone) findings[pack.bad_header].repaired = true;
    } else if (pack.bad_header != kNone) {
      RANKFS_RETURN_IF_ERROR(RewritePackHeader(id).Annotate("fsck repair"));
      report_.changes.push_back("pack " + std::to_string(id) + ": header rewritten");
      findings[pack.bad_header].repaired = true;
    }
  }
  if (deleted_any) RANKFS_RETURN_IF_ERROR(env_->SyncDir(dir_ + "/packs"));
  RANKFS_RETURN_IF_ERROR(w.Write());
  return Status::Ok();
}

}  // namespace rankfs::fsck_internal
