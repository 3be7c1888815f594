// Gc's engine. See gc.h for what is compacted, in which order things are made durable, and why
// the PackChunkStore is never opened here.
#include "store/gc.h"

#include <algorithm>
#include <memory>

#include "store/env.h"
#include "store/meta_store.h"
#include "store/offline_store.h"
#include "store/pack_format.h"

namespace rankfs {
namespace {

constexpr size_t kWriteBufferBytes = 8u << 20;  // new-pack bytes gathered before one pwrite

// A new pack being written. Appends are gathered in memory and written in large pieces, so the
// offset of the next record (end()) is known before its bytes reach the file.
class PackWriter {
 public:
  PackWriter(Env* env, std::string path, uint32_t id)
      : env_(env), path_(std::move(path)), id_(id) {}

  Status Create(const std::array<uint8_t, 16>& uuid) {
    RANKFS_ASSIGN_OR_RETURN(file_, env_->OpenFile(path_, OpenMode::kCreateExclusive));
    PackFileHeader h;
    h.pack_id = id_;
    h.store_uuid = uuid;
    buf_ = EncodePackFileHeader(h);
    return Status::Ok();
  }
  uint32_t id() const { return id_; }
  uint64_t end() const { return written_ + buf_.size(); }

  Status Append(std::string_view record) {
    buf_.append(record);
    return buf_.size() >= kWriteBufferBytes ? WriteBuffer() : Status::Ok();
  }
  // Drops everything appended after `offset` (the records of a pack that turned out damaged).
  Status Rewind(uint64_t offset) {
    if (offset >= written_) {
      buf_.resize(offset - written_);
      return Status::Ok();
    }
    buf_.clear();
    written_ = offset;
    return file_->Truncate(offset);
  }
  // Writes what is buffered and fdatasyncs: after OK every appended byte survives a crash.
  Status Finish() {
    RANKFS_RETURN_IF_ERROR(WriteBuffer());
    return file_->Sync();
  }
  // Closes and deletes the file (best effort): it was never indexed.
  void Abandon() {
    file_.reset();
    env_->DeleteFile(path_).IgnoreError();
  }

 private:
  Status WriteBuffer() {
    if (buf_.empty()) return Status::Ok();
    RANKFS_RETURN_IF_ERROR(file_->PWrite(written_, buf_));
    written_ += buf_.size();
    buf_.clear();
    return Status::Ok();
  }

  Env* const env_;
  const std::string path_;
  const uint32_t id_;
  std::unique_ptr<File> file_;
  uint64_t written_ = 0;
  std::string buf_;
};

class Compactor {
 public:
  Compactor(std::string dir, const GcOptions& o) : dir_(std::move(dir)), options_(o) {}

  Result<GcReport> Run() {
    if (!(options_.threshold_percent >= 0 && options_.threshold_percent <= 100)) {
      return Status(EINVAL, "gc threshold must be between 0 and 100 percent");
    }
    report_.dry_run = options_.dry_run;
    RANKFS_ASSIGN_OR_RETURN(store_, OfflineStore::Open(dir_, options_));
    RANKFS_RETURN_IF_ERROR(store_->Load());
    env_ = store_->env();
    next_id_ = store_->max_pack_id() + 1;
    Plan();
    for (const std::vector<size_t>& group : groups_) RANKFS_RETURN_IF_ERROR(RunGroup(group));
    RANKFS_RETURN_IF_ERROR(store_->Close());
    return std::move(report_);
  }

 private:
  std::string PackPath(uint32_t id) const { return store_->PackPath(id); }
  std::string PacksDir() const { return store_->PacksDir(); }
  void Progress(uint64_t done) { store_->Progress("compacting packs", done, copy_total_); }

