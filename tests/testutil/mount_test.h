// MountTest: the fixture of every integration test that mounts rankfs for real, so that there
// is one SetUp. SetUp skips the test without root and /dev/fuse (in CI it fails instead,
// tests/testutil/skip.h) and makes STORE and MNT under a fresh temporary directory; Mount
// starts the daemon (RANKFS_BINARY) there. The TestTimeout, running from construction, aborts
// a hung test after lazily unmounting every mountpoint the fixture knows of. At the end no
// mount is left behind: the MountedFs unmounts its own, and whatever else is still mounted on
// MNT or on a mountpoint from AddMountpoint (a mount made by mount.rankfs or mount(8)) is
// lazily unmounted. Members are destroyed in reverse order: the mount first, the directory
// last.
//
// A test needing more sets it up in its own SetUp after MountTest::SetUp (checking
// IsSkipped() || HasFatalFailure() first): store_ may be pointed elsewhere before Mount, a
// longer timeout goes to the constructor.
#pragma once

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/skip.h"
#include "tests/testutil/temp_dir.h"

namespace rankfs {

class MountTest : public ::testing::Test {
 protected:
  explicit MountTest(std::chrono::seconds limit = std::chrono::seconds(180)) : timeout_(limit) {}
  ~MountTest() override {
    fs_.reset();
    for (const std::string& m : mountpoints_) {
      if (IsMountPoint(m)) umount2(m.c_str(), MNT_DETACH);
    }
  }

  void SetUp() override {
    if (!MountedFs::FuseAvailable()) RANKFS_SKIP("needs root and /dev/fuse");
    store_ = tmp_.Join("store");
    mnt_ = AddMountpoint("mnt");
  }

  // Mounts store_ on mnt_ with `options` (the -o list); fs_ is the daemon. A MountedFs still
  // in fs_ goes first (its destructor would otherwise unmount the new mount).
  void Mount(const std::string& options = "") {
    Status s = TryMount(options);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  // Mount, for a test in which refusing to mount is an outcome: the daemon's failure, with
  // its log, is returned instead of failing the test.
  Status TryMount(const std::string& options = "") {
    fs_.reset();
    auto m = MountedFs::Start(RANKFS_BINARY, store_, mnt_, options);
    if (!m.ok()) return m.status();
    fs_ = std::move(m).value();
    return Status::Ok();
  }
  // A clean unmount: the daemon must exit with status 0.
  void Unmount() {
    Status s = fs_->Unmount();
    ASSERT_TRUE(s.ok()) << s.ToString() << "\n" << fs_->DaemonLog();
    fs_.reset();
  }

  // Makes the directory tmp_/name for a mount of the test's own (a second mount, mount.rankfs,
  // mount(8)); the timeout watches it and the fixture unmounts it at the end. Returns its path.
  std::string AddMountpoint(const std::string& name) {
    const std::string path = tmp_.Join(name);
    EXPECT_EQ(mkdir(path.c_str(), 0755), 0) << path << ": " << strerror(errno);
    timeout_.Watch(path);
    mountpoints_.push_back(path);
    return path;
  }

  TempDir tmp_;
  TestTimeout timeout_;
  std::string store_, mnt_;
  std::unique_ptr<MountedFs> fs_;

 private:
  std::vector<std::string> mountpoints_;  // mnt_ and AddMountpoint's, for the destructor
};

}  // namespace rankfs
