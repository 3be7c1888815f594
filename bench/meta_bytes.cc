#include "bench/meta_bytes.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>

#include "store/coding.h"
#include "store/meta_codec.h"
#include "store/meta_options.h"
#include "store/pack_options.h"
#include "store/types.h"

namespace rankfs {
namespace {

// store/pack_format.h (which cannot be included beside bench/space_layout.h's File): a pack
// starts with a 32-byte header; each record's 56-byte header is kRecordHeader.
constexpr uint64_t kPackHeader = 32;

constexpr char kLeanVersion = 1;  // a lean value starts with its encoding version, as today's

// Where each frame's record would lie in the packs, and what each unique piece refers to.
struct Frames {
  std::vector<ChunkLocation> at;  // per frame
  std::vector<ChunkHash> hash;    // per frame: stands in for its content hash (uniform bytes)
  std::vector<uint64_t> pieces;   // per frame: unique pieces inside
  std::vector<ChunkHash> piece_hash;
  std::vector<uint32_t> piece_frame, piece_offset, piece_length;
  std::vector<uint64_t> piece_refs;  // occurrences of each unique piece in the files
};

Frames Place(const Pieces& p, const Layout& l) {
  Frames fr;
  const size_t n = l.unit_bytes.size();
  std::mt19937 rng(26);  // CRC32C of the stored bytes: as uniform as these
  uint32_t pack = 1;
  uint64_t offset = kPackHeader;
  const uint64_t max_pack = PackChunkStoreOptions().max_pack_bytes;
  for (size_t u = 0; u < n; ++u) {
    ChunkLocation c;
    c.raw_length = l.unit_bytes[u];
    c.stored_length = l.unit_stored[u];
    c.record_length = c.stored_length + uint32_t(kRecordHeader);
    c.codec = c.stored_length < c.raw_length ? Codec::kZstd : Codec::kRaw;
    c.stored_crc = uint32_t(rng());
    if (offset + c.record_length > max_pack) {
      ++pack;
      offset = kPackHeader;
    }
    c.pack_id = pack;
    c.offset = offset;
    offset += c.record_length;
    fr.at.push_back(c);
    const uint64_t index = u;
    fr.hash.push_back(ChunkHash::Of({reinterpret_cast<const char*>(&index), sizeof index}));
  }
  fr.pieces.assign(n, 0);
  const size_t pieces = p.unique.size();
  fr.piece_frame.assign(pieces, UINT32_MAX);
  fr.piece_offset.assign(pieces, 0);
  fr.piece_length.assign(pieces, 0);
  fr.piece_refs.assign(pieces, 0);
  for (size_t f = 0; f < p.unique_of.size(); ++f) {
    for (size_t j = 0; j < p.unique_of[f].size(); ++j) {
      const uint32_t u = p.unique_of[f][j];
      if (fr.piece_refs[u]++ > 0) continue;
      fr.piece_frame[u] = l.unit_of[f][j];
      fr.piece_offset[u] = l.offset_in_unit[f][j];
      fr.piece_length[u] = uint32_t(p.lengths[f][j]);
      ++fr.pieces[l.unit_of[f][j]];
    }
  }
  for (std::string_view piece : p.unique) fr.piece_hash.push_back(ChunkHash::Of(piece));
  return fr;
}

// A run: consecutive pieces of file f, [j, k), lying consecutively in one frame.
template <typename Fn>
void ForEachRun(const Layout& l, const Fn& fn) {
  for (size_t f = 0; f < l.lengths.size(); ++f) {
    const std::vector<size_t>& len = l.lengths[f];
    uint64_t file_off = 0;
    for (size_t j = 0; j < len.size();) {
      uint64_t run = len[j];
      size_t k = j + 1;
      while (k < len.size() && l.unit_of[f][k] == l.unit_of[f][j] &&
             l.offset_in_unit[f][k] == l.offset_in_unit[f][k - 1] + len[k - 1]) {
        run += len[k++];
      }
      fn(f, file_off, run, l.unit_of[f][j], l.offset_in_unit[f][j]);
      file_off += run;
      j = k;
    }
  }
}

std::string FrameIdKey(uint64_t frame) {
  std::string k;
  PutFixed64BE(&k, frame + 1);  // ids start at 1
  return k;
}

// Today's chunk record for a frame, and for a piece: its frame's location with the piece's
// length as raw length, then the slice offset the record lacks (4 bytes).
std::string TodayPiece(const Frames& fr, size_t u) {
  ChunkRecord r;
  r.location = fr.at[fr.piece_frame[u]];
  r.location.raw_length = fr.piece_length[u];
  r.refcount = fr.piece_refs[u];
  std::string v = EncodeChunkRecord(r);
  PutFixed32LE(&v, fr.piece_offset[u]);
  return v;
}

std::string LeanFrame(const ChunkLocation& c, uint64_t refs) {
  std::string v(1, kLeanVersion);
  PutVarint64(&v, c.pack_id);
  PutVarint64(&v, c.offset);
  PutVarint64(&v, c.stored_length);
  PutVarint64(&v, c.raw_length);
  v.push_back(char(c.codec));
  PutFixed32LE(&v, c.stored_crc);
  PutVarint64(&v, refs);
  return v;
}

std::string LeanPiece(const Frames& fr, size_t u, bool with_refs) {
  std::string v(1, kLeanVersion);
  PutFixed64LE(&v, fr.piece_frame[u] + 1);
  PutVarint64(&v, fr.piece_offset[u]);
  PutVarint64(&v, fr.piece_length[u]);
  if (with_refs) PutVarint64(&v, fr.piece_refs[u]);
  return v;
}

}  // namespace

std::vector<MetaVariant> FrameMetaVariants(const Pieces& p, const Layout& l) {
  const Frames fr = Place(p, l);
  const size_t frames = fr.at.size(), pieces = p.unique.size();
  std::vector<uint64_t> runs_of(frames, 0);
  ForEachRun(l, [&](size_t, uint64_t, uint64_t, uint32_t frame, uint32_t) { ++runs_of[frame]; });
  std::vector<MetaVariant> out;

  // Today's encoders: frames and pieces in the chunk index, keyed by hash.
  for (bool runs : {false, true}) {
    MetaVariant v;
    v.name = runs ? "(2) run extents naming the frame, today's encoders"
                  : "(1) piece extents naming the piece, today's encoders";
    v.families = {"chunks", "extents"};
    v.options_of = {Cf::kChunks, Cf::kExtents};
    for (size_t u = 0; u < frames; ++u) {
      ChunkRecord r{fr.at[u], runs ? runs_of[u] : fr.pieces[u], std::nullopt};
      v.records.push_back({0, ChunkKey(fr.hash[u]), EncodeChunkRecord(r)});
    }
    for (size_t u = 0; u < pieces; ++u) {
      v.records.push_back({0, ChunkKey(fr.piece_hash[u]), TodayPiece(fr, u)});
    }
    if (runs) {
      ForEachRun(l, [&](size_t f, uint64_t off, uint64_t len, uint32_t frame, uint32_t in) {
        v.records.push_back(
            {1, ExtentKey(Ino(f + 2), off), EncodeExtent(Extent{len, fr.hash[frame], in})});
      });
    } else {
      for (size_t f = 0; f < p.unique_of.size(); ++f) {
        uint64_t off = 0;
        for (size_t j = 0; j < p.unique_of[f].size(); ++j) {
          const Extent e{p.lengths[f][j], fr.piece_hash[p.unique_of[f][j]], 0};
          v.records.push_back({1, ExtentKey(Ino(f + 2), off), EncodeExtent(e)});
          off += e.length;
        }
      }
    }
    out.push_back(std::move(v));
  }

  // Lean encodings: frames keyed by an 8-byte id in a family of their own (opened like the
  // extents: every frame lookup comes from a record naming it and hits, so no bloom filter);
  // pieces keyed by hash (the chunks' options: dedup probes miss); varint fields.
  for (bool runs : {false, true}) {
    MetaVariant v;
    v.name = runs ? "(3b) run extents naming the frame id, lean"
                  : "(3a) piece extents naming the piece, lean";
    v.families = {"frames", "pieces", "extents"};
    v.options_of = {Cf::kExtents, Cf::kChunks, Cf::kExtents};
    for (size_t u = 0; u < frames; ++u) {
      v.records.push_back(
          {0, FrameIdKey(u), LeanFrame(fr.at[u], runs ? runs_of[u] : fr.pieces[u])});
    }
    for (size_t u = 0; u < pieces; ++u) {
      v.records.push_back({1, ChunkKey(fr.piece_hash[u]), LeanPiece(fr, u, !runs)});
    }
    if (runs) {
      ForEachRun(l, [&](size_t f, uint64_t off, uint64_t len, uint32_t frame, uint32_t in) {
        std::string e(1, kLeanVersion);
        PutVarint64(&e, len);
        PutFixed64LE(&e, uint64_t(frame) + 1);
        PutVarint64(&e, in);
        v.records.push_back({2, ExtentKey(Ino(f + 2), off), std::move(e)});
      });
    } else {
      for (size_t f = 0; f < p.unique_of.size(); ++f) {
        uint64_t off = 0;
        for (size_t j = 0; j < p.unique_of[f].size(); ++j) {
          std::string e(1, kLeanVersion);
          PutVarint64(&e, p.lengths[f][j]);
          e.append(fr.piece_hash[p.unique_of[f][j]].AsBytes());
          v.records.push_back({2, ExtentKey(Ino(f + 2), off), std::move(e)});
          off += p.lengths[f][j];
        }
      }
    }
    out.push_back(std::move(v));
  }
  return out;
}

namespace {

Status Rocks(const rocksdb::Status& s, const std::string& what) {
  return Status(EIO, what + ": " + s.ToString());
}

}  // namespace

Result<RocksBytes> WriteToRocks(const std::string& dir, const MetaVariant& v) {
  namespace fs = std::filesystem;
  if (fs::exists(dir)) return Status(EEXIST, dir + " exists; metadata is measured in a new one");
  const MetaStoreOptions o;
  rocksdb::DBOptions db_options = MetaDbOptions(o);
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  std::shared_ptr<rocksdb::Cache> cache = rocksdb::NewLRUCache(o.block_cache_bytes);
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  descs.emplace_back(rocksdb::kDefaultColumnFamilyName, MetaCfOptions(Cf::kSuper, cache, o));
  for (size_t i = 0; i < v.families.size(); ++i) {
    descs.emplace_back(v.families[i], MetaCfOptions(v.options_of[i], cache, o));
  }
  rocksdb::DB* raw = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir, descs, &cfs, &raw);
  if (!s.ok()) return Rocks(s, "opening " + dir);
  std::unique_ptr<rocksdb::DB> db(raw);
  auto close = [&] {
    for (rocksdb::ColumnFamilyHandle* h : cfs)
      db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    cfs.clear();
    db.reset();
  };

