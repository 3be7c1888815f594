// fsync(2) of a directory makes its entries durable (FsCore::FsyncDir): the "write a temporary
// file, fsync it, rename it over the real name, fsync the directory" pattern survives a power
// cut. FsCore runs over a store whose pack files and RocksDB files go through the fault-injecting
// Envs sharing one FaultController; the power cut deactivates the controller (every further
// write and sync fails), tears everything down, and drops every byte that was not synced, as in
// power_cut_test.cc.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "fs/fs_core.h"
#include "store/fault_injection_env.h"
#include "store/logging.h"
#include "store/rocks_fault_env.h"
#include "store/store.h"
#include "tests/testutil/temp_dir.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

class FsyncDirTest : public ::testing::Test {
 protected:
  FsyncDirTest()
      : controller_(std::make_shared<FaultController>()),
        env_(Env::Default(), controller_),
        rocks_env_(controller_) {}

  // The power cut makes the store log every failed write: shown only if the test fails.
  void SetUp() override {
    SetLogSink([this](LogLevel, const std::string& line) {
      std::lock_guard<std::mutex> l(log_mu_);
      log_ += line + "\n";
    });
  }
  void TearDown() override {
    fs_.reset();
    store_.reset();
    SetLogSink(nullptr);
    if (HasFailure()) std::fputs(log_.c_str(), stderr);
  }

  void Boot() {
    StoreOptions so;
    so.env = &env_;
    so.rocks_env = rocks_env_.env();
    auto s = Store::Open(dir_.Join("store"), so);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    auto fs = FsCore::Create(store_.get(), FsOptions());
    ASSERT_TRUE(fs.ok()) << fs.status().ToString();
    fs_ = std::move(fs).value();
  }

  void CutPowerAndReboot() {
    controller_->SetActive(false);
    fs_.reset();  // its Shutdown fails: nothing reaches the disk any more
    store_.reset();
    Status d = env_.DropUnsyncedData();
    ASSERT_TRUE(d.ok()) << d.ToString();
    d = rocks_env_.DropUnsyncedData();
    ASSERT_TRUE(d.ok()) << d.ToString();
    controller_->SetActive(true);
    Boot();
  }

  // Creates `name` in `parent` holding `data`, fsyncs and closes it.
  void WriteSynced(Ino parent, const std::string& name, const std::string& data) {
    Result<InodeAttr> a = fs_->Create(parent, name, 0644, O_WRONLY | O_CREAT | O_TRUNC, caller_);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    ASSERT_TRUE(fs_->Write(a->ino, 0, data).ok());
    ASSERT_TRUE(fs_->Fsync(a->ino, false).ok());
    ASSERT_TRUE(fs_->Flush(a->ino).ok());
    ASSERT_TRUE(fs_->Release(a->ino).ok());
    fs_->Forget(a->ino, 1);
  }

  std::string ReadFile(Ino parent, const std::string& name) {
    Result<InodeAttr> a = fs_->Lookup(parent, name);
    if (!a.ok()) return "<" + a.status().ToString() + ">";
    std::string out(a->size, '\0');
    Result<size_t> n = fs_->Read(a->ino, 0, out.size(), out.data());
    fs_->Forget(a->ino, 1);
    if (!n.ok()) return "<" + n.status().ToString() + ">";
    out.resize(*n);
    return out;
  }

  TempDir dir_;
  std::shared_ptr<FaultController> controller_;
  FaultInjectionEnv env_;
  RocksFaultEnv rocks_env_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<FsCore> fs_;
  const Caller caller_{0, 0, 1};
  std::mutex log_mu_;  // guards log_
  std::string log_;
};

TEST_F(FsyncDirTest, RenameOverAFileThenFsyncOfTheDirectorySurvivesAPowerCut) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  Result<InodeAttr> dir = fs_->MkDir(kRootIno, "d", 0755, caller_);
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  const Ino d = dir->ino;
  fs_->Forget(d, 1);
  const std::string old_data = MakeRealData(300 << 10, 1);
  const std::string new_data = MakeRealData(200 << 10, 2);
  ASSERT_NO_FATAL_FAILURE(WriteSynced(d, "final", old_data));
  ASSERT_TRUE(fs_->FsyncDir(d).ok());  // "d" and "final" are durable from here

  ASSERT_NO_FATAL_FAILURE(WriteSynced(d, "tmp", new_data));
  ASSERT_TRUE(fs_->Rename(d, "tmp", d, "final", 0).ok());
  Status s = fs_->FsyncDir(d);
  ASSERT_TRUE(s.ok()) << s.ToString();

  ASSERT_NO_FATAL_FAILURE(CutPowerAndReboot());
  EXPECT_EQ(fs_->Lookup(d, "tmp").status().code(), ENOENT);
  const std::string got = ReadFile(d, "final");
  EXPECT_EQ(got.size(), new_data.size());
  EXPECT_TRUE(got == new_data) << "\"final\" does not hold the renamed file's bytes";
}

TEST_F(FsyncDirTest, OnlyDirectoriesAreFsyncedAsDirectories) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  ASSERT_NO_FATAL_FAILURE(WriteSynced(kRootIno, "f", "x"));
  Result<InodeAttr> f = fs_->Lookup(kRootIno, "f");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(fs_->FsyncDir(f->ino).code(), ENOTDIR);
  fs_->Forget(f->ino, 1);
  EXPECT_TRUE(fs_->FsyncDir(kRootIno).ok());
  EXPECT_EQ(fs_->FsyncDir(999999).code(), ENOENT);
}

}  // namespace
}  // namespace rankfs
