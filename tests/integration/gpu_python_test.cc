// The Python wrapper of the GPU staging library (python/rankfs_gpu.py) and its loader example
// (python/examples/gpu_loader.py) against a real mount, with the CPU backend: the checks of
// gpu_python_check.py (random reads against pread, errors as OSError with their errno, bad
// destinations refused -- a __cuda_array_interface__ object on the CPU backend among them),
// then the example serving random samples of an Arrow stream file and a .npy file with
// --verify. Needs the real-stack Python environment (numpy, pyarrow): it skips saying why
// without it, and fails in CI, where it must exist (tests/testutil/real_stack.h).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "tests/testutil/mount_test.h"
#include "tests/testutil/real_stack.h"

namespace rankfs {
namespace {

class GpuPythonTest : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    RANKFS_REQUIRE_REAL_STACK(python_);
    home_ = tmp_.Join("home");
    outside_ = tmp_.Join("outside");
    for (const std::string& d : {home_, home_ + "/tmp", outside_}) {
      ASSERT_EQ(mkdir(d.c_str(), 0755), 0) << d;
    }
  }

  // Runs a Python script of the project with the library found through RANKFS_GPU_LIB (in a
  // sanitizer build, with the sanitizer runtimes the library needs preloaded; the
  // interpreter's own allocations are not ours to leak-check).
  JobResult RunPython(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {python_};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> extra = {"RANKFS_GPU_LIB=" RANKFS_GPU_LIB};
    if (*RANKFS_SANITIZER_PRELOAD != '\0') {
      extra.push_back("LD_PRELOAD=" RANKFS_SANITIZER_PRELOAD);
      extra.push_back("ASAN_OPTIONS=detect_leaks=0:abort_on_error=1");
      extra.push_back("UBSAN_OPTIONS=print_stacktrace=1");
    }
    JobResult r = RunJob(argv, RealStackEnv(python_, home_, extra), home_,
                         std::chrono::seconds(120));
    std::printf("%s: exit %d, %.1f s\n", args[0].c_str(), r.exit_code, r.seconds);
    return r;
  }

  std::string python_, home_, outside_;
};

TEST_F(GpuPythonTest, WrapperChecksAndLoaderExample) {
  Mount();
  const std::string src = RANKFS_SOURCE_DIR;
  JobResult checks =
      RunPython({src + "/tests/integration/gpu_python_check.py", mnt_, outside_});
  ASSERT_EQ(checks.exit_code, 0) << checks.log;
  EXPECT_EQ(KeyValues(checks.log)["checks_done"], "5") << checks.log;

  for (const char* file : {"data.arrow", "data.npy"}) {
    JobResult r = RunPython({src + "/python/examples/gpu_loader.py", mnt_ + "/" + file,
                             "--steps", "8", "--batch-size", "16", "--slots", "4",
                             "--slot-bytes", "65536", "--verify"});
    ASSERT_EQ(r.exit_code, 0) << file << ":\n" << r.log;
    auto kv = KeyValues(r.log);
    EXPECT_EQ(kv["samples"], "128") << r.log;
    EXPECT_EQ(kv["verified"], "128") << r.log;
    EXPECT_NE(kv["bytes"], "0") << r.log;
  }
}

}  // namespace
}  // namespace rankfs
