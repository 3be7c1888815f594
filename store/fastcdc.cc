// FastCdc and FixedChunker (see chunker.h for the contract).
//
// FastCdc keeps a gear fingerprint h = (h << 1) + kGear[byte]. Each step shifts earlier bytes
// one bit further up, so bit k of h depends only on the last k + 1 bytes and the whole value on
// the last 64: the cut test at a position is a function of the 64 bytes ending there and
// nothing else. That is what makes cuts resynchronise a few bytes after an insertion or
// deletion. The cut masks therefore use high bits (which see a long window), never the low ones.
//
// Normalized chunking (FastCDC section 3.3): before avg_size the test uses mask_small_
// (log2(avg) + 2 one-bits, 4x less likely to match than 1/avg), after it mask_large_
// (log2(avg) - 2 one-bits, 4x more likely), which pulls chunk sizes towards avg_size.
//
// The gear table and masks decide where chunks are cut, so changing them does not corrupt a
// store but stops new writes from deduplicating against old chunks: treat them as format.
#include <algorithm>
#include <array>
#include <bit>
#include <string>

#include "store/chunker.h"

namespace rankfs {
namespace {

constexpr uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// 256 pseudo-random 64-bit values from a fixed seed (ASCII "rankfsgr"), computed at compile time.
constexpr std::array<uint64_t, 256> MakeGearTable() {
  std::array<uint64_t, 256> t{};
  uint64_t state = 0x72616e6b66736772ull;
  for (auto& v : t) v = SplitMix64(&state);
  return t;
}

constexpr std::array<uint64_t, 256> kGear = MakeGearTable();

// Bytes hashed before the first position that may cut: enough for h to depend on nothing
// but the window, so the cut test does not depend on where the chunk started.
constexpr size_t kWarmup = 64;

// The lowest fingerprint bit a mask may use. Bit k sees only the last k + 1 bytes, so keeping
// every mask bit at 16 or above gives each of them a window of at least 17 bytes.
constexpr int kLowestMaskBit = 16;

// `ones` one-bits spread evenly over bits [kLowestMaskBit, 63], starting from bit 63.
constexpr uint64_t SpreadMask(int ones) {
  const int span = 64 - kLowestMaskBit;
  const int stride = std::max(1, span / ones);
  uint64_t m = 0;
  for (int i = 0; i < ones; ++i) m |= uint64_t{1} << (63 - i * stride);
  return m;
}

}  // namespace

FastCdc::FastCdc(const ChunkerParams& p) : p_(p) {
  const int bits = std::countr_zero(p.avg_size);  // log2(avg_size); avg is a power of two
  mask_small_ = SpreadMask(bits + 2);
  mask_large_ = SpreadMask(bits - 2);
}

Status FastCdc::ValidateParams(const ChunkerParams& p) {
  constexpr uint32_t kMaxChunk = 64u << 20;
  static_assert(kWarmup <= 64, "the minimum min_size must cover the warm-up");
  if (p.min_size < 64 || p.min_size > p.avg_size || p.avg_size > p.max_size ||
      p.max_size > kMaxChunk) {
    return ErrorStatus(EINVAL, "chunker params: need 64 <= min <= avg <= max <= 64 MiB, got min=" +
                                   std::to_string(p.min_size) +
                                   " avg=" + std::to_string(p.avg_size) +
                                   " max=" + std::to_string(p.max_size));
  }
  if (!std::has_single_bit(p.avg_size)) {
    return ErrorStatus(EINVAL, "chunker params: avg_size " + std::to_string(p.avg_size) +
                                   " is not a power of two");
  }
  return Status::Ok();
}

size_t FastCdc::NextCut(const uint8_t* data, size_t n) const {
  if (n <= p_.min_size) return n;
  const size_t end = std::min<size_t>(n, p_.max_size);
  const size_t normal = std::min<size_t>(p_.avg_size, end);
  uint64_t h = 0;
  size_t i = p_.min_size - kWarmup;
  for (; i < p_.min_size; ++i) h = (h << 1) + kGear[data[i]];
  // A cut after byte i gives a chunk of i + 1 bytes, so every chunk is longer than min_size.
  for (; i < normal; ++i) {
    h = (h << 1) + kGear[data[i]];
    if ((h & mask_small_) == 0) return i + 1;
  }
  for (; i < end; ++i) {
    h = (h << 1) + kGear[data[i]];
    if ((h & mask_large_) == 0) return i + 1;
  }
  return end;
}

std::vector<size_t> FastCdc::Split(const uint8_t* data, size_t n) const {
  std::vector<size_t> lengths;
  lengths.reserve(n / p_.avg_size + 1);
  for (size_t off = 0; off < n;) {
    const size_t len = NextCut(data + off, n - off);
    lengths.push_back(len);
    off += len;
  }
  return lengths;
}

std::vector<size_t> FixedChunker::Split(const uint8_t* data, size_t n) const {
  std::vector<size_t> lengths(n / size_, size_);
  if (n % size_ != 0) lengths.push_back(n % size_);
  return lengths;
}

}  // namespace rankfs
