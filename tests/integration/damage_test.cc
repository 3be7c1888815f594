// Damage: a store with three files in two packs (file a in pack 1, files b and c in pack 2) is
// unmounted and damaged -- bytes flipped in one chunk record, a pack truncated, a pack
// deleted, a RocksDB file damaged -- and remounted. Reads of the affected ranges give EIO and
// nothing else does (every other byte of the same file and of the other files reads back
// exactly, with O_DIRECT so that kernel readahead cannot widen a read into a damaged range);
// the daemon log names the chunk and the inode; the daemon keeps serving; `rankfs fsck` names
// the damage and exits non-zero; writing the same content again heals the damaged chunks.
// Needs root and /dev/fuse (skips otherwise).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/mount_test.h"
#include "tests/testutil/pack_records.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

constexpr size_t kBlock = 4096;
const std::map<std::string, size_t> kSizes = {{"a", 3 << 20}, {"b", 1 << 20}, {"c", 1 << 20}};

std::string DataOf(const std::string& name) {
  return MakeRandomData(kSizes.at(name), 77 + uint64_t(name[0]));
}

void WriteFile(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  ASSERT_EQ(write(fd, data.data(), data.size()), ssize_t(data.size())) << strerror(errno);
  ASSERT_EQ(fsync(fd), 0) << strerror(errno);
  ASSERT_EQ(close(fd), 0);
}

// Reads `path` block by block with O_DIRECT. Returns the start offsets of the blocks that
// failed with EIO; any other error or any wrong byte is a test failure.
std::set<uint64_t> EioBlocks(const std::string& path, const std::string& want) {
  std::set<uint64_t> eio;
  int fd = open(path.c_str(), O_RDONLY | O_DIRECT);
  EXPECT_GE(fd, 0) << path << ": " << strerror(errno);
  if (fd < 0) return eio;
  void* mem = nullptr;
  EXPECT_EQ(posix_memalign(&mem, kBlock, kBlock), 0);
  char* buf = static_cast<char*>(mem);
  for (uint64_t off = 0; off < want.size(); off += kBlock) {
    size_t n = std::min<size_t>(kBlock, want.size() - off);
    ssize_t got = pread(fd, buf, kBlock, off_t(off));
    if (got < 0) {
      EXPECT_EQ(errno, EIO) << path << " at " << off << ": " << strerror(errno);
      eio.insert(off);
      continue;
    }
    EXPECT_EQ(size_t(got), n) << path << " at " << off;
    EXPECT_EQ(std::memcmp(buf, want.data() + off, std::min<size_t>(n, size_t(got))), 0)
        << path << ": wrong bytes at " << off;
  }
  free(mem);
  close(fd);
  return eio;
}

// The blocks that `fsck` output says inode `ino` has in damaged chunks.
std::set<uint64_t> DamagedBlocks(const std::string& fsck_output, uint64_t ino) {
  std::set<uint64_t> blocks;
  std::regex re("inode (\\d+), file offset (\\d+), (\\d+) bytes");
  for (auto it = std::sregex_iterator(fsck_output.begin(), fsck_output.end(), re);
       it != std::sregex_iterator(); ++it) {
    if (std::stoull((*it)[1]) != ino) continue;
    uint64_t off = std::stoull((*it)[2]), len = std::stoull((*it)[3]);
    for (uint64_t b = off / kBlock * kBlock; b < off + len; b += kBlock) blocks.insert(b);
  }
  return blocks;
}

class DamageTest : public MountTest {
 protected:
  DamageTest() : MountTest(std::chrono::seconds(240)) {}
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    // Two daemon runs: a daemon never appends to an earlier run's pack, so a is in pack 1 and
    // b, c are in pack 2.
    for (const std::vector<std::string>& names :
         {std::vector<std::string>{"a"}, std::vector<std::string>{"b", "c"}}) {
      ASSERT_NO_FATAL_FAILURE(Mount());
      for (const std::string& n : names) {
        ASSERT_NO_FATAL_FAILURE(WriteFile(mnt_ + "/" + n, DataOf(n)));
        struct stat st;
        ASSERT_EQ(stat((mnt_ + "/" + n).c_str(), &st), 0);
        ino_[n] = st.st_ino;
      }
      ASSERT_TRUE(fs_->Unmount().ok()) << fs_->DaemonLog();
    }
    ASSERT_EQ(PackRecords(Pack(1)).size() > 10, true);
    ASSERT_EQ(PackRecords(Pack(2)).size() > 10, true);
  }

  std::string Pack(int id) {
    char name[32];
    std::snprintf(name, sizeof name, "/packs/%06d.pack", id);
    return store_ + name;
  }

  CommandResult Fsck() {
    auto r = RunCommand({RANKFS_BINARY, "fsck", store_}, std::chrono::seconds(120));
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : CommandResult{};
  }

  // Runs fsck (which must name damage), mounts, and checks that exactly the blocks fsck names
  // fail with EIO in every file. Returns the damaged files.
  std::set<std::string> CheckDamageIsConfined() {
    CommandResult f = Fsck();
    EXPECT_NE(f.exit_code, 0) << f.output;
    EXPECT_NE(f.output.find("damaged chunk"), std::string::npos) << f.output;
    Mount();
    std::set<std::string> damaged;
    for (const auto& [name, size] : kSizes) {
      std::set<uint64_t> want = DamagedBlocks(f.output, ino_[name]);
      std::set<uint64_t> got = EioBlocks(mnt_ + "/" + name, DataOf(name));
      EXPECT_EQ(got, want) << "file " << name << " (inode " << ino_[name] << ")";
      if (!got.empty()) damaged.insert(name);
      if (!got.empty()) {
        // The log names the inode and a damaged chunk.
        std::string log = fs_->DaemonLog();
        EXPECT_NE(log.find("inode " + std::to_string(ino_[name])), std::string::npos) << log;
        EXPECT_NE(log.find("is damaged"), std::string::npos) << log;
      }
    }
    EXPECT_TRUE(fs_->IsMounted()) << fs_->DaemonLog();
    return damaged;
  }

  // Writing the same content again (a new file) heals every damaged chunk of `names`: the old
  // files read back whole, and after an unmount fsck finds nothing.
  void CheckHealing(const std::set<std::string>& names) {
    for (const std::string& n : names) {
      ASSERT_NO_FATAL_FAILURE(WriteFile(mnt_ + "/" + n + ".again", DataOf(n)));
    }
    for (const auto& [name, size] : kSizes) {
      EXPECT_TRUE(EioBlocks(mnt_ + "/" + name, DataOf(name)).empty()) << name << " not healed";
    }
    ASSERT_TRUE(fs_->Unmount().ok()) << fs_->DaemonLog();
    CommandResult f = Fsck();
    EXPECT_EQ(f.exit_code, 0) << f.output;
  }

  std::map<std::string, uint64_t> ino_;
};

