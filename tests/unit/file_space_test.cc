// A file's space through FsCore: st_blocks' figure (InodeAttr::allocated_bytes) counts only
// what is not a hole, and fallocate's modes (allocate, keep size, punch, zero, collapse,
// insert) follow ext4's rules, moving extents without copying data. The reference for both is
// a byte model of the file; fsck then finds the store consistent (references of split
// extents, allocated bytes equal to the extents).
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include <algorithm>
#include <random>

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

constexpr uint64_t kBlock = 4096;

// What each byte of the file (and past its end) is: a hole, data, or preallocated.
enum : uint8_t { kHole = 0, kData = 1, kUnwritten = 2 };

// The model: bytes and their kinds. `kind` may run past `size` (preallocation past the end).
struct FileModel {
  std::string bytes;  // the file's contents, up to size
  std::vector<uint8_t> kind;
  uint64_t size = 0;

  void Cover(uint64_t end) {
    if (kind.size() < end) kind.resize(end, kHole);
    if (bytes.size() < end) bytes.resize(end, '\0');
  }
  void Fill(uint64_t off, uint64_t len, uint8_t k) {
    Cover(off + len);
    std::fill(kind.begin() + off, kind.begin() + off + len, k);
    if (k != kData) std::fill(bytes.begin() + off, bytes.begin() + off + len, '\0');
  }
  void Write(uint64_t off, std::string_view data) {
    Fill(off, data.size(), kData);
    bytes.replace(off, data.size(), data);
    size = std::max<uint64_t>(size, off + data.size());
  }
  void Truncate(uint64_t s) {
    if (s > size) {
      size = s;
      return;
    }
    // Shrinking, or the same size: nothing stays past the end (ext4 drops preallocation too).
    if (kind.size() > s) kind.resize(s);
    if (bytes.size() > s) bytes.resize(s);
    size = s;
  }
  void Allocate(uint64_t off, uint64_t len, bool keep) {
    Cover(off + len);
    for (uint64_t i = off; i < off + len; ++i) {
      if (kind[i] == kHole) kind[i] = kUnwritten;
    }
    if (!keep) size = std::max(size, off + len);
  }
  void Zero(uint64_t off, uint64_t len, bool keep) {
    Fill(off, len, kUnwritten);
    if (!keep) size = std::max(size, off + len);
  }
  void Punch(uint64_t off, uint64_t len) {
    const uint64_t end = std::min(off + len, size);
    if (off < end) Fill(off, end - off, kHole);
  }
  void Collapse(uint64_t off, uint64_t len) {
    Cover(size);
    kind.erase(kind.begin() + off, kind.begin() + std::min<uint64_t>(kind.size(), off + len));
    bytes.erase(off, len);
    size -= len;
  }
  void Insert(uint64_t off, uint64_t len) {
    Cover(size);
    kind.insert(kind.begin() + off, len, kHole);
    bytes.insert(off, len, '\0');
    size += len;
  }
  uint64_t Allocated() const {
    return uint64_t(std::count_if(kind.begin(), kind.end(), [](uint8_t k) { return k != kHole; }));
  }
  std::string Contents() const {
    return bytes.substr(0, size) + std::string(size - std::min<uint64_t>(size, bytes.size()), '\0');
  }
};

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

