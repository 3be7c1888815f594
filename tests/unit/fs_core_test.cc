// FsCore without FUSE: the filesystem's semantics, called the way the libfuse glue calls them.
#include "fs/fs_core.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <random>

#include <gtest/gtest.h>

#include "fs/chunk_cache.h"
#include "tests/testutil/fs_core_fixture.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

class FsCoreTest : public FsCoreFixture {};

TEST_F(FsCoreTest, WriteReadBackBeforeAndAfterFlushAndReopen) {
  std::string data = MakeRealData(5 << 20, 1);
  Ino ino = CreateFile(kRootIno, "a");
  WriteAll(ino, data);
  EXPECT_EQ(ReadAll(ino), data);  // partly buffered
  ASSERT_TRUE(fs_->Release(ino).ok());
  EXPECT_EQ(ReadAll(ino), data);  // all in the store
  auto attr = fs_->GetAttr(ino);
  EXPECT_EQ(attr->size, data.size());
  EXPECT_EQ(attr->uid, 1000u);
  Reopen();
  auto look = fs_->Lookup(kRootIno, "a");
  ASSERT_TRUE(look.ok());
  EXPECT_EQ(ReadAll(look->ino), data);
}

TEST_F(FsCoreTest, IdenticalFilesShareChunksEvenWhenShifted) {
  FsStats before = fs_->Stats();
  std::string payload = MakeRealData(24 << 20, 2);
  for (int rank = 0; rank < 4; ++rank) {
    std::string header = "schema fingerprint rank=" + std::to_string(rank) + std::string(rank * 7, 'x');
    Ino ino = CreateFile(kRootIno, "rank" + std::to_string(rank));
    WriteAll(ino, header + payload, rank % 2 ? 8192 : (1 << 20));
    ASSERT_TRUE(fs_->Release(ino).ok());
  }
  FsStats s = SettledStats();
  EXPECT_EQ(before.chunks.chunks, 0u);
  // Four copies, but the unique content is about one copy.
  EXPECT_LT(s.unique_raw_bytes, payload.size() * 105 / 100);
  EXPECT_GE(s.logical_bytes, 4 * payload.size());
  EXPECT_LT(s.physical_bytes, payload.size());  // and it is compressed
  std::string text = fs_->StatsText();
  EXPECT_NE(text.find("dedup_ratio="), std::string::npos);
}

// The stats say where the daemon's memory is: the writers' chunks fill the chunk cache (up to
// its cap), their extents sit in RocksDB's memtables, and the heap holds at least the cache.
TEST_F(FsCoreTest, StatsAccountForTheDaemonsMemory) {
  FsStats empty = fs_->Stats();
  EXPECT_EQ(empty.chunk_cache_bytes, 0u);
  // Process-wide: the tests before this one must have given back every chunk buffer.
  EXPECT_EQ(empty.chunk_buffer_bytes, 0u);
  std::string payload = MakeRealData(8 << 20, 3);
  for (int i = 0; i < 2; ++i) {
    Ino ino = CreateFile(kRootIno, "m" + std::to_string(i));
    WriteAll(ino, payload, 1 << 20);
    ASSERT_TRUE(fs_->Release(ino).ok());
  }
  FsStats s = SettledStats();
  EXPECT_GT(s.chunk_cache_bytes, payload.size() / 2);
  EXPECT_LE(s.chunk_cache_bytes, FsOptions().chunk_cache_bytes);
  // The cache's buffers are among all the chunk buffers, and nothing else holds many more:
  // the files are closed and stored.
  EXPECT_GE(s.chunk_buffer_bytes, s.chunk_cache_bytes);
  EXPECT_LE(s.chunk_buffer_bytes, s.chunk_cache_bytes + (1u << 20));
  EXPECT_GT(s.meta_memtable_bytes, empty.meta_memtable_bytes);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // (Sanitizers replace malloc; glibc's counters then see none of it.)
  EXPECT_GE(s.heap_used_bytes, s.chunk_buffer_bytes);
#endif
  const std::string text = fs_->StatsText();
  for (const char* key : {"chunk_cache_bytes=", "chunk_buffer_bytes=", "meta_memtable_bytes=", "meta_block_cache_bytes=",
                          "meta_table_reader_bytes=", "heap_used_bytes=", "heap_free_bytes="}) {
    EXPECT_NE(text.find(key), std::string::npos) << key;
  }
  ASSERT_TRUE(fs_->Shutdown().ok());
  fs_.reset();
  ASSERT_TRUE(store_->Close().ok());
  store_.reset();
  EXPECT_EQ(LiveChunkBytes(), 0u) << "chunk buffers outlived their filesystem";
}

