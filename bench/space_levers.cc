// space_levers: the bytes each space lever of issue #26 would store for a set of files, side by
// side, with the cost of a random 4 KiB read under each layout (docs/benchmarks.md, "Space
// levers (issue #26)").
//
//   space_levers [--min-row N] [--group N] [--min-piece N] PATH...   (files or directories)
//
// Layouts: today's (FastCDC with the store's parameters, dedup by SHA-256, zstd per chunk at
// the store's level); Arrow cuts (store/arrow_ipc.h, FastCDC elsewhere) with dedup and zstd per
// piece; the same unique pieces packed in first-seen order into frames of 32..256 KiB; and the
// baselines (zstd --long=27 over all files concatenated, zstd -1 per 32 KiB piece alone).
// Files are taken in the order they were last written (the order a job wrote them).
// Compressed sizes count a frame's raw bytes when zstd does not shrink it, as the store does;
// record headers and index entries are counted apart (pieces x 56 bytes for a record each).
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <list>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/arrow_ipc.h"
#include "store/chunker.h"
#include "store/types.h"

namespace rankfs {
namespace {

namespace fs = std::filesystem;

constexpr int kStoreLevel = 1;  // StoreOptions::compression_level
constexpr size_t kReadSize = 4096;
constexpr size_t kRecordHeader = 56;  // store/pack_format.h kRecordHeaderSize

struct File {
  std::string path;
  std::string bytes;
};

// A layout: every file cut into pieces; each piece names its compression unit.
struct Layout {
  std::string name;
  uint64_t stored = 0;        // compressed bytes of all units
  uint64_t unique = 0;        // unique pieces (records a per-piece layout would write)
  bool per_piece = false;     // one record per unique piece
  bool whole_stream = false;  // one stream: a read decompresses from the start
  std::vector<std::vector<size_t>> lengths;    // per file
  std::vector<std::vector<uint32_t>> unit_of;  // per file, per piece
  std::vector<uint32_t> unit_bytes;            // raw bytes of each compression unit
};

size_t Compressed(ZSTD_CCtx* cctx, std::string_view in, int level) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  const size_t n = ZSTD_compress2(cctx, out.data(), out.size(), in.data(), in.size());
  if (ZSTD_isError(n)) {
    std::fprintf(stderr, "zstd: %s\n", ZSTD_getErrorName(n));
    std::exit(1);
  }
  return std::min(n, in.size());
}

// Dedups the pieces of `lengths` by SHA-256; returns the unique pieces in first-seen order and
// sets unit_of to each piece's unique index.
std::vector<std::string_view> Dedup(const std::vector<File>& files,
                                    const std::vector<std::vector<size_t>>& lengths,
                                    std::vector<std::vector<uint32_t>>* unit_of) {
  std::unordered_map<ChunkHash, uint32_t, ChunkHashHasher> index;
  std::vector<std::string_view> unique;
  unit_of->assign(files.size(), {});
  for (size_t f = 0; f < files.size(); ++f) {
    size_t off = 0;
    for (size_t len : lengths[f]) {
      std::string_view piece(files[f].bytes.data() + off, len);
      auto [it, added] = index.emplace(ChunkHash::Of(piece), uint32_t(unique.size()));
      if (added) unique.push_back(piece);
      (*unit_of)[f].push_back(it->second);
      off += len;
    }
  }
  return unique;
}

// Mean and share above two of the compression units a 4 KiB-aligned read touches, over every
// 4 KiB block of every file.
struct ReadCost {
  double mean = 0;
  double above_two = 0;
  size_t max = 0;
  double kib_decompressed = 0;  // mean raw KiB of the units a read decompresses
};

// only_file: the index of the one file to count, or SIZE_MAX for all.
ReadCost CostOfReads(const std::vector<File>& files, const Layout& l, size_t only_file = SIZE_MAX) {
  ReadCost c;
  uint64_t blocks = 0, total = 0, over = 0, unit_bytes = 0;
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
      const size_t n = size_t(std::unique(units.begin(), units.end()) - units.begin());
      for (size_t i = 0; i < n; ++i) unit_bytes += l.unit_bytes[units[i]];
      ++blocks;
      total += n;
      if (n > 2) ++over;
      c.max = std::max(c.max, n);
    }
  }
  if (blocks > 0) {
    c.mean = double(total) / double(blocks);
    c.above_two = double(over) / double(blocks);
    c.kib_decompressed = double(unit_bytes) / double(blocks) / 1024.0;
  }
  return c;
}

