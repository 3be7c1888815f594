// PackChunkStore: appending records, the pack table, syncing packs, and what a failed sync
// poisons.
#include <algorithm>
#include <cstring>
#include <memory>

#include "store/compressor.h"
#include "store/crc32c.h"
#include "store/logging.h"
#include "store/pack_chunk_store.h"
#include "store/pack_format.h"

namespace rankfs {
namespace {

// The buffer one record is built in: header, then the zstd frame or the raw bytes. Records of
// ordinary chunks are built in a buffer each thread keeps from call to call, so its pages stay
// mapped; a fresh buffer per record was faulted in (and zeroed by the kernel) every time once
// the heap had been trimmed. Larger records (stores cut with a large chunk_max) get a buffer of
// their own, so that no thread holds on to one.
class RecordBuffer {
 public:
  static constexpr size_t kKeptBytes = 512u << 10;

  explicit RecordBuffer(size_t n) {
    if (n > kKeptBytes) {
      own_.reset(new char[n]);
      data_ = own_.get();
      return;
    }
    thread_local std::unique_ptr<char[]> kept;
    if (kept == nullptr) kept.reset(new char[kKeptBytes]);
    data_ = kept.get();
  }
  char* data() { return data_; }

 private:
  std::unique_ptr<char[]> own_;
  char* data_ = nullptr;
};

}  // namespace

Result<ChunkLocation> PackChunkStore::Append(const ChunkHash& hash, std::string_view data,
                                             uint64_t* seq) {
  const bool compress = options_.compression_level > 0;
  const size_t room = std::max(data.size(), compress ? CompressBound(data.size()) : 0);
  RecordBuffer buffer(kRecordHeaderSize + room);
  char* const body = buffer.data() + kRecordHeaderSize;
  RecordHeader h;
  h.hash = hash;
  h.raw_length = uint32_t(data.size());
  h.codec = Codec::kRaw;
  size_t stored = data.size();
  if (compress) {
    RANKFS_ASSIGN_OR_RETURN(size_t n,
                            CompressChunkInto(data, options_.compression_level, body, room));
    if (n < data.size()) {
      h.codec = Codec::kZstd;
      stored = n;
    }
  }
  if (h.codec == Codec::kRaw) std::memcpy(body, data.data(), data.size());
  h.stored_length = uint32_t(stored);
  h.stored_crc = Crc32c(body, stored);
  EncodeRecordHeader(h, buffer.data());
  const std::string_view record(buffer.data(), kRecordHeaderSize + stored);

  std::lock_guard<std::mutex> l(pack_mu_);
  std::shared_ptr<File> file;
  Pack* pack = nullptr;
  if (active_pack_ != 0) {
    pack = &packs_[active_pack_];
    if (pack->size + record.size() > options_.max_pack_bytes) {
      pack = nullptr;
    } else {
      file = pack->file;
    }
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
  p.new_entry = true;
  ++open_files_;
  active_pack_ = id;
  dir_dirty_ = true;
  return p.file;
}

Result<std::shared_ptr<File>> PackChunkStore::PackFile(uint32_t pack_id) {
  std::lock_guard<std::mutex> l(pack_mu_);
  auto it = packs_.find(pack_id);
  if (it == packs_.end()) return Status(ENOENT, "pack " + std::to_string(pack_id) + " is missing");
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
  const OpenMode mode = options_.read_only ? OpenMode::kReadOnly : OpenMode::kReadWrite;
  RANKFS_ASSIGN_OR_RETURN(auto f, env_->OpenFile(PackPath(pack_id), mode));
  it->second.file = std::shared_ptr<File>(std::move(f));
  ++open_files_;
  return it->second.file;
}

bool PackChunkStore::Poisoned(uint32_t pack_id) {
  std::lock_guard<std::mutex> l(pack_mu_);
  auto it = packs_.find(pack_id);
  return it != packs_.end() && it->second.poisoned;
}

Status PackChunkStore::SyncPacks(uint64_t* synced_seq) {
  std::lock_guard<std::mutex> sl(sync_mu_);
  uint64_t target, synced_before;
  bool dir_dirty;
  std::vector<std::pair<uint32_t, std::shared_ptr<File>>> dirty;
  std::vector<uint32_t> new_entries;
  {
    std::lock_guard<std::mutex> l(pack_mu_);
    target = append_seq_;
    synced_before = synced_seq_;
    dir_dirty = dir_dirty_;
    dir_dirty_ = false;
    for (auto& [id, p] : packs_) {
      if (p.dirty && p.file && !p.poisoned) {
        dirty.emplace_back(id, p.file);
        p.dirty = false;
      }
      if (p.new_entry && !p.poisoned) new_entries.push_back(id);
    }
    if (dirty.empty() && !dir_dirty) {
      synced_seq_ = target;
      *synced_seq = target;
      return Status::Ok();
    }
  }
  // Every pack is tried, so that one failing pack costs only its own records.
  Status first;
  std::vector<uint32_t> failed;
  for (auto& [id, f] : dirty) {
    Status st = f->Sync();
    if (st.ok()) continue;
    failed.push_back(id);
    if (first.ok()) first = st;
  }
  if (dir_dirty) {
    Status st = env_->SyncDir(dir_);
    if (!st.ok()) {
      // The names of the packs created since the last directory sync may not be durable.
      for (uint32_t id : new_entries) {
        if (std::find(failed.begin(), failed.end(), id) == failed.end()) failed.push_back(id);
      }
      if (first.ok()) first = st;
    }
  }
  // A failed fdatasync may already have dropped the dirty pages, so a later one that succeeds
  // would say nothing about them: the pack is never synced (or appended to) again, and its
  // unsynced records are lost. With them marked, every record up to `target` is durable or
  // lost, so synced_seq_ moves on in any case.
  if (!failed.empty()) Poison(failed, synced_before);
  std::lock_guard<std::mutex> l(pack_mu_);
  if (dir_dirty && first.ok()) {
    for (uint32_t id : new_entries) {
      if (auto it = packs_.find(id); it != packs_.end()) it->second.new_entry = false;
    }
  }
  if (!first.ok()) dir_dirty_ = dir_dirty_ || dir_dirty;  // deletions still to make durable
  synced_seq_ = std::max(synced_seq_, target);
  *synced_seq = synced_seq_;
  return first.Annotate("syncing packs");
}

void PackChunkStore::Poison(const std::vector<uint32_t>& pack_ids, uint64_t synced_before) {
  {
    std::lock_guard<std::mutex> l(pack_mu_);
    for (uint32_t id : pack_ids) {
      auto it = packs_.find(id);
      if (it == packs_.end()) continue;
      it->second.poisoned = true;
      it->second.dirty = false;
      if (active_pack_ == id) active_pack_ = 0;  // the next append starts a new pack
      Log(LogLevel::kError, "chunkstore",
          "pack " + std::to_string(id) +
              ": a sync failed; its unsynced chunks are written again elsewhere");
    }
  }
  auto poisoned = [&](uint32_t id) {
    return std::find(pack_ids.begin(), pack_ids.end(), id) != pack_ids.end();
  };
  for (Stripe& s : stripes_) {
    std::lock_guard<std::mutex> l(s.mu);
    for (auto it = s.pending.begin(); it != s.pending.end();) {
      Pending& p = it->second;
      if (p.lost || p.seq <= synced_before || !poisoned(p.location.pack_id)) {
        ++it;
        continue;
      }
      if (p.replaces) {
        // A healing copy: the chunk goes back to its indexed (damaged) copy with today's count,
        // so that references held by files on disk do not wait for a copy that never comes.
        // The chunk stays marked bad: the next Put heals it again.
        MetaStore::Batch b;
        b.PutChunk(it->first, ChunkRecord{*p.replaces, p.refcount, p.scope_uid});
        if (meta_->Write(b, /*sync=*/false).ok()) {
          {
            std::lock_guard<std::mutex> bl(bad_mu_);
            bad_.insert(it->first);
          }
          QueueRelease(p.location);
          it = s.pending.erase(it);
          continue;
        }
        p.index_unknown = true;  // the old copy's entry may or may not carry the new count
      }
      p.lost = true;
      ++lost_entries_;
      ++it;
    }
  }
}

}  // namespace rankfs
