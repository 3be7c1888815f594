// FastCdc and FixedChunker: bounds, determinism, streaming, parameter checks, and the property
// dedup relies on: a few bytes inserted or deleted change only the chunks around the edit.
#include "store/chunker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <string>
#include <unordered_set>
#include <vector>

#include "store/types.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

const uint8_t* Bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// 64 MiB of real data, built once for the whole binary.
const std::string& RealData() {
  static const std::string data = MakeRealData(64 << 20, 1);
  return data;
}

// Fraction of `after`'s bytes that lie in chunks whose SHA-256 also occurs among `before`'s
// chunks: the share of `after` that a store holding `before` would not store again.
double SharedFraction(const FastCdc& cdc, const std::string& before, const std::string& after) {
  std::unordered_set<ChunkHash, ChunkHashHasher> known;
  size_t off = 0;
  for (size_t len : cdc.Split(Bytes(before), before.size())) {
    known.insert(ChunkHash::Of(std::string_view(before).substr(off, len)));
    off += len;
  }
  size_t shared = 0;
  off = 0;
  for (size_t len : cdc.Split(Bytes(after), after.size())) {
    if (known.count(ChunkHash::Of(std::string_view(after).substr(off, len)))) shared += len;
    off += len;
  }
  return static_cast<double>(shared) / after.size();
}

void CheckBounds(const ChunkerParams& p, const std::vector<size_t>& lengths, size_t n) {
  ASSERT_EQ(std::accumulate(lengths.begin(), lengths.end(), size_t{0}), n);
  for (size_t i = 0; i + 1 < lengths.size(); ++i) {
    ASSERT_GE(lengths[i], p.min_size) << "chunk " << i;
    ASSERT_LE(lengths[i], p.max_size) << "chunk " << i;
  }
  if (!lengths.empty()) {
    ASSERT_GE(lengths.back(), 1u);
    ASSERT_LE(lengths.back(), p.max_size);
  }
}

TEST(FastCdcTest, ValidateParams) {
  EXPECT_TRUE(FastCdc::ValidateParams(ChunkerParams{}).ok());
  EXPECT_TRUE(FastCdc::ValidateParams({64, 64, 64}).ok());
  EXPECT_TRUE(FastCdc::ValidateParams({1 << 20, 1 << 22, 64 << 20}).ok());
  const ChunkerParams bad[] = {
      {63, 1024, 4096},              // min below 64
      {2048, 1024, 4096},            // min > avg
      {1024, 8192, 4096},            // avg > max
      {1024, 4096, (64 << 20) + 1},  // max above 64 MiB
      {1024, 3000, 4096},            // avg not a power of two
      {0, 0, 0},
  };
  for (const ChunkerParams& p : bad) {
    const Status s = FastCdc::ValidateParams(p);
    EXPECT_FALSE(s.ok()) << p.min_size << "/" << p.avg_size << "/" << p.max_size;
    EXPECT_EQ(s.code(), EINVAL);
  }
}

TEST(FastCdcTest, NextCutEdges) {
  const ChunkerParams p;
  const FastCdc cdc(p);
  const std::string data = MakeRandomData(1 << 20, 5);
  EXPECT_EQ(cdc.NextCut(Bytes(data), 0), 0u);
  EXPECT_EQ(cdc.NextCut(Bytes(data), 1), 1u);
  EXPECT_EQ(cdc.NextCut(Bytes(data), p.min_size), p.min_size);
  EXPECT_LE(cdc.NextCut(Bytes(data), data.size()), p.max_size);
  // A constant run has a constant fingerprint: it cuts just after min_size, just after
  // avg_size, or at max_size, but always within the bounds.
  const std::string zeros(1 << 20, '\0');
  const size_t z = cdc.NextCut(Bytes(zeros), zeros.size());
  EXPECT_TRUE(z == p.min_size + 1 || z == p.avg_size + 1 || z == p.max_size) << z;
  EXPECT_TRUE(cdc.Split(nullptr, 0).empty());
}

