// Chunkers cut a byte stream into chunks, the unit of deduplication.
//
// FastCdc: content-defined chunking (gear rolling hash with normalized chunking, after Xia et
// al., "FastCDC", USENIX ATC 2016). Cut points depend only on nearby content, so inserting a few
// bytes near the start of a stream moves only the cuts around the insertion. Used for streams.
// FixedChunker: cuts every `size` bytes. The daemon does not use it: rewritten ranges are cut
// with FastCdc too (fs/write_path.cc), so that a rewrite of bytes equal to stored ones finds
// the same chunks. It is a baseline for tests.
//
// Thread-safety: both are immutable after construction and safe to share between threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "store/status.h"
#include "store/types.h"

namespace rankfs {

class FastCdc {
 public:
  // REQUIRES: ValidateParams(p).ok().
  explicit FastCdc(const ChunkerParams& p);

  // Checks 64 <= min <= avg <= max <= 64 MiB and that avg is a power of two.
  static Status ValidateParams(const ChunkerParams& p);

  // Returns the length of the chunk that starts at data[0]: a value in [1, n] for n > 0
  // (0 for n == 0). Returns n when n <= min_size; never returns more than max_size.
  // For a stream, call with n >= max_size unless `data` holds the last bytes of the stream:
  // a cut found in a shorter prefix may differ from the cut found with more data.
  size_t NextCut(const uint8_t* data, size_t n) const;

  // Cuts a whole buffer; returns the chunk lengths (they sum to n).
  std::vector<size_t> Split(const uint8_t* data, size_t n) const;

  const ChunkerParams& params() const { return p_; }

 private:
  ChunkerParams p_;
  uint64_t mask_small_;  // more one-bits: harder to cut before avg_size
  uint64_t mask_large_;  // fewer one-bits: easier to cut after avg_size
};

class FixedChunker {
 public:
  explicit FixedChunker(size_t size) : size_(size == 0 ? 1 : size) {}
  size_t NextCut(const uint8_t* data, size_t n) const { return n < size_ ? n : size_; }
  std::vector<size_t> Split(const uint8_t* data, size_t n) const;
  size_t size() const { return size_; }

 private:
  size_t size_;
};

}  // namespace rankfs
