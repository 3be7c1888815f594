// The metadata records the next store format's candidate layouts would write for a framed
// layout of space_levers (issue #26), and what they cost once RocksDB holds them: written into
// a fresh database opened with the store's options (store/meta_options.h), flushed and
// compacted, the .sst bytes per column family. Measurement code, not the store's format.
//
// The candidates, all over the same frames of unique pieces:
//   (1) a chunk index entry per piece (its SHA-256 -> its frame's location and slice, a
//       refcount) and one extent per piece occurrence naming the piece's hash;
//   (2) the same per-piece entries as a dedup index, and one extent per run of a file's
//       pieces lying consecutively in one frame, naming the frame;
// each with today's encoders (store/meta_codec.h) and with lean ones (frame ids, varints).
//
// Thread-safety: pure functions over their arguments; WriteToRocks uses only its directory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/space_layout.h"
#include "store/meta_store.h"
#include "store/status.h"

namespace rankfs {

struct MetaRecord {
  uint32_t family = 0;  // index into MetaVariant::families
  std::string key, value;
};

struct MetaVariant {
  std::string name;
  std::vector<std::string> families;  // column family names
  std::vector<Cf> options_of;         // whose store options each family is opened with
  std::vector<MetaRecord> records;    // in the order a store would write them
};

// The four candidates for `framed`, a layout of `p`'s unique pieces packed in frames (no
// deltas). Inode numbers are the file's index + 2, as the files would get them in a new store.
std::vector<MetaVariant> FrameMetaVariants(const Pieces& p, const Layout& framed);

struct RocksBytes {
  std::vector<uint64_t> records;  // per family
  std::vector<uint64_t> raw;      // key + value bytes per family, before RocksDB
  std::vector<uint64_t> sst;      // .sst bytes per family after a full compaction
  std::vector<uint64_t> sst_files;
  uint64_t dir_bytes = 0;  // every file in the database directory after it was closed
};

// Writes `v` into a new database at `dir` (which must not exist) with the store's options,
// flushes, compacts every family to its last level, reads every family back and compares it
// with the records (EUCLEAN on any difference), then closes the database and sums the files.
Result<RocksBytes> WriteToRocks(const std::string& dir, const MetaVariant& v);

// Writes each of FrameMetaVariants(p, framed) to `dir`/variantN with WriteToRocks and prints a
// table of their key + value and .sst bytes beside `framed`'s data and `long1` (the bytes of
// `zstd -1 --long=27`); false, after saying why on stderr, when one fails.
bool ReportFrameMetaBytes(const std::string& dir, const Pieces& p, const Layout& framed,
                          uint64_t long1);

}  // namespace rankfs
