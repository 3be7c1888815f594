// Replays the fuzz inputs in the ordinary build: every seed under fuzz/corpus/<target>/ and
// every saved crash under tests/fuzz_regressions/<target>/ goes through the same target body
// the libFuzzer binaries run (fuzz/fuzz_targets.h). A target body aborts when an invariant
// breaks, which kills and so fails this test; the line printed before each input names the
// culprit. docs/fuzzing.md: how a fuzzer finding becomes a file here.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <new>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fuzz/fuzz_targets.h"

// No input of these targets needs a single allocation beyond a 64 MiB chunk and its record, so
// a larger one means a decoder trusted a damaged length (the first fuzz finding allocated 816
// MiB per read; docs/fuzzing.md). libFuzzer catches it with -malloc_limit_mb; this makes the
// ordinary build's replay fail on it too. Sanitizer runtimes replace operator new themselves.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define RANKFS_REPLAY_ALLOCATION_LIMIT 1
// gcc cannot see that the replaced operator new allocates with malloc.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
constexpr size_t kMaxAllocation = size_t{256} << 20;
void* operator new(size_t n) {
  if (n > kMaxAllocation) {
    std::fprintf(stderr, "fuzz replay: allocation of %zu bytes exceeds the %zu-byte limit\n", n,
                 kMaxAllocation);
    std::abort();
  }
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#endif

namespace rankfs::fuzz {
namespace {

namespace fs = std::filesystem;

const fs::path kSource = RANKFS_SOURCE_DIR;

std::vector<fs::path> FilesIn(const fs::path& dir) {
  std::vector<fs::path> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Runs `t` on every file of `dir`; returns how many it ran.
size_t Replay(const Target& t, const fs::path& dir) {
  size_t n = 0;
  for (const fs::path& p : FilesIn(dir)) {
    std::ifstream in(p, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_TRUE(in.good() || in.eof()) << p;
    std::fprintf(stderr, "replaying %s (%zu bytes)\n", p.c_str(), bytes.size());
    EXPECT_EQ(t.fn(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), 0) << p;
    ++n;
  }
  return n;
}

class FuzzReplayTest : public ::testing::TestWithParam<Target> {};

TEST_P(FuzzReplayTest, SeedCorpusAndRegressions) {
  const Target& t = GetParam();
  size_t seeds = Replay(t, kSource / "fuzz/corpus" / t.name);
  // Every target has seeds: an empty corpus would make this test, and the fuzzer's start,
  // vacuous.
  EXPECT_GT(seeds, 0u) << "no seeds in fuzz/corpus/" << t.name;
  Replay(t, kSource / "tests/fuzz_regressions" / t.name);
}

// The empty input and a few short ones reach every target's early exits.
TEST_P(FuzzReplayTest, ShortInputs) {
  const Target& t = GetParam();
  for (size_t len = 0; len <= 64; ++len) {
    std::string zeros(len, '\0'), ones(len, '\xff');
    EXPECT_EQ(t.fn(reinterpret_cast<const uint8_t*>(zeros.data()), len), 0);
    EXPECT_EQ(t.fn(reinterpret_cast<const uint8_t*>(ones.data()), len), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(AllTargets, FuzzReplayTest, ::testing::ValuesIn(AllTargets()),
                         [](const auto& info) { return std::string(info.param.name); });

// A regression saved under a directory that names no target would never be replayed.
TEST(FuzzReplay, RegressionDirectoriesNameTargets) {
  std::set<std::string> names;
  for (const Target& t : AllTargets()) names.insert(std::string(t.name));
  for (const char* root : {"tests/fuzz_regressions", "fuzz/corpus"}) {
    ASSERT_TRUE(fs::is_directory(kSource / root)) << root;
    for (const auto& e : fs::directory_iterator(kSource / root)) {
      if (e.is_directory()) {
        EXPECT_TRUE(names.count(e.path().filename().string())) << e.path();
      } else {
        EXPECT_EQ(e.path().filename(), "README.md") << "stray file " << e.path();
      }
    }
  }
}

#ifdef RANKFS_REPLAY_ALLOCATION_LIMIT
// The allocation limit above is in force, so a replayed input that trusts a damaged length
// fails here instead of passing slowly.
TEST(FuzzReplayDeathTest, OversizedAllocationAborts) {
  EXPECT_DEATH(
      {
        std::string s(kMaxAllocation + 1, '\0');
        std::fprintf(stderr, "%c", s[0]);
      },
      "exceeds the");
}
#endif

}  // namespace
}  // namespace rankfs::fuzz
