#include "bench/resemblance.h"

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace rankfs {
namespace {

uint64_t SplitMix(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

struct Tables {
  std::array<uint64_t, 256> gear;
  std::array<uint64_t, kFeatures> mul, add;
  Tables() {
    uint64_t s = 0x5eed0f0de55a11ULL;  // fixed: features must not change between runs
    for (uint64_t& g : gear) g = SplitMix(&s);
    for (int i = 0; i < kFeatures; ++i) {
      mul[i] = SplitMix(&s) | 1;  // odd: a bijection of the 64-bit hash
      add[i] = SplitMix(&s);
    }
  }
};

const Tables& T() {
  static const Tables t;
  return t;
}

void Fail(const char* what, size_t code) {
  std::fprintf(stderr, "space_levers: delta %s: %s\n", what,
               ZSTD_isError(code) ? ZSTD_getErrorName(code) : "bytes differ");
  std::exit(1);
}

}  // namespace

std::vector<uint64_t> ComputeSuperFeatures(std::string_view piece, int features_per_sf) {
  const Tables& t = T();
  std::array<uint64_t, kFeatures> feature{};
  uint64_t h = 0;
  size_t samples = 0;
  for (size_t i = 0; i < piece.size(); ++i) {
    h = (h << 1) + t.gear[uint8_t(piece[i])];
    // The top bits of a gear hash depend on the last 64 bytes; the low ones on the last few.
    if (i < 64 || (h >> (64 - kSampleBits)) != 0) continue;
    ++samples;
    for (int f = 0; f < kFeatures; ++f) {
      const uint64_t v = t.mul[f] * h + t.add[f];
      if (v > feature[f]) feature[f] = v;
    }
  }
  std::vector<uint64_t> out;
  if (samples == 0) return out;
  for (int sf = 0; sf < kFeatures / features_per_sf; ++sf) {
    uint64_t s = uint64_t(sf) * 0x632be59bd9b4e019ULL;
    for (int f = 0; f < features_per_sf; ++f) {
      s ^= feature[sf * features_per_sf + f];
      s = SplitMix(&s);
    }
    out.push_back(s);
  }
  return out;
}

DeltaPlanner::DeltaPlanner(int level, int features_per_sf)
    : level_(level),
      features_per_sf_(features_per_sf),
      cctx_(ZSTD_createCCtx()),
      dctx_(ZSTD_createDCtx()),
      index_(size_t(kFeatures / features_per_sf)) {}

DeltaPlanner::~DeltaPlanner() {
  ZSTD_freeCCtx(cctx_);
  ZSTD_freeDCtx(dctx_);
}

DeltaDecision DeltaPlanner::Offer(std::string_view piece, size_t alone) {
  const uint32_t id = uint32_t(pieces_.size());
  pieces_.push_back(piece);
  DeltaDecision d;
  if (piece.size() < kMinDeltaPiece) return d;
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<uint64_t> sf = ComputeSuperFeatures(piece, features_per_sf_);
  feature_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  feature_bytes_ += piece.size();
  if (sf.empty()) return d;
  const int slots = int(sf.size());
  // The candidate sharing the most super-features; ties go to the lowest slot's (Odess).
  uint32_t best = 0;
  int best_count = 0;
  for (int i = 0; i < slots; ++i) {
    auto it = index_[i].find(sf[i]);
    if (it == index_[i].end()) continue;
    int count = 0;
    for (int j = 0; j < slots; ++j) {
      auto jt = index_[j].find(sf[j]);
      if (jt != index_[j].end() && jt->second == it->second) ++count;
    }
    if (count > best_count) {
      best_count = count;
      best = it->second;
    }
  }
  if (best_count > 0) {
    ++candidates_;
    const std::string_view base = pieces_[best];
    out_.resize(ZSTD_compressBound(piece.size()));
    ZSTD_CCtx_reset(cctx_, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, level_);
    size_t n = ZSTD_CCtx_refPrefix(cctx_, base.data(), base.size());
    if (ZSTD_isError(n)) Fail("refPrefix", n);
    n = ZSTD_compress2(cctx_, out_.data(), out_.size(), piece.data(), piece.size());
    if (ZSTD_isError(n)) Fail("compress", n);
    if (double(n) < kKeepRatio * double(alone)) {
      // Decode it as a reader would: the delta with the base's raw bytes as its prefix.
      back_.resize(piece.size() + 1);
      ZSTD_DCtx_reset(dctx_, ZSTD_reset_session_and_parameters);
      size_t r = ZSTD_DCtx_refPrefix(dctx_, base.data(), base.size());
      if (ZSTD_isError(r)) Fail("refPrefix (decode)", r);
      r = ZSTD_decompressDCtx(dctx_, back_.data(), back_.size(), out_.data(), n);
      if (ZSTD_isError(r)) Fail("decode", r);
      if (r != piece.size() || std::memcmp(back_.data(), piece.data(), r) != 0) Fail("decode", 0);
      ++verified_;
      d.is_delta = true;
      d.base = best;
      d.delta_size = n;
      return d;  // a delta never becomes a base: it is not indexed
    }
  }
  for (int i = 0; i < slots; ++i) index_[i][sf[i]] = id;
  return d;
}

}  // namespace rankfs
