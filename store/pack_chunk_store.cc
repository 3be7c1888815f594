#include "store/pack_chunk_store.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <memory>

#include "store/compressor.h"
#include "store/crc32c.h"
#include "store/logging.h"
#include "store/pack_format.h"

namespace rankfs {
namespace {

constexpr uint64_t kBlock = 4096;  // hole punching frees whole blocks only
uint64_t RoundUp(uint64_t v) { return (v + kBlock - 1) / kBlock * kBlock; }
uint64_t RoundDown(uint64_t v) { return v / kBlock * kBlock; }

std::string LocationString(const ChunkLocation& loc) {
  return "pack " + std::to_string(loc.pack_id) + " offset " + std::to_string(loc.offset);
}

// Room for a record read from a pack: a per-thread buffer, reused and never zeroed (a
// zero-filled string per read was part of a tenth of a cold read's CPU spent in memset).
// Records over 1 MiB, which FastCDC's 256 KiB chunks never make, get their own buffer, so
// that no thread keeps a large one. *owned holds it while the caller reads.
char* RecordBuffer(size_t n, std::unique_ptr<char[]>* owned) {
  constexpr size_t kKeep = 1u << 20;
  if (n > kKeep) {
    *owned = std::make_unique_for_overwrite<char[]>(n);
    return owned->get();
  }
  thread_local std::unique_ptr<char[]> buf = std::make_unique_for_overwrite<char[]>(kKeep);
  return buf.get();
}

}  // namespace

PackChunkStore::PackChunkStore(Env* env, std::string dir, MetaStore* meta,
                               const PackChunkStoreOptions& o)
    : env_(env), dir_(std::move(dir)), meta_(meta), options_(o) {
  uuid_ = meta_->super().uuid;
}

Result<std::unique_ptr<PackChunkStore>> PackChunkStore::Open(Env* env, const std::string& dir,
                                                             MetaStore* meta,
                                                             const PackChunkStoreOptions& o) {
  RANKFS_RETURN_IF_ERROR(env->CreateDir(dir));
  std::unique_ptr<PackChunkStore> store(new PackChunkStore(env, dir, meta, o));
  RANKFS_RETURN_IF_ERROR(store->Recover());
  if (o.background_reclaim) {
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

// Rebuilds the in-memory pack table from the chunk index, the only authority on which chunks
// exist. Pack bytes that no index entry covers were appended before a crash and never
// committed: they are released now.
Status PackChunkStore::Recover() {
  RANKFS_ASSIGN_OR_RETURN(std::vector<std::string> names, env_->ListDir(dir_));
  std::map<uint32_t, std::vector<std::pair<uint64_t, uint64_t>>> live;  // id -> [start, end)
  for (const std::string& name : names) {
    uint32_t id;
    if (ParsePackFileName(name, &id)) live[id];
  }
  uint64_t chunks = 0, raw = 0, stored = 0;
  uint32_t max_indexed = 0;  // new packs get higher ids, even than a missing pack's
  RANKFS_RETURN_IF_ERROR(meta_->ForEachChunk([&](const ChunkHash& h, const ChunkRecord& r) {
    const ChunkLocation& loc = r.location;
    max_indexed = std::max(max_indexed, loc.pack_id);
    auto it = live.find(loc.pack_id);
    if (it == live.end()) {
      Log(LogLevel::kError, "chunkstore",
          "chunk " + h.ToHex() + " is indexed in missing " + LocationString(loc));
      return true;
    }
    it->second.emplace_back(loc.offset, loc.offset + loc.record_length);
    ++chunks;
    raw += loc.raw_length;
    stored += loc.record_length;
    return true;
  }));
  stat_chunks_ = chunks;
  stat_raw_ = raw;
  stat_stored_ = stored;

  std::lock_guard<std::mutex> l(pack_mu_);
  // Reusing the id of a missing pack would make its chunks' index entries point into the new
  // pack (found by tests/integration/damage_test.cc).
  next_pack_id_ = std::max(next_pack_id_, max_indexed + 1);
  for (auto& [id, ranges] : live) {
    next_pack_id_ = std::max(next_pack_id_, id + 1);
    if (ranges.empty()) {
      Log(LogLevel::kInfo, "chunkstore", "deleting pack " + std::to_string(id) +
                                             ": it holds no indexed chunk");
      RANKFS_RETURN_IF_ERROR(env_->DeleteFile(PackPath(id)));
      dir_dirty_ = true;
      continue;
    }
    RANKFS_ASSIGN_OR_RETURN(FileInfo info, env_->Stat(PackPath(id)));
    Pack& p = packs_[id];
    p.size = info.size;
    std::sort(ranges.begin(), ranges.end());
    uint64_t cursor = kPackHeaderSize;
    for (auto [start, end] : ranges) {
      p.live_bytes += end - start;
      if (start > cursor) p.dead.emplace(cursor, start);
      cursor = std::max(cursor, end);
    }
    if (cursor < p.size) p.dead.emplace(cursor, p.size);
    p.dead_bytes = p.size - kPackHeaderSize - std::min(p.live_bytes, p.size - kPackHeaderSize);
    if (p.dead.empty()) continue;
    RANKFS_ASSIGN_OR_RETURN(auto file, env_->OpenFile(PackPath(id), OpenMode::kReadWrite));
    for (auto [start, end] : p.dead) {
      uint64_t a = RoundUp(start), b = RoundDown(end);
      if (a < b) RANKFS_RETURN_IF_ERROR(file->PunchHole(a, b - a));
    }
    p.file = std::move(file);
    ++open_files_;
  }
  return Status::Ok();
}

void PackChunkStore::WaitNotInflight(Stripe& s, std::unique_lock<std::mutex>& l,
                                     const ChunkHash& h) {
  s.cv.wait(l, [&] { return s.inflight.count(h) == 0; });
}

bool PackChunkStore::IsBad(const ChunkHash& h) {
  std::lock_guard<std::mutex> l(bad_mu_);
  return bad_.count(h) != 0;
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
  if (data.empty() || data.size() > kMaxChunkBytes) {
    return Status(EINVAL, "chunk of " + std::to_string(data.size()) + " bytes cannot be stored");
  }
  Stripe& s = StripeFor(hash);
  std::unique_lock<std::mutex> l(s.mu);
  WaitNotInflight(s, l, hash);
  if (auto it = s.pending.find(hash); it != s.pending.end()) {
    ++it->second.refcount;
    ++stat_dedup_hits_;
    ++stat_put_calls_;
    stat_put_bytes_ += data.size();
    return Status::Ok();
  }
  RANKFS_ASSIGN_OR_RETURN(std::optional<ChunkRecord> committed, meta_->GetChunk(hash));
  if (committed && !IsBad(hash)) {
    committed->refcount += 1;
    MetaStore::Batch b;
    b.PutChunk(hash, *committed);
    RANKFS_RETURN_IF_ERROR(meta_->Write(b, /*sync=*/false));
    ++stat_dedup_hits_;
    ++stat_put_calls_;
    stat_put_bytes_ += data.size();
    return Status::Ok();
  }
  // New (or damaged) content: this thread appends it while others putting it wait.
  s.inflight.insert(hash);
  l.unlock();
  uint64_t seq = 0;
  Result<ChunkLocation> loc = Append(hash, data, &seq);
  l.lock();
  s.inflight.erase(hash);
  s.cv.notify_all();
  if (!loc.ok()) return loc.status();

  Pending p;
  p.location = *loc;
  p.seq = seq;
  p.refcount = 1;
  p.scope_uid = scope;
  if (committed) {  // healing: the fresh copy replaces the damaged one
    p.refcount = committed->refcount + 1;
    p.replaces_committed = true;
    {
      std::lock_guard<std::mutex> bl(bad_mu_);
      bad_.erase(hash);
    }
    QueueRelease(committed->location);
    Log(LogLevel::kInfo, "chunkstore", "chunk " + hash.ToHex() + " healed: new copy in " +
                                           LocationString(*loc));
  } else {
    ++stat_chunks_;
    stat_raw_ += data.size();
    stat_stored_ += loc->record_length;
  }
  s.pending.emplace(hash, p);
  ++stat_put_calls_;
  stat_put_bytes_ += data.size();
  return Status::Ok();
}

Result<ChunkLocation> PackChunkStore::Append(const ChunkHash& hash, std::string_view data,
                                             uint64_t* seq) {
  std::string record;
  record.reserve(kRecordHeaderSize + data.size() / 2);
  std::string frame;
  bool shrunk = false;
  if (options_.compression_level > 0) {
    RANKFS_RETURN_IF_ERROR(CompressChunk(data, options_.compression_level, &frame, &shrunk));
  }
  RecordHeader h;
  h.hash = hash;
  h.raw_length = uint32_t(data.size());
  std::string_view stored = shrunk ? std::string_view(frame) : data;
  h.codec = shrunk ? Codec::kZstd : Codec::kRaw;
  h.stored_length = uint32_t(stored.size());
  h.stored_crc = Crc32c(stored.data(), stored.size());
  EncodeRecordHeader(h, &record);
  record.append(stored);

  std::lock_guard<std::mutex> l(pack_mu_);
  std::shared_ptr<File> file;
  Pack* pack = nullptr;
  if (active_pack_ != 0) {
    pack = &packs_[active_pack_];
    if (pack->size + record.size() > options_.max_pack_bytes) pack = nullptr;
    else file = pack->file;
  }
  if (pack == nullptr) {
    RANKFS_ASSIGN_OR_RETURN(file, NewActivePackLocked());
    pack = &packs_[active_pack_];
  }
  ChunkLocation loc;
  loc.pack_id = active_pack_;
  loc.offset = pack->size;
  loc.record_length = uint32_t(record.size());
  loc.raw_length = h.raw_length;
  loc.stored_length = h.stored_length;
  loc.codec = h.codec;
  loc.stored_crc = h.stored_crc;
  Status st = file->PWrite(loc.offset, record);
  if (!st.ok()) {
    // Leave no partial record behind; the append offset does not move.
    file->Truncate(loc.offset).IgnoreError();
    return st.Annotate("appending chunk " + hash.ToHex() + " to " + file->path());
  }
  pack->size += record.size();
  pack->live_bytes += record.size();
  pack->dirty = true;
  *seq = ++append_seq_;
  return loc;
}

Result<std::shared_ptr<File>> PackChunkStore::NewActivePackLocked() {
  uint32_t id = next_pack_id_++;
  std::string path = PackPath(id);
  RANKFS_ASSIGN_OR_RETURN(std::unique_ptr<File> f, env_->OpenFile(path, OpenMode::kCreateExclusive));
  PackFileHeader ph;
  ph.pack_id = id;
  ph.store_uuid = uuid_;
  Status st = f->PWrite(0, EncodePackFileHeader(ph));
  if (!st.ok()) {
    f.reset();
    env_->DeleteFile(path).IgnoreError();
    return st.Annotate("creating pack");
  }
  Pack& p = packs_[id];
  p.file = std::shared_ptr<File>(std::move(f));
  p.size = kPackHeaderSize;
  p.dirty = true;
  ++open_files_;
  active_pack_ = id;
  dir_dirty_ = true;
  return p.file;
}

Result<std::shared_ptr<File>> PackChunkStore::PackFile(uint32_t pack_id) {
  std::lock_guard<std::mutex> l(pack_mu_);
  auto it = packs_.find(pack_id);
  if (it == packs_.end()) return Status(EIO, "pack " + std::to_string(pack_id) + " is missing");
  if (it->second.file) return it->second.file;
  if (open_files_ >= options_.max_open_packs) {
    // Close other idle packs; readers that still hold one keep it open through shared_ptr.
    for (auto& [id, p] : packs_) {
      if (id != active_pack_ && p.file && !p.dirty) {
        p.file.reset();
        --open_files_;
      }
    }
  }
  RANKFS_ASSIGN_OR_RETURN(auto f, env_->OpenFile(PackPath(pack_id), OpenMode::kReadWrite));
  it->second.file = std::shared_ptr<File>(std::move(f));
  ++open_files_;
  return it->second.file;
}

Status PackChunkStore::SyncPacks(uint64_t* synced_seq) {
  std::lock_guard<std::mutex> sl(sync_mu_);
  uint64_t target;
  bool dir_dirty;
  std::vector<std::pair<uint32_t, std::shared_ptr<File>>> dirty;
  {
    std::lock_guard<std::mutex> l(pack_mu_);
    target = append_seq_;
    dir_dirty = dir_dirty_;
    dir_dirty_ = false;
    for (auto& [id, p] : packs_) {
      if (p.dirty && p.file) {
        dirty.emplace_back(id, p.file);
        p.dirty = false;
      }
    }
    if (dirty.empty() && !dir_dirty) {
      synced_seq_ = target;
      *synced_seq = target;
      return Status::Ok();
    }
  }
  Status st;
  for (auto& [id, f] : dirty) {
    st = f->Sync();
    if (!st.ok()) break;
  }
  if (st.ok() && dir_dirty) st = env_->SyncDir(dir_);
  std::lock_guard<std::mutex> l(pack_mu_);
  if (!st.ok()) {
    for (auto& [id, f] : dirty) {
      if (auto it = packs_.find(id); it != packs_.end()) it->second.dirty = true;
    }
    dir_dirty_ = dir_dirty_ || dir_dirty;
    return st.Annotate("syncing packs");
  }
  synced_seq_ = std::max(synced_seq_, target);
  *synced_seq = synced_seq_;
  return Status::Ok();
}

Status PackChunkStore::Flush() {
  std::lock_guard<std::mutex> fl(flush_mu_);
  uint64_t synced = 0;
  RANKFS_RETURN_IF_ERROR(SyncPacks(&synced));
  // Stripe by stripe: each stripe's entries move to the index atomically with respect to that
  // stripe's puts and unrefs, which is all the consistency they need. All index entries are
  // written before Flush returns, hence before any extent that names them.
  for (Stripe& s : stripes_) {
    std::lock_guard<std::mutex> l(s.mu);
    MetaStore::Batch batch;
    for (auto& [h, p] : s.pending) {
      if (p.seq <= synced) batch.PutChunk(h, ChunkRecord{p.location, p.refcount, p.scope_uid});
    }
    if (batch.Empty()) continue;
    RANKFS_RETURN_IF_ERROR(meta_->Write(batch, /*sync=*/false).Annotate("indexing chunks"));
    std::erase_if(s.pending, [&](const auto& kv) { return kv.second.seq <= synced; });
  }
  return Status::Ok();
}

Status PackChunkStore::Ref(const ChunkHash& hash, uint64_t n) {
  Stripe& s = StripeFor(hash);
  std::unique_lock<std::mutex> l(s.mu);
  WaitNotInflight(s, l, hash);
  if (auto it = s.pending.find(hash); it != s.pending.end()) {
    it->second.refcount += n;
    return Status::Ok();
  }
  RANKFS_ASSIGN_OR_RETURN(std::optional<ChunkRecord> r, meta_->GetChunk(hash));
  if (!r) return Status(ENOENT, "ref of unknown chunk " + hash.ToHex());
  r->refcount += n;
  MetaStore::Batch b;
  b.PutChunk(hash, *r);
  return meta_->Write(b, /*sync=*/false);
}

Status PackChunkStore::Unref(const ChunkHash& hash, uint64_t n) {
  Stripe& s = StripeFor(hash);
  std::unique_lock<std::mutex> l(s.mu);
  WaitNotInflight(s, l, hash);
  std::optional<ChunkLocation> released;
  if (auto it = s.pending.find(hash); it != s.pending.end()) {
    Pending& p = it->second;
    if (n > p.refcount) {
      return Status(EUCLEAN, "chunk " + hash.ToHex() + ": dropping " + std::to_string(n) +
                                 " references, it has " + std::to_string(p.refcount));
    }
    p.refcount -= n;
    if (p.refcount > 0) return Status::Ok();
    if (p.replaces_committed) {
      MetaStore::Batch b;
      b.DeleteChunk(hash);
      RANKFS_RETURN_IF_ERROR(meta_->Write(b, /*sync=*/false));
    }
    released = p.location;
    s.pending.erase(it);
  } else {
    RANKFS_ASSIGN_OR_RETURN(std::optional<ChunkRecord> r, meta_->GetChunk(hash));
    if (!r) return Status(ENOENT, "unref of unknown chunk " + hash.ToHex());
    if (n > r->refcount) {
      return Status(EUCLEAN, "chunk " + hash.ToHex() + ": dropping " + std::to_string(n) +
                                 " references, it has " + std::to_string(r->refcount));
    }
    r->refcount -= n;
    MetaStore::Batch b;
    if (r->refcount > 0) {
      b.PutChunk(hash, *r);
      return meta_->Write(b, /*sync=*/false);
    }
    b.DeleteChunk(hash);
    RANKFS_RETURN_IF_ERROR(meta_->Write(b, /*sync=*/false));
    released = r->location;
  }
  --stat_chunks_;
  stat_raw_ -= released->raw_length;
  stat_stored_ -= released->record_length;
  {
    std::lock_guard<std::mutex> bl(bad_mu_);
    bad_.erase(hash);
  }
  QueueRelease(*released);
  return Status::Ok();
}

void PackChunkStore::QueueRelease(const ChunkLocation& loc) {
  std::lock_guard<std::mutex> l(pack_mu_);
  release_queue_.push_back(loc);
  stat_backlog_ += loc.record_length;
  release_cv_.notify_one();
}

Result<ChunkLocation> PackChunkStore::Locate(const ChunkHash& hash) {
  Stripe& s = StripeFor(hash);
  {
    std::unique_lock<std::mutex> l(s.mu);
    WaitNotInflight(s, l, hash);
    if (auto it = s.pending.find(hash); it != s.pending.end()) return it->second.location;
  }
  RANKFS_ASSIGN_OR_RETURN(std::optional<ChunkRecord> r, meta_->GetChunk(hash));
  if (!r) return Status(ENOENT, "chunk " + hash.ToHex() + " is not stored");
  return r->location;
}

Status PackChunkStore::Get(const ChunkHash& hash, std::string* out) {
  RANKFS_ASSIGN_OR_RETURN(ChunkLocation loc, Locate(hash));
  return ReadChunk(hash, loc, out);
}

Status PackChunkStore::Damaged(const ChunkHash& hash, const std::string& where,
                               const std::string& why) {
  ++stat_read_errors_;
  {
    std::lock_guard<std::mutex> l(bad_mu_);
    bad_.insert(hash);
  }
  std::string msg = "chunk " + hash.ToHex() + " in " + where + " is damaged: " + why;
  Log(LogLevel::kError, "chunkstore", msg);
  return Status(EIO, msg);
}

Status PackChunkStore::ReadChunk(const ChunkHash& hash, const ChunkLocation& loc,
                                 std::string* out) {
  auto damaged = [&](const std::string& why) { return Damaged(hash, LocationString(loc), why); };
  // A missing or unreadable pack is damage too: the chunk is marked bad so that a fresh Put of
  // the same content heals it instead of taking a reference to the lost copy.
  Result<std::shared_ptr<File>> file_or = PackFile(loc.pack_id);
  if (!file_or.ok()) return damaged(file_or.status().message());
  std::shared_ptr<File> file = std::move(file_or).value();
  // The index entry is on-disk input too: a damaged record_length must not make a read
  // allocate (and zero) up to 4 GiB. A record is a header plus at most kMaxChunkBytes.
  if (loc.stored_length > kMaxChunkBytes ||
      loc.record_length != kRecordHeaderSize + uint64_t(loc.stored_length)) {
    return damaged("index entry has inconsistent lengths");
  }
  std::unique_ptr<char[]> owned;
  char* const buf = RecordBuffer(loc.record_length, &owned);
  const std::string_view rec(buf, loc.record_length);
  size_t got = 0;
  if (Status rs = file->PRead(loc.offset, rec.size(), buf, &got); !rs.ok()) {
    return damaged(rs.message());
  }
  if (got != rec.size()) return damaged("record cut short");
  auto h = DecodeRecordHeader(rec);
  if (!h.ok()) return damaged(h.status().message());
  if (h->hash != hash || h->stored_length != loc.stored_length ||
      h->raw_length != loc.raw_length || h->codec != loc.codec ||
      kRecordHeaderSize + h->stored_length != loc.record_length) {
    return damaged("record header does not match the index");
  }
  std::string_view stored(rec.data() + kRecordHeaderSize, h->stored_length);
  if (Crc32c(stored.data(), stored.size()) != h->stored_crc) return damaged("checksum mismatch");
  if (h->codec == Codec::kRaw) {
    out->assign(stored);
    return Status::Ok();
  }
  out->resize(h->raw_length);
  Status st = DecompressChunk(stored, h->raw_length, out->data());
  if (!st.ok()) return damaged(st.message());
  return Status::Ok();
}

Status PackChunkStore::Verify(const ChunkHash& hash) {
  std::optional<uint32_t> scope;
  {
    Stripe& s = StripeFor(hash);
    std::unique_lock<std::mutex> l(s.mu);
    WaitNotInflight(s, l, hash);
    if (auto it = s.pending.find(hash); it != s.pending.end()) scope = it->second.scope_uid;
  }
  if (!scope) {
    RANKFS_ASSIGN_OR_RETURN(std::optional<ChunkRecord> r, meta_->GetChunk(hash));
    if (r) scope = r->scope_uid;
  }
  std::string data;
  RANKFS_RETURN_IF_ERROR(Get(hash, &data));
  if (ChunkHash::ForScope(scope, data) != hash) {
    return Damaged(hash, "the store", "content does not match its hash");
  }
  return Status::Ok();
}

Status PackChunkStore::Reclaim() {
  std::lock_guard<std::mutex> rl(reclaim_mu_);
  std::vector<ChunkLocation> queue;
  {
    std::lock_guard<std::mutex> l(pack_mu_);
    queue.swap(release_queue_);
  }
  if (queue.empty()) return Status::Ok();
  // The index deletions that released these ranges must be durable before the bytes go:
  // otherwise a crash could bring back an index entry that points at a hole.
  Status st = meta_->SyncWal();
  if (!st.ok()) {
    std::lock_guard<std::mutex> l(pack_mu_);
    release_queue_.insert(release_queue_.end(), queue.begin(), queue.end());
    return st.Annotate("reclaim");
  }
  struct Punch {
    uint32_t pack_id;
    uint64_t start, end;
  };
  std::vector<Punch> punches;
  std::vector<uint32_t> emptied;
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
  punches.swap(merged);
  Status first;
  for (const Punch& pu : punches) {
    auto file = PackFile(pu.pack_id);
    if (!file.ok()) continue;  // deleted meanwhile: nothing left to punch
    Status ps = (*file)->PunchHole(pu.start, pu.end - pu.start);
    if (!ps.ok() && first.ok()) first = ps;
  }
  for (uint32_t id : emptied) {
    std::shared_ptr<File> f;
    {
      std::lock_guard<std::mutex> l(pack_mu_);
      auto it = packs_.find(id);
      if (it == packs_.end() || it->second.live_bytes != 0) continue;
      if (it->second.file) --open_files_;
      packs_.erase(it);
      dir_dirty_ = true;
    }
    Status ds = env_->DeleteFile(PackPath(id));
    if (!ds.ok() && first.ok()) first = ds;
    MetaStore::Batch b;
    b.DeletePack(id);
    meta_->Write(b, false).IgnoreError();  // accounting only
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
  std::lock_guard<std::mutex> l(pack_mu_);
  s.packs = packs_.size();
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
  Status st = Flush();
  Status rs = Reclaim();
  if (st.ok()) st = rs;
  MetaStore::Batch b;
  {
    std::lock_guard<std::mutex> l(pack_mu_);
    for (auto& [id, p] : packs_) b.PutPack(id, PackStats{p.live_bytes, p.dead_bytes});
  }
  Status ws = meta_->Write(b, /*sync=*/true);
  return st.ok() ? ws : st;
}

}  // namespace rankfs
