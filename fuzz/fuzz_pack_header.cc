// libFuzzer entry point of the pack_header target; the body is rankfs::fuzz::FuzzPackHeader (fuzz_targets.h).
#include "fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return rankfs::fuzz::FuzzPackHeader(data, size);
}
