// Resemblance detection and depth-1 deltas for space_levers (issue #26, lever 3).
//
// SuperFeatures: Odess-style. A gear rolling hash runs over the piece; only positions whose
// hash has its low kSampleBits bits zero are sampled (content-defined sampling, so an insertion
// moves samples with the content instead of shifting them all). Each sample is put through
// kFeatures random linear transforms, and each transform keeps its largest value: a feature.
// Groups of kFeaturesPerSf features are hashed into a super-feature. Two pieces sharing a
// super-feature very likely share most of its features' samples, i.e. much of their content.
//
// DeltaPlanner picks, for each new unique piece in order, the earlier non-delta piece that
// shares the most super-features, compresses the new piece against the base's raw bytes
// (ZSTD_CCtx_refPrefix), and keeps the delta only when it is below kKeepRatio of the piece
// compressed alone. A piece stored as a delta never becomes a base, so a read decompresses at
// most its unit and the base's unit. Every kept delta is decoded with its base and compared;
// a mismatch is a fatal error (the caller's smoke test relies on that).
//
// Thread-safety: none; one planner per thread.
#pragma once

#include <zstd.h>

#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rankfs {

inline constexpr int kSampleBits = 5;  // one sample per 32 bytes on average
inline constexpr int kFeatures = 12;
inline constexpr int kDefaultFeaturesPerSf = 4;  // 3 super-features of 4 features (Odess)
inline constexpr double kKeepRatio = 0.8;
inline constexpr size_t kMinDeltaPiece = 512;  // smaller pieces are never deltas nor bases

// kFeatures / features_per_sf super-features (features_per_sf divides kFeatures). Fewer
// features per super-feature find bases that share less. Empty when the piece has no sampled
// position (too short or degenerate content).
std::vector<uint64_t> ComputeSuperFeatures(std::string_view piece, int features_per_sf);

struct DeltaDecision {
  bool is_delta = false;
  uint32_t base = 0;      // index of the base among the pieces offered so far
  size_t delta_size = 0;  // compressed delta bytes (when is_delta)
};

class DeltaPlanner {
 public:
  DeltaPlanner(int level, int features_per_sf);
  ~DeltaPlanner();
  DeltaPlanner(const DeltaPlanner&) = delete;
  DeltaPlanner& operator=(const DeltaPlanner&) = delete;

  // Offers the next unique piece (index = number of pieces offered before). `alone` is its
  // size compressed on its own. REQUIRES: the bytes behind every offered view stay valid.
  DeltaDecision Offer(std::string_view piece, size_t alone);

  uint64_t verified() const { return verified_; }
  uint64_t candidates() const { return candidates_; }          // pieces that found a base to try
  double feature_seconds() const { return feature_seconds_; }  // in ComputeSuperFeatures
  uint64_t feature_bytes() const { return feature_bytes_; }

 private:
  int level_;
  int features_per_sf_;
  ZSTD_CCtx* cctx_;
  ZSTD_DCtx* dctx_;
  std::vector<std::string_view> pieces_;
  // Super-feature slot i: value -> the latest non-delta piece with it.
  std::vector<std::unordered_map<uint64_t, uint32_t>> index_;
  std::vector<char> out_, back_;
  uint64_t verified_ = 0, candidates_ = 0, feature_bytes_ = 0;
  double feature_seconds_ = 0;
};

}  // namespace rankfs
