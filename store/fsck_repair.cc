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
  h.store_uuid = meta()->super().uuid;
  RANKFS_ASSIGN_OR_RETURN(std::unique_ptr<File> file,
                          store_->env()->OpenFile(store_->PackPath(pack_id), OpenMode::kReadWrite));
  RANKFS_RETURN_IF_ERROR(file->PWrite(0, EncodePackFileHeader(h)));
  return file->Sync();
}

// Order matters for a crash in the middle: counts that are too low are raised first, extents
// are deleted next, counts are lowered after that, and pack files go only once all of it is
// durable. Every prefix therefore keeps each count >= the extents naming its chunk.
Status Checker::Repair() {
  std::vector<FsckFinding>& findings = report_.findings;
  const std::vector<IndexedChunk>& chunks = store_->chunks();
  BatchWriter w(meta(), &report_.changes);

  // 1. Raise counts that are too low.
  for (size_t i = 0; i < chunks.size(); ++i) {
    const IndexedChunk& c = chunks[i];
    if (c.rec.refcount >= checks_[i].refs) continue;
    ChunkRecord r = c.rec;
    r.refcount = checks_[i].refs;
    w.batch().PutChunk(c.hash, r);
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
    RANKFS_ASSIGN_OR_RETURN(std::optional<InodeAttr> attr, meta()->GetInode(ino));
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
  for (size_t i = 0; i < chunks.size(); ++i) {
    const IndexedChunk& c = chunks[i];
    const ChunkCheck& e = checks_[i];
    const uint64_t target = e.refs - e.doomed_refs;
    const uint64_t current = std::max(c.rec.refcount, e.refs);
    const std::string chunk = "chunk " + c.hash.ToHex();
    if (target == 0) {
      w.batch().DeleteChunk(c.hash);
      w.Note(chunk + ": index entry deleted (refcount was " + std::to_string(c.rec.refcount) +
             ", no extent names it any more); the next mount releases its bytes");
    } else {
      ++remaining[c.rec.location.pack_id];
      if (target != current) {
        ChunkRecord r = c.rec;
        r.refcount = target;
        w.batch().PutChunk(c.hash, r);
      }
      if (target != c.rec.refcount) {
        w.Note(chunk + ": refcount " + std::to_string(c.rec.refcount) + " -> " +
               std::to_string(target));
      }
    }
    RANKFS_RETURN_IF_ERROR(w.MaybeWrite());
  }
  RANKFS_RETURN_IF_ERROR(w.Write());
  RANKFS_RETURN_IF_ERROR(meta()->SyncWal().Annotate("fsck repair"));
  for (const ChunkCheck& e : checks_) {
    if (e.refcount != kNone) findings[e.refcount].repaired = true;
    if (e.damage != kNone && e.refs == e.doomed_refs) findings[e.damage].repaired = true;
  }

  // 4. Pack files: delete those that hold no indexed chunk; give the others a valid header.
  bool deleted_any = false;
  for (const auto& [id, check] : pack_checks_) {
    const OfflinePack& pack = store_->packs().at(id);
    if (remaining[id] == 0) {
      RANKFS_RETURN_IF_ERROR(
          store_->env()->DeleteFile(store_->PackPath(id)).Annotate("fsck repair"));
      deleted_any = true;
      report_.changes.push_back(
          "pack " + std::to_string(id) + ": deleted (" + std::to_string(pack.size) +
          " bytes; it held " +
          (pack.chunks.empty() ? "no indexed chunk" : "only chunks the repair dropped") + ")");
      RANKFS_ASSIGN_OR_RETURN(std::optional<PackStats> stats, meta()->GetPack(id));
      if (stats) w.batch().DeletePack(id);
      if (check.orphan != kNone) findings[check.orphan].repaired = true;
      if (check.bad_header != kNone) findings[check.bad_header].repaired = true;
    } else if (check.bad_header != kNone) {
      RANKFS_RETURN_IF_ERROR(RewritePackHeader(id).Annotate("fsck repair"));
      report_.changes.push_back("pack " + std::to_string(id) + ": header rewritten");
      findings[check.bad_header].repaired = true;
    }
  }
  if (deleted_any) RANKFS_RETURN_IF_ERROR(store_->env()->SyncDir(store_->PacksDir()));
  RANKFS_RETURN_IF_ERROR(w.Write());
  return Status::Ok();
}

}  // namespace rankfs::fsck_internal
