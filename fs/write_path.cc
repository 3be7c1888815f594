// FsCore's write path: dirty ranges, the stream chunker, batches on their way through the
// flush pipeline, and flushing dirty ranges into chunks and extents. Closing files is in
// close_path.cc; reads, truncation and the file operations are in file_data.cc.
#include <algorithm>
#include <cstring>

#include "fs/fs_core.h"
#include "fs/fs_core_impl.h"
#include "store/logging.h"

namespace rankfs {

// ---------------------------------------------------------------------------------------------
// Dirty ranges

namespace {

// Removes [start, end) from the dirty ranges, keeping the parts of ranges outside it. Returns
// the bytes removed.
uint64_t CutOut(std::map<uint64_t, std::string>* dirty, uint64_t start, uint64_t end) {
  uint64_t removed = 0;
  auto it = dirty->upper_bound(start);
  if (it != dirty->begin()) --it;
  while (it != dirty->end() && it->first < end) {
    const uint64_t s = it->first, e = s + it->second.size();
    if (e <= start) {
      ++it;
      continue;
    }
    removed += std::min(e, end) - std::max(s, start);
    std::string tail;
    if (e > end) tail = it->second.substr(end - s);  // a copy of the part past `end` only
    if (s < start) {
      it->second.resize(start - s);  // the head stays, in place
      ++it;
    } else {
      it = dirty->erase(it);
    }
    if (e > end) {
      // Ranges do not overlap, so none after this one starts before `end`.
      dirty->emplace_hint(it, end, std::move(tail));
      break;
    }
  }
  return removed;
}

// Puts `data` at `off` over whatever dirty bytes are there. A write inside one dirty range is
// copied in place; otherwise it becomes a range of its own (ranges never overlap but may
// touch, so that data arriving in pieces is never copied again to grow one string: that cost
// a page fault per 4 KiB of every reallocation). Returns the bytes added.
uint64_t InsertDirty(std::map<uint64_t, std::string>* dirty, uint64_t off, std::string_view data,
                     BufferPool* pool = nullptr) {
  const uint64_t end = off + data.size();
  auto it = dirty->upper_bound(off);
  if (it != dirty->begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second.size() >= end) {
      std::memcpy(prev->second.data() + (off - prev->first), data.data(), data.size());
      return 0;
    }
  }
  const uint64_t removed = CutOut(dirty, off, end);
  dirty->emplace(off, pool != nullptr ? pool->Copy(data) : std::string(data));
  return data.size() - removed;
}

}  // namespace

void FsCore::Impl::DropDirty(Inode* inode, uint64_t start, uint64_t end) {
  const uint64_t removed = CutOut(&inode->dirty, start, end);
  inode->dirty_bytes -= removed;
  room_.Release(removed);
}