// Raw KiB decompressed per read for `reads` uniformly random 4 KiB-aligned reads of file f
// through an LRU cache of decompressed units holding `cache_bytes` (the daemon's chunk cache
// default is 128 MiB), starting empty.
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
      const uint32_t u = l.unit_of[f][p];
      auto it = where.find(u);
      if (it != where.end()) {
        lru.splice(lru.begin(), lru, it->second);
        continue;
      }
      decompressed += l.unit_bytes[u];
      held += l.unit_bytes[u];
      lru.push_front(u);
      where[u] = lru.begin();
      while (held > cache_bytes && lru.size() > 1) {
        held -= l.unit_bytes[lru.back()];
        where.erase(lru.back());
        lru.pop_back();
      }
    }
  }
  return double(decompressed) / double(reads) / 1024.0;
}

// Unique pieces packed in first-seen order into frames of about `frame` bytes (a frame is
// closed before a piece would take it past `frame`), each frame compressed at `level`.
Layout Framed(const std::string& name, const Layout& pieces,
              const std::vector<std::string_view>& unique, size_t frame, int level,
              ZSTD_CCtx* cctx) {
  Layout l = pieces;
  l.name = name;
  l.per_piece = false;
  l.stored = 0;
  std::vector<uint32_t> frame_of(unique.size());
  std::string buf;
  uint32_t frames = 0;
  l.unit_bytes.clear();
  auto close = [&] {
    if (buf.empty()) return;
    l.stored += Compressed(cctx, buf, level);
    l.unit_bytes.push_back(uint32_t(buf.size()));
    buf.clear();
    ++frames;
  };
  for (size_t i = 0; i < unique.size(); ++i) {
    if (!buf.empty() && buf.size() + unique[i].size() > frame) close();
    frame_of[i] = frames;
    buf.append(unique[i]);
  }
  close();
  l.unique = frames;
  for (auto& units : l.unit_of) {
    for (uint32_t& u : units) u = frame_of[u];
  }
  return l;
}

Layout PerPiece(const std::string& name, const std::vector<File>& files,
                std::vector<std::vector<size_t>> lengths, int level, ZSTD_CCtx* cctx,
                std::vector<std::string_view>* unique_out) {
  Layout l;
  l.name = name;
  l.per_piece = true;
  l.lengths = std::move(lengths);
  std::vector<std::string_view> unique = Dedup(files, l.lengths, &l.unit_of);
  for (std::string_view u : unique) {
    l.stored += Compressed(cctx, u, level);
    l.unit_bytes.push_back(uint32_t(u.size()));
  }
  l.unique = unique.size();
  if (unique_out) *unique_out = std::move(unique);
  return l;
}

uint64_t LongMode(const std::vector<File>& files, int level) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_enableLongDistanceMatching, 1);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, 27);
  std::string out(1 << 20, '\0');
  uint64_t total = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    ZSTD_inBuffer in{files[f].bytes.data(), files[f].bytes.size(), 0};
    const ZSTD_EndDirective mode = f + 1 == files.size() ? ZSTD_e_end : ZSTD_e_continue;
    for (;;) {
      ZSTD_outBuffer o{out.data(), out.size(), 0};
      const size_t left = ZSTD_compressStream2(cctx, &o, &in, mode);
      if (ZSTD_isError(left)) {
        std::fprintf(stderr, "zstd: %s\n", ZSTD_getErrorName(left));
        std::exit(1);
      }
      total += o.pos;
      if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size) break;
    }
  }
  ZSTD_freeCCtx(cctx);
  return total;
}

void Histogram(const char* name, const Layout& l) {
  static const size_t kEdges[] = {256, 1024, 4096, 16384, 65536, 131072};
  uint64_t count[7] = {}, bytes[7] = {}, all = 0, all_bytes = 0;
  for (const auto& lens : l.lengths) {
    for (size_t len : lens) {
      size_t b = 0;
      while (b < 6 && len >= kEdges[b]) ++b;
      ++count[b];
      bytes[b] += len;
      ++all;
      all_bytes += len;
    }
  }
  std::printf(
      "\npiece sizes, %s (%llu pieces, mean %.0f B):\n| size | pieces | %% of bytes "
      "|\n|---|---:|---:|\n",
      name, (unsigned long long)all, all ? double(all_bytes) / double(all) : 0.0);
  static const char* kNames[] = {"< 256 B",     "256 B - 1 KiB", "1 - 4 KiB", "4 - 16 KiB",
                                 "16 - 64 KiB", "64 - 128 KiB",  ">= 128 KiB"};
  for (int b = 0; b < 7; ++b) {
    std::printf("| %s | %llu | %.1f |\n", kNames[b], (unsigned long long)count[b],
                all_bytes ? 100.0 * double(bytes[b]) / double(all_bytes) : 0.0);
  }
}