TEST(FastCdcTest, CutsWithinBounds) {
  const ChunkerParams defaults;
  const std::string& real = RealData();
  CheckBounds(defaults, FastCdc(defaults).Split(Bytes(real), real.size()), real.size());
  const ChunkerParams small{64, 256, 1024};
  const std::string random = MakeRandomData(1 << 20, 6);
  CheckBounds(small, FastCdc(small).Split(Bytes(random), random.size()), random.size());
  const ChunkerParams flat{4096, 4096, 4096};
  CheckBounds(flat, FastCdc(flat).Split(Bytes(random), random.size()), random.size());
}

TEST(FastCdcTest, Deterministic) {
  const std::string& real = RealData();
  const auto a = FastCdc(ChunkerParams{}).Split(Bytes(real), real.size());
  const auto b = FastCdc(ChunkerParams{}).Split(Bytes(real), real.size());
  EXPECT_EQ(a, b);
  // Different data cuts differently (the cuts do depend on content).
  const std::string other = MakeRandomData(real.size(), 9);
  EXPECT_NE(a, FastCdc(ChunkerParams{}).Split(Bytes(other), other.size()));
}

// A writer sees the stream in pieces; it cuts whenever it holds max_size bytes and flushes the
// tail at the end. That must give exactly the chunks Split() gives for the whole stream.
TEST(FastCdcTest, StreamingEqualsSplit) {
  const ChunkerParams p;
  const FastCdc cdc(p);
  const std::string data = RealData().substr(0, 16 << 20);
  const auto expected = cdc.Split(Bytes(data), data.size());

  std::vector<size_t> streamed;
  std::string pending;
  size_t fed = 0;
  size_t piece = 8192;
  while (fed < data.size()) {
    const size_t take = std::min(piece, data.size() - fed);
    pending.append(data, fed, take);
    fed += take;
    piece = piece == 8192 ? 100000 : piece == 100000 ? 1 << 20 : 8192;  // uneven writes
    while (pending.size() >= p.max_size) {
      const size_t len = cdc.NextCut(Bytes(pending), pending.size());
      streamed.push_back(len);
      pending.erase(0, len);
    }
  }
  while (!pending.empty()) {
    const size_t len = cdc.NextCut(Bytes(pending), pending.size());
    streamed.push_back(len);
    pending.erase(0, len);
  }
  EXPECT_EQ(streamed, expected);

  // A window of exactly max_size bytes is enough.
  std::vector<size_t> windowed;
  for (size_t off = 0; off < data.size();) {
    const size_t len =
        cdc.NextCut(Bytes(data) + off, std::min<size_t>(p.max_size, data.size() - off));
    windowed.push_back(len);
    off += len;
  }
  EXPECT_EQ(windowed, expected);
}

TEST(FastCdcTest, AverageChunkSizeNearTarget) {
  for (const ChunkerParams& p : {ChunkerParams{}, ChunkerParams{4096, 16384, 65536},
                                 ChunkerParams{256 << 10, 1 << 20, 4 << 20}}) {
    const std::string& real = RealData();
    const auto lengths = FastCdc(p).Split(Bytes(real), real.size());
    const double mean = static_cast<double>(real.size()) / lengths.size();
    const size_t forced = std::count(lengths.begin(), lengths.end(), size_t{p.max_size});
    std::printf(
        "real data, avg_size=%u: %zu chunks, mean %.0f bytes (%.2fx avg_size), %zu cut "
        "at max_size\n",
        p.avg_size, lengths.size(), mean, mean / p.avg_size, forced);
    EXPECT_GE(mean, 0.5 * p.avg_size);
    EXPECT_LE(mean, 2.0 * p.avg_size);
  }
  const std::string random = MakeRandomData(16 << 20, 10);
  const auto lengths = FastCdc(ChunkerParams{}).Split(Bytes(random), random.size());
  const double mean = static_cast<double>(random.size()) / lengths.size();
  std::printf("random data: mean chunk %.0f bytes\n", mean);
  EXPECT_GE(mean, 0.5 * ChunkerParams{}.avg_size);
  EXPECT_LE(mean, 2.0 * ChunkerParams{}.avg_size);
}

