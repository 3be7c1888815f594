// RANKFS_SKIP: for a test that cannot run on this machine (no /dev/fuse, no python3, no
// cpack, ...). Outside CI it skips with the reason. In CI (environment variable CI set to
// "true" or "1", as .ci/run does) it fails instead: a CI run in which the mount tests could
// not run must not pass. scripts/test.sh also fails a CI run in which CTest saw any skipped
// test, so a bare GTEST_SKIP cannot slip through either.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

namespace rankfs {

// Whether this is a CI run (CI=true or CI=1).
inline bool InCi() {
  const char* v = std::getenv("CI");
  return v != nullptr && (std::strcmp(v, "true") == 0 || std::strcmp(v, "1") == 0);
}

}  // namespace rankfs

// `reason` may be a stream expression: RANKFS_SKIP("cannot mount: " << strerror(errno)).
// Returns from the calling function (a test body, SetUp or a void helper), like GTEST_SKIP.
#define RANKFS_SKIP(reason)                                                                    \
  do {                                                                                         \
    if (::rankfs::InCi()) {                                                                    \
      GTEST_FAIL() << "cannot run here, and CI (CI=true) does not allow skipping: " << reason; \
    } else {                                                                                   \
      GTEST_SKIP() << reason;                                                                  \
    }                                                                                          \
  } while (0)
