// The Python environment the real-stack tests run in is the pinned one: every package named in
// python/requirements/realstack.txt is installed at exactly that version, and the pieces the
// jobs use load (torch.distributed with gloo, datasets, swift's CLI).
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/testutil/real_stack.h"
#include "tests/testutil/temp_dir.h"

namespace rankfs {
namespace {

TEST(StackEnvTest, PinnedVersionsAreInstalled) {
  std::string python;
  RANKFS_REQUIRE_REAL_STACK(python);
  TempDir tmp;
  const std::string script = tmp.Join("check.py");
  std::ofstream(script) << R"(
import importlib.metadata as md, sys
bad = 0
for line in open(sys.argv[1]):
    line = line.split('#')[0].strip()
    if not line:
        continue
    name, want = line.split('==')
    have = md.version(name)
    print(f"{name}: want {want}, have {have}")
    bad += have != want
import torch.distributed, datasets, swift.cli.sft  # noqa: F401  (the entry points the jobs use)
print("gloo=%d" % torch.distributed.is_gloo_available())
print("mismatches=%d" % bad)
)";
  ASSERT_EQ(mkdir(tmp.Join("home").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(tmp.Join("home/tmp").c_str(), 0755), 0);
  JobResult r = RunJob(
      {python, script, std::string(RANKFS_SOURCE_DIR) + "/python/requirements/realstack.txt"},
      RealStackEnv(python, tmp.Join("home")), tmp.path(), std::chrono::seconds(300));
  ASSERT_EQ(r.exit_code, 0) << r.log;
  auto kv = KeyValues(r.log);
  EXPECT_EQ(kv["mismatches"], "0") << r.log;
  EXPECT_EQ(kv["gloo"], "1") << r.log;
}

}  // namespace
}  // namespace rankfs
