// FsCore's data path, reading side and file operations: reads that lay uncommitted bytes over
// the stored extents, truncate, hole punching, SEEK_DATA/SEEK_HOLE and copy_file_range. The
// write path (dirty ranges, streams, batches, flushing) is in write_path.cc; fallocate and the
// allocated-bytes figure in file_space.cc.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "fs/fs_core.h"
#include "fs/fs_core_impl.h"
#include "store/logging.h"

namespace rankfs {

// ---------------------------------------------------------------------------------------------
// Reading

Status FsCore::Impl::ForEachStoredRangeLocked(Ino ino, uint64_t offset, uint64_t end,
                                              const StoredRangeFn& fn,
                                              std::pair<uint64_t, uint64_t>* span) {
  // The callback's error goes to its own variable: ListExtents returns OK when a callback
  // stops the scan, so assigning its result to the same variable would lose a chunk's EIO and
  // serve the zeroed buffer instead (found by tests/integration/damage_test.cc).
  // After a damaged chunk the scan goes on over the rest of the range, only loading chunks:
  // each damaged one is then known to the store, so writing the same content again heals all
  // of them, not just the first (a block can straddle two chunks of a truncated pack; found by
  // damage_test.cc once chunks shrank to 32 KiB). Only the error path pays for it, and for at
  // most kProbes chunks (a copy_file_range can span a whole file).
  constexpr int kProbes = 64;
  int probes_left = kProbes;
  bool spanned = false;
  if (span != nullptr) *span = {0, 0};
  Status st;
  Status scan = meta_->ListExtents(ino, offset, end, [&](uint64_t off, const Extent& e) {
    const uint64_t s = std::max(off, offset), t = std::min(off + e.length, end);
    if (s >= t || e.unwritten) return true;  // an unwritten extent reads as a hole
    if (!st.ok()) {  // probing only: the first error is what the caller gets
      (void)cache_.Get(e.chunk);
      return --probes_left > 0;
    }
    auto chunk = cache_.Get(e.chunk);
    if (!chunk.ok()) {
      st = chunk.status().Annotate("reading inode " + std::to_string(ino) + " at offset " +
                                   std::to_string(s));
      return true;
    }
    if (span != nullptr) {
      const uint64_t e_end = off + e.length;
      *span = spanned ? std::pair(std::min(span->first, off), std::max(span->second, e_end))
                      : std::pair(off, e_end);
      spanned = true;
    }
    const uint64_t in_chunk = e.chunk_offset + (s - off);
    if (in_chunk + (t - s) > (*chunk)->size()) {
      st = Status(EIO, "extent of inode " + std::to_string(ino) + " reaches past its chunk");
      return false;
    }
    const char* bytes = (*chunk)->data() + in_chunk;
    return fn(s, t, *chunk, bytes);
  });
  RANKFS_RETURN_IF_ERROR(scan);
  return st;
}

bool FsCore::Impl::HasUncommittedLocked(Inode* inode, uint64_t offset, uint64_t end) {
  {
    std::lock_guard<std::mutex> bl(inode->batch_mu);
    for (const auto& b : inode->batches) {
      if (b->start < end && b->end > offset) return true;
    }
  }
  for (const ChunkRef& c : inode->cut) {
    if (c->offset < end && c->offset + c->bytes->size() > offset) return true;
  }
  if (inode->stream && inode->stream->buffered() > 0 && inode->stream->start() < end &&
      inode->stream->end() > offset) {
    return true;
  }
  auto it = inode->dirty.upper_bound(offset);
  if (it != inode->dirty.begin()) --it;
  for (; it != inode->dirty.end() && it->first < end; ++it) {
    if (it->first + it->second.size() > offset) return true;
  }
  return false;
}

Result<size_t> FsCore::Impl::ReadLocked(Inode* inode, uint64_t offset, size_t size, char* buf) {
  const Ino ino = inode->attr.ino;
  uint64_t file_size = inode->attr.size;
  if (offset >= file_size) return size_t(0);
  size_t n = size_t(std::min<uint64_t>(size, file_size - offset));
  uint64_t end = offset + n;
  // The batches first: one that commits meanwhile is then found in the snapshot or, already
  // committed, in the extents; never in neither.
  std::vector<std::shared_ptr<FlushBatch>> batches;
  {
    std::lock_guard<std::mutex> bl(inode->batch_mu);
    for (const auto& b : inode->batches) {
      if (b->start < end && b->end > offset) batches.push_back(b);
    }
  }
  // Only what no extent covers is zeroed (holes, and the tail past the last extent): the
  // extents come in file order, and zeroing the whole request first cost a tenth of a cold
  // read's CPU (docs/design.md, "Reads").
  uint64_t zeroed_to = offset;  // buf is filled or zeroed up to here
  auto zero_to = [&](uint64_t to) {
    if (to > zeroed_to) std::memset(buf + (zeroed_to - offset), 0, to - zeroed_to);
    zeroed_to = std::max(zeroed_to, to);
  };
  RANKFS_RETURN_IF_ERROR(ForEachStoredRangeLocked(
      ino, offset, end, [&](uint64_t s, uint64_t t, ChunkCache::Value&, const char* bytes) {
        zero_to(s);
        std::memcpy(buf + (s - offset), bytes, t - s);
        zeroed_to = std::max(zeroed_to, t);
        return true;
      }));
  zero_to(end);
  // Uncommitted bytes are newer than the store's, oldest first: batches, the stream's cut
  // chunks and buffer, dirty ranges.
  auto lay = [&](uint64_t at, const std::string& bytes) {
    uint64_t s = std::max(at, offset), t = std::min(at + bytes.size(), end);
    if (s < t) std::memcpy(buf + (s - offset), bytes.data() + (s - at), t - s);
  };
  for (const auto& b : batches) {
    for (const ChunkRef& c : b->chunks) lay(c->offset, *c->bytes);
  }
  for (const ChunkRef& c : inode->cut) lay(c->offset, *c->bytes);
  if (inode->stream) inode->stream->CopyBuffered(offset, n, buf);
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
  if (size > inode->attr.size) {  // preallocated ranges past the old end stay, as on ext4
    inode->attr.size = size;
    return Status::Ok();
  }
  if (size == inode->attr.size) {
    // ext4 drops the preallocated (unwritten) ranges past the end: the only extents there.
    // Bytes held in memory and in the pipeline all lie below the end.
    RANKFS_ASSIGN_OR_RETURN(uint64_t past_end, StoredBytes(inode, size, UINT64_MAX));
    if (past_end == 0) return Status::Ok();
    InodeAttr rec = inode->attr;
    RANKFS_RETURN_IF_ERROR(ReplaceRange(rec.ino, size, UINT64_MAX, {}, nullptr, false, &rec));
    inode->attr.allocated_bytes = rec.allocated_bytes;
    return Status::Ok();
  }
  // Bytes past the new end need not be stored first; the rest are, so that no batch commits
  // while the extents past the end are removed.
  DropDirty(inode, size, UINT64_MAX);
  if (inode->stream) {
    const uint64_t held_from =
        inode->cut.empty() ? inode->stream->start() : inode->cut.front()->offset;
    if (size <= held_from) DropStreamLocked(inode, size);
  }
  RANKFS_RETURN_IF_ERROR(SettleLocked(inode, /*sync=*/false));
  inode->attr.size = size;
  DropStreamLocked(inode, size);  // the next write at the end starts a new stream
  InodeAttr rec = inode->attr;
  RANKFS_RETURN_IF_ERROR(ReplaceRange(rec.ino, size, UINT64_MAX, {}, nullptr, false, &rec));
  inode->attr.allocated_bytes = rec.allocated_bytes;
  return Status::Ok();
}

Status FsCore::Impl::PunchLocked(Inode* inode, uint64_t offset, uint64_t length) {
  // Not past the end (ext4 leaves preallocated ranges there alone too).
  const uint64_t end = std::min(offset + length, inode->attr.size);
  if (offset < end) RANKFS_RETURN_IF_ERROR(SettleLocked(inode, /*sync=*/false));
  InodeAttr rec = inode->attr;
  rec.mtime_ns = rec.ctime_ns = NowNs();
  if (offset < end) {
    RANKFS_RETURN_IF_ERROR(ReplaceRange(rec.ino, offset, end, {}, nullptr, false, &rec));
  } else {
    RANKFS_RETURN_IF_ERROR(PersistAttr(rec, false));
  }
  inode->attr = rec;
  return Status::Ok();
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
    if (!inode->deleted && inode->attr.nlink > 0) st = impl_->CloseLocked(inode.get());
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
  if (inode->deleted || inode->attr.nlink == 0) return Status::Ok();
  return impl_->CloseLocked(inode.get());
}

Status FsCore::Fsync(Ino ino, bool datasync) {
  if (ino == kStatsIno) return Status::Ok();
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  std::unique_lock<std::shared_mutex> l(inode->mu);
  if (inode->deleted) return Status::Ok();
  return impl_->SettleLocked(inode.get(), /*sync=*/true);
}

Result<std::optional<size_t>> FsCore::ReadPieces(Ino ino, uint64_t offset, size_t size,
                                                 std::vector<ReadPiece>* out,
                                                 std::pair<uint64_t, uint64_t>* span) {
  out->clear();
  if (span != nullptr) *span = {0, 0};
  if (ino == kStatsIno) return std::optional<size_t>();
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  std::shared_lock<std::shared_mutex> l(inode->mu);
  RANKFS_RETURN_IF_ERROR(CheckRegular(*inode));
  const uint64_t file_size = inode->attr.size;
  if (offset >= file_size) return std::optional<size_t>(0);
  const size_t n = size_t(std::min<uint64_t>(size, file_size - offset));
  const uint64_t end = offset + n;
  // Any uncommitted byte of the range: Read lays those over the extents.
  if (impl_->HasUncommittedLocked(inode.get(), offset, end)) return std::optional<size_t>();
  uint64_t at = offset;  // pieces cover [offset, at)
  bool overlap = false;
  Status st = impl_->ForEachStoredRangeLocked(
      ino, offset, end, [&](uint64_t s, uint64_t t, ChunkCache::Value& chunk, const char* bytes) {
        if (s < at) {  // extents never overlap; if they did, Read's copies would decide
          overlap = true;
          return false;
        }
        if (s > at) out->push_back({nullptr, nullptr, size_t(s - at)});
        out->push_back({std::move(chunk), bytes, size_t(t - s)});
        at = t;
        return true;
      },
      span);
  if (!st.ok() || overlap) {
    out->clear();  // holds no chunk longer than needed
    if (span != nullptr) *span = {0, 0};
    if (!st.ok()) return st;
    return std::optional<size_t>();
  }
  if (end > at) out->push_back({nullptr, nullptr, size_t(end - at)});
  return std::optional<size_t>(n);
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

Result<size_t> FsCore::StageRead(Ino ino, uint64_t offset, size_t size, char* dst) {
  if (ino == kStatsIno) return Status(EINVAL, "the stats file cannot be staged");
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  std::shared_lock<std::shared_mutex> l(inode->mu);
  RANKFS_RETURN_IF_ERROR(CheckRegular(*inode));
  Impl::StageCounters& c = impl_->stage_;
  c.reads.fetch_add(1, std::memory_order_relaxed);
  const uint64_t file_size = inode->attr.size;
  if (offset >= file_size) return size_t(0);
  const size_t n = size_t(std::min<uint64_t>(size, file_size - offset));
  if (impl_->HasUncommittedLocked(inode.get(), offset, offset + n)) {
    c.fallback_reads.fetch_add(1, std::memory_order_relaxed);
    RANKFS_ASSIGN_OR_RETURN(size_t got, impl_->ReadLocked(inode.get(), offset, n, dst));
    c.bytes.fetch_add(got, std::memory_order_relaxed);
    return got;
  }
  RANKFS_RETURN_IF_ERROR(impl_->StageStoredLocked(inode.get(), offset, offset + n, dst));
  c.bytes.fetch_add(n, std::memory_order_relaxed);
  return n;
}

void FsCore::BeginStagedRequest() {
  Impl::StageCounters& c = impl_->stage_;
  const uint64_t now = c.in_flight.fetch_add(1, std::memory_order_relaxed) + 1;
  uint64_t seen = c.max_in_flight.load(std::memory_order_relaxed);
  while (now > seen && !c.max_in_flight.compare_exchange_weak(seen, now)) {
  }
}

void FsCore::EndStagedRequest() {
  impl_->stage_.in_flight.fetch_sub(1, std::memory_order_relaxed);
}

void FsCore::BeginStagingClient() {
  impl_->stage_.clients.fetch_add(1, std::memory_order_relaxed);
}

void FsCore::EndStagingClient() {
  impl_->stage_.clients.fetch_sub(1, std::memory_order_relaxed);
}

constexpr std::string_view kCaps = "security.capability";

Status FsCore::Impl::DropPrivsLocked(Inode* inode) {
  InodeAttr& a = inode->attr;
  // Writes and truncates reach regular files only; a chown clears the bits of every kind of
  // file but a directory (fifos, sockets, device nodes included), as the kernel does.
  if (S_ISDIR(a.mode)) return Status::Ok();
  // Each bit on its own: setgid without group execute is no privilege and stays, even when
  // setuid goes (the kernel's should_remove_suid).
  uint32_t kill = a.mode & S_ISUID;
  if ((a.mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)) kill |= S_ISGID;
  if (kill != 0) {
    a.mode &= ~kill;
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
  // Over the write buffer's cap, wait for room before taking the lock: whoever makes room may
  // need this inode's lock (fs/write_room.h).
  RANKFS_RETURN_IF_ERROR(impl_->room_.Admit());
  std::unique_lock<std::shared_mutex> l(inode->mu);
  RANKFS_RETURN_IF_ERROR(CheckRegular(*inode));
  if (data.empty()) return Status::Ok();
  RANKFS_RETURN_IF_ERROR(impl_->CheckSpace(Impl::SpaceUse::kGrow));
  RANKFS_RETURN_IF_ERROR(impl_->DropPrivsLocked(inode.get()));
  return impl_->WriteLocked(inode.get(), offset, data);
}

Result<uint64_t> FsCore::Lseek(Ino ino, uint64_t offset, int whence) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return Status(EINVAL, "lseek whence");
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  std::shared_lock<std::shared_mutex> l(inode->mu);
  uint64_t size = inode->attr.size;
  if (offset >= size) return Status(ENXIO, "offset past the end of the file");
  // Data regions in [offset, size): stored extents and buffered ranges, merged.
  std::vector<std::pair<uint64_t, uint64_t>> regions;
  // Unwritten (preallocated) extents are holes, as ext4 reports them.
  RANKFS_RETURN_IF_ERROR(impl_->meta_->ListExtents(ino, offset, size, [&](uint64_t off, const Extent& e) {
    if (!e.unwritten) regions.emplace_back(off, off + e.length);
    return true;
  }));
  for (const auto& [off, data] : inode->dirty) regions.emplace_back(off, off + data.size());
  {
    std::lock_guard<std::mutex> bl(inode->batch_mu);
    for (const auto& b : inode->batches) regions.emplace_back(b->start, b->end);
  }
  if (!inode->cut.empty()) {
    const StreamChunk& last = *inode->cut.back();
    regions.emplace_back(inode->cut.front()->offset, last.offset + last.bytes->size());
  }
  if (inode->stream && inode->stream->buffered() > 0) {
    regions.emplace_back(inode->stream->start(), inode->stream->end());
  }
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
  RANKFS_RETURN_IF_ERROR(impl_->SettleLocked(src.get(), /*sync=*/false));
  // And the destination's, so that no batch of it commits while its extents are replaced.
  if (dst != src) RANKFS_RETURN_IF_ERROR(impl_->SettleLocked(dst.get(), /*sync=*/false));
  std::vector<std::pair<uint64_t, Extent>> added;
  std::vector<ChunkHash> refs;
  uint64_t in_end = in_off + len;
  RANKFS_RETURN_IF_ERROR(impl_->meta_->ListExtents(in, in_off, in_end, [&](uint64_t off, const Extent& e) {
    uint64_t s = std::max(off, in_off), t = std::min(off + e.length, in_end);
    if (s >= t || e.unwritten) return true;  // zeros: a hole in the copy
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
  dst->may_have_extents = true;
  InodeAttr a = dst->attr;
  a.size = std::max(a.size, out_off + len);
  a.mtime_ns = a.ctime_ns = NowNs();
  bool unknown = false;
  Status st =
      impl_->ReplaceRange(out, out_off, out_off + len, added, nullptr, false, &a, &unknown);
  if (!st.ok()) {
    if (!unknown) {  // else the extents may hold them (ReplaceRange)
      for (const ChunkHash& h : refs) impl_->chunks_->Unref(h, 1).IgnoreError();
    }
    return st;
  }
  dst->attr = a;
  return len;
}

}  // namespace rankfs
