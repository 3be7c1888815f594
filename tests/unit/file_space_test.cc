// A file's space through FsCore: st_blocks' figure (InodeAttr::allocated_bytes) counts only
// what is not a hole, bytes still buffered included, and is kept right when the flush
// pipeline stores a stream's batches without the inode lock (also when one fails).
#include <fcntl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "fs/fs_core.h"
#include "store/fault_injection_env.h"
#include "store/fsck.h"
#include "store/store.h"
#include "tests/testutil/fs_core_fixture.h"
#include "tests/testutil/temp_dir.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

class FileSpaceTest : public FsCoreFixture {
 protected:
  uint64_t Allocated(Ino ino) {
    auto a = fs_->GetAttr(ino);
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    return a.ok() ? a->allocated_bytes : ~0ull;
  }
  // Closes FsCore and the store, and checks the store with fsck: clean, nothing to repair.
  void ExpectFsckClean() {
    ASSERT_TRUE(fs_->Shutdown().ok());
    fs_.reset();
    ASSERT_TRUE(store_->Close().ok());
    store_.reset();
    auto r = Fsck(dir_.Join("store"), FsckOptions());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    std::string text;
    for (const FsckFinding& f : r->findings) text += f.message + "\n";
    EXPECT_EQ(r->findings.size(), 0u) << text;
    Open();
  }
};

// `truncate -s 1T` is a hole: du says 0 (it said 1 TiB). One byte at the end of a 1 GiB file
// is one block. Bytes still buffered count before they reach the store.
TEST_F(FileSpaceTest, StBlocksCountsOnlyWhatIsNotAHole) {
  const Ino sparse = CreateFile(kRootIno, "sparse");
  SetAttrRequest t;
  t.set_size = true;
  t.size = 1ull << 40;
  ASSERT_TRUE(fs_->SetAttr(sparse, t).ok());
  EXPECT_EQ(Allocated(sparse), 0u);

  const Ino one = CreateFile(kRootIno, "one-byte");
  ASSERT_TRUE(fs_->Write(one, (1 << 30) - 1, "x").ok());
  EXPECT_EQ(Allocated(one), 1u) << "a buffered byte counts";
  ASSERT_TRUE(fs_->Fsync(one, false).ok());
  EXPECT_EQ(Allocated(one), 1u);

  const Ino full = CreateFile(kRootIno, "full");
  const std::string data = MakeRealData(3 << 20, 3);
  WriteAll(full, data);
  EXPECT_EQ(Allocated(full), data.size()) << "while buffered";
  ASSERT_TRUE(fs_->Release(full).ok());  // stored through the pipeline, without the lock
  EXPECT_TRUE(fs_->DrainBackground().ok());
  EXPECT_EQ(Allocated(full), data.size());

  Reopen();  // the figure is in the inode record
  EXPECT_EQ(Allocated(sparse), 0u);
  EXPECT_EQ(Allocated(one), 1u);
  EXPECT_EQ(Allocated(full), data.size());
}


// A batch whose chunks cannot be stored goes back to the dirty ranges and is stored by the
// next flush: its bytes were counted when it was submitted and must not count twice.
TEST(FileSpaceFaultTest, AFailedBatchIsCountedOnceWhenItsBytesAreStoredAgain) {
  TempDir dir;
  FaultInjectionEnv env(Env::Default());
  StoreOptions so;
  so.env = &env;
  so.packs.background_reclaim = false;
  auto store = Store::Open(dir.Join("store"), so);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto fs = FsCore::Create(store->get(), FsOptions());
  ASSERT_TRUE(fs.ok()) << fs.status().ToString();
  auto a = (*fs)->Create(kRootIno, "f", 0644, O_RDWR, Caller{});
  ASSERT_TRUE(a.ok());
  const std::string data = MakeRealData(6 << 20, 13);
  env.controller().FailAfter(kFaultWrite, 0, EIO, "/packs/");
  for (size_t off = 0; off < data.size(); off += 65536) {
    ASSERT_TRUE((*fs)->Write(a->ino, off, std::string_view(data).substr(off, 65536)).ok());
  }
  (void)(*fs)->Flush(a->ino);  // submits the rest; its batches fail
  (void)(*fs)->DrainBackground();
  EXPECT_GT(env.controller().injected(), 0u);
  env.controller().ClearFaults();
  Status st = (*fs)->Fsync(a->ino, false);  // stores the bytes of the failed batches again
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ((*fs)->GetAttr(a->ino)->allocated_bytes, data.size());
  ASSERT_TRUE((*fs)->Release(a->ino).ok());
  ASSERT_TRUE((*fs)->Shutdown().ok());
  fs->reset();
  ASSERT_TRUE((*store)->Close().ok());
  store->reset();
  auto r = Fsck(dir.Join("store"), FsckOptions());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->findings.size(), 0u) << (r->findings.empty() ? "" : r->findings[0].message);
}

}  // namespace
}  // namespace rankfs
