// libFuzzer entry point of the superblock target; the body is rankfs::fuzz::FuzzSuperblock (fuzz_targets.h).
#include "fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return rankfs::fuzz::FuzzSuperblock(data, size);
}