// A read zeroes only what no extent covers: holes between extents, before the first and past
// the last must come back as zeros even when the caller's buffer held something else (the
// FUSE glue reuses one buffer per thread).
TEST_F(FsCoreTest, HolesReadAsZerosWhateverTheBufferHeld) {
  const std::string data = MakeRealData(3 << 20, 31);
  Ino ino = CreateFile(kRootIno, "sparse");
  // Data at [1 MiB, 1.5 MiB) and [2.25 MiB, 3 MiB), a hole between, a hole before, and the
  // size set to 4 MiB: a hole after the last extent too.
  const uint64_t a = 1 << 20, a_end = a + (512 << 10), b = (2 << 20) + (256 << 10), b_end = 3 << 20;
  WriteAll(ino, data.substr(a, a_end - a), 1 << 20, a);
  WriteAll(ino, data.substr(b, b_end - b), 1 << 20, b);
  ASSERT_TRUE(fs_->Fsync(ino, false).ok());  // into extents, not buffers
  SetAttrRequest grow;
  grow.set_size = true;
  grow.size = 4 << 20;
  ASSERT_TRUE(fs_->SetAttr(ino, grow).ok());
  std::string want(4 << 20, '\0');
  want.replace(a, a_end - a, data, a, a_end - a);
  want.replace(b, b_end - b, data, b, b_end - b);
  // Whole file, and windows that start and end inside holes and inside extents.
  for (auto [off, len] : {std::pair<uint64_t, size_t>{0, 4 << 20}, {a - 4096, 8192},
                          {a + 100, b - a}, {a_end - 10, 20}, {b_end - 4096, 1 << 20},
                          {b + 1, (1 << 20) + 7}}) {
    std::string buf(len, '\xA5');
    auto n = fs_->Read(ino, off, len, buf.data());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    ASSERT_EQ(*n, std::min<uint64_t>(len, want.size() - off));
    ASSERT_TRUE(buf.compare(0, *n, want, off, *n) == 0) << "read at " << off << " + " << len;
  }
  ASSERT_TRUE(fs_->Release(ino).ok());
}

