// The Arrow IPC cutter's cost (store/arrow_ipc.h): FindArrowCuts over a whole stream, and
// ArrowStreamCutter fed the same stream in pieces of 4 KiB .. 1 MiB (what the write path will
// see), against memcpy of the stream as the raw bound of touching the bytes once.
//
// Input: a tokenised-dataset-like stream (schema [text: utf8, ids: list<int32>]) of 100 record
// batches of 200 rows, rows of 200..2200 bytes of text and a quarter as many token ids: about
// 48 MB, batches of about 470 KB. Written by tests/testutil/arrow_ipc_writer.h.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "store/arrow_ipc.h"
#include "tests/testutil/arrow_ipc_writer.h"

namespace rankfs {
namespace {

namespace at = arrow_testing;

const std::string& Stream() {
  static const std::string stream = [] {
    auto schema = at::Schema(
        {at::Field("text", at::kUtf8, nullptr),
         at::Field("ids", at::kList, nullptr, {at::Field("item", at::kInt, at::IntType(32))})});
    std::string s = at::Frame(1, schema, "");
    std::mt19937 rng(1);
    constexpr int kRows = 200;
    for (int batch = 0; batch < 100; ++batch) {
      std::vector<int32_t> text_off{0}, ids_off{0}, ids;
      std::string text;
      for (int r = 0; r < kRows; ++r) {
        const size_t len = 200 + rng() % 2000;
        for (size_t i = 0; i < len; ++i) text.push_back(char('a' + rng() % 26));
        text_off.push_back(int32_t(text.size()));
        for (size_t i = 0; i < len / 4; ++i) ids.push_back(int32_t(rng() % 50000));
        ids_off.push_back(int32_t(ids.size()));
      }
      at::BatchBuilder b;
      b.Node(kRows);
      b.Buffer("");
      b.Buffer(at::Packed(text_off));
      b.Buffer(text);
      b.Node(kRows);
      b.Buffer("");
      b.Buffer(at::Packed(ids_off));
      b.Node(int64_t(ids.size()));
      b.Buffer("");
      b.Buffer(at::Packed(ids));
      s += b.Message(kRows);
    }
    return s + at::EndOfStream();
  }();
  return stream;
}

const uint8_t* Bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

void BM_Memcpy(benchmark::State& state) {
  const std::string& s = Stream();
  std::string dst(s.size(), '\0');
  for (auto _ : state) {
    std::memcpy(dst.data(), s.data(), s.size());
    benchmark::DoNotOptimize(dst.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(s.size()));
}
BENCHMARK(BM_Memcpy);

void BM_FindArrowCuts(benchmark::State& state) {
  const std::string& s = Stream();
  for (auto _ : state) {
    const ArrowCuts c = FindArrowCuts(Bytes(s), s.size(), {});
    if (c.stop != ArrowStop::kEndOfStream) state.SkipWithError("stream not understood");
    benchmark::DoNotOptimize(c.cuts.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(s.size()));
}
BENCHMARK(BM_FindArrowCuts);

// Arg: the size of each Feed. A message that lies whole in one Feed is cut without a copy;
// one that spans Feeds is copied into the cutter's buffer.
void BM_ArrowStreamCutter(benchmark::State& state) {
  const std::string& s = Stream();
  const size_t piece = size_t(state.range(0));
  std::vector<uint64_t> cuts;
  for (auto _ : state) {
    ArrowStreamCutter cutter;
    cuts.clear();
    for (size_t at = 0; at < s.size(); at += piece) {
      cutter.Feed(Bytes(s) + at, std::min(piece, s.size() - at), &cuts);
    }
    cutter.Finish(&cuts);
    if (cutter.stop() != ArrowStop::kEndOfStream) state.SkipWithError("stream not understood");
    benchmark::DoNotOptimize(cuts.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(s.size()));
  state.counters["cuts"] = double(cuts.size());
}
BENCHMARK(BM_ArrowStreamCutter)->Arg(4 << 10)->Arg(128 << 10)->Arg(1 << 20);

}  // namespace
}  // namespace rankfs

BENCHMARK_MAIN();
