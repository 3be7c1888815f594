// PackChunkStore: opening a store after a clean or unclean stop.
#include <algorithm>

#include "store/logging.h"
#include "store/pack_chunk_store.h"
#include "store/pack_format.h"

namespace rankfs {
namespace {

constexpr uint64_t kBlock = 4096;  // hole punching frees whole blocks only
uint64_t RoundUp(uint64_t v) { return (v + kBlock - 1) / kBlock * kBlock; }
uint64_t RoundDown(uint64_t v) { return v / kBlock * kBlock; }

std::string LocationString(const ChunkLocation& loc) {
  return "pack " + std::to_string(loc.pack_id) + " offset " + std::to_string(loc.offset);
}

}  // namespace

// Rebuilds the in-memory pack table from the chunk index, the only authority on which chunks
// exist. Pack bytes that no index entry covers were appended before a crash and never
// committed: they are released now (a read-only store leaves them, and says so).
Status PackChunkStore::Recover() {
  Result<std::vector<std::string>> listed = env_->ListDir(dir_);
  if (!listed.ok() && !(options_.read_only && listed.status().code() == ENOENT)) {
    return listed.status();
  }
  std::map<uint32_t, std::vector<std::pair<uint64_t, uint64_t>>> live;  // id -> [start, end)
  for (const std::string& name : listed.ok() ? *listed : std::vector<std::string>()) {
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
  uint64_t left_bytes = 0;  // read-only: what a read-write open would release
  size_t left_packs = 0;
  for (auto& [id, ranges] : live) {
    next_pack_id_ = std::max(next_pack_id_, id + 1);
    if (ranges.empty()) {
      if (options_.read_only) {
        ++left_packs;
        continue;
      }
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
    if (options_.read_only) {
      for (auto [start, end] : p.dead) left_bytes += end - start;
      continue;
    }
    RANKFS_ASSIGN_OR_RETURN(auto file, env_->OpenFile(PackPath(id), OpenMode::kReadWrite));
    for (auto [start, end] : p.dead) {
      uint64_t a = RoundUp(start), b = RoundDown(end);
      if (a < b) RANKFS_RETURN_IF_ERROR(file->PunchHole(a, b - a));
    }
    p.file = std::move(file);
    ++open_files_;
  }
  if (options_.read_only && (left_packs > 0 || left_bytes > 0)) {
    Log(LogLevel::kInfo, "chunkstore",
        "read-only: recovery skipped; " + std::to_string(left_packs) + " packs and " +
            std::to_string(left_bytes) +
            " bytes that no chunk uses stay until the store is opened read-write");
  }
  return Status::Ok();
}

}  // namespace rankfs
