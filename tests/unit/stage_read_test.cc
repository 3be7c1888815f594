// FsCore::StageRead, the GPU staging path's read (fs/stage_read.cc): Read's bytes, got with
// one read of each distinct chunk, holes zeroed without a read, adjacent records read
// together, whole chunks decompressed straight into the buffer and cached only when shared
// while another staging client is connected.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "fs/fs_core.h"
#include "tests/testutil/fs_core_fixture.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

class StageReadTest : public FsCoreFixture {
 protected:
  std::string Staged(Ino ino, uint64_t off, size_t len) {
    std::string buf(len, '\xA5');
    auto n = fs_->StageRead(ino, off, len, buf.data());
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    buf.resize(n.ok() ? *n : 0);
    return buf;
  }
  std::string Read(Ino ino, uint64_t off, size_t len) {
    std::string buf(len, '\0');
    auto n = fs_->Read(ino, off, len, buf.data());
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    buf.resize(n.ok() ? *n : 0);
    return buf;
  }
  // A 4 MiB file with a hole at [1 MiB, 1.25 MiB) and after 3.5 MiB, stored and with the
  // cache emptied (a reopen).
  Ino StoredSparseFile() {
    const std::string data = MakeRealData(4 << 20, 41);
    Ino ino = CreateFile(kRootIno, "f");
    WriteAll(ino, data.substr(0, 1 << 20), 1 << 20, 0);
    WriteAll(ino, data.substr(5 << 18, (7 << 19) - (5 << 18)), 1 << 20, 5 << 18);
    SetAttrRequest grow;
    grow.set_size = true;
    grow.size = 4 << 20;
    EXPECT_TRUE(fs_->SetAttr(ino, grow).ok());
    EXPECT_TRUE(fs_->Fsync(ino, false).ok());
    EXPECT_TRUE(fs_->Release(ino).ok());
    Reopen();
    return ino;
  }
};

TEST_F(StageReadTest, GivesReadsBytesForStoredRangesAndHoles) {
  const Ino ino = StoredSparseFile();
  for (auto [off, len] : {std::pair<uint64_t, size_t>{0, 4 << 20}, {(1 << 20) - 100, 4096},
                          {(1 << 20) + 5, 1000}, {3, (2 << 20) + 11}, {(7 << 19) - 9, 1 << 20},
                          {(4 << 20) - 1, 10}, {4 << 20, 4096}}) {
    EXPECT_TRUE(Staged(ino, off, len) == Read(ino, off, len)) << "at " << off << " + " << len;
  }
  auto stats = fs_->StageRead(kStatsIno, 0, 100, nullptr);
  EXPECT_EQ(stats.status().code(), EINVAL);
}

TEST_F(StageReadTest, AColdReadDecompressesWholeChunksIntoTheBufferAndCachesNone) {
  const Ino ino = StoredSparseFile();
  const FsStats before = fs_->Stats();
  ASSERT_EQ(before.gpu_reads, 0u);
  const std::string got = Staged(ino, 0, 4 << 20);
  const FsStats after = fs_->Stats();
  EXPECT_EQ(after.gpu_reads, 1u);
  EXPECT_EQ(after.gpu_bytes, 4u << 20);
  EXPECT_EQ(after.gpu_fallback_reads, 0u);
  // Every chunk of the file, once; all whole, so all straight into the buffer, none cached.
  EXPECT_EQ(after.gpu_chunk_reads, after.chunks.chunks);
  EXPECT_EQ(after.gpu_direct_chunks, after.chunks.chunks);
  EXPECT_EQ(after.chunk_cache_bytes, 0u);
  // Written in order into one pack: a few runs of adjacent records, not one read per chunk.
  EXPECT_GT(after.gpu_chunk_reads, 20u);
  EXPECT_LE(after.gpu_preads, after.gpu_chunk_reads / 10 + 2);
  EXPECT_TRUE(got == Read(ino, 0, 4 << 20));
  // A range cutting chunks caches the cut ones (the next request likely wants the rest); a
  // cached chunk is then copied from the cache, not read again.
  const std::string part = Staged(ino, 1000, 100000);
  const FsStats cut = fs_->Stats();
  EXPECT_GT(cut.chunk_cache_bytes, 0u);
  EXPECT_TRUE(part == Read(ino, 1000, 100000));
  const uint64_t reads = cut.gpu_chunk_reads;
  (void)Staged(ino, 1000, 100000);
  EXPECT_EQ(fs_->Stats().gpu_chunk_reads, reads);
  EXPECT_GT(fs_->Stats().gpu_cache_hits, cut.gpu_cache_hits);
}

