// PosixComparisonTest: a MountTest with a reference directory ref_ on the backing filesystem
// beside the mount, on which the same script (tests/testutil/posix_script.h) runs. RunCases
// runs a table of cases on ref_ and then on mnt_, one case at a time, and expects equal
// transcripts; a difference names the case and the step. Header-only, like MountTest (it
// needs the test target's RANKFS_BINARY).
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "tests/testutil/mount_test.h"
#include "tests/testutil/posix_script.h"

namespace rankfs::posix {

class PosixComparisonTest : public MountTest {
 protected:
  PosixComparisonTest() : MountTest(std::chrono::seconds(240)) {}
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ref_ = tmp_.Join("ref");
    ASSERT_EQ(mkdir(ref_.c_str(), 0755), 0);
  }

  // Runs each case on ref_, then on mnt_, in table order, and expects equal transcripts.
  void RunCases(std::span<const ScriptCase> cases) {
    for (const ScriptCase& c : cases) {
      Transcript ref(ref_), got(mnt_);
      c.run(ref);
      c.run(got);
      ExpectSameTranscripts(c.name, ref.lines(), got.lines());
      std::printf("  [%s]\n", c.name);
      for (const std::string& l : got.lines()) std::printf("  %s\n", l.c_str());
    }
  }
  // Compares two transcripts step by step (left: backing filesystem, right: rankfs).
  void ExpectSameTranscripts(const std::string& what, const std::vector<std::string>& ref,
                             const std::vector<std::string>& got) {
    for (size_t i = 0; i < std::max(ref.size(), got.size()); ++i) {
      const std::string r = i < ref.size() ? ref[i] : "<missing>";
      const std::string g = i < got.size() ? got[i] : "<missing>";
      EXPECT_EQ(r, g) << what << ": step " << i << " differs (left: backing fs, right: rankfs)";
    }
  }

  std::string ref_;
};

}  // namespace rankfs::posix