TEST_F(DamageTest, FlippedBytesInOneRecordFailOnlyThatChunk) {
  std::vector<PackRecord> recs = PackRecords(Pack(1));
  const PackRecord r = recs[recs.size() / 2];
  {
    FILE* f = std::fopen(Pack(1).c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fseek(f, long(r.offset + 56 + 100), SEEK_SET);
    const char junk[4] = {'\x5a', '\xa5', '\x5a', '\xa5'};
    std::fwrite(junk, 1, sizeof junk, f);
    std::fclose(f);
  }
  std::set<std::string> damaged = CheckDamageIsConfined();
  EXPECT_EQ(damaged, std::set<std::string>{"a"});
  CheckHealing(damaged);
}

TEST_F(DamageTest, TruncatedPackFailsOnlyTheCutRecords) {
  std::vector<PackRecord> recs = PackRecords(Pack(2));
  const PackRecord r = recs[recs.size() * 3 / 4];
  std::filesystem::resize_file(Pack(2), r.offset + 10);
  std::set<std::string> damaged = CheckDamageIsConfined();
  EXPECT_FALSE(damaged.empty());
  EXPECT_EQ(damaged.count("a"), 0u);
  CheckHealing(damaged);
}

TEST_F(DamageTest, MissingPackFailsOnlyItsFiles) {
  ASSERT_EQ(unlink(Pack(2).c_str()), 0);
  std::set<std::string> damaged = CheckDamageIsConfined();
  EXPECT_EQ(damaged, (std::set<std::string>{"b", "c"}));
  CheckHealing(damaged);
}

// A damaged RocksDB file: the metadata has no redundancy of its own, so the contract is that
// nothing wrong is ever served: either the mount refuses with a message naming the metadata
// store, or reads give correct bytes or an error; and fsck reports the damage (non-zero exit).
TEST_F(DamageTest, DamagedMetadataFileIsRefusedOrReportedNeverServedWrong) {
  std::string sst;
  uint64_t biggest = 0;
  for (const auto& e : std::filesystem::directory_iterator(store_ + "/meta")) {
    if (e.path().extension() == ".sst" && e.file_size() > biggest) {
      biggest = e.file_size();
      sst = e.path();
    }
  }
  ASSERT_FALSE(sst.empty()) << "no SST file in the metadata store";
  {
    FILE* f = std::fopen(sst.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::string junk(64, '\xee');
    for (uint64_t at = 0; at + junk.size() < biggest; at += 512) {  // all over the SST
      std::fseek(f, long(at), SEEK_SET);
      std::fwrite(junk.data(), 1, junk.size(), f);
    }
    std::fclose(f);
  }
  CommandResult f = Fsck();
  std::printf("fsck on a damaged SST: exit %d\n%s\n", f.exit_code,
              f.output.substr(0, 1500).c_str());
  EXPECT_NE(f.exit_code, 0) << f.output;

  Status mounted = TryMount();
  if (!mounted.ok()) {
    std::printf("mount refused: %s\n", mounted.ToString().substr(0, 1500).c_str());
    EXPECT_NE(mounted.ToString().find("meta"), std::string::npos) << mounted.ToString();
    return;
  }
  int served = 0, failed = 0;
  for (const auto& [name, size] : kSizes) {
    // Open may fail (the inode's record is damaged); if it opens, blocks are exact or EIO.
    int fd = open((mnt_ + "/" + name).c_str(), O_RDONLY);
    if (fd < 0) {
      ++failed;
      continue;
    }
    close(fd);
    std::set<uint64_t> eio = EioBlocks(mnt_ + "/" + name, DataOf(name));
    eio.empty() ? ++served : ++failed;
  }
  std::printf("mounted anyway: %d files served whole, %d with errors\n", served, failed);
  EXPECT_TRUE(fs_->IsMounted()) << fs_->DaemonLog();
  std::printf("daemon log:\n%s\n", fs_->DaemonLog().substr(0, 3000).c_str());
}

}  // namespace
}  // namespace rankfs
