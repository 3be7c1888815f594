// FsCore's data path: the write buffer, flushing buffered ranges into chunks and extents,
// reads that merge both, truncate, hole punching, SEEK_DATA/SEEK_HOLE and copy_file_range.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "fs/fs_core.h"
#include "fs/fs_core_impl.h"
#include "store/logging.h"

namespace rankfs {

// ---------------------------------------------------------------------------------------------
// Write buffer

void FsCore::Impl::DropDirty(Inode* inode, uint64_t start, uint64_t end) {
  auto& dirty = inode->dirty;
  auto it = dirty.upper_bound(start);
  if (it != dirty.begin()) --it;
  while (it != dirty.end() && it->first < end) {
    uint64_t s = it->first, e = s + it->second.size();
    if (e <= start) {
      ++it;
      continue;
    }
    std::string data = std::move(it->second);
    it = dirty.erase(it);
    uint64_t removed = data.size();
    if (s < start) {  // keep the head
      std::string head = data.substr(0, start - s);
      removed -= head.size();
      dirty.emplace(s, std::move(head));
    }
    if (e > end) {  // keep the tail
      // A copy, not an in-place erase: the tail is at most one chunk, and a 16-32 MiB buffer
      // kept for it would not count against write_buffer_bytes (memory must stay bounded
      // with many half-written files).
      std::string tail = data.substr(end - s);
      removed -= tail.size();
      it = dirty.emplace(end, std::move(tail)).first;
      ++it;
    }
    inode->dirty_bytes -= removed;
    dirty_total_ -= removed;
  }
}

// Inserts data into the buffer, merging with every range it overlaps or touches. Appending
// to the end of a range grows that range's string in place (amortized O(1) per byte).
static uint64_t InsertDirty(std::map<uint64_t, std::string>* dirty, uint64_t off,
                            std::string_view data) {
  uint64_t before = 0;
  auto it = dirty->upper_bound(off);
  std::map<uint64_t, std::string>::iterator base;
  if (it != dirty->begin() && std::prev(it)->first + std::prev(it)->second.size() >= off) {
    base = std::prev(it);
    before = base->second.size();
  } else {
    base = dirty->emplace_hint(it, off, std::string());
  }
  std::string& buf = base->second;
  const uint64_t rel = off - base->first;  // <= buf.size(): the write touches or overlaps buf
  // Overwrite what overlaps, append the rest: append() copies once, while resize() would first
  // zero-fill the new bytes (that memset was ~8 % of the daemon's time in streaming writes).
  const size_t overlap = std::min<uint64_t>(data.size(), buf.size() - rel);
  std::memcpy(buf.data() + rel, data.data(), overlap);
  buf.append(data.data() + overlap, data.size() - overlap);
  // Absorb following ranges that the new bytes reach.
  auto next = std::next(base);
  while (next != dirty->end() && next->first <= base->first + buf.size()) {
    uint64_t n_end = next->first + next->second.size();
    before += next->second.size();
    if (n_end > base->first + buf.size()) {
      uint64_t keep_from = base->first + buf.size() - next->first;
      buf.append(next->second, keep_from, std::string::npos);
    }
    next = dirty->erase(next);
  }
  return buf.size() - before;  // bytes added to the buffer
}

Status FsCore::Impl::WriteLocked(Inode* inode, uint64_t offset, std::string_view data) {
  if (inode->dirty_bytes >= options_.inode_flush_bytes ||
      dirty_total_.load() >= options_.write_buffer_bytes) {
    RANKFS_RETURN_IF_ERROR(FlushLocked(inode, /*keep_tail=*/true, /*sync=*/false));
  }
  uint64_t added = InsertDirty(&inode->dirty, offset, data);
  inode->dirty_bytes += added;
  dirty_total_ += added;
  int64_t now = NowNs();
  inode->attr.size = std::max<uint64_t>(inode->attr.size, offset + data.size());
  inode->attr.mtime_ns = inode->attr.ctime_ns = now;
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Flushing

Status FsCore::Impl::ReplaceRange(Ino ino, uint64_t start, uint64_t end,
                                  const std::vector<std::pair<uint64_t, Extent>>& added,
                                  MetaStore::Batch* extra, bool sync) {
  MetaStore::Batch b;
  std::vector<ChunkHash> dropped;  // references to release once the batch is written
  std::vector<ChunkHash> taken;    // references taken for split tails (undone on failure)
  Status st;
  if (end > start) {
    st = meta_->ListExtents(ino, start, end, [&](uint64_t off, const Extent& e) {
      uint64_t e_end = off + e.length;
      bool has_head = off < start, has_tail = e_end > end;
      if (has_tail) {
        Extent tail = e;
        tail.length = e_end - end;
        tail.chunk_offset = uint32_t(e.chunk_offset + (end - off));
        b.PutExtent(ino, end, tail);
        taken.push_back(e.chunk);
      }
      if (has_head) {
        Extent head = e;
        head.length = start - off;
        b.PutExtent(ino, off, head);  // same key, shorter: keeps its reference
      } else {
        b.DeleteExtent(ino, off);
        if (!has_tail) dropped.push_back(e.chunk);
        else {  // the tail took over this extent's reference
          taken.pop_back();
        }
      }
      return true;
    });
    if (!st.ok()) return st;
  }
  for (size_t i = 0; i < taken.size(); ++i) {
    Status rs = chunks_->Ref(taken[i], 1);
    if (!rs.ok()) {
      for (size_t j = 0; j < i; ++j) chunks_->Unref(taken[j], 1).IgnoreError();
      return rs;
    }
  }
  for (const auto& [off, e] : added) b.PutExtent(ino, off, e);
  if (extra) b.Append(*extra);
  st = meta_->Write(b, sync);
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

Status FsCore::Impl::FlushRange(Inode* inode, uint64_t start, bool keep_tail, bool sync,
                                uint64_t* flushed) {
  *flushed = 0;
  const Ino ino = inode->attr.ino;
  const ChunkerParams& cp = cdc_.params();
  auto it = inode->dirty.find(start);
  if (it == inode->dirty.end()) return Status::Ok();
  const std::string& data = it->second;
  std::vector<std::pair<uint64_t, Extent>> added;
  std::vector<ChunkHash> put;
  size_t pos = 0;
  Status st;
  const auto* bytes = reinterpret_cast<const uint8_t*>(data.data());
  while (pos < data.size()) {
    size_t remaining = data.size() - pos;
    if (keep_tail && remaining < cp.max_size) break;  // an unfinished chunk of a stream
    size_t len = cdc_.NextCut(bytes + pos, remaining);
    std::string_view piece(data.data() + pos, len);
    ChunkHash h;
    if (meta_->super().dedup_scope == DedupScope::kPerUid) {  // dedup only within one owner
      h = ChunkHash::OfScoped(inode->attr.uid, piece);
      st = chunks_->PutScoped(h, piece, inode->attr.uid);
    } else {
      h = ChunkHash::Of(piece);
      st = chunks_->Put(h, piece);
    }
    if (!st.ok()) break;
    put.push_back(h);
    added.emplace_back(start + pos, Extent{len, h, 0});
    pos += len;
  }
  if (st.ok() && pos == 0) return Status::Ok();
  // Chunks must be durable and indexed before the extents naming them are written.
  if (st.ok()) st = chunks_->Flush();
  MetaStore::Batch attr;
  attr.PutInode(inode->attr);
  if (st.ok()) st = ReplaceRange(ino, start, start + pos, added, &attr, sync);
  if (!st.ok()) {
    for (const ChunkHash& h : put) chunks_->Unref(h, 1).IgnoreError();
    return st.Annotate("writing inode " + std::to_string(ino));
  }
  DropDirty(inode, start, start + pos);  // those bytes are in the store now
  *flushed = pos;
  return Status::Ok();
}

Status FsCore::Impl::FlushLocked(Inode* inode, bool keep_tail, bool sync) {
  uint64_t flushed = 0;
  if (inode->dirty_bytes > 0) RANKFS_RETURN_IF_ERROR(CheckSpace(SpaceUse::kFlush));
  if (keep_tail) {
    RANKFS_RETURN_IF_ERROR(FlushRange(inode, inode->stream_end, true, false, &flushed));
    inode->stream_end += flushed;
    if (inode->dirty_bytes <= 2 * options_.inode_flush_bytes &&
        dirty_total_.load() < options_.write_buffer_bytes + options_.inode_flush_bytes) {
      return Status::Ok();
    }
  }
  // Everything, in offset order; the last batch carries the attributes (and the sync).
  bool wrote_attr = false;
  while (!inode->dirty.empty()) {
    auto it = inode->dirty.begin();
    uint64_t start = it->first, end = start + it->second.size();
    bool last = std::next(it) == inode->dirty.end();
    RANKFS_RETURN_IF_ERROR(FlushRange(inode, start, false, sync && last, &flushed));
    if (end >= inode->stream_end && start <= inode->stream_end) inode->stream_end = end;
    wrote_attr = last;
  }
  if (!wrote_attr) return PersistAttr(inode->attr, sync);
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Reading

Result<size_t> FsCore::Impl::ReadLocked(Inode* inode, uint64_t offset, size_t size, char* buf) {
  const Ino ino = inode->attr.ino;
  uint64_t file_size = inode->attr.size;
  if (offset >= file_size) return size_t(0);
  size_t n = size_t(std::min<uint64_t>(size, file_size - offset));
  uint64_t end = offset + n;
  std::memset(buf, 0, n);
  // The callback's error goes to its own variable: ListExtents returns OK when a callback
  // stops the scan, so assigning its result to the same variable would lose a chunk's EIO and
  // serve the zeroed buffer instead (found by tests/integration/damage_test.cc).
  Status st;
  Status scan = meta_->ListExtents(ino, offset, end, [&](uint64_t off, const Extent& e) {
    uint64_t s = std::max(off, offset), t = std::min(off + e.length, end);
    if (s >= t) return true;
    auto chunk = cache_.Get(e.chunk);
    if (!chunk.ok()) {
      st = chunk.status().Annotate("reading inode " + std::to_string(ino) + " at offset " +
                                   std::to_string(s));
      return false;
    }
    const std::string& c = **chunk;
    uint64_t in_chunk = e.chunk_offset + (s - off);
    if (in_chunk + (t - s) > c.size()) {
      st = Status(EIO, "extent of inode " + std::to_string(ino) + " reaches past its chunk");
      return false;
    }
    std::memcpy(buf + (s - offset), c.data() + in_chunk, t - s);
    return true;
  });
  RANKFS_RETURN_IF_ERROR(scan);
  RANKFS_RETURN_IF_ERROR(st);
  // Buffered bytes are newer than the store's.
  auto it = inode->dirty.upper_bound(offset);
  if (it != inode->dirty.begin()) --it;
  for (; it != inode->dirty.end() && it->first < end; ++it) {
    uint64_t s = std::max(it->first, offset), t = std::min(it->first + it->second.size(), end);
    if (s < t) std::memcpy(buf + (s - offset), it->second.data() + (s - it->first), t - s);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Truncate and punch

Status FsCore::Impl::TruncateLocked(Inode* inode, uint64_t size) {
  if (size < inode->attr.size) {
    DropDirty(inode, size, UINT64_MAX);
    inode->attr.size = size;
    inode->stream_end = std::min(inode->stream_end, size);
    MetaStore::Batch attr;
    attr.PutInode(inode->attr);
    return ReplaceRange(inode->attr.ino, size, UINT64_MAX, {}, &attr, false);
  }
  inode->attr.size = size;
  return Status::Ok();
}

Status FsCore::Impl::PunchLocked(Inode* inode, uint64_t offset, uint64_t length) {
  uint64_t end = std::min(offset + length, inode->attr.size);
  if (offset >= end) return Status::Ok();
  DropDirty(inode, offset, end);
  if (inode->stream_end > offset) inode->stream_end = offset;
  return ReplaceRange(inode->attr.ino, offset, end, {}, nullptr, false);
}

// ---------------------------------------------------------------------------------------------
// FsCore: file operations

static Status CheckRegular(const Inode& inode) {
  if (S_ISDIR(inode.attr.mode)) return Status(EISDIR, "is a directory");
  if (!S_ISREG(inode.attr.mode)) return Status(EINVAL, "not a regular file");
  if (inode.deleted) return Status(ENOENT, "inode was deleted");
  return Status::Ok();
}

Status FsCore::Open(Ino ino, int flags) {
  if (ino == kStatsIno) {
    if ((flags & O_ACCMODE) != O_RDONLY) return Status(EACCES, "the stats file is read-only");
    return Status::Ok();
  }
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  std::lock_guard<std::mutex> l(impl_->table_mu_);
  ++inode->open_count;
  return Status::Ok();
}

Status FsCore::Release(Ino ino) {
  if (ino == kStatsIno) return Status::Ok();
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  Status st;
  {
    std::unique_lock<std::shared_mutex> l(inode->mu);
    if (inode->dirty_bytes > 0 && !inode->deleted && inode->attr.nlink > 0) {
      st = impl_->FlushLocked(inode.get(), /*keep_tail=*/false, /*sync=*/false);
    }
  }
  {
    std::lock_guard<std::mutex> l(impl_->table_mu_);
    if (inode->open_count > 0) --inode->open_count;
  }
  impl_->MaybeEvict(ino);
  return st;
}

Status FsCore::Flush(Ino ino) {
  if (ino == kStatsIno) return Status::Ok();
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  std::unique_lock<std::shared_mutex> l(inode->mu);
  if (inode->dirty_bytes == 0 || inode->deleted || inode->attr.nlink == 0) return Status::Ok();
  return impl_->FlushLocked(inode.get(), /*keep_tail=*/false, /*sync=*/false);
}

Status FsCore::Fsync(Ino ino, bool datasync) {
  if (ino == kStatsIno) return Status::Ok();
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  std::unique_lock<std::shared_mutex> l(inode->mu);
  if (inode->deleted) return Status::Ok();
  return impl_->FlushLocked(inode.get(), /*keep_tail=*/false, /*sync=*/true);
}

Result<size_t> FsCore::Read(Ino ino, uint64_t offset, size_t size, char* buf) {
  if (ino == kStatsIno) {
    std::string text = StatsText();
    if (offset >= text.size()) return size_t(0);
    size_t n = std::min<size_t>(size, text.size() - offset);
    std::memcpy(buf, text.data() + offset, n);
    return n;
  }
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  std::shared_lock<std::shared_mutex> l(inode->mu);
  RANKFS_RETURN_IF_ERROR(CheckRegular(*inode));
  return impl_->ReadLocked(inode.get(), offset, size, buf);
}

constexpr std::string_view kCaps = "security.capability";

Status FsCore::Impl::DropPrivsLocked(Inode* inode) {
  InodeAttr& a = inode->attr;
  if (!S_ISREG(a.mode)) return Status::Ok();
  if ((a.mode & S_ISUID) || (a.mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)) {
    a.mode &= ~mode_t(S_ISUID | S_ISGID);
    a.ctime_ns = NowNs();
  }
  if (!options_.xattrs || inode->no_caps) return Status::Ok();
  RANKFS_ASSIGN_OR_RETURN(std::optional<std::string> caps, meta_->GetXattr(a.ino, kCaps));
  if (!caps) {
    inode->no_caps = true;
    return Status::Ok();
  }
  MetaStore::Batch b;
  b.DeleteXattr(a.ino, kCaps);
  return meta_->Write(b, /*sync=*/false);
}

Status FsCore::Write(Ino ino, uint64_t offset, std::string_view data) {
  if (ino == kStatsIno) return Status(EBADF, "the stats file is read-only");
  if (offset + data.size() < offset || offset + data.size() > (1ull << 60)) {
    return Status(EFBIG, "write past the largest file size");
  }
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  std::unique_lock<std::shared_mutex> l(inode->mu);
  RANKFS_RETURN_IF_ERROR(CheckRegular(*inode));
  if (data.empty()) return Status::Ok();
  RANKFS_RETURN_IF_ERROR(impl_->CheckSpace(Impl::SpaceUse::kGrow));
  RANKFS_RETURN_IF_ERROR(impl_->DropPrivsLocked(inode.get()));
  return impl_->WriteLocked(inode.get(), offset, data);
}

Status FsCore::Fallocate(Ino ino, int mode, uint64_t offset, uint64_t length) {
  if (ino == kStatsIno) return Status(EBADF, "the stats file is read-only");
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  std::unique_lock<std::shared_mutex> l(inode->mu);
  RANKFS_RETURN_IF_ERROR(CheckRegular(*inode));
  if (mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
    RANKFS_RETURN_IF_ERROR(impl_->PunchLocked(inode.get(), offset, length));
    inode->attr.mtime_ns = inode->attr.ctime_ns = NowNs();
    return impl_->PersistAttr(inode->attr, false);
  }
  if (mode != 0 && mode != FALLOC_FL_KEEP_SIZE) {
    return Status(EOPNOTSUPP, "fallocate mode " + std::to_string(mode) + " is not supported");
  }
  // Space is not reserved ahead (chunks are shared and compressed); the size grows as asked.
  if (mode == 0 && offset + length > inode->attr.size) {
    inode->attr.size = offset + length;
    inode->attr.ctime_ns = NowNs();
    return impl_->PersistAttr(inode->attr, false);
  }
  return Status::Ok();
}

Result<uint64_t> FsCore::Lseek(Ino ino, uint64_t offset, int whence) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return Status(EINVAL, "lseek whence");
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  std::shared_lock<std::shared_mutex> l(inode->mu);
  uint64_t size = inode->attr.size;
  if (offset >= size) return Status(ENXIO, "offset past the end of the file");
  // Data regions in [offset, size): stored extents and buffered ranges, merged.
  std::vector<std::pair<uint64_t, uint64_t>> regions;
  RANKFS_RETURN_IF_ERROR(impl_->meta_->ListExtents(ino, offset, size, [&](uint64_t off, const Extent& e) {
    regions.emplace_back(off, off + e.length);
    return true;
  }));
  for (const auto& [off, data] : inode->dirty) regions.emplace_back(off, off + data.size());
  std::sort(regions.begin(), regions.end());
  uint64_t pos = offset;
  if (whence == SEEK_DATA) {
    for (const auto& [s, e] : regions) {
      if (e <= pos) continue;
      uint64_t at = std::max(s, pos);
      if (at >= size) break;
      return at;
    }
    return Status(ENXIO, "no data after offset");
  }
  for (const auto& [s, e] : regions) {
    if (s > pos) break;
    pos = std::max(pos, e);
  }
  return std::min(pos, size);
}

Result<uint64_t> FsCore::CopyFileRange(Ino in, uint64_t in_off, Ino out, uint64_t out_off,
                                       uint64_t len) {
  if (in == kStatsIno || out == kStatsIno) return Status(EINVAL, "the stats file cannot be copied");
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> src, impl_->GetInode(in));
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> dst, impl_->GetInode(out));
  std::unique_lock<std::shared_mutex> l1(src->mu, std::defer_lock), l2(dst->mu, std::defer_lock);
  if (src == dst) {
    l1.lock();
    if (in_off < out_off + len && out_off < in_off + len) {
      return Status(EINVAL, "overlapping copy within one file");
    }
  } else if (in < out) {
    l1.lock();
    l2.lock();
  } else {
    l2.lock();
    l1.lock();
  }
  RANKFS_RETURN_IF_ERROR(CheckRegular(*src));
  RANKFS_RETURN_IF_ERROR(CheckRegular(*dst));
  if (in_off >= src->attr.size || len == 0) return uint64_t(0);
  len = std::min(len, src->attr.size - in_off);
  // The source's buffered bytes go to the store first, so the copy can share their chunks.
  if (src->dirty_bytes > 0) {
    RANKFS_RETURN_IF_ERROR(impl_->FlushLocked(src.get(), /*keep_tail=*/false, /*sync=*/false));
  }
  std::vector<std::pair<uint64_t, Extent>> added;
  std::vector<ChunkHash> refs;
  uint64_t in_end = in_off + len;
  RANKFS_RETURN_IF_ERROR(impl_->meta_->ListExtents(in, in_off, in_end, [&](uint64_t off, const Extent& e) {
    uint64_t s = std::max(off, in_off), t = std::min(off + e.length, in_end);
    if (s >= t) return true;
    Extent slice = e;
    slice.length = t - s;
    slice.chunk_offset = uint32_t(e.chunk_offset + (s - off));
    added.emplace_back(out_off + (s - in_off), slice);
    refs.push_back(e.chunk);
    return true;
  }));
  for (size_t i = 0; i < refs.size(); ++i) {
    Status st = impl_->chunks_->Ref(refs[i], 1);
    if (!st.ok()) {
      for (size_t j = 0; j < i; ++j) impl_->chunks_->Unref(refs[j], 1).IgnoreError();
      return st;
    }
  }
  impl_->DropDirty(dst.get(), out_off, out_off + len);
  InodeAttr a = dst->attr;
  a.size = std::max(a.size, out_off + len);
  a.mtime_ns = a.ctime_ns = NowNs();
  MetaStore::Batch attr;
  attr.PutInode(a);
  Status st = impl_->ReplaceRange(out, out_off, out_off + len, added, &attr, false);
  if (!st.ok()) {
    for (const ChunkHash& h : refs) impl_->chunks_->Unref(h, 1).IgnoreError();
    return st;
  }
  dst->attr = a;
  return len;
}

}  // namespace rankfs
