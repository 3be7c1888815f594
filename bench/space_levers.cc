// space_levers: the bytes each space lever of issue #26 would store for a set of files, side by
// side, with the metadata each layout would write and the cost of a random 4 KiB read under it
// (docs/benchmarks.md, "Space levers (issue #26)").
//
//   space_levers [--min-row N] [--group N] [--min-piece N] [--dict-kib N] [--dict-sample-mib N]
//                [--sf-features N] PATH...   (files or directories)
//                [--rocksdb-dir DIR] PATH...
//   space_levers --self-test   (the delta planner on made-up similar pieces; exit 1 on failure)
//
// --rocksdb-dir DIR: also writes the metadata of the next format's candidates for the 32 KiB
// frame layout into new RocksDB databases under DIR (bench/meta_bytes.h) and reports their
// compacted .sst bytes; exit 1 if one cannot be written or does not read back equal.
//
// Layouts: today's (FastCDC with the store's parameters, dedup by SHA-256, zstd per chunk at
// the store's level); Arrow cuts (store/arrow_ipc.h, FastCDC elsewhere) with dedup and zstd per
// piece; the same unique pieces packed in first-seen order into frames of 32..256 KiB; depth-1
// deltas against resembling earlier pieces (bench/resemblance.h), per piece and beside frames
// of the other pieces; a dictionary trained on the first pieces of the store; and the
// baselines (zstd --long=27 over all files concatenated, zstd -1 per 32 KiB piece alone).
// Files are taken in the order they were last written (the order a job wrote them).
// Compressed sizes count a unit's raw bytes when zstd does not shrink it, as the store does;
// record headers (56 B per unit) and metadata (store/meta_codec.h encoders) are counted apart.
#include <zdict.h>
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
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "bench/meta_bytes.h"
#include "bench/resemblance.h"
#include "bench/space_layout.h"
#include "store/arrow_ipc.h"
#include "store/chunker.h"
#include "store/types.h"

