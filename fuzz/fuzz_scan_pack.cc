// libFuzzer entry point of the scan_pack target; the body is rankfs::fuzz::FuzzScanPack (fuzz_targets.h).
#include "fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return rankfs::fuzz::FuzzScanPack(data, size);
}
