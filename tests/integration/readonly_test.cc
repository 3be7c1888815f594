// A read-only mount (`-o ro`) changes nothing in the store: not RocksDB's files, not the packs,
// not even what recovery would tidy after a crash (an unindexed pack, an unlinked inode left on
// the orphan list). It serves reads; a later read-write mount does the tidying. Needs root and
// /dev/fuse (skips otherwise).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "store/pack_format.h"
#include "store/types.h"
#include "tests/testutil/mount_test.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteSynced(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  ASSERT_EQ(write(fd, data.data(), data.size()), ssize_t(data.size())) << strerror(errno);
  ASSERT_EQ(fsync(fd), 0) << strerror(errno);
  ASSERT_EQ(close(fd), 0) << strerror(errno);
}

// Every file under `dir`: path -> size and SHA-256.
std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    out[e.path().string()] = std::to_string(e.file_size()) + " " +
                             ChunkHash::Of(Slurp(e.path().string())).ToHex();
  }
  return out;
}

class ReadOnlyTest : public MountTest {};

TEST_F(ReadOnlyTest, ReadOnlyMountLeavesTheStoreAsItFoundIt) {
  const std::string kept = MakeRealData(3 << 20, 1);
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_NO_FATAL_FAILURE(WriteSynced(mnt_ + "/kept", kept));
  // An unlinked file still open when the daemon dies stays on the orphan list.
  const std::string orphan = mnt_ + "/orphan";
  ASSERT_NO_FATAL_FAILURE(WriteSynced(orphan, MakeRandomData(512 << 10, 2)));
  int fd = open(orphan.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << strerror(errno);
  ASSERT_EQ(unlink(orphan.c_str()), 0) << strerror(errno);
  ASSERT_EQ(syncfs(fd), 0) << strerror(errno);
  ASSERT_TRUE(fs_->Kill9().ok());
  fs_.reset();
  close(fd);
  // And a pack that no chunk index entry names.
  {
    std::ofstream stray(store_ + "/packs/" + PackFileName(900), std::ios::binary);
    stray << EncodePackFileHeader(PackFileHeader{1, 900, {}}) << MakeRandomData(64 << 10, 3);
  }
  const auto before = Snapshot(store_);

  ASSERT_NO_FATAL_FAILURE(Mount("ro"));
  EXPECT_TRUE(Slurp(mnt_ + "/kept") == kept) << "read-only mount reads back other bytes";
  EXPECT_EQ(open((mnt_ + "/new").c_str(), O_WRONLY | O_CREAT, 0644), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(mkdir((mnt_ + "/d").c_str(), 0755), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_NE(Slurp(mnt_ + "/.rankfs-stats").find("files=1"), std::string::npos);
  const std::string log_ro = fs_->DaemonLog();
  ASSERT_NO_FATAL_FAILURE(Unmount());
  EXPECT_NE(log_ro.find("read-only"), std::string::npos) << log_ro;
  EXPECT_EQ(Snapshot(store_), before) << "the read-only mount changed the store";

  // A read-write mount recovers: the stray pack and the orphan go, the file stays.
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_TRUE(Slurp(mnt_ + "/kept") == kept);
  EXPECT_FALSE(fs::exists(store_ + "/packs/" + PackFileName(900)));
  EXPECT_NE(fs_->DaemonLog().find("releasing unlinked inode"), std::string::npos)
      << fs_->DaemonLog();
  ASSERT_NO_FATAL_FAILURE(Unmount());
}

TEST_F(ReadOnlyTest, ReadOnlyMountOfANewStoreIsRefused) {
  Status refused = TryMount("ro");
  ASSERT_FALSE(refused.ok()) << "mounted a store that does not exist, read-only";
  EXPECT_NE(refused.message().find("read-only"), std::string::npos) << refused.ToString();
  EXPECT_FALSE(fs::exists(store_));
}

}  // namespace
}  // namespace rankfs
