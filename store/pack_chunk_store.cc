// PackChunkStore: the ChunkStore calls, the group commit (Flush) and the store's lifetime.
#include "store/pack_chunk_store.h"

#include "store/logging.h"
#include "store/pack_format.h"

namespace rankfs {

PackChunkStore::PackChunkStore(Env* env, std::string dir, MetaStore* meta,
                               const PackChunkStoreOptions& o)
    : env_(env), dir_(std::move(dir)), meta_(meta), options_(o) {
  uuid_ = meta_->super().uuid;
}

Result<std::unique_ptr<PackChunkStore>> PackChunkStore::Open(Env* env, const std::string& dir,
                                                             MetaStore* meta,
                                                             const PackChunkStoreOptions& o) {
  if (!o.read_only) RANKFS_RETURN_IF_ERROR(env->CreateDir(dir));
  std::unique_ptr<PackChunkStore> store(new PackChunkStore(env, dir, meta, o));
  RANKFS_RETURN_IF_ERROR(store->Recover());
  if (o.background_reclaim && !o.read_only) {
    store->reclaim_thread_ = std::thread([s = store.get()] { s->ReclaimLoop(); });
  }
  return store;
}

PackChunkStore::~PackChunkStore() {
  Status s = Close();
  if (!s.ok()) Log(LogLevel::kWarning, "chunkstore", "close: " + s.ToString());
}

std::string PackChunkStore::PackPath(uint32_t pack_id) const {
  return dir_ + "/" + PackFileName(pack_id);
}

Status PackChunkStore::RequireWritable() const {
  if (options_.read_only) return Status(EROFS, "the store is open read-only");
  return Status::Ok();
}

Result<PackChunkStore::Found> PackChunkStore::FindLocked(Stripe& s,
                                                         std::unique_lock<std::mutex>& l,
                                                         const ChunkHash& h) {
  s.cv.wait(l, [&] { return s.inflight.count(h) == 0; });
  Found f;
  if (auto it = s.pending.find(h); it != s.pending.end()) {
    f.pending = &it->second;
    return f;
  }
  if (const ChunkRecord* r = s.recent.Find(h)) {
    f.committed = *r;
    return f;
  }
  ++stat_index_reads_;
  RANKFS_ASSIGN_OR_RETURN(f.committed, meta_->GetChunk(h));
  return f;
}

const ChunkRecord* PackChunkStore::RecentRecords::Find(const ChunkHash& h) const {
  if (auto it = young.find(h); it != young.end()) return &it->second;
  if (auto it = old.find(h); it != old.end()) return &it->second;
  return nullptr;
}

void PackChunkStore::RecentRecords::Add(const ChunkHash& h, const ChunkRecord& r) {
  old.erase(h);
  young.insert_or_assign(h, r);
  if (young.size() >= kRecentPerGeneration) {
    old = std::move(young);
    young = RecordMap();
  }
}

void PackChunkStore::RecentRecords::Erase(const ChunkHash& h) {
  young.erase(h);
  old.erase(h);
}

Status PackChunkStore::Put(const ChunkHash& hash, std::string_view data) {
  return PutImpl(hash, data, std::nullopt);
}

Status PackChunkStore::PutScoped(const ChunkHash& hash, std::string_view data,
                                 uint32_t scope_uid) {
  return PutImpl(hash, data, scope_uid);
}

Status PackChunkStore::PutImpl(const ChunkHash& hash, std::string_view data,
                               std::optional<uint32_t> scope) {
  RANKFS_RETURN_IF_ERROR(RequireWritable());
  if (data.empty() || data.size() > kMaxChunkBytes) {
    return Status(EINVAL, "chunk of " + std::to_string(data.size()) + " bytes cannot be stored");
  }
  auto counted = [&] {
    ++stat_put_calls_;
    stat_put_bytes_ += data.size();
  };
  Stripe& s = StripeFor(hash);
  std::unique_lock<std::mutex> l(s.mu);
  RANKFS_ASSIGN_OR_RETURN(Found found, FindLocked(s, l, hash));
  s.recent.Erase(hash);  // every path below changes the chunk's record or moves it to pending
  if (found.pending != nullptr && !found.pending->lost) {
    ++found.pending->refcount;
    ++stat_dedup_hits_;
    counted();
    return Status::Ok();
  }
  if (found.pending == nullptr && found.committed && !IsBad(hash)) {
    // The reference is counted in memory, as for a chunk not indexed yet, and the next Flush
    // writes the record once for every reference taken until then: before any extent naming
    // them, as for every index entry. Its bytes are durable already (seq 0).
    Pending p;
    p.location = found.committed->location;
    p.refcount = found.committed->refcount + 1;
    p.scope_uid = found.committed->scope_uid;
    p.indexed = true;
    s.pending.emplace(hash, p);
    ++stat_dedup_hits_;
    counted();
    return Status::Ok();
  }
  // New, damaged or lost content: this thread appends a copy while others putting it wait.
  s.inflight.insert(hash);
  l.unlock();
  uint64_t seq = 0;
  Result<ChunkLocation> loc = Append(hash, data, &seq);
  l.lock();
  // A sync of the pack may have failed while the record went in: one more try in another pack.
  // (Once the entry is in the map, a later Poison finds it there.)
  if (loc.ok() && Poisoned(loc->pack_id)) {
    QueueRelease(*loc);
    l.unlock();
    loc = Append(hash, data, &seq);
    l.lock();
    if (loc.ok() && Poisoned(loc->pack_id)) {
      QueueRelease(*loc);
      loc = Status(EIO, "chunk " + hash.ToHex() + ": syncs of its packs keep failing");
    }
  }
  s.inflight.erase(hash);
  s.cv.notify_all();
  if (!loc.ok()) return loc.status();
  if (found.pending != nullptr) {
    // A lost copy: the fresh one takes its place and its references (held by writers that
    // drop them when their Flush fails). While the hash was in flight, Ref and Unref waited and
    // Flush and Poison pass lost entries by, so the entry is still there.
    Pending& p = s.pending.at(hash);
    QueueRelease(p.location);  // never indexed: nothing names it
    p.location = *loc;
    p.seq = seq;
    p.lost = false;
    --lost_entries_;
    ++p.refcount;
    counted();
    return Status::Ok();
  }
  Pending p;
  p.location = *loc;
  p.seq = seq;
  p.refcount = 1;
  p.scope_uid = scope;
  if (found.committed) {  // healing: the fresh copy replaces the damaged one once indexed
    p.refcount = found.committed->refcount + 1;
    p.replaces = found.committed->location;
    ClearBad(hash);
    Log(LogLevel::kInfo, "chunkstore", "chunk " + hash.ToHex() + " healing: new copy in pack " +
                                           std::to_string(loc->pack_id));
  } else {
    ++stat_chunks_;
    stat_raw_ += data.size();
    stat_stored_ += loc->record_length;
  }
  s.pending.emplace(hash, p);
  counted();
  return Status::Ok();
}

Status PackChunkStore::Ref(const ChunkHash& hash, uint64_t n) {
  RANKFS_RETURN_IF_ERROR(RequireWritable());
  Stripe& s = StripeFor(hash);
  std::unique_lock<std::mutex> l(s.mu);
  RANKFS_ASSIGN_OR_RETURN(Found found, FindLocked(s, l, hash));
  s.recent.Erase(hash);  // its record changes below
  if (found.pending != nullptr) {
    found.pending->refcount += n;
    return Status::Ok();
  }
  if (!found.committed) return Status(ENOENT, "ref of unknown chunk " + hash.ToHex());
  found.committed->refcount += n;
  MetaStore::Batch b;
  b.PutChunk(hash, *found.committed);
  return meta_->Write(b, /*sync=*/false);
}

Status PackChunkStore::Unref(const ChunkHash& hash, uint64_t n) {
  RANKFS_RETURN_IF_ERROR(RequireWritable());
  Stripe& s = StripeFor(hash);
  std::unique_lock<std::mutex> l(s.mu);
  RANKFS_ASSIGN_OR_RETURN(Found found, FindLocked(s, l, hash));
  s.recent.Erase(hash);  // its record changes below
  auto too_many = [&](uint64_t has) {
    return Status(EUCLEAN, "chunk " + hash.ToHex() + ": dropping " + std::to_string(n) +
                               " references, it has " + std::to_string(has));
  };
  if (found.pending != nullptr) {
    Pending& p = *found.pending;
    if (n > p.refcount) return too_many(p.refcount);
    p.refcount -= n;
    if (p.refcount > 0) return Status::Ok();
    return DropPendingLocked(s, hash);
  }
  if (!found.committed) return Status(ENOENT, "unref of unknown chunk " + hash.ToHex());
  ChunkRecord& r = *found.committed;
  if (n > r.refcount) return too_many(r.refcount);
  r.refcount -= n;
  MetaStore::Batch b;
  if (r.refcount > 0) {
    b.PutChunk(hash, r);
    return meta_->Write(b, /*sync=*/false);
  }
  b.DeleteChunk(hash);
  // A failed delete may still have happened: the range stays (a leak, never a hole).
  RANKFS_RETURN_IF_ERROR(meta_->Write(b, /*sync=*/false));
  --stat_chunks_;
  stat_raw_ -= r.location.raw_length;
  stat_stored_ -= r.location.record_length;
  ClearBad(hash);
  QueueRelease(r.location);
  return Status::Ok();
}

Status PackChunkStore::DropPendingLocked(Stripe& s, const ChunkHash& hash) {
  auto it = s.pending.find(hash);
  const Pending p = it->second;
  s.pending.erase(it);
  if (p.lost) --lost_entries_;
  --stat_chunks_;
  stat_raw_ -= p.location.raw_length;
  stat_stored_ -= p.location.record_length;
  if (p.index_unknown) return Status::Ok();  // the index may name it: leak both ranges
  if (p.indexed) {
    // As for an indexed chunk's last reference: a failed delete may still have happened, so
    // the range stays (a leak, never a hole).
    MetaStore::Batch b;
    b.DeleteChunk(hash);
    RANKFS_RETURN_IF_ERROR(meta_->Write(b, /*sync=*/false));
    ClearBad(hash);
  }
  if (p.replaces) {
    // The index names the damaged copy: its entry goes first. If that write fails, it may or
    // may not have happened, so neither copy is released.
    MetaStore::Batch b;
    b.DeleteChunk(hash);
    RANKFS_RETURN_IF_ERROR(meta_->Write(b, /*sync=*/false));
    ClearBad(hash);
    QueueRelease(*p.replaces);
  }
  QueueRelease(p.location);
  return Status::Ok();
}

Status PackChunkStore::Flush() {
  if (options_.read_only) return Status::Ok();  // nothing was put
  std::lock_guard<std::mutex> fl(flush_mu_);
  uint64_t synced = 0;
  // Even when this sync fails, what earlier syncs made durable is indexed below.
  Status first = SyncPacks(&synced);
  // Stripe by stripe: each stripe's entries move to the index atomically with respect to that
  // stripe's puts and unrefs, which is all the consistency they need. All index entries are
  // written before Flush returns, hence before any extent that names them.
  for (Stripe& s : stripes_) {
    std::lock_guard<std::mutex> l(s.mu);
    MetaStore::Batch batch;
    std::vector<Pending*> indexed;
    for (auto& [h, p] : s.pending) {
      if (p.seq > synced || p.lost) continue;
      batch.PutChunk(h, ChunkRecord{p.location, p.refcount, p.scope_uid});
      indexed.push_back(&p);
    }
    if (batch.Empty()) continue;
    Status w = meta_->Write(batch, /*sync=*/false);
    if (!w.ok()) {
      // Written or not, nobody can tell: keep the entries (the next Flush writes them again)
      // and never release what they name.
      for (Pending* p : indexed) p->index_unknown = true;
      if (first.ok()) first = w.Annotate("indexing chunks");
      continue;
    }
    for (auto it = s.pending.begin(); it != s.pending.end();) {
      const Pending& p = it->second;
      if (p.seq > synced || p.lost) {
        ++it;
        continue;
      }
      // The healed chunk's index entry names the new copy now; Reclaim syncs the WAL before
      // it punches the damaged one.
      if (p.replaces) QueueRelease(*p.replaces);
      s.recent.Add(it->first, ChunkRecord{p.location, p.refcount, p.scope_uid});
      it = s.pending.erase(it);
    }
  }
  if (first.ok() && lost_entries_.load() > 0) {
    first = Status(EIO, std::to_string(lost_entries_.load()) +
                            " chunks were lost by a failed sync of their pack and must be put "
                            "again by their writers");
  }
  return first;
}

ChunkStoreStats PackChunkStore::GetStats() {
  ChunkStoreStats s;
  s.chunks = stat_chunks_;
  s.raw_bytes = stat_raw_;
  s.stored_bytes = stat_stored_;
  s.put_calls = stat_put_calls_;
  s.put_bytes = stat_put_bytes_;
  s.dedup_hits = stat_dedup_hits_;
  s.reclaimed_bytes = stat_reclaimed_;
  s.reclaim_backlog = stat_backlog_;
  s.read_errors = stat_read_errors_;
  s.index_reads = stat_index_reads_;
  std::vector<uint32_t> ids;
  {
    std::lock_guard<std::mutex> l(pack_mu_);
    s.packs = packs_.size();
    for (const auto& [id, p] : packs_) ids.push_back(id);
  }
  for (uint32_t id : ids) {
    if (auto info = env_->Stat(PackPath(id)); info.ok()) s.allocated_bytes += info->allocated_bytes;
  }
  return s;
}

Status PackChunkStore::Close() {
  {
    std::lock_guard<std::mutex> l(pack_mu_);
    stopping_ = true;
    release_cv_.notify_all();
  }
  if (reclaim_thread_.joinable()) reclaim_thread_.join();
  {
    std::lock_guard<std::mutex> fl(flush_mu_);
    if (closed_) return Status::Ok();
    closed_ = true;
  }
  if (options_.read_only) return Status::Ok();
  Status st = Flush();
  Status rs = Reclaim();
  if (st.ok()) st = rs;
  // An active pack whose chunks all went holds nothing: a clean stop leaves no empty pack
  // (fsck would call it an orphan).
  uint32_t empty_active = 0;
  {
    std::lock_guard<std::mutex> l(pack_mu_);
    auto it = packs_.find(active_pack_);
    if (it != packs_.end() && it->second.live_bytes == 0) empty_active = active_pack_;
  }
  if (empty_active != 0) {
    Status ds = DeletePack(empty_active);
    if (st.ok()) st = ds;
  }
  MetaStore::Batch b;
  bool dir_dirty;
  {
    std::lock_guard<std::mutex> l(pack_mu_);
    for (auto& [id, p] : packs_) b.PutPack(id, PackStats{p.live_bytes, p.dead_bytes});
    dir_dirty = dir_dirty_;
    dir_dirty_ = false;
  }
  if (dir_dirty) {
    Status ds = env_->SyncDir(dir_);
    if (st.ok()) st = ds.Annotate("syncing the packs directory");
  }
  Status ws = meta_->Write(b, /*sync=*/true);
  return st.ok() ? ws : st;
}

}  // namespace rankfs
