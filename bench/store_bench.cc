// Micro-benchmarks of the chunk store's put paths against their raw bounds, measured in the
// same run: putting duplicate data vs. raw SHA-256 (a duplicate costs a hash and an index
// update), and putting unique data vs. raw zstd level 1 (a new chunk costs a hash, compression
// and an append). Single-threaded; 64 MiB of real data cut by FastCDC.
//
//   build/bench/store_bench --benchmark_repetitions=5
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench/bench_reporter.h"
#include "store/chunker.h"
#include "store/compressor.h"
#include "store/store.h"
#include "tests/testutil/temp_dir.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

struct Corpus {
  std::string data;
  std::vector<std::string_view> pieces;
};

const Corpus& GetCorpus() {
  static const Corpus* corpus = [] {
    auto* c = new Corpus;
    c->data = MakeRealData(64 << 20, 42);
    FastCdc cdc(ChunkerParams{});
    size_t off = 0;
    for (size_t len : cdc.Split(reinterpret_cast<const uint8_t*>(c->data.data()), c->data.size())) {
      c->pieces.push_back(std::string_view(c->data).substr(off, len));
      off += len;
    }
    return c;
  }();
  return *corpus;
}

std::unique_ptr<Store> OpenStore(const TempDir& dir, const std::string& name) {
  StoreOptions o;
  o.packs.background_reclaim = false;
  auto s = Store::Open(dir.Join(name), o);
  if (!s.ok()) {
    std::fprintf(stderr, "store_bench: %s\n", s.status().ToString().c_str());
    std::abort();
  }
  return std::move(s).value();
}

void BM_RawSha256(benchmark::State& state) {
  const Corpus& c = GetCorpus();
  for (auto _ : state) {
    for (std::string_view p : c.pieces) benchmark::DoNotOptimize(ChunkHash::Of(p));
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(c.data.size()));
}
BENCHMARK(BM_RawSha256)->Unit(benchmark::kMillisecond);

void BM_PutDuplicate(benchmark::State& state) {
  const Corpus& c = GetCorpus();
  TempDir dir("rankfs-bench-");
  auto store = OpenStore(dir, "dup");
  for (std::string_view p : c.pieces) (void)store->chunks()->Put(ChunkHash::Of(p), p);
  (void)store->chunks()->Flush();
  for (auto _ : state) {
    for (std::string_view p : c.pieces) {
      Status s = store->chunks()->Put(ChunkHash::Of(p), p);
      if (!s.ok()) state.SkipWithError(s.ToString().c_str());
    }
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(c.data.size()));
}
BENCHMARK(BM_PutDuplicate)->Unit(benchmark::kMillisecond);

void BM_RawZstd1(benchmark::State& state) {
  const Corpus& c = GetCorpus();
  std::string out;
  for (auto _ : state) {
    for (std::string_view p : c.pieces) {
      bool shrunk;
      (void)CompressChunk(p, 1, &out, &shrunk);
      benchmark::DoNotOptimize(out.data());
    }
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(c.data.size()));
}
BENCHMARK(BM_RawZstd1)->Unit(benchmark::kMillisecond);

void BM_PutUnique(benchmark::State& state) {
  const Corpus& c = GetCorpus();
  TempDir dir("rankfs-bench-");
  int round = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto store = OpenStore(dir, "unique" + std::to_string(round++));
    state.ResumeTiming();
    for (std::string_view p : c.pieces) {
      Status s = store->chunks()->Put(ChunkHash::Of(p), p);
      if (!s.ok()) state.SkipWithError(s.ToString().c_str());
    }
    Status s = store->chunks()->Flush();
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
    state.PauseTiming();
    store.reset();
    state.ResumeTiming();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(c.data.size()));
}
BENCHMARK(BM_PutUnique)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace rankfs

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  rankfs::RecordingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  const double sha = reporter.Gbps("BM_RawSha256"), dup = reporter.Gbps("BM_PutDuplicate");
  const double zstd = reporter.Gbps("BM_RawZstd1"), uniq = reporter.Gbps("BM_PutUnique");
  rankfs::PrintRatio("put_duplicate_vs_sha256", dup, sha, " (target >= 0.7)");
  rankfs::PrintRatio("put_unique_vs_zstd1", uniq, zstd, " (target >= 0.7)");
  return 0;
}