namespace {

// Inserts the parts of [off, off + data.size()) that no dirty range covers: older bytes going
// under newer ones. Returns the bytes added.
uint64_t InsertDirtyUnder(std::map<uint64_t, std::string>* dirty, uint64_t off,
                          std::string_view data) {
  const uint64_t end = off + data.size();
  std::vector<std::pair<uint64_t, uint64_t>> gaps;
  uint64_t cursor = off;
  auto it = dirty->upper_bound(off);
  if (it != dirty->begin()) --it;
  for (; it != dirty->end() && it->first < end; ++it) {
    const uint64_t s = it->first, e = s + it->second.size();
    if (e <= cursor) continue;
    if (s > cursor) gaps.emplace_back(cursor, s);
    cursor = std::max(cursor, e);
  }
  if (cursor < end) gaps.emplace_back(cursor, end);
  uint64_t added = 0;
  for (auto [s, e] : gaps) added += InsertDirty(dirty, s, data.substr(s - off, e - s));
  return added;
}

bool Overlaps(const std::map<uint64_t, std::string>& dirty, uint64_t start, uint64_t end) {
  auto it = dirty.lower_bound(end);
  if (it == dirty.begin()) return false;
  --it;  // the last range starting before `end`
  return it->first + it->second.size() > start;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Writes and the stream

std::optional<uint32_t> FsCore::Impl::ScopeOf(const Inode& inode) const {
  if (meta_->super().dedup_scope == DedupScope::kPerUid) return inode.attr.uid;
  return std::nullopt;
}

Status FsCore::Impl::WriteLocked(Inode* inode, uint64_t offset, std::string_view data) {
  EndLazyLocked(inode);  // written again: its next close decides anew
  ThrottleLocked(inode);
  // Whatever happens below, the bytes end up held by this inode until it hands them on.
  ListLocked(inode);
  const uint64_t end = offset + data.size();
  // The size first: a batch cut from these bytes persists it ahead of them (SubmitCutLocked).
  const uint64_t old_size = inode->attr.size;
  inode->attr.size = std::max<uint64_t>(old_size, end);
  inode->attr.mtime_ns = inode->attr.ctime_ns = NowNs();
  // A new stream starts where the file ends. An idle one moves to the end of the file when the
  // writer appends there but not at the stream's end (after rewrites that were flushed as
  // dirty ranges, or a truncate that extended the file). Not while dirty ranges exist: those
  // may be writeback that arrived ahead of the stream, and their end is the file's end too.
  const bool idle =
      inode->stream && inode->stream->buffered() == 0 && inode->cut.empty() && inode->dirty.empty();
  if (!inode->stream || (idle && offset != inode->stream->end() && offset == old_size)) {
    StreamChunker::Context ctx{&cdc_, &successors_, &cache_};
    const uint64_t at = inode->stream ? offset : inode->stream_end;
    inode->stream = std::make_unique<StreamChunker>(ctx, at, next_stream_owner_++);
  }
  const StreamChunker& s = *inode->stream;
  // The kernel's writeback sends a page again once a write fills in the rest of a page it had
  // already sent part of: a writer whose writes do not end on page boundaries (an 8 KiB-
  // buffered Python file behind a header) makes such a write start before the stream's end.
  // When the bytes it repeats are the ones the stream took, only the rest is new: it continues
  // the stream rather than ending it in dirty ranges.
  if (offset < s.end() && end > s.end() && !Overlaps(inode->dirty, offset, end) &&
      StreamHoldsLocked(inode, offset, data.substr(0, s.end() - offset))) {
    data.remove_prefix(s.end() - offset);
    offset = s.end();
  }
  // A write continues the stream when it starts at the stream's end and no dirty range
  // overlaps it (a newer dirty byte there would hide the stream's).
  if (offset == s.end() && !Overlaps(inode->dirty, offset, end)) {
    room_.Add(data.size());
    RANKFS_RETURN_IF_ERROR(AppendStreamLocked(inode, data));
    RANKFS_RETURN_IF_ERROR(AbsorbDirtyLocked(inode));
  } else {
    // Rewriting bytes the stream still holds: those go to the pipeline first, so that every
    // byte the stream holds is older than every dirty byte over it.
    const uint64_t held_from = inode->cut.empty() ? s.start() : inode->cut.front()->offset;
    if (offset < s.end() && end > held_from) RANKFS_RETURN_IF_ERROR(FinishStreamLocked(inode));
    uint64_t added = InsertDirty(&inode->dirty, offset, data, &dirty_buffers_);
    inode->dirty_bytes += added;
    room_.Add(added);
    // Dirty ranges that all lie ahead of the stream are writeback that arrived out of order
    // (the kernel has up to max_background WRITEs in flight, and the FUSE threads take the
    // inode lock in any order): the stream absorbs them as it reaches them, and flushing them
    // now would cut the stream where the gap is. They wait up to a larger bound.
    const bool ahead = inode->dirty.begin()->first >= inode->stream->end();
    const uint64_t limit = (ahead ? 8 : 2) * options_.inode_flush_bytes;
    if (inode->dirty_bytes >= limit)
      RANKFS_RETURN_IF_ERROR(FlushDirtyLocked(inode, /*sync=*/false));
  }
  return Status::Ok();
}

Status FsCore::Impl::AppendStreamLocked(Inode* inode, std::string_view data) {
  StreamChunker& s = *inode->stream;
  const size_t first = inode->cut.size();
  const uint64_t predicted = s.predicted_bytes(), cut = s.cut_bytes();
  s.Append(data, ScopeOf(*inode), &inode->cut);
  TakeCutLocked(inode, first, predicted, cut);
  if (inode->cut_bytes >= options_.batch_bytes) return SubmitCutLocked(inode);
  return Status::Ok();
}

bool FsCore::Impl::StreamHoldsLocked(Inode* inode, uint64_t off, std::string_view data) {
  const StreamChunker& s = *inode->stream;
  const uint64_t end = off + data.size();
  // The buffer: [s.start(), s.end()).
  if (end > s.start()) {
    const uint64_t from = std::max(off, s.start());
    std::string held(end - from, '\0');
    s.CopyBuffered(from, held.size(), held.data());
    if (end > s.end() || held != data.substr(from - off)) return false;
    data = data.substr(0, from - off);
  }
  // Below it, the chunks the stream emitted, newest first: each must hold the tail of what is
  // left to match (a gap between them, or a byte that differs, means no).
  bool same = true;
  auto match_tail = [&](const ChunkRef& c) {
    const uint64_t c_end = c->offset + c->bytes->size(), left_end = off + data.size();
    if (c->offset >= left_end) return;  // wholly after what is left
    const uint64_t from = std::max(off, c->offset);
    same = c_end == left_end && std::string_view(*c->bytes).substr(from - c->offset) ==
                                    data.substr(from - off);
    data = data.substr(0, from - off);
  };
  for (auto it = inode->cut.rbegin(); it != inode->cut.rend() && same && !data.empty(); ++it)
    match_tail(*it);
  if (same && !data.empty()) {
    std::lock_guard<std::mutex> bl(inode->batch_mu);
    for (auto b = inode->batches.rbegin(); b != inode->batches.rend() && same && !data.empty();
         ++b) {
      if ((*b)->failed) return false;  // its bytes go back into the dirty ranges
      for (auto it = (*b)->chunks.rbegin(); it != (*b)->chunks.rend() && same && !data.empty();
           ++it)
        match_tail(*it);
    }
  }
  return same && data.empty();
}

void FsCore::Impl::TakeCutLocked(Inode* inode, size_t first, uint64_t predicted_before,
                                 uint64_t cut_before) {
  for (size_t i = first; i < inode->cut.size(); ++i) {
    const ChunkRef& c = inode->cut[i];
    inode->cut_bytes += c->bytes->size();
    // Hash it now, ahead of any store: another stream may be waiting to confirm it.
    if (!c->predicted) pipeline_->Hash(c);
  }
  predicted_bytes_ += inode->stream->predicted_bytes() - predicted_before;
  hashed_bytes_ += inode->stream->cut_bytes() - cut_before;
}

Status FsCore::Impl::AbsorbDirtyLocked(Inode* inode) {
  for (;;) {
    auto it = inode->dirty.find(inode->stream->end());
    if (it == inode->dirty.end()) return Status::Ok();
    std::string data = std::move(it->second);
    inode->dirty.erase(it);
    inode->dirty_bytes -= data.size();  // still counted by room_: they only move
    RANKFS_RETURN_IF_ERROR(AppendStreamLocked(inode, data));
    dirty_buffers_.Give(std::move(data));  // the stream copied what it keeps
  }
}

Status FsCore::Impl::FinishStreamLocked(Inode* inode) {
  EndLazyLocked(inode);
  if (inode->stream && inode->stream->buffered() > 0) {
    StreamChunker& s = *inode->stream;
    const size_t first = inode->cut.size();
    const uint64_t predicted = s.predicted_bytes(), cut = s.cut_bytes();
    s.Finish(ScopeOf(*inode), &inode->cut);
    TakeCutLocked(inode, first, predicted, cut);
  }
  return SubmitCutLocked(inode);
}

Status FsCore::Impl::SubmitCutLocked(Inode* inode) {
  if (inode->cut.empty()) return Status::Ok();
  RANKFS_RETURN_IF_ERROR(CountSubmitLocked(inode));
  auto b = std::make_shared<FlushBatch>();
  b->inode = inode->shared_from_this();
  b->ino = inode->attr.ino;
  b->start = inode->cut.front()->offset;
  b->end = inode->cut.back()->offset + inode->cut.back()->bytes->size();
  b->bytes = inode->cut_bytes;
  b->chunks = std::move(inode->cut);
  inode->cut.clear();
  inode->cut_bytes = 0;
  inode->may_have_extents = true;
  {
    std::lock_guard<std::mutex> bl(inode->batch_mu);
    inode->batches.push_back(b);
  }
  room_.Submitted(b->bytes);
  pipeline_->Submit(std::move(b));
  // The size reaches the store ahead of the data: after a crash the file is at most this long,
  // with zeros where a batch did not commit (never bytes that were not written).
  return PersistAttr(inode->attr, /*sync=*/false);
}

Status FsCore::Impl::WaitBatchesLocked(Inode* inode) {
  std::deque<std::shared_ptr<FlushBatch>> failed;
  {
    std::unique_lock<std::mutex> bl(inode->batch_mu);
    inode->batch_cv.wait(bl, [&] {
      return std::all_of(inode->batches.begin(), inode->batches.end(),
                         [](const auto& b) { return b->failed; });
    });
    failed.swap(inode->batches);
  }
  Status first;
  for (const auto& b : failed) {
    if (first.ok()) first = b->error;
    uint64_t kept = 0;
    if (!inode->deleted && inode->attr.nlink > 0) {
      UncountFailedLocked(inode, b->start, b->end);
      // Nothing is lost: the bytes are buffered again (under any newer dirty bytes) and the
      // next flush retries them.
      for (const ChunkRef& c : b->chunks) {
        kept += InsertDirtyUnder(&inode->dirty, c->offset, *c->bytes);
      }
      inode->dirty_bytes += kept;
    }
    room_.Release(b->bytes - kept);  // counted already; only those under newer bytes go
  }
  if (!inode->dirty.empty()) ListLocked(inode);
  return first;
}

Status FsCore::Impl::SettleLocked(Inode* inode, bool sync) {
  RANKFS_RETURN_IF_ERROR(FinishStreamLocked(inode));
  return FlushDirtyLocked(inode, sync);
}

bool FsCore::Impl::HoldsDataLocked(Inode* inode) {
  if (inode->dirty_bytes > 0 || RecordFollowsLocked(*inode)) return true;
  std::lock_guard<std::mutex> bl(inode->batch_mu);
  return !inode->batches.empty();
}

bool FsCore::Impl::RecordFollowsLocked(const Inode& inode) {
  return !inode.cut.empty() || (inode.stream && inode.stream->buffered() > 0);
}

bool FsCore::Impl::DropHeldDataLocked(Inode* inode) {
  {
    std::lock_guard<std::mutex> bl(inode->batch_mu);
    for (const auto& b : inode->batches) {
      if (!b->failed) return false;  // the committer finishes it first
    }
    for (const auto& b : inode->batches) room_.Release(b->bytes);
    inode->batches.clear();
  }
  DropDirty(inode, 0, UINT64_MAX);
  DropStreamLocked(inode, inode->stream_end);
  return true;
}

void FsCore::Impl::DropStreamLocked(Inode* inode, uint64_t restart_at) {
  EndLazyLocked(inode);
  room_.Release((inode->stream ? inode->stream->buffered() : 0) + inode->cut_bytes);
  inode->stream.reset();
  inode->stream_end = restart_at;
  inode->cut.clear();
  inode->cut_bytes = 0;
}

void FsCore::Impl::ThrottleLocked(Inode* inode) {
  // One file's batches must not take the whole write buffer from the others. The pipeline
  // finishes batches without the inode lock, so waiting here with it held is safe.
  const uint64_t inode_cap = 4 * options_.inode_flush_bytes;
  std::unique_lock<std::mutex> bl(inode->batch_mu);
  inode->batch_cv.wait(bl, [&] {
    uint64_t inflight = 0;
    for (const auto& b : inode->batches) inflight += b->failed ? 0 : b->bytes;
    return inflight < inode_cap;
  });
}

Status FsCore::Impl::PushHeld(const std::shared_ptr<Inode>& inode) {
  std::unique_lock<std::shared_mutex> l(inode->mu);
  if (inode->deleted) return Status::Ok();
  Status st = FinishStreamLocked(inode.get());
  bool failed;
  {
    std::lock_guard<std::mutex> bl(inode->batch_mu);
    failed = std::any_of(inode->batches.begin(), inode->batches.end(),
                         [](const auto& b) { return b->failed; });
  }
  if (st.ok() && (!inode->dirty.empty() || failed)) st = FlushDirtyLocked(inode.get(), false);
  if (!st.ok()) {
    ListLocked(inode.get());  // still holds them: a later sweep tries again
    return st.Annotate("making room in the write buffer");
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// The pipeline's side (committer thread, no inode lock held)

Status FsCore::Impl::CommitBatch(FlushBatch& b) {
  std::vector<std::pair<uint64_t, Extent>> added;
  added.reserve(b.chunks.size());
  for (const ChunkRef& c : b.chunks) {
    added.emplace_back(c->offset, Extent{c->bytes->size(), c->hash, 0});
  }
  return ReplaceRange(b.ino, b.start, b.end, added, nullptr, /*sync=*/false, nullptr,
                      &b.outcome_unknown);
}

void FsCore::Impl::BatchFinished(const std::shared_ptr<FlushBatch>& b, const Status& st) {
  Inode* inode = b->inode.get();
  // A failed batch's bytes stay with its inode until it buffers them again: listed first, so
  // that the keeper finds it when the failure wakes it.
  if (!st.ok()) room_.List(&inode->room_listing, b->inode);
  bool idle;
  {
    std::lock_guard<std::mutex> bl(inode->batch_mu);
    if (st.ok()) {
      auto& q = inode->batches;
      q.erase(std::find(q.begin(), q.end(), b));
    } else {
      b->failed = true;
      b->error = st;
    }
    idle = inode->batches.empty();
    inode->batch_cv.notify_all();
  }
  room_.Finished(b->bytes, st);
  if (!st.ok()) Log(LogLevel::kError, "fs", "storing buffered data: " + st.ToString());
  if (idle) QueueEvictCheck(b->ino);
}

// ---------------------------------------------------------------------------------------------
// Flushing dirty ranges

Status FsCore::Impl::ReplaceRange(Ino ino, uint64_t start, uint64_t end,
                                  const std::vector<std::pair<uint64_t, Extent>>& added,
                                  MetaStore::Batch* extra, bool sync, InodeAttr* record,
                                  bool* outcome_unknown) {
  if (outcome_unknown != nullptr) *outcome_unknown = false;
  MetaStore::Batch b;
  std::vector<ChunkHash> dropped;  // references to release once the batch is written
  std::vector<ChunkHash> taken;    // references taken for split tails (undone on failure)
  uint64_t removed = 0;            // extent bytes within [start, end)
  Status st;
  if (end > start) {
    st = meta_->ListExtents(ino, start, end, [&](uint64_t off, const Extent& e) {
      uint64_t e_end = off + e.length;
      bool has_head = off<start, has_tail = e_end> end;
      removed += std::min(e_end, end) - std::max(off, start);
      if (has_tail) {
        Extent tail = e;
        tail.length = e_end - end;
        if (!e.unwritten) tail.chunk_offset = uint32_t(e.chunk_offset + (end - off));
        b.PutExtent(ino, end, tail);
        if (!e.unwritten) taken.push_back(e.chunk);  // an unwritten extent holds no reference
      }
      if (has_head) {
        Extent head = e;
        head.length = start - off;
        b.PutExtent(ino, off, head);  // same key, shorter: keeps its reference
      } else {
        b.DeleteExtent(ino, off);
        if (e.unwritten) return true;  // it held no reference
        if (!has_tail)
          dropped.push_back(e.chunk);
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
  if (record != nullptr) {
    for (const auto& [off, e] : added) record->allocated_bytes += e.length;
    record->allocated_bytes -= removed;
    b.PutInode(*record);
  }
  st = meta_->Write(b, sync);
  if (!st.ok()) {
    // The write may have happened (a WAL sync that failed after the append): the extents it
    // would have written may hold these references, so none is dropped. Counts err high; fsck
    // recounts them. The next write of the range finds whichever extents are there.
    if (outcome_unknown != nullptr) *outcome_unknown = true;
    return st;
  }
  for (const ChunkHash& h : dropped) {
    Status us = chunks_->Unref(h, 1);
    if (!us.ok()) Log(LogLevel::kError, "fs", "releasing a chunk reference: " + us.ToString());
  }
  return Status::Ok();
}

Status FsCore::Impl::FlushRange(Inode* inode, uint64_t start, bool sync) {
  const Ino ino = inode->attr.ino;
  auto it = inode->dirty.find(start);
  if (it == inode->dirty.end()) return Status::Ok();
  // The range and the ranges touching it, cut as one piece.
  std::string joined;
  auto next = std::next(it);
  if (next != inode->dirty.end() && next->first == start + it->second.size()) {
    joined = it->second;
    for (; next != inode->dirty.end() && next->first == start + joined.size(); ++next) {
      joined += next->second;
    }
  }
  const std::string& data = joined.empty() ? it->second : joined;
  std::vector<std::pair<uint64_t, Extent>> added;
  std::vector<ChunkHash> put;
  const std::optional<uint32_t> scope = ScopeOf(*inode);
  size_t pos = 0;
  Status st;
  const auto* bytes = reinterpret_cast<const uint8_t*>(data.data());
  while (pos < data.size()) {
    size_t len = cdc_.NextCut(bytes + pos, data.size() - pos);
    std::string_view piece(data.data() + pos, len);
    ChunkHash h = ChunkHash::ForScope(scope, piece);
    st = scope ? chunks_->PutScoped(h, piece, *scope) : chunks_->Put(h, piece);
    if (!st.ok()) break;
    put.push_back(h);
    added.emplace_back(start + pos, Extent{len, h, 0});
    pos += len;
  }
  // Chunks must be durable and indexed before the extents naming them are written.
  if (st.ok()) st = chunks_->Flush();
  inode->may_have_extents = true;
  InodeAttr record = inode->attr;
  bool unknown = false;
  if (st.ok()) st = ReplaceRange(ino, start, start + pos, added, nullptr, sync, &record, &unknown);
  if (!st.ok()) {
    // The references go back unless the extents' write may have taken them (ReplaceRange).
    if (!unknown) {
      for (const ChunkHash& h : put) chunks_->Unref(h, 1).IgnoreError();
    }
    return st.Annotate("writing inode " + std::to_string(ino));
  }
  inode->attr.allocated_bytes = record.allocated_bytes;
  DropDirty(inode, start, start + pos);  // those bytes are in the store now
  return Status::Ok();
}

Status FsCore::Impl::FlushDirtyLocked(Inode* inode, bool sync) {
  // No batch may commit while a dirty range is replaced (an old extent may straddle both).
  Status waited = WaitBatchesLocked(inode);
  if (inode->dirty_bytes > 0) RANKFS_RETURN_IF_ERROR(CheckSpace(SpaceUse::kFlush));
  // Everything, in offset order; the last batch carries the attributes (and the sync).
  bool wrote_attr = false;
  while (!inode->dirty.empty()) {
    // The last run of touching ranges carries the sync.
    auto it = inode->dirty.begin();
    uint64_t run_end = it->first + it->second.size();
    for (auto n = std::next(it); n != inode->dirty.end() && n->first == run_end; ++n) {
      run_end += n->second.size();
    }
    const bool last = inode->dirty.lower_bound(run_end) == inode->dirty.end();
    RANKFS_RETURN_IF_ERROR(FlushRange(inode, it->first, sync && last));
    wrote_attr = last;
  }
  if (!wrote_attr) RANKFS_RETURN_IF_ERROR(PersistAttr(inode->attr, sync));
  // A failed batch whose bytes are now stored is no longer an error: nothing was lost.
  if (!waited.ok()) {
    Log(LogLevel::kWarning, "fs",
        "inode " + std::to_string(inode->attr.ino) +
            ": stored on retry after: " + waited.ToString());
  }
  return Status::Ok();
}

}  // namespace rankfs
