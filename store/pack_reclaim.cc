// PackChunkStore: giving the space of released records back (hole punching, deleting packs
// that hold nothing), in the background or on demand.
#include <algorithm>

#include "store/logging.h"
#include "store/pack_chunk_store.h"

namespace rankfs {
namespace {

constexpr uint64_t kBlock = 4096;  // hole punching frees whole blocks only
uint64_t RoundUp(uint64_t v) { return (v + kBlock - 1) / kBlock * kBlock; }
uint64_t RoundDown(uint64_t v) { return v / kBlock * kBlock; }

}  // namespace

void PackChunkStore::QueueRelease(const ChunkLocation& loc) {
  std::lock_guard<std::mutex> l(pack_mu_);
  release_queue_.push_back(loc);
  stat_backlog_ += loc.record_length;
  release_cv_.notify_one();
}

Status PackChunkStore::DeletePack(uint32_t id) {
  {
    std::lock_guard<std::mutex> l(pack_mu_);
    auto it = packs_.find(id);
    if (it == packs_.end() || it->second.live_bytes != 0) return Status::Ok();
    if (active_pack_ == id) active_pack_ = 0;  // nothing is appended to it any more
  }
  Status st = env_->DeleteFile(PackPath(id));
  if (!st.ok() && st.code() != ENOENT) return st.Annotate("deleting an empty pack");
  {
    std::lock_guard<std::mutex> l(pack_mu_);
    if (auto it = packs_.find(id); it != packs_.end()) {
      if (it->second.file) --open_files_;
      packs_.erase(it);
    }
    dir_dirty_ = true;
  }
  MetaStore::Batch b;
  b.DeletePack(id);
  meta_->Write(b, false).IgnoreError();  // accounting only
  return Status::Ok();
}

Status PackChunkStore::Reclaim() {
  if (options_.read_only) return Status::Ok();
  std::lock_guard<std::mutex> rl(reclaim_mu_);
  std::vector<ChunkLocation> queue;
  {
    std::lock_guard<std::mutex> l(pack_mu_);
    queue.swap(release_queue_);
  }
  if (queue.empty() && failed_punches_.empty() && failed_deletes_.empty()) return Status::Ok();
  // The index changes that released these ranges must be durable before the bytes go:
  // otherwise a crash could bring back an index entry that points at a hole.
  Status st = meta_->SyncWal();
  if (!st.ok()) {
    std::lock_guard<std::mutex> l(pack_mu_);
    release_queue_.insert(release_queue_.end(), queue.begin(), queue.end());
    return st.Annotate("reclaim");
  }
  std::vector<Punch> punches;
  punches.swap(failed_punches_);  // tried again first
  std::vector<uint32_t> emptied;
  emptied.swap(failed_deletes_);
  {
    std::lock_guard<std::mutex> l(pack_mu_);
    for (const ChunkLocation& loc : queue) {
      stat_backlog_ -= loc.record_length;
      stat_reclaimed_ += loc.record_length;
      auto it = packs_.find(loc.pack_id);
      if (it == packs_.end()) continue;
      Pack& p = it->second;
      p.live_bytes -= std::min<uint64_t>(p.live_bytes, loc.record_length);
      p.dead_bytes += loc.record_length;
      if (p.live_bytes == 0 && loc.pack_id != active_pack_) {
        emptied.push_back(loc.pack_id);
        continue;
      }
      // Merge with the neighbouring released ranges, so that a block shared by two dead
      // records is freed once both are dead. Only blocks not punched before are punched: the
      // neighbours' whole blocks already are.
      uint64_t start = loc.offset, end = loc.offset + loc.record_length;
      uint64_t lower = RoundUp(start), upper = RoundDown(end);
      auto next = p.dead.lower_bound(start);
      if (next != p.dead.begin()) {
        auto prev = std::prev(next);
        if (prev->second >= start) {
          lower = std::max(RoundUp(prev->first), RoundDown(prev->second));
          start = prev->first;
          end = std::max(end, prev->second);
          p.dead.erase(prev);
        }
      }
      for (next = p.dead.lower_bound(start); next != p.dead.end() && next->first <= end;) {
        upper = std::min(RoundDown(next->second), RoundUp(next->first));
        end = std::max(end, next->second);
        next = p.dead.erase(next);
      }
      p.dead.emplace(start, end);
      lower = std::max(lower, RoundUp(start));
      upper = std::min(upper, RoundDown(end));
      if (lower < upper) punches.push_back(Punch{loc.pack_id, lower, upper});
    }
  }
  // Releases usually come in file order: merge touching ranges into few fallocate calls.
  std::sort(punches.begin(), punches.end(), [](const Punch& a, const Punch& b) {
    return a.pack_id != b.pack_id ? a.pack_id < b.pack_id : a.start < b.start;
  });
  std::vector<Punch> merged;
  for (const Punch& pu : punches) {
    if (!merged.empty() && merged.back().pack_id == pu.pack_id && merged.back().end >= pu.start) {
      merged.back().end = std::max(merged.back().end, pu.end);
    } else {
      merged.push_back(pu);
    }
  }
  Status first;
  for (const Punch& pu : merged) {
    auto file = PackFile(pu.pack_id);
    if (!file.ok()) continue;  // deleted meanwhile: nothing left to punch
    Status ps = (*file)->PunchHole(pu.start, pu.end - pu.start);
    if (ps.ok()) continue;
    failed_punches_.push_back(pu);  // the space is still owed: the next Reclaim tries again
    if (first.ok()) first = ps;
  }
  for (uint32_t id : emptied) {
    Status ds = DeletePack(id);
    if (ds.ok()) continue;
    failed_deletes_.push_back(id);
    if (first.ok()) first = ds;
  }
  return first.Annotate("reclaim");
}

void PackChunkStore::ReclaimLoop() {
  std::unique_lock<std::mutex> l(pack_mu_);
  while (!stopping_) {
    release_cv_.wait(l, [&] { return stopping_ || !release_queue_.empty(); });
    if (stopping_) break;
    // Let releases of a big delete gather, then handle them in one pass.
    release_cv_.wait_for(l, options_.reclaim_delay, [&] { return stopping_; });
    l.unlock();
    Status st = Reclaim();
    if (!st.ok()) Log(LogLevel::kError, "chunkstore", st.ToString());
    l.lock();
  }
}

}  // namespace rankfs