  RocksBytes out;
  const size_t n = v.families.size();
  out.records.assign(n, 0);
  out.raw.assign(n, 0);
  out.sst.assign(n, 0);
  out.sst_files.assign(n, 0);
  rocksdb::WriteBatch batch;
  for (size_t i = 0; i < v.records.size(); ++i) {
    const MetaRecord& r = v.records[i];
    ++out.records[r.family];
    out.raw[r.family] += r.key.size() + r.value.size();
    s = batch.Put(cfs[r.family + 1], r.key, r.value);
    if (s.ok() && (batch.Count() == 4096 || i + 1 == v.records.size())) {
      s = db->Write(rocksdb::WriteOptions(), &batch);
      batch.Clear();
    }
    if (!s.ok()) {
      close();
      return Rocks(s, "writing " + v.name);
    }
  }
  rocksdb::FlushOptions flush;
  flush.wait = true;
  s = db->Flush(flush, cfs);
  rocksdb::CompactRangeOptions compact;
  compact.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  for (size_t i = 1; s.ok() && i < cfs.size(); ++i) {
    s = db->CompactRange(compact, cfs[i], nullptr, nullptr);
  }
  if (!s.ok()) {
    close();
    return Rocks(s, "flushing and compacting " + v.name);
  }

  // Read every family back: the compacted files must hold exactly the records written.
  std::vector<std::vector<std::pair<std::string_view, std::string_view>>> want(n);
  for (const MetaRecord& r : v.records) want[r.family].emplace_back(r.key, r.value);
  Status verdict;
  for (size_t i = 0; i < n && verdict.ok(); ++i) {
    std::sort(want[i].begin(), want[i].end());
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cfs[i + 1]));
    size_t k = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next(), ++k) {
      if (k >= want[i].size() || it->key().ToStringView() != want[i][k].first ||
          it->value().ToStringView() != want[i][k].second) {
        break;
      }
    }
    if (!it->status().ok()) {
      verdict = Rocks(it->status(), "reading back " + v.families[i]);
    } else if (it->Valid() || k != want[i].size()) {
      verdict = Status(EUCLEAN, v.name + ": family " + v.families[i] + " differs from what was " +
                                    "written at record " + std::to_string(k));
    }
    rocksdb::ColumnFamilyMetaData md;
    db->GetColumnFamilyMetaData(cfs[i + 1], &md);
    out.sst[i] = md.size;
    out.sst_files[i] = md.file_count;
  }
  close();
  if (!verdict.ok()) return verdict;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out.dir_bytes += e.file_size();
  }
  return out;
}

