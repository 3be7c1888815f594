// FsCore's file space: the allocated-bytes figure behind st_blocks, and fallocate(2).
//
// allocated_bytes (InodeAttr) counts the bytes of a file's extents, data and unwritten
// (preallocated) alike; holes do not count. It changes only under the inode lock: every
// extent change made by a lock holder goes through ReplaceRange or ShiftExtents with the
// record, in the same metadata batch. The flush pipeline commits a stream's batches without
// the lock, so their new bytes are counted when the batch is submitted (CountSubmitLocked),
// as the file size is, and taken back if the batch fails (UncountFailedLocked). A crash can
// therefore leave a record counting a batch that never committed; fsck finds and repairs that
// (docs/reliability.md).
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include <algorithm>

#include "fs/fs_core.h"
#include "fs/fs_core_impl.h"
#include "store/logging.h"

namespace rankfs {
namespace {

constexpr uint64_t kMaxFileSize = 1ull << 60;  // as FsCore::Write
// Collapse and insert range move whole blocks, as on ext4 with 4 KiB blocks (st_blksize).
constexpr uint64_t kBlockSize = 4096;

}  // namespace

// ---------------------------------------------------------------------------------------------
// The allocated-bytes figure

Result<uint64_t> FsCore::Impl::StoredBytes(Inode* inode, uint64_t start, uint64_t end) {
  if (!inode->may_have_extents) return uint64_t(0);
  uint64_t bytes = 0;
  RANKFS_RETURN_IF_ERROR(
      meta_->ListExtents(inode->attr.ino, start, end, [&](uint64_t off, const Extent& e) {
        bytes += std::min(off + e.length, end) - std::max(off, start);
        return true;
      }));
  return bytes;
}

Status FsCore::Impl::CountSubmitLocked(Inode* inode) {
  const uint64_t start = inode->cut.front()->offset;
  const uint64_t end = inode->cut.back()->offset + inode->cut.back()->bytes->size();
  RANKFS_ASSIGN_OR_RETURN(uint64_t stored, StoredBytes(inode, start, end));
  inode->attr.allocated_bytes += (end - start) - stored;
  return Status::Ok();
}

void FsCore::Impl::UncountFailedLocked(Inode* inode, uint64_t start, uint64_t end) {
  // A commit whose write reported failure may still have landed (docs/design.md, "Errors"):
  // what is in the store now decides, not what the batch meant to change.
  Result<uint64_t> stored = StoredBytes(inode, start, end);
  if (!stored.ok()) {
    Log(LogLevel::kError, "fs",
        "inode " + std::to_string(inode->attr.ino) +
            ": cannot recount allocated bytes after a failed batch (fsck repairs the figure): " +
            stored.status().ToString());
    return;
  }
  const uint64_t counted = (end - start) - *stored;
  uint64_t& a = inode->attr.allocated_bytes;
  a = a > counted ? a - counted : 0;
}

uint64_t FsCore::Impl::BufferedBytesLocked(const Inode& inode) {
  return (inode.stream ? inode.stream->buffered() : 0) + inode.cut_bytes + inode.dirty_bytes;
}

InodeAttr FsCore::Impl::ReportLocked(const Inode& inode) {
  InodeAttr a = inode.attr;
  // Buffered bytes that overwrite stored ones count twice until they are stored: at most the
  // inode's buffers, and exact again at the latest when the file is closed.
  a.allocated_bytes += BufferedBytesLocked(inode);
  return a;
}

Status FsCore::Impl::FillAllocated(InodeAttr* attr) {
  if (attr->allocated_bytes != InodeAttr::kAllocatedUnknown) return Status::Ok();
  attr->allocated_bytes = 0;
  if (!S_ISREG(attr->mode)) return Status::Ok();
  return meta_->ListExtents(attr->ino, 0, UINT64_MAX, [&](uint64_t, const Extent& e) {
    attr->allocated_bytes += e.length;
    return true;
  });
}

// ---------------------------------------------------------------------------------------------
// fallocate modes

Status FsCore::Impl::AllocateLocked(Inode* inode, uint64_t offset, uint64_t length,
                                    bool keep_size) {
  const uint64_t end = offset + length;
  // Buffered bytes first: the gaps between stored extents are then the file's holes.
  RANKFS_RETURN_IF_ERROR(SettleLocked(inode, /*sync=*/false));
  std::vector<std::pair<uint64_t, Extent>> gaps;
  uint64_t at = offset;
  if (inode->may_have_extents) {
    RANKFS_RETURN_IF_ERROR(
        meta_->ListExtents(inode->attr.ino, offset, end, [&](uint64_t off, const Extent& e) {
          if (off > at) gaps.emplace_back(at, Extent::Unwritten(off - at));
          at = std::max(at, off + e.length);
          return true;
        }));
  }
  if (at < end) gaps.emplace_back(at, Extent::Unwritten(end - at));
  InodeAttr rec = inode->attr;
  if (!keep_size) rec.size = std::max(rec.size, end);
  if (gaps.empty() && rec.size == inode->attr.size) return Status::Ok();
  rec.ctime_ns = NowNs();
  inode->may_have_extents = true;
  // start == end: nothing is removed, the gaps are added.
  RANKFS_RETURN_IF_ERROR(ReplaceRange(rec.ino, offset, offset, gaps, nullptr, false, &rec));
  inode->attr = rec;
  return Status::Ok();
}

Status FsCore::Impl::ZeroRangeLocked(Inode* inode, uint64_t offset, uint64_t length,
                                     bool keep_size) {
  const uint64_t end = offset + length;
  DropDirty(inode, offset, end);  // about to become zeros: no need to store them first
  RANKFS_RETURN_IF_ERROR(SettleLocked(inode, /*sync=*/false));
  InodeAttr rec = inode->attr;
  if (!keep_size) rec.size = std::max(rec.size, end);
  rec.mtime_ns = rec.ctime_ns = NowNs();
  inode->may_have_extents = true;
  // As ext4 does: the range becomes one unwritten extent, allocated and reading as zeros.
  RANKFS_RETURN_IF_ERROR(
      ReplaceRange(rec.ino, offset, end, {{offset, Extent::Unwritten(length)}}, nullptr, false,
                   &rec));
  inode->attr = rec;
  return Status::Ok();
}

Status FsCore::Impl::CollapseRangeLocked(Inode* inode, uint64_t offset, uint64_t length) {
  if (offset % kBlockSize != 0 || length % kBlockSize != 0) {
    return Status(EINVAL, "collapse range: offset and length must be multiples of 4096");
  }
  if (offset + length >= inode->attr.size) {
    return Status(EINVAL, "collapse range may not reach the end of the file");
  }
  RANKFS_RETURN_IF_ERROR(SettleLocked(inode, /*sync=*/false));
  InodeAttr rec = inode->attr;
  rec.size -= length;
  rec.mtime_ns = rec.ctime_ns = NowNs();
  RANKFS_RETURN_IF_ERROR(ShiftExtents(rec.ino, offset, length, /*collapse=*/true, &rec));
  inode->attr = rec;
  DropStreamLocked(inode, rec.size);  // the end moved: a later append starts a new stream
  return Status::Ok();
}

Status FsCore::Impl::InsertRangeLocked(Inode* inode, uint64_t offset, uint64_t length) {
  if (offset % kBlockSize != 0 || length % kBlockSize != 0) {
    return Status(EINVAL, "insert range: offset and length must be multiples of 4096");
  }
  if (offset >= inode->attr.size) {
    return Status(EINVAL, "insert range must start before the end of the file");
  }
  if (length > kMaxFileSize - inode->attr.size) {
    return Status(EFBIG, "insert range past the largest file size");
  }
  RANKFS_RETURN_IF_ERROR(SettleLocked(inode, /*sync=*/false));
  InodeAttr rec = inode->attr;
  rec.size += length;
  rec.mtime_ns = rec.ctime_ns = NowNs();
  RANKFS_RETURN_IF_ERROR(ShiftExtents(rec.ino, offset, length, /*collapse=*/false, &rec));
  inode->attr = rec;
  DropStreamLocked(inode, rec.size);
  return Status::Ok();
}

Status FsCore::Impl::ShiftExtents(Ino ino, uint64_t offset, uint64_t length, bool collapse,
                                  InodeAttr* record) {
  const uint64_t end = offset + length;  // collapse: the range that goes
  // The part of extent (off, e) that starts at file offset `from` and is `len` long.
  auto piece = [](uint64_t off, const Extent& e, uint64_t from, uint64_t len) {
    Extent p = e;
    p.length = len;
    if (!e.unwritten) p.chunk_offset = uint32_t(e.chunk_offset + (from - off));
    return p;
  };
  // Old keys are deleted before new ones are written: a moved extent may land on a key that
  // another one leaves.
  std::vector<uint64_t> deletes;
  std::vector<std::pair<uint64_t, Extent>> puts;
  std::vector<ChunkHash> dropped, taken;
  uint64_t removed = 0;
  RANKFS_RETURN_IF_ERROR(
      meta_->ListExtents(ino, offset, UINT64_MAX, [&](uint64_t off, const Extent& e) {
        const uint64_t e_end = off + e.length;
        // The part before `offset` stays where it is, with the extent's key and reference.
        const bool head = off < offset;
        if (head) puts.emplace_back(off, piece(off, e, off, offset - off));
        else deletes.push_back(off);
        // The part that moves: from `end` on (collapse) or from `offset` on (insert).
        const uint64_t from = std::max(off, collapse ? end : offset);
        if (collapse && off < end) removed += std::min(e_end, end) - std::max(off, offset);
        if (from < e_end) {
          const uint64_t to = collapse ? from - length : from + length;
          puts.emplace_back(to, piece(off, e, from, e_end - from));
          if (head && !e.unwritten) taken.push_back(e.chunk);  // a second extent of the chunk
        } else if (!head && !e.unwritten) {
          dropped.push_back(e.chunk);  // wholly inside the collapsed range
        }
        return true;
      }));
  for (size_t i = 0; i < taken.size(); ++i) {
    Status rs = chunks_->Ref(taken[i], 1);
    if (!rs.ok()) {
      for (size_t j = 0; j < i; ++j) chunks_->Unref(taken[j], 1).IgnoreError();
      return rs;
    }
  }
  MetaStore::Batch b;
  for (uint64_t off : deletes) b.DeleteExtent(ino, off);
  for (const auto& [off, e] : puts) b.PutExtent(ino, off, e);
  record->allocated_bytes -= removed;
  b.PutInode(*record);
  Status st = meta_->Write(b, /*sync=*/false);
  if (!st.ok()) {
    for (const ChunkHash& h : taken) chunks_->Unref(h, 1).IgnoreError();
    return st;
  }
  for (const ChunkHash& h : dropped) {
    Status us = chunks_->Unref(h, 1);
    if (!us.ok()) Log(LogLevel::kError, "fs", "releasing a chunk reference: " + us.ToString());
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// FsCore::Fallocate

Status FsCore::Fallocate(Ino ino, int mode, uint64_t offset, uint64_t length) {
  if (ino == kStatsIno) return Status(EBADF, "the stats file is read-only");
  // The kernel's rules (vfs_fallocate, ext4): one mode at a time; KEEP_SIZE is required by
  // punch and refused by collapse and insert.
  const bool keep = mode & FALLOC_FL_KEEP_SIZE;
  const int op = mode & ~FALLOC_FL_KEEP_SIZE;
  switch (op) {
    case 0:
    case FALLOC_FL_ZERO_RANGE:
      break;
    case FALLOC_FL_PUNCH_HOLE:
      if (!keep) return Status(EOPNOTSUPP, "punch hole needs FALLOC_FL_KEEP_SIZE");
      break;
    case FALLOC_FL_COLLAPSE_RANGE:
    case FALLOC_FL_INSERT_RANGE:
      if (keep) return Status(EOPNOTSUPP, "collapse and insert range change the size");
      break;
    default:
      return Status(EOPNOTSUPP, "fallocate mode " + std::to_string(mode) + " is not supported");
  }
  if (length == 0) return Status(EINVAL, "fallocate of an empty range");
  if (offset > kMaxFileSize || length > kMaxFileSize - offset) {
    return Status(EFBIG, "fallocate past the largest file size");
  }
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  std::unique_lock<std::shared_mutex> l(inode->mu);
  if (S_ISDIR(inode->attr.mode)) return Status(EISDIR, "is a directory");
  if (!S_ISREG(inode->attr.mode)) return Status(ENODEV, "not a regular file");
  if (inode->deleted) return Status(ENOENT, "inode was deleted");
  switch (op) {
    case FALLOC_FL_PUNCH_HOLE:
      return impl_->PunchLocked(inode.get(), offset, length);
    case FALLOC_FL_ZERO_RANGE:
      return impl_->ZeroRangeLocked(inode.get(), offset, length, keep);
    case FALLOC_FL_COLLAPSE_RANGE:
      return impl_->CollapseRangeLocked(inode.get(), offset, length);
    case FALLOC_FL_INSERT_RANGE:
      return impl_->InsertRangeLocked(inode.get(), offset, length);
    default:
      // Space is not reserved ahead (chunks are shared and compressed): the range counts as
      // allocated and reads as zeros, and the size grows as asked.
      return impl_->AllocateLocked(inode.get(), offset, length, keep);
  }
}

}  // namespace rankfs
