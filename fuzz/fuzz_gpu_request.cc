// libFuzzer entry point of the gpu_request target; the body is rankfs::fuzz::FuzzGpuRequest (fuzz_targets.h).
#include "fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return rankfs::fuzz::FuzzGpuRequest(data, size);
}
