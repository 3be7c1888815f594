// SuccessorTable: which chunk followed which in the streams written so far.
//
// N ranks write the same bytes. Once one stream has cut a run of chunks A, B, C, ..., another
// stream that has just produced A can guess that its next chunk is B, and confirm it by
// comparing its bytes with B's (held in the chunk cache) instead of running FastCDC and SHA-256
// over them: a memcmp is ~10x cheaper than a SHA-256. A wrong guess costs a short memcmp and
// nothing else; a right one is exactly the chunk the chunker would have cut, because a
// content-defined cut depends only on the bytes before it (fs/stream_chunker.h).
//
// The table is a hint: it has a fixed number of slots (memory does not grow with the data),
// a colliding entry simply replaces the older one, and nothing in it is trusted without the
// byte comparison. Keys are chunk addresses as the store computes them (scoped by uid in a
// per-uid store), so a guess never crosses a dedup scope.
//
// Claims: when several ranks reach the same point at once, none of them has a guess yet, and
// each would hash the same next chunk. A stream about to compute the chunk after `prev` may
// claim that slot; the others see the claim and wait for more data instead of duplicating the
// work (StreamChunker decides how long). A claim is a hint too: it expires after kClaimNs.
//
// Thread-safety: all methods are safe to call concurrently (sharded mutexes).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "store/types.h"

namespace rankfs {

class SuccessorTable {
 public:
  struct Next {
    ChunkHash hash;
    uint32_t length = 0;
  };
  enum class Probe { kUnknown, kKnown, kClaimed };
  // `slots` is rounded up to a power of two (at least 1024).
  explicit SuccessorTable(size_t slots);

  // The chunk seen after `prev`, if any stream recorded one. kClaimed (with *next untouched)
  // when no successor is known but another claimant (`owner` differs) is computing it now.
  Probe Lookup(const ChunkHash& prev, uint64_t owner, Next* next) const;
  // Records that `next` (of `length` bytes) followed `prev`; clears a claim on `prev`.
  void Record(const ChunkHash& prev, const ChunkHash& next, uint32_t length);
  // Claims the successor of `prev` for `owner` unless a successor or a live claim exists.
  void Claim(const ChunkHash& prev, uint64_t owner);
  // Gives up `owner`'s claim on `prev` (its stream ended there).
  void Unclaim(const ChunkHash& prev, uint64_t owner);

  size_t slots() const { return slots_.size(); }

  static constexpr int64_t kClaimNs = 20'000'000;  // 20 ms: far longer than hashing a chunk

 private:
  struct Slot {
    ChunkHash prev;
    ChunkHash next;
    uint32_t length = 0;  // 0: no successor recorded
    uint64_t claim_owner = 0;
    int64_t claim_until_ns = 0;
  };
  static constexpr size_t kShards = 64;
  size_t IndexOf(const ChunkHash& h) const;
  std::mutex& MutexFor(size_t index) const { return mu_[index % kShards]; }

  mutable std::array<std::mutex, kShards> mu_;  // mu_[i % kShards] guards slots_[i]
  std::vector<Slot> slots_;
};

}  // namespace rankfs
