// The arrow_ipc target body (fuzz_targets.h): FindArrowCuts, ArrowStreamCutter and
// CutArrowOrFastCdc (store/arrow_ipc.h), which will see every byte a training job writes into a
// file that looks like an Arrow IPC stream.
//
// Input: one flags byte (the cut options), then the file's bytes. Checks: cuts strictly
// increasing inside the understood prefix, which ends at the last cut; the prefix alone is cut
// the same way (a growing stream keeps its cuts); a truncated copy keeps the cuts of the messages
// it holds whole; ArrowStreamCutter fed the file byte by byte and in pieces of pseudo-random
// sizes gives exactly FindArrowCuts's result and holds only the current message's bytes; the
// whole-file pieces cover the input, none empty or above the chunker's max_size.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "fuzz/fuzz_input.h"
#include "fuzz/fuzz_targets.h"
#include "store/arrow_ipc.h"

namespace rankfs::fuzz {
namespace {

void CheckContract(const ArrowCuts& c, size_t n) {
  FUZZ_CHECK(c.understood_end <= n);
  for (size_t i = 0; i < c.cuts.size(); ++i) {
    FUZZ_CHECK(c.cuts[i] > (i == 0 ? 0 : c.cuts[i - 1]));
  }
  FUZZ_CHECK(c.understood_end == 0 ? c.cuts.empty()
                                   : !c.cuts.empty() && c.cuts.back() == c.understood_end);
  FUZZ_CHECK(c.row_cuts <= c.cuts.size());
}

// The cuts of `c` that lie at or before `end`.
std::vector<uint64_t> CutsUpTo(const ArrowCuts& c, uint64_t end) {
  std::vector<uint64_t> out;
  for (uint64_t x : c.cuts) {
    if (x <= end) out.push_back(x);
  }
  return out;
}

// Feeds the file to an ArrowStreamCutter in pieces of sizes drawn from `seed` (all 1 when
// seed is 0) and checks that it ends with exactly `whole`.
void CheckIncremental(const uint8_t* p, size_t n, const ArrowCutOptions& opt, uint32_t seed,
                      const ArrowCuts& whole) {
  ArrowStreamCutter cutter(opt);
  std::vector<uint64_t> cuts;
  uint32_t x = seed;
  size_t at = 0;
  while (at < n) {
    size_t len = 1;
    if (seed != 0) {
      x ^= x << 13;  // xorshift32
      x ^= x >> 17;
      x ^= x << 5;
      len = 1 + x % (size_t{1} << (x >> 27 & 15));
    }
    len = std::min(len, n - at);
    cutter.Feed(p + at, len, &cuts);
    at += len;
    FUZZ_CHECK(cutter.understood_end() <= at);
    FUZZ_CHECK(cutter.stopped()
                   ? cutter.buffered() == 0 && cutter.needed() == 0
                   : cutter.buffered() == at - cutter.understood_end() && cutter.needed() > 0);
    FUZZ_CHECK(cutter.buffered() <= opt.max_message);
  }
  cutter.Finish(&cuts);
  FUZZ_CHECK(cutter.stopped());
  FUZZ_CHECK(cuts == whole.cuts);
  FUZZ_CHECK(cutter.understood_end() == whole.understood_end);
  FUZZ_CHECK(cutter.stop() == whole.stop);
  FUZZ_CHECK(cutter.detail() == whole.detail);
  FUZZ_CHECK(cutter.messages() == whole.messages);
  FUZZ_CHECK(cutter.row_cuts() == whole.row_cuts);
}

}  // namespace

int FuzzArrowIpc(const uint8_t* data, size_t size) {
  Input in(data, size);
  const uint8_t flags = in.U8();
  ArrowCutOptions opt;
  opt.min_row_piece = 1u << (flags & 15);           // 1 B .. 32 KiB
  opt.row_group_target = 1u << ((flags >> 4) + 4);  // 16 B .. 512 KiB
  opt.min_piece = flags & 1 ? 0 : 64;
  const std::string_view file = in.Rest();
  const auto* p = reinterpret_cast<const uint8_t*>(file.data());
  const size_t n = file.size();
  // Half the inputs also bound the message length (what the write path's buffer relies on).
  if (flags & 2) opt.max_message = 64 + n / 2;

  const ArrowCuts c = FindArrowCuts(p, n, opt);
  CheckContract(c, n);
  if (c.understood_end > 0) {
    // The understood prefix alone: the same cuts, and it ends where a message ends.
    const ArrowCuts again = FindArrowCuts(p, size_t(c.understood_end), opt);
    FUZZ_CHECK(again.cuts == c.cuts);
    FUZZ_CHECK(again.stop == ArrowStop::kEndOfInput || again.stop == ArrowStop::kEndOfStream);
  }
  if (n > 1) {
    // A copy cut short in the middle keeps the cuts of the messages it holds whole.
    const size_t len = n / 2 + (data[0] % (n - n / 2));
    const ArrowCuts t = FindArrowCuts(p, len, opt);
    CheckContract(t, len);
    FUZZ_CHECK(t.understood_end <= c.understood_end);
    FUZZ_CHECK(t.cuts == CutsUpTo(c, t.understood_end));
  }
  // The incremental cutter, byte by byte and in pseudo-random pieces.
  CheckIncremental(p, n, opt, 0, c);
  CheckIncremental(p, n, opt, 0x9E3779B9u ^ (uint32_t(n) * 2654435761u) ^ flags, c);

  ChunkerParams params;
  params.min_size = 64;
  params.avg_size = 256;
  params.max_size = 1024;
  const FastCdc cdc(params);
  uint64_t sum = 0;
  for (size_t len : CutArrowOrFastCdc(p, n, cdc, opt)) {
    FUZZ_CHECK(len > 0 && len <= params.max_size);
    sum += len;
  }
  FUZZ_CHECK(sum == n);
  return 0;
}

}  // namespace rankfs::fuzz