namespace rankfs {
namespace {

namespace fs = std::filesystem;

constexpr char kUsage[] =
    "usage: space_levers [--min-row N] [--group N] [--min-piece N] [--dict-kib N] "
    "[--dict-sample-mib N] [--sf-features N]\n                    [--rocksdb-dir DIR] PATH...\n    "
    "   space_levers --self-test\n";

// Depth-1 deltas for the unique pieces, each judged against its size compressed alone.
std::vector<DeltaDecision> PlanDeltas(const char* what, const Pieces& p, const Layout& alone,
                                      int features_per_sf) {
  DeltaPlanner planner(kStoreLevel, features_per_sf);
  std::vector<DeltaDecision> d;
  d.reserve(p.unique.size());
  const auto t0 = std::chrono::steady_clock::now();
  uint64_t kept = 0, saved = 0;
  for (size_t i = 0; i < p.unique.size(); ++i) {
    d.push_back(planner.Offer(p.unique[i], alone.unit_stored[i]));
    if (d.back().is_delta) {
      ++kept;
      saved += alone.unit_stored[i] - d.back().delta_size;
    }
  }
  std::printf(
      "deltas, %s, %d super-features of %d features: %zu unique pieces, %llu found a base by "
      "super-features, %llu kept "
      "(< %.1fx alone), saving %.1f MB; %llu decoded with their base and verified\n",
      what, kFeatures / features_per_sf, features_per_sf, p.unique.size(),
      (unsigned long long)planner.candidates(), (unsigned long long)kept, kKeepRatio,
      double(saved) / 1e6, (unsigned long long)planner.verified());
  const double all = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "  time: %.2f s in all (features, trial deltas, verification), of which features "
      "%.2f s for %.1f MB (%.0f MB/s)\n",
      all, planner.feature_seconds(), double(planner.feature_bytes()) / 1e6,
      double(planner.feature_bytes()) / 1e6 / std::max(planner.feature_seconds(), 1e-9));
  return d;
}

// A dictionary trained on the first `sample` bytes of unique pieces (each piece a sample).
std::string TrainDictionary(const Pieces& p, size_t sample, size_t dict_size, size_t* sampled) {
  std::string samples;
  std::vector<size_t> sizes;
  for (std::string_view u : p.unique) {
    if (samples.size() + u.size() > sample) break;
    samples.append(u);
    sizes.push_back(u.size());
  }
  *sampled = samples.size();
  std::string dict(dict_size, '\0');
  const size_t n = ZDICT_trainFromBuffer(dict.data(), dict.size(), samples.data(), sizes.data(),
                                         unsigned(sizes.size()));
  if (ZDICT_isError(n)) {
    std::fprintf(stderr, "space_levers: dictionary training on %zu samples: %s\n", sizes.size(),
                 ZDICT_getErrorName(n));
    return {};
  }
  dict.resize(n);
  return dict;
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

uint64_t UnitBytes(const Layout& l) {
  uint64_t sum = 0;
  for (uint32_t b : l.unit_bytes) sum += b;
  return sum;
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

// Pieces made to resemble each other (a random text and copies of it with a few edits and an
// insertion), run through the delta planner, which decodes every delta it keeps with its base
// and exits on a mismatch. Fails unless the edited copies became deltas of the original.
int SelfTest() {
  std::mt19937_64 rng(7);
  static const char kWords[][8] = {"the", "row", "token", "id", "cache", "frame", "of", "rank"};
  std::vector<std::string> pieces;
  for (int base = 0; base < 4; ++base) {
    std::string text;
    while (text.size() < 6000) text += std::string(kWords[rng() % 8]) + char('a' + rng() % 26);
    pieces.push_back(text);
    for (int copy = 0; copy < 3; ++copy) {
      std::string c = text;
      for (int e = 0; e < 8; ++e) c[rng() % c.size()] = char('A' + rng() % 26);
      c.insert(rng() % c.size(), "inserted words");
      pieces.push_back(c);
    }
  }
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  DeltaPlanner planner(kStoreLevel, kDefaultFeaturesPerSf);
  int deltas = 0, wrong_base = 0;
  std::vector<DeltaDecision> plan;
  for (size_t i = 0; i < pieces.size(); ++i) {
    plan.push_back(planner.Offer(pieces[i], Compressed(cctx, pieces[i], kStoreLevel)));
    if (!plan.back().is_delta) continue;
    ++deltas;
    if (plan.back().base != i - i % 4) ++wrong_base;  // each copy's base is its own original
  }
  // The same pieces as one file, the deltas packed in frames against their bases (Build
  // decodes each delta frame and exits on a mismatch), and the read model counting the bases.
  std::vector<File> file(1);
  Pieces p;
  p.lengths.resize(1);
  p.unique_of.resize(1);
  for (const std::string& piece : pieces) file[0].bytes += piece;
  for (size_t i = 0, off = 0; i < pieces.size(); off += pieces[i].size(), ++i) {
    p.lengths[0].push_back(pieces[i].size());
    p.unique_of[0].push_back(uint32_t(i));
    p.unique.push_back(std::string_view(file[0].bytes).substr(off, pieces[i].size()));
  }
  const Layout framed =
      Build("self-test", p, {.frame = 8 << 10, .delta_frame = 16 << 10, .deltas = &plan}, cctx);
  const ReadCost reads = CostOfReads(file, framed);
  ZSTD_freeCCtx(cctx);
  std::printf(
      "self-test: %d of 12 edited copies stored as deltas, %llu verified, %d against "
      "the wrong base; in delta frames: %llu frames, %zu of %zu bytes stored, %.2f base "
      "decompressions per read\n",
      deltas, (unsigned long long)planner.verified(), wrong_base, (unsigned long long)framed.deltas,
      size_t(framed.stored), file[0].bytes.size(), reads.extra);
  const bool ok = deltas >= 10 && planner.verified() == uint64_t(deltas) && wrong_base == 0 &&
                  framed.deltas > 0 && framed.stored < file[0].bytes.size() / 4 && reads.extra > 0;
  std::printf("self-test: %s\n", ok ? "PASSED" : "FAILED");
  return ok ? 0 : 1;
}

int Main(int argc, char** argv) {
  ArrowCutOptions opt;
  uint32_t dict_kib = 100, dict_sample_mib = 8, sf_features = kDefaultFeaturesPerSf;
  std::vector<std::string> paths;
  std::string rocksdb_dir;
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
    } else if (a == "--dict-kib") {
      number(&dict_kib);
    } else if (a == "--dict-sample-mib") {
      number(&dict_sample_mib);
    } else if (a == "--sf-features") {
      number(&sf_features);
      if (sf_features == 0 || kFeatures % sf_features != 0) {
        std::fprintf(stderr, "space_levers: --sf-features must divide %d\n", kFeatures);
        return 2;
      }
    } else if (a == "--rocksdb-dir") {
      if (i + 1 >= argc) {
        std::fputs(kUsage, stderr);
        return 2;
      }
      rocksdb_dir = argv[++i];
    } else if (a == "--self-test") {
      return SelfTest();
    } else if (!a.empty() && a[0] == '-') {
      std::fputs(kUsage, stderr);
      return 2;
    } else {
      paths.push_back(a);
    }
  }
  if (paths.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const size_t dict_size = size_t(dict_kib) << 10, dict_sample = size_t(dict_sample_mib) << 20;
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
  const Pieces chunks = Dedup(files, cdc_lengths);
  const Pieces rows = Dedup(files, arrow_lengths);
  const Layout today = Build("today: FastCDC + dedup + zstd -1 per chunk", chunks, {}, cctx);
  const Layout arrow = Build("Arrow cuts + dedup + zstd -1 per piece", rows, {}, cctx);
  layouts.push_back(today);
  layouts.push_back(arrow);
  const size_t framed32 = layouts.size();  // the first frame layout: 32 KiB, zstd -1
  for (int level : {1, 3}) {
    for (size_t kib : {32, 64, 128, 256}) {
      layouts.push_back(Build("Arrow cuts + dedup, " + std::to_string(kib) + " KiB frames, zstd -" +
                                  std::to_string(level),
                              rows, {.frame = kib << 10, .level = level}, cctx));
    }
  }
  layouts.push_back(
      Build("32 KiB pieces alone, zstd -1 (no dedup)", Dedup(files, fixed_lengths), {}, cctx));
  // Lever 3: depth-1 deltas found by super-features.
  std::printf("\n");
  const std::vector<DeltaDecision> chunk_deltas =
      PlanDeltas("FastCDC chunks", chunks, today, int(sf_features));
  const std::vector<DeltaDecision> row_deltas =
      PlanDeltas("Arrow pieces", rows, arrow, int(sf_features));
  layouts.push_back(Build("today + deltas (per chunk)", chunks, {.deltas = &chunk_deltas}, cctx));
  layouts.push_back(Build("Arrow cuts + deltas, per piece", rows, {.deltas = &row_deltas}, cctx));
  for (size_t kib : {32, 128}) {
    layouts.push_back(Build(
        "Arrow cuts + deltas, other pieces in " + std::to_string(kib) + " KiB frames, zstd -1",
        rows, {.frame = kib << 10, .deltas = &row_deltas}, cctx));
  }
  // Deltas placed for reads: those of neighbouring pieces share a frame and its bases' prefix.
  layouts.push_back(Build("Arrow cuts + deltas in 32 KiB delta frames, others in 32 KiB frames",
                          rows, {.frame = 32 << 10, .delta_frame = 32 << 10, .deltas = &row_deltas},
                          cctx));
  // Lever 5: one dictionary per store, trained on the first pieces it stores.
  for (const auto& [what, pieces] :
       {std::pair<const char*, const Pieces*>{"FastCDC chunks", &chunks},
        {"Arrow pieces", &rows}}) {
    const auto t0 = std::chrono::steady_clock::now();
    size_t sampled = 0;
    const std::string dict = TrainDictionary(*pieces, dict_sample, dict_size, &sampled);
    const double train_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (dict.empty()) continue;
    std::printf("dictionary, %s: %zu B trained on the first %.1f MB of unique pieces in %.2f s\n",
                what, dict.size(), double(sampled) / 1e6, train_s);
    ZSTD_CDict* cdict = ZSTD_createCDict(dict.data(), dict.size(), kStoreLevel);
    const Packing k{.dict = cdict, .dict_bytes = dict.size()};
    if (pieces == &chunks) {
      layouts.push_back(Build("today + dictionary (per chunk)", chunks, k, cctx));
    } else {
      layouts.push_back(Build("Arrow cuts + dictionary, per piece", rows, k, cctx));
      Packing framed = k;
      framed.frame = 32 << 10;
      layouts.push_back(
          Build("Arrow cuts + dictionary, 32 KiB frames, zstd -1", rows, framed, cctx));
      framed.deltas = &row_deltas;
      layouts.push_back(
          Build("Arrow cuts + deltas + dictionary, 32 KiB frames, zstd -1", rows, framed, cctx));
      framed.delta_frame = 32 << 10;
      layouts.push_back(
          Build("Arrow cuts + deltas in 32 KiB delta frames + dictionary, 32 KiB "
                "frames, zstd -1",
                rows, framed, cctx));
    }
    ZSTD_freeCDict(cdict);
  }
  ZSTD_freeCCtx(cctx);

  std::printf(
      "\n| layout | stored MB | x zstd -1 --long=27 | records | deltas | + 56 B/record MB | "
      "metadata MB (index + extents) | extents | all MB | all x long -1 | "
      "4 KiB read: mean decompressions | of them delta bases | > 2 | max | KiB decompressed |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Layout& l : layouts) {
    const ReadCost c = CostOfReads(files, l);
    const MetaBytes m = Metadata(l);
    const uint64_t with_headers = l.stored + l.unique * kRecordHeader;
    const uint64_t all = with_headers + m.index + m.extents;
    std::printf(
        "| %s | %.1f | %.2f | %llu | %llu | %.1f | %.1f + %.1f | %llu | %.1f | %.2f | %.2f | %.2f "
        "| %.2f %% | %zu | %.0f |\n",
        l.name.c_str(), double(l.stored) / 1e6, double(l.stored) / double(long1),
        (unsigned long long)l.unique, (unsigned long long)l.deltas, double(with_headers) / 1e6,
        double(m.index) / 1e6, double(m.extents) / 1e6, (unsigned long long)m.extent_count,
        double(all) / 1e6, double(all) / double(long1), c.mean, c.extra, 100.0 * c.above_two, c.max,
        c.kib_decompressed);
  }
  for (auto [level, bytes] : {std::pair{1, long1}, std::pair{3, long3}}) {
    std::printf(
        "| all files concatenated, zstd -%d --long=27 | %.1f | %.2f | 1 | - | - | - | - | %.1f | "
        "%.2f | whole stream | - | - | - | - |\n",
        level, double(bytes) / 1e6, double(bytes) / double(long1), double(bytes) / 1e6,
        double(bytes) / double(long1));
  }
  std::printf("| raw | %.1f | %.2f | - | - | - | - | - | - | - | - | - | - | - | - |\n",
              double(total) / 1e6, double(total) / double(long1));
  // Reads of the largest file alone (the flattened table of the datasets workload, whose rows
  // are a permutation of rows stored earlier).
  size_t largest = 0;
  for (size_t f = 1; f < files.size(); ++f) {
    if (files[f].bytes.size() > files[largest].bytes.size()) largest = f;
  }
  std::printf(
      "\n4 KiB reads of the largest file alone (%s):\n| layout | mean decompressions | > 2 | "
      "of them delta bases | KiB decompressed | 20,000 random reads, KiB decompressed per read, "
      "via a 128 MiB cache "
      "| the same, 16 MiB cache |\n|---|---:|---:|---:|---:|---:|---:|\n",
      files.empty() ? "-" : files[largest].path.c_str());
  for (const Layout& l : layouts) {
    const ReadCost c = CostOfReads(files, l, largest);
    std::printf("| %s | %.2f | %.2f %% | %.2f | %.0f | %.1f | %.1f |\n", l.name.c_str(), c.mean,
                100.0 * c.above_two, c.extra, c.kib_decompressed,
                CachedReadKiB(files[largest], l, largest, 20000, uint64_t{128} << 20),
                CachedReadKiB(files[largest], l, largest, 20000, uint64_t{16} << 20));
  }
  Histogram("today (FastCDC)", today);
  Histogram("Arrow cuts", arrow);
  // What exact dedup leaves, before compression: what is left of the raw bytes is unique at
  // that granularity (near-duplicates included).
  std::printf("\nunique raw bytes after dedup: FastCDC chunks %llu, Arrow pieces %llu, of %llu\n",
              (unsigned long long)UnitBytes(today), (unsigned long long)UnitBytes(arrow),
              (unsigned long long)total);
  if (!rocksdb_dir.empty() && !ReportFrameMetaBytes(rocksdb_dir, rows, layouts[framed32], long1)) {
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace rankfs

int main(int argc, char** argv) { return rankfs::Main(argc, argv); }
