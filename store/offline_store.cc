#include "store/offline_store.h"

#include <algorithm>

#include "store/crc32c.h"
#include "store/pack_format.h"

namespace rankfs {

OfflineStore::OfflineStore(std::string dir, const OfflineOptions& options)
    : dir_(std::move(dir)),
      env_(options.env ? options.env : Env::Default()),
      progress_(options.progress) {}

OfflineStore::~OfflineStore() {
  if (meta_) meta_->Close().IgnoreError();
}

Result<std::unique_ptr<OfflineStore>> OfflineStore::Open(const std::string& dir,
                                                         const OfflineOptions& options) {
  std::unique_ptr<OfflineStore> store(new OfflineStore(dir, options));
  Env* env = store->env_;
  Result<FileInfo> info = env->Stat(dir);
  if (!info.ok()) return info.status().Annotate("store " + dir);
  if (!info->is_dir) return Status(ENOTDIR, "store " + dir + " is not a directory");
  if (!env->Stat(dir + "/meta/CURRENT").ok()) {
    return Status(ENOENT, dir + " holds no rankfs store (no meta/ database)");
  }
  Result<std::unique_ptr<FileLock>> lock = env->LockFile(dir + "/LOCK");
  if (!lock.ok()) {
    if (lock.status().code() == EBUSY) {
      return Status(EBUSY,
                    "store " + dir + " is in use by a rankfs daemon (mounted?); unmount it first");
    }
    return lock.status().Annotate("locking store " + dir);
  }
  store->lock_ = std::move(lock).value();
  MetaStoreOptions mo;
  mo.create_if_missing = false;
  mo.rocks_env = options.rocks_env;
  Result<std::unique_ptr<MetaStore>> meta = MetaStore::Open(dir + "/meta", mo, Superblock());
  if (!meta.ok()) return meta.status().Annotate("store " + dir);
  store->meta_ = std::move(meta).value();
  return store;
}

std::string OfflineStore::PackPath(uint32_t pack_id) const {
  return PacksDir() + "/" + PackFileName(pack_id);
}

Status OfflineStore::Load() {
  Result<std::vector<std::string>> names = env_->ListDir(PacksDir());
  if (!names.ok() && names.status().code() != ENOENT) return names.status();
  if (names.ok()) {
    for (const std::string& name : *names) {
      uint32_t id;
      if (!ParsePackFileName(name, &id)) continue;
      Result<FileInfo> fi = env_->Stat(PackPath(id));
      if (!fi.ok()) return fi.status().Annotate("store " + dir_);
      OfflinePack& p = packs_[id];
      p.has_file = true;
      p.size = fi->size;
      p.allocated = fi->allocated_bytes;
    }
  }
  RANKFS_RETURN_IF_ERROR(meta_->ForEachChunk([&](const ChunkHash& h, const ChunkRecord& r) {
    chunks_.push_back(IndexedChunk{h, r});
    return true;
  }));
  std::sort(chunks_.begin(), chunks_.end(),
            [](const IndexedChunk& a, const IndexedChunk& b) { return a.hash < b.hash; });
  for (size_t i = 0; i < chunks_.size(); ++i) {
    packs_[chunks_[i].rec.location.pack_id].chunks.push_back(i);
  }
  for (auto& [id, pack] : packs_) {
    std::sort(pack.chunks.begin(), pack.chunks.end(), [&](size_t a, size_t b) {
      return chunks_[a].rec.location.offset < chunks_[b].rec.location.offset;
    });
  }
  return Status::Ok();
}

size_t OfflineStore::Find(const ChunkHash& hash) const {
  auto it = std::lower_bound(chunks_.begin(), chunks_.end(), hash,
                             [](const IndexedChunk& e, const ChunkHash& k) { return e.hash < k; });
  return it != chunks_.end() && it->hash == hash ? size_t(it - chunks_.begin()) : kNoChunk;
}

void OfflineStore::Progress(std::string_view phase, uint64_t done, uint64_t total) const {
  if (progress_) progress_(phase, done, total);
}

Status OfflineStore::Close() {
  if (!meta_) return Status::Ok();
  Status s = meta_->Close();
  meta_.reset();
  return s;
}

Result<std::string> ReadIndexedRecord(File* pack, uint64_t pack_size, const ChunkHash& hash,
                                      const ChunkLocation& loc, std::string* record) {
  if (loc.record_length != kRecordHeaderSize + uint64_t(loc.stored_length)) {
    return "index entry is inconsistent (record length " + std::to_string(loc.record_length) +
           ", stored length " + std::to_string(loc.stored_length) + ")";
  }
  if (loc.offset + loc.record_length > pack_size) {
    return "record runs past the end of the pack (" + std::to_string(pack_size) + " bytes)";
  }
  record->resize(loc.record_length);
  size_t got = 0;
  RANKFS_RETURN_IF_ERROR(pack->PRead(loc.offset, record->size(), record->data(), &got));
  if (got != record->size()) return std::string("record cut short");
  Result<RecordHeader> h = DecodeRecordHeader(*record);
  if (!h.ok()) return "no valid record header there: " + h.status().message();
  if (h->hash != hash || h->stored_length != loc.stored_length || h->raw_length != loc.raw_length ||
      h->codec != loc.codec || h->stored_crc != loc.stored_crc) {
    return std::string("record header does not match the index entry");
  }
  if (Crc32c(record->data() + kRecordHeaderSize, h->stored_length) != h->stored_crc) {
    return std::string("stored bytes fail their CRC32C");
  }
  return std::string();
}

}  // namespace rankfs
