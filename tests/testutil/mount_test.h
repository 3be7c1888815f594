// MountTest: the fixture of an integration test that mounts rankfs for real. SetUp skips the
// test without root and /dev/fuse and makes STORE and MNT under a fresh temporary directory;
// Mount starts the daemon (RANKFS_BINARY) there; the TestTimeout aborts a hung test after
// unmounting MNT. Members are destroyed in reverse order: the mount first, the directory last.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <memory>
#include <string>

#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/temp_dir.h"

namespace rankfs {

class MountTest : public ::testing::Test {
 protected:
  explicit MountTest(std::chrono::seconds limit = std::chrono::seconds(180)) : timeout_(limit) {}

  void SetUp() override {
    if (!MountedFs::FuseAvailable()) GTEST_SKIP() << "needs root and /dev/fuse";
    store_ = tmp_.Join("store");
    mnt_ = tmp_.Join("mnt");
    ASSERT_EQ(mkdir(mnt_.c_str(), 0755), 0);
    timeout_.Watch(mnt_);
  }

  void Mount(const std::string& options = "") {
    auto m = MountedFs::Start(RANKFS_BINARY, store_, mnt_, options);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    fs_ = std::move(m).value();
  }
  // A clean unmount: the daemon must exit with status 0.
  void Unmount() {
    Status s = fs_->Unmount();
    ASSERT_TRUE(s.ok()) << s.ToString() << "\n" << fs_->DaemonLog();
    fs_.reset();
  }

  TempDir tmp_;
  TestTimeout timeout_;
  std::string store_, mnt_;
  std::unique_ptr<MountedFs> fs_;
};

}  // namespace rankfs