bool ReportFrameMetaBytes(const std::string& dir, const Pieces& p, const Layout& framed,
                          uint64_t long1) {
  const MetaBytes estimate = Metadata(framed);
  const uint64_t data = framed.stored + framed.unique * kRecordHeader;
  std::printf(
      "\nmetadata in RocksDB (the store's options; flushed, compacted to the last level), %s: "
      "data + record headers %.2f MB; Metadata() above counted %.3f MB (index + run extents)\n"
      "| variant | records | key + value MB | .sst MB | .sst per family: MB of key + value MB "
      "(records) | directory MB | data + headers + .sst MB | x zstd -1 --long=27 |\n"
      "|---|---:|---:|---:|---|---:|---:|---:|\n",
      framed.name.c_str(), double(data) / 1e6, double(estimate.index + estimate.extents) / 1e6);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::vector<MetaVariant> variants = FrameMetaVariants(p, framed);
  uint64_t records = 0;
  for (size_t i = 0; i < variants.size(); ++i) {
    const MetaVariant& v = variants[i];
    Result<RocksBytes> r = WriteToRocks(dir + "/variant" + std::to_string(i + 1), v);
    if (!r.ok()) {
      std::fprintf(stderr, "space_levers: %s\n", r.status().ToString().c_str());
      return false;
    }
    uint64_t n = 0, raw = 0, sst = 0;
    std::string per;
    for (size_t f = 0; f < v.families.size(); ++f) {
      n += r->records[f];
      raw += r->raw[f];
      sst += r->sst[f];
      char b[128];
      std::snprintf(b, sizeof b, "%s%s %.3f of %.3f (%llu)", f ? ", " : "", v.families[f].c_str(),
                    double(r->sst[f]) / 1e6, double(r->raw[f]) / 1e6,
                    (unsigned long long)r->records[f]);
      per += b;
      if (r->records[f] > 0 && (r->sst[f] == 0 || r->sst_files[f] == 0)) {
        std::fprintf(stderr, "space_levers: %s: family %s has records but no .sst bytes\n",
                     v.name.c_str(), v.families[f].c_str());
        return false;
      }
    }
    records += n;
    std::printf("| %s | %llu | %.3f | %.3f | %s | %.3f | %.2f | %.3f |\n", v.name.c_str(),
                (unsigned long long)n, double(raw) / 1e6, double(sst) / 1e6, per.c_str(),
                double(r->dir_bytes) / 1e6, double(data + sst) / 1e6,
                double(data + sst) / double(long1));
  }
  std::printf("rocksdb: %zu variants, %llu records written, compacted and read back equal\n",
              variants.size(), (unsigned long long)records);
  return true;
}

}  // namespace rankfs
