#include "bench/space_layout.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <random>
#include <unordered_map>

#include "store/meta_codec.h"
#include "store/types.h"

namespace rankfs {

size_t Compressed(ZSTD_CCtx* cctx, std::string_view in, int level, const ZSTD_CDict* dict) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  if (dict != nullptr) ZSTD_CCtx_refCDict(cctx, dict);
  const size_t n = ZSTD_compress2(cctx, out.data(), out.size(), in.data(), in.size());
  if (ZSTD_isError(n)) {
    std::fprintf(stderr, "zstd: %s\n", ZSTD_getErrorName(n));
    std::exit(1);
  }
  return std::min(n, in.size());
}

namespace {

// `in` compressed against `prefix`, then decoded and compared (exit 1 on a mismatch).
size_t DeltaCompressed(ZSTD_CCtx* cctx, std::string_view in, std::string_view prefix, int level) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  size_t n = ZSTD_CCtx_refPrefix(cctx, prefix.data(), prefix.size());
  if (!ZSTD_isError(n)) n = ZSTD_compress2(cctx, out.data(), out.size(), in.data(), in.size());
  std::string back(in.size() + 1, '\0');
  size_t r = n;
  if (!ZSTD_isError(n)) {
    ZSTD_DCtx* d = ZSTD_createDCtx();
    r = ZSTD_DCtx_refPrefix(d, prefix.data(), prefix.size());
    if (!ZSTD_isError(r)) r = ZSTD_decompressDCtx(d, back.data(), back.size(), out.data(), n);
    ZSTD_freeDCtx(d);
  }
  if (ZSTD_isError(r) || r != in.size() || std::memcmp(back.data(), in.data(), r) != 0) {
    std::fprintf(stderr, "space_levers: delta frame does not decode to its pieces: %s\n",
                 ZSTD_isError(r) ? ZSTD_getErrorName(r) : "bytes differ");
    std::exit(1);
  }
  return std::min(n, in.size());
}

}  // namespace

Pieces Dedup(const std::vector<File>& files, std::vector<std::vector<size_t>> lengths) {
  Pieces p;
  p.lengths = std::move(lengths);
  std::unordered_map<ChunkHash, uint32_t, ChunkHashHasher> index;
  p.unique_of.assign(files.size(), {});
  for (size_t f = 0; f < files.size(); ++f) {
    size_t off = 0;
    for (size_t len : p.lengths[f]) {
      std::string_view piece(files[f].bytes.data() + off, len);
      auto [it, added] = index.emplace(ChunkHash::Of(piece), uint32_t(p.unique.size()));
      if (added) p.unique.push_back(piece);
      p.unique_of[f].push_back(it->second);
      off += len;
    }
  }
  return p;
}