  // Picks the packs that pass the threshold and groups them into new packs of at most
  // max_pack_bytes (a pack is never split between two new packs).
  void Plan() {
    std::vector<size_t> group;
    uint64_t group_live = 0;
    for (const auto& [id, p] : store_->packs()) {
      if (!p.has_file) continue;  // only index entries name it: fsck's business, not gc's
      const uint64_t size = p.size;
      uint64_t live = 0;
      for (size_t i : p.chunks) live += store_->chunks()[i].rec.location.record_length;
      const uint64_t area = size > kPackHeaderSize ? size - kPackHeaderSize : 0;
      const uint64_t dead = area - std::min(area, live);
      ++report_.packs;
      report_.pack_bytes += size;
      report_.allocated_bytes += p.allocated;
      report_.live_bytes += live;
      const double pct = p.chunks.empty() ? 100.0
                         : area == 0      ? 0.0
                                          : 100.0 * double(dead) / double(area);
      const bool passes = p.chunks.empty() || (dead > 0 && pct >= options_.threshold_percent);
      if (!passes) continue;
      GcPack c;
      c.pack_id = id;
      c.file_bytes = size;
      c.allocated_bytes = p.allocated;
      c.live_bytes = live;
      c.live_chunks = p.chunks.size();
      c.dead_percent = pct;
      if (!group.empty() && group_live + live > options_.max_pack_bytes) {
        groups_.push_back(std::move(group));
        group.clear();
        group_live = 0;
      }
      group.push_back(report_.candidates.size());
      group_live += live;
      copy_total_ += live;
      report_.candidates.push_back(std::move(c));
    }
    if (!group.empty()) groups_.push_back(std::move(group));
  }

  // Copies the live records of `c` to `out`. Returns OK with c.skipped set when a record is
  // damaged or unreadable (out is rewound), and an error only when writing `out` fails.
  Status CopyPack(GcPack& c, PackWriter& out, MetaStore::Batch* batch) {
    const OfflinePack& pack = store_->packs().at(c.pack_id);
    const uint64_t start = out.end();
    Result<std::unique_ptr<File>> in = env_->OpenFile(PackPath(c.pack_id), OpenMode::kReadOnly);
    if (!in.ok()) {
      c.skipped = "cannot open it: " + in.status().ToString();
      return Status::Ok();
    }
    std::vector<std::pair<ChunkHash, ChunkRecord>> moved;
    std::string rec;
    for (size_t i : pack.chunks) {
      const IndexedChunk& chunk = store_->chunks()[i];
      const ChunkLocation& loc = chunk.rec.location;
      Result<std::string> damage = ReadIndexedRecord(in->get(), pack.size, chunk.hash, loc, &rec);
      if (!damage.ok()) {
        c.skipped = "chunk " + chunk.hash.ToHex() + ": " + damage.status().ToString();
        break;
      }
      if (!damage->empty()) {
        c.skipped = "chunk " + chunk.hash.ToHex() + " at offset " + std::to_string(loc.offset) +
                    " is damaged (" + *damage + "); run rankfs fsck";
        break;
      }
      ChunkRecord nr = chunk.rec;
      nr.location.pack_id = out.id();
      nr.location.offset = out.end();
      RANKFS_RETURN_IF_ERROR(out.Append(rec));
      moved.emplace_back(chunk.hash, nr);
      copied_ += loc.record_length;
      if (moved.size() % 256 == 0) Progress(copied_);
    }
    if (!c.skipped.empty()) {
      copied_ -= out.end() - start;
      return out.Rewind(start);
    }
    for (const auto& [h, r] : moved) batch->PutChunk(h, r);
    c.compacted = true;
    c.new_pack_id = out.id();
    report_.chunks_moved += moved.size();
    Progress(copied_);
    return Status::Ok();
  }