TEST_F(StageReadTest, AChunkUsedTwiceInARangeIsReadOnce) {
  const std::string data = MakeRealData(1 << 20, 42);
  Ino ino = CreateFile(kRootIno, "twice");
  WriteAll(ino, data, 1 << 20, 0);
  ASSERT_TRUE(fs_->Fsync(ino, false).ok());
  // The second MiB shares every chunk of the first.
  auto copied = fs_->CopyFileRange(ino, 0, ino, 1 << 20, 1 << 20);
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  ASSERT_TRUE(fs_->Fsync(ino, false).ok());
  ASSERT_TRUE(fs_->Release(ino).ok());
  Reopen();
  const uint64_t chunks = fs_->Stats().chunks.chunks;
  const std::string got = Staged(ino, 0, 2 << 20);
  EXPECT_TRUE(got == data + data);
  const FsStats s = fs_->Stats();
  EXPECT_EQ(s.gpu_chunk_reads, chunks);
  EXPECT_EQ(s.gpu_repeat_uses, chunks);
  EXPECT_EQ(s.gpu_direct_chunks, chunks);
  // Shared (two references each), but no other staging client is connected: nothing kept.
  EXPECT_EQ(s.chunk_cache_bytes, 0u);
}

TEST_F(StageReadTest, SharedChunksAreCachedWhileAnotherStagingClientIsConnected) {
  const std::string data = MakeRealData(1 << 20, 43);
  Ino ino = CreateFile(kRootIno, "shared");
  WriteAll(ino, data, 1 << 20, 0);
  ASSERT_TRUE(fs_->Fsync(ino, false).ok());
  Ino copy = CreateFile(kRootIno, "copy");  // the same content: every chunk twice referenced
  WriteAll(copy, data, 1 << 20, 0);
  ASSERT_TRUE(fs_->Fsync(copy, false).ok());
  ASSERT_TRUE(fs_->Release(ino).ok());
  ASSERT_TRUE(fs_->Release(copy).ok());
  Reopen();
  // One client (this one): the chunks go straight into the buffer and are not kept.
  fs_->BeginStagingClient();
  EXPECT_TRUE(Staged(ino, 0, 1 << 20) == data);
  FsStats s = fs_->Stats();
  EXPECT_EQ(s.gpu_direct_chunks, s.chunks.chunks);
  EXPECT_EQ(s.chunk_cache_bytes, 0u);
  // A second client: the same read keeps them for it, and its read of the copy hits them all.
  fs_->BeginStagingClient();
  EXPECT_TRUE(Staged(ino, 0, 1 << 20) == data);
  s = fs_->Stats();
  EXPECT_GT(s.chunk_cache_bytes, (1u << 20) * 9 / 10);
  const uint64_t reads = s.gpu_chunk_reads;
  EXPECT_TRUE(Staged(copy, 0, 1 << 20) == data);
  EXPECT_EQ(fs_->Stats().gpu_chunk_reads, reads);
  EXPECT_EQ(fs_->Stats().gpu_cache_hits, s.gpu_cache_hits + s.chunks.chunks);
  fs_->EndStagingClient();
  fs_->EndStagingClient();
}

TEST_F(StageReadTest, UncommittedBytesAreReadByRead) {
  const Ino ino = StoredSparseFile();
  ASSERT_TRUE(fs_->Open(ino, O_RDWR).ok());
  ASSERT_TRUE(fs_->Write(ino, (1 << 20) + 10, "fresh").ok());
  const std::string got = Staged(ino, 1 << 20, 4096);
  EXPECT_EQ(got.substr(10, 5), "fresh");
  EXPECT_TRUE(got == Read(ino, 1 << 20, 4096));
  EXPECT_EQ(fs_->Stats().gpu_fallback_reads, 1u);
  (void)Staged(ino, 0, 4096);  // elsewhere: from the store
  EXPECT_EQ(fs_->Stats().gpu_fallback_reads, 1u);
  ASSERT_TRUE(fs_->Release(ino).ok());
}

// Staged reads and FUSE reads of the same cold chunks at once (TSan runs this): each gets the
// right bytes, and the claims never leave a reader waiting for ever.
TEST_F(StageReadTest, ConcurrentStagedAndPlainReadsAgree) {
  const Ino ino = StoredSparseFile();
  const std::string want = Read(ino, 0, 4 << 20);
  Reopen();
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 8; ++i) {
        const uint64_t off = uint64_t((i * 7 + t * 13) % 32) << 17;
        const size_t len = (3 << 17) + size_t(t) * 1000;
        std::string buf(len, '\0');
        auto n = t % 2 == 0 ? fs_->StageRead(ino, off, len, buf.data())
                            : fs_->Read(ino, off, len, buf.data());
        if (!n.ok() || buf.compare(0, *n, want, off, *n) != 0) ++bad[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, std::vector<int>(4, 0));
}

}  // namespace
}  // namespace rankfs
