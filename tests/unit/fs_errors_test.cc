// FsCore when a metadata write fails after it reached the disk (its outcome unknown to the
// caller, docs/reliability.md "Errors"): no reference that the write may have handed to an
// extent is dropped, so nothing a file names is ever freed; the bytes stay buffered and the
// next flush stores them; fsck then finds the store consistent.
#include <fcntl.h>
#include <gtest/gtest.h>

#include "fs/fs_core.h"
#include "store/fault_injection_env.h"
#include "tests/testutil/fsck_text.h"
#include "tests/testutil/temp_dir.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

class FsErrorsTest : public ::testing::Test {
 protected:
  FsErrorsTest() : controller_(std::make_shared<FaultController>()), meta_faults_(controller_) {}

  void SetUp() override { ASSERT_NO_FATAL_FAILURE(Open()); }
  void Open() {
    StoreOptions so;
    so.packs.background_reclaim = false;
    so.meta.write_hook = &meta_faults_;
    auto s = Store::Open(dir_.Join("store"), so);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    FsOptions fo;
    fo.lazy_close_ms = 0;
    auto fs = FsCore::Create(store_.get(), fo);
    ASSERT_TRUE(fs.ok()) << fs.status().ToString();
    fs_ = std::move(fs).value();
  }
  void Close() {
    ASSERT_TRUE(fs_->Shutdown().ok());
    fs_.reset();
    ASSERT_TRUE(store_->Close().ok());
    store_.reset();
  }
  Ino Create(const std::string& name) {
    auto a = fs_->Create(kRootIno, name, 0644, O_RDWR, Caller{0, 0, 1});
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    return a.ok() ? a->ino : 0;
  }
  ::testing::AssertionResult Holds(Ino ino, const std::string& want) {
    std::string out(want.size() + 1, '\0');
    auto n = fs_->Read(ino, 0, out.size(), out.data());
    if (!n.ok()) return ::testing::AssertionFailure() << n.status().ToString();
    out.resize(*n);
    if (out != want) return ::testing::AssertionFailure() << "different bytes";
    return ::testing::AssertionSuccess();
  }
  std::string FsckText() { return rankfs::FsckText(dir_.Join("store")); }
  // The file still reads `model` after a reclaim, the store is clean for fsck, and the file
  // reads `model` after the store is opened again.
  void ExpectKeptAcrossReopen(Ino ino, const std::string& model) {
    ASSERT_TRUE(store_->chunks()->Reclaim().ok());
    EXPECT_TRUE(Holds(ino, model)) << "a chunk the file names was freed";
    ASSERT_NO_FATAL_FAILURE(Close());
    EXPECT_EQ(FsckText(), "");
    ASSERT_NO_FATAL_FAILURE(Open());
    EXPECT_TRUE(Holds(ino, model)) << "after reopening the store";
  }
  // The next metadata write that changes extents happens, then reports a failure.
  void FailNextExtentWriteAfterApplying() {
    controller_->FailAfter(kFaultMetaWrite, 0, EIO, "extents", /*count=*/1,
                           FaultEffect::kApplied);
  }

  TempDir dir_;
  std::shared_ptr<FaultController> controller_;
  MetaWriteFaults meta_faults_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<FsCore> fs_;
};

// A rewrite inside a stored file is flushed as a dirty range: a fresh chunk, and the old
// extent split around it (the tail takes a reference). The write of those extents "fails".
TEST_F(FsErrorsTest, DirtyRangeWhoseExtentWriteFailsAfterApplying) {
  std::string model = MakeRandomData(256 << 10, 1);
  const Ino ino = Create("f");
  ASSERT_TRUE(fs_->Write(ino, 0, model).ok());
  ASSERT_TRUE(fs_->Fsync(ino, false).ok());
  const std::string patch = MakeRandomData(4096, 2);
  ASSERT_TRUE(fs_->Write(ino, 100000, patch).ok());
  model.replace(100000, patch.size(), patch);

  FailNextExtentWriteAfterApplying();
  EXPECT_FALSE(fs_->Fsync(ino, false).ok());
  EXPECT_EQ(controller_->injected(), 1u);
  EXPECT_TRUE(Holds(ino, model));
  ASSERT_TRUE(fs_->Fsync(ino, false).ok()) << "the bytes stayed buffered for the retry";
  EXPECT_TRUE(Holds(ino, model));
  ExpectKeptAcrossReopen(ino, model);
}

// A file written as a stream: its first batch is committed by the flush pipeline, and that
// commit's extent write "fails". The batch's bytes go back to the file's buffers.
TEST_F(FsErrorsTest, StreamBatchWhoseCommitFailsAfterApplying) {
  const std::string model = MakeRealData(10 << 20, 3);
  const Ino ino = Create("g");
  FailNextExtentWriteAfterApplying();
  for (size_t off = 0; off < model.size(); off += 1 << 20) {
    ASSERT_TRUE(fs_->Write(ino, off, std::string_view(model).substr(off, 1 << 20)).ok());
  }
  Status first = fs_->Fsync(ino, false);  // may report the failed batch, or store it again
  EXPECT_EQ(controller_->injected(), 1u);
  if (!first.ok()) {
    ASSERT_TRUE(fs_->Fsync(ino, false).ok());
  }
  EXPECT_TRUE(Holds(ino, model));
  ExpectKeptAcrossReopen(ino, model);
}

// copy_file_range takes references to the source's chunks for the copy's extents; the write of
// those extents "fails".
TEST_F(FsErrorsTest, CopyWhoseExtentWriteFailsAfterApplying) {
  const std::string model = MakeRandomData(512 << 10, 4);
  const Ino src = Create("src"), dst = Create("dst");
  ASSERT_TRUE(fs_->Write(src, 0, model).ok());
  ASSERT_TRUE(fs_->Fsync(src, false).ok());
  FailNextExtentWriteAfterApplying();
  EXPECT_FALSE(fs_->CopyFileRange(src, 0, dst, 0, model.size()).ok());
  auto again = fs_->CopyFileRange(src, 0, dst, 0, model.size());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, model.size());
  // The source goes: the copy keeps every chunk it names.
  ASSERT_TRUE(fs_->Release(src).ok());
  ASSERT_TRUE(fs_->Unlink(kRootIno, "src").ok());
  fs_->Forget(src, 1);
  ASSERT_TRUE(fs_->DrainBackground().ok());
  EXPECT_TRUE(Holds(dst, model));

  ASSERT_NO_FATAL_FAILURE(Close());
  const std::string fsck = FsckText();
  EXPECT_EQ(fsck.find("damaged"), std::string::npos) << fsck;
  EXPECT_EQ(fsck.find("missing"), std::string::npos) << fsck;
  EXPECT_EQ(fsck.find("too low"), std::string::npos) << fsck;
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_TRUE(Holds(dst, model));
}

}  // namespace
}  // namespace rankfs
