// Fsck's checks; the repair is in fsck_repair.cc. See fsck.h for what is checked and why the
// PackChunkStore is never opened here.
#include "store/fsck.h"

#include <algorithm>

#include "store/compressor.h"
#include "store/fsck_internal.h"
#include "store/offline_store.h"
#include "store/pack_format.h"

namespace rankfs {
namespace fsck_internal {
namespace {

std::string Where(const ChunkLocation& loc) {
  return "pack " + std::to_string(loc.pack_id) + " offset " + std::to_string(loc.offset);
}

std::string ExtentText(Ino ino, uint64_t offset, uint64_t length) {
  return "inode " + std::to_string(ino) + ", file offset " + std::to_string(offset) + ", " +
         std::to_string(length) + " bytes";
}

// Reads a chunk's record at its indexed location and checks all of it, its content hash too.
// Returns "" when the chunk is intact, otherwise what is wrong.
std::string VerifyChunk(File* file, uint64_t pack_size, const IndexedChunk& chunk, std::string* rec,
                        std::string* raw) {
  const ChunkLocation& loc = chunk.rec.location;
  Result<std::string> damage = ReadIndexedRecord(file, pack_size, chunk.hash, loc, rec);
  if (!damage.ok()) return "read failed: " + damage.status().ToString();
  if (!damage->empty()) return *damage;
  std::string_view content(rec->data() + kRecordHeaderSize, loc.stored_length);
  if (loc.codec == Codec::kZstd) {
    raw->resize(loc.raw_length);
    Status d = DecompressChunk(content, loc.raw_length, raw->data());
    if (!d.ok()) return "does not decompress: " + d.message();
    content = *raw;
  }
  // A per-uid store's chunk address covers its owner uid too (ChunkHash::OfScoped).
  const std::optional<uint32_t>& scope_uid = chunk.rec.scope_uid;
  if (ChunkHash::ForScope(scope_uid, content) != chunk.hash) {
    return scope_uid ? "content does not match its SHA-256 (scoped to uid " +
                           std::to_string(*scope_uid) + ")"
                     : "content does not match its SHA-256";
  }
  return "";
}

}  // namespace

Checker::Checker(std::string dir, const FsckOptions& options)
    : dir_(std::move(dir)), options_(options) {}

size_t Checker::AddFinding(FsckIssue issue, std::string message) {
  report_.findings.push_back(FsckFinding{issue, std::move(message), {}, false});
  listed_.push_back(0);
  return report_.findings.size() - 1;
}

void Checker::AddDetail(size_t finding, std::string detail) {
  FsckFinding& f = report_.findings[finding];
  if (f.details.size() < options_.max_listed) {
    f.details.push_back(std::move(detail));
  } else {
    ++listed_[finding];
  }
}

void Checker::AddMoreLines() {
  for (size_t i = 0; i < listed_.size(); ++i) {
    if (listed_[i] > 0) {
      report_.findings[i].details.push_back("... and " + std::to_string(listed_[i]) + " more");
    }
  }
}

// Inode numbers, and the orphan list sorted into orphans (data to drop), stale entries of
// linked inodes, and entries of inodes that do not exist.
Status Checker::LoadInodes() {
  RANKFS_RETURN_IF_ERROR(meta()->ForEachInode([&](const InodeAttr& a) {
    inodes_.insert(a.ino);
    if (a.nlink > 0 && a.allocated_bytes != InodeAttr::kAllocatedUnknown) {
      allocated_[a.ino].recorded = a.allocated_bytes;
    }
    return true;
  }));
  report_.inodes = inodes_.size();
  std::vector<Ino> orphans;
  RANKFS_RETURN_IF_ERROR(meta()->ForEachOrphan([&](Ino ino) {
    orphans.push_back(ino);
    return true;
  }));
  report_.orphans = orphans.size();
  for (Ino ino : orphans) {
    RANKFS_ASSIGN_OR_RETURN(std::optional<InodeAttr> attr, meta()->GetInode(ino));
    if (!attr) {
      DoomedInode& d = doomed_[ino];
      d.orphan_entry = true;
    } else if (attr->nlink == 0) {
      DoomedInode& d = doomed_[ino];
      d.exists = true;
      d.orphan_entry = true;
    } else {
      stale_orphans_.push_back(ino);
      stale_orphan_findings_.push_back(AddFinding(
          FsckIssue::kStaleOrphanEntry, "inode " + std::to_string(ino) + " is on the orphan " +
                                            "list but still has " + std::to_string(attr->nlink) +
                                            " link(s)"));
    }
  }
  return Status::Ok();
}

Status Checker::CheckPacks() {
  // Chunks whose pack file is gone; then each pack file, front to back.
  uint64_t total = 0;
  for (const auto& [id, pack] : store_->packs()) {
    if (pack.has_file) {
      pack_checks_[id];
      total += pack.size;
      continue;
    }
    for (size_t i : pack.chunks) {
      const IndexedChunk& c = store_->chunks()[i];
      checks_[i].damage = AddFinding(
          FsckIssue::kDamagedChunk,
          "chunk " + c.hash.ToHex() + " (" + Where(c.rec.location) + "): its pack file is missing");
    }
  }
  report_.packs = pack_checks_.size();
  report_.pack_bytes = total;
  uint64_t done = 0;
  for (const auto& [id, pack] : store_->packs()) {
    if (pack.has_file) RANKFS_RETURN_IF_ERROR(CheckPack(id, pack, &done, total));
  }
  return Status::Ok();
}

Status Checker::CheckPack(uint32_t pack_id, const OfflinePack& pack, uint64_t* progress_base,
                          uint64_t progress_total) {
  RANKFS_ASSIGN_OR_RETURN(std::unique_ptr<File> file,
                          store_->env()->OpenFile(store_->PackPath(pack_id), OpenMode::kReadOnly));
  PackCheck& check = pack_checks_[pack_id];

  // The header: readable, and naming this pack and this store.
  std::string hb(kPackHeaderSize, '\0');
  size_t got = 0;
  RANKFS_RETURN_IF_ERROR(file->PRead(0, hb.size(), hb.data(), &got));
  hb.resize(got);
  Result<PackFileHeader> header = DecodePackFileHeader(hb);
  std::string bad;
  if (!header.ok()) {
    bad = header.status().message();
  } else if (header->pack_id != pack_id) {
    bad = "it names pack " + std::to_string(header->pack_id);
  } else if (header->store_uuid != meta()->super().uuid) {
    bad = "it names another store (uuid differs from the superblock's)";
  }
  // A pack that holds no indexed chunk is a leftover whatever its header says (a new pack
  // whose unsynced header a crash dropped, after its chunks went to another pack): it is
  // reported once, as an orphan, and not as damage.
  if (!bad.empty() && !pack.chunks.empty()) {
    check.bad_header =
        AddFinding(FsckIssue::kBadPack, "pack " + std::to_string(pack_id) + ": bad header: " + bad);
  }

  // Every record in the pack; those the index does not name are leftovers of released chunks.
  if (header.ok()) {
    std::vector<uint64_t> offsets;
    offsets.reserve(pack.chunks.size());
    for (size_t i : pack.chunks) offsets.push_back(store_->chunks()[i].rec.location.offset);
    uint64_t last_report = 0;
    Status scan = ScanPack(
        file.get(),
        [&](const ScannedRecord& r) {
          if (!std::binary_search(offsets.begin(), offsets.end(), r.offset)) {
            ++report_.unindexed_records;
            report_.unindexed_bytes += kRecordHeaderSize + r.header.stored_length;
          }
          if (r.offset - last_report > (8u << 20)) {
            last_report = r.offset;
            store_->Progress("scanning packs", *progress_base + r.offset, progress_total);
          }
          return true;
        },
        nullptr);
    RANKFS_RETURN_IF_ERROR(scan.Annotate("fsck"));
  }

  // Every indexed chunk of the pack, read back and verified.
  std::string rec, raw;
  for (size_t i : pack.chunks) {
    const IndexedChunk& c = store_->chunks()[i];
    std::string why = VerifyChunk(file.get(), pack.size, c, &rec, &raw);
    if (why.empty()) {
      report_.chunk_bytes += c.rec.location.raw_length;
    } else {
      checks_[i].damage =
          AddFinding(FsckIssue::kDamagedChunk,
                     "chunk " + c.hash.ToHex() + " (" + Where(c.rec.location) + "): " + why);
    }
  }
  if (pack.chunks.empty()) {
    check.orphan = AddFinding(
        FsckIssue::kOrphanPack, "pack " + std::to_string(pack_id) + " (" +
                                    std::to_string(pack.size) + " bytes) holds no indexed chunk" +
                                    (bad.empty() ? "" : " (and its header is bad: " + bad + ")"));
  }
  *progress_base += pack.size;
  store_->Progress("scanning packs", *progress_base, progress_total);
  return Status::Ok();
}

// One pass over all extents: recounts references, finds extents of doomed or missing inodes,
// extents naming missing chunks or running past their chunk, and who uses damaged chunks.
Status Checker::CheckExtents() {
  uint64_t n = 0;
  RANKFS_RETURN_IF_ERROR(meta()->ForEachExtent([&](Ino ino, uint64_t off, const Extent& e) {
    if (++n % 65536 == 0) store_->Progress("checking extents", n, 0);
    bool doomed = false;
    if (inodes_.count(ino) == 0) {
      doomed = true;
      doomed_[ino].extent_offsets.push_back(off);
    } else if (auto it = doomed_.find(ino); it != doomed_.end()) {
      doomed = true;
      it->second.extent_offsets.push_back(off);
    }
    if (auto it = allocated_.find(ino); it != allocated_.end()) it->second.counted += e.length;
    if (e.unwritten) return true;  // a preallocated range: no chunk
    const size_t i = store_->Find(e.chunk);
    if (i == OfflineStore::kNoChunk) {
      MissingChunk& m = missing_[e.chunk];
      if (m.finding == kNone) {
        m.finding = AddFinding(FsckIssue::kMissingChunk,
                               "chunk " + e.chunk.ToHex() + " is named by extents but is not " +
                                   "in the index; these ranges read as errors:");
      }
      if (!doomed) ++m.live_refs;
      AddDetail(m.finding, ExtentText(ino, off, e.length));
      return true;
    }
    ChunkCheck& c = checks_[i];
    ++c.refs;
    if (doomed) ++c.doomed_refs;
    if (c.damage != kNone) AddDetail(c.damage, "used by " + ExtentText(ino, off, e.length));
    const uint32_t raw_length = store_->chunks()[i].rec.location.raw_length;
    if (uint64_t(e.chunk_offset) + e.length > raw_length) {
      size_t f = AddFinding(FsckIssue::kExtentOutOfRange,
                            ExtentText(ino, off, e.length) + " at chunk offset " +
                                std::to_string(e.chunk_offset) + " runs past the end of chunk " +
                                e.chunk.ToHex() + " (" + std::to_string(raw_length) + " bytes)");
      out_of_range_.emplace_back(f, doomed);
    }
    return true;
  }));
  report_.extents = n;
  return Status::Ok();
}

// Xattrs of the inodes whose records the repair deletes. (MetaStore has no walk over all
// xattrs, so xattrs of a missing inode that has no extent or orphan entry are not found.)
Status Checker::CollectDoomedXattrs() {
  for (auto& entry : doomed_) {
    // Not a structured binding: clang 14 (the fuzz build) cannot capture one in a lambda.
    const Ino ino = entry.first;
    DoomedInode& d = entry.second;
    RANKFS_RETURN_IF_ERROR(meta()->ListXattrs(ino, [&](std::string_view name) {
      d.xattrs.emplace_back(name);
      return true;
    }));
    std::string what = std::to_string(d.extent_offsets.size()) + " extent(s), " +
                       std::to_string(d.xattrs.size()) + " xattr(s)";
    if (d.exists) {
      d.finding = AddFinding(FsckIssue::kOrphanInode, "inode " + std::to_string(ino) +
                                                          " is an orphan (no name left) " +
                                                          "with " + what + " not yet released");
    } else {
      d.finding = AddFinding(FsckIssue::kDanglingRecord,
                             "inode " + std::to_string(ino) + " does not exist, yet " + what +
                                 (d.orphan_entry ? " and an orphan entry" : "") + " refer to it");
    }
  }
  return Status::Ok();
}

void Checker::CheckRefcounts() {
  for (size_t i = 0; i < checks_.size(); ++i) {
    const IndexedChunk& c = store_->chunks()[i];
    ChunkCheck& e = checks_[i];
    const uint64_t recorded = c.rec.refcount;
    const std::string head = "chunk " + c.hash.ToHex() + ": refcount " + std::to_string(recorded) +
                             ", but " + std::to_string(e.refs) + " extent(s) name it";
    if (recorded < e.refs) {
      e.refcount =
          AddFinding(FsckIssue::kRefcountTooLow, head + " (too low: deleting a file could free " +
                                                     "data other files still use)");
    } else if (recorded > e.refs && e.refs == 0) {
      e.refcount = AddFinding(FsckIssue::kUnreferencedChunk, head + " (unused: its space leaks)");
    } else if (recorded > e.refs) {
      e.refcount = AddFinding(FsckIssue::kRefcountTooHigh, head + " (too high: its space leaks)");
    }
  }
}

void Checker::CheckAllocated() {
  for (auto& [ino, a] : allocated_) {
    if (a.recorded == a.counted) continue;
    a.finding = AddFinding(FsckIssue::kAllocatedMismatch,
                           "inode " + std::to_string(ino) + " records " +
                               std::to_string(a.recorded) + " allocated bytes, its extents hold " +
                               std::to_string(a.counted) + " (st_blocks is off)");
  }
}

Result<FsckReport> Checker::Run() {
  RANKFS_ASSIGN_OR_RETURN(store_, OfflineStore::Open(dir_, options_));
  RANKFS_RETURN_IF_ERROR(LoadInodes());
  RANKFS_RETURN_IF_ERROR(store_->Load());
  report_.chunks = store_->chunks().size();
  checks_.resize(store_->chunks().size());
  RANKFS_RETURN_IF_ERROR(CheckPacks());
  RANKFS_RETURN_IF_ERROR(CheckExtents());
  RANKFS_RETURN_IF_ERROR(CollectDoomedXattrs());
  CheckRefcounts();
  CheckAllocated();
  if (options_.repair && !report_.findings.empty()) RANKFS_RETURN_IF_ERROR(Repair());
  AddMoreLines();
  RANKFS_RETURN_IF_ERROR(store_->Close());
  return std::move(report_);
}

}  // namespace fsck_internal

std::string_view FsckIssueName(FsckIssue issue) {
  switch (issue) {
    case FsckIssue::kBadPack:
      return "bad pack header";
    case FsckIssue::kOrphanPack:
      return "orphan pack";
    case FsckIssue::kDamagedChunk:
      return "damaged chunk";
    case FsckIssue::kRefcountTooLow:
      return "refcount too low";
    case FsckIssue::kRefcountTooHigh:
      return "refcount too high";
    case FsckIssue::kUnreferencedChunk:
      return "unreferenced chunk";
    case FsckIssue::kMissingChunk:
      return "missing chunk";
    case FsckIssue::kExtentOutOfRange:
      return "extent out of range";
    case FsckIssue::kOrphanInode:
      return "orphan inode";
    case FsckIssue::kStaleOrphanEntry:
      return "stale orphan entry";
    case FsckIssue::kDanglingRecord:
      return "records of a missing inode";
    case FsckIssue::kAllocatedMismatch:
      return "allocated bytes mismatch";
  }
  return "unknown";
}

size_t FsckReport::Repaired() const {
  return size_t(std::count_if(findings.begin(), findings.end(),
                              [](const FsckFinding& f) { return f.repaired; }));
}

size_t FsckReport::Unrepaired() const { return findings.size() - Repaired(); }

int FsckReport::ExitCode() const {
  return (Repaired() > 0 ? kFsckExitCorrected : 0) | (Unrepaired() > 0 ? kFsckExitUncorrected : 0);
}

Result<FsckReport> Fsck(const std::string& store_dir, const FsckOptions& options) {
  fsck_internal::Checker checker(store_dir, options);
  return checker.Run();
}

}  // namespace rankfs
