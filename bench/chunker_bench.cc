// Chunk-path compute: FastCDC cutting, SHA-256 (the chunk identity) and CRC32C (the stored
// checksum), against memcpy as the raw bound of touching the bytes once.
//
// Input: 64 MiB of MakeRealData (real binaries, text and token ids; see
// tests/testutil/test_data.h), the same mix the dedup tests use. After the benchmarks the
// custom main prints one "name=value" line per ratio so scripts can grep them.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "bench/bench_reporter.h"
#include "store/chunker.h"
#include "store/crc32c.h"
#include "store/crc32c_internal.h"
#include "store/types.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

constexpr size_t kDataBytes = 64 << 20;
constexpr size_t kHashPiece = 64 << 10;  // the default average chunk size

const std::string& RealData() {
  static const std::string data = MakeRealData(kDataBytes, 1);
  return data;
}

const std::string& RandomData() {
  static const std::string data = MakeRandomData(kDataBytes, 1);
  return data;
}

const uint8_t* Bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

void SetBytes(benchmark::State& state, size_t per_iteration) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * per_iteration));
}

void BM_Memcpy(benchmark::State& state) {
  const std::string& src = RealData();
  std::string dst(src.size(), '\0');
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), src.size());
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  SetBytes(state, src.size());
}
BENCHMARK(BM_Memcpy)->Unit(benchmark::kMillisecond);

// ChunkHash::Of over 64 KiB pieces: what hashing every chunk of a stream costs.
void BM_Sha256(benchmark::State& state) {
  const std::string_view data = RealData();
  for (auto _ : state) {
    for (size_t off = 0; off < data.size(); off += kHashPiece) {
      benchmark::DoNotOptimize(ChunkHash::Of(data.substr(off, kHashPiece)));
    }
  }
  SetBytes(state, data.size());
}
BENCHMARK(BM_Sha256)->Unit(benchmark::kMillisecond);

void BM_FastCdc(benchmark::State& state) {
  const std::string& data = RealData();
  const FastCdc cdc(ChunkerParams{});
  size_t chunks = 0;
  for (auto _ : state) {
    const std::vector<size_t> lengths = cdc.Split(Bytes(data), data.size());
    chunks = lengths.size();
    benchmark::DoNotOptimize(lengths.data());
  }
  SetBytes(state, data.size());
  state.counters["mean_chunk"] = static_cast<double>(data.size()) / chunks;
}
BENCHMARK(BM_FastCdc)->Unit(benchmark::kMillisecond);

// Random bytes have no long runs, so nearly every cut falls in the normalized region.
void BM_FastCdcRandom(benchmark::State& state) {
  const std::string& data = RandomData();
  const FastCdc cdc(ChunkerParams{});
  for (auto _ : state) {
    const std::vector<size_t> lengths = cdc.Split(Bytes(data), data.size());
    benchmark::DoNotOptimize(lengths.data());
  }
  SetBytes(state, data.size());
}
BENCHMARK(BM_FastCdcRandom)->Unit(benchmark::kMillisecond);

void BM_Crc32c(benchmark::State& state) {
  const std::string& data = RealData();
  for (auto _ : state) benchmark::DoNotOptimize(Crc32c(data.data(), data.size()));
  SetBytes(state, data.size());
}
BENCHMARK(BM_Crc32c)->Unit(benchmark::kMillisecond);

void BM_Crc32cPortable(benchmark::State& state) {
  const std::string& data = RealData();
  for (auto _ : state) {
    benchmark::DoNotOptimize(crc32c_internal::ExtendPortable(0, Bytes(data), data.size()));
  }
  SetBytes(state, data.size());
}
BENCHMARK(BM_Crc32cPortable)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace rankfs

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  rankfs::RecordingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  const double cdc = reporter.Gbps("BM_FastCdc");
  const double sha = reporter.Gbps("BM_Sha256");
  const double crc = reporter.Gbps("BM_Crc32c");
  const double copy = reporter.Gbps("BM_Memcpy");
  rankfs::PrintRatio("fastcdc_gbps_per_core", cdc, 1.0, " (target >= 1.0)");
  rankfs::PrintRatio("fastcdc_random_gbps_per_core", reporter.Gbps("BM_FastCdcRandom"), 1.0, "");
  rankfs::PrintRatio("sha256_gbps_per_core", sha, 1.0, "");
  rankfs::PrintRatio("crc32c_gbps_per_core", crc, 1.0, "");
  rankfs::PrintRatio("crc32c_portable_gbps_per_core", reporter.Gbps("BM_Crc32cPortable"), 1.0, "");
  rankfs::PrintRatio("memcpy_gbps_per_core", copy, 1.0, "");
  // Chunking plus hashing a stream runs at 1 / (1/cdc + 1/sha); these say how much of that
  // budget each stage takes, relative to the raw bounds measured in this run.
  rankfs::PrintRatio("fastcdc_vs_sha256", cdc, sha, " (how many times faster than hashing)");
  rankfs::PrintRatio("fastcdc_vs_memcpy", cdc, copy, "");
  rankfs::PrintRatio("crc32c_vs_sha256", crc, sha, "");
  return 0;
}
