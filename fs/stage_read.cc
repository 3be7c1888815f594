// FsCore's read of a stored range for the GPU staging path (FsCore::StageRead). The same bytes
// as ReadLocked, got with less work: each distinct chunk of the range is read once however
// often its extents repeat; holes are zeroed without a read; the chunks missing from the
// cache are read with one ChunkStore::GetMany (adjacent records of a pack in one read); a
// chunk that the range holds whole is decompressed straight into the caller's buffer, and
// cached only when other references hold it too and another staging client is connected (or
// a reader waits for it), so that a lone client pays no copy into the cache and does not evict
// what the FUSE readers use, while ranks staging copies still share each chunk.
//
// Sharing with concurrent readers goes through the cache's loads (fs/chunk_cache.h): a chunk
// this read claims is waited for by others rather than read twice, and copied into the cache
// only when someone does wait for it. Claims are taken without waiting, so two readers that
// claimed chunks of each other's ranges never wait on each other; chunks another reader is
// loading are waited for after this read's own claims are published.
#include <cstring>
#include <unordered_map>

#include "fs/fs_core.h"
#include "fs/fs_core_impl.h"

namespace rankfs {
namespace {

// One extent's part of the range: file bytes [s, t) are chunk bytes [in_chunk, in_chunk+t-s).
struct Use {
  uint64_t s, t, in_chunk;
  size_t chunk;  // index into the request's distinct chunks
};

// A distinct chunk of the request and where its bytes are.
struct Chunk {
  ChunkHash hash;
  ChunkCache::Lookup lookup = ChunkCache::Lookup::kBusy;
  ChunkCache::Value value;  // from the cache (hit, or waited for)
  std::string bytes;        // read for this request, not cached in place
  int direct_use = -1;      // the use the store decompressed straight into dst, if any
  Status status;
  size_t first_use = 0;
};

}  // namespace

Status FsCore::Impl::StageStoredLocked(Inode* inode, uint64_t offset, uint64_t end,
                                       char* dst) {
  const Ino ino = inode->attr.ino;
  std::vector<Use> uses;
  std::vector<Chunk> chunks;
  std::unordered_map<ChunkHash, size_t, ChunkHashHasher> index;
  uint64_t at = offset;  // dst is zeroed or covered by a use up to here
  bool overlap = false;
  RANKFS_RETURN_IF_ERROR(meta_->ListExtents(ino, offset, end, [&](uint64_t off, const Extent& e) {
    const uint64_t s = std::max(off, offset), t = std::min(off + e.length, end);
    if (s >= t || e.unwritten) return true;  // an unwritten extent reads as a hole
    if (s < at) {  // extents never overlap; if they did, ReadLocked's copies would decide
      overlap = true;
      return false;
    }
    if (s > at) std::memset(dst + (at - offset), 0, s - at);  // a hole
    at = t;
    auto [it, added] = index.emplace(e.chunk, chunks.size());
    if (added) chunks.push_back(Chunk{e.chunk, {}, {}, {}, -1, {}, uses.size()});
    uses.push_back({s, t, e.chunk_offset + (s - off), it->second});
    return true;
  }));
  if (overlap) {
    return ReadLocked(inode, offset, end - offset, dst).status();
  }
  if (end > at) std::memset(dst + (at - offset), 0, end - at);

  // What the cache has, and claims on what it lacks.
  std::vector<ChunkRead> reads;
  std::vector<size_t> claimed;  // chunk index of each read
  for (size_t i = 0; i < chunks.size(); ++i) {
    Chunk& c = chunks[i];
    c.lookup = cache_.TryClaim(c.hash, &c.value);
    if (c.lookup != ChunkCache::Lookup::kClaimed) continue;
    ChunkRead r;
    r.hash = c.hash;
    r.out = &c.bytes;
    // Straight into dst if the chunk's first use holds it whole; the store checks the length.
    const Use& u = uses[c.first_use];
    if (u.in_chunk == 0) {
      r.direct = dst + (u.s - offset);
      r.direct_len = size_t(u.t - u.s);
    }
    reads.push_back(std::move(r));
    claimed.push_back(i);
  }
  // Every claim is published, whatever happens: others wait for it.
  struct ClaimGuard {
    ChunkCache* cache;
    const std::vector<ChunkRead>& reads;
    size_t published = 0;
    ~ClaimGuard() {
      for (; published < reads.size(); ++published) {
        cache->Publish(reads[published].hash, Status(EIO, "the read that claimed it failed"), {},
                       false);
      }
    }
  } guard{&cache_, reads};
  GetManyStats got;
  if (!reads.empty()) chunks_->GetMany(reads, &got);
  // Read once, so that every chunk of this request follows the same rule.
  const bool others_staging = stage_.clients.load(std::memory_order_relaxed) > 1;
  for (size_t k = 0; k < reads.size(); ++k, guard.published = k) {
    Chunk& c = chunks[claimed[k]];
    ChunkRead& r = reads[k];
    c.status = r.status;
    if (r.wrote_direct) {
      c.direct_use = int(c.first_use);
      // A chunk only this place of this file holds is not cached: staging a large file then
      // leaves the cache to the FUSE readers. A shared one is while another staging client is
      // connected (four ranks staging four copies decompress each chunk once, a rank that
      // lags behind the others included). A lone client's copy into the cache was a fifth of
      // its CPU and served no one (docs/gpu.md, "Reads"); readers that wait for the chunk
      // meanwhile still get it (Publish keeps it for them).
      cache_.Publish(c.hash, r.status, std::string_view(r.direct, r.direct_len),
                     /*keep=*/r.shared && others_staging);
    } else {
      // Only part of it is wanted here: the rest is likely wanted next, so it is cached.
      cache_.Publish(c.hash, r.status, c.bytes, /*keep=*/true);
    }
  }
  // Chunks that other readers were loading, waited for now that this read holds no claim.
  for (Chunk& c : chunks) {
    if (c.lookup != ChunkCache::Lookup::kBusy) continue;
    Result<ChunkCache::Value> v = cache_.Get(c.hash);
    if (v.ok()) c.value = std::move(v).value();
    else c.status = v.status();
  }
  stage_.chunk_reads.fetch_add(got.decompressions, std::memory_order_relaxed);
  stage_.preads.fetch_add(got.reads, std::memory_order_relaxed);
  size_t hits = 0, direct = 0;
  for (const Chunk& c : chunks) {
    hits += c.lookup == ChunkCache::Lookup::kHit;
    direct += c.direct_use >= 0;
  }
  stage_.cache_hits.fetch_add(hits, std::memory_order_relaxed);
  stage_.direct_chunks.fetch_add(direct, std::memory_order_relaxed);
  stage_.repeat_uses.fetch_add(uses.size() - chunks.size(), std::memory_order_relaxed);

  // Every chunk was read (so the store knows each damaged one, and a write of the same
  // content heals them all); the first error in file order is the answer.
  for (const Use& u : uses) {
    const Chunk& c = chunks[u.chunk];
    if (!c.status.ok()) {
      return Status(c.status).Annotate("reading inode " + std::to_string(ino) + " at offset " +
                                       std::to_string(u.s));
    }
  }
  for (size_t i = 0; i < uses.size(); ++i) {
    const Use& u = uses[i];
    const Chunk& c = chunks[u.chunk];
    if (c.direct_use == int(i)) continue;  // already in place
    std::string_view bytes;
    if (c.value != nullptr) {
      bytes = *c.value;
    } else if (c.direct_use >= 0) {
      const Use& d = uses[size_t(c.direct_use)];
      bytes = std::string_view(dst + (d.s - offset), d.t - d.s);
    } else {
      bytes = c.bytes;
    }
    if (u.in_chunk + (u.t - u.s) > bytes.size()) {
      return Status(EIO, "extent of inode " + std::to_string(ino) + " reaches past its chunk");
    }
    std::memcpy(dst + (u.s - offset), bytes.data() + u.in_chunk, u.t - u.s);
  }
  return Status::Ok();
}

}  // namespace rankfs
