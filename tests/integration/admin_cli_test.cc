// The admin tools against real mounts: `rankfs stats` of a live mount, `rankfs fsck` refusing a
// mounted store, and mount.rankfs mounting in the background (exiting only once the mount
// answers) and failing clearly. Needs root and /dev/fuse (skips otherwise).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "mount-helper/cli.h"
#include "store/fsck.h"
#include "store/store.h"
#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/mount_test.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

constexpr long kFuseSuperMagic = 0x65735546;

bool Has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

void WriteFile(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  ASSERT_EQ(write(fd, data.data(), data.size()), ssize_t(data.size())) << strerror(errno);
  ASSERT_EQ(close(fd), 0) << strerror(errno);
}

class AdminCliTest : public MountTest {
 protected:
  AdminCliTest() : MountTest(std::chrono::seconds(120)) {}
};

TEST_F(AdminCliTest, StatsOfALiveMountInEveryFormat) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string data = MakeRandomData(1 << 20, 7);
  ASSERT_NO_FATAL_FAILURE(WriteFile(mnt_ + "/a", data));
  ASSERT_NO_FATAL_FAILURE(WriteFile(mnt_ + "/b", data));

  auto json = RunCommand({RANKFS_CLI_BINARY, "stats", mnt_, "--json"});
  ASSERT_TRUE(json.ok());
  ASSERT_EQ(json->exit_code, 0) << json->output;
  EXPECT_TRUE(json->output.starts_with("{\"mountpoint\": \"" + mnt_ + "\", ")) << json->output;
  EXPECT_TRUE(Has(json->output, "\"logical_bytes\": 2097152, \"files\": 2,")) << json->output;
  EXPECT_TRUE(Has(json->output, "\"dedup_ratio\": ")) << json->output;

  std::ostringstream out, err;
  CliIo io{&out, &err, false};
  ASSERT_EQ(RankfsMain({"rankfs", "stats", mnt_, "--prometheus"}, io), 0) << err.str();
  const std::string label = "{mountpoint=\"" + mnt_ + "\"}";
  EXPECT_TRUE(Has(out.str(), "rankfs_logical_bytes" + label + " 2097152\n")) << out.str();
  EXPECT_TRUE(Has(out.str(), "rankfs_files" + label + " 2\n")) << out.str();
  EXPECT_TRUE(Has(out.str(), "# TYPE rankfs_read_errors_total counter\n")) << out.str();

  auto text = RunCommand({RANKFS_CLI_BINARY, "stats", mnt_});
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->exit_code, 0) << text->output;
  // Bytes are shown human-readable with the exact count, and every value starts in one
  // column, after the longest key and at least one space (cli_stats.cc).
  EXPECT_TRUE(std::regex_search(text->output,
                                std::regex("\n  logical_bytes: +2\\.00 MiB \\(2097152 bytes\\)\n")))
      << text->output;
  std::istringstream lines(text->output);
  std::string line;
  std::set<size_t> columns;
  size_t keys = 0, longest = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("  ", 0) != 0) continue;
    const size_t colon = line.find(':');
    ASSERT_NE(colon, std::string::npos) << line;
    longest = std::max(longest, colon - 2);
    columns.insert(line.find_first_not_of(' ', colon + 1));
    ++keys;
  }
  EXPECT_GT(keys, 20u) << text->output;
  ASSERT_EQ(columns.size(), 1u) << "values do not line up:\n" << text->output;
  EXPECT_EQ(*columns.begin(), 3 + std::max<size_t>(23, longest + 1))
      << "not one space after the longest key:\n" << text->output;
}

TEST_F(AdminCliTest, FsckRefusesAMountedStoreAndFindsItCleanAfterUnmount) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_NO_FATAL_FAILURE(WriteFile(mnt_ + "/f", MakeRealData(3 << 20, 1)));
  auto busy = RunCommand({RANKFS_CLI_BINARY, "fsck", store_});
  ASSERT_TRUE(busy.ok());
  EXPECT_EQ(busy->exit_code, kFsckExitOperational) << busy->output;
  EXPECT_TRUE(Has(busy->output, "in use")) << busy->output;

  Status s = fs_->Unmount();
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto clean = RunCommand({RANKFS_CLI_BINARY, "fsck", store_});
  ASSERT_TRUE(clean.ok());
  EXPECT_EQ(clean->exit_code, 0) << clean->output;
  EXPECT_TRUE(Has(clean->output, store_ + ": clean")) << clean->output;
}

TEST_F(AdminCliTest, MountRankfsReturnsOnceTheMountAnswersAndUmountStopsIt) {
  auto r = RunCommand({MOUNT_RANKFS_BINARY, store_, mnt_, "-v", "-o",
                       "rw,noauto,nofail,x-systemd.automount,allow_other,compress=3"});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->exit_code, 0) << r->output;
  EXPECT_TRUE(Has(r->output, "mount.rankfs: mounted " + store_ + " on " + mnt_)) << r->output;
  // No waiting: the helper has returned, so the mount must answer now.
  ASSERT_TRUE(IsMountPoint(mnt_));
  struct statfs st;
  ASSERT_EQ(statfs(mnt_.c_str(), &st), 0) << strerror(errno);
  EXPECT_EQ(st.f_type, kFuseSuperMagic);
  {
    std::ifstream stats(mnt_ + "/.rankfs-stats");
    std::string first;
    EXPECT_TRUE(std::getline(stats, first) && first.starts_with("logical_bytes=")) << first;
  }
  ASSERT_NO_FATAL_FAILURE(WriteFile(mnt_ + "/f", "through mount.rankfs"));

  auto u = RunCommand({"umount", mnt_});
  ASSERT_TRUE(u.ok());
  ASSERT_EQ(u->exit_code, 0) << u->output;
  EXPECT_FALSE(IsMountPoint(mnt_));
  // At once, as a user would: fsck waits for the daemon to finish closing the store.
  auto fsck = RunCommand({RANKFS_CLI_BINARY, "fsck", store_});
  ASSERT_TRUE(fsck.ok());
  EXPECT_EQ(fsck->exit_code, 0) << fsck->output;
  EXPECT_TRUE(Has(fsck->output, " 2 inode(s)")) << fsck->output;  // the root and f
  auto store = Store::Open(store_, StoreOptions());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->super().compression_level, 3);  // -o reached the new store
}

TEST_F(AdminCliTest, MountRankfsFailsClearly) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string mnt2 = AddMountpoint("mnt2");

  auto busy = RunCommand({MOUNT_RANKFS_BINARY, store_, mnt2});
  ASSERT_TRUE(busy.ok());
  EXPECT_EQ(busy->exit_code, kMountExitFailure) << busy->output;
  EXPECT_TRUE(Has(busy->output, "already in use")) << busy->output;
  EXPECT_FALSE(IsMountPoint(mnt2));

  auto no_parent = RunCommand({MOUNT_RANKFS_BINARY, tmp_.Join("no/such/store"), mnt2});
  ASSERT_TRUE(no_parent.ok());
  EXPECT_EQ(no_parent->exit_code, kMountExitFailure) << no_parent->output;
  EXPECT_TRUE(Has(no_parent->output, "does not exist")) << no_parent->output;

  auto bad = RunCommand({MOUNT_RANKFS_BINARY, tmp_.Join("s2"), mnt2, "-o", "cache_size=lots"});
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->exit_code, kMountExitUsage) << bad->output;
  EXPECT_TRUE(Has(bad->output, "cache_size=lots")) << bad->output;
  EXPECT_FALSE(IsMountPoint(mnt2));
  EXPECT_TRUE(fs_->IsMounted());
}

}  // namespace
}  // namespace rankfs
