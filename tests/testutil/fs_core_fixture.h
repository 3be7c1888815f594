// FsCoreFixture: an FsCore over a fresh store in a temporary directory, and the calls tests
// make through it the way the FUSE glue does (create, write in pieces, read back whole).
// Thread-safety: a test's own thread only.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>

#include "fs/fs_core.h"
#include "tests/testutil/temp_dir.h"

namespace rankfs {

class FsCoreFixture : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void Open(FsOptions fo = FsOptions()) {
    StoreOptions so;
    so.packs.background_reclaim = false;
    auto s = Store::Open(dir_.Join("store"), so);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    auto fs = FsCore::Create(store_.get(), fo);
    ASSERT_TRUE(fs.ok()) << fs.status().ToString();
    fs_ = std::move(fs).value();
  }
  void Reopen(FsOptions fo = FsOptions()) {
    ASSERT_TRUE(fs_->Shutdown().ok());
    fs_.reset();
    ASSERT_TRUE(store_->Close().ok());
    store_.reset();
    Open(fo);
  }
  Ino CreateFile(Ino parent, const std::string& name) {
    auto a = fs_->Create(parent, name, 0644, O_RDWR, caller_);
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    return a.ok() ? a->ino : 0;
  }
  void WriteAll(Ino ino, const std::string& data, size_t piece = 8192, uint64_t at = 0) {
    for (size_t off = 0; off < data.size(); off += piece) {
      size_t n = std::min(piece, data.size() - off);
      ASSERT_TRUE(fs_->Write(ino, at + off, std::string_view(data).substr(off, n)).ok());
    }
  }
  std::string ReadAll(Ino ino) {
    auto a = fs_->GetAttr(ino);
    EXPECT_TRUE(a.ok());
    std::string out(a->size, '\0');
    size_t done = 0;
    while (done < out.size()) {
      auto n =
          fs_->Read(ino, done, std::min<size_t>(1 << 20, out.size() - done), out.data() + done);
      EXPECT_TRUE(n.ok()) << n.status().ToString();
      if (!n.ok() || *n == 0) break;
      done += *n;
    }
    out.resize(done);
    return out;
  }
  // Stats once every handed-on write has reached the store (release does not wait for it).
  FsStats SettledStats() {
    EXPECT_TRUE(fs_->DrainBackground().ok());
    return fs_->Stats();
  }

  TempDir dir_;
  Caller caller_{1000, 1000, 1};
  std::unique_ptr<Store> store_;
  std::unique_ptr<FsCore> fs_;
};

}  // namespace rankfs