  // Rewrites one group of packs into one new pack; see gc.h for the order of the steps.
  Status RunGroup(const std::vector<size_t>& group) {
    uint64_t live = 0;
    for (size_t i : group) live += report_.candidates[i].live_bytes;
    if (options_.dry_run) {
      const uint32_t id = live > 0 ? next_id_++ : 0;
      for (size_t i : group) {
        GcPack& c = report_.candidates[i];
        c.compacted = true;
        c.new_pack_id = c.live_chunks > 0 ? id : 0;
        report_.chunks_moved += c.live_chunks;
        Account(c);
      }
      if (id != 0) {
        report_.new_packs.push_back(GcNewPack{id, kPackHeaderSize + live, 0});
        report_.bytes_after += kPackHeaderSize + live;
        for (size_t i : group) report_.new_packs.back().chunks += report_.candidates[i].live_chunks;
      }
      return Status::Ok();
    }

    MetaStore::Batch batch;
    std::unique_ptr<PackWriter> out;
    auto abandon = [&](Status s) {
      if (out) out->Abandon();
      return s;
    };
    uint64_t new_chunks = 0;
    for (size_t i : group) {
      GcPack& c = report_.candidates[i];
      if (c.live_chunks == 0) {
        c.compacted = true;
        continue;
      }
      if (!out) {
        const uint32_t id = next_id_++;
        out = std::make_unique<PackWriter>(env_, PackPath(id), id);
        if (Status s = out->Create(store_->meta()->super().uuid); !s.ok()) {
          out.reset();  // not created: nothing to delete
          return s.Annotate("gc: creating pack " + std::to_string(id));
        }
      }
      if (Status s = CopyPack(c, *out, &batch); !s.ok()) {
        return abandon(s.Annotate("gc: writing pack " + std::to_string(out->id())));
      }
      if (c.compacted) new_chunks += c.live_chunks;
    }
    // 1. The new pack's bytes and its name are durable before any index entry names them.
    bool created = false;
    if (out && new_chunks == 0) {
      out->Abandon();
    } else if (out) {
      if (Status s = out->Finish(); !s.ok()) return abandon(s.Annotate("gc: syncing new pack"));
      created = true;
    }
    if (Status s = env_->SyncDir(PacksDir()); !s.ok()) {
      return created ? abandon(s.Annotate("gc: syncing the packs directory")) : s;
    }
    std::vector<uint32_t> old;
    for (size_t i : group) {
      GcPack& c = report_.candidates[i];
      if (!c.compacted) continue;
      old.push_back(c.pack_id);
      batch.DeletePack(c.pack_id);
    }
    if (old.empty()) return Status::Ok();
    if (created) {
      batch.PutPack(out->id(), PackStats{out->end() - kPackHeaderSize, 0});
    }
    // 2. The index moves, atomically and durably. If this fails the outcome is unknown (the
    // batch may be in the log), so neither the new pack nor the old ones may go.
    RANKFS_RETURN_IF_ERROR(
        store_->meta()->Write(batch, /*sync=*/true).Annotate("gc: updating the index"));
    if (created) {
      report_.new_packs.push_back(GcNewPack{out->id(), out->end(), new_chunks});
      report_.bytes_after += out->end();
    }
    // 3. Only now do the old packs go; a crash in between leaves them as orphan packs.
    for (uint32_t id : old) {
      Account(*std::find_if(report_.candidates.begin(), report_.candidates.end(),
                            [&](const GcPack& c) { return c.pack_id == id; }));
      RANKFS_RETURN_IF_ERROR(env_->DeleteFile(PackPath(id))
                                 .Annotate("gc: pack " + std::to_string(id) +
                                           " was compacted but not deleted (the next mount or gc "
                                           "deletes it)"));
    }
    return env_->SyncDir(PacksDir()).Annotate("gc: syncing the packs directory");
  }

  void Account(const GcPack& c) {
    report_.bytes_before += c.file_bytes;
    report_.allocated_before += c.allocated_bytes;
  }

  const std::string dir_;
  const GcOptions options_;
  GcReport report_;
  std::unique_ptr<OfflineStore> store_;
  Env* env_ = nullptr;                       // the store's
  std::vector<std::vector<size_t>> groups_;  // candidates (indices) sharing one new pack
  uint32_t next_id_ = 1;
  uint64_t copy_total_ = 0;  // live bytes of all candidates
  uint64_t copied_ = 0;
};

}  // namespace

size_t GcReport::Compacted() const {
  return size_t(std::count_if(candidates.begin(), candidates.end(),
                              [](const GcPack& c) { return c.compacted; }));
}

size_t GcReport::Skipped() const { return candidates.size() - Compacted(); }

Result<GcReport> Gc(const std::string& store_dir, const GcOptions& options) {
  Compactor c(store_dir, options);
  return c.Run();
}

}  // namespace rankfs
