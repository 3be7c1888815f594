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
// byte comparison. Keys are cheap content fingerprints that include the dedup scope (the uid
// in a per-uid store), so a guess never crosses a scope; a key collision costs a failed
// memcmp. Successors are recorded once a chunk's SHA-256 is known (a pipeline worker hashes
// it), so a guess always carries the chunk's real address.
//
// Claims: when several ranks reach the same point at once, none of them has a guess yet, and
// each would cut and hash the same next chunk. A stream that cuts the chunk after `prev`
// claims that slot until its hash is recorded; the others see the claim and wait for more
// data instead of duplicating the work (StreamChunker decides how long). Once the claimant has
// cut its chunk it attaches it to the claim: a stream that then finds the claim compares its
// bytes with that chunk's and, if they are equal, hashes that chunk itself (once, for every
// stream) rather than waiting for a busy pipeline worker to get to it. A claim is a hint too:
// it expires after kClaimNs, unless its attached chunk is still alive (held by the claimant's
// batch until it commits): a loaded machine must not turn the claim back into duplicate work.
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

struct StreamChunk;  // fs/stream_chunker.h

class SuccessorTable {
 public:
  // A chunk as the table knows it: its address, length and key. Keys are cheap fingerprints
  // (MakeKey in stream_chunker.h) known the moment a chunk is cut, before its SHA-256 is.
  struct Next {
    ChunkHash hash;
    uint32_t length = 0;
    uint64_t key = 0;
    // The dedup scope its address was computed in: a guess whose scope differs from the
    // guessing stream's is refused even when the keys collide and the bytes are equal.
    std::optional<uint32_t> scope;
  };
  enum class Probe { kUnknown, kKnown, kClaimed };
  // `slots` is rounded up to a power of two (at least 1024). Slots form 4-way sets: a key's
  // entry may sit in any of its set's four slots, the least recently written one is replaced.
  explicit SuccessorTable(size_t slots);

  // The chunk seen after the chunk with key `prev`, if any stream recorded one. kClaimed
  // (with *next untouched) when no successor is known but another claimant (`owner` differs)
  // is hashing it now; then *cut (if not null) is the chunk it attached, or null.
  Probe Lookup(uint64_t prev, uint64_t owner, Next* next,
               std::shared_ptr<StreamChunk>* cut = nullptr) const;
  // Records that `next` followed the chunk with key `prev`; clears a claim on `prev`.
  void Record(uint64_t prev, const Next& next);
  // Claims the successor of `prev` for `owner` unless a successor or a live claim exists.
  void Claim(uint64_t prev, uint64_t owner);
  // Gives up `owner`'s claim on `prev` (its stream ended there).
  void Unclaim(uint64_t prev, uint64_t owner);
  // Attaches the chunk `owner` cut after `prev` to its live claim (nothing if the claim is
  // someone else's, gone, or already resolved). The table holds it weakly.
  void Attach(uint64_t prev, uint64_t owner, const std::shared_ptr<StreamChunk>& cut);

  size_t slots() const { return slots_.size(); }

  static constexpr int64_t kClaimNs = 20'000'000;  // 20 ms: far longer than hashing a chunk

 private:
  struct Slot {
    uint64_t prev = 0;
    bool used = false;
    Next next;  // next.length == 0: no successor recorded
    uint64_t claim_owner = 0;
    int64_t claim_until_ns = 0;
    std::weak_ptr<StreamChunk> cut;  // the claimant's chunk, once cut
    uint64_t written = 0;            // when it was last written (the set's clock)
  };
  static constexpr size_t kWays = 4;
  static constexpr size_t kShards = 64;
  // The first slot of key's set.
  size_t SetOf(uint64_t key) const;
  // The slot holding `prev` in its set, or nullptr. REQUIRES: the set's mutex held.
  Slot* Find(size_t set, uint64_t prev) const;
  // Whether the slot's claim still holds: not expired, or its attached chunk still alive.
  static bool ClaimLive(const Slot& s, int64_t now);
  // The slot for a new entry of `prev`: its own, a free one, or the oldest.
  Slot* Victim(size_t set, uint64_t prev);
  std::mutex& MutexFor(size_t set) const { return mu_[(set / kWays) % kShards]; }

  mutable std::array<std::mutex, kShards> mu_;  // a set's mutex guards its slots and clock_
  mutable std::vector<Slot> slots_;
  std::array<uint64_t, kShards> clock_{};  // write counters, one per mutex
};

}  // namespace rankfs