std::vector<File> ReadFiles(const std::vector<std::string>& paths) {
  std::vector<std::string> names;
  for (const std::string& p : paths) {
    if (fs::is_directory(p)) {
      for (const auto& e : fs::recursive_directory_iterator(p)) {
        if (e.is_regular_file()) names.push_back(e.path().string());
      }
    } else {
      names.push_back(p);
    }
  }
  // In the order they were written (then by name), as the store would have seen them: which
  // copy of a row is "first seen" decides which file's reads find their rows together.
  std::vector<std::pair<fs::file_time_type, std::string>> order;
  for (const std::string& n : names) order.emplace_back(fs::last_write_time(n), n);
  std::sort(order.begin(), order.end());
  names.clear();
  for (auto& [t, n] : order) names.push_back(n);
  std::vector<File> files;
  for (const std::string& n : names) {
    std::ifstream in(n, std::ios::binary);
    files.push_back({n, std::string(std::istreambuf_iterator<char>(in), {})});
    if (!in.good() && !in.eof()) {
      std::fprintf(stderr, "space_levers: cannot read %s\n", n.c_str());
      std::exit(1);
    }
  }
  return files;
}

int Main(int argc, char** argv) {
  ArrowCutOptions opt;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto number = [&](uint32_t* v) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "space_levers: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      *v = uint32_t(std::strtoul(argv[++i], nullptr, 10));
    };
    if (a == "--min-row") {
      number(&opt.min_row_piece);
    } else if (a == "--group") {
      number(&opt.row_group_target);
    } else if (a == "--min-piece") {
      number(&opt.min_piece);
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr,
                   "usage: space_levers [--min-row N] [--group N] [--min-piece N] PATH...\n");
      return 2;
    } else {
      paths.push_back(a);
    }
  }
  if (paths.empty()) {
    std::fprintf(stderr, "usage: space_levers [--min-row N] [--group N] [--min-piece N] PATH...\n");
    return 2;
  }
  const std::vector<File> files = ReadFiles(paths);
  uint64_t total = 0;
  for (const File& f : files) total += f.bytes.size();
  if (total == 0) {
    std::fprintf(stderr, "space_levers: no bytes in the files given\n");
    return 1;
  }
  const ChunkerParams params;  // the store's defaults
  const FastCdc cdc(params);
  std::printf(
      "space_levers: %zu files, %llu bytes; FastCDC %u/%u/%u; arrow min_row=%u group=%u "
      "min_piece=%u\n\n| file | bytes | arrow understood | stop | messages | row cuts |\n"
      "|---|---:|---:|---|---:|---:|\n",
      files.size(), (unsigned long long)total, params.min_size, params.avg_size, params.max_size,
      opt.min_row_piece, opt.row_group_target, opt.min_piece);
  std::vector<std::vector<size_t>> cdc_lengths, arrow_lengths, fixed_lengths;
  double cdc_s = 0, arrow_s = 0;
  using Clock = std::chrono::steady_clock;
  for (const File& f : files) {
    const auto* p = reinterpret_cast<const uint8_t*>(f.bytes.data());
    auto t0 = Clock::now();
    cdc_lengths.push_back(cdc.Split(p, f.bytes.size()));
    auto t1 = Clock::now();
    const ArrowCuts a = FindArrowCuts(p, f.bytes.size(), opt);
    auto t2 = Clock::now();
    arrow_lengths.push_back(CutArrowOrFastCdc(p, f.bytes.size(), cdc, opt));
    cdc_s += std::chrono::duration<double>(t1 - t0).count();
    arrow_s += std::chrono::duration<double>(t2 - t1).count();
    fixed_lengths.push_back(FixedChunker(32 << 10).Split(p, f.bytes.size()));
    std::printf("| %s | %zu | %.1f %% | %s | %llu | %llu |\n", f.path.c_str(), f.bytes.size(),
                f.bytes.empty() ? 0.0 : 100.0 * double(a.understood_end) / double(f.bytes.size()),
                ArrowStopName(a.stop), (unsigned long long)a.messages,
                (unsigned long long)a.row_cuts);
  }
  std::printf("\ncut time: FastCDC %.3f s (%.0f MB/s), Arrow header walk %.3f s (%.0f MB/s)\n",
              cdc_s, double(total) / 1e6 / cdc_s, arrow_s, double(total) / 1e6 / arrow_s);

  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  std::vector<Layout> layouts;
  const uint64_t long1 = LongMode(files, 1);
  const uint64_t long3 = LongMode(files, 3);
  layouts.push_back(PerPiece("today: FastCDC + dedup + zstd -1 per chunk", files, cdc_lengths,
                             kStoreLevel, cctx, nullptr));
  std::vector<std::string_view> unique;
  const Layout arrow = PerPiece("Arrow cuts + dedup + zstd -1 per piece", files, arrow_lengths,
                                kStoreLevel, cctx, &unique);
  layouts.push_back(arrow);
  for (int level : {1, 3}) {
    for (size_t kib : {32, 64, 128, 256}) {
      layouts.push_back(Framed("Arrow cuts + dedup, " + std::to_string(kib) +
                                   " KiB frames, zstd -" + std::to_string(level),
                               arrow, unique, kib << 10, level, cctx));
    }
  }
  Layout fixed =
      PerPiece("32 KiB pieces alone, zstd -1 (no dedup)", files, fixed_lengths, 1, cctx, nullptr);
  layouts.push_back(fixed);
  ZSTD_freeCCtx(cctx);

  std::printf(
      "\n| layout | stored MB | x zstd -1 --long=27 | records | + 56 B/record MB | "
      "4 KiB read: mean decompressions | > 2 | max | KiB decompressed |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Layout& l : layouts) {
    const ReadCost c = CostOfReads(files, l);
    char with_headers[32] = "-";
    if (l.per_piece) {
      std::snprintf(with_headers, sizeof with_headers, "%.1f",
                    double(l.stored + l.unique * kRecordHeader) / 1e6);
    }
    std::printf("| %s | %.1f | %.2f | %llu | %s | %.2f | %.2f %% | %zu | %.0f |\n", l.name.c_str(),
                double(l.stored) / 1e6, double(l.stored) / double(long1),
                (unsigned long long)l.unique, with_headers, c.mean, 100.0 * c.above_two, c.max,
                c.kib_decompressed);
  }
  for (auto [level, bytes] : {std::pair{1, long1}, std::pair{3, long3}}) {
    std::printf(
        "| all files concatenated, zstd -%d --long=27 | %.1f | %.2f | 1 | - | whole stream | - | - "
        "| - |\n",
        level, double(bytes) / 1e6, double(bytes) / double(long1));
  }
  std::printf("| raw | %.1f | %.2f | - | - | - | - | - | - |\n", double(total) / 1e6,
              double(total) / double(long1));
  // Reads of the largest file alone (the flattened table of the datasets workload, whose rows
  // are a permutation of rows stored earlier).
  size_t largest = 0;
  for (size_t f = 1; f < files.size(); ++f) {
    if (files[f].bytes.size() > files[largest].bytes.size()) largest = f;
  }
  std::printf(
      "\n4 KiB reads of the largest file alone (%s):\n| layout | mean decompressions | > 2 | "
      "KiB decompressed | 20,000 random reads, KiB decompressed per read, via a 128 MiB cache "
      "| the same, 16 MiB cache |\n|---|---:|---:|---:|---:|---:|\n",
      files.empty() ? "-" : files[largest].path.c_str());
  for (const Layout& l : layouts) {
    const ReadCost c = CostOfReads(files, l, largest);
    std::printf("| %s | %.2f | %.2f %% | %.0f | %.1f | %.1f |\n", l.name.c_str(), c.mean,
                100.0 * c.above_two, c.kib_decompressed,
                CachedReadKiB(files[largest], l, largest, 20000, uint64_t{128} << 20),
                CachedReadKiB(files[largest], l, largest, 20000, uint64_t{16} << 20));
  }
  Histogram("today (FastCDC)", layouts[0]);
  Histogram("Arrow cuts", arrow);
  return 0;
}

}  // namespace
}  // namespace rankfs

int main(int argc, char** argv) { return rankfs::Main(argc, argv); }
