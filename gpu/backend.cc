// BackendAvailable (gpu/backend.h): the one place that knows which backends exist.
#include <cerrno>

#include "gpu/backend.h"

namespace rankfs::gpu {

// Defined by gpu/cuda_backend.cc, or by gpu/cuda_missing.cc where CUDA was not found.
int CudaAvailable(std::string* why);

int BackendAvailable(rankfs_gpu_backend backend, std::string* why) {
  switch (backend) {
    case RANKFS_GPU_BACKEND_CPU:
      why->clear();
      return 1;
    case RANKFS_GPU_BACKEND_CUDA:
      return CudaAvailable(why);
  }
  *why = "unknown backend " + std::to_string(int(backend));
  return -EINVAL;
}

}  // namespace rankfs::gpu
