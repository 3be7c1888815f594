// libFuzzer entry point of the meta_key target; the body is rankfs::fuzz::FuzzMetaKey (fuzz_targets.h).
#include "fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return rankfs::fuzz::FuzzMetaKey(data, size);
}