Layout Build(const std::string& name, const Pieces& p, const Packing& k, ZSTD_CCtx* cctx) {
  Layout l;
  l.name = name;
  l.per_piece = k.frame == 0;
  l.lengths = p.lengths;
  const size_t n = p.unique.size();
  std::vector<uint32_t> unit(n), offset(n, 0);
  auto is_delta = [&](size_t i) { return k.deltas != nullptr && (*k.deltas)[i].is_delta; };
  auto add_unit = [&](size_t raw, size_t stored) {
    l.unit_bytes.push_back(uint32_t(raw));
    l.unit_stored.push_back(uint32_t(stored));
    l.stored += stored;
    return uint32_t(l.unit_bytes.size() - 1);
  };
  std::string buf;
  auto close = [&] {
    if (!buf.empty()) add_unit(buf.size(), Compressed(cctx, buf, k.level, k.dict));
    buf.clear();
  };
  for (size_t i = 0; i < n; ++i) {
    if (is_delta(i)) continue;
    if (k.frame == 0) {
      unit[i] = add_unit(p.unique[i].size(), Compressed(cctx, p.unique[i], k.level, k.dict));
      continue;
    }
    if (!buf.empty() && buf.size() + p.unique[i].size() > k.frame) close();
    unit[i] = uint32_t(l.unit_bytes.size());
    offset[i] = uint32_t(buf.size());
    buf.append(p.unique[i]);
    ++l.piece_index;
  }
  close();
  l.bases_of.assign(l.unit_bytes.size(), {});
  // Bases precede their deltas and are never deltas: all are placed by now.
  std::vector<uint32_t> members;  // of the delta frame being filled
  auto close_deltas = [&] {
    if (members.empty()) return;
    std::string raw, prefix;
    std::vector<uint32_t> bases, base_units;
    for (uint32_t i : members) {
      const uint32_t b = (*k.deltas)[i].base;
      if (std::find(bases.begin(), bases.end(), b) == bases.end()) {
        bases.push_back(b);
        prefix.append(p.unique[b]);
      }
      if (std::find(base_units.begin(), base_units.end(), unit[b]) == base_units.end()) {
        base_units.push_back(unit[b]);
      }
      raw.append(p.unique[i]);
    }
    const size_t stored = DeltaCompressed(cctx, raw, prefix, k.level);
    const uint32_t u = add_unit(raw.size(), stored);
    for (size_t j = 0, off = 0; j < members.size(); off += p.unique[members[j]].size(), ++j) {
      unit[members[j]] = u;
      offset[members[j]] = uint32_t(off);
    }
    l.bases_of.push_back(base_units);
    l.base_refs += bases.size();
    l.piece_index += members.size();  // each piece's hash -> its slice of the delta frame
    ++l.deltas;
    members.clear();
  };
  for (size_t i = 0; i < n; ++i) {
    if (!is_delta(i)) continue;
    const uint32_t b = (*k.deltas)[i].base;
    if (k.delta_frame == 0) {
      unit[i] = add_unit(p.unique[i].size(), (*k.deltas)[i].delta_size);
      l.bases_of.push_back({unit[b]});
      ++l.base_refs;
      ++l.deltas;
      continue;
    }
    size_t raw = 0;
    for (uint32_t m : members) raw += p.unique[m].size();
    if (!members.empty() && raw + p.unique[i].size() > k.delta_frame) close_deltas();
    members.push_back(uint32_t(i));
  }
  close_deltas();
  l.unique = l.unit_bytes.size();
  l.stored += k.dict_bytes;
  l.dict_bytes = k.dict_bytes;
  l.unit_of = p.unique_of;
  l.offset_in_unit = p.unique_of;
  for (size_t f = 0; f < l.unit_of.size(); ++f) {
    for (size_t j = 0; j < l.unit_of[f].size(); ++j) {
      const uint32_t u = p.unique_of[f][j];
      l.unit_of[f][j] = unit[u];
      l.offset_in_unit[f][j] = offset[u];
    }
  }
  return l;
}

MetaBytes Metadata(const Layout& l) {
  MetaBytes m;
  ChunkRecord rec;
  rec.location.pack_id = 1;
  rec.refcount = 1;
  ChunkHash h;
  for (size_t u = 0; u < l.unit_bytes.size(); ++u) {
    rec.location.raw_length = l.unit_bytes[u];
    rec.location.stored_length = l.unit_stored[u];
    rec.location.record_length = l.unit_stored[u] + uint32_t(kRecordHeader);
    rec.location.codec = Codec::kZstd;
    m.index += ChunkKey(h).size() + EncodeChunkRecord(rec).size();
  }
  m.index += l.base_refs * sizeof h.bytes;  // a delta unit names its base pieces
  // A piece inside a frame: its hash -> the frame and the slice (a chunk record's fields).
  m.index += l.piece_index * (ChunkKey(h).size() + EncodeChunkRecord(rec).size());
  for (size_t f = 0; f < l.lengths.size(); ++f) {
    const std::vector<size_t>& len = l.lengths[f];
    uint64_t file_off = 0;
    for (size_t j = 0; j < len.size();) {
      Extent e;
      e.chunk_offset = l.offset_in_unit[f][j];
      e.length = len[j];
      size_t k = j + 1;
      while (k < len.size() && l.unit_of[f][k] == l.unit_of[f][j] &&
             l.offset_in_unit[f][k] == l.offset_in_unit[f][k - 1] + len[k - 1]) {
        e.length += len[k++];
      }
      m.extents += ExtentKey(Ino(f + 2), file_off).size() + EncodeExtent(e).size();
      ++m.extent_count;
      file_off += e.length;
      j = k;
    }
  }
  return m;
}

