// The Debian package (cmake/Packaging.cmake): `cpack -G DEB` on this build tree produces a .deb
// that declares its Debian dependencies, unpacks (dpkg -x, no root needed) into a scratch root
// with rankfs in /usr/bin and mount.rankfs in /usr/sbin (where mount(8) looks on merged-/usr
// Debian 12), and whose rankfs runs and reports the version it was built as. Skips when cpack or
// dpkg-deb is not installed (fails in CI). Needs the tools built (CI builds everything first).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/skip.h"
#include "tests/testutil/temp_dir.h"

namespace rankfs {
namespace {

namespace fs = std::filesystem;

// The full path of `name` in PATH, or "" when it is not there.
std::string FindInPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

TEST(PackageTest, DebDeclaresItsDependenciesAndItsRankfsRuns) {
  const std::string cpack = FindInPath("cpack"), dpkg_deb = FindInPath("dpkg-deb");
  if (cpack.empty() || dpkg_deb.empty()) RANKFS_SKIP("cpack or dpkg-deb is not installed");
  // RANKFS_BINARY is BUILD/mount-helper/rankfs.
  const fs::path build = fs::path(RANKFS_BINARY).parent_path().parent_path();
  ASSERT_TRUE(fs::exists(build / "CPackConfig.cmake")) << build;
  ASSERT_TRUE(fs::exists(build / "mount-helper" / "mount.rankfs"))
      << "build mount.rankfs first (cmake --build " << build.string() << ")";

  // The version the build says it is.
  auto built = RunCommand({RANKFS_BINARY, "--version"});
  ASSERT_TRUE(built.ok());
  ASSERT_EQ(built->exit_code, 0) << built->output;
  const std::string version_line = Trim(built->output);  // "rankfs X.Y.Z"
  ASSERT_TRUE(version_line.starts_with("rankfs ")) << version_line;
  const std::string version = version_line.substr(7);

  TempDir tmp("rankfs-package-");
  // -B keeps the staging tree and the .deb out of the build tree (tests may run in parallel).
  auto made = RunCommand(
      {cpack, "-G", "DEB", "--config", (build / "CPackConfig.cmake").string(), "-B", tmp.path()},
      std::chrono::seconds(120));
  ASSERT_TRUE(made.ok());
  ASSERT_EQ(made->exit_code, 0) << made->output;
  std::string deb;
  for (const auto& e : fs::directory_iterator(tmp.path())) {
    if (e.path().extension() == ".deb") deb = e.path().string();
  }
  ASSERT_FALSE(deb.empty()) << "no .deb in " << tmp.path() << ":\n" << made->output;
  EXPECT_EQ(fs::path(deb).filename().string().rfind("rankfs_" + version + "_", 0), 0u) << deb;

  auto info = RunCommand({dpkg_deb, "-I", deb});
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->exit_code, 0) << info->output;
  EXPECT_NE(info->output.find(" Package: rankfs\n"), std::string::npos) << info->output;
  EXPECT_NE(info->output.find(" Version: " + version + "\n"), std::string::npos) << info->output;
  EXPECT_NE(info->output.find(" Maintainer: "), std::string::npos) << info->output;
  const size_t at = info->output.find(" Depends: ");
  ASSERT_NE(at, std::string::npos) << info->output;
  const std::string depends = info->output.substr(at, info->output.find('\n', at) - at);
  for (const char* pkg :
       {"fuse3", "libfuse3-3", "librocksdb7.8", "libzstd1", "libssl3", "libstdc++6", "libc6"}) {
    EXPECT_NE(depends.find(std::string(" ") + pkg + " "), std::string::npos)
        << pkg << " missing from" << depends;
  }

  const std::string root = tmp.Join("root");
  auto unpacked = RunCommand({dpkg_deb, "-x", deb, root});
  ASSERT_TRUE(unpacked.ok());
  ASSERT_EQ(unpacked->exit_code, 0) << unpacked->output;
  struct stat st;
  ASSERT_EQ(stat((root + "/usr/sbin/mount.rankfs").c_str(), &st), 0)
      << "mount.rankfs is not in /usr/sbin";
  EXPECT_TRUE(S_ISREG(st.st_mode) && (st.st_mode & 0111)) << std::oct << st.st_mode;
  EXPECT_EQ(fs::read_symlink(root + "/usr/sbin/mount.fuse.rankfs"), "mount.rankfs");
  EXPECT_TRUE(fs::exists(root + "/usr/share/man/man1/rankfs.1"));
  EXPECT_TRUE(fs::exists(root + "/usr/share/man/man8/mount.rankfs.8"));
  // The GPU staging path's library, header and Python wrapper (docs/gpu.md).
  EXPECT_TRUE(fs::exists(root + "/usr/lib/librankfs_gpu.so"));
  EXPECT_TRUE(fs::exists(root + "/usr/include/rankfs_gpu.h"));
  EXPECT_TRUE(fs::exists(root + "/usr/share/rankfs/python/rankfs_gpu.py"));

  auto installed = RunCommand({root + "/usr/bin/rankfs", "--version"});
  ASSERT_TRUE(installed.ok());
  EXPECT_EQ(installed->exit_code, 0) << installed->output;
  EXPECT_EQ(Trim(installed->output), version_line);
  auto helper = RunCommand({root + "/usr/sbin/mount.rankfs", "--help"});
  ASSERT_TRUE(helper.ok());
  EXPECT_EQ(helper->exit_code, 0) << helper->output;
}

}  // namespace
}  // namespace rankfs
