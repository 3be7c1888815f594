// FsCore's file space: the allocated-bytes figure behind st_blocks.
//
// allocated_bytes (InodeAttr) counts the bytes of a file's extents; holes do not count. It
// changes only under the inode lock: every extent change made by a lock holder goes through
// ReplaceRange with the record, in the same metadata batch. The flush pipeline commits a
// stream's batches without the lock, so their new bytes are counted when the batch is
// submitted (CountSubmitLocked), as the file size is, and taken back if the batch fails
// (UncountFailedLocked). A crash can therefore leave a record counting a batch that never
// committed; fsck finds and repairs that (docs/reliability.md).
#include <sys/stat.h>

#include <algorithm>

#include "fs/fs_core.h"
#include "fs/fs_core_impl.h"
#include "store/logging.h"

namespace rankfs {

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

}  // namespace rankfs