// ReadPieces (the FUSE read reply without a copy) gives exactly Read's bytes for stored
// ranges, and declines, reading nothing, where uncommitted bytes would have to be laid over.
TEST_F(FsCoreTest, ReadPiecesGiveReadsBytesOrDecline) {
  const std::string data = MakeRealData(2 << 20, 32);
  Ino ino = CreateFile(kRootIno, "pieces");
  const uint64_t hole = 512 << 10, hole_end = 768 << 10;  // never written
  WriteAll(ino, data.substr(0, hole), 1 << 20, 0);
  WriteAll(ino, data.substr(hole_end), 1 << 20, hole_end);
  ASSERT_TRUE(fs_->Fsync(ino, false).ok());
  auto joined = [&](uint64_t off, size_t len) -> std::optional<std::string> {
    std::vector<FsCore::ReadPiece> pieces;
    auto r = fs_->ReadPieces(ino, off, len, &pieces);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok() || !*r) {
      EXPECT_TRUE(pieces.empty());
      return std::nullopt;
    }
    std::string got;
    for (const auto& p : pieces) {
      if (p.data == nullptr) {
        EXPECT_EQ(p.chunk, nullptr);
        got.append(p.len, '\0');
      } else {
        EXPECT_NE(p.chunk, nullptr);  // the piece holds its chunk
        got.append(p.data, p.len);
      }
    }
    EXPECT_EQ(got.size(), **r);
    return got;
  };
  auto read = [&](uint64_t off, size_t len) {
    std::string buf(len, '\0');
    auto n = fs_->Read(ino, off, len, buf.data());
    EXPECT_TRUE(n.ok());
    buf.resize(n.ok() ? *n : 0);
    return buf;
  };
  for (auto [off, len] : {std::pair<uint64_t, size_t>{0, 2 << 20}, {hole - 100, 4096},
                          {hole + 5, 1000}, {(1 << 20) + 3, 1 << 20}, {(2 << 20) - 10, 4096}}) {
    auto got = joined(off, len);
    ASSERT_TRUE(got.has_value()) << off;
    EXPECT_TRUE(*got == read(off, len)) << "at " << off << " + " << len;
  }
  auto eof = joined(2 << 20, 4096);
  ASSERT_TRUE(eof.has_value());
  EXPECT_TRUE(eof->empty());
  // Bytes written but not yet stored decline the ranges they touch, and only those.
  ASSERT_TRUE(fs_->Write(ino, hole + 10, "fresh").ok());
  EXPECT_FALSE(joined(hole, 4096).has_value());
  EXPECT_FALSE(joined(0, 2 << 20).has_value());
  EXPECT_TRUE(joined(0, 4096).has_value());
  EXPECT_EQ(read(hole + 10, 5), "fresh");
  std::vector<FsCore::ReadPiece> pieces;
  auto stats = fs_->ReadPieces(kStatsIno, 0, 4096, &pieces);
  ASSERT_TRUE(stats.ok());
  EXPECT_FALSE(stats->has_value());
  ASSERT_TRUE(fs_->Release(ino).ok());
}

// Kernel writeback sends a file's pages out of order. Flushing while a gap is still open must
// not move chunk cuts, or copies written with different orders stop sharing chunks.
TEST_F(FsCoreTest, OutOfOrderWritebackStillCutsCopiesAlike) {
  fs_.reset();
  store_.reset();
  FsOptions fo;
  fo.inode_flush_bytes = 2 << 20;  // flush often, while gaps are open
  Open(fo);
  std::string payload = MakeRealData(32 << 20, 12);
  const size_t block = 1 << 20;
  const size_t blocks = payload.size() / block;
  for (int copy = 0; copy < 3; ++copy) {
    Ino ino = CreateFile(kRootIno, "c" + std::to_string(copy));
    std::mt19937_64 rng(copy);
    // Blocks arrive in order except that each window of 4 is shuffled.
    std::vector<size_t> order(blocks);
    for (size_t i = 0; i < blocks; ++i) order[i] = i;
    for (size_t w = 0; w + 4 <= blocks; w += 4) std::shuffle(order.begin() + w, order.begin() + w + 4, rng);
    for (size_t i : order) {
      ASSERT_TRUE(fs_->Write(ino, i * block, std::string_view(payload).substr(i * block, block)).ok());
    }
    ASSERT_TRUE(fs_->Release(ino).ok());
    EXPECT_EQ(ReadAll(ino), payload);
  }
  FsStats s = SettledStats();
  EXPECT_LE(s.unique_raw_bytes, payload.size() * 101 / 100)
      << "unique " << s.unique_raw_bytes << " for three copies of " << payload.size();
}

