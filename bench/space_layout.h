// Layouts for space_levers (issue #26): files cut into pieces, the unique pieces stored as
// compression units (alone, in frames, or as deltas, optionally with a dictionary), and what a
// layout costs: metadata bytes with the store's encoders, and the units a 4 KiB read touches.
// Measurement code for bench/space_levers.cc, not the store's format.
//
// Thread-safety: pure functions over their arguments; a ZSTD_CCtx is the caller's, one per
// thread.
#pragma once

#include <zstd.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bench/resemblance.h"

namespace rankfs {

inline constexpr int kStoreLevel = 1;  // StoreOptions::compression_level
inline constexpr size_t kReadSize = 4096;
inline constexpr size_t kRecordHeader = 56;  // store/pack_format.h kRecordHeaderSize

struct File {
  std::string path;
  std::string bytes;
};

// A layout: every file cut into pieces; each piece names its compression unit (a piece
// alone, a frame of pieces, or a delta) and where its bytes start inside that unit's raw bytes.
struct Layout {
  std::string name;
  uint64_t stored = 0;       // compressed bytes of all units, plus the dictionary if any
  uint64_t unique = 0;       // compression units (one record each)
  uint64_t deltas = 0;       // units that are deltas against a base unit
  uint64_t dict_bytes = 0;   // the store's dictionary, counted once in `stored`
  uint64_t piece_index = 0;  // dedup index entries for pieces inside frames
  bool per_piece = false;    // one record per unique piece
  std::vector<std::vector<size_t>> lengths;           // per file
  std::vector<std::vector<uint32_t>> unit_of;         // per file, per piece
  std::vector<std::vector<uint32_t>> offset_in_unit;  // per file, per piece
  std::vector<uint32_t> unit_bytes;                   // raw bytes of each compression unit
  std::vector<uint32_t> unit_stored;                  // stored bytes of each unit
  // Per unit: the units a delta unit needs decompressed first (empty for others).
  std::vector<std::vector<uint32_t>> bases_of;
  uint64_t base_refs = 0;  // base pieces named by delta units (32 B each in the metadata)
};

// The files cut into pieces and deduplicated: unique_of holds each piece's unique index.
struct Pieces {
  std::vector<std::vector<size_t>> lengths;
  std::vector<std::vector<uint32_t>> unique_of;
  std::vector<std::string_view> unique;  // first-seen order
};

// How a layout stores the unique pieces: `frame` 0 compresses each alone, otherwise they are
// packed in first-seen order into frames of about `frame` bytes (a frame is closed before a
// piece would take it past `frame`). Pieces that `deltas` marks are units of their own, stored
// as their delta, or, with `delta_frame` > 0, packed in first-seen order into frames of their
// own of about that size, each compressed against the concatenation of its pieces' bases
// (ZSTD_CCtx_refPrefix; decoded and compared, exit 1 on mismatch). `dict`, when given, is used
// for every unit but the deltas.
struct Packing {
  size_t frame = 0;
  size_t delta_frame = 0;
  int level = kStoreLevel;
  const std::vector<DeltaDecision>* deltas = nullptr;
  const ZSTD_CDict* dict = nullptr;
  uint64_t dict_bytes = 0;
};

// Metadata bytes a layout writes, with the store's own encoders (store/meta_codec.h): one chunk
// index entry per unit (a delta's also names its base: + 32 B), one per piece inside a frame
// (the dedup index), and one extent per run of consecutive pieces of a file that lie
// consecutively in one unit. Key and value bytes, before RocksDB's block compression.
struct MetaBytes {
  uint64_t index = 0;    // chunk / frame / delta entries and piece entries
  uint64_t extents = 0;  // extent entries
  uint64_t extent_count = 0;
};

// Mean and share above two of the compression units a 4 KiB-aligned read touches, over every
// 4 KiB block of every file.
struct ReadCost {
  double mean = 0;
  double above_two = 0;
  size_t max = 0;
  double kib_decompressed = 0;  // mean raw KiB of the units a read decompresses
  double extra = 0;             // mean decompressions of delta bases (included in `mean`)
};

// The compressed size of `in` at `level` (with `dict` if given), or its raw size when zstd
// does not shrink it, as the store keeps it.
size_t Compressed(ZSTD_CCtx* cctx, std::string_view in, int level,
                  const ZSTD_CDict* dict = nullptr);

// Dedups the pieces of `lengths` by SHA-256.
Pieces Dedup(const std::vector<File>& files, std::vector<std::vector<size_t>> lengths);

// The layout of `p` stored as `k` says; `name` labels it in the tables.
Layout Build(const std::string& name, const Pieces& p, const Packing& k, ZSTD_CCtx* cctx);

MetaBytes Metadata(const Layout& l);

// only_file: the index of the one file to count, or SIZE_MAX for all.
ReadCost CostOfReads(const std::vector<File>& files, const Layout& l, size_t only_file = SIZE_MAX);

// Raw KiB decompressed per read for `reads` uniformly random 4 KiB-aligned reads of file f
// through an LRU cache of decompressed units holding `cache_bytes` (the daemon's chunk cache
// default is 128 MiB), starting empty.
double CachedReadKiB(const File& file, const Layout& l, size_t f, size_t reads,
                     uint64_t cache_bytes);

}  // namespace rankfs
