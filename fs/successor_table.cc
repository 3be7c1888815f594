#include "fs/successor_table.h"

#include <bit>
#include <chrono>
#include <cstring>

namespace rankfs {
namespace {

int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

SuccessorTable::SuccessorTable(size_t slots)
    : slots_(std::bit_ceil(std::max<size_t>(slots, 1024))) {}

size_t SuccessorTable::IndexOf(const ChunkHash& h) const {
  uint64_t v;
  std::memcpy(&v, h.bytes.data() + 8, sizeof v);  // SHA-256 bits are uniform
  return size_t(v) & (slots_.size() - 1);
}

SuccessorTable::Probe SuccessorTable::Lookup(const ChunkHash& prev, uint64_t owner,
                                             Next* next) const {
  const size_t i = IndexOf(prev);
  std::lock_guard<std::mutex> l(MutexFor(i));
  const Slot& s = slots_[i];
  if (s.prev != prev) return Probe::kUnknown;
  if (s.length != 0) {
    next->hash = s.next;
    next->length = s.length;
    return Probe::kKnown;
  }
  if (s.claim_owner != 0 && s.claim_owner != owner && s.claim_until_ns > SteadyNs()) {
    return Probe::kClaimed;
  }
  return Probe::kUnknown;
}

void SuccessorTable::Record(const ChunkHash& prev, const ChunkHash& next, uint32_t length) {
  const size_t i = IndexOf(prev);
  std::lock_guard<std::mutex> l(MutexFor(i));
  Slot& s = slots_[i];
  s.prev = prev;
  s.next = next;
  s.length = length;
  s.claim_owner = 0;
  s.claim_until_ns = 0;
}

void SuccessorTable::Claim(const ChunkHash& prev, uint64_t owner) {
  const size_t i = IndexOf(prev);
  std::lock_guard<std::mutex> l(MutexFor(i));
  Slot& s = slots_[i];
  const int64_t now = SteadyNs();
  if (s.prev == prev && (s.length != 0 || (s.claim_owner != 0 && s.claim_until_ns > now))) {
    return;  // already known, or someone else is on it
  }
  s.prev = prev;
  s.length = 0;
  s.claim_owner = owner;
  s.claim_until_ns = now + kClaimNs;
}

void SuccessorTable::Unclaim(const ChunkHash& prev, uint64_t owner) {
  const size_t i = IndexOf(prev);
  std::lock_guard<std::mutex> l(MutexFor(i));
  Slot& s = slots_[i];
  if (s.prev == prev && s.length == 0 && s.claim_owner == owner) {
    s.claim_owner = 0;
    s.claim_until_ns = 0;
  }
}

}  // namespace rankfs
