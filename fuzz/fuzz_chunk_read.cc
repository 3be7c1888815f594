// libFuzzer entry point of the chunk_read target; the body is rankfs::fuzz::FuzzChunkRead (fuzz_targets.h).
#include "fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return rankfs::fuzz::FuzzChunkRead(data, size);
}
