// libFuzzer entry point of the arrow_ipc target; the body is rankfs::fuzz::FuzzArrowIpc
// (fuzz_targets.h).
#include "fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return rankfs::fuzz::FuzzArrowIpc(data, size);
}