TEST_F(FsCoreTest, OverwriteTruncateAndPunchKeepBytesRight) {
  std::string model = MakeRealData(3 << 20, 3);
  Ino ino = CreateFile(kRootIno, "f");
  WriteAll(ino, model, 1 << 20);
  ASSERT_TRUE(fs_->Flush(ino).ok());
  std::string patch = MakeRandomData(100000, 4);
  ASSERT_TRUE(fs_->Write(ino, 1234567, patch).ok());
  model.replace(1234567, patch.size(), patch);
  EXPECT_EQ(ReadAll(ino), model);
  ASSERT_TRUE(fs_->Flush(ino).ok());
  EXPECT_EQ(ReadAll(ino), model);
  // Punch a hole across chunk boundaries.
  ASSERT_TRUE(fs_->Fallocate(ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 500000, 300001).ok());
  std::fill(model.begin() + 500000, model.begin() + 800001, '\0');
  EXPECT_EQ(ReadAll(ino), model);
  // SEEK_HOLE / SEEK_DATA see the hole.
  auto hole = fs_->Lseek(ino, 0, SEEK_HOLE);
  ASSERT_TRUE(hole.ok());
  EXPECT_EQ(*hole, 500000u);
  auto data = fs_->Lseek(ino, 500000, SEEK_DATA);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(*data, 800001u);
  EXPECT_EQ(fs_->Lseek(ino, model.size(), SEEK_DATA).status().code(), ENXIO);
  // Truncate down, then up: the regrown part reads as zeros.
  SetAttrRequest t;
  t.set_size = true;
  t.size = 1000000;
  ASSERT_TRUE(fs_->SetAttr(ino, t).ok());
  t.size = 2000000;
  ASSERT_TRUE(fs_->SetAttr(ino, t).ok());
  model.resize(1000000);
  model.resize(2000000, '\0');
  EXPECT_EQ(ReadAll(ino), model);
  Reopen();
  EXPECT_EQ(ReadAll(ino), model);
}

TEST_F(FsCoreTest, RandomOperationsMatchAModel) {
  std::mt19937_64 rng(5);
  std::string model;
  Ino ino = CreateFile(kRootIno, "r");
  std::string pool = MakeRealData(4 << 20, 6);
  for (int op = 0; op < 3000; ++op) {
    int kind = int(rng() % 10);
    uint64_t off = rng() % (3 << 20);
    uint64_t len = 1 + rng() % (kind < 5 ? 70000 : 400000);
    if (kind < 5) {
      std::string_view piece = std::string_view(pool).substr(rng() % (pool.size() - len), len);
      ASSERT_TRUE(fs_->Write(ino, off, piece).ok());
      if (model.size() < off + len) model.resize(off + len, '\0');
      model.replace(off, len, piece);
    } else if (kind == 5) {
      SetAttrRequest t;
      t.set_size = true;
      t.size = off;
      ASSERT_TRUE(fs_->SetAttr(ino, t).ok());
      model.resize(off, '\0');
    } else if (kind == 6) {
      ASSERT_TRUE(fs_->Fallocate(ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len).ok());
      if (off < model.size()) {
        std::fill(model.begin() + off, model.begin() + std::min<uint64_t>(model.size(), off + len), '\0');
      }
    } else if (kind == 7) {
      ASSERT_TRUE(fs_->Flush(ino).ok());
    } else if (kind == 8) {  // copy within the file, non-overlapping
      uint64_t src = rng() % (model.size() + 1);
      uint64_t n = std::min<uint64_t>(len, model.size() - src);
      uint64_t dst = src + n + rng() % 100000;
      auto c = fs_->CopyFileRange(ino, src, ino, dst, n);
      ASSERT_TRUE(c.ok()) << c.status().ToString();
      ASSERT_EQ(*c, n);
      if (n > 0) {
        std::string piece = model.substr(src, n);
        if (model.size() < dst + n) model.resize(dst + n, '\0');
        model.replace(dst, n, piece);
      }
    } else {
      std::string buf(len, '\0');
      auto r = fs_->Read(ino, off, len, buf.data());
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      size_t want = off >= model.size() ? 0 : std::min<uint64_t>(len, model.size() - off);
      ASSERT_EQ(*r, want);
      ASSERT_EQ(buf.substr(0, want), model.substr(off < model.size() ? off : 0, want)) << "op " << op;
    }
  }
  EXPECT_EQ(ReadAll(ino), model);
  ASSERT_TRUE(fs_->Release(ino).ok());
  Reopen();
  EXPECT_EQ(ReadAll(ino), model);
}