// Invariant 2 of the design: copies whose headers differ by a few bytes share >= 95% of their
// bytes in identical chunks.
struct EditCase {
  const char* name;
  size_t offset;  // SIZE_MAX: the middle of the buffer
  bool insert;    // else delete
};

class ShiftRobustnessTest : public ::testing::TestWithParam<EditCase> {};

TEST_P(ShiftRobustnessTest, MostBytesStayInSharedChunks) {
  const EditCase& c = GetParam();
  const std::string& before = RealData();
  const size_t at = c.offset == SIZE_MAX ? before.size() / 2 : c.offset;
  std::string after = before;
  if (c.insert) {
    after.insert(at, MakeRandomData(37, 11));
  } else {
    after.erase(at, 37);
  }
  const double shared = SharedFraction(FastCdc(ChunkerParams{}), before, after);
  std::printf("%s: %.4f%% of the edited buffer lies in chunks of the original\n", c.name,
              100 * shared);
  EXPECT_GE(shared, 0.95);
}

INSTANTIATE_TEST_SUITE_P(Edits, ShiftRobustnessTest,
                         ::testing::Values(EditCase{"insert37_at1000", 1000, true},
                                           EditCase{"delete37_at1000", 1000, false},
                                           EditCase{"insert37_at0", 0, true},
                                           EditCase{"insert37_middle", SIZE_MAX, true},
                                           EditCase{"delete37_middle", SIZE_MAX, false}),
                         [](const ::testing::TestParamInfo<EditCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(FastCdcTest, SeveralEditsStillShareMost) {
  const std::string& before = RealData();
  std::string after = before;
  // Ten scattered edits (inserts and deletes of various sizes), back to front so the offsets
  // refer to the original.
  for (int i = 9; i >= 0; --i) {
    const size_t at = 1000 + i * (before.size() / 10);
    if (i % 2 == 0) {
      after.insert(at, MakeRandomData(1 + i * 13, i));
    } else {
      after.erase(at, 1 + i * 7);
    }
  }
  const double shared = SharedFraction(FastCdc(ChunkerParams{}), before, after);
  std::printf("10 edits: %.4f%% shared\n", 100 * shared);
  EXPECT_GE(shared, 0.95);
}

TEST(FixedChunkerTest, Cuts) {
  const FixedChunker c(4);
  EXPECT_EQ(c.Split(nullptr, 10), (std::vector<size_t>{4, 4, 2}));
  EXPECT_EQ(c.Split(nullptr, 8), (std::vector<size_t>{4, 4}));
  EXPECT_EQ(c.Split(nullptr, 3), (std::vector<size_t>{3}));
  EXPECT_TRUE(c.Split(nullptr, 0).empty());
  EXPECT_EQ(c.NextCut(nullptr, 10), 4u);
  EXPECT_EQ(c.NextCut(nullptr, 2), 2u);
  EXPECT_EQ(FixedChunker(0).size(), 1u);  // a zero size would never make progress
  EXPECT_EQ(FixedChunker(0).Split(nullptr, 3), (std::vector<size_t>{1, 1, 1}));
}

TEST(TestDataTest, RealDataIsDeterministicAndMixed) {
  const std::string a = MakeRealData(8 << 20, 42);
  EXPECT_EQ(a.size(), 8u << 20);
  EXPECT_EQ(a, MakeRealData(8 << 20, 42));
  EXPECT_NE(a, MakeRealData(8 << 20, 43));
  EXPECT_NE(a.find("\177ELF"), std::string::npos);  // binaries are in the mix
  EXPECT_EQ(MakeRealData(12345, 1).size(), 12345u);
  EXPECT_EQ(MakeRandomData(13, 1), MakeRandomData(13, 1));
  EXPECT_NE(MakeRandomData(16, 1), MakeRandomData(16, 2));
}

}  // namespace
}  // namespace rankfs