ReadCost CostOfReads(const std::vector<File>& files, const Layout& l, size_t only_file) {
  ReadCost c;
  uint64_t blocks = 0, total = 0, over = 0, unit_bytes = 0, extra = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    if (only_file != SIZE_MAX && f != only_file) continue;
    const std::vector<size_t>& len = l.lengths[f];
    size_t piece = 0, piece_start = 0;
    for (size_t b = 0; b < files[f].bytes.size(); b += kReadSize) {
      const size_t end = std::min(b + kReadSize, files[f].bytes.size());
      while (piece_start + len[piece] <= b) piece_start += len[piece++];
      std::vector<uint32_t> units;
      for (size_t p = piece, s = piece_start; p < len.size() && s < end; s += len[p++]) {
        units.push_back(l.unit_of[f][p]);
      }
      std::sort(units.begin(), units.end());
      const size_t own = size_t(std::unique(units.begin(), units.end()) - units.begin());
      units.resize(own);
      for (size_t i = 0; i < own; ++i) {
        for (uint32_t b : l.bases_of[units[i]]) units.push_back(b);
      }
      std::sort(units.begin(), units.end());
      const size_t n = size_t(std::unique(units.begin(), units.end()) - units.begin());
      for (size_t i = 0; i < n; ++i) unit_bytes += l.unit_bytes[units[i]];
      ++blocks;
      total += n;
      extra += n - own;
      if (n > 2) ++over;
      c.max = std::max(c.max, n);
    }
  }
  if (blocks > 0) {
    c.mean = double(total) / double(blocks);
    c.extra = double(extra) / double(blocks);
    c.above_two = double(over) / double(blocks);
    c.kib_decompressed = double(unit_bytes) / double(blocks) / 1024.0;
  }
  return c;
}

double CachedReadKiB(const File& file, const Layout& l, size_t f, size_t reads,
                     uint64_t cache_bytes) {
  const std::vector<size_t>& len = l.lengths[f];
  std::vector<uint64_t> start(len.size() + 1, 0);
  for (size_t i = 0; i < len.size(); ++i) start[i + 1] = start[i] + len[i];
  const size_t blocks = (file.bytes.size() + kReadSize - 1) / kReadSize;
  if (blocks == 0) return 0;
  std::list<uint32_t> lru;  // front: most recently used
  std::unordered_map<uint32_t, std::list<uint32_t>::iterator> where;
  uint64_t held = 0, decompressed = 0;
  std::mt19937_64 rng(1);
  for (size_t r = 0; r < reads; ++r) {
    const uint64_t b = (rng() % blocks) * kReadSize;
    const uint64_t e = std::min<uint64_t>(b + kReadSize, file.bytes.size());
    size_t p = size_t(std::upper_bound(start.begin(), start.end(), b) - start.begin()) - 1;
    for (; p < len.size() && start[p] < e; ++p) {
      // A delta not in the cache needs its base (from the cache or decompressed) first.
      const uint32_t u = l.unit_of[f][p];
      std::vector<uint32_t> need;
      if (where.count(u) == 0) need = l.bases_of[u];
      need.push_back(u);
      for (uint32_t v : need) {
        auto it = where.find(v);
        if (it != where.end()) {
          lru.splice(lru.begin(), lru, it->second);
          continue;
        }
        decompressed += l.unit_bytes[v];
        held += l.unit_bytes[v];
        lru.push_front(v);
        where[v] = lru.begin();
        while (held > cache_bytes && lru.size() > 1) {
          held -= l.unit_bytes[lru.back()];
          where.erase(lru.back());
          lru.pop_back();
        }
      }
    }
  }
  return double(decompressed) / double(reads) / 1024.0;
}

}  // namespace rankfs