TEST_F(FsCoreTest, CopyFileRangeSharesChunksWithoutStoringBytes) {
  std::string data = MakeRealData(16 << 20, 7);
  Ino a = CreateFile(kRootIno, "a");
  WriteAll(a, data, 1 << 20);
  ASSERT_TRUE(fs_->Release(a).ok());
  uint64_t stored = SettledStats().stored_bytes;
  Ino b = CreateFile(kRootIno, "b");
  auto n = fs_->CopyFileRange(a, 0, b, 0, data.size() + 100);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, data.size());
  EXPECT_EQ(fs_->Stats().stored_bytes, stored);
  EXPECT_EQ(ReadAll(b), data);
  // Deleting the source keeps the copy intact.
  ASSERT_TRUE(fs_->Unlink(kRootIno, "a").ok());
  fs_->Forget(a, 1);
  ASSERT_TRUE(fs_->DrainBackground().ok());
  EXPECT_EQ(ReadAll(b), data);
}

TEST_F(FsCoreTest, UnlinkedOpenFileWorksUntilLastReleaseThenSpaceComesBack) {
  std::string data = MakeRealData(8 << 20, 8);
  Ino ino = CreateFile(kRootIno, "tmp");
  WriteAll(ino, data, 1 << 20);
  ASSERT_TRUE(fs_->Flush(ino).ok());
  ASSERT_GT(SettledStats().chunks.chunks, 0u);
  ASSERT_TRUE(fs_->Unlink(kRootIno, "tmp").ok());
  EXPECT_EQ(fs_->Lookup(kRootIno, "tmp").status().code(), ENOENT);
  fs_->Forget(ino, 1);  // the kernel lets go of the name, the file stays open
  EXPECT_EQ(ReadAll(ino), data);
  ASSERT_TRUE(fs_->Write(ino, 0, "still writable").ok());
  ASSERT_TRUE(fs_->Release(ino).ok());
  ASSERT_TRUE(fs_->DrainBackground().ok());
  FsStats s = fs_->Stats();
  EXPECT_EQ(s.chunks.chunks, 0u);
  EXPECT_LT(s.physical_bytes, 64u << 10);
}

TEST_F(FsCoreTest, OrphansLeftByACrashAreReleasedOnTheNextStart) {
  Ino ino = CreateFile(kRootIno, "o");
  WriteAll(ino, MakeRealData(2 << 20, 9), 1 << 20);
  ASSERT_TRUE(fs_->Flush(ino).ok());
  ASSERT_TRUE(fs_->Unlink(kRootIno, "o").ok());
  // Still open when the daemon stops: the inode stays on the orphan list.
  ASSERT_TRUE(fs_->Shutdown().ok());
  fs_.reset();
  ASSERT_TRUE(store_->Close().ok());
  store_.reset();
  Open();
  ASSERT_TRUE(fs_->DrainBackground().ok());
  EXPECT_EQ(fs_->Stats().chunks.chunks, 0u);
  EXPECT_EQ(fs_->GetAttr(ino).status().code(), ENOENT);
}

