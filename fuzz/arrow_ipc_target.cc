// The arrow_ipc target body (fuzz_targets.h): FindArrowCuts and CutArrowOrFastCdc
// (store/arrow_ipc.h), which will see every byte a training job writes into a file that looks
// like an Arrow IPC stream.
//
// Input: one flags byte (the cut options), then the file's bytes. Checks: cuts strictly
// increasing inside the understood prefix, which ends at the last cut; the prefix alone is cut
// the same way (a growing stream keeps its cuts); a truncated copy keeps the cuts of the messages
// it holds whole; the whole-file pieces cover the input, none empty or above the chunker's
// max_size.
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