// Every mode against the model, in random order, with buffered and stored bytes mixed: the
// bytes read back and (once settled) the allocated bytes agree, across a restart too.
TEST_F(FileSpaceTest, FallocateModesAndAllocatedBytesMatchAModel) {
  std::mt19937_64 rng(11);
  FileModel m;
  const Ino ino = CreateFile(kRootIno, "f");
  const std::string pool = MakeRealData(2 << 20, 12);
  auto block_aligned = [&](uint64_t bound) { return (rng() % (bound / kBlock + 1)) * kBlock; };
  for (int op = 0; op < 1500; ++op) {
    const int kind = int(rng() % 12);
    uint64_t off = rng() % (3 << 20);
    uint64_t len = 1 + rng() % 200000;
    const bool keep = rng() % 2;
    SCOPED_TRACE("op " + std::to_string(op) + " kind " + std::to_string(kind) + " off " +
                 std::to_string(off) + " len " + std::to_string(len));
    if (kind <= 2) {  // writes: appends (the stream) and rewrites (dirty ranges)
      if (kind == 0) off = m.size;
      len = std::min<uint64_t>(len, pool.size() - 1);
      std::string_view piece = std::string_view(pool).substr(rng() % (pool.size() - len), len);
      ASSERT_TRUE(fs_->Write(ino, off, piece).ok());
      m.Write(off, piece);
    } else if (kind == 3) {
      SetAttrRequest t;
      t.set_size = true;
      t.size = rng() % 4 == 0 ? m.size : off;
      ASSERT_TRUE(fs_->SetAttr(ino, t).ok());
      m.Truncate(t.size);
    } else if (kind == 4) {
      ASSERT_TRUE(fs_->Fallocate(ino, keep ? FALLOC_FL_KEEP_SIZE : 0, off, len).ok());
      m.Allocate(off, len, keep);
    } else if (kind == 5) {
      ASSERT_TRUE(fs_->Fallocate(ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len).ok());
      m.Punch(off, len);
    } else if (kind == 6) {
      ASSERT_TRUE(
          fs_->Fallocate(ino, FALLOC_FL_ZERO_RANGE | (keep ? FALLOC_FL_KEEP_SIZE : 0), off, len)
              .ok());
      m.Zero(off, len, keep);
    } else if (kind == 7) {
      off = block_aligned(m.size);
      len = kBlock * (1 + rng() % 16);
      Status s = fs_->Fallocate(ino, FALLOC_FL_COLLAPSE_RANGE, off, len);
      if (off + len < m.size) {
        ASSERT_TRUE(s.ok()) << s.ToString();
        m.Collapse(off, len);
      } else {
        ASSERT_EQ(s.code(), EINVAL) << s.ToString();
      }
    } else if (kind == 8) {
      off = block_aligned(m.size);
      len = kBlock * (1 + rng() % 16);
      Status s = fs_->Fallocate(ino, FALLOC_FL_INSERT_RANGE, off, len);
      if (off < m.size) {
        ASSERT_TRUE(s.ok()) << s.ToString();
        m.Insert(off, len);
      } else {
        ASSERT_EQ(s.code(), EINVAL) << s.ToString();
      }
    } else if (kind == 9) {
      ASSERT_TRUE(fs_->Flush(ino).ok());
    } else if (kind == 10) {
      ASSERT_TRUE(fs_->Fsync(ino, false).ok());
      ASSERT_EQ(Allocated(ino), m.Allocated());
    } else {
      std::string buf(len, '\0');
      auto r = fs_->Read(ino, off, len, buf.data());
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      const std::string want = off >= m.size ? "" : m.Contents().substr(off, len);
      ASSERT_EQ(*r, want.size());
      ASSERT_TRUE(buf.substr(0, want.size()) == want);
    }
    if (m.size > (6 << 20)) {  // keep it small
      SetAttrRequest t;
      t.set_size = true;
      t.size = 1 << 20;
      ASSERT_TRUE(fs_->SetAttr(ino, t).ok());
      m.Truncate(t.size);
    }
  }
  ASSERT_TRUE(fs_->Fsync(ino, false).ok());
  EXPECT_EQ(Allocated(ino), m.Allocated());
  EXPECT_TRUE(ReadAll(ino) == m.Contents());
  ASSERT_TRUE(fs_->Release(ino).ok());
  ASSERT_NO_FATAL_FAILURE(ExpectFsckClean());
  EXPECT_EQ(fs_->GetAttr(ino)->size, m.size);
  EXPECT_EQ(Allocated(ino), m.Allocated());
  EXPECT_TRUE(ReadAll(ino) == m.Contents());
}

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

  // fallocate -n: counted, past the end too; a truncate to the same size drops it (ext4 does).
  ASSERT_TRUE(fs_->Fallocate(one, FALLOC_FL_KEEP_SIZE, 1 << 30, 1 << 20).ok());
  EXPECT_EQ(fs_->GetAttr(one)->size, 1u << 30);
  EXPECT_EQ(Allocated(one), 1u + (1 << 20));
  Reopen();
  EXPECT_EQ(Allocated(sparse), 0u);
  EXPECT_EQ(Allocated(one), 1u + (1 << 20));
  EXPECT_EQ(Allocated(full), data.size());
  t.size = 1 << 30;
  ASSERT_TRUE(fs_->SetAttr(one, t).ok());
  EXPECT_EQ(Allocated(one), 1u);
  // SEEK_DATA skips preallocated ranges (ext4 reports them as holes): cp and tar stay sparse.
  ASSERT_TRUE(fs_->Fallocate(one, 0, 0, 1 << 20).ok());
  EXPECT_EQ(Allocated(one), 1u + (1 << 20));
  auto data_at = fs_->Lseek(one, 0, SEEK_DATA);
  ASSERT_TRUE(data_at.ok());
  EXPECT_EQ(*data_at, (1u << 30) - 1);
}

