// Many files in one directory, on a real mount: the kernel keeps the names it was given for
// entry_timeout (an hour by default), so an `ls -l` then `rm -rf` a while later asks the
// daemon for no name again, and names changed through the mount show at once all the same.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>

#include "tests/testutil/mount_test.h"

namespace rankfs {
namespace {

class ManyFilesTest : public MountTest {
 protected:
  static bool Exists(const std::string& p) {
    struct stat st;
    return lstat(p.c_str(), &st) == 0;
  }
  static void Touch(const std::string& p) {
    int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    ASSERT_GE(fd, 0) << p << ": " << strerror(errno);
    ASSERT_EQ(close(fd), 0);
  }
  static std::set<std::string> List(const std::string& dir) {
    std::set<std::string> names;
    DIR* d = opendir(dir.c_str());
    EXPECT_NE(d, nullptr) << dir << ": " << strerror(errno);
    if (d == nullptr) return names;
    while (dirent* e = readdir(d)) {
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") {
        names.insert(e->d_name);
      }
    }
    closedir(d);
    return names;
  }
};

TEST_F(ManyFilesTest, AnRmAfterTheOldTimeoutAsksForNoNameAgain) {
  Mount();
  constexpr int kFiles = 500;
  // A drop_caches elsewhere on the machine (a benchmark, another test) makes the kernel forget
  // names whatever their timeout: up to three tries, each in a fresh directory.
  uint64_t asked = 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const std::string dir = mnt_ + "/many" + std::to_string(attempt);
    ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
    for (int i = 0; i < kFiles; ++i) Touch(dir + "/f" + std::to_string(i));
    ASSERT_EQ(List(dir).size(), size_t(kFiles));
    // Past the former default of one second: with it, each name below cost a LOOKUP.
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    const uint64_t before = StatValue(mnt_, "lookup_requests");
    ASSERT_NE(before, ~0ull) << "no lookup_requests in the stats file";
    for (int i = 0; i < kFiles; ++i) {
      const std::string p = dir + "/f" + std::to_string(i);
      ASSERT_TRUE(Exists(p)) << p;
      ASSERT_EQ(unlink(p.c_str()), 0) << p << ": " << strerror(errno);
    }
    ASSERT_EQ(rmdir(dir.c_str()), 0) << strerror(errno);
    asked = StatValue(mnt_, "lookup_requests") - before;
    if (asked <= 10) break;
  }
  EXPECT_LE(asked, 10u) << "names the kernel was given were looked up again";
  EXPECT_EQ(StatValue(mnt_, "files"), 0u);
}

TEST_F(ManyFilesTest, NamesChangedThroughTheMountShowAtOnce) {
  Mount();
  const std::string a = mnt_ + "/a", b = mnt_ + "/b", c = mnt_ + "/c";
  EXPECT_FALSE(Exists(c));  // a name not found, which the kernel now keeps as such
  Touch(a);
  ASSERT_EQ(rename(a.c_str(), b.c_str()), 0) << strerror(errno);
  EXPECT_FALSE(Exists(a));
  EXPECT_TRUE(Exists(b));
  Touch(c);
  EXPECT_TRUE(Exists(c));
  ASSERT_EQ(unlink(b.c_str()), 0);
  EXPECT_FALSE(Exists(b));
  Touch(b);
  EXPECT_TRUE(Exists(b));
  EXPECT_EQ(List(mnt_), (std::set<std::string>{"b", "c"}));
  // And after a remount, the store says the same.
  Unmount();
  Mount();
  EXPECT_EQ(List(mnt_), (std::set<std::string>{"b", "c"}));
  EXPECT_FALSE(Exists(a));
}

}  // namespace
}  // namespace rankfs