TEST_F(FsCoreTest, NamespaceErrorsAreThePosixOnes) {
  ASSERT_TRUE(fs_->MkDir(kRootIno, "d", 0755, caller_).ok());
  EXPECT_EQ(fs_->MkDir(kRootIno, "d", 0755, caller_).status().code(), EEXIST);
  auto d = fs_->Lookup(kRootIno, "d");
  ASSERT_TRUE(d.ok());
  Ino f = CreateFile(d->ino, "f");
  EXPECT_EQ(fs_->RmDir(kRootIno, "d").code(), ENOTEMPTY);
  EXPECT_EQ(fs_->Unlink(kRootIno, "d").code(), EISDIR);
  EXPECT_EQ(fs_->RmDir(d->ino, "f").code(), ENOTDIR);
  EXPECT_EQ(fs_->Unlink(kRootIno, "missing").code(), ENOENT);
  EXPECT_EQ(fs_->Lookup(kRootIno, std::string(256, 'n')).status().code(), ENAMETOOLONG);
  EXPECT_EQ(fs_->Link(d->ino, kRootIno, "dlink").status().code(), EPERM);
  // Rename flags.
  Ino g = CreateFile(kRootIno, "g");
  EXPECT_EQ(fs_->Rename(kRootIno, "g", d->ino, "f", RENAME_NOREPLACE).code(), EEXIST);
  ASSERT_TRUE(fs_->Rename(kRootIno, "g", d->ino, "f", RENAME_EXCHANGE).ok());
  EXPECT_EQ(fs_->Lookup(d->ino, "f")->ino, g);
  EXPECT_EQ(fs_->Lookup(kRootIno, "g")->ino, f);
  EXPECT_EQ(fs_->Rename(kRootIno, "g", kRootIno, "d", 0).code(), EISDIR);
  ASSERT_TRUE(fs_->MkDir(kRootIno, "e", 0755, caller_).ok());
  EXPECT_EQ(fs_->Rename(kRootIno, "e", kRootIno, "g", 0).code(), ENOTDIR);
  EXPECT_EQ(fs_->Rename(kRootIno, "e", kRootIno, "d", 0).code(), ENOTEMPTY);
  // Replacing rename drops the old target's link.
  ASSERT_TRUE(fs_->Rename(kRootIno, "g", d->ino, "f", 0).ok());
  EXPECT_EQ(fs_->GetAttr(g)->nlink, 0u);
  // Directory link counts.
  EXPECT_EQ(fs_->GetAttr(kRootIno)->nlink, 4u);  // ., d, e
  ASSERT_TRUE(fs_->Rename(kRootIno, "e", d->ino, "e", 0).ok());
  EXPECT_EQ(fs_->GetAttr(kRootIno)->nlink, 3u);
  EXPECT_EQ(fs_->GetAttr(d->ino)->nlink, 3u);
  // Hard links and symlinks.
  auto l = fs_->Link(f, kRootIno, "hard");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->nlink, 2u);
  ASSERT_TRUE(fs_->Symlink(kRootIno, "sym", "d/f", caller_).ok());
  auto sym = fs_->Lookup(kRootIno, "sym");
  EXPECT_EQ(*fs_->ReadLink(sym->ino), "d/f");
  // Listing: "." and "..", the entries, never the stats file.
  auto listing = fs_->OpenDir(kRootIno);
  ASSERT_TRUE(listing.ok());
  std::vector<std::string> names;
  for (const auto& e : (*listing)->entries) names.push_back(e.name);
  EXPECT_EQ(names, (std::vector<std::string>{".", "..", "d", "hard", "sym"}));
  EXPECT_TRUE(fs_->Lookup(kRootIno, std::string(kStatsFileName)).ok());
}

TEST_F(FsCoreTest, XattrsFollowTheFlags) {
  Ino f = CreateFile(kRootIno, "x");
  EXPECT_EQ(fs_->GetXattr(f, "user.a").status().code(), ENODATA);
  ASSERT_TRUE(fs_->SetXattr(f, "user.a", "1", 0).ok());
  EXPECT_EQ(fs_->SetXattr(f, "user.a", "2", XATTR_CREATE).code(), EEXIST);
  EXPECT_EQ(fs_->SetXattr(f, "user.b", "2", XATTR_REPLACE).code(), ENODATA);
  ASSERT_TRUE(fs_->SetXattr(f, "user.b", std::string(1000, 'v'), 0).ok());
  EXPECT_EQ(*fs_->GetXattr(f, "user.a"), "1");
  EXPECT_EQ(*fs_->ListXattr(f), std::string("user.a\0user.b\0", 14));
  ASSERT_TRUE(fs_->RemoveXattr(f, "user.a").ok());
  EXPECT_EQ(fs_->RemoveXattr(f, "user.a").code(), ENODATA);
  EXPECT_EQ(fs_->SetXattr(f, "user.big", std::string(70000, 'v'), 0).code(), E2BIG);
}

}  // namespace
}  // namespace rankfs