// Zero, collapse and insert over real data, buffered and stored, read back byte-exact; collapse
// and insert store no new chunk (extents move, split ones share their chunk).
TEST_F(FileSpaceTest, ZeroCollapseAndInsertMoveExtentsWithoutCopyingData) {
  const Ino ino = CreateFile(kRootIno, "f");
  std::string data = MakeRealData(1 << 20, 4);
  WriteAll(ino, data);
  ASSERT_TRUE(fs_->Fsync(ino, false).ok());
  const FsStats before = SettledStats();

  // Collapse 8 KiB at 100 KiB (inside a chunk: its extent splits).
  ASSERT_TRUE(fs_->Fallocate(ino, FALLOC_FL_COLLAPSE_RANGE, 100 << 10, 8 << 10).ok());
  data.erase(100 << 10, 8 << 10);
  // Insert 12 KiB at 40 KiB.
  ASSERT_TRUE(fs_->Fallocate(ino, FALLOC_FL_INSERT_RANGE, 40 << 10, 12 << 10).ok());
  data.insert(40 << 10, 12 << 10, '\0');
  EXPECT_TRUE(ReadAll(ino) == data);
  const FsStats after = SettledStats();
  EXPECT_EQ(after.unique_raw_bytes, before.unique_raw_bytes) << "data was stored again";
  EXPECT_EQ(Allocated(ino), data.size() - (12 << 10));

  // Buffered bytes are settled first: a write not yet stored moves with the rest.
  const std::string fresh = MakeRandomData(20000, 5);
  ASSERT_TRUE(fs_->Write(ino, 300000, fresh).ok());
  data.replace(300000, fresh.size(), fresh);
  ASSERT_TRUE(fs_->Fallocate(ino, FALLOC_FL_COLLAPSE_RANGE, 4096, 4096).ok());
  data.erase(4096, 4096);
  // Zero range: zeros, allocated; past the end with KEEP_SIZE, extending without.
  ASSERT_TRUE(fs_->Fallocate(ino, FALLOC_FL_ZERO_RANGE, 5000, 70000).ok());
  std::fill(data.begin() + 5000, data.begin() + 75000, '\0');
  ASSERT_TRUE(fs_->Fallocate(ino, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, data.size() + 100,
                             4000).ok());
  ASSERT_TRUE(fs_->Fallocate(ino, FALLOC_FL_ZERO_RANGE, data.size() + 10000, 1000).ok());
  data.resize(data.size() + 11000, '\0');
  EXPECT_TRUE(ReadAll(ino) == data);
  ASSERT_TRUE(fs_->Fsync(ino, false).ok());
  // Holes: the 100 bytes between the old end and the first zeroed range past it, and the
  // 5900 between the two (the inserted hole is inside the first zeroed range now).
  EXPECT_EQ(Allocated(ino), data.size() - 100 - 5900);
  ASSERT_TRUE(fs_->Release(ino).ok());
  ASSERT_NO_FATAL_FAILURE(ExpectFsckClean());
  EXPECT_TRUE(ReadAll(ino) == data);
}

TEST_F(FileSpaceTest, ArgumentsFollowTheKernelAndExt4Rules) {
  const Ino ino = CreateFile(kRootIno, "f");
  WriteAll(ino, MakeRandomData(64 << 10, 6));
  struct Case {
    const char* what;
    int mode;
    uint64_t off, len;
    int err;
  };
  const Case cases[] = {
      {"collapse, unaligned offset", FALLOC_FL_COLLAPSE_RANGE, 100, 4096, EINVAL},
      {"collapse, unaligned length", FALLOC_FL_COLLAPSE_RANGE, 4096, 100, EINVAL},
      {"collapse reaching the end", FALLOC_FL_COLLAPSE_RANGE, 0, 64 << 10, EINVAL},
      {"collapse past the end", FALLOC_FL_COLLAPSE_RANGE, 60 << 10, 8192, EINVAL},
      {"collapse with keep size", FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_KEEP_SIZE, 0, 4096,
       EOPNOTSUPP},
      {"insert at the end", FALLOC_FL_INSERT_RANGE, 64 << 10, 4096, EINVAL},
      {"insert, unaligned", FALLOC_FL_INSERT_RANGE, 4096, 10, EINVAL},
      {"insert past the largest size", FALLOC_FL_INSERT_RANGE, 0, 1ull << 60, EFBIG},
      {"punch without keep size", FALLOC_FL_PUNCH_HOLE, 0, 4096, EOPNOTSUPP},
      {"punch and zero", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0,
       4096, EOPNOTSUPP},
      {"unshare", FALLOC_FL_UNSHARE_RANGE, 0, 4096, EOPNOTSUPP},
      {"empty range", 0, 0, 0, EINVAL},
      {"past the largest size", 0, 1ull << 60, 1, EFBIG},
  };
  for (const Case& c : cases) {
    Status s = fs_->Fallocate(ino, c.mode, c.off, c.len);
    EXPECT_EQ(s.code(), c.err) << c.what << ": " << s.ToString();
  }
  EXPECT_EQ(fs_->GetAttr(ino)->size, 64u << 10) << "a refused call changed the file";

  auto fifo = fs_->MkNod(kRootIno, "fifo", S_IFIFO | 0644, 0, caller_);
  ASSERT_TRUE(fifo.ok());
  EXPECT_EQ(fs_->Fallocate(fifo->ino, 0, 0, 4096).code(), ENODEV);
  EXPECT_EQ(fs_->Fallocate(kRootIno, 0, 0, 4096).code(), EISDIR);
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
