// The CUDA backend's entry points in a library built without the CUDA toolkit
// (gpu/CMakeLists.txt): they say so.
#include <cerrno>

#include "gpu/backend.h"

namespace rankfs::gpu {

namespace {
constexpr const char* kNotBuilt =
    "the CUDA backend is not built into this librankfs_gpu (no CUDA toolkit at build time)";
}

int CudaAvailable(std::string* why) {
  *why = kNotBuilt;
  return 0;
}

BackendStatus MakeCudaBackend(std::unique_ptr<Backend>* out) {
  out->reset();
  return {-ENOTSUP, kNotBuilt};
}

}  // namespace rankfs::gpu
