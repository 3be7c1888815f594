// libFuzzer entry point of the meta_value target; the body is rankfs::fuzz::FuzzMetaValue (fuzz_targets.h).
#include "fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return rankfs::fuzz::FuzzMetaValue(data, size);
}
