#include "fs/successor_table.h"

#include <bit>
#include <chrono>

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

size_t SuccessorTable::SetOf(uint64_t key) const {
  key *= 0x9e3779b97f4a7c15ull;  // keys are CRCs mixed with lengths: spread them
  return (size_t(key >> 20) * kWays) & (slots_.size() - 1);
}

SuccessorTable::Slot* SuccessorTable::Find(size_t set, uint64_t prev) const {
  for (size_t w = 0; w < kWays; ++w) {
    Slot& s = slots_[set + w];
    if (s.used && s.prev == prev) return &s;
  }
  return nullptr;
}

SuccessorTable::Slot* SuccessorTable::Victim(size_t set, uint64_t prev) {
  if (Slot* s = Find(set, prev)) return s;
  Slot* oldest = &slots_[set];
  for (size_t w = 0; w < kWays; ++w) {
    Slot& s = slots_[set + w];
    if (!s.used) return &s;
    if (s.written < oldest->written) oldest = &s;
  }
  return oldest;
}

bool SuccessorTable::ClaimLive(const Slot& s, int64_t now) {
  // A claim whose chunk is attached and still held by its stream stays good past kClaimNs:
  // others take that chunk instead of waiting, so there is nothing to time out.
  return s.claim_owner != 0 && (s.claim_until_ns > now || !s.cut.expired());
}

SuccessorTable::Probe SuccessorTable::Lookup(uint64_t prev, uint64_t owner, Next* next,
                                             std::shared_ptr<StreamChunk>* cut) const {
  const size_t set = SetOf(prev);
  std::lock_guard<std::mutex> l(MutexFor(set));
  const Slot* s = Find(set, prev);
  if (s == nullptr) return Probe::kUnknown;
  if (s->next.length != 0) {
    *next = s->next;
    return Probe::kKnown;
  }
  if (s->claim_owner != owner && ClaimLive(*s, SteadyNs())) {
    if (cut != nullptr) *cut = s->cut.lock();
    return Probe::kClaimed;
  }
  return Probe::kUnknown;
}

void SuccessorTable::Record(uint64_t prev, const Next& next) {
  const size_t set = SetOf(prev);
  std::lock_guard<std::mutex> l(MutexFor(set));
  Slot* s = Victim(set, prev);
  s->used = true;
  s->prev = prev;
  s->next = next;
  s->claim_owner = 0;
  s->claim_until_ns = 0;
  s->cut.reset();
  s->written = ++clock_[(set / kWays) % kShards];
}

void SuccessorTable::Claim(uint64_t prev, uint64_t owner) {
  const size_t set = SetOf(prev);
  std::lock_guard<std::mutex> l(MutexFor(set));
  const int64_t now = SteadyNs();
  if (const Slot* s = Find(set, prev);
      s != nullptr && (s->next.length != 0 || ClaimLive(*s, now))) {
    return;  // already known, or someone else is on it
  }
  Slot* s = Victim(set, prev);
  s->used = true;
  s->prev = prev;
  s->next = Next{};
  s->claim_owner = owner;
  s->claim_until_ns = now + kClaimNs;
  s->cut.reset();
  s->written = ++clock_[(set / kWays) % kShards];
}

void SuccessorTable::Unclaim(uint64_t prev, uint64_t owner) {
  const size_t set = SetOf(prev);
  std::lock_guard<std::mutex> l(MutexFor(set));
  Slot* s = Find(set, prev);
  if (s != nullptr && s->next.length == 0 && s->claim_owner == owner) {
    s->claim_owner = 0;
    s->claim_until_ns = 0;
    s->cut.reset();
  }
}

void SuccessorTable::Attach(uint64_t prev, uint64_t owner,
                            const std::shared_ptr<StreamChunk>& cut) {
  const size_t set = SetOf(prev);
  std::lock_guard<std::mutex> l(MutexFor(set));
  Slot* s = Find(set, prev);
  if (s != nullptr && s->next.length == 0 && s->claim_owner == owner) s->cut = cut;
}

}  // namespace rankfs
